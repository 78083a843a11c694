"""Lossless recording of every accepted sample into SQLite (WAL, group commit, acks after commit).

One writer thread owns the connection. Publishers hand it column batches; it takes whatever
is queued (from every connection at once), writes it with ``executemany`` in one transaction,
commits with ``synchronous=FULL`` and only then resolves the publishers' futures, which is
when the bridge sends the acks. A bounded count of queued rows makes publishers wait (the
recording never skips). No per-row index is kept on the hot path.

Schema (``PRAGMA user_version = 1``)::

    channels(id INTEGER PRIMARY KEY, name TEXT UNIQUE)
    sources(id INTEGER PRIMARY KEY, name TEXT UNIQUE, last_seq INTEGER)
    samples(channel INTEGER, time REAL, value REAL, seq INTEGER, source INTEGER)
    channel_meta(name TEXT PRIMARY KEY, meta TEXT)               -- JSON, from ``meta`` messages
    alarms(id, channel, kind, "limit", value, message, state,    -- twin3d.bridge.alarms: the
           raised, acknowledged, acknowledged_by, cleared)       --   latest state of each alarm
    VIEW samples_named(channel, time, value, seq, source)   -- names joined in, for people

Samples from a client that named itself (``hello`` with ``client``) are de-duplicated by
``seq``: a row whose seq is not above the source's committed ``last_seq`` was already recorded
(it is a resend after a lost ack) and is skipped. That makes "acked => present exactly once"
hold across reconnects and server restarts.

A commit that fails (disk full, I/O error) changes nothing: the transaction is rolled back, and
so is everything the writer remembers about it (``last_seq``, new sources, new channels), so
``last_seq`` is always the last *committed* seq. The waiting publishers' futures fail with
:class:`~twin3d.errors.DiskFullError` (or :class:`~twin3d.errors.RecordingError`); the writer
keeps running and the next commit is tried afresh, so acks resume when space returns. Each
incident is logged once, when it starts and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sqlite3
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin3d._types import PathLike
from twin3d.bridge.alarms import Alarm
from twin3d.errors import DiskFullError, RecordingError
from twin3d.model import Sample

__all__ = ["Recorder", "Recovery", "read_alarms", "read_channel_meta", "read_recording", "recover_recording"]

log = logging.getLogger("twin3d.bridge")
_ALARM_COLUMNS = 'id, channel, kind, "limit", value, message, state, raised, acknowledged, acknowledged_by, cleared'

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS sources(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, last_seq INTEGER);
CREATE TABLE IF NOT EXISTS samples(channel INTEGER NOT NULL, time REAL NOT NULL,
                                   value REAL NOT NULL, seq INTEGER, source INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS channel_meta(name TEXT PRIMARY KEY, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms(id INTEGER PRIMARY KEY, channel TEXT NOT NULL, kind TEXT NOT NULL,
                                  "limit" REAL, value REAL, message TEXT NOT NULL, state TEXT NOT NULL,
                                  raised REAL NOT NULL, acknowledged REAL, acknowledged_by TEXT,
                                  cleared REAL);
CREATE VIEW IF NOT EXISTS samples_named AS
  SELECT c.name AS channel, s.time AS time, s.value AS value, s.seq AS seq, src.name AS source
  FROM samples s JOIN channels c ON c.id = s.channel JOIN sources src ON src.id = s.source;
"""


@dataclass(eq=False)
class _Item:
    gid: np.ndarray
    time: np.ndarray
    value: np.ndarray
    seq: np.ndarray
    source: str
    dedup: bool
    future: asyncio.Future[int] | None = field(repr=False)


