"""Python client of the bridge: publish with acks, subscribe, reconnect and resume.

:class:`Client` is asynchronous; :class:`SyncClient` wraps it for scripts. Every published
sample gets a sequence number; samples are kept until the bridge acknowledges them (after
the commit, when it records), and after a reconnect the bridge says which seq it last
recorded for this client, so the client resends exactly the rest.

Examples:
    >>> async def main():  # doctest: +SKIP
    ...     async with Client("ws://127.0.0.1:8765", token="pub-secret") as c:
    ...         await c.publish("plate/tc1", 81.5)
    ...         await c.flush()           # returns once the bridge has it on disk
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import queue
import threading
import time as clock
import uuid
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from twin3d._tasks import cancel_and_wait
from twin3d.bridge.protocol import (
    decode,
    encode_ack_alarm,
    encode_alarm_report,
    encode_alias,
    encode_binary,
    encode_hello,
    encode_meta,
    encode_samples,
    encode_subscribe,
)
from twin3d.errors import AuthError, BridgeError
from twin3d.model import Sample

__all__ = ["Client", "Subscription", "SyncClient"]

log = logging.getLogger("twin3d.bridge.client")
_Row = tuple[str, float, float, int]  # channel, time, value, seq


class Subscription:
    """Lists of samples for some channel globs; ``await`` it to wait for the bridge's confirmation.

    Iterate with ``async for batch in sub`` (each ``batch`` is a ``list[Sample]``).
    """

    def __init__(self, client: Client, patterns: tuple[str, ...]) -> None:
        self.client, self.patterns = client, patterns
        self.queue: asyncio.Queue[list[Sample]] = asyncio.Queue()
        self._started: asyncio.Task[None] | None = None

    def matches(self, channel: str) -> bool:
        return any(fnmatch.fnmatchcase(channel, p) for p in self.patterns)

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.ensure_future(self.client._add_subscription(self))
        await asyncio.shield(self._started)

    def __await__(self) -> Generator[Any, None, Subscription]:
        async def ready() -> Subscription:
            await self._start()
            return self
        return ready().__await__()

    def __aiter__(self) -> AsyncIterator[list[Sample]]:
        return self

    async def __anext__(self) -> list[Sample]:
        await self._start()
        return await self.queue.get()

    async def aclose(self) -> None:
        """Stop receiving (the bridge keeps the other subscriptions of this client)."""
        await self.client._remove_subscription(self)


class Client:
    """Async bridge client (an async context manager).

    Args:
        url: ``ws://host:port`` or ``wss://host:port``.
        token: sent as ``Authorization: Bearer``; ``None`` for an open bridge.
        client_id: names this publisher in the recording; keep it stable to resume across
            restarts of your program (then keep numbering ``seq`` from :attr:`acked`).
        binary: publish binary batch frames (fast) instead of JSON ``samples``.
        max_batch: samples per frame.
        max_unacked: ``publish`` waits while this many samples are not yet acknowledged.
        reconnect: reconnect (with back-off) when the connection drops, resuming after the
            last acknowledged seq.
        ssl: an ``ssl.SSLContext`` for ``wss://`` with a private CA.
    """

    def __init__(self, url: str, token: str | None = None, *, client_id: str | None = None,
                 binary: bool = True, max_batch: int = 1000, max_unacked: int = 200_000,
                 reconnect: bool = True, ssl: Any = None) -> None:
        self.url, self.token = url, token
        self.client_id = client_id or f"py-{uuid.uuid4().hex[:12]}"
        self.binary, self.max_batch, self.max_unacked = binary, max_batch, max_unacked
        self.reconnect, self.ssl = reconnect, ssl
        self.seq = -1             # last seq handed out
        self.acked = -1           # last seq acknowledged by the bridge
        self.gaps = 0             # values skipped by the bridge for this (slow) subscriber
        self.resent = 0           # samples sent again after a reconnect (not acked before)
        self.errors: list[tuple[str, str]] = []
        self.meta: dict[str, dict[str, Any]] = {}   # channel metadata received as a subscriber
        self.alarms: dict[int, dict[str, Any]] = {}  # latest state of each alarm, as a subscriber
        self._alarm_seen = asyncio.Condition()
        self._ws: ClientConnection | None = None
        self._buf: list[_Row] = []
        self._unacked: deque[tuple[int, list[_Row]]] = deque()
        self._n_unacked = 0
        self._aliases: dict[str, int] = {}
        self._subs: list[Subscription] = []
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._error: BridgeError | None = None
        self._subscribed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._retry_after = 0.0   # grows while the bridge closes with 1013 (its disk is full)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, introduce this client and start the background tasks.

        Raises:
            AuthError: the token is missing or wrong.
            BridgeError: the bridge cannot be reached.
        """
        await self._open()
        self._tasks = [asyncio.ensure_future(self._reader()), asyncio.ensure_future(self._sender())]

    async def _open(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            ws = await connect(self.url, additional_headers=headers, compression=None,
                               ssl=self.ssl, max_size=None, open_timeout=10)
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise AuthError(f"{self.url} refused the token (HTTP 401); check it in bridge.toml") from None
            raise BridgeError(f"{self.url} refused the connection: HTTP {exc.response.status_code} "
                              f"{exc.response.body.decode(errors='replace').strip()}") from None
        except InvalidURI:
            raise BridgeError(f"{self.url!r} is not a ws:// or wss:// URL") from None
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            raise BridgeError(f"cannot reach the bridge at {self.url}: {exc}") from None
        await ws.send(encode_hello(self.client_id))
        while True:
            try:
                msg = decode(await asyncio.wait_for(ws.recv(), 10))
            except (ConnectionClosed, TimeoutError):
                await ws.close()
                raise BridgeError(f"{self.url} closed or did not answer during the hello") from None
            if msg.get("type") == "error":
                await ws.close()
                cls = AuthError if msg.get("code", "").startswith("auth") else BridgeError
                raise cls(f"{msg.get('code')}: {msg.get('message')}")
            if msg.get("type") == "hello":
                break
        resume = (msg.get("resume") or {}).get("seq")
        async with self._send_lock:
            self._aliases = {}
            if resume is not None:
                self._on_ack(int(resume))
                self.seq = max(self.seq, int(resume))  # a reused client_id continues numbering
            for _, rows in list(self._unacked):  # resend what the bridge has not recorded, in order
                await self._send_rows(ws, rows)
                self.resent += len(rows)
            self._ws = ws
        if self._subs:
            self._subscribed.clear()
            await ws.send(encode_subscribe(self._patterns()))

    @property
    def connected(self) -> bool:
        """True while the connection to the bridge is open (False while it reconnects)."""
        from websockets.protocol import State

        return self._ws is not None and self._ws.state is State.OPEN

    def _patterns(self) -> list[str]:
        return sorted({p for s in self._subs for p in s.patterns})

    async def close(self) -> None:
        """Send what is buffered, close the connection and stop the background tasks."""
        self._closing = True
        if self._ws is not None and self._buf:
            with contextlib.suppress(ConnectionClosed):
                await self._drain_buffer()
        await cancel_and_wait(self._tasks)
        if self._ws is not None:
            await self._ws.close()

    async def _reconnect(self) -> None:
        delay = 0.05
        while not self._closing:
            try:
                await self._open()
                log.info("reconnected to %s, resuming after seq %d", self.url, self.acked)
                return
            except AuthError:
                raise
            except BridgeError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # --- publishing ----------------------------------------------------------------------

    async def publish(self, channel: str, value: float, time: float | None = None) -> int:
        """Queue one sample; return its seq. Waits while too many samples are unacknowledged."""
        if self._n_unacked + len(self._buf) >= self.max_unacked:
            await self._wait_room()
        self.seq += 1
        self._buf.append((channel, clock.time() if time is None else time, float(value), self.seq))
        self._wake.set()
        return self.seq

    async def publish_many(self, samples: Iterable[Sample | tuple[str, float, float]]) -> int:
        """Queue many samples (``Sample`` or ``(channel, value, time)``); return the last seq."""
        now = clock.time()
        buf = self._buf
        for s in samples:
            if self._n_unacked + len(buf) >= self.max_unacked:
                await self._wait_room()
                buf = self._buf
            ch, v, t = (s.channel, s.value, s.time) if isinstance(s, Sample) else s
            self.seq += 1
            buf.append((ch, now if t is None else t, float(v), self.seq))
            if len(buf) >= self.max_batch:
                self._wake.set()
        self._wake.set()
        return self.seq

    async def describe(self, channel: str, **meta: str | float | bool) -> None:
        """Announce channel metadata, e.g. ``await c.describe("plate/tc1", unit="degC")``."""
        await self._send_control(encode_meta({channel: meta}))

    async def raise_alarm(self, channel: str, kind: str, active: bool = True, *, value: float | None = None,
                          limit: float | None = None, message: str = "") -> None:
        """Raise (``active=True``) or clear an alarm condition (the token needs ``alarms = ["raise"]``)."""
        await self._send_control(encode_alarm_report(channel, kind, active, value, limit, message))

    async def ack_alarm(self, alarm_id: int) -> None:
        """Acknowledge alarm ``alarm_id`` (the token needs ``alarms = ["acknowledge"]``)."""
        await self._send_control(encode_ack_alarm(alarm_id))

    async def wait_alarm(self, predicate: Any, timeout: float | None = None) -> dict[str, Any]:
        """Wait until an alarm event satisfying ``predicate(alarm_dict)`` has arrived; return it."""
        async def wait() -> dict[str, Any]:
            async with self._alarm_seen:
                await self._alarm_seen.wait_for(lambda: any(predicate(a) for a in self.alarms.values())
                                                or self._error is not None)
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            return next(a for a in self.alarms.values() if predicate(a))
        return await asyncio.wait_for(wait(), timeout)

    async def _send_control(self, frame: str) -> None:
        if self._ws is None:
            raise BridgeError("not connected; use 'async with Client(...)' or await connect()")
        await self._ws.send(frame)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every published sample is acknowledged (recorded, when the bridge records).

        Raises:
            BridgeError: the bridge rejected a message since the last flush (its code and
                message). After ``disk_full`` or ``recording_failed`` the samples stay buffered
                and are resent until the bridge records them: flush again to wait for that.
            TimeoutError: not acknowledged within ``timeout`` seconds.
        """
        target = self.seq
        self._wake.set()

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.acked >= target or self._error is not None)

        await asyncio.wait_for(wait(), timeout)
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    async def _wait_room(self) -> None:
        self._wake.set()
        async with self._changed:
            await self._changed.wait_for(lambda: self._n_unacked + len(self._buf) < self.max_unacked)

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._buf and self._ws is not None:
                try:
                    await self._drain_buffer()
                except ConnectionClosed:
                    pass  # the reader reconnects; the rows are in _unacked and get resent

    async def _drain_buffer(self) -> None:
        async with self._send_lock:
            while self._buf:
                rows, self._buf = self._buf[: self.max_batch], self._buf[self.max_batch:]
                self._unacked.append((rows[-1][3], rows))
                self._n_unacked += len(rows)
                assert self._ws is not None
                await self._send_rows(self._ws, rows)

    async def _send_rows(self, ws: ClientConnection, rows: list[_Row]) -> None:
        if not self.binary:
            await ws.send(encode_samples((ch, v, t, s) for ch, t, v, s in rows))
            return
        new: dict[str, int] = {}
        for ch, _, _, _ in rows:
            if ch not in self._aliases and ch not in new:
                new[ch] = len(self._aliases) + len(new)
        if new:
            await ws.send(encode_alias(new))
            self._aliases.update(new)
        aliases = self._aliases
        alias = np.fromiter((aliases[r[0]] for r in rows), dtype=np.uint32, count=len(rows))
        time = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
        value = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
        await ws.send(encode_binary(alias, time, value, rows[-1][3]))

    def _on_ack(self, seq: int) -> None:
        if seq > self.acked:
            self.acked = seq
        while self._unacked and self._unacked[0][0] <= self.acked:
            _, rows = self._unacked.popleft()
            self._n_unacked -= len(rows)

    # --- receiving -----------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            ws = self._ws
            assert ws is not None
            try:
                async for raw in ws:
                    if isinstance(raw, str):
                        await self._dispatch(decode(raw))
            except ConnectionClosed:
                pass
            if self._closing or ws.close_code == 1008 or not self.reconnect:
                if ws.close_code == 1008 and self._error is None:
                    self._error = AuthError(f"the bridge closed the connection: {ws.close_reason}")
                async with self._changed:
                    self._changed.notify_all()
                return
            if ws.close_code == 1013:  # try again later: it could not record; resend after a pause
                self._retry_after = min(max(2 * self._retry_after, 0.5), 5.0)
                log.warning("%s could not record (%s); resending in %.1f s", self.url,
                            ws.close_reason, self._retry_after)
                await asyncio.sleep(self._retry_after)
            else:
                log.warning("connection to %s lost (%s); reconnecting", self.url, ws.close_code)
            try:
                await self._reconnect()
            except Exception as exc:  # wrong token now, or a bug: never leave flush() hanging
                self._error = exc if isinstance(exc, BridgeError) else BridgeError(
                    f"reconnecting to {self.url} failed: {exc!r}")
                async with self._changed:
                    self._changed.notify_all()
                return
            self._wake.set()

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "ack":
            self._on_ack(int(msg["seq"]))
            self._retry_after = 0.0
            async with self._changed:
                self._changed.notify_all()
        elif kind in ("sample", "samples"):
            items = msg["samples"] if kind == "samples" else [msg]
            batch = [Sample(d["channel"], d["value"], d["time"], d.get("seq")) for d in items]
            for sub in self._subs:
                mine = [s for s in batch if sub.matches(s.channel)]
                if mine:
                    sub.queue.put_nowait(mine)
        elif kind == "meta":
            self.meta.update(msg.get("channels") or {})
        elif kind == "alarm":
            self.alarms[int(msg["id"])] = msg
            async with self._alarm_seen:
                self._alarm_seen.notify_all()
        elif kind == "gap":
            self.gaps += int(msg.get("skipped", 0))
        elif kind == "subscribed":
            self._subscribed.set()
        elif kind == "error":
            code, text = str(msg.get("code")), str(msg.get("message"))
            self.errors.append((code, text))
            log.warning("bridge error %s: %s", code, text)
            self._error = (AuthError if code.startswith("auth") or code == "forbidden"
                           else BridgeError)(f"{code}: {text}")
            self._subscribed.set()
            async with self._changed:
                self._changed.notify_all()
            async with self._alarm_seen:
                self._alarm_seen.notify_all()

    def subscribe(self, patterns: Sequence[str]) -> Subscription:
        """Subscribe to channel globs, e.g. ``["plate/*"]``.

        ``sub = await client.subscribe([...])`` waits until the bridge confirms; then
        ``async for batch in sub`` yields ``list[Sample]``.
        """
        if isinstance(patterns, str):
            patterns = [patterns]
        return Subscription(self, tuple(patterns))

    async def _add_subscription(self, sub: Subscription) -> None:
        self._subs.append(sub)
        await self._resubscribe()

    async def _remove_subscription(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            if self._subs:
                await self._resubscribe()

    async def _resubscribe(self) -> None:
        if self._ws is None:
            raise BridgeError("not connected; use 'async with Client(...)' or await connect()")
        self._subscribed.clear()
        await self._ws.send(encode_subscribe(self._patterns()))
        await self._subscribed.wait()
        if self._error is not None:
            err, self._error = self._error, None
            raise err


class SyncClient:
    """Blocking wrapper of :class:`Client` for scripts (runs the client on a background thread).

    Examples:
        >>> with SyncClient("ws://127.0.0.1:8765") as c:  # doctest: +SKIP
        ...     c.publish("pump/flow", 3.2)
        ...     c.flush()
    """

    def __init__(self, url: str, token: str | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="twin3d-client", daemon=True)
        self._thread.start()

        async def make() -> Client:
            return Client(url, token, **kwargs)

        self._pumps: list[asyncio.Task[None]] = []
        self._client = self._call(make())
        try:
            self._call(self._client.connect())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def acked(self) -> int:
        """Last acknowledged seq."""
        return int(self._client.acked)

    def publish(self, channel: str, value: float, time: float | None = None) -> int:
        """Queue one sample; return its seq."""
        return int(self._call(self._client.publish(channel, value, time)))

    def publish_many(self, samples: Iterable[Sample | tuple[str, float, float]]) -> int:
        """Queue many samples; return the last seq."""
        return int(self._call(self._client.publish_many(list(samples))))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything published is acknowledged."""
        self._call(self._client.flush(timeout))

    def subscribe(self, patterns: Sequence[str], timeout: float | None = None) -> Iterator[list[Sample]]:
        """Subscribe and iterate lists of samples; stops after ``timeout`` s without data."""
        out: queue.Queue[list[Sample]] = queue.Queue()

        async def start() -> Subscription:
            sub: Subscription = await self._client.subscribe(patterns)

            async def pump() -> None:
                async for batch in sub:
                    out.put(batch)

            self._pumps.append(asyncio.ensure_future(pump()))
            return sub

        self._call(start())

        def gen() -> Iterator[list[Sample]]:
            while True:
                try:
                    yield out.get(timeout=timeout)
                except queue.Empty:
                    return

        return gen()

    def close(self) -> None:
        """Flush the buffer, close the connection and stop the background thread."""
        async def shutdown() -> None:
            await cancel_and_wait(self._pumps)
            await self._client.close()

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                self._call(shutdown(), timeout=10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()
