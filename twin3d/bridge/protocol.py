"""The bridge wire protocol, sans-I/O: frames in, events and frames out.

:class:`BridgeProtocol` is the server side of one connection. Feed it what the socket
received (:meth:`~BridgeProtocol.receive_text`, :meth:`~BridgeProtocol.receive_bytes`, with
the current time), then send :meth:`~BridgeProtocol.data_to_send` and act on
:meth:`~BridgeProtocol.events_received`. It never awaits, never reads a clock and never raises
on remote input: bad input becomes a :class:`BadMessage` (connection stays open) or a
:class:`Fatal` (close with 1008) event plus an ``error`` frame. The shapes are written down in
``streaming/PROTOCOL.md``.

Examples:
    >>> p = BridgeProtocol()
    >>> p.receive_text('{"type":"sample","channel":"pump/temp","value":71.5,"time":1.0}', now=2.0)
    >>> [e.batch.samples() for e in p.events_received()]
    [[Sample(channel='pump/temp', value=71.5, time=1.0, seq=None, source=None)]]
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from twin3d.bridge.alarms import ALARM_KINDS
from twin3d.bridge.config import BridgeConfig, Role
from twin3d.errors import ProtocolViolation
from twin3d.model import Sample

__all__ = [
    "BINARY_DTYPE",
    "PROTOCOL_VERSION",
    "AckAlarm",
    "AlarmReport",
    "Authenticated",
    "BadMessage",
    "Batch",
    "BridgeProtocol",
    "Event",
    "Fatal",
    "Hello",
    "Meta",
    "Ping",
    "Publish",
    "Subscribe",
    "check_channel",
    "check_time",
    "check_value",
    "decode",
    "encode_ack_alarm",
    "encode_alarm",
    "encode_alarm_report",
    "encode_alias",
    "encode_binary",
    "encode_gap",
    "encode_hello",
    "encode_meta",
    "encode_sample",
    "encode_samples",
    "encode_subscribe",
]

PROTOCOL_VERSION = 1
#: Binary batch frame: 16-byte header ``<2sBBIq`` (magic b"T3", version, flags, count, seq)
#: followed by ``count`` packed little-endian records of this dtype (20 bytes each).
BINARY_DTYPE = np.dtype([("alias", "<u4"), ("time", "<f8"), ("value", "<f8")])
_HEADER = struct.Struct("<2sBBIq")
_MAGIC = b"T3"
_MAX_ALIAS = 1 << 16
_GLOB_CHARS = frozenset("*?[]")
_NUMBER = (int, float)
_FLOATS = frozenset(_NUMBER)
_INTS = frozenset([int])


@dataclass(frozen=True, eq=False)
class Batch:
    """Samples accepted from one message, as columns.

    Args:
        channels: the connection's channel table (append-only); ``index`` points into it.
        index: (n,) int64, channel of each sample.
        time: (n,) float64, Unix seconds.
        value: (n,) float64, finite.
        seq: (n,) int64, the publisher's sequence number, -1 where none was sent.
    """

    channels: Sequence[str]
    index: np.ndarray
    time: np.ndarray
    value: np.ndarray
    seq: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def last_seq(self) -> int | None:
        """The highest seq in the batch, or ``None``."""
        if not len(self):
            return None
        top = int(self.seq.max())
        return top if top >= 0 else None

    def samples(self, source: str | None = None) -> list[Sample]:
        """The batch as :class:`~twin3d.model.Sample` objects (for tests and small batches)."""
        ch = self.channels
        return [Sample(ch[i], v, t, s if s >= 0 else None, source)
                for i, t, v, s in zip(self.index.tolist(), self.time.tolist(),
                                      self.value.tolist(), self.seq.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The client proved a token (or needed none)."""

    role: Role


@dataclass(frozen=True, slots=True)
class Hello:
    """The client introduced itself; answer with :meth:`BridgeProtocol.send_hello`."""

    client: str | None
    version: int


@dataclass(frozen=True, slots=True)
class Publish:
    """A valid, authorised batch of samples to record and fan out."""

    batch: Batch


