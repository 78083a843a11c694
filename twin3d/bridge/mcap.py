"""A recording as MCAP, for Foxglove / Lichtblick and Rerun: ``twin3d export REC -o run.mcap``.

Written with Foxglove's own SDK (``foxglove-sdk``), JSON-encoded messages with JSON schemas:

* one topic per channel, named like the channel (``plate/tc3``), schema ``twin3d.Sample``:
  ``{"value", "unit", "quantity", "state", "seq", "source"}`` at the sample's time; unit and
  quantity come from the channel's metadata, or from the bound stage when one is given, and
  ``state`` (``ok``/``warn``/``alarm``) from the stage's limits (``ok`` without them);
* ``twin3d/alarms``, schema ``twin3d.AlarmEvent``: every transition of every alarm (raised,
  acknowledged, cleared), with the alarm's fields.

Given the bound stage, a twin's ``.twin.usda`` or a USD recording of the run (``stage``; read
with :mod:`twin3d.usd.playback`), the channels are described from its sensors, and the twin
itself goes along as Foxglove scene messages (protobuf, Foxglove's own schemas), shown by the
3D panel:

* ``twin3d/scene``, ``foxglove.SceneUpdate``: one entity per mesh (id = the mesh's path), a
  ``TriangleListPrimitive`` with indices, in its frame, in metres. Meshes that show a field
  carry per-vertex colours (the field through its colour map, the entity's metadata naming
  the field and its range); the others their material's colour. All meshes go at the start;
  afterwards, at each time a USD recording holds fields (not at every sample), only the
  coloured meshes go again (an entity replaces the one with its id);
* ``twin3d/tf``, ``foxglove.FrameTransforms``: when the stage has moving parts, the pose of
  every moving frame (``world`` -> the bound prim's path) at the start and at every time a
  channel that moves one has a sample (samples at one time make one message); the meshes of
  a moving part are in its frame (``frame_locked``), so parts move by transforms alone.

Deformed shapes a USD recording holds are not exported (the meshes are at rest).

Log and publish times are the samples' own times (Unix nanoseconds), so Foxglove's timeline is
the plant's clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.bridge.alarms import Alarm
from twin3d.bridge.recorder import read_alarms, read_channel_meta, read_recording
from twin3d.errors import OutputError, RecordingError, reason
from twin3d.model import Limits, Sample

if TYPE_CHECKING:
    from twin3d.usd.playback import Playback, PlayedMesh

__all__ = ["ALARM_SCHEMA", "SAMPLE_SCHEMA", "SCENE_TOPIC", "TRANSFORMS_TOPIC", "McapSummary",
           "export_mcap"]

#: Topic of the twin's meshes (``foxglove.SceneUpdate``).
SCENE_TOPIC = "twin3d/scene"
#: Topic of the moving parts' frames (``foxglove.FrameTransforms``).
TRANSFORMS_TOPIC = "twin3d/tf"

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


@dataclass(frozen=True)
class McapSummary:
    """What :func:`export_mcap` wrote.

    Attributes:
        samples: channel samples.
        alarm_events: alarm transitions.
        scene_updates: ``twin3d/scene`` messages (0 without a stage).
        transforms: ``twin3d/tf`` messages.
        meshes: meshes in the scene.
    """

    samples: int
    alarm_events: int
    scene_updates: int = 0
    transforms: int = 0
    meshes: int = 0


def _ns(t: float) -> int:
    """A time in Unix seconds as MCAP's log time (nanoseconds), as the samples have it."""
    return int(t * 1e9)


def _stamp(t: float) -> Any:
    from foxglove.messages import Timestamp

    ns = _ns(t)
    return Timestamp(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)


