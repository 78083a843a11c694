"""The bridge server: a websockets.asyncio adapter around :class:`~twin3d.bridge.protocol.BridgeProtocol`.

Fan-out rules (see DESIGN.md: ``broadcast`` has no backpressure):

* live subscribers get a bounded buffer each; when it overflows (a slow or stuck viewer) it
  collapses to the latest value per channel and the viewer is told so with a ``gap`` frame;
  publishers and other subscribers never wait for it;
* the recorder gets a bounded queue that pushes back: a publisher's read loop waits for room,
  so TCP slows the publisher down and nothing is skipped; acks are sent after the commit;
* live subscribers are offered samples before the recorder sees them, so a slow or failing
  recording never holds up the live view; a resend after a reconnect is not offered twice;
* a commit that fails (disk full) is never acked: the publisher gets one ``disk_full`` (or
  ``recording_failed``) error and the connection is closed with 1013 (try again later), so its
  acks cannot cover what was lost; a reconnecting client resumes from ``resume.seq``, the last
  committed seq, and resends the rest.

Examples:
    >>> async def main():  # doctest: +SKIP
    ...     bridge = Bridge(record="run.db")
    ...     await bridge.start(port=0)
    ...     print(bridge.url)
    ...     await bridge.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import ipaddress
import logging
import signal
import ssl as ssl_module
import time as clock
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from twin3d import __version__
from twin3d._tasks import cancel_and_wait
from twin3d._types import PathLike
from twin3d.bridge.config import BridgeConfig, Role
from twin3d.bridge.protocol import (
    Authenticated, BadMessage, Batch, BridgeProtocol, Fatal, Hello, Meta, Publish, Subscribe,
    check_channel, check_time, check_value,
)
from twin3d.bridge.recorder import Recorder
from twin3d.errors import BridgeError, RecordingError
from twin3d.model import Sample

__all__ = ["Bridge", "ChannelTable", "serve"]

log = logging.getLogger("twin3d.bridge")
_SUB_BUFFER = 10_000  # values a live subscriber may lag before collapsing to latest-per-channel


class ChannelTable:
    """The bridge's channel table: name <-> id (shared with the recording)."""

    def __init__(self, known: dict[str, int] | None = None) -> None:
        self.ids: dict[str, int] = dict(known or {})
        size = max(self.ids.values(), default=-1) + 1
        self.names: list[str] = [""] * size
        for name, gid in self.ids.items():
            self.names[gid] = name
        self.new: list[tuple[int, str]] = []

    def id(self, name: str) -> int:
        gid = self.ids.get(name)
        if gid is None:
            gid = len(self.names)
            self.names.append(name)
            self.ids[name] = gid
            self.new.append((gid, name))
        return gid

    def take_new(self) -> list[tuple[int, str]]:
        new, self.new = self.new, []
        return new


