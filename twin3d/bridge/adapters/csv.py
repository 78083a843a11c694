"""CSV sources: read recorded values from CSV files and replay them into the bridge.

Two layouts are recognised from the header row (names are case-insensitive, ``timestamp`` may
stand for ``time``):

- long: ``time,channel,value[,seq]`` in any order, extra columns (``source``, ``unit`` ...)
  ignored. This is the layout ``twin3d export REC -o out.csv`` writes, so exports replay as is.
- wide: ``time`` plus one column per channel, e.g. ``time,plate/tc1,plate/tc2``; empty cells
  are skipped (channels sampled at different rates).

Times are Unix seconds or ISO 8601 (naive times are UTC). The delimiter (``,`` ``;`` or tab) is
detected from the header. A bad row raises :class:`~twin3d.errors.AdapterError` naming the file,
the line and the fix.

The ``[[csv]]`` table of bridge.toml replays a file into the bridge::

    [[csv]]
    path = "runs/heat-test.csv"   # relative to the folder of bridge.toml
    speed = 1.0        # 1 = recorded pace, 10 = ten times faster, 0 = as fast as the bridge takes it
    restamp = true     # shift times so the replay happens "now" (false: keep the recorded times)
    loop = false       # start again at the end
"""

from __future__ import annotations

import asyncio
import csv
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from twin3d._types import PathLike
from twin3d.bridge.adapters._base import Batcher, Ingest, Table, parse_time, to_value
from twin3d.bridge.pacing import Pace
from twin3d.errors import AdapterError
from twin3d.model import Sample

__all__ = ["CsvReplay", "read_csv"]

log = logging.getLogger(__name__)

_KEYS = ("name", "path", "speed", "restamp", "loop", "max_batch", "delimiter")
_TIME_NAMES = ("time", "timestamp")


def _open(path: Path) -> Any:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise AdapterError(f"{path}: no such file: check the path") from None
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(path: PathLike, *, delimiter: str | None = None) -> Iterator[Sample]:
    """Read samples from a CSV file in long or wide layout, in file order.

    Args:
        path: the CSV file.
        delimiter: column separator; detected from the header when ``None``.

    Yields:
        One :class:`~twin3d.model.Sample` per value (wide rows give one per non-empty cell).

    Raises:
        AdapterError: missing file, no header, no time column, or a bad row
            (``"data.csv:17: value 'abc' of channel 'plate/tc1' is not a number: ..."``).

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.csv"
        >>> _ = p.write_text("time,plate/tc1,plate/tc2\\n0.0,20.5,21\\n1.0,,22\\n")
        >>> [(s.channel, s.value, s.time) for s in read_csv(p)]
        [('plate/tc1', 20.5, 0.0), ('plate/tc2', 21.0, 0.0), ('plate/tc2', 22.0, 1.0)]
    """
    path = Path(path)
    with _open(path) as f:
        try:
            first = f.readline()
        except UnicodeDecodeError:
            raise AdapterError(f"{path}: not a UTF-8 text file: export it as CSV (UTF-8)") from None
        if not first.strip():
            raise AdapterError(f"{path}:1: no header row: start the file with "
                               "'time,channel,value' (long) or 'time,<channel>,...' (wide)")
        sep = delimiter or _delimiter(first)
        header = [h.strip() for h in next(csv.reader([first], delimiter=sep))]
        names = [h.lower() for h in header]
        t_col = next((names.index(n) for n in _TIME_NAMES if n in names), None)
        if t_col is None:
            raise AdapterError(f"{path}:1: no 'time' column in header {','.join(header)!r}: "
                               "name the Unix-seconds or ISO 8601 column 'time'")
        rows = csv.reader(f, delimiter=sep)
        try:
            if "channel" in names and "value" in names:
                yield from _read_long(path, rows, names, t_col)
            else:
                yield from _read_wide(path, rows, header, t_col)
        except UnicodeDecodeError:
            raise AdapterError(f"{path}:{rows.line_num + 1}: not UTF-8 text: save the file as UTF-8") from None
        except csv.Error as exc:
            raise AdapterError(f"{path}:{rows.line_num + 1}: {exc}: fix the quoting of this row") from None


def _row_time(path: Path, line: int, cell: str) -> float:
    try:
        return parse_time(cell)
    except ValueError:
        raise AdapterError(f"{path}:{line}: time {cell!r} is neither Unix seconds nor ISO 8601: "
                           "fix or delete the row") from None