class _Scene:
    """Writes the twin's scene and its moving frames beside the samples, in time order."""

    def __init__(self, playback: Playback, ctx: Any) -> None:
        from foxglove.channels import FrameTransformsChannel, SceneUpdateChannel
        from foxglove.messages import Point3

        self.playback = playback
        self.scene = SceneUpdateChannel(SCENE_TOPIC, context=ctx)
        self.tf = FrameTransformsChannel(TRANSFORMS_TOPIC, context=ctx) if playback.frames else None
        self._points = [[Point3(x=x, y=y, z=z) for x, y, z in m.points.tolist()]
                        for m in playback.meshes]
        self._indices = [m.faces.reshape(-1).tolist() for m in playback.meshes]
        self._shown: dict[int, np.ndarray] = {}   # mesh -> the colours last sent
        self._fields = list(playback.field_times)
        self._values: dict[str, float] = {}
        self._moved_at: float | None = None      # time of motion samples not yet written
        self.started = False
        self.updates = self.transforms = 0

    def _entity(self, i: int, mesh: PlayedMesh, t: float, colors: np.ndarray | None) -> Any:
        from foxglove.messages import (
            Color,
            KeyValuePair,
            Pose,
            Quaternion,
            SceneEntity,
            TriangleListPrimitive,
            Vector3,
        )

        pose = Pose(position=Vector3(x=0.0, y=0.0, z=0.0),
                    orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
        if colors is None:
            r, g, b = mesh.color
            tri = TriangleListPrimitive(pose=pose, points=self._points[i], indices=self._indices[i],
                                        color=Color(r=r, g=g, b=b, a=1.0))
        else:
            tri = TriangleListPrimitive(pose=pose, points=self._points[i], indices=self._indices[i],
                                        colors=[Color(r=r, g=g, b=b, a=1.0)
                                                for r, g, b in colors.tolist()])
        meta = []
        if mesh.field is not None:
            f = mesh.field
            meta = [KeyValuePair(key="field", value=f.quantity),
                    KeyValuePair(key="range", value=f"{f.vmin:g} .. {f.vmax:g}"),
                    KeyValuePair(key="colormap", value=f.cmap)]
        return SceneEntity(timestamp=_stamp(t), frame_id=mesh.frame, id=mesh.path,
                           frame_locked=mesh.moves, metadata=meta, triangles=[tri])

    def _update(self, t: float, every: bool) -> None:
        """Log the meshes at ``t``: all (``every``), else those whose colours changed."""
        from foxglove.messages import SceneUpdate

        entities = []
        for i, mesh in enumerate(self.playback.meshes):
            if mesh.field is None:
                if every:
                    entities.append(self._entity(i, mesh, t, None))
                continue
            colors = self.playback.colors(mesh, t)
            last = self._shown.get(i)
            if not every and last is not None and np.array_equal(colors, last):
                continue
            self._shown[i] = colors
            entities.append(self._entity(i, mesh, t, colors))
        if entities:
            self.scene.log(SceneUpdate(entities=entities), log_time=_ns(t))
            self.updates += 1

    def _poses(self, t: float) -> None:
        from foxglove.messages import FrameTransform, FrameTransforms, Quaternion, Vector3
        from scipy.spatial.transform import Rotation

        from twin3d.usd.playback import WORLD

        if self.tf is None:
            return
        out = []
        for frame, m in self.playback.poses(self._values).items():
            x, y, z, w = Rotation.from_matrix(m[:3, :3]).as_quat().tolist()
            out.append(FrameTransform(timestamp=_stamp(t), parent_frame_id=WORLD,
                                      child_frame_id=frame,
                                      translation=Vector3(x=float(m[0, 3]), y=float(m[1, 3]),
                                                          z=float(m[2, 3])),
                                      rotation=Quaternion(x=x, y=y, z=z, w=w)))
        self.tf.log(FrameTransforms(transforms=out), log_time=_ns(t))
        self.transforms += 1

    def until(self, t: float) -> None:
        """Write what happened before ``t``: the start, moves, recorded fields up to ``t``."""
        if not self.started:
            self.started = True
            t0 = min([t, *self._fields[:1]])
            self._update(t0, every=True)
            if self.tf is not None:  # the frames at t0: with the values of samples at t0
                self._moved_at = t0
            self._fields = [ft for ft in self._fields if ft > t0]
        if self._moved_at is not None and self._moved_at < t:
            while self._fields and self._fields[0] < self._moved_at:
                self._update(self._fields.pop(0), every=False)
            self._poses(self._moved_at)
            self._moved_at = None
        while self._fields and self._fields[0] <= t:
            self._update(self._fields.pop(0), every=False)

    def observe(self, sample: Sample) -> None:
        """Take a sample's value if it moves a part (written once its time is complete)."""
        if sample.channel in self.playback.motion_channels:
            self._values[sample.channel] = sample.value
            self._moved_at = sample.time

    def finish(self) -> None:
        """Write the moves and recorded fields still pending."""
        self.until(float("inf"))


def export_mcap(recording: PathLike, output: PathLike, *,
                stage: PathLike | None = None) -> McapSummary:
    """Write a recording as MCAP.

    Args:
        recording: a recording of ``twin3d serve --record``.
        output: the ``.mcap`` file (written atomically).
        stage: the bound stage, a twin's ``.twin.usda`` or a USD recording of the run: its
            sensors describe the channels (quantity, unit, limits: over the recording's own
            metadata) and its meshes, field colours and moving parts go as the scene.

    Returns:
        what was written.

    Raises:
        RecordingError: the recording cannot be read.
        StageError: the stage cannot be read.
        OutputError: the output cannot be written; or ``foxglove-sdk`` is missing.

    Examples:
        >>> export_mcap("run.sqlite", "run.mcap", stage="recording.usdc")  # doctest: +SKIP
        McapSummary(samples=4515, alarm_events=2, scene_updates=46, transforms=0, meshes=2)
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
    alarms = read_alarms(recording)
    playback = None
    described: dict[str, tuple[str, str, Limits | None]] = {}
    if stage is not None:
        from twin3d.usd.bindings import read_sensors
        from twin3d.usd.playback import open_playback

        playback = open_playback(stage)
        described = {ch: (s.quantity, s.unit, s.limits)
                     for ch, s in read_sensors(playback.stage).items()}
    n_samples = n_events = 0
    ctx = foxglove.Context()
    channels: dict[str, Any] = {}
    with atomic_output(output) as tmp:
        tmp.unlink()   # the SDK refuses to overwrite
        try:
            with foxglove.open_mcap(str(tmp), context=ctx):
                scene = None if playback is None else _Scene(playback, ctx)
                for s in itertools.chain([first], samples):
                    if scene is not None:
                        scene.until(s.time)
                    ch = channels.get(s.channel)
                    if ch is None:
                        ch = channels[s.channel] = foxglove.Channel(s.channel, schema=SAMPLE_SCHEMA, context=ctx)
                    m = meta.get(s.channel, {})
                    quantity, unit, limits = described.get(
                        s.channel, (str(m.get("quantity", "")), str(m.get("unit", "")), None))
                    state: str = limits.state(s.value) if limits is not None else "ok"
                    ch.log({"value": s.value, "unit": unit, "quantity": quantity, "state": state,
                            "seq": s.seq, "source": s.source or ""}, log_time=_ns(s.time))
                    n_samples += 1
                    if scene is not None:
                        scene.observe(s)
                if scene is not None:
                    scene.finish()
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
    if scene is None:
        return McapSummary(n_samples, n_events)
    return McapSummary(n_samples, n_events, scene.updates, scene.transforms,
                       len(scene.playback.meshes))