class _Subscriber:
    """Bounded latest-value buffer and sender task of one live subscriber."""

    def __init__(self, conn: _Connection, patterns: tuple[str, ...], role: Role, reg: ChannelTable) -> None:
        self.conn, self.patterns, self.role, self.reg = conn, patterns, role, reg
        self.match_all = patterns == ("*",) and role.subscribe == ("*",)
        self.lut = np.zeros(0, dtype=bool)
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.count = 0
        self.skipped: dict[int, int] = {}
        self.wake = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    def wants(self, name: str) -> bool:
        """True if this subscriber may and wants to see channel ``name``."""
        return self.role.may_subscribe(name) and any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def _matches(self, gid: np.ndarray) -> np.ndarray:
        top = int(gid.max()) + 1
        if top > self.lut.shape[0]:
            old = self.lut.shape[0]
            grown = np.zeros(len(self.reg.names), dtype=bool)
            grown[:old] = self.lut
            for g in range(old, grown.shape[0]):
                name = self.reg.names[g]
                grown[g] = self.role.may_subscribe(name) and any(
                    fnmatch.fnmatchcase(name, p) for p in self.patterns)
            self.lut = grown
        matched: np.ndarray = self.lut[gid]
        return matched

    def offer(self, gid: np.ndarray, time: np.ndarray, value: np.ndarray, seq: np.ndarray) -> None:
        if not self.match_all:
            keep = self._matches(gid)
            if not keep.any():
                return
            if not keep.all():
                gid, time, value, seq = gid[keep], time[keep], value[keep], seq[keep]
        self.chunks.append((gid, time, value, seq))
        self.count += len(gid)
        if self.count > _SUB_BUFFER:
            self._collapse()
        self.wake.set()

    def _collapse(self) -> None:
        gid, time, value, seq = (np.concatenate(c) for c in zip(*self.chunks, strict=True))
        uniq, first_rev, counts = np.unique(gid[::-1], return_index=True, return_counts=True)
        last = np.sort(len(gid) - 1 - first_rev)
        for g, c in zip(uniq.tolist(), counts.tolist(), strict=True):
            if c > 1:
                self.skipped[g] = self.skipped.get(g, 0) + c - 1
        self.chunks = [(gid[last], time[last], value[last], seq[last])]
        self.count = len(last)

    async def _run(self) -> None:
        conn, names = self.conn, self.reg.names
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await self.wake.wait()
                self.wake.clear()
                chunks, self.chunks, self.count = self.chunks, [], 0
                skipped, self.skipped = self.skipped, {}
                if skipped:
                    conn.proto.send_gap({names[g]: n for g, n in skipped.items()})
                if chunks:
                    gid, time, value, seq = (np.concatenate(c) for c in zip(*chunks, strict=True))
                    conn.proto.send_samples([names[g] for g in gid.tolist()], time.tolist(),
                                            value.tolist(), seq.tolist())
                await conn.flush()