@dataclass(frozen=True, slots=True)
class Subscribe:
    """The client wants the channels matching these globs (already checked against its role)."""

    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Meta:
    """Channel metadata announced by a publisher: ``{channel: {"unit": "degC", ...}}``."""

    channels: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A rejected message; an ``error`` frame is queued, the connection stays open."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Fatal:
    """An auth or policy violation; an ``error`` frame is queued; close the connection (1008)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class AlarmReport:
    """A raiser says an alarm condition holds (``active``) or has cleared."""

    channel: str
    kind: str
    active: bool
    value: float | None
    limit: float | None
    message: str
    time: float


@dataclass(frozen=True, slots=True)
class AckAlarm:
    """An operator acknowledges alarm ``id``; ``by`` is the token's name."""

    id: int
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class Ping:
    """An application ping; answer with :meth:`BridgeProtocol.send_pong`."""

    time: float


Event = (Authenticated | Hello | Publish | Subscribe | Meta | Ping | AlarmReport | AckAlarm
         | BadMessage | Fatal)


try:  # orjson parses ~3x faster; the stdlib stays the reference (and names NaN/Infinity)
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]


def decode(text: str | bytes) -> Any:
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass  # NaN, Infinity, huge integers, bad JSON: let json say what it is
    return json.loads(text)


def _dumps(obj: Any) -> str:
    if _orjson is not None:
        try:
            return _orjson.dumps(obj).decode()
        except TypeError:  # e.g. lone surrogates in remote strings: the stdlib escapes them
            pass
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