class Recorder:
    """Group-committing SQLite writer.

    Args:
        path: the recording (created if missing; appended to if it exists).
        synchronous: ``"FULL"`` (an ack survives power loss) or ``"NORMAL"`` (survives a
            process kill only; faster on slow disks).
        max_pending: rows queued before :meth:`submit` makes publishers wait; one source may
            have at most a quarter of them queued, so a heavy publisher cannot make the others
            wait behind its backlog.

    Raises:
        RecordingError: the file is not a twin3d recording or cannot be written.
    """

    def __init__(self, path: PathLike, *, synchronous: str = "FULL", max_pending: int = 400_000) -> None:
        self.path = Path(path)
        self.max_pending = max_pending
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            if tables and "samples" not in tables:
                raise RecordingError(f"{self.path} is an SQLite file but not a twin3d recording; "
                                     "pick another --record path")
            if version > SCHEMA_VERSION:
                raise RecordingError(f"{self.path} was written by a newer twin3d (format {version})")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.channels: dict[str, int] = dict(self._db.execute("SELECT name, id FROM channels"))
            rows = self._db.execute("SELECT name, id, last_seq FROM sources").fetchall()
            self.meta: dict[str, dict[str, Any]] = {
                name: json.loads(text) for name, text in self._db.execute("SELECT name, meta FROM channel_meta")}
            #: every alarm recorded so far (open ones resume where they were)
            self.alarms: list[Alarm] = [Alarm(*row) for row in self._db.execute(
                f"SELECT {_ALARM_COLUMNS} FROM alarms ORDER BY id")]
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"cannot open recording {self.path}: {exc}; if it is damaged, keep its "
                                 f"intact part with: twin3d recover {self.path} -o NEW.sqlite") from None
        self._source_ids = {name: sid for name, sid, _ in rows}
        self._last_seq: dict[str, int] = {name: s for name, _, s in rows if s is not None}
        self._queue: deque[_Item | None] = deque()
        self._meta_pending: dict[str, str] = {}
        self._alarms_pending: dict[int, Alarm] = {}
        self._channels_pending: dict[int, str] = {}   # registered, not yet committed
        self._cv = threading.Condition()
        self._pending = 0
        self._pending_by: dict[str, int] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rows_written = 0
        self.commits = 0
        #: the error of the last commit while commits are failing (``None`` when healthy)
        self.error: RecordingError | None = None
        self._failed_commits = 0
        self._thread = threading.Thread(target=self._run, name="twin3d-recorder", daemon=True)
        self._thread.start()

    def last_seq(self, source: str) -> int | None:
        """The highest committed seq of ``source`` (for resuming), or ``None``."""
        return self._last_seq.get(source)

    async def submit(self, gid: np.ndarray, time: np.ndarray, value: np.ndarray, seq: np.ndarray,
                     source: str, *, dedup: bool = False,
                     channels: list[tuple[int, str]] | None = None) -> asyncio.Future[int]:
        """Queue rows; wait while too many are queued; return a future set after the commit.

        Args:
            gid: (n,) channel ids (new ones listed in ``channels`` as (id, name)).
            time, value, seq: (n,) columns.
            source: who published them.
            dedup: skip rows whose seq is not above the source's committed seq.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        share = max(1, self.max_pending // 4)
        while self._pending >= self.max_pending or self._pending_by.get(source, 0) >= share:
            self._room.clear()
            await self._room.wait()
        fut: asyncio.Future[int] = loop.create_future()
        item = _Item(gid, time, value, seq, source, dedup, fut)
        self._pending += len(gid)
        self._pending_by[source] = self._pending_by.get(source, 0) + len(gid)
        with self._cv:
            if channels:
                self._channels_pending.update(channels)
            self._queue.append(item)
            self._cv.notify()
        return fut

    def submit_meta(self, meta: dict[str, dict[str, Any]]) -> None:
        """Store channel metadata with the next commit (latest wins)."""
        self.meta.update(meta)
        with self._cv:
            self._meta_pending.update({k: json.dumps(v) for k, v in meta.items()})
            self._queue.append(_Item(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
                                     "", False, None))
            self._cv.notify()

    def submit_alarm(self, alarm: Alarm) -> None:
        """Store an alarm's new state with the next commit."""
        with self._cv:
            self._alarms_pending[alarm.id] = alarm
            self._queue.append(_Item(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
                                     "", False, None))
            self._cv.notify()

    def close(self) -> None:
        """Commit what is queued, stop the writer thread and close the file."""
        with self._cv:
            self._queue.append(None)
            self._cv.notify()
        self._thread.join()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.DatabaseError:
            pass
        self._db.close()

    # --- writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                items: list[_Item] = []
                while self._queue:
                    it = self._queue.popleft()
                    if it is None:
                        stop = True
                        break
                    items.append(it)
            if not items:
                continue
            try:
                self._write(items)
            except Exception as exc:  # disk full, I/O error: nothing of this commit happened
                error = self._failure(exc)
                self._resolve(items, error)
                continue
            if self.error is not None:
                log.warning("recording %s: writing again after %d failed commit(s)",
                            self.path, self._failed_commits)
                self.error, self._failed_commits = None, 0
            self._resolve(items, None)

    def _failure(self, exc: Exception) -> RecordingError:
        """The error publishers get for a failed commit; logs once per incident."""
        free = shutil.disk_usage(self.path.resolve().parent).free
        full = ((isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorcode", 0) == 13)
                or (isinstance(exc, OSError) and exc.errno == 28) or free < (1 << 20))
        if full:
            error: RecordingError = DiskFullError(
                self.path, f"{free / 1e6:.1f} MB free; samples are not acked until space is "
                "freed (resend them: twin3d.bridge.Client does)")
        else:
            error = RecordingError(f"cannot write the recording {self.path}: {exc}; samples are "
                                   "not acked until it can be written again")
        self._failed_commits += 1
        if self.error is None:
            log.error("%s", error)
        self.error = error
        return error

    def _write(self, items: list[_Item]) -> None:
        """Write ``items`` in one transaction; the writer's memory changes only if it commits."""
        db = self._db
        with self._cv:
            meta, self._meta_pending = self._meta_pending, {}
            alarms, self._alarms_pending = self._alarms_pending, {}
            channels = dict(self._channels_pending)
        new_sources: dict[str, int] = {}
        last_seq: dict[str, int] = {}
        rows = 0
        try:
            db.execute("BEGIN")
            if meta:
                db.executemany("INSERT OR REPLACE INTO channel_meta(name, meta) VALUES (?, ?)", meta.items())
            if alarms:
                db.executemany(f"INSERT OR REPLACE INTO alarms({_ALARM_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                               [astuple(a) for a in alarms.values()])
            if channels:
                db.executemany("INSERT OR IGNORE INTO channels(id, name) VALUES (?, ?)", channels.items())
            for it in items:
                if it.future is None:
                    continue
                sid = self._source_ids.get(it.source) or new_sources.get(it.source)
                if sid is None:
                    sid = db.execute("INSERT INTO sources(name) VALUES (?)", (it.source,)).lastrowid
                    assert sid is not None
                    new_sources[it.source] = sid
                gid, time, value, seq = it.gid, it.time, it.value, it.seq
                last = last_seq.get(it.source, self._last_seq.get(it.source))
                if it.dedup and last is not None:
                    keep = (seq < 0) | (seq > last)
                    if not keep.all():
                        gid, time, value, seq = gid[keep], time[keep], value[keep], seq[keep]
                n = len(gid)
                if n:
                    seqs = [s if s >= 0 else None for s in seq.tolist()] if (seq < 0).any() else seq.tolist()
                    db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)",
                                   zip(gid.tolist(), time.tolist(), value.tolist(), seqs,
                                       [sid] * n, strict=True))
                    rows += n
                top = int(it.seq.max()) if len(it.seq) else -1
                if top >= 0 and (last is None or top > last):
                    last_seq[it.source] = top
            db.executemany("UPDATE sources SET last_seq = ? WHERE name = ?",
                           [(top, name) for name, top in last_seq.items()])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (e.g. SQLITE_FULL)
                db.execute("ROLLBACK")
            with self._cv:  # keep metadata and alarms for the next commit, unless newer came meanwhile
                self._meta_pending = meta | self._meta_pending
                self._alarms_pending = alarms | self._alarms_pending
            raise
        self._source_ids.update(new_sources)
        self._last_seq.update(last_seq)
        with self._cv:
            for cid in channels:
                self._channels_pending.pop(cid, None)
        self.rows_written += rows
        self.commits += 1

    def _resolve(self, items: list[_Item], exc: RecordingError | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def done() -> None:
            for it in items:
                self._pending -= len(it.gid)
                left = self._pending_by.get(it.source, 0) - len(it.gid)
                if left > 0:
                    self._pending_by[it.source] = left
                else:
                    self._pending_by.pop(it.source, None)
                if it.future is not None and not it.future.done():
                    if exc is None:
                        it.future.set_result(len(it.gid))
                    else:
                        it.future.set_exception(exc)
            self._room.set()   # waiters check their own condition again

        try:
            loop.call_soon_threadsafe(done)
        except RuntimeError:  # loop closed meanwhile
            pass


def read_recording(path: PathLike) -> Iterator[Sample]:
    """Yield every recorded sample in time order (ties in arrival order).

    Args:
        path: a recording written by ``twin3d serve --record``.

    Raises:
        RecordingError: missing file or not a twin3d recording.

    Examples:
        >>> for s in read_recording("run.db"):  # doctest: +SKIP
        ...     print(s.channel, s.time, s.value)
    """
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"{p}: no such recording (write one with twin3d serve --record {p})")
    try:
        db = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{p}: cannot open: {exc}") from None
    try:
        try:
            names = dict(db.execute("SELECT id, name FROM channels"))
            sources = dict(db.execute("SELECT id, name FROM sources"))
            cur = db.execute("SELECT channel, time, value, seq, source FROM samples ORDER BY time, rowid")
            for ch, t, v, s, src in cur:
                yield Sample(names[ch], v, t, s, sources[src])
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise RecordingError(f"{p} is not a twin3d recording ({exc})") from None
            raise _damaged(p, exc) from None
        except (sqlite3.DatabaseError, KeyError) as exc:
            raise _damaged(p, exc) from None
    finally:
        db.close()


