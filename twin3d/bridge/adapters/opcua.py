"""OPC UA source: subscribe to variable nodes on a server and feed their values to the bridge.

One ``[[opcua]]`` table per server::

    [[opcua]]
    name = "press"                           # source name in the recording: "opcua:press"
    url = "opc.tcp://10.0.0.5:4840/"
    period_ms = 100                          # publishing interval of the subscription
    # username = "twin"; password = "..."
    # security = "Basic256Sha256,SignAndEncrypt,client-cert.pem,client-key.pem"

    [[opcua.nodes]]
    node = "ns=2;s=Press.Temperature"        # node id, as UaExpert or `uals` show it
    channel = "press/temp"

    # or the short form:  nodes = { "ns=2;s=Press.Temperature" = "press/temp" }

The client is asyncua; values arrive through its subscription API (data-change notifications),
with the value's *source timestamp* as the sample time (server timestamp, then arrival time,
when the server sends none). Values whose status is not Good are skipped; booleans become 0/1;
non-numeric values are skipped with a warning. Server loss: reconnect with exponential backoff
(0.5 s doubling to 30 s) and subscribe again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from twin3d._tasks import cancel_and_wait
from twin3d.bridge.adapters._base import Batcher, Ingest, Table, Throttled, backoff_delays, parse_time, to_value
from twin3d.errors import AdapterError
from twin3d.model import Sample

__all__ = ["OpcUaAdapter"]

log = logging.getLogger(__name__)

_KEYS = ("name", "url", "nodes", "period_ms", "username", "password", "security", "timeout",
         "watch_s", "max_batch", "max_pending", "retry_at_start")
_NODE_KEYS = ("node", "channel")


class OpcUaAdapter:
    """Subscribes one ``[[opcua]]`` table's nodes and feeds the values to ``ingest``.

    Args:
        table: the raw ``[[opcua]]`` table.
        ingest: ``await ingest(samples, source)``.
        index: position among the ``[[opcua]]`` tables (for messages).

    Raises:
        AdapterError: bad or missing keys, a node id that does not parse.

    Examples:
        >>> async def main(ingest):  # doctest: +SKIP
        ...     adapter = OpcUaAdapter({"url": "opc.tcp://127.0.0.1:4840/",
        ...                             "nodes": {"ns=2;s=Press.Temp": "press/temp"}}, ingest)
        ...     await adapter.run()
    """

    kind = "opcua"

    def __init__(self, table: Mapping[str, Any], ingest: Ingest, *, index: int = 0) -> None:
        from asyncua import ua

        t = Table("opcua", index, table, _KEYS)
        self.label = t.label
        self.url = t.get("url", str, required=True, example='"opc.tcp://127.0.0.1:4840/"')
        if not self.url.startswith("opc.tcp://"):
            raise t.error(f"url = {self.url!r}: write an opc.tcp:// URL, e.g. \"opc.tcp://10.0.0.5:4840/\"")
        nodes = t.get("nodes", (list, dict), required=True,
                      example='[{ node = "ns=2;s=Press.Temp", channel = "press/temp" }]')
        if isinstance(nodes, dict):
            nodes = [{"node": k, "channel": v} for k, v in nodes.items()]
        if not nodes:
            raise t.error("nodes is empty: add at least one [[opcua.nodes]] table")
        self.channels: dict[Any, str] = {}
        for entry in nodes:
            label = f"{t.label} node {entry.get('node', '?') if isinstance(entry, Mapping) else '?'!r}"
            sub = Table("opcua", index, entry, _NODE_KEYS, label=label)
            text = sub.get("node", str, required=True, example='"ns=2;s=Press.Temp"')
            channel = sub.get("channel", str, required=True, example='"press/temp"')
            try:
                node_id = ua.NodeId.from_string(text)
            except Exception:
                raise sub.error(f"node = {text!r} is not an OPC UA node id: write e.g. "
                                "\"ns=2;s=Press.Temp\" or \"ns=2;i=1001\"") from None
            if node_id in self.channels:
                raise sub.error(f"node {text!r} is listed twice: map each node to one channel")
            self.channels[node_id] = channel
        self.period_ms = t.number("period_ms", 100.0, minimum=0.0, example="100")
        self.timeout = t.number("timeout", 5.0, minimum=0.1)
        self.watch_s = t.number("watch_s", 1.0, minimum=0.05)
        self.retry_at_start = bool(t.get("retry_at_start", bool, False))
        self.username = t.get("username", str, None)
        self.password = t.get("password", str, None)
        self.security = t.get("security", str, None,
                              example='"Basic256Sha256,SignAndEncrypt,cert.pem,key.pem"')
        self.source = t.source(f"opcua:{self.url.removeprefix('opc.tcp://').rstrip('/')}")
        self.batcher = Batcher(ingest, self.source, max_batch=int(t.number("max_batch", 5000, minimum=1)),
                               max_pending=int(t.number("max_pending", 200_000, minimum=1)), logger=log)
        self.connected = asyncio.Event()   # set while connected and subscribed
        self.connections = 0
        self.bad_values = 0                 # notifications skipped (bad status, not a number)
        self._warn = Throttled(log, every=1000)

    # --- asyncua subscription handler (called for every data change) -----------------------------

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        channel = self.channels.get(node.nodeid)
        if channel is None:
            return
        dv = data.monitored_item.Value
        status = dv.StatusCode
        if status is not None and not status.is_good():
            self.bad_values += 1
            self._warn.warn(channel, f"{self.label}: {channel} has status {status.name}; value skipped")
            return
        try:
            value = to_value(val)
        except (TypeError, ValueError):
            self.bad_values += 1
            self._warn.warn(channel, f"{self.label}: {channel} sent {val!r}, not a number; value skipped")
            return
        stamp = dv.SourceTimestamp or dv.ServerTimestamp
        self.batcher.add(Sample(channel, value, parse_time(stamp) if stamp is not None else time.time()))

    def status_change_notification(self, status: Any) -> None:
        log.warning("%s: subscription status changed: %s", self.label, status)

    # --- connection -----------------------------------------------------------------------------

    async def _connect(self, first: bool) -> Any:
        from asyncua import ua
        from asyncua.client.client import Client

        client = Client(self.url, timeout=self.timeout)
        if self.username is not None:
            client.set_user(self.username)
        if self.password is not None:
            client.set_password(self.password)
        if self.security:
            await client.set_security_string(self.security)
        await client.connect()
        try:
            subscription = await client.create_subscription(self.period_ms, self)
            nodes = [client.get_node(n) for n in self.channels]
            handles = await subscription.subscribe_data_change(nodes)
            for node, handle in zip(nodes, handles if isinstance(handles, list) else [handles], strict=True):
                if isinstance(handle, ua.StatusCode):
                    problem = (f"cannot subscribe to node {node.nodeid.to_string()!r} "
                               f"({handle.name}): check the node id against the server's address space")
                    if first:
                        raise AdapterError(f"{self.label}: {problem}")
                    log.warning("%s: %s", self.label, problem)
        except BaseException:
            await self._close(client)
            raise
        return client

    async def _close(self, client: Any) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), 2.0)
        except BaseException:  # closing a dead connection: nothing to report
            pass

    async def _watch(self, client: Any) -> None:
        """Return when the server stops answering (a cheap read of ServerStatus.State)."""
        node = client.nodes.server_state
        while True:
            await asyncio.sleep(self.watch_s)
            try:
                await asyncio.wait_for(node.read_value(), self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: lost the server %s (%s); reconnecting", self.label, self.url,
                            type(exc).__name__)
                return

    async def run(self) -> None:
        """Connect, subscribe, and feed ``ingest`` until cancelled; reconnect on server loss.

        Raises:
            AdapterError: the first connection fails (server unreachable, refused, unknown node),
                unless ``retry_at_start`` (then an unreachable server is retried with backoff).
        """
        flusher = asyncio.create_task(self.batcher.run(), name=f"{self.label} flush")
        delays = backoff_delays()
        client = None
        try:
            while True:
                try:
                    client = await self._connect(first=self.connections == 0)
                except (asyncio.CancelledError, AdapterError):
                    raise
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    if self.connections == 0 and not self.retry_at_start:
                        raise AdapterError(f"{self.label}: cannot connect to OPC UA server {self.url} "
                                           f"({reason}): start the server or fix url/credentials") from None
                    delay = next(delays)
                    log.warning("%s: reconnect to %s failed (%s); retrying in %.1f s",
                                self.label, self.url, reason, delay)
                    await asyncio.sleep(delay)
                    continue
                self.connections += 1
                delays = backoff_delays()
                self.connected.set()
                log.info("%s: connected to %s, %d nodes subscribed", self.label, self.url, len(self.channels))
                await self._watch(client)
                self.connected.clear()
                await self._close(client)
                client = None
                await asyncio.sleep(next(delays))
        finally:
            self.connected.clear()
            if client is not None:
                await self._close(client)
            await cancel_and_wait([flusher])
