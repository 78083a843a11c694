"""Shared pieces of the adapters: config checking, batching into ``ingest``, backoff, payload paths.

Pure helpers apart from :class:`Batcher`, which runs one asyncio task that hands the samples an
adapter collected to the bridge's ``ingest`` in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from twin3d.errors import AdapterError, Twin3DError
from twin3d.model import Sample

__all__ = ["Batcher", "Ingest", "Table", "Throttled", "backoff_delays", "lookup", "parse_path",
           "parse_time", "time_scale", "to_value"]

#: ``await ingest(samples, source)``: the bridge's ``Bridge.ingest``.
Ingest = Callable[[Sequence[Sample], str], Awaitable[object]]

_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
#: ProtocolViolation codes that blame single samples (the rest of a refused batch is kept)
_PER_SAMPLE = ("bad_channel", "bad_value", "bad_time")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list of tables", dict: "a table"}


class Table:
    """One ``[[kind]]`` table of bridge.toml, read with errors that name the table and the fix.

    Args:
        kind: ``"mqtt"``, ``"opcua"`` or ``"csv"``.
        index: position of the table among the tables of its kind (1-based in messages).
        data: the raw TOML table.
        known: every key the table may hold (others are reported as typos).
        label: how messages name the table (default ``[[kind]] #n (name)``).
    """

    def __init__(self, kind: str, index: int, data: Mapping[str, Any], known: Iterable[str],
                 label: str | None = None) -> None:
        if not isinstance(data, Mapping):
            raise AdapterError(f"[[{kind}]] #{index + 1}: expected a table, got {type(data).__name__}: "
                               f"write it as [[{kind}]] with key = value lines")
        self.kind, self.index, self.data = kind, index, data
        name = data.get("name")
        self.label = label or f"[[{kind}]] #{index + 1}" + (f" ({name})" if isinstance(name, str) else "")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise self.error(f"unknown key {unknown[0]!r}: use one of {', '.join(sorted(known))}")

    def error(self, problem: str) -> AdapterError:
        """Return an :class:`AdapterError` ``"<label>: <problem>"``."""
        return AdapterError(f"{self.label}: {problem}")

    def get(self, key: str, types: type | tuple[type, ...], default: Any = None, *,
            required: bool = False, example: str = "") -> Any:
        """Return ``data[key]`` checked against ``types``.

        Raises:
            AdapterError: the key is missing (when required) or of the wrong type.
        """
        if key not in self.data:
            if required:
                raise self.error(f"missing key {key!r}: add {key} = {example or '...'}")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            kinds = types if isinstance(types, tuple) else (types,)
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in kinds)
            raise self.error(f"{key} = {value!r} must be {names}" + (f", e.g. {key} = {example}" if example else ""))
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0, example: str = "") -> float:
        """Return a numeric key that must be ``>= minimum``."""
        value = float(self.get(key, (int, float), default, example=example))
        if not math.isfinite(value) or value < minimum:
            raise self.error(f"{key} = {value!r} must be a number >= {minimum:g}")
        return value

    def source(self, default: str) -> str:
        """The source name given to ``ingest``: ``name`` or ``default``."""
        name = self.get("name", str, None, example='"plant-broker"')
        return f"{self.kind}:{name}" if name else default


def parse_path(path: str, where: Table, key: str) -> tuple[str | int, ...]:
    """Parse a JSON payload path ``"data.temp"``, ``"values[0]"`` or ``"values.0"`` into keys.

    Raises:
        AdapterError: an empty path or an empty part.
    """
    parts: list[str | int] = []
    for part in re.split(r"\.|(?=\[)", path.strip()):
        m = re.fullmatch(r"\[(\d+)\]", part)
        if m:
            parts.append(int(m.group(1)))
        elif part.isdigit():
            parts.append(int(part))
        elif part and "[" not in part and "]" not in part:
            parts.append(part)
        else:
            raise where.error(f"{key} = {path!r} is not a payload path: write keys joined by dots, "
                              "list items as [0], e.g. \"data.values[0]\"")
    return tuple(parts)


def lookup(obj: Any, path: tuple[str | int, ...]) -> Any:
    """Follow ``path`` into nested JSON data; raise KeyError/IndexError/TypeError when absent."""
    for part in path:
        if isinstance(part, int) and isinstance(obj, list):
            obj = obj[part]
        elif isinstance(obj, dict):
            obj = obj[str(part)]
        else:
            raise KeyError(part)
    return obj


def to_value(raw: Any) -> float:
    """Convert a JSON value, bytes or string to a finite float.

    Raises:
        ValueError: not a number, or not finite.
    """
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


def time_scale(where: Table) -> float:
    """The ``time_unit`` key (``s``, ``ms``, ``us``, ``ns``) as seconds per unit."""
    unit = where.get("time_unit", str, "s", example='"ms"')
    if unit not in _TIME_UNITS:
        raise where.error(f"time_unit = {unit!r}: use one of {', '.join(_TIME_UNITS)}")
    return _TIME_UNITS[unit]


def parse_time(raw: Any, scale: float = 1.0) -> float:
    """Unix seconds from a number (in units of ``scale`` seconds) or an ISO 8601 string.

    Naive ISO times are taken as UTC.

    Raises:
        ValueError: neither a finite number nor an ISO 8601 time.
    """
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode()
    if isinstance(raw, str):
        try:
            return to_value(raw) * scale
        except ValueError:
            stamp = datetime.fromisoformat(raw.strip())
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return float(stamp.timestamp())
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raw = raw.replace(tzinfo=UTC)
        return float(raw.timestamp())
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"{raw!r} is not a time")
    return to_value(raw) * scale


def backoff_delays(first: float = 0.5, maximum: float = 30.0) -> Iterator[float]:
    """Reconnect delays: ``first``, doubling up to ``maximum`` seconds, forever."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2.0, maximum)


class Throttled:
    """Log a warning the first time a key is seen, then only every ``every`` occurrences."""

    def __init__(self, logger: logging.Logger, every: int = 10_000) -> None:
        self._logger, self._every, self._counts = logger, every, dict[str, int]()

    def warn(self, key: str, message: str) -> None:
        n = self._counts.get(key, 0) + 1
        if len(self._counts) < 10_000 or key in self._counts:
            self._counts[key] = n
        if n == 1 or n % self._every == 0:
            self._logger.warning("%s (seen %d times)", message, n)


class Batcher:
    """Collects samples from callbacks and hands them to ``ingest`` in batches, in order.

    ``add`` never blocks (it is called from protocol callbacks); :meth:`run` awaits ``ingest``,
    so the bridge's backpressure slows the flush. When more than ``max_pending`` samples wait,
    ``on_full(True)`` is called (the adapter pauses its source), and ``on_full(False)`` once the
    backlog has drained below half of that.

    Args:
        ingest: ``await ingest(samples, source)``.
        source: the adapter's source name.
        max_batch: most samples in one ``ingest`` call.
        max_pending: backlog that pauses the source.
        logger: where rejected batches are reported.
    """

    def __init__(self, ingest: Ingest, source: str, *, max_batch: int = 5000,
                 max_pending: int = 200_000, logger: logging.Logger | None = None) -> None:
        self.ingest, self.source = ingest, source
        self.max_batch, self.max_pending = max(1, max_batch), max(1, max_pending)
        self.on_full: Callable[[bool], None] | None = None
        self.received = 0       # samples added
        self.ingested = 0       # samples ingest accepted
        self.rejected = 0       # samples dropped because ingest refused their channel
        self.batches = 0        # ingest calls
        self.peak_pending = 0   # largest backlog seen
        self.refused: set[str] = set()  # channels the bridge refused; dropped from now on
        self._pending: list[Sample] = []
        self._wake = asyncio.Event()
        self._paused = False
        self._warn = Throttled(logger or logging.getLogger(__name__), every=100)

    @property
    def pending(self) -> int:
        """Samples waiting for ``ingest``."""
        return len(self._pending)

    def add(self, sample: Sample) -> None:
        """Queue one sample (never blocks)."""
        pending = self._pending
        pending.append(sample)
        self.received += 1
        if not self._wake.is_set():
            self._wake.set()
        if len(pending) > self.max_pending and not self._paused:
            self._set_paused(True)

    def extend(self, samples: Sequence[Sample]) -> None:
        """Queue several samples (never blocks)."""
        for sample in samples:
            self.add(sample)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if paused:
            self.peak_pending = max(self.peak_pending, len(self._pending))
        if self.on_full is not None:
            self.on_full(paused)

    async def flush(self) -> None:
        """Ingest everything queued so far."""
        while self._pending:
            self.peak_pending = max(self.peak_pending, len(self._pending))
            if len(self._pending) <= self.max_batch:
                batch, self._pending = self._pending, []
            else:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            if self.refused:
                batch = [s for s in batch if s.channel not in self.refused]
            self.batches += 1
            try:
                await self.ingest(batch, self.source)
                self.ingested += len(batch)
            except Twin3DError as exc:
                if getattr(exc, "code", None) in _PER_SAMPLE:
                    await self._salvage(batch)
                else:  # the bridge itself is failing (e.g. the recording): nothing to sort out
                    self.rejected += len(batch)
                    self._warn.warn(type(exc).__name__, f"{self.source}: the bridge refused "
                                    f"{len(batch)} samples: {exc}")
            if self._paused and len(self._pending) <= self.max_pending // 2:
                self._set_paused(False)

    async def _salvage(self, batch: list[Sample]) -> None:
        """The bridge refused a whole batch: ingest one by one, remember the channels it refuses."""
        for sample in batch:
            if sample.channel in self.refused:
                self.rejected += 1
                continue
            try:
                await self.ingest([sample], self.source)
                self.ingested += 1
            except Twin3DError as exc:
                self.rejected += 1
                if getattr(exc, "code", None) == "bad_channel" and len(self.refused) < 100_000:
                    self.refused.add(sample.channel)
                self._warn.warn(sample.channel, f"{self.source}: the bridge refused {sample.channel!r} "
                                f"({exc}); its values are dropped: fix the channel template or the "
                                "bridge limits")

    async def run(self) -> None:
        """Flush whenever samples arrive; runs until cancelled (then flushes what is left)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.flush()
        except asyncio.CancelledError:
            if self._pending:  # best effort: hand over what was received before stopping
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.flush(), timeout=5.0)
            raise
