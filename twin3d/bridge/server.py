"""The bridge server: a websockets.asyncio adapter around :class:`~twin3d.bridge.protocol.BridgeProtocol`.

What it promises (see DESIGN.md; ``broadcast`` has no backpressure):

* **live subscribers** get fresh values or a ``gap``: each has its own bounded buffer and
  sender task (:mod:`twin3d.bridge.fanout`); no value waits longer than ``[limits]
  max_staleness`` without the subscriber being told; a subscriber that stops reading for
  ``send_timeout`` seconds is dropped. They are served before the recorder sees the samples, so
  a slow or failing recording never holds up the live view; a resend after a reconnect is not
  offered twice;
* **the recorder** gets a bounded queue that pushes back: a publisher's read loop waits for
  room (each publisher may hold at most a quarter of it, so one heavy publisher cannot starve
  the others), TCP slows the publisher down, and nothing is skipped; acks are sent after the
  commit; ``pong`` says how long this connection's oldest unacked sample has waited
  (``ack_lag``);
* **a commit that fails** (disk full) is never acked: the publisher gets one ``disk_full`` (or
  ``recording_failed``) error and the connection is closed with 1013 (try again later), so its
  acks cannot cover what was lost; a reconnecting client resumes from ``resume.seq``, the last
  committed seq, and resends the rest;
* **channels** are registered only when a sample carries them, up to ``[limits]
  max_total_channels`` for the whole bridge.

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
import socket
import ssl as ssl_module
import time as clock
import weakref
from collections import deque
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
from twin3d.bridge.alarms import Alarm, AlarmBook
from twin3d.bridge.config import BridgeConfig, Role
from twin3d.bridge.fanout import Chunk, Matcher, Subscriber
from twin3d.bridge.protocol import (
    AckAlarm,
    AlarmReport,
    Authenticated,
    BadMessage,
    Batch,
    BridgeProtocol,
    Fatal,
    Hello,
    Meta,
    Ping,
    Publish,
    Subscribe,
    check_channel,
    check_time,
    check_value,
)
from twin3d.bridge.recorder import Recorder
from twin3d.errors import BridgeError, ProtocolViolation, RecordingError
from twin3d.model import Sample

__all__ = ["Bridge", "ChannelTable", "serve"]

log = logging.getLogger("twin3d.bridge")
_TURN = 0.002              # s a connection may keep the event loop before the others' turn
_SEND_BUFFER = 16 * 1024   # kernel send buffer per connection (Linux doubles it): bounds what is in flight


class ChannelTable:
    """The bridge's channel table: name <-> id (shared with the recording).

    Args:
        known: channels of the recording (name -> id).
        limit: the most channels the bridge holds (``[limits] max_total_channels``).
    """

    def __init__(self, known: dict[str, int] | None = None, limit: int = 1 << 62) -> None:
        self.ids: dict[str, int] = dict(known or {})
        size = max(self.ids.values(), default=-1) + 1
        self.names: list[str] = [""] * size
        for name, gid in self.ids.items():
            self.names[gid] = name
        self.limit = limit
        self.new: list[tuple[int, str]] = []

    def id(self, name: str) -> int:
        """The id of ``name``, registering it if new.

        Raises:
            ProtocolViolation: ``too_many_channels`` when the table is full.
        """
        gid = self.ids.get(name)
        if gid is None:
            gid = len(self.names)
            if gid >= self.limit:
                raise ProtocolViolation("too_many_channels", f"the bridge holds {gid} channels "
                                        f"(limit [limits] max_total_channels); {name!r} is refused")
            self.names.append(name)
            self.ids[name] = gid
            self.new.append((gid, name))
        return gid

    def take_new(self) -> list[tuple[int, str]]:
        new, self.new = self.new, []
        return new


class _Connection:
    def __init__(self, bridge: Bridge, ws: ServerConnection, proto: BridgeProtocol) -> None:
        self.bridge, self.ws, self.proto = bridge, ws, proto
        peer = ws.remote_address
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.host = str(peer[0]) if peer else "?"
        # without a hello, the recording names the source by role and host (not port: every
        # reconnect would add a source)
        self.source = f"{proto.role.name if proto.role else 'anonymous'}@{self.host}"
        self.dedup = False
        self.gmap = np.zeros(0, dtype=np.int64)   # local channel id -> bridge id (-1: not yet)
        self.sub: Subscriber | None = None
        self.sub_task: asyncio.Task[None] | None = None
        self.ack_target = -1
        self.ack_sent = -1
        self.ack_wake = asyncio.Event()
        self.ack_task = asyncio.ensure_future(self._acks())
        self.unacked: deque[tuple[int, float]] = deque()   # (last seq, accepted at) per batch
        self.accepted = 0
        self.recording_failed = False   # set once a commit of this connection failed: no more acks
        self.closing: asyncio.Future[None] | None = None
        self._send_lock = asyncio.Lock()
        sock = ws.transport.get_extra_info("socket") if ws.transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)

    async def flush(self) -> None:
        """Send what the protocol queued; a peer that takes none of it for ``send_timeout``
        seconds is not reading: raises ``TimeoutError``."""
        async with self._send_lock:
            for frame in self.proto.data_to_send():
                await asyncio.wait_for(self.ws.send(frame), self.bridge.config.limits.send_timeout)

    def ack_lag(self, now: float) -> float:
        """Seconds the oldest accepted, not yet acknowledged batch has waited."""
        return now - self.unacked[0][1] if self.unacked else 0.0

    def committed(self, seq: int | None) -> None:
        if seq is None or self.recording_failed:
            return
        while self.unacked and self.unacked[0][0] <= seq:
            self.unacked.popleft()
        if seq > self.ack_target:
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
        self.closing = asyncio.ensure_future(self._close_after_error(code))

    async def _close_after_error(self, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await self.flush()
        await self.ws.close(1013, reason)

    async def _acks(self) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError, TimeoutError):
            while True:
                await self.ack_wake.wait()
                self.ack_wake.clear()
                if self.ack_target > self.ack_sent:
                    self.ack_sent = self.ack_target
                    self.proto.send_ack(self.ack_sent)
                await self.flush()

    def global_ids(self, batch: Batch) -> np.ndarray:
        """Bridge ids of the batch's channels; only channels that carry a sample are registered."""
        n = len(batch.channels)
        if n > self.gmap.shape[0]:
            grown = np.full(n, -1, dtype=np.int64)
            grown[: self.gmap.shape[0]] = self.gmap
            self.gmap = grown
        gid: np.ndarray = self.gmap[batch.index]
        if (gid < 0).any():
            table = self.bridge.channels
            for local in np.unique(batch.index[gid < 0]).tolist():
                self.gmap[local] = table.id(batch.channels[local])
            gid = self.gmap[batch.index]
        return gid

    async def serve_subscriber(self, sub: Subscriber) -> None:
        """The sender task of this connection's subscription; drops a peer that stops reading."""
        try:
            await sub.run()
        except TimeoutError:
            log.warning("dropping %s: it took less than %d KiB in %g s (send_timeout): it does "
                        "not read, or too slowly to follow", self.peer, 3 * _SEND_BUFFER // 1024,
                        self.bridge.config.limits.send_timeout)
            await self.ws.close(1008, "not reading")
        except (ConnectionClosed, asyncio.CancelledError):
            pass


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
        self.channels = ChannelTable(limit=self.config.limits.max_total_channels)
        self._server: Server | None = None
        self._subs: list[Subscriber] = []
        self._conns: set[_Connection] = set()
        # roles proven by an Authorization header, until the handshake ends (a failed handshake
        # drops its connection object, and with it the entry)
        self._header_roles: weakref.WeakKeyDictionary[ServerConnection, Role] = weakref.WeakKeyDictionary()
        self._mem_seq: dict[str, int] = {}
        self._offered_seq: dict[str, int] = {}   # per de-duplicated source: highest seq fanned out
        #: channel metadata announced by publishers (``meta`` messages), kept in the recording
        self.meta: dict[str, dict[str, Any]] = {}
        #: alarms raised through the bridge (kept in the recording's ``alarms`` table)
        self.alarms = AlarmBook()
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
            self.channels = ChannelTable(self.recorder.channels, self.config.limits.max_total_channels)
            self.meta = dict(self.recorder.meta)
            self.alarms = AlarmBook(self.recorder.alarms)
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
                process_request=self._check_request, max_queue=4, write_limit=_SEND_BUFFER, close_timeout=2,
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
        self._adapters = start_adapters(self.config.adapters, self.ingest, base_dir=self.config.base_dir,
                                        url=self.url)

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
            chunk = Chunk(self.channels.names, *fresh, clock.monotonic())
            for sub in self._subs:
                sub.offer(chunk)
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

    def _snapshot(self, sub: Subscriber) -> None:
        """Offer a new subscriber the latest value of every channel seen since start."""
        gid = np.flatnonzero(self._last["seen"])
        if len(gid):
            rows = self._last[gid]
            sub.offer(Chunk(self.channels.names, gid.astype(np.int64), rows["time"], rows["value"],
                            rows["seq"], clock.monotonic()), fresh=False)

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
            turn_ends = clock.monotonic() + _TURN
            async for msg in ws:
                if not await self._receive(conn, msg):
                    reason = "policy violation"
                    return
                if clock.monotonic() > turn_ends:   # queued frames come without a pause: the
                    await asyncio.sleep(0)           # others' turn (fairness)
                    turn_ends = clock.monotonic() + _TURN
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            await self._unsubscribe(conn)
            await cancel_and_wait([conn.ack_task])
            self._conns.discard(conn)
            log.info("disconnected %s (%s): %d samples accepted", conn.peer, reason, conn.accepted)

    async def _unsubscribe(self, conn: _Connection) -> None:
        if conn.sub is not None:
            self._subs.remove(conn.sub)
            conn.sub = None
        if conn.sub_task is not None:
            task, conn.sub_task = conn.sub_task, None
            await cancel_and_wait([task])

    async def _subscribe(self, conn: _Connection, patterns: tuple[str, ...]) -> None:
        """Replace the connection's subscription: match the known channels (in slices), then
        meta, the snapshot, and live samples from now on."""
        await self._unsubscribe(conn)
        assert conn.proto.role is not None
        lim = self.config.limits
        sub = Subscriber(Matcher(patterns, conn.proto.role.subscribe), self.channels.names,
                         conn.proto.send_frame, conn.flush, lim.max_staleness)
        await sub.match_known()
        if conn.ws.state.name != "OPEN":
            return
        conn.sub = sub
        self._subs.append(sub)
        sub.offer_meta(self.meta)
        for alarm in self.alarms.open_alarms():
            sub.offer_alarm(alarm.to_json())
        self._snapshot(sub)
        conn.sub_task = asyncio.ensure_future(conn.serve_subscriber(sub))

    async def _receive(self, conn: _Connection, msg: str | bytes) -> bool:
        proto = conn.proto
        if isinstance(msg, str):
            proto.receive_text(msg, clock.time())
        else:
            proto.receive_bytes(msg, clock.time())
        for ev in proto.events_received():
            if isinstance(ev, Publish):
                try:
                    await self._publish(conn, ev.batch)
                except ProtocolViolation as exc:   # the bridge's channel table is full
                    proto.send_error(exc.code, exc.message)
            elif isinstance(ev, Subscribe):
                await self._subscribe(conn, ev.patterns)
            elif isinstance(ev, Meta):
                self.meta.update(ev.channels)
                if self.recorder is not None:
                    self.recorder.submit_meta(ev.channels)
                for sub in self._subs:
                    sub.offer_meta(ev.channels)
            elif isinstance(ev, Ping):
                proto.send_pong(ev.time, conn.ack_lag(clock.monotonic()))
            elif isinstance(ev, AlarmReport):
                book = self.alarms
                self._alarm_changed(
                    book.raise_alarm(ev.channel, ev.kind, ev.value, ev.limit, ev.message, ev.time)
                    if ev.active else book.clear(ev.channel, ev.kind, ev.time))
            elif isinstance(ev, AckAlarm):
                try:
                    self._alarm_changed(self.alarms.acknowledge(ev.id, ev.by, ev.time))
                except ProtocolViolation as exc:
                    proto.send_error(exc.code, exc.message)
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
                conn.source = f"{ev.role.name}@{conn.host}"
            elif isinstance(ev, BadMessage):
                log.debug("%s: %s: %s", conn.peer, ev.code, ev.message)
            elif isinstance(ev, Fatal):
                log.warning("closing %s: %s: %s", conn.peer, ev.code, ev.message)
        await conn.flush()
        if proto.closed:
            await conn.ws.close(1008, "policy violation")
            return False
        return True

    def _alarm_changed(self, alarm: Alarm | None) -> None:
        """Record an alarm's new state and tell the subscribers of its channel."""
        if alarm is None:
            return
        log.info("alarm %d %s %s: %s", alarm.id, alarm.channel, alarm.kind, alarm.state)
        if self.recorder is not None:
            self.recorder.submit_alarm(alarm)
        event = alarm.to_json()
        for sub in self._subs:
            sub.offer_alarm(event)

    async def _publish(self, conn: _Connection, batch: Batch) -> None:
        gid = conn.global_ids(batch)
        last = batch.last_seq
        if last is not None and self.recorder is not None:
            conn.unacked.append((last, clock.monotonic()))
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
        if config.origins is None:
            log.warning("listening on %s for any Origin: any web page a user opens may connect "
                        "through their browser; set [server] origins in bridge.toml", host)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: closing connections and committing the recording")
        await bridge.stop()
        if bridge.recorder is None and record:
            log.info("recording %s closed", record)