def _read_long(path: Path, rows: Any, names: list[str], t_col: int) -> Iterator[Sample]:
    c_col, v_col = names.index("channel"), names.index("value")
    s_col = names.index("seq") if "seq" in names else None
    width = len(names)
    for row in rows:
        line = rows.line_num + 1  # +1: the header was read before the reader started
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) < width:
            raise AdapterError(f"{path}:{line}: {len(row)} columns, the header has {width}: "
                               "fix or delete the row")
        channel = row[c_col].strip()
        if not channel:
            raise AdapterError(f"{path}:{line}: empty channel: fill it in or delete the row")
        cell = row[v_col].strip()
        try:
            value = to_value(cell)
        except ValueError:
            raise AdapterError(f"{path}:{line}: value {cell!r} of channel {channel!r} is not a finite "
                               "number: fix or delete the row") from None
        seq = None
        if s_col is not None and row[s_col].strip():
            try:
                seq = int(row[s_col])
            except ValueError:
                raise AdapterError(f"{path}:{line}: seq {row[s_col]!r} is not an integer: "
                                   "fix it or leave the cell empty") from None
        yield Sample(channel, value, _row_time(path, line, row[t_col].strip()), seq)


def _read_wide(path: Path, rows: Any, header: list[str], t_col: int) -> Iterator[Sample]:
    columns = [(i, h) for i, h in enumerate(header) if i != t_col]
    if not columns:
        raise AdapterError(f"{path}:1: only a time column: add one column per channel "
                           "(wide) or 'channel,value' columns (long)")
    seen: set[str] = set()
    for _, name in columns:
        if not name:
            raise AdapterError(f"{path}:1: a column without a name: name every channel column")
        if name in seen:
            raise AdapterError(f"{path}:1: column {name!r} appears twice: give each channel one column")
        seen.add(name)
    width = len(header)
    for row in rows:
        line = rows.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            raise AdapterError(f"{path}:{line}: {len(row)} columns, the header has {width}: "
                               "fix or delete the row")
        t = _row_time(path, line, row[t_col].strip())
        for i, channel in columns:
            cell = row[i].strip()
            if not cell:
                continue
            try:
                value = to_value(cell)
            except ValueError:
                raise AdapterError(f"{path}:{line}: value {cell!r} of channel {channel!r} is not a "
                                   "finite number: fix it or leave the cell empty") from None
            yield Sample(channel, value, t)


class CsvReplay:
    """Replays one ``[[csv]]`` table's file into ``ingest`` at the recorded pace (times ``speed``).

    Args:
        table: the raw ``[[csv]]`` table.
        ingest: ``await ingest(samples, source)``.
        index: position among the ``[[csv]]`` tables (for messages).
        base_dir: folder that relative paths are resolved against (bridge.toml's folder).

    Raises:
        AdapterError: a missing ``path``, a file that does not exist, or bad options.
    """

    kind = "csv"

    def __init__(self, table: Mapping[str, Any], ingest: Ingest, *, index: int = 0,
                 base_dir: PathLike | None = None) -> None:
        t = Table("csv", index, table, _KEYS)
        raw = t.get("path", str, required=True, example='"runs/test.csv"')
        path = Path(raw).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise t.error(f"path = {raw!r}: no such file ({path}): fix the path")
        self.path = path
        self.speed = t.number("speed", 1.0, example="1.0")
        self.restamp = bool(t.get("restamp", bool, True))
        self.loop = bool(t.get("loop", bool, False))
        self.delimiter = t.get("delimiter", str, None, example='";"')
        self.label = t.label
        self.source = t.source(f"csv:{path.name}")
        self.batcher = Batcher(ingest, self.source, max_batch=int(t.number("max_batch", 1000, minimum=1)),
                               logger=log)
        self.connected = asyncio.Event()
        self.done = False

    async def run(self) -> None:
        """Replay the file (forever when ``loop``); raises AdapterError on a bad row."""
        self.connected.set()
        log.info("%s: replaying %s (speed %g)", self.label, self.path, self.speed)
        shift = 0.0
        while True:
            span = await self._replay_once(shift)
            if not self.loop or span is None:
                break
            shift += span  # recorded times of the next pass follow on from this one
        self.done = True
        log.info("%s: replay of %s finished (%d samples)", self.label, self.path, self.batcher.ingested)

    async def _replay_once(self, shift: float) -> float | None:
        """One pass over the file; returns its time span (seconds, recorded clock), None if empty."""
        start_unix = time.time()
        pace = Pace(self.speed)
        scale = self.speed if self.speed > 0 else 1.0
        t0: float | None = None
        rel = 0.0
        batcher = self.batcher
        for sample in read_csv(self.path, delimiter=self.delimiter):
            if t0 is None:
                t0 = sample.time
            rel = sample.time - t0
            if pace.delay(sample.time) > 0.001:
                await batcher.flush()
                await pace.wait(sample.time)
            if self.restamp:
                sample = Sample(sample.channel, sample.value, start_unix + rel / scale, sample.seq)
            elif shift:
                sample = Sample(sample.channel, sample.value, sample.time + shift, sample.seq)
            batcher.add(sample)
            if batcher.pending >= batcher.max_batch:
                await batcher.flush()
                await asyncio.sleep(0)  # ingest may not suspend: let the rest of the bridge run
        await batcher.flush()
        return None if t0 is None else rel + 1e-3