class _Connection:
    def __init__(self, bridge: Bridge, ws: ServerConnection, proto: BridgeProtocol) -> None:
        self.bridge, self.ws, self.proto = bridge, ws, proto
        peer = ws.remote_address
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.source = f"{proto.role.name if proto.role else 'anonymous'}@{self.peer}"
        self.dedup = False
        self.gmap = np.zeros(0, dtype=np.int64)
        self.sub: _Subscriber | None = None
        self.ack_target = -1
        self.ack_sent = -1
        self.ack_wake = asyncio.Event()
        self.ack_task = asyncio.ensure_future(self._acks())
        self.accepted = 0
        self.recording_failed = False   # set once a commit of this connection failed: no more acks
        self._send_lock = asyncio.Lock()

    async def flush(self) -> None:
        async with self._send_lock:
            for frame in self.proto.data_to_send():
                await self.ws.send(frame)

    def committed(self, seq: int | None) -> None:
        if seq is not None and seq > self.ack_target and not self.recording_failed:
            self.ack_target = seq
            self.ack_wake.set()

    def not_recorded(self, exc: BaseException) -> None:
        """A commit with samples of this connection failed: tell the peer once, ack nothing
        more, and close with 1013 so that a client resumes from the last committed seq."""
        if self.recording_failed:
            return
        self.recording_failed = True
        code = exc.code if isinstance(exc, RecordingError) else "recording_failed"
        self.proto.send_error(code, str(exc))
        asyncio.ensure_future(self._close_after_error(code))

    async def _close_after_error(self, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.flush()
            await self.ws.close(1013, reason)

    async def _acks(self) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await self.ack_wake.wait()
                self.ack_wake.clear()
                if self.ack_target > self.ack_sent:
                    self.ack_sent = self.ack_target
                    self.proto.send_ack(self.ack_sent)
                await self.flush()

    def global_ids(self, batch: Batch) -> np.ndarray:
        n = len(batch.channels)
        if n > self.gmap.shape[0]:
            reg = self.bridge.channels
            extra = np.array([reg.id(name) for name in batch.channels[self.gmap.shape[0]:n]],
                             dtype=np.int64)
            self.gmap = np.concatenate([self.gmap, extra])
        gid: np.ndarray = self.gmap[batch.index]
        return gid


class Bridge:
    """The WebSocket bridge, in-process (``twin3d serve`` wraps it).

    Args:
        config: tokens, limits, origins; default: an open bridge.
        record: SQLite recording to append every accepted sample to (``None``: no recording,
            and an ack then means "accepted", not "durable").
        synchronous: SQLite ``synchronous`` level of the recording (``FULL`` or ``NORMAL``).
    """

    def __init__(self, config: BridgeConfig | None = None, record: PathLike | None = None,
                 *, synchronous: str = "FULL") -> None:
        self.config = config or BridgeConfig()
        self._record = record
        self._synchronous = synchronous
        self.recorder: Recorder | None = None
        #: every channel seen (name <-> id), shared with the recording
        self.channels = ChannelTable()
        self._server: Server | None = None
        self._subs: list[_Subscriber] = []
        self._conns: set[_Connection] = set()
        self._header_roles: dict[ServerConnection, Role] = {}
        self._mem_seq: dict[str, int] = {}
        self._offered_seq: dict[str, int] = {}   # per de-duplicated source: highest seq fanned out
        #: channel metadata announced by publishers (``meta`` messages), kept in the recording
        self.meta: dict[str, dict[str, Any]] = {}
        self._last = np.zeros(0, dtype=[("time", "f8"), ("value", "f8"), ("seq", "i8"), ("seen", "?")])
        self._adapters: list[asyncio.Task[None]] = []
        self._tls = False
        self.port = 0
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS)."""
        return f"{'wss' if self._tls else 'ws'}://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, certfile: PathLike | None = None,
                    keyfile: PathLike | None = None, adapters: bool = True) -> None:
        """Open the recording, listen, and start the adapters of ``config.adapters``.

        Raises:
            BridgeError: the port is taken, or the certificate cannot be loaded.
            RecordingError: the recording cannot be opened.
        """
        if self._record is not None:
            self.recorder = Recorder(self._record, synchronous=self._synchronous)
            self.channels = ChannelTable(self.recorder.channels)
            self.meta = dict(self.recorder.meta)
        ssl_ctx = None
        if certfile is not None:
            ssl_ctx = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
            try:
                ssl_ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
            except (OSError, ssl_module.SSLError) as exc:
                raise BridgeError(f"cannot load TLS certificate {certfile} / key {keyfile}: {exc}") from None
            self._tls = True
        lim = self.config.limits
        try:
            self._server = await ws_serve(
                self._handle, host, port, ssl=ssl_ctx, max_size=lim.max_frame_bytes,
                compression="deflate" if self.config.compression else None,
                process_request=self._check_request, max_queue=64, close_timeout=2,
                server_header=f"twin3d/{__version__}")
        except OSError as exc:
            if self.recorder:
                self.recorder.close()
            raise BridgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                              "pick another --port") from None
        sock = next(iter(self._server.sockets))
        self.host, self.port = host, sock.getsockname()[1]
        if adapters and self.config.adapters:
            try:
                await self._start_adapters()
            except BaseException:
                await self.stop()
                raise

    async def _start_adapters(self) -> None:
        try:
            from twin3d.bridge.adapters import start_adapters
        except ImportError as exc:
            raise BridgeError(f"bridge.toml has {sorted(self.config.adapters)} tables but the "
                              f"adapters cannot be loaded ({exc}); pip install 'twin3d[adapters]'") from None
        self._adapters = start_adapters(self.config.adapters, self.ingest, base_dir=self.config.base_dir)

    async def stop(self) -> None:
        """Stop adapters, close every connection (1001), commit the queue, close the recording."""
        adapters, self._adapters = self._adapters, []
        await cancel_and_wait(adapters)  # they flush what they hold into ingest
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            await asyncio.get_running_loop().run_in_executor(None, rec.close)

    async def ingest(self, samples: Sequence[Sample], source: str, *, wait_commit: bool = False) -> int:
        """Accept samples from inside the process (adapters), like a WebSocket publisher.

        Same validation, recording and fan-out; waits while the recorder is full.

        Args:
            samples: the samples; the whole call is rejected if one is invalid.
            source: recorded as the samples' source, e.g. ``"mqtt:broker/topic"``.
            wait_commit: also wait until they are committed to the recording.

        Returns:
            the number of samples accepted.

        Raises:
            ProtocolViolation: a bad channel name or a non-finite value (nothing is accepted).
        """
        if not samples:
            return 0
        max_len = self.config.limits.max_channel_length
        for s in samples:  # the protocol's rules: an in-process source is a publisher too
            check_time(s.channel, s.time)
            check_value(check_channel(s.channel, max_len), s.value)
        reg = self.channels
        gid = np.fromiter((reg.id(s.channel) for s in samples), dtype=np.int64, count=len(samples))
        time = np.fromiter((s.time for s in samples), dtype=np.float64, count=len(samples))
        value = np.fromiter((s.value for s in samples), dtype=np.float64, count=len(samples))
        seq = np.fromiter((-1 if s.seq is None else s.seq for s in samples), dtype=np.int64,
                          count=len(samples))
        fut = await self._accept(gid, time, value, seq, source, dedup=False)
        if wait_commit and fut is not None:
            await fut
        return len(samples)

    async def _accept(self, gid: np.ndarray, time: np.ndarray, value: np.ndarray, seq: np.ndarray,
                      source: str, dedup: bool) -> asyncio.Future[int] | None:
        fresh = (gid, time, value, seq)
        if dedup:  # a resend after a reconnect: subscribers saw these already
            top = self._offered_seq.get(source, -1)
            keep = (seq < 0) | (seq > top)
            if not keep.all():
                fresh = (gid[keep], time[keep], value[keep], seq[keep])
            if len(seq):
                self._offered_seq[source] = max(top, int(seq.max()))
        if len(fresh[0]):
            for sub in self._subs:
                sub.offer(*fresh)
            self._remember(*fresh)
        if self.recorder is None:
            return None
        return await self.recorder.submit(gid, time, value, seq, source, dedup=dedup,
                                          channels=self.channels.take_new())

    def _remember(self, gid: np.ndarray, time: np.ndarray, value: np.ndarray, seq: np.ndarray) -> None:
        """Keep the latest sample per channel, for subscribers that join later."""
        size = len(self.channels.names)
        if size > self._last.shape[0]:
            grown = np.zeros(size, dtype=self._last.dtype)
            grown[: self._last.shape[0]] = self._last
            self._last = grown
        uniq, first_rev = np.unique(gid[::-1], return_index=True)
        last = len(gid) - 1 - first_rev
        rows = self._last[uniq]
        rows["time"], rows["value"], rows["seq"], rows["seen"] = time[last], value[last], seq[last], True
        self._last[uniq] = rows

    def _snapshot(self, sub: _Subscriber) -> None:
        """Offer a new subscriber the latest value of every channel seen since start."""
        gid = np.flatnonzero(self._last["seen"])
        if len(gid):
            rows = self._last[gid]
            sub.offer(gid.astype(np.int64), rows["time"], rows["value"], rows["seq"])

    # --- connections ---------------------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        origins = self.config.origins
        origin = request.headers.get("Origin")
        if origins is not None and origin is not None and not any(
                fnmatch.fnmatchcase(origin, o) for o in origins):
            log.warning("refused %s: origin %r not allowed", connection.remote_address, origin)
            return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin!r} is not allowed "
                                      "(add it to [server] origins in bridge.toml)\n")
        auth = request.headers.get("Authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            role = self.config.role_for(token.strip()) if scheme.lower() == "bearer" else None
            if role is None:
                log.warning("refused %s: bad Authorization header", connection.remote_address)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "unknown token in "
                                          "'Authorization: Bearer ...'\n")
            self._header_roles[connection] = role
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        role = self._header_roles.pop(ws, None)
        proto = BridgeProtocol(self.config, role)
        conn = _Connection(self, ws, proto)
        self._conns.add(conn)
        log.info("connected %s (%s)", conn.peer, proto.role.name if proto.role else "unauthenticated")
        reason = "closed"
        try:
            if proto.role is None:
                try:
                    first = await asyncio.wait_for(ws.recv(), self.config.auth_timeout)
                except TimeoutError:
                    proto.fail("auth_timeout", f"no auth message within {self.config.auth_timeout:g} s")
                    await conn.flush()
                    await ws.close(1008, "auth_timeout")
                    reason = "auth timeout"
                    return
                if not await self._receive(conn, first):
                    reason = "policy violation"
                    return
            async for msg in ws:
                if not await self._receive(conn, msg):
                    reason = "policy violation"
                    return
        except ConnectionClosed:
            pass
        finally:
            conn.ack_task.cancel()
            if conn.sub is not None:
                conn.sub.task.cancel()
                self._subs.remove(conn.sub)
            self._conns.discard(conn)
            log.info("disconnected %s (%s): %d samples accepted", conn.peer, reason, conn.accepted)

    async def _receive(self, conn: _Connection, msg: str | bytes) -> bool:
        proto = conn.proto
        if isinstance(msg, str):
            proto.receive_text(msg, clock.time())
        else:
            proto.receive_bytes(msg, clock.time())
        for ev in proto.events_received():
            if isinstance(ev, Publish):
                await self._publish(conn, ev.batch)
            elif isinstance(ev, Subscribe):
                if conn.sub is not None:
                    conn.sub.task.cancel()
                    self._subs.remove(conn.sub)
                assert proto.role is not None
                conn.sub = _Subscriber(conn, ev.patterns, proto.role, self.channels)
                self._subs.append(conn.sub)
                meta = {k: v for k, v in self.meta.items() if conn.sub.wants(k)}
                if meta:
                    proto.send_meta(meta)
                self._snapshot(conn.sub)
            elif isinstance(ev, Meta):
                self.meta.update(ev.channels)
                if self.recorder is not None:
                    self.recorder.submit_meta(ev.channels)
                for sub in self._subs:
                    wanted = {k: v for k, v in ev.channels.items() if sub.wants(k)}
                    if wanted:
                        sub.conn.proto.send_meta(wanted)
                        sub.wake.set()
            elif isinstance(ev, Hello):
                if ev.client is not None:
                    assert proto.role is not None
                    conn.source = (f"{proto.role.name}/{ev.client}" if self.config.auth_required
                                   else ev.client)
                    conn.dedup = True
                resume = (self.recorder.last_seq(conn.source) if self.recorder is not None
                          else self._mem_seq.get(conn.source)) if conn.dedup else None
                proto.send_hello(f"twin3d {__version__}", resume)
            elif isinstance(ev, Authenticated):
                conn.source = f"{ev.role.name}@{conn.peer}"
            elif isinstance(ev, BadMessage):
                log.debug("%s: %s: %s", conn.peer, ev.code, ev.message)
            elif isinstance(ev, Fatal):
                log.warning("closing %s: %s: %s", conn.peer, ev.code, ev.message)
        await conn.flush()
        if proto.closed:
            await conn.ws.close(1008, "policy violation")
            return False
        return True

    async def _publish(self, conn: _Connection, batch: Batch) -> None:
        gid = conn.global_ids(batch)
        last = batch.last_seq
        fut = await self._accept(gid, batch.time, batch.value, batch.seq, conn.source, conn.dedup)
        conn.accepted += len(batch)
        if fut is None:
            if last is not None and conn.dedup:
                self._mem_seq[conn.source] = max(last, self._mem_seq.get(conn.source, -1))
            conn.committed(last)
            return

        def done(f: asyncio.Future[int], last: int | None = last) -> None:
            exc = f.exception()
            if exc is None:
                conn.committed(last)
            else:
                conn.not_recorded(exc)
        fut.add_done_callback(done)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(config: BridgeConfig, host: str, port: int, *, record: PathLike | None = None,
                certfile: PathLike | None = None, keyfile: PathLike | None = None,
                synchronous: str = "FULL") -> None:
    """Run the bridge until SIGINT or SIGTERM, then shut down cleanly (``twin3d serve``)."""
    bridge = Bridge(config, record, synchronous=synchronous)
    await bridge.start(host, port, certfile=certfile, keyfile=keyfile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parts = [f"recording to {record} (synchronous={synchronous})" if record else "not recording",
             f"{len(config.tokens)} token(s)" if config.tokens else "no tokens: open to anyone who connects",
             f"origins {list(config.origins)}" if config.origins is not None else "any origin"]
    log.info("twin3d bridge listening on %s: %s", bridge.url, "; ".join(parts))
    if not _is_loopback(host):
        if not config.tokens:
            log.warning("listening on %s without tokens: anyone on the network may publish; "
                        "add [[token]] tables to bridge.toml", host)
        if certfile is None:
            log.warning("listening on %s without TLS: tokens and values travel in clear; "
                        "use --cert/--key", host)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: closing connections and committing the recording")
        await bridge.stop()
        if bridge.recorder is None and record:
            log.info("recording %s closed", record)
