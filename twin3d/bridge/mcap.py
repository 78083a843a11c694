"""A recording as MCAP, for Foxglove / Lichtblick and Rerun: ``twin3d export REC -o run.mcap``.

Written with Foxglove's own SDK (``foxglove-sdk``), JSON-encoded messages with JSON schemas:

* one topic per channel, named like the channel (``plate/tc3``), schema ``twin3d.Sample``:
  ``{"value", "unit", "quantity", "state", "seq", "source"}`` at the sample's time; unit and
  quantity come from the channel's metadata, or from the bound stage when one is given, and
  ``state`` (``ok``/``warn``/``alarm``) from the stage's limits (``ok`` without them);
* ``twin3d/alarms``, schema ``twin3d.AlarmEvent``: every transition of every alarm (raised,
  acknowledged, cleared), with the alarm's fields.

Log and publish times are the samples' own times (Unix nanoseconds), so Foxglove's timeline is
the plant's clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.bridge.alarms import Alarm
from twin3d.bridge.recorder import read_alarms, read_channel_meta, read_recording
from twin3d.errors import OutputError, RecordingError, reason
from twin3d.model import Limits

__all__ = ["ALARM_SCHEMA", "SAMPLE_SCHEMA", "export_mcap"]

SAMPLE_SCHEMA: dict[str, Any] = {
    "title": "twin3d.Sample",
    "type": "object",
    "properties": {
        "value": {"type": "number", "description": "the reading, in unit"},
        "unit": {"type": "string"},
        "quantity": {"type": "string", "description": "temperature, strain, force ..."},
        "state": {"type": "string", "enum": ["ok", "warn", "alarm"], "description": "against the limits"},
        "seq": {"type": ["integer", "null"], "description": "the publisher's sequence number"},
        "source": {"type": "string", "description": "who published it"},
    },
}

ALARM_SCHEMA: dict[str, Any] = {
    "title": "twin3d.AlarmEvent",
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["raised", "acknowledged", "cleared"]},
        "id": {"type": "integer"},
        "channel": {"type": "string"},
        "kind": {"type": "string"},
        "limit": {"type": ["number", "null"]},
        "value": {"type": ["number", "null"]},
        "message": {"type": "string"},
        "state": {"type": "string", "description": "ISA-18.2 state after the event"},
        "acknowledged_by": {"type": ["string", "null"]},
    },
}


def _events(alarm: Alarm) -> Iterator[tuple[float, str, str]]:
    """(time, event, state after it) of each transition the record keeps."""
    after_raise = "active"
    yield alarm.raised, "raised", after_raise
    steps = [(t, e) for t, e in ((alarm.acknowledged, "acknowledged"), (alarm.cleared, "cleared"))
             if t is not None]
    state = after_raise
    for t, event in sorted(steps):
        if event == "acknowledged":
            state = "cleared" if state == "returned" else "acknowledged"
        else:
            state = "cleared" if state == "acknowledged" else "returned"
        yield t, event, state


def export_mcap(recording: PathLike, output: PathLike, *,
                describe: Mapping[str, tuple[str, str, Limits | None]] | None = None) -> tuple[int, int]:
    """Write a recording as MCAP.

    Args:
        recording: a recording of ``twin3d serve --record``.
        output: the ``.mcap`` file (written atomically).
        describe: channel -> (quantity, unit, limits) from a bound stage; overrides metadata.

    Returns:
        (samples written, alarm events written).

    Raises:
        RecordingError: the recording cannot be read.
        OutputError: the output cannot be written; or ``foxglove-sdk`` is missing.
    """
    try:
        import foxglove
    except ImportError:
        raise OutputError(output, "MCAP export needs foxglove-sdk: pip install foxglove-sdk") from None
    samples = read_recording(recording)
    first = next(samples, None)
    if first is None:
        raise RecordingError(f"{recording} holds no samples: nothing to export")
    meta = read_channel_meta(recording)
    described = dict(describe or {})
    alarms = read_alarms(recording)
    n_samples = n_events = 0
    ctx = foxglove.Context()
    channels: dict[str, Any] = {}
    with atomic_output(output) as tmp:
        tmp.unlink()   # the SDK refuses to overwrite
        try:
            with foxglove.open_mcap(str(tmp), context=ctx):
                for s in itertools.chain([first], samples):
                    ch = channels.get(s.channel)
                    if ch is None:
                        ch = channels[s.channel] = foxglove.Channel(s.channel, schema=SAMPLE_SCHEMA, context=ctx)
                    m = meta.get(s.channel, {})
                    quantity, unit, limits = described.get(
                        s.channel, (str(m.get("quantity", "")), str(m.get("unit", "")), None))
                    state: str = limits.state(s.value) if limits is not None else "ok"
                    ch.log({"value": s.value, "unit": unit, "quantity": quantity, "state": state,
                            "seq": s.seq, "source": s.source or ""}, log_time=int(s.time * 1e9))
                    n_samples += 1
                if alarms:
                    topic = foxglove.Channel("twin3d/alarms", schema=ALARM_SCHEMA, context=ctx)
                    rows = sorted((t, e, st, a) for a in alarms for t, e, st in _events(a))
                    for t, event, state, a in rows:
                        topic.log({"event": event, "id": a.id, "channel": a.channel, "kind": a.kind,
                                   "limit": a.limit, "value": a.value, "message": a.message,
                                   "state": state, "acknowledged_by": a.acknowledged_by},
                                  log_time=int(t * 1e9))
                        n_events += 1
        except (RecordingError, OutputError):
            raise
        except Exception as exc:  # the SDK's own errors (I/O): one line
            raise OutputError(output, reason(exc)) from None
    return n_samples, n_events
