"""Adapters: feed MQTT topics, OPC UA nodes and CSV files into the bridge.

``twin3d serve`` starts one adapter per ``[[mqtt]]``, ``[[opcua]]`` and ``[[csv]]`` table of
bridge.toml; each hands its values to ``Bridge.ingest`` in batches (same validation, recording
and fan-out as a WebSocket publisher), with the source name ``mqtt:<name>``, ``opcua:<name>`` or
``csv:<name>``. See ``streaming/adapters/*.example.toml`` for every key. An ``[[engine]]`` table
starts the twin engine (:mod:`twin3d.engine.adapter`), a client of the bridge's own URL.

- :mod:`twin3d.bridge.adapters.mqtt` (client: gmqtt)
- :mod:`twin3d.bridge.adapters.opcua` (client: asyncua)
- :mod:`twin3d.bridge.adapters.csv` (also :func:`~twin3d.bridge.adapters.csv.read_csv`, used by
  ``twin3d replay``)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from twin3d._tasks import cancel_and_wait
from twin3d._types import PathLike
from twin3d.bridge.adapters._base import Ingest
from twin3d.errors import AdapterError

__all__ = ["Adapter", "build_adapters", "open_adapters", "start_adapters"]

KINDS = ("mqtt", "opcua", "csv", "engine")

log = logging.getLogger(__name__)


class Adapter(Protocol):
    """What every adapter offers."""

    kind: str
    label: str
    source: str
    connected: asyncio.Event

    async def run(self) -> None:
        """Feed ``ingest`` until cancelled (CSV: until the file is replayed)."""


def build_adapters(tables: Mapping[str, Any], ingest: Ingest, *,
                   base_dir: PathLike | None = None, url: str | None = None) -> list[Adapter]:
    """Check every adapter table and build the adapters, without starting them.

    Args:
        tables: ``{"mqtt": [...], "opcua": [...], "csv": [...], "engine": [...]}`` (bridge.toml
            parsed; other keys are ignored, so the whole TOML document or
            ``BridgeConfig.adapters`` both work).
        ingest: ``await ingest(samples, source)``, normally ``Bridge.ingest``.
        base_dir: folder that relative CSV and stage paths are resolved against (bridge.toml's).
        url: the bridge's own URL, which an ``[[engine]]`` connects to.

    Raises:
        AdapterError: the first bad table, e.g. ``"[[mqtt]] #1 (plant): missing key 'host': ..."``.
    """
    adapters: list[Adapter] = []
    for kind in KINDS:
        entries = tables.get(kind, [])
        if isinstance(entries, Mapping):
            raise AdapterError(f"[{kind}] is a single table: write it as [[{kind}]] (an array of tables)")
        if not isinstance(entries, Sequence):
            raise AdapterError(f"{kind} = {entries!r}: write [[{kind}]] tables")
        for i, table in enumerate(entries):
            if kind == "mqtt":
                from twin3d.bridge.adapters.mqtt import MqttAdapter

                adapters.append(MqttAdapter(table, ingest, index=i))
            elif kind == "opcua":
                from twin3d.bridge.adapters.opcua import OpcUaAdapter

                adapters.append(OpcUaAdapter(table, ingest, index=i))
            elif kind == "csv":
                from twin3d.bridge.adapters.csv import CsvReplay

                adapters.append(CsvReplay(table, ingest, index=i, base_dir=base_dir))
            else:
                from twin3d.engine.adapter import EngineAdapter

                adapters.append(EngineAdapter(table, url, index=i, base_dir=base_dir))
    return adapters


def start_adapters(tables: Mapping[str, Any], ingest: Ingest, *,
                   base_dir: PathLike | None = None, url: str | None = None) -> list[asyncio.Task[None]]:
    """Check the adapter tables and start one task per adapter (call inside a running loop).

    Config errors raise here, before anything starts. A task ends with :class:`AdapterError` when
    its first connection fails (broker or server unreachable) or a CSV file has a bad row; after
    a first connection, losses are retried with backoff and never end the task. Cancel the tasks
    to stop the adapters (what was received is still handed to ``ingest``).

    Args:
        tables: the ``[[mqtt]]``, ``[[opcua]]``, ``[[csv]]`` and ``[[engine]]`` tables (see
            :func:`build_adapters`).
        ingest: ``await ingest(samples, source)``, normally ``Bridge.ingest``.
        base_dir: folder that relative CSV and stage paths are resolved against.
        url: the bridge's own URL (for ``[[engine]]``).

    Returns:
        The running tasks, named after their tables (``"[[mqtt]] #1 (plant)"``).

    Raises:
        AdapterError: a bad table.

    Examples:
        >>> async def serve(bridge, config):  # doctest: +SKIP
        ...     tasks = start_adapters(config.adapters, bridge.ingest)
    """
    adapters = build_adapters(tables, ingest, base_dir=base_dir, url=url)
    tasks = [asyncio.create_task(a.run(), name=a.label) for a in adapters]
    for task in tasks:
        task.add_done_callback(_report)
    return tasks


def _report(task: asyncio.Task[None]) -> None:
    """Log how an adapter task ended: one line for an AdapterError, a traceback for a bug."""
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, AdapterError):
        log.error("%s", exc)
    elif exc is not None:
        log.error("adapter %s crashed", task.get_name(), exc_info=exc)


async def open_adapters(tables: Mapping[str, Any], ingest: Ingest, *, base_dir: PathLike | None = None,
                        url: str | None = None, timeout: float = 30.0) -> list[asyncio.Task[None]]:
    """Like :func:`start_adapters`, but wait until every adapter has connected once.

    Raises:
        AdapterError: a bad table, or an adapter that failed (or did not connect within
            ``timeout`` seconds); the other adapters are then stopped.
    """
    adapters = build_adapters(tables, ingest, base_dir=base_dir, url=url)
    tasks = [asyncio.create_task(a.run(), name=a.label) for a in adapters]
    try:
        for adapter, task in zip(adapters, tasks, strict=True):
            ready = asyncio.ensure_future(adapter.connected.wait())
            done, _ = await asyncio.wait({ready, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            if not done:
                raise AdapterError(f"{adapter.label}: not connected after {timeout:g} s: "
                                   "check that the broker/server is reachable")
    except BaseException:
        await cancel_and_wait(tasks)
        raise
    for task in tasks:
        task.add_done_callback(_report)
    return tasks
