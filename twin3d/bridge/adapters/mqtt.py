"""MQTT source: subscribe to topics on a broker and feed the values to the bridge.

One ``[[mqtt]]`` table per broker; each ``[[mqtt.topics]]`` entry maps a topic template to
channels::

    [[mqtt]]
    name = "plant"                # source name in the recording: "mqtt:plant"
    host = "127.0.0.1"
    port = 1883
    qos = 0

    [[mqtt.topics]]
    topic = "plant/{line}/temp"   # named segment: one topic level ('+'), usable in channel
    channel = "{line}/temp"       # also {0}, {1} (topic level, 0-based), {#} (what # matched), {topic}
    value = "data.temp"           # JSON path in the payload; omit for plain numeric payloads
    time = "ts"                   # optional JSON path of the source time
    time_unit = "ms"              # s (default), ms, us, ns; ISO 8601 strings work too

    [[mqtt.topics]]               # several values in one JSON payload
    topic = "pump/+/state"
    values = { "{1}/flow" = "flow", "{1}/pressure" = "p" }

The client is gmqtt, an asyncio-native client that parses every packet of a socket read in one
go: measured on a 2-core VM it delivered ~65k messages/s where aiomqtt (paho's one-packet-per-
wakeup reads) and paho's threaded loop managed ~14-16k/s (``benchmarks/mqtt.py``). Samples go to
``ingest`` in batches; when the bridge pushes back and the backlog passes ``max_pending``, the
adapter stops reading the socket, so TCP pushes back on the broker instead of dropping data here.
Broker loss: reconnect with exponential backoff (0.5 s doubling to 30 s), subscriptions renewed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from typing import Any

from twin3d._tasks import cancel_and_wait
from twin3d.bridge.adapters._base import (
    Batcher,
    Ingest,
    Table,
    Throttled,
    backoff_delays,
    lookup,
    parse_path,
    parse_time,
    time_scale,
    to_value,
)
from twin3d.errors import AdapterError
from twin3d.model import Sample

__all__ = ["MqttAdapter", "TopicRule", "compile_topic"]

log = logging.getLogger(__name__)

_KEYS = ("name", "host", "port", "username", "password", "client_id", "qos", "keepalive",
         "tls", "ca_file", "topics", "max_batch", "max_pending", "connect_timeout", "retry_at_start")
_TOPIC_KEYS = ("topic", "channel", "value", "values", "time", "time_unit")
_NAMED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FIELD = re.compile(r"\{[^{}]*\}")
_NO_DOC = object()

#: per topic: (channel, value path or None, time path or None, seconds per time unit)
_Route = tuple[str, "tuple[str | int, ...] | None", "tuple[str | int, ...] | None", float]

try:  # orjson parses a small payload ~6x faster than json (0.8 vs 4.9 us on the benchmark VM)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson comes with twin3d[adapters]
    _loads = json.loads  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class TopicRule:
    """One compiled ``[[mqtt.topics]]`` entry.

    Args:
        filter: the MQTT subscription filter, e.g. ``"plant/+/temp"``.
        levels: per level of the filter, the literal text, or ``None`` for ``+``/named levels.
        multi: the filter ends in ``#``.
        names: named segment -> level index.
        outputs: (channel template, JSON path or ``None`` for a plain payload) pairs.
        time_path: JSON path of the source time, or ``None`` (arrival time).
        time_scale: seconds per unit of numeric times.
    """

    filter: str
    levels: tuple[str | None, ...]
    multi: bool
    names: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, tuple[str | int, ...] | None], ...]
    time_path: tuple[str | int, ...] | None
    time_scale: float

    def match(self, topic: str) -> list[str] | None:
        """Return the channels ``topic`` maps to (one per output), or None if it does not match."""
        parts = topic.split("/")
        n = len(self.levels)
        if len(parts) < n or (not self.multi and len(parts) != n):
            return None
        for literal, part in zip(self.levels, parts, strict=False):  # a # rule has more parts
            if literal is not None and literal != part:
                return None
        if self.multi and topic.startswith("$"):
            return None
        fields: dict[str, str] = {name: parts[i] for name, i in self.names}
        fields["#"] = "/".join(parts[n:])
        fields["topic"] = topic
        return [template.format(*parts, **fields) for template, _ in self.outputs]


def compile_topic(entry: Mapping[str, Any], where: Table) -> TopicRule:
    """Compile one ``[[mqtt.topics]]`` table into a :class:`TopicRule`.

    Raises:
        AdapterError: a bad topic template, a channel template that uses an undefined field,
            or a missing ``topic``.
    """
    topic = entry.get("topic", "?") if isinstance(entry, Mapping) else "?"
    sub = Table(where.kind, where.index, entry, _TOPIC_KEYS, label=f"{where.label} topic {topic!r}")
    template = sub.get("topic", str, required=True, example='"plant/+/temp"')
    raw_levels = template.split("/")
    if not template:
        raise sub.error("empty topic: write a topic filter such as \"plant/+/temp\"")
    levels: list[str | None] = []
    names: list[tuple[str, int]] = []
    multi = False
    for i, level in enumerate(raw_levels):
        named = _NAMED.fullmatch(level)
        if level == "#":
            if i != len(raw_levels) - 1:
                raise sub.error("'#' must be the last topic level: move it to the end, e.g. \"plant/#\"")
            multi = True
        elif level == "+":
            levels.append(None)
        elif named:
            if named.group(1) in dict(names) or named.group(1) == "topic":
                raise sub.error(f"segment {{{named.group(1)}}} is named twice (or 'topic', which "
                                "means the whole topic): give it another name")
            names.append((named.group(1), i))
            levels.append(None)
        elif any(c in level for c in "+#{}"):
            raise sub.error(f"level {level!r}: wildcards and {{name}} segments must fill a whole "
                            "topic level, e.g. \"plant/{line}/temp\"")
        else:
            levels.append(level)
    mqtt_filter = "/".join(["+" if lv is None else lv for lv in levels] + (["#"] if multi else []))
    outputs: list[tuple[str, tuple[str | int, ...] | None]] = []
    if "values" in entry:
        if "channel" in entry or "value" in entry:
            raise sub.error("use either channel/value or values, not both")
        values = sub.get("values", dict, example='{ "{1}/flow" = "flow" }')
        if not values:
            raise sub.error("values is empty: map channel templates to payload paths")
        for channel, path in values.items():
            if not isinstance(path, str):
                raise sub.error(f"values.{channel} = {path!r} must be a payload path string")
            outputs.append((channel, parse_path(path, sub, f"values.{channel}")))
    else:
        channel = sub.get("channel", str, "{topic}", example='"{1}/temp"')
        path = sub.get("value", str, None, example='"data.temp"')
        outputs.append((channel, parse_path(path, sub, "value") if path is not None else None))
    # check every channel template against a sample topic now, not on the first message
    n_levels = len(levels) + (1 if multi else 0)
    probe_parts = [f"l{i}" for i in range(n_levels)]
    probe = {name: "x" for name, _ in names} | {"#": "rest", "topic": "t"}
    for channel, _ in outputs:
        literal = _FIELD.sub("", channel)
        if not channel or any(c in literal for c in " \t*?[]"):
            raise sub.error(f"channel template {channel!r} is empty or has spaces or glob characters "
                            "(* ? [ ]), which the bridge refuses: use names like \"{1}/temp\"")
        try:
            channel.format(*probe_parts, **probe)
        except (KeyError, IndexError, ValueError) as exc:
            fields = ", ".join([f"{{{k}}}" for k in range(n_levels)] + [f"{{{n}}}" for n, _ in names]
                               + (["{#}"] if multi else []) + ["{topic}"])
            raise sub.error(f"channel template {channel!r} uses {exc}, which the topic does not "
                            f"define: use {fields}") from None
    time_path = sub.get("time", str, None, example='"ts"')
    return TopicRule(
        filter=mqtt_filter,
        levels=tuple(levels),
        multi=multi,
        names=tuple(names),
        outputs=tuple(outputs),
        time_path=parse_path(time_path, sub, "time") if time_path is not None else None,
        time_scale=time_scale(sub),
    )


def _make_client_class() -> Any:
    import gmqtt

    class _Client(gmqtt.Client):  # type: ignore[misc]
        """gmqtt client whose built-in reconnect only reports the loss (our loop reconnects)."""

        lost: asyncio.Event

        async def reconnect(self, delay: bool = False) -> None:
            self.lost.set()

    return _Client


class MqttAdapter:
    """Subscribes one ``[[mqtt]]`` table's topics and feeds the values to ``ingest``.

    Args:
        table: the raw ``[[mqtt]]`` table.
        ingest: ``await ingest(samples, source)``.
        index: position among the ``[[mqtt]]`` tables (for messages).

    Raises:
        AdapterError: bad or missing keys, bad topic or channel templates.

    Examples:
        >>> async def main(ingest):  # doctest: +SKIP
        ...     adapter = MqttAdapter({"host": "127.0.0.1", "topics": [{"topic": "plant/+/temp",
        ...                           "channel": "{1}/temp"}]}, ingest)
        ...     await adapter.run()
    """

    kind = "mqtt"

    def __init__(self, table: Mapping[str, Any], ingest: Ingest, *, index: int = 0) -> None:
        t = Table("mqtt", index, table, _KEYS)
        self.label = t.label
        self.host = t.get("host", str, required=True, example='"127.0.0.1"')
        self.tls = t.get("tls", bool, False) or "ca_file" in table
        self.port = int(t.get("port", int, 8883 if self.tls else 1883, example="1883"))
        self.username = t.get("username", str, None)
        self.password = t.get("password", str, None)
        self.ca_file = t.get("ca_file", str, None)
        self.client_id = t.get("client_id", str, f"twin3d-{uuid.uuid4().hex[:12]}")
        self.qos = int(t.get("qos", int, 0, example="0"))
        if self.qos not in (0, 1, 2):
            raise t.error(f"qos = {self.qos}: use 0, 1 or 2")
        self.keepalive = int(t.number("keepalive", 60, minimum=1))
        self.connect_timeout = t.number("connect_timeout", 10.0, minimum=0.1)
        self.retry_at_start = bool(t.get("retry_at_start", bool, False))
        topics = t.get("topics", list, required=True,
                       example='[{ topic = "plant/+/temp", channel = "{1}/temp" }] or [[mqtt.topics]] tables')
        if not topics:
            raise t.error("topics is empty: add at least one [[mqtt.topics]] table")
        self.rules = [compile_topic(e, t) for e in topics]
        self.source = t.source(f"mqtt:{self.host}:{self.port}")
        self.batcher = Batcher(ingest, self.source, max_batch=int(t.number("max_batch", 5000, minimum=1)),
                               max_pending=int(t.number("max_pending", 200_000, minimum=1)), logger=log)
        self.batcher.on_full = self.pause_reading
        self.connected = asyncio.Event()   # set while connected and subscribed
        self.connections = 0                # successful connections so far
        self.bad_messages = 0               # payloads that could not be read
        self._routes: dict[str, list[_Route]] = {}
        self._warn = Throttled(log)
        self._client: Any = None
        self._paused = False

    # --- message path (hot) ---------------------------------------------------------------------

    def _route(self, topic: str) -> list[_Route]:
        routes: list[_Route] = []
        for rule in self.rules:
            channels = rule.match(topic)
            if channels is not None:
                for (_, path), channel in zip(rule.outputs, channels, strict=True):
                    routes.append((channel, path, rule.time_path, rule.time_scale))
        if len(self._routes) < 100_000:
            self._routes[topic] = routes
        return routes

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        routes = self._routes.get(topic)
        if routes is None:
            routes = self._route(topic)
        doc: Any = _NO_DOC
        now = 0.0
        add = self.batcher.add
        for channel, path, time_path, scale in routes:
            try:
                if path is None:  # plain number, or a JSON document that is a number
                    try:
                        value = float(payload)
                    except ValueError:
                        doc = _loads(payload) if doc is _NO_DOC else doc
                        value = to_value(doc)
                    else:
                        if not isfinite(value):
                            raise ValueError(f"{value} is not a finite number")
                else:
                    doc = _loads(payload) if doc is _NO_DOC else doc
                    raw = doc[path[0]] if len(path) == 1 and type(doc) is dict else lookup(doc, path)
                    value = raw if type(raw) is float and isfinite(raw) else to_value(raw)
                if time_path is not None:
                    doc = _loads(payload) if doc is _NO_DOC else doc
                    raw = doc[time_path[0]] if len(time_path) == 1 and type(doc) is dict else lookup(doc, time_path)
                    stamp = raw * scale if type(raw) is float and isfinite(raw) else parse_time(raw, scale)
                else:
                    stamp = now = now or time.time()
            except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
                self.bad_messages += 1
                self._warn.warn(topic, f"{self.label}: dropped payload {payload[:60]!r} on {topic!r} "
                                f"({type(exc).__name__}: {exc}): check the value/time paths")
                continue
            add(Sample(channel, value, stamp))
        if self._paused:
            # asyncio's StreamReader under gmqtt resumes the transport whenever its own buffer
            # drains, so the pause is renewed for as long as the backlog is too long
            transport = self._transport()
            if transport is not None and transport.is_reading():
                transport.pause_reading()
        return 0

    def _transport(self) -> asyncio.Transport | None:
        # gmqtt has no public flow control; its connection keeps the asyncio transport.
        transport = getattr(getattr(self._client, "_connection", None), "_transport", None)
        return None if transport is None or transport.is_closing() else transport

    def pause_reading(self, paused: bool) -> None:
        """Stop (True) or restart (False) reading the broker's socket; TCP then pushes back on the broker.

        Called when the backlog for the bridge passes ``max_pending`` and when it has drained.
        """
        self._paused = paused
        transport = self._transport()
        if transport is not None:
            (transport.pause_reading if paused else transport.resume_reading)()
        log.debug("%s: %s reading (%d pending)", self.label, "paused" if paused else "resumed",
                  self.batcher.pending)

    # --- connection -----------------------------------------------------------------------------

    async def _connect(self) -> Any:
        from gmqtt.mqtt.constants import MQTTv311

        client = _make_client_class()(self.client_id, clean_session=True)
        client.lost = asyncio.Event()
        client.on_message = self._on_message
        client.on_disconnect = lambda *a, **k: client.lost.set()
        if self.username is not None:
            client.set_auth_credentials(self.username, self.password)
        context: ssl.SSLContext | bool = False
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_file)
        try:
            await asyncio.wait_for(client.connect(self.host, self.port, ssl=context,
                                                  keepalive=self.keepalive, version=MQTTv311),
                                   self.connect_timeout)
        except BaseException:
            await self._close(client)
            raise
        client.lost.clear()
        try:
            await self._subscribe(client)
        except BaseException:
            await self._close(client)
            raise
        return client

    async def _subscribe(self, client: Any) -> None:
        """Subscribe to every filter and wait for the broker's SUBACKs.

        Raises:
            AdapterError: the broker refused a subscription (on the first connection only;
                later ones are logged).
        """
        loop = asyncio.get_running_loop()
        acks: dict[int, asyncio.Future[Sequence[int]]] = {}

        def on_subscribe(client: Any, mid: int, granted: Sequence[int], properties: Any) -> None:
            fut = acks.get(mid)
            if fut is not None and not fut.done():
                fut.set_result(granted)

        client.on_subscribe = on_subscribe
        filters = list(dict.fromkeys(r.filter for r in self.rules))
        mids = []
        for topic_filter in filters:
            mid = client.subscribe(topic_filter, qos=self.qos)
            acks[mid] = loop.create_future()
            mids.append(mid)
        await asyncio.wait_for(asyncio.gather(*acks.values()), self.connect_timeout)
        refused = [f for f, mid in zip(filters, mids, strict=True) if any(q >= 0x80 for q in acks[mid].result())]
        if refused:
            problem = (f"the broker refused the subscription to {refused[0]!r}: allow it in the "
                       "broker's ACL for this user, or fix the topic")
            if self.connections == 0:
                raise AdapterError(f"{self.label}: {problem}")
            log.warning("%s: %s", self.label, problem)

    async def _close(self, client: Any) -> None:
        try:
            client.lost.set()
            await asyncio.wait_for(client.disconnect(), 2.0)
        except BaseException:  # closing a dead connection: nothing to report
            pass

    async def run(self) -> None:
        """Connect, subscribe, and feed ``ingest`` until cancelled; reconnect on broker loss.

        Raises:
            AdapterError: the first connection fails (broker unreachable, refused credentials),
                unless ``retry_at_start``: then it is retried with backoff like a lost broker.
        """
        flusher = asyncio.create_task(self.batcher.run(), name=f"{self.label} flush")
        delays = backoff_delays()
        try:
            while True:
                try:
                    self._client = await self._connect()
                except (asyncio.CancelledError, AdapterError):
                    raise
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}".rstrip(": ") if str(exc) else type(exc).__name__
                    if self.connections == 0 and not self.retry_at_start:
                        raise AdapterError(
                            f"{self.label}: cannot connect to MQTT broker {self.host}:{self.port} "
                            f"({reason}): start the broker or fix host/port/credentials") from None
                    delay = next(delays)
                    log.warning("%s: reconnect to %s:%d failed (%s); retrying in %.1f s",
                                self.label, self.host, self.port, reason, delay)
                    await asyncio.sleep(delay)
                    continue
                self.connections += 1
                delays = backoff_delays()
                self.connected.set()
                log.info("%s: connected to %s:%d, subscribed to %s", self.label, self.host, self.port,
                         ", ".join(r.filter for r in self.rules))
                await self._client.lost.wait()
                self.connected.clear()
                await self._close(self._client)
                log.warning("%s: lost the broker %s:%d; reconnecting", self.label, self.host, self.port)
                await asyncio.sleep(next(delays))
        finally:
            self.connected.clear()
            if self._client is not None:
                await self._close(self._client)
            await cancel_and_wait([flusher])
