"""Live fan-out: every subscriber gets fresh values or an honest ``gap``, never a silent backlog.

Samples the bridge accepts together form a :class:`Chunk` (columns plus the moment they were
accepted). Each :class:`Subscriber` keeps the chunks it has not sent yet and sends them from its
own task, so a slow viewer never holds up a publisher or another viewer. Its buffer is bounded
twice:

* by **age**: a chunk waiting longer than ``max_staleness`` (``[limits]``, default 1 s) is not
  sent as if it were live; what is waiting collapses to the latest value per channel, and a
  ``gap`` frame saying how many values per channel were skipped goes first;
* by **size**: more than 10,000 waiting values collapse the same way.

Encoding dominates fan-out cost, so a chunk is encoded once and the text is shared by every
subscriber that takes all of it; subscribers with the same subscription share one encoding of
their part. Channel metadata waiting for a subscriber is coalesced too (latest per channel).

Matching a subscription (its globs, and the token's subscribe globs) against channel names:
literal names are looked up in a set, globs compiled into one regular expression; each
channel is matched once per subscriber and remembered. At most ``max_subscribe_patterns``
globs per subscription; the matching of the channels already known is done in slices, so a
subscription against 100,000 channels never freezes the bridge.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import time as clock
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import numpy as np

from twin3d.bridge.protocol import encode_alarm, encode_gap, encode_meta, encode_samples

__all__ = ["BUFFER_VALUES", "FRAME_VALUES", "Chunk", "Matcher", "Subscriber"]

#: values a subscriber may have waiting before they collapse to the latest per channel
BUFFER_VALUES = 10_000
#: values per frame sent to a subscriber (a snapshot of many channels is split: ~350 KB frames
#: stay under websockets' default 1 MiB max_size)
FRAME_VALUES = 5_000
_SLICE = 4096  # channels matched per turn of the event loop


class Chunk:
    """Samples accepted together, shared by every subscriber.

    Args:
        names: the bridge's channel table (id -> name), read when encoding.
        gid: (n,) int64 channel ids.
        time, value: (n,) float64.
        seq: (n,) int64 publisher seq, -1 where none.
        accepted: ``time.monotonic()`` when the bridge accepted them.
    """

    __slots__ = ("_frames", "_parts", "accepted", "gid", "names", "seq", "time", "value")

    def __init__(self, names: Sequence[str], gid: np.ndarray, time: np.ndarray, value: np.ndarray,
                 seq: np.ndarray, accepted: float) -> None:
        self.names, self.gid, self.time, self.value, self.seq = names, gid, time, value, seq
        self.accepted = accepted
        self._frames: list[str] | None = None
        self._parts: dict[str, Chunk | None] = {}

    def __len__(self) -> int:
        return int(self.gid.shape[0])

    def frames(self) -> list[str]:
        """The ``sample``/``samples`` frames of this chunk (at most :data:`FRAME_VALUES` values
        each), encoded once."""
        if self._frames is None:
            names = self.names
            rows = list(zip([names[g] for g in self.gid.tolist()], self.value.tolist(),
                            self.time.tolist(), self.seq.tolist(), strict=True))
            self._frames = [encode_samples(rows[k:k + FRAME_VALUES])
                            for k in range(0, len(rows), FRAME_VALUES)]
        return self._frames

    def part(self, key: str, keep: Callable[[np.ndarray], np.ndarray]) -> Chunk | None:
        """The rows ``keep(gid)`` selects (``None``: none), computed once per subscription ``key``."""
        if key not in self._parts:
            mask = keep(self.gid)
            self._parts[key] = (self if mask.all() else None if not mask.any() else
                                Chunk(self.names, self.gid[mask], self.time[mask], self.value[mask],
                                      self.seq[mask], self.accepted))
        return self._parts[key]


def _latest(chunks: Sequence[Chunk], skipped: dict[int, int]) -> Chunk:
    """The latest row per channel of ``chunks``; adds how many were dropped per channel to ``skipped``."""
    gid = np.concatenate([c.gid for c in chunks])
    uniq, first_rev, counts = np.unique(gid[::-1], return_index=True, return_counts=True)
    last = np.sort(len(gid) - 1 - first_rev)
    for g, n in zip(uniq.tolist(), counts.tolist(), strict=True):
        if n > 1:
            skipped[g] = skipped.get(g, 0) + n - 1
    time = np.concatenate([c.time for c in chunks])[last]
    value = np.concatenate([c.value for c in chunks])[last]
    seq = np.concatenate([c.seq for c in chunks])[last]
    return Chunk(chunks[0].names, gid[last], time, value, seq, chunks[-1].accepted)


class Matcher:
    """Which channels a subscription may and wants to see.

    Args:
        patterns: the subscription's channel globs (fnmatch: ``*`` also crosses ``/``).
        allowed: the token's subscribe globs.
    """

    def __init__(self, patterns: Sequence[str], allowed: Sequence[str]) -> None:
        self.key = "\x00".join(sorted(patterns)) + "\x01" + "\x00".join(sorted(allowed))
        self.everything = "*" in patterns and "*" in allowed
        self._wanted = self._compile(patterns)
        self._allowed = self._compile(allowed)

    @staticmethod
    def _compile(globs: Sequence[str]) -> Callable[[str], bool]:
        literal = frozenset(g for g in globs if not set("*?[") & set(g))
        wild = [g for g in globs if g not in literal]
        if not wild:
            return literal.__contains__
        rx = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in wild))
        return lambda name: name in literal or rx.match(name) is not None

    def __call__(self, name: str) -> bool:
        return self.everything or (self._allowed(name) and self._wanted(name))


class Subscriber:
    """One live subscriber: its matches, its waiting chunks and metadata, its sender task.

    Args:
        matcher: what it may and wants to see.
        names: the bridge's channel table (id -> name; it only grows).
        queue_frame: hands one encoded frame to the connection (sans-I/O write buffer).
        flush: sends what was handed over; raises ``TimeoutError`` if the peer stops reading.
        max_staleness: seconds a value may wait before it is replaced by a gap + the latest.
    """

    def __init__(self, matcher: Matcher, names: list[str], queue_frame: Callable[[str], None],
                 flush: Callable[[], Awaitable[None]], max_staleness: float) -> None:
        self.matcher, self.names = matcher, names
        self._queue_frame, self._flush = queue_frame, flush
        self.max_staleness = max_staleness
        self._lut = np.zeros(0, dtype=np.int8)        # 1 wanted, -1 not, 0 not matched yet
        self._chunks: list[Chunk] = []
        self._count = 0
        self._skipped: dict[int, int] = {}
        self._reasons: set[str] = set()
        self._meta: dict[str, dict[str, Any]] = {}
        self._alarms: dict[int, dict[str, Any]] = {}
        self._wake = asyncio.Event()

    async def match_known(self) -> None:
        """Match every channel known now, a slice per turn of the event loop."""
        for start in range(0, len(self.names), _SLICE):
            self._grow(min(start + _SLICE, len(self.names)))
            await asyncio.sleep(0)

    def wants(self, name: str) -> bool:
        return self.matcher(name)

    def _grow(self, size: int) -> None:
        old = self._lut.shape[0]
        if size <= old:
            return
        lut = np.zeros(size, dtype=np.int8)
        lut[:old] = self._lut
        names, match = self.names, self.matcher
        lut[old:] = [1 if match(names[g]) else -1 for g in range(old, size)]
        self._lut = lut

    def _keep(self, gid: np.ndarray) -> np.ndarray:
        self._grow(int(gid.max()) + 1)
        keep: np.ndarray = self._lut[gid] > 0
        return keep

    def offer(self, chunk: Chunk, *, fresh: bool = True) -> None:
        """Queue what this subscriber wants of ``chunk`` (``fresh=False``: a snapshot, whose age
        is not a backlog)."""
        mine = chunk if self.matcher.everything else chunk.part(self.matcher.key, self._keep)
        if mine is None:
            return
        if not fresh:
            mine = Chunk(mine.names, mine.gid, mine.time, mine.value, mine.seq, clock.monotonic())
        self._chunks.append(mine)
        self._count += len(mine)
        if self._count > BUFFER_VALUES:
            self._collapse("overflow")
        self._wake.set()

    def offer_meta(self, meta: Mapping[str, Mapping[str, Any]]) -> None:
        """Queue the metadata of wanted channels (latest per channel)."""
        wanted = {k: dict(v) for k, v in meta.items() if self.matcher(k)}
        if wanted:
            self._meta.update(wanted)
            self._wake.set()

    def offer_alarm(self, alarm: Mapping[str, Any]) -> None:
        """Queue an alarm's new state if this subscriber sees its channel (latest per alarm)."""
        if self.matcher(alarm["channel"]):
            self._alarms[alarm["id"]] = dict(alarm)
            self._wake.set()

    def _collapse(self, reason: str) -> None:
        self._chunks = [_latest(self._chunks, self._skipped)]
        self._count = len(self._chunks[0])
        self._reasons.add(reason)

    async def run(self) -> None:
        """Send until cancelled; the flush's ``TimeoutError`` (a peer not reading) ends it.

        Before each frame: waiting metadata, then a ``gap`` for whatever was collapsed meanwhile
        (too much waiting, or waiting too long), so a gap always precedes the values after it.
        """
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                if self._meta:
                    meta, self._meta = self._meta, {}
                    self._queue_frame(encode_meta(meta))
                if self._alarms:
                    alarms, self._alarms = self._alarms, {}
                    for alarm in alarms.values():
                        self._queue_frame(encode_alarm(alarm))
                if self._chunks and clock.monotonic() - self._chunks[0].accepted > self.max_staleness:
                    self._collapse("stale")
                if self._skipped:
                    skipped, self._skipped = self._skipped, {}
                    reasons, self._reasons = self._reasons, set()
                    self._queue_frame(encode_gap({self.names[g]: n for g, n in skipped.items()},
                                                 "stale" if "stale" in reasons else "overflow"))
                if not self._chunks:
                    break
                chunk = self._chunks.pop(0)
                self._count -= len(chunk)
                for frame in chunk.frames():
                    self._queue_frame(frame)
                    await self._flush()
            await self._flush()
