"""Recording tools behind ``twin3d export`` and ``twin3d replay``."""

from __future__ import annotations

import csv
import time as clock
from collections.abc import Iterator
from pathlib import Path

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.bridge.pacing import Pace
from twin3d.bridge.recorder import read_recording
from twin3d.errors import OutputError, RecordingError
from twin3d.model import Sample

__all__ = ["check_output_suffix", "export_alarms", "export_csv", "export_usd", "replay"]

CSV_HEADER = ("channel", "time", "value", "seq", "source")
ALARM_CSV_HEADER = ("id", "channel", "kind", "limit", "value", "message", "state", "raised",
                    "acknowledged", "acknowledged_by", "cleared")


def export_csv(recording: PathLike, output: PathLike) -> int:
    """Write every recorded sample, in time order, as CSV ``channel,time,value,seq,source``.

    Returns:
        the number of rows written.

    Raises:
        RecordingError: the recording cannot be read.
        OutputError: the output cannot be written (nothing is left behind).
    """
    rows = read_recording(recording)
    n = 0
    with atomic_output(output) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for s in rows:
            w.writerow((s.channel, repr(s.time), repr(s.value), "" if s.seq is None else s.seq,
                        s.source or ""))
            n += 1
    return n


def export_usd(recording: PathLike, output: PathLike, stage: PathLike | None = None, *,
               fps: float = 10.0, skip_unknown: bool = False) -> int:
    """Write the recording as USD time samples (``twin3d.record_samples``, the bindings room).

    Args:
        recording: the SQLite recording.
        output: ``out.usdc``.
        stage: the bound stage whose sensor prims get the values (``None``: one prim per
            channel under ``/Recording``).
        fps: timeCodesPerSecond of the output.
        skip_unknown: drop channels that are not bound on ``stage`` instead of failing.

    Returns:
        the number of samples written.
    """
    from twin3d.usd.timesamples import record_samples

    samples = list(read_recording(recording))
    if not samples:
        raise RecordingError(f"{recording} holds no samples: nothing to export")
    record_samples(output, samples, stage=stage, fps=fps, skip_unknown=skip_unknown)
    return len(samples)


async def replay(recording: PathLike, url: str, *, speed: float = 1.0, token: str | None = None) -> int:
    """Publish a recording (or a CSV file, long or wide) into a bridge, keeping the recorded times.

    Args:
        speed: 1 = real time, 2 = twice as fast, 0 = as fast as possible.

    Returns:
        the number of samples acknowledged.
    """
    from twin3d.bridge.client import Client

    pace = Pace(speed)
    if Path(recording).suffix.lower() == ".csv":
        from twin3d.bridge.adapters.csv import read_csv

        samples: Iterator[Sample] = read_csv(recording)
    else:
        samples = read_recording(recording)
    n = 0
    async with Client(url, token, client_id=f"replay-{Path(recording).name}-{clock.time():.0f}") as c:
        for s in samples:
            await pace.wait(s.time)
            await c.publish(s.channel, s.value, s.time)
            n += 1
        await c.flush()
    return n


def export_alarms(recording: PathLike, output: PathLike) -> int:
    """Write every alarm of a recording, one row each with its latest state, as CSV
    (``id,channel,kind,limit,value,message,state,raised,acknowledged,acknowledged_by,cleared``).

    Returns:
        the number of alarms written.
    """
    from twin3d.bridge.recorder import read_alarms

    alarms = read_alarms(recording)
    with atomic_output(output) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(ALARM_CSV_HEADER)
        for a in alarms:
            w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                        for v in (a.id, a.channel, a.kind, a.limit, a.value, a.message, a.state, a.raised,
                                  a.acknowledged, a.acknowledged_by, a.cleared)])
    return len(alarms)


def check_output_suffix(output: PathLike) -> str:
    """``csv``, ``usd`` or ``mcap`` from the output's suffix."""
    suffix = Path(output).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".usd", ".usdc", ".usda"):
        return "usd"
    if suffix == ".mcap":
        return "mcap"
    raise OutputError(output, "unknown format; use out.csv, out.usdc or out.mcap")