class BridgeProtocol:
    """Server side of one bridge connection. Performs no I/O.

    Args:
        config: tokens, limits; default: an open bridge with default limits.
        role: the role already proven by an ``Authorization: Bearer`` header, if any.
    """

    def __init__(self, config: BridgeConfig | None = None, role: Role | None = None) -> None:
        self.config = config or BridgeConfig()
        lim = self.config.limits
        self._max_len = lim.max_channel_length
        self._max_batch = lim.max_batch
        self._max_channels = lim.max_channels
        self._rate = lim.max_messages_per_second
        self._burst = lim.burst
        self._tokens = lim.burst
        self._last: float | None = None
        self.role: Role | None = role if role is not None else self.config.role_for(None)
        #: the connection's channel table: local id -> name (append-only)
        self.channels: list[str] = []
        self._ids: dict[str, int] = {}
        self._alias = np.full(0, -1, dtype=np.int64)
        self.closed = False
        #: the highest seq accepted on this connection (seq must grow), or -1
        self.last_seq = -1
        self._resume: int | None = None
        self._events: list[Event] = []
        self._writes: list[str | bytes] = []

    # --- the sans-I/O interface ----------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Events parsed since the last call (each returned once)."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str | bytes]:
        """Frames to send, in order (each returned once)."""
        writes, self._writes = self._writes, []
        return writes

    def receive_text(self, text: str, now: float) -> None:
        """Handle one text frame received at Unix time ``now``. Never raises."""
        if self.closed:
            return
        try:
            self._check_rate(now)
            try:
                msg = decode(text)
            except (ValueError, RecursionError) as exc:
                raise ProtocolViolation("bad_json", f"not valid JSON ({exc}); send one JSON object per frame") from None
            if not isinstance(msg, dict):
                raise ProtocolViolation("bad_message", "a message must be a JSON object with a \"type\"")
            kind = msg.get("type")
            if self.role is None and kind != "auth":
                self.fail("auth_required", "send {\"type\":\"auth\",\"token\":...} first "
                          "(or an Authorization: Bearer header)")
                return
            handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise ProtocolViolation("unknown_type", f"unknown message type {kind!r} (known: "
                              f"{', '.join(sorted(self._HANDLERS))})")
            handler(self, msg, now)
        except ProtocolViolation as rej:
            self._reject(rej.code, rej.message)

    def receive_bytes(self, data: bytes, now: float) -> None:
        """Handle one binary batch frame received at ``now``. Never raises."""
        if self.closed:
            return
        if self.role is None:
            self.fail("auth_required", "authenticate before sending binary frames")
            return
        try:
            self._check_rate(now)
            self._binary(data)
        except ProtocolViolation as rej:
            self._reject(rej.code, rej.message)

    # --- replies the server asks for -----------------------------------------------------

    def send_hello(self, server: str, resume_seq: int | None) -> None:
        """Answer a :class:`Hello`: version, limits and the last recorded seq of this client.

        From then on a sample with a seq at or below ``resume_seq`` is refused (``bad_seq``):
        it is recorded already, and acking it would hide a restarted numbering.
        """
        self._resume = resume_seq
        self.last_seq = max(self.last_seq, -1 if resume_seq is None else resume_seq)
        lim = self.config.limits
        self._writes.append(_dumps({
            "type": "hello", "version": PROTOCOL_VERSION, "server": server,
            "resume": {"seq": resume_seq},
            "limits": {"max_frame_bytes": lim.max_frame_bytes,
                       "max_messages_per_second": lim.max_messages_per_second,
                       "max_batch": lim.max_batch},
        }))

    def send_ack(self, seq: int) -> None:
        """Acknowledge ``seq`` and every earlier sample of this connection."""
        self._writes.append(f'{{"type":"ack","seq":{int(seq)}}}')

    def send_error(self, code: str, message: str) -> None:
        """Queue an ``error`` frame."""
        self._writes.append(_dumps({"type": "error", "code": code, "message": message}))

    def send_meta(self, channels: Mapping[str, Mapping[str, Any]]) -> None:
        """Queue a ``meta`` frame (channel metadata) for a subscriber."""
        self._writes.append(encode_meta(channels))

    def send_frame(self, frame: str) -> None:
        """Queue a frame made by one of this module's ``encode_*`` functions (the fan-out encodes
        a frame once for many subscribers)."""
        self._writes.append(frame)

    # --- internals -----------------------------------------------------------------------

    def _reject(self, code: str, message: str) -> None:
        self._events.append(BadMessage(code, message))
        self.send_error(code, message)

    def fail(self, code: str, message: str) -> None:
        """Queue one ``error`` frame, emit :class:`Fatal` and stop reading: close with 1008."""
        self._events.append(Fatal(code, message))
        self.send_error(code, message)
        self.closed = True

    def _check_rate(self, now: float) -> None:
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + max(0.0, now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            raise ProtocolViolation("rate_limited", f"more than {self._rate:g} messages/s (burst "
                          f"{self._burst:g}); message dropped: batch samples or slow down")
        self._tokens -= 1.0

    def _channel(self, name: Any) -> int:
        """Local id of a channel name the role may publish; rejects otherwise."""
        if type(name) is str:
            cid = self._ids.get(name)
            if cid is not None:
                return cid
        name = check_channel(name, self._max_len)
        assert self.role is not None
        if not self.role.may_publish(name):
            raise ProtocolViolation("forbidden", f"token {self.role.name!r} may not publish {name!r} "
                          f"(publish globs: {list(self.role.publish)})")
        cid = len(self.channels)
        if cid >= self._max_channels:
            raise ProtocolViolation("too_many_channels", f"this connection already published {cid} channels "
                          "(limit max_channels); reconnect or raise the limit in bridge.toml")
        self.channels.append(name)
        self._ids[name] = cid
        return cid

    def _auth(self, msg: dict[str, Any], now: float) -> None:
        token = msg.get("token")
        role = self.config.role_for(token if isinstance(token, str) else None)
        if role is None:
            self.fail("auth_failed", "unknown token; check the token in bridge.toml")
            return
        self.role = role
        self._writes.append(_dumps({"type": "authenticated", "role": role.name}))
        self._events.append(Authenticated(role))

    def _hello(self, msg: dict[str, Any], now: float) -> None:
        client = msg.get("client")
        version = msg.get("version", PROTOCOL_VERSION)
        top = self.config.limits.max_client_id_length
        if client is not None and (not isinstance(client, str) or not 0 < len(client) <= top
                                   or not client.isprintable()):
            raise ProtocolViolation("bad_message", f"hello: 'client' must be a printable string of "
                                    f"1-{top} characters")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProtocolViolation("bad_message", "hello: 'version' must be an integer")
        if version > PROTOCOL_VERSION:
            raise ProtocolViolation("bad_version", f"this bridge speaks protocol version {PROTOCOL_VERSION}, "
                          f"not {version}")
        self._events.append(Hello(client, version))

    def _ping(self, msg: dict[str, Any], now: float) -> None:
        self._events.append(Ping(now))

    def _alarm(self, msg: dict[str, Any], now: float) -> None:
        assert self.role is not None
        if "raise" not in self.role.alarms:
            raise ProtocolViolation("forbidden", f"token {self.role.name!r} may not raise alarms "
                                    "(give it alarms = [\"raise\"] in bridge.toml)")
        channel = check_channel(msg.get("channel"), self._max_len)
        kind, active = msg.get("kind"), msg.get("active")
        if kind not in ALARM_KINDS:
            raise ProtocolViolation("bad_message", f"alarm: 'kind' must be one of {list(ALARM_KINDS)}")
        if not isinstance(active, bool):
            raise ProtocolViolation("bad_message", "alarm: 'active' must be true (raise) or false (clear)")
        value, limit = msg.get("value"), msg.get("limit")
        value = None if value is None else check_value(channel, value)
        limit = None if limit is None else check_value(channel, limit)
        message = msg.get("message", "")
        if not isinstance(message, str) or len(message) > 256:
            raise ProtocolViolation("bad_message", "alarm: 'message' must be a string of at most 256 characters")
        t = msg.get("time")
        t = now if t is None else check_time(channel, t)
        self._events.append(AlarmReport(channel, kind, active, value, limit, message, t))

    def _ack_alarm(self, msg: dict[str, Any], now: float) -> None:
        assert self.role is not None
        if "acknowledge" not in self.role.alarms:
            raise ProtocolViolation("forbidden", f"token {self.role.name!r} may not acknowledge alarms "
                                    "(give it alarms = [\"acknowledge\"] in bridge.toml)")
        alarm_id = msg.get("id")
        if type(alarm_id) is not int or alarm_id < 1:
            raise ProtocolViolation("bad_message", "ack_alarm: 'id' must be the alarm's id (an integer >= 1)")
        self._events.append(AckAlarm(alarm_id, self.role.name, now))

    def send_pong(self, now: float, ack_lag: float) -> None:
        """Answer a :class:`Ping`: the bridge's time, and how long (s) this connection's oldest
        accepted but not yet acknowledged sample has waited for its commit (0: none waits)."""
        self._writes.append(_dumps({"type": "pong", "time": now, "ack_lag": round(ack_lag, 6)}))

    def _subscribe(self, msg: dict[str, Any], now: float) -> None:
        pats = msg.get("channels")
        if not isinstance(pats, list) or not pats or not all(isinstance(p, str) and p for p in pats):
            raise ProtocolViolation("bad_message", "subscribe: 'channels' must be a non-empty list of globs")
        assert self.role is not None
        if not self.role.subscribe:
            raise ProtocolViolation("forbidden", f"token {self.role.name!r} may not subscribe")
        top = self.config.limits.max_subscribe_patterns
        if len(pats) > top:
            raise ProtocolViolation("too_many", f"{len(pats)} patterns in one subscribe; the limit is "
                                    f"{top}: use globs such as \"plate/*\"")
        for p in pats:
            if len(p) > 2 * self._max_len:
                raise ProtocolViolation("bad_channel", f"subscribe pattern longer than {2 * self._max_len}")
            if not _GLOB_CHARS & set(p) and not self.role.may_subscribe(p):
                raise ProtocolViolation("forbidden", f"token {self.role.name!r} may not subscribe to {p!r} "
                              f"(subscribe globs: {list(self.role.subscribe)})")
        self._writes.append(_dumps({"type": "subscribed", "channels": pats}))
        self._events.append(Subscribe(tuple(pats)))

    def _sample(self, msg: dict[str, Any], now: float) -> None:
        self._publish([msg], now)

    def _samples(self, msg: dict[str, Any], now: float) -> None:
        items = msg.get("samples")
        if not isinstance(items, list) or not items:
            raise ProtocolViolation("bad_message", "samples: 'samples' must be a non-empty list")
        if len(items) > self._max_batch:
            raise ProtocolViolation("too_many", f"{len(items)} samples in one message; the limit is {self._max_batch}")
        self._publish(items, now)

    def _publish(self, items: list[Any], now: float) -> None:
        batch = self._columns(items, now)
        if batch is None:
            batch = self._rows(items, now)
        self._accept(batch)

    def _accept(self, batch: Batch) -> None:
        """Emit ``batch`` if its seqs grow past every earlier one of this connection."""
        seq = batch.seq
        numbered = seq[seq >= 0]
        if len(numbered):
            low = int(numbered.min())
            if low <= self.last_seq or (len(numbered) > 1 and (np.diff(numbered) < 0).any()):
                told = (f"resume.seq is {self._resume}" if self._resume is not None
                        and low <= self._resume else f"seq {self.last_seq} came before")
                raise ProtocolViolation("bad_seq", f"seq {low} does not follow on ({told}); seqs "
                                        "must grow: continue from resume.seq, or use a new client id")
            self.last_seq = int(numbered.max())
        self._events.append(Publish(batch))

    def _columns(self, items: list[Any], now: float) -> Batch | None:
        """Fast path: whole columns at once; ``None`` when anything is off (the row path then
        finds and names the problem)."""
        try:
            chans = [it["channel"] for it in items]
            vals = [it["value"] for it in items]
            times = [it.get("time") for it in items]
            seqs = [it.get("seq", -1) for it in items]
            if not _FLOATS.issuperset(map(type, vals)) or not _INTS.issuperset(map(type, seqs)):
                return None
            if None in times:
                times = [now if t is None else t for t in times]
            if not _FLOATS.issuperset(map(type, times)):
                return None
            ids = self._ids
            for name in set(chans) - ids.keys():
                self._channel(name)          # validates and authorises new names (may reject)
            index = np.array([ids[c] for c in chans], dtype=np.int64)
            value = np.array(vals, dtype=np.float64)
            time = np.array(times, dtype=np.float64)
            seq = np.array(seqs, dtype=np.int64)
        except (KeyError, TypeError, AttributeError, OverflowError):
            return None
        if not (np.isfinite(value).all() and np.isfinite(time).all() and (seq >= -1).all()):
            return None
        return Batch(self.channels, index, time, value, seq)

    def _rows(self, items: list[Any], now: float) -> Batch:
        index: list[int] = []
        times: list[float] = []
        values: list[float] = []
        seqs: list[int] = []
        channel = self._channel
        for k, it in enumerate(items):
            if not isinstance(it, dict):
                raise ProtocolViolation("bad_message", f"sample #{k} is not a JSON object")
            cid = channel(it.get("channel"))
            v = check_value(self.channels[cid], it.get("value"))
            t = it.get("time")
            t = now if t is None else check_time(self.channels[cid], t)
            s = it.get("seq", -1)
            if s != -1 and (type(s) is not int or not 0 <= s < 1 << 63):
                raise ProtocolViolation("bad_seq", f"seq must be an integer in [0, 2^63), got {s!r:.40}")
            index.append(cid)
            times.append(t)
            values.append(v)
            seqs.append(s)
        return Batch(self.channels, np.array(index, dtype=np.int64), np.array(times, dtype=np.float64),
                     np.array(values, dtype=np.float64), np.array(seqs, dtype=np.int64))

    def _meta(self, msg: dict[str, Any], now: float) -> None:
        table = msg.get("channels")
        if not isinstance(table, dict) or not table:
            raise ProtocolViolation("bad_message", "meta: 'channels' must be an object {channel: {key: value}}")
        out: dict[str, dict[str, Any]] = {}
        lim = self.config.limits
        for name, meta in table.items():
            self._channel(name)
            if not isinstance(meta, dict) or not all(
                    isinstance(k, str) and 0 < len(k) <= lim.max_meta_key_length
                    and (v is None or type(v) in (str, int, float, bool))
                    and not (type(v) is float and not math.isfinite(v)) for k, v in meta.items()):
                raise ProtocolViolation("bad_meta", f"meta of {name!r} must map names of up to "
                                        f"{lim.max_meta_key_length} characters to strings, numbers "
                                        "or booleans, e.g. {\"unit\": \"degC\"}")
            if len(_dumps(meta)) > lim.max_meta_bytes:
                raise ProtocolViolation("bad_meta", f"meta of {name!r} is larger than "
                                        f"{lim.max_meta_bytes} bytes")
            out[name] = meta
        self._events.append(Meta(out))

    def _alias_msg(self, msg: dict[str, Any], now: float) -> None:
        table = msg.get("channels")
        if not isinstance(table, dict) or not table:
            raise ProtocolViolation("bad_message", "alias: 'channels' must be an object {channel: alias}")
        pairs = []
        for name, alias in table.items():
            if type(alias) is not int or not 0 <= alias < _MAX_ALIAS:
                raise ProtocolViolation("bad_alias", f"alias of {name!r} must be an integer in [0, {_MAX_ALIAS})")
            pairs.append((alias, self._channel(name)))
        top = max(a for a, _ in pairs) + 1
        if top > self._alias.shape[0]:
            grown = np.full(top, -1, dtype=np.int64)
            grown[: self._alias.shape[0]] = self._alias
            self._alias = grown
        for alias, cid in pairs:
            self._alias[alias] = cid

    def _binary(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            raise ProtocolViolation("bad_frame", f"binary frame of {len(data)} bytes is shorter than the "
                          f"{_HEADER.size}-byte header")
        magic, version, _flags, count, seq = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != 1:
            raise ProtocolViolation("bad_frame", "binary frame must start with b'T3' and version 1")
        if len(data) != _HEADER.size + count * BINARY_DTYPE.itemsize:
            raise ProtocolViolation("bad_frame", f"binary frame says {count} records but has "
                          f"{len(data) - _HEADER.size} bytes after the header (20 per record)")
        if count == 0:
            raise ProtocolViolation("bad_frame", "binary frame with a count of 0: send at least one record")
        if count > self._max_batch:
            raise ProtocolViolation("too_many", f"{count} samples in one frame; allowed 1..{self._max_batch}")
        rec = np.frombuffer(data, dtype=BINARY_DTYPE, count=count, offset=_HEADER.size)
        alias = rec["alias"]
        if int(alias.max()) >= self._alias.shape[0]:
            raise ProtocolViolation("unknown_alias", f"alias {int(alias.max())} was never announced; "
                          "send {\"type\":\"alias\",...} first")
        index = self._alias[alias]
        if (index < 0).any():
            bad = int(alias[index < 0][0])
            raise ProtocolViolation("unknown_alias", f"alias {bad} was never announced")
        value = rec["value"].astype(np.float64)
        time = rec["time"].astype(np.float64)
        if not np.isfinite(value).all():
            raise ProtocolViolation("bad_value", "binary frame holds a NaN or infinite value")
        if not np.isfinite(time).all():
            raise ProtocolViolation("bad_time", "binary frame holds a NaN or infinite time")
        if seq < -1:
            raise ProtocolViolation("bad_seq", "binary frame seq must be >= 0 (or -1 for none)")
        self._accept(Batch(self.channels, index, time, value, np.full(count, seq, dtype=np.int64)))

    _HANDLERS: ClassVar[dict[str, Callable[[BridgeProtocol, dict[str, Any], float], None]]] = {
        "auth": _auth, "hello": _hello, "ping": _ping, "subscribe": _subscribe,
        "alarm": _alarm, "ack_alarm": _ack_alarm,
        "sample": _sample, "samples": _samples, "alias": _alias_msg, "meta": _meta,
    }


# --- the rules for one sample (also used by Bridge.ingest for in-process sources) -----------


def check_channel(name: Any, max_length: int) -> str:
    """``name`` if it is a valid channel name, else :class:`ProtocolViolation` ``bad_channel``."""
    if not isinstance(name, str) or not name:
        raise ProtocolViolation("bad_channel", f"channel must be a non-empty string, got {name!r:.60}")
    if len(name) > max_length:
        raise ProtocolViolation("bad_channel", f"channel name longer than {max_length} characters")
    if not name.isprintable() or any(c in _GLOB_CHARS or c.isspace() for c in name):
        raise ProtocolViolation("bad_channel", f"channel {name!r} has spaces, control or glob "
                                "characters (*?[]); use letters, digits and / . _ - :")
    return name


def check_value(channel: str, value: Any) -> float:
    """``value`` as a float if it is a finite number (not a bool or string), else ``bad_value``."""
    if type(value) not in _NUMBER:
        raise ProtocolViolation("bad_value", f"value of {channel!r} must be a number, "
                                f"got {type(value).__name__} {value!r:.40}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        raise ProtocolViolation("bad_value", f"value of {channel!r} must be finite, got {v}")
    return v


def check_time(channel: str, time: Any) -> float:
    """``time`` if it is finite Unix seconds, else ``bad_time``."""
    if type(time) not in _NUMBER or not math.isfinite(time):
        raise ProtocolViolation("bad_time", f"time of {channel!r} must be finite Unix seconds, "
                                f"got {time!r:.40}")
    return float(time)


# --- encoders for publishers and clients ---------------------------------------------------


def encode_hello(client: str | None) -> str:
    """A ``hello`` frame naming this publisher (enables resume and de-duplication)."""
    msg: dict[str, Any] = {"type": "hello", "version": PROTOCOL_VERSION}
    if client is not None:
        msg["client"] = client
    return _dumps(msg)


def encode_subscribe(patterns: Sequence[str]) -> str:
    """A ``subscribe`` frame for channel globs."""
    return _dumps({"type": "subscribe", "channels": list(patterns)})


def encode_alarm_report(channel: str, kind: str, active: bool, value: float | None = None,
                        limit: float | None = None, message: str = "", time: float | None = None) -> str:
    """An ``alarm`` message from a raiser: the condition ``kind`` of ``channel`` holds (or not)."""
    msg: dict[str, Any] = {"type": "alarm", "channel": channel, "kind": kind, "active": active}
    msg |= {k: v for k, v in (("value", value), ("limit", limit), ("time", time)) if v is not None}
    if message:
        msg["message"] = message
    return _dumps(msg)


def encode_ack_alarm(alarm_id: int) -> str:
    """An ``ack_alarm`` message from an operator."""
    return _dumps({"type": "ack_alarm", "id": int(alarm_id)})


def encode_alarm(alarm: Mapping[str, Any]) -> str:
    """An ``alarm`` event for subscribers: the alarm's fields and its state."""
    return _dumps({"type": "alarm", **alarm})


def encode_gap(skipped: Mapping[str, int], reason: str) -> str:
    """A ``gap`` frame: values skipped per channel, and why (``stale`` or ``overflow``)."""
    return _dumps({"type": "gap", "channels": dict(skipped), "skipped": int(sum(skipped.values())),
                   "reason": reason})


def encode_meta(channels: Mapping[str, Mapping[str, Any]]) -> str:
    """A ``meta`` frame: ``{channel: {"unit": "degC", ...}}``."""
    return _dumps({"type": "meta", "channels": {k: dict(v) for k, v in channels.items()}})


def encode_sample(channel: str, value: float, time: float | None = None, seq: int | None = None) -> str:
    """One ``sample`` frame."""
    msg: dict[str, Any] = {"type": "sample", "channel": channel, "value": value}
    if time is not None:
        msg["time"] = time
    if seq is not None:
        msg["seq"] = seq
    return _dumps(msg)


def encode_samples(rows: Iterable[tuple[str, float, float | None, int | None]]) -> str:
    """A ``samples`` frame (or ``sample`` for one row) from (channel, value, time, seq) rows.

    A ``seq`` of ``None`` or -1 and a ``time`` of ``None`` are left out.
    """
    items = []
    for ch, v, t, s in rows:
        d: dict[str, Any] = {"channel": ch, "value": v}
        if t is not None:
            d["time"] = t
        if s is not None and s >= 0:
            d["seq"] = s
        items.append(d)
    if len(items) == 1:
        return _dumps({"type": "sample", **items[0]})
    return _dumps({"type": "samples", "samples": items})


def encode_alias(aliases: Mapping[str, int]) -> str:
    """An ``alias`` frame announcing numeric aliases for binary batches."""
    return _dumps({"type": "alias", "channels": dict(aliases)})


def encode_binary(alias: np.ndarray, time: np.ndarray, value: np.ndarray, seq: int = -1) -> bytes:
    """A binary batch frame.

    Args:
        alias: (n,) announced channel aliases.
        time: (n,) Unix seconds.
        value: (n,) values.
        seq: sequence number of the whole frame (-1: none).
    """
    n = int(np.shape(alias)[0])
    rec = np.empty(n, dtype=BINARY_DTYPE)
    rec["alias"], rec["time"], rec["value"] = alias, time, value
    return _HEADER.pack(_MAGIC, 1, 0, n, seq) + rec.tobytes()