def read_channel_meta(path: PathLike) -> dict[str, dict[str, Any]]:
    """The channel metadata of a recording (``meta`` messages, latest per channel).

    Raises:
        RecordingError: missing, damaged or not a twin3d recording.
    """
    return {name: json.loads(text) for name, text in _query(path, "SELECT name, meta FROM channel_meta")}


def read_alarms(path: PathLike) -> list[Alarm]:
    """Every alarm of a recording with its latest state, oldest first.

    Raises:
        RecordingError: missing, damaged or not a twin3d recording.
    """
    return [Alarm(*row) for row in _query(path, f"SELECT {_ALARM_COLUMNS} FROM alarms ORDER BY id",
                                          missing_table_ok=True)]


def _query(path: PathLike, sql: str, *, missing_table_ok: bool = False) -> list[Any]:
    """All rows of one read-only query on a recording (a table it lacks: no rows, if allowed)."""
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"{p}: no such recording")
    try:
        db = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if missing_table_ok and "no such table" in str(exc):
            return []          # recorded before that table existed
        raise _damaged(p, exc) from None
    except sqlite3.DatabaseError as exc:
        raise _damaged(p, exc) from None


def _damaged(path: Path, exc: BaseException) -> RecordingError:
    fixed = path.with_name(f"{path.stem}.recovered{path.suffix or '.sqlite'}")
    return RecordingError(f"{path} is damaged ({exc}); keep its intact part with: "
                          f"twin3d recover {path} -o {fixed}")


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover_recording` kept.

    Args:
        samples: rows copied (the intact prefix, in commit order).
        channels: channels those rows use.
        damage: why reading stopped early, or ``None`` when the whole file was readable.
    """

    samples: int
    channels: int
    damage: str | None


def recover_recording(path: PathLike, output: PathLike) -> Recovery:
    """Copy the intact committed prefix of a damaged recording into a new one.

    Works on a copy of the file (and of its WAL). Rows are read in the order they were committed
    until the first unreadable page; channel, source and metadata rows are kept where readable
    (a sample whose channel or source row is lost gets a placeholder name, ``lost-channel-<id>``).

    Raises:
        RecordingError: ``path`` is missing or not an SQLite file at all.
        OutputError: ``output`` cannot be written (nothing is left behind).
    """

    src = Path(path)
    if not src.is_file():
        raise RecordingError(f"{src}: no such recording")
    with tempfile.TemporaryDirectory(prefix=".twin3d-recover-", dir=Path(output).parent) as folder:
        copy = Path(folder) / src.name    # the damaged file is never written to
        shutil.copyfile(src, copy)
        wal = src.with_name(src.name + "-wal")
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        _trust_file_size(copy)
        try:
            db = sqlite3.connect(copy)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"{src}: not an SQLite recording, nothing to recover ({exc})") from None
        return _copy_prefix(db, output)


def _trust_file_size(path: Path) -> None:
    """A file cut short still says in its header how many pages it had (SQLite file format,
    offset 28); SQLite then refuses even its schema. Say what is really there."""
    with path.open("r+b") as f:
        header = f.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
            return
        page = int.from_bytes(header[16:18], "big") or 65536
        pages = path.stat().st_size // (page if page != 1 else 65536)
        if int.from_bytes(header[28:32], "big") > pages:
            f.seek(28)
            f.write(pages.to_bytes(4, "big"))


def _copy_prefix(db: sqlite3.Connection, output: PathLike) -> Recovery:
    """Stream the readable rows of ``db`` into a new recording at ``output``."""
    from twin3d._io import atomic_output

    def table(sql: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with contextlib.suppress(sqlite3.DatabaseError):
            rows.extend(tuple(row) for row in db.execute(sql))
        return rows

    damage: str | None = None
    n = 0
    with atomic_output(output) as tmp:
        out = sqlite3.connect(tmp)
        try:
            out.executescript(_SCHEMA)
            out.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            out.executemany("INSERT INTO channels(id, name) VALUES (?, ?)", table("SELECT id, name FROM channels"))
            out.executemany("INSERT INTO sources(id, name) VALUES (?, ?)", table("SELECT id, name FROM sources"))
            out.executemany("INSERT INTO channel_meta(name, meta) VALUES (?, ?)",
                            table("SELECT name, meta FROM channel_meta"))
            out.executemany(f"INSERT INTO alarms({_ALARM_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                            table(f"SELECT {_ALARM_COLUMNS} FROM alarms"))
            cur = db.execute("SELECT channel, time, value, seq, source FROM samples ORDER BY rowid")
            try:
                while rows := cur.fetchmany(10_000):
                    out.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)
                    n += len(rows)
            except sqlite3.DatabaseError as exc:
                damage = f"{exc} after {n} samples"
            # rows whose channel or source row was lost get a placeholder name; resume points
            # come from what survived, not from what the damaged file claimed
            out.executescript("""
                INSERT INTO channels(id, name) SELECT DISTINCT channel, 'lost-channel-' || channel
                  FROM samples WHERE channel NOT IN (SELECT id FROM channels);
                INSERT INTO sources(id, name) SELECT DISTINCT source, 'lost-source-' || source
                  FROM samples WHERE source NOT IN (SELECT id FROM sources);
                UPDATE sources SET last_seq = (SELECT max(seq) FROM samples WHERE samples.source = sources.id);
            """)
            used = out.execute("SELECT count(DISTINCT channel) FROM samples").fetchone()[0]
            out.commit()
        finally:
            out.close()
            db.close()
    return Recovery(n, int(used), damage)
