"""``twin3d export REC -o run.mcap --stage S``: the twin as Foxglove scene messages, read back
with the ``mcap`` library's reader and its protobuf decoder (Foxglove's schemas as written).

The plate: a USD recording with a temperature field on its display surface (a plane ramp whose
value at each sensor is that sensor's reading) and the bridge's SQLite recording of the same
run; the SO-101: joint angles in the SQLite recording move its links by frame transforms, the
links' points placed by them where USD (pxr, from the twin's live layer) puts them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bridge_helpers import run

import twin3d
from twin3d.bridge import Bridge, Client
from twin3d.cli import main
from twin3d.colormap import colorize

pytest.importorskip("foxglove")
pytest.importorskip("mcap_protobuf")

PLATE = Path(__file__).resolve().parents[2] / "scenes" / "plate"
T0 = 1_767_225_600.0
RANGE = (20.0, 160.0)
FIELD_TIMES = [T0 + 0.5 * k for k in range(4)]
NS = 1e9


def _record(rec: Path, samples: list[tuple[str, float, float]]) -> None:
    """Publish ``(channel, value, time)`` samples through a recording bridge."""

    async def go() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with Client(bridge.url, client_id="plc") as c:
            for ch, v, t in samples:
                await c.publish(ch, v, t)
            await c.flush()
        await bridge.stop()

    run(go())


def _read(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, Any]]]]:
    """({topic: schema name}, {topic: [(log time, decoded message)]}) of an MCAP file: JSON
    messages parsed, protobuf ones decoded from the schema the file carries."""
    from mcap.reader import make_reader
    from mcap_protobuf.decoder import DecoderFactory

    protobuf = DecoderFactory()
    with path.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        schemas = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        got: dict[str, list[tuple[int, Any]]] = {}
        for schema, channel, message in reader.iter_messages():
            if channel.message_encoding == "json":
                decoded = json.loads(message.data)
            else:
                decode = protobuf.decoder_for(channel.message_encoding, schema)
                assert decode is not None, channel.message_encoding
                decoded = decode(message.data)
            got.setdefault(channel.topic, []).append((message.log_time, decoded))
    return schemas, got


def _ramp(points: np.ndarray, k: int) -> np.ndarray:
    """The recorded temperature at step ``k``: a ramp along x that grows with k."""
    return 25.0 + 15.0 * k + 400.0 * (points[:, 0] - 0.02)


def test_mcap_carries_the_twin_with_its_recorded_field_colours(tmp_path: Path) -> None:
    for f in ("plate.usda", "plate.geom.usdc"):
        shutil.copy(PLATE / f, tmp_path / f)
    twin = twin3d.Twin.open(tmp_path / "plate.usda")
    (surface,) = twin.meshes
    assert surface.surface is not None  # the plate shows its fields on its display surface
    temps = {ch: np.asarray(s.position) for ch, s in twin.sensors.items()
             if s.quantity == "temperature"}
    readings = {ch: [float(_ramp(p[None], k)[0]) for k in range(len(FIELD_TIMES))]
                for ch, p in temps.items()}
    with twin.recording(tmp_path / "run.usdc", origin=T0, ranges={"temperature": RANGE}) as rec:
        for k, t in enumerate(FIELD_TIMES):
            rec.write(t, fields={surface.path: {"temperature": _ramp(surface.points, k)}})
    # the bridge got 10 readings a second; fields were recorded every 0.5 s
    samples = [(ch, readings[ch][min(int(i / 5), 3)], T0 + 0.1 * i)
               for i in range(20) for ch in temps]
    _record(tmp_path / "run.sqlite", samples)

    out = tmp_path / "run.mcap"
    assert main(["export", str(tmp_path / "run.sqlite"), "-o", str(out),
                 "--stage", str(tmp_path / "run.usdc")]) == 0
    schemas, got = _read(out)
    assert schemas == {**{ch: "twin3d.Sample" for ch in temps},
                       "twin3d/scene": "foxglove.SceneUpdate"}  # no moving parts: no frames
    assert sum(len(v) for k, v in got.items() if k != "twin3d/scene") == len(samples)
    tc1 = got["plate/tc1"][0][1]
    assert (tc1["quantity"], tc1["unit"]) == ("temperature", "degC")  # from the stage

    scene = got["twin3d/scene"]
    assert [t for t, _ in scene] == [int(t * NS) for t in FIELD_TIMES]  # not every sample
    for k, (t, update) in enumerate(scene):
        (entity,) = update.entities
        assert (entity.id, entity.frame_id, entity.frame_locked) == (surface.path, "world", False)
        assert entity.timestamp.seconds * NS + entity.timestamp.nanos == t
        assert {kv.key: kv.value for kv in entity.metadata} == {
            "field": "temperature", "range": "20 .. 160", "colormap": "viridis"}
        (tri,) = entity.triangles
        points = np.array([[p.x, p.y, p.z] for p in tri.points])
        colors = np.array([[c.r, c.g, c.b] for c in tri.colors])
        np.testing.assert_allclose(points, surface.points * twin.meters_per_unit, atol=1e-9)
        assert np.array_equal(np.reshape(tri.indices, (-1, 3)), surface.faces)
        assert colors.shape == points.shape
        for ch, p in temps.items():
            nearest = int(np.argmin(np.linalg.norm(points - p * twin.meters_per_unit, axis=1)))
            want = colorize([readings[ch][k]], *RANGE)[0]
            # the sensor's own vertex: its colour is the colour map at its reading (one
            # table step of slack for the float32 vertex)
            np.testing.assert_allclose(colors[nearest], want, atol=0.02, err_msg=ch)
    first, last = (np.array([[c.r, c.g, c.b] for c in u.entities[0].triangles[0].colors])
                   for _, u in (scene[0], scene[-1]))
    assert np.abs(first - last).max() > 0.1  # the colours did change over the run


def _world_points(stage: Any, path: str) -> np.ndarray:
    """World points of the mesh at ``path`` as USD composes them now (pxr)."""
    from pxr import UsdGeom

    prim = stage.GetPrimAtPath(path)
    m = np.asarray(UsdGeom.XformCache().GetLocalToWorldTransform(prim), dtype=np.float64)
    pts = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get(), dtype=np.float64)
    return pts @ m[:3, :3] + m[3, :3]


def _pose(transform: Any) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    r, t = transform.rotation, transform.translation
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat([r.x, r.y, r.z, r.w]).as_matrix()
    out[:3, 3] = [t.x, t.y, t.z]
    return out


def test_mcap_moves_the_robot_by_frame_transforms(tmp_path: Path) -> None:
    from twin3d.demos.robot import URDF

    stage = tmp_path / "so101.usda"
    twin3d.convert([URDF], stage, progress=False)
    joints = ["so101_new_calib/shoulder_pan", "so101_new_calib/elbow_flex"]
    motion_times = [T0 + 0.02 * k for k in range(5)]
    samples = [(ch, 0.3 * (k + 1) * (1 if ch.endswith("pan") else -1), t)
               for k, t in enumerate(motion_times) for ch in joints]
    samples += [("so101_new_calib/servo_temperature/elbow_flex", 40.0, T0 + 0.05)]  # moves nothing
    _record(tmp_path / "run.sqlite", samples)
    out = tmp_path / "run.mcap"
    assert main(["export", str(tmp_path / "run.sqlite"), "-o", str(out), "--stage", str(stage)]) == 0
    schemas, got = _read(out)
    assert schemas["twin3d/scene"] == "foxglove.SceneUpdate"
    assert schemas["twin3d/tf"] == "foxglove.FrameTransforms"

    (scene,) = got["twin3d/scene"]  # no fields: the meshes once, at the start
    assert scene[0] == int(T0 * NS)
    entities = {e.id: e for e in scene[1].entities}
    tf = got["twin3d/tf"]
    assert [t for t, _ in tf] == [int(t * NS) for t in motion_times]  # one per time, both joints
    links = {tr.child_frame_id for tr in tf[0][1].transforms}
    assert len(links) == 6 and all(tr.parent_frame_id == "world" for tr in tf[0][1].transforms)

    # the last pose, checked against USD: the twin moved by the same values, composed by pxr
    twin = twin3d.Twin.open(stage)
    values: Mapping[str, float] = {ch: v for ch, v, t in samples if t == motion_times[-1]}
    twin.update(values)
    poses = {tr.child_frame_id: _pose(tr) for tr in tf[-1][1].transforms}
    moved = [e for e in entities.values() if e.frame_locked]
    assert {e.frame_id for e in moved} <= links and len(moved) >= 10
    assert all(e.frame_id == "world" for e in entities.values() if not e.frame_locked)
    for e in moved:
        pts = np.array([[p.x, p.y, p.z] for p in e.triangles[0].points])
        m = poses[e.frame_id]
        np.testing.assert_allclose(pts @ m[:3, :3].T + m[:3, 3],
                                   _world_points(twin.stage, e.id) * twin.meters_per_unit,
                                   atol=1e-6, err_msg=e.id)


def test_export_with_a_stage_that_cannot_be_read_or_is_not_wanted(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _record(tmp_path / "run.sqlite", [("plate/tc1", 20.0, T0)])
    out = tmp_path / "run.mcap"
    code = main(["export", str(tmp_path / "run.sqlite"), "-o", str(out),
                 "--stage", str(tmp_path / "missing.usda")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "missing.usda" in err
    assert not out.exists()
    csv = tmp_path / "run.csv"  # a stage means nothing to CSV output: bad usage, not ignored
    assert main(["export", str(tmp_path / "run.sqlite"), "-o", str(csv),
                 "--stage", str(tmp_path / "missing.usda")]) == 2
    assert "--stage" in capsys.readouterr().err and not csv.exists()
