"""The live layer and USD recordings, reopened with pxr."""

from __future__ import annotations

import gc
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from plate_stage import MESH
from pxr import Sdf, Usd, UsdGeom, UsdShade

from twin3d.colormap import linear_colorize, linear_state_color
from twin3d.errors import BindingError, FieldError, RecordingError
from twin3d.model import Sample
from twin3d.twin import Twin
from twin3d.usd.overlay import FIELD_MATERIAL
from twin3d.usd.timesamples import Recording, record_samples


def _sha(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _reopen(path: Path) -> Usd.Stage:
    """Open from disk: drop every in-memory layer first."""
    gc.collect()
    files = [layer.realPath for layer in Sdf.Layer.GetLoadedLayers() if not layer.anonymous]
    for name in files:  # (a reload may drop other layers: find each again)
        layer = Sdf.Layer.Find(name)
        if layer and path.parent in Path(name).parents and Path(name).exists():  # and clips
            layer.Reload(force=True)
    return Usd.Stage.Open(str(path))


def _color(prim: Usd.Prim) -> tuple[float, ...]:
    return tuple(UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()[0])


def _flat(stage: Usd.Stage, path: str, name: str, time: float | None = None) -> np.ndarray:
    pv = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath(path)).GetPrimvar(name)
    tc = Usd.TimeCode.Default() if time is None else Usd.TimeCode(time)
    return np.asarray(pv.ComputeFlattened(tc))


def test_update_goes_to_the_live_layer_only(bound_plate: Path) -> None:
    geom = bound_plate.with_name("plate.geom.usdc")
    before = _sha(bound_plate, geom)
    twin = Twin.open(bound_plate)
    twin.update({"plate/tc3": 81.5, "plate/tc1": 99.0, "plate/sg1": -10.0}, time=1.7e9)
    twin.save()
    assert _sha(bound_plate, geom) == before
    del twin

    root = bound_plate.with_name("plate.twin.usda")
    live = bound_plate.with_name("plate.live.usdc")
    stage = _reopen(root)
    stack = [Path(layer.realPath).name for layer in stage.GetLayerStack(includeSessionLayers=False)]
    assert stack[:3] == ["plate.twin.usda", "plate.live.usdc", "plate.usda"]  # live is strongest
    tc3 = stage.GetPrimAtPath("/Plate/Sensors/plate_tc3")
    assert tc3.GetAttribute("twin:value").Get() == 81.5
    assert tc3.GetAttribute("twin:state").Get() == "warn"
    assert tc3.GetAttribute("twin:time").Get() == 1.7e9
    assert _color(tc3) == pytest.approx(linear_state_color("warn"))
    tc1 = stage.GetPrimAtPath("/Plate/Sensors/plate_tc1")
    assert tc1.GetAttribute("twin:state").Get() == "alarm"
    assert _color(tc1) == pytest.approx(linear_state_color("alarm"))
    sg1 = stage.GetPrimAtPath("/Plate/Sensors/plate_sg1")
    assert sg1.GetAttribute("twin:state").Get() == "ok"
    assert _color(sg1) == pytest.approx(linear_state_color("ok"))
    tc2 = stage.GetPrimAtPath("/Plate/Sensors/plate_tc2")  # not updated: grey, stale
    assert tc2.GetAttribute("twin:state").Get() == "stale"
    # the opinions live in the live layer, and the live layer opens on its own
    layer = Sdf.Layer.FindOrOpen(str(live))
    spec = layer.GetAttributeAtPath("/Plate/Sensors/plate_tc3.twin:value")
    assert spec is not None and spec.default == 81.5
    alone = Usd.Stage.Open(str(live))
    assert alone.GetPrimAtPath("/Plate/Sensors/plate_tc3").GetAttribute("twin:value").Get() == 81.5
    # a later session starts from the saved state; reset=True starts afresh
    assert Twin.open(bound_plate).values == {"plate/tc3": 81.5, "plate/tc1": 99.0, "plate/sg1": -10.0}
    assert Twin.open(root).values["plate/tc1"] == 99.0  # the root layer opens as the same twin
    assert Twin.open(live).stage_path == bound_plate      # and so does the live layer
    assert Twin.open(bound_plate, reset=True).values == {}


def test_set_field_primvar_and_display_color(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    rng = np.random.default_rng(1)
    values = rng.uniform(20.0, 90.0, n).astype(np.float32)
    values[:10] = 20.0  # repeated values: the primvar is indexed
    sigma = np.full(n, 0.5, np.float32)
    assert twin.set_field("Plate", "temperature", values, vmin=20.0, vmax=100.0, sigma=sigma) == (20.0, 100.0)
    second = values + 5.0
    assert twin.set_field(MESH, "temperature", second) == (20.0, 100.0)  # range stays fixed
    twin.save()
    before = _sha(bound_plate, bound_plate.with_name("plate.geom.usdc"))
    del twin

    stage = _reopen(bound_plate.with_name("plate.twin.usda"))
    pv = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath(MESH)).GetPrimvar("temperature")
    assert pv.GetInterpolation() == "vertex" and pv.IsIndexed()
    np.testing.assert_array_equal(_flat(stage, MESH, "temperature"), second)
    np.testing.assert_allclose(_flat(stage, MESH, "displayColor"),
                               linear_colorize(second, 20.0, 100.0), rtol=1e-6)
    np.testing.assert_array_equal(_flat(stage, MESH, "temperature_sigma"), sigma)
    assert pv.GetAttr().GetCustomDataByKey("twin3d") == {"colormap": "viridis", "vmin": 20.0,
                                                          "vmax": 100.0}
    dc = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath(MESH)).GetPrimvar("displayColor")
    assert dc.GetInterpolation() == "vertex"
    material = UsdShade.MaterialBindingAPI(stage.GetPrimAtPath(MESH)).ComputeBoundMaterial()[0]
    assert material.GetPath() == Sdf.Path("/Plate").AppendPath(FIELD_MATERIAL)
    reader = stage.GetPrimAtPath(material.GetPath().AppendChild("DisplayColor"))
    assert reader.GetAttribute("inputs:varname").Get() == "displayColor"
    assert _sha(bound_plate, bound_plate.with_name("plate.geom.usdc")) == before


def test_bad_updates_change_nothing(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    with pytest.raises(BindingError, match=r"^sensor 'plate/nope': not bound on plate.usda"):
        twin.update({"plate/tc1": 50.0, "plate/nope": 1.0})
    with pytest.raises(BindingError, match=r"^sensor 'plate/tc1': value 'hot' is not a number"):
        twin.update({"plate/tc1": "hot"})  # type: ignore[dict-item]
    with pytest.raises(FieldError, match=f"got 3 values for {MESH}, which has {n} points"):
        twin.set_field(MESH, "temperature", [1.0, 2.0, 3.0])
    with pytest.raises(FieldError, match="prim 'Nope' is not on the stage"):
        twin.set_field("Nope", "temperature", np.zeros(n))
    with pytest.raises(FieldError, match="not a valid primvar name"):
        twin.set_field("Plate", "temp erature", np.zeros(n))
    with pytest.raises(FieldError, match="vmin <= vmax"):
        twin.set_field("Plate", "temperature", np.zeros(n), vmin=5, vmax=1)
    assert twin.values == {}
    assert not twin.stage.GetEditTarget().GetLayer().GetPrimAtPath(MESH)  # the live layer


def test_recording_time_samples(bound_plate: Path, tmp_path: Path) -> None:
    """Values, states, colours and a field, across four value clips of one second each."""
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    t0 = 1.7e9
    temps = np.array([70.0, 75.0, 82.0, 85.0, 96.0, 90.0, 70.0])
    out = tmp_path / "runs" / "run1.usdc"
    out.parent.mkdir()
    with twin.recording(out, fps=4.0, clip_seconds=1.0) as rec:
        for i, v in enumerate(temps):
            rec.write(t0 + 0.5 * i, values={"plate/tc3": v, "plate/load": 1000.0 * i},
                      fields={"Plate": {"temperature": np.full(n, v) + np.arange(n) * 0.01}} if i % 3 == 0 else None)
    stage = _reopen(out)
    assert stage.GetTimeCodesPerSecond() == 4.0 and stage.GetFramesPerSecond() == 4.0
    assert stage.GetStartTimeCode() == 0.0 and stage.GetEndTimeCode() == 12.0  # 3 s at 4/s
    assert stage.GetRootLayer().customLayerData["twin3d"]["timeOrigin"] == t0
    assert list(stage.GetRootLayer().subLayerPaths) == ["./run1.clips/topology.usdc",
                                                        "../plate.usda"]
    clips = Usd.ClipsAPI(stage.GetPrimAtPath("/Plate"))
    assert [a.path for a in clips.GetClipAssetPaths()] == [
        f"./run1.clips/{i:04d}.usdc" for i in range(4)]  # one a second: codes 0-3, 4-7, ...
    assert list(clips.GetClipActive()) == [(0, 0), (4, 1), (8, 2), (12, 3)]
    tc3 = stage.GetPrimAtPath("/Plate/Sensors/plate_tc3")
    value = tc3.GetAttribute("twin:value")
    assert value.GetTimeSamples() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert [value.Get(t) for t in value.GetTimeSamples()] == temps.tolist()
    # between samples, across a clip boundary (6 in clip 1, 8 in clip 2): as in one layer
    assert value.Get(7.0) == pytest.approx((85.0 + 96.0) / 2)
    state = tc3.GetAttribute("twin:state")
    assert [state.Get(t) for t in range(0, 13, 2)] == ["ok", "ok", "warn", "warn", "alarm", "warn", "ok"]
    color = UsdGeom.Gprim(tc3).GetDisplayColorAttr()
    expected = [linear_state_color(s) for s in ["ok", "ok", "warn", "warn", "alarm", "warn", "ok"]]
    for t, c in zip(range(0, 13, 2), expected, strict=True):
        assert tuple(color.Get(t)[0]) == pytest.approx(c)
    load_prim = stage.GetPrimAtPath("/Plate/Sensors/plate_load")
    load = load_prim.GetAttribute("twin:value")
    assert load.GetNumTimeSamples() == 7 and load.Get(6.0) == 3000.0
    # 0..6000 N against warn 4000 / alarm 5000: each colour holds up to the sample before a
    # change, also across clip boundaries (between 6 and 8, both ok)
    load_color = UsdGeom.Gprim(load_prim).GetDisplayColorAttr()
    for t, s in ((5.0, "ok"), (7.0, "ok"), (8.0, "ok"), (10.0, "warn"), (12.0, "alarm")):
        assert tuple(load_color.Get(t)[0]) == pytest.approx(linear_state_color(s)), t
    load_state = load_prim.GetAttribute("twin:state")
    assert [load_state.Get(t) for t in (0, 7, 8, 9, 10, 11, 12)] == [
        "ok", "ok", "ok", "ok", "warn", "warn", "alarm"]
    pv = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath(MESH)).GetPrimvar("temperature")
    # written at 0, 6, 12 (clips 0, 1, 3; USD also lists clip 1's start, 4, as a sample time)
    assert {0.0, 6.0, 12.0} <= set(pv.GetAttr().GetTimeSamples()) <= {0.0, 4.0, 6.0, 8.0, 12.0}
    for code, expected in ((6.0, 85.0), (4.0, 80.0), (9.0, 77.5)):  # between: as one layer
        np.testing.assert_allclose(_flat(stage, MESH, "temperature", code),
                                   np.full(n, expected) + np.arange(n) * 0.01, rtol=1e-6)
    assert UsdShade.MaterialBindingAPI(stage.GetPrimAtPath(MESH)).ComputeBoundMaterial()[0]
    assert sorted(p.name for p in out.parent.iterdir()) == ["run1.clips", "run1.usdc"]
    assert sorted(p.name for p in (out.parent / "run1.clips").iterdir()) == [
        "0000.usdc", "0001.usdc", "0002.usdc", "0003.usdc", "manifest.usdc", "topology.usdc"]


def test_record_samples_without_a_stage(tmp_path: Path) -> None:
    samples = [Sample(f"rig/ch{c}", float(c * 100 + i), 50.0 + i * 0.1)
               for i in range(20) for c in range(3)]
    out = record_samples(tmp_path / "rec.usdc", reversed(samples), fps=10.0)
    stage = _reopen(out)
    assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/Recording")
    attr = stage.GetPrimAtPath("/Recording/rig_ch2").GetAttribute("twin:value")
    assert stage.GetPrimAtPath("/Recording/rig_ch2").GetAttribute("twin:channel").Get() == "rig/ch2"
    assert attr.GetNumTimeSamples() == 20
    assert attr.Get(5.0) == 205.0 and attr.Get(19.0) == 219.0
    assert stage.GetEndTimeCode() == pytest.approx(19.0)


def test_samples_before_the_origin_get_negative_time_codes(tmp_path: Path) -> None:
    with Recording(tmp_path / "rec.usdc", fps=2.0, origin=10.0, clip_seconds=1.0) as rec:
        for i in range(8):  # 0..3.5 s: time codes -20..-13, in clips of two
            rec.write(i / 2, {"rig/ch": float(i)})
    stage = _reopen(tmp_path / "rec.usdc")
    attr = stage.GetPrimAtPath("/Recording/rig_ch").GetAttribute("twin:value")
    assert attr.GetTimeSamples() == [float(c) for c in range(-20, -12)]
    assert [attr.Get(float(c)) for c in range(-20, -12)] == [float(i) for i in range(8)]
    assert sorted(p.name for p in (tmp_path / "rec.clips").glob("m0*.usdc")) == [
        "m0007.usdc", "m0008.usdc", "m0009.usdc", "m0010.usdc"]


def test_recording_errors_write_nothing(bound_plate: Path, tmp_path: Path) -> None:
    twin = Twin.open(bound_plate)
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(RecordingError, match=r"crate \(.usdc\)"):
        twin.recording(runs / "run.usda")
    out = runs / "run.usdc"
    with pytest.raises(BindingError, match="'plate/nope': not bound"):
        with twin.recording(out) as rec:
            rec.write(0.0, {"plate/tc1": 20.0})
            rec.write(1.0, {"plate/nope": 20.0})
    assert list(runs.iterdir()) == []
    with twin.recording(out, skip_unknown=True) as rec:
        rec.write(0.0, {"plate/tc1": 20.0, "plate/nope": 1.0})
    assert out.exists()
    with pytest.raises(RecordingError, match="nothing was recorded"):
        with twin.recording(runs / "empty.usdc"):
            pass


def test_stage_live_layer_and_recording_validate(bound_plate: Path, tmp_path: Path) -> None:
    from twin3d.usd.validate import validate_stage

    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    twin.update({c: 85.0 for c in twin.sensors})
    twin.set_field("Plate", "temperature", np.linspace(20, 90, n), vmin=20, vmax=100)
    twin.save()
    rec_path = tmp_path / "run.usdc"
    bend = np.zeros((n, 3))
    bend[:, 2] = np.linspace(0.0, 1e-3, n)
    with twin.recording(rec_path, clip_seconds=0.2) as rec:  # three value clips
        for i in range(6):
            rec.write(i * 0.1, {c: 70.0 + 5 * i for c in twin.sensors},
                      fields={"Plate": {"temperature": np.linspace(20, 20 + 10 * i, n)}},
                      displacement={"Plate": bend * i})
    for path in (bound_plate, twin.root_path, twin.live_path, rec_path):
        report = validate_stage(path)
        assert report.failures == [], f"{path.name}: {[str(f) for f in report.failures]}"


def test_long_recordings_stream_clips_and_read_back_every_value(bound_plate: Path,
                                                                 tmp_path: Path) -> None:
    """300 steps at 8 Hz in 2 s clips: clips go to disk while recording; every value, state and
    colour reads back at its time code, and between samples across clip boundaries."""
    twin = Twin.open(bound_plate)
    channels = ["plate/tc1", "plate/tc3", "plate/load"]
    rng = np.random.default_rng(4)
    values = np.array([70.0, 70.0, 3000.0]) + np.cumsum(rng.normal(0.0, [2.0, 2.0, 300.0],
                                                                      (300, 3)), axis=0)
    out = tmp_path / "run.usdc"
    with twin.recording(out, fps=8.0, origin=100.0, clip_seconds=2.0) as rec:
        for i in range(300):
            rec.write(100.0 + i / 8, dict(zip(channels, values[i].tolist(), strict=True)))
            if i == 150:  # 18.75 s in: clips 0-7 (0-16 s) are written, in a hidden folder
                hidden = [p for p in tmp_path.iterdir() if p.name.startswith(".run.clips.")]
                assert len(hidden) == 1 and not out.exists()
                assert sorted(p.name for p in hidden[0].iterdir()) == [
                    f"{k:04d}.usdc" for k in range(8)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    stage = _reopen(out)
    assert len(Usd.ClipsAPI(stage.GetPrimAtPath("/Plate")).GetClipAssetPaths()) == 19
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0.0, 299.0)
    for c, channel in enumerate(channels):
        prim = stage.GetPrimAtPath(f"/Plate/Sensors/{channel.replace('/', '_')}")
        value, state = prim.GetAttribute("twin:value"), prim.GetAttribute("twin:state")
        color = UsdGeom.Gprim(prim).GetDisplayColorAttr()
        assert value.GetTimeSamples() == [float(i) for i in range(300)]
        assert [value.Get(float(i)) for i in range(300)] == values[:, c].tolist()
        states = [twin.sensors[channel].limits.state(v) for v in values[:, c]]
        assert [state.Get(float(i)) for i in range(300)] == states
        for i in range(300):
            assert tuple(color.Get(float(i))[0]) == pytest.approx(linear_state_color(states[i]))
        for boundary in range(16, 300, 16):  # halfway between the last sample of a clip and
            half = (values[boundary - 1, c] + values[boundary, c]) / 2  # the next clip's first
            assert value.Get(boundary - 0.5) == pytest.approx(half)


def test_late_samples_and_errors_leave_no_recording(bound_plate: Path, tmp_path: Path) -> None:
    twin = Twin.open(bound_plate)
    runs = tmp_path / "runs"
    runs.mkdir()
    out = runs / "run.usdc"
    with pytest.raises(RecordingError, match="write samples in time order"):
        with twin.recording(out, clip_seconds=1.0) as rec:
            for i in range(50):  # 0-4.9 s: clips 0-2 are written
                rec.write(i * 0.1, {"plate/tc1": 20.0 + i})
            rec.write(1.0, {"plate/tc1": 0.0})  # its clip (1-2 s) is on disk
    assert list(runs.iterdir()) == []
    with twin.recording(out, clip_seconds=1.0) as rec:  # up to one clip late is taken
        for i in range(50):
            rec.write(i * 0.1, {"plate/tc1": 20.0 + i})
        rec.write(3.05, {"plate/tc1": 100.0})
    stage = _reopen(out)
    attr = stage.GetPrimAtPath("/Plate/Sensors/plate_tc1").GetAttribute("twin:value")
    assert attr.Get(30.5) == 100.0 and attr.GetNumTimeSamples() == 51
    # a second recording to the same path replaces the first, clips and all
    with twin.recording(out, clip_seconds=1.0) as rec:
        for i in range(15):
            rec.write(i * 0.1, {"plate/tc1": 50.0 + i})
    assert sorted(p.name for p in runs.iterdir()) == ["run.clips", "run.usdc"]
    assert sorted(p.name for p in (runs / "run.clips").iterdir()) == [
        "0000.usdc", "0001.usdc", "manifest.usdc", "topology.usdc"]
    stage = _reopen(out)
    attr = stage.GetPrimAtPath("/Plate/Sensors/plate_tc1").GetAttribute("twin:value")
    assert attr.GetNumTimeSamples() == 15 and attr.Get(attr.GetTimeSamples()[-1]) == 64.0
    for bad in ({"clip_seconds": 0.0}, {"deform_rate": -1.0}, {"deform_scale": math.nan}):
        with pytest.raises(RecordingError, match="must be"):
            twin.recording(runs / "bad.usdc", **bad)


def test_deformed_shapes_are_recorded_scaled_and_rate_limited(bound_plate: Path,
                                                             tmp_path: Path) -> None:
    twin = Twin.open(bound_plate)
    rest = twin.meshes[0].points
    n = len(rest)
    bend = np.zeros((n, 3))
    bend[:, 2] = ((rest[:, 0] - rest[:, 0].min()) / np.ptp(rest[:, 0])) ** 2 * 1e-4
    out = tmp_path / "run.usdc"
    with twin.recording(out, fps=8.0, origin=0.0, clip_seconds=1.0, deform_scale=50.0,
                        deform_rate=2.0) as rec:
        for i in range(24):  # 3 s at 8 Hz; shapes at 2 Hz: steps 0, 4, 8, ... 20
            rec.write(i / 8, {"plate/load": 100.0 * i}, displacement={"Plate": bend * i})
    stage = _reopen(out)
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath(MESH))
    assert mesh.GetPointsAttr().GetTimeSamples() == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    # at the samples; between them (points interpolate), also across clip boundaries (8, 16)
    for code in (0.0, 4.0, 6.0, 7.5, 8.0, 15.0, 20.0):
        want = rest + 50.0 * bend * code
        got = np.asarray(mesh.GetPointsAttr().Get(code), dtype=np.float64)
        np.testing.assert_allclose(got, want, atol=1e-6)
        np.testing.assert_allclose(np.asarray(mesh.GetExtentAttr().Get(code)),
                                   [want.min(axis=0), want.max(axis=0)], atol=1e-6)
    with twin.recording(tmp_path / "bad.usdc") as rec:
        with pytest.raises(FieldError, match=rf"shape \({n}, 2\), need \({n}, 3\)"):
            rec.write(0.0, displacement={"Plate": np.zeros((n, 2))})
        with pytest.raises(FieldError, match="NaN or infinite"):
            rec.write(0.0, displacement={"Plate": np.full((n, 3), np.nan)})
        with pytest.raises(FieldError, match="'Nowhere' is not on the stage"):
            rec.write(0.0, displacement={"Nowhere": np.zeros((n, 3))})
        rec.write(0.0, {"plate/tc1": 20.0})
    with pytest.raises(RecordingError, match="deformed shapes need a stage"):
        with Recording(tmp_path / "x.usdc") as plain:
            plain.write(0.0, displacement={"Plate": np.zeros((n, 3))})


def test_twin3d_export_of_a_bridge_recording(bound_plate: Path, tmp_path: Path) -> None:
    """The bridge's ``twin3d export REC -o out.usdc --stage`` goes through Twin.recording."""
    import asyncio

    from twin3d.bridge.server import Bridge
    from twin3d.cli import main

    rec = tmp_path / "session.db"
    samples = [Sample(ch, 70.0 + i, 1.7e9 + 0.25 * i) for i in range(12)
               for ch in ("plate/tc1", "plate/tc5")]

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        await bridge.ingest(samples, "test", wait_commit=True)
        await bridge.stop()

    asyncio.run(record())
    out = tmp_path / "session.usdc"
    assert main(["export", str(rec), "-o", str(out), "--stage", str(bound_plate)]) == 0
    stage = _reopen(out)
    attr = stage.GetPrimAtPath("/Plate/Sensors/plate_tc5").GetAttribute("twin:value")
    assert attr.GetNumTimeSamples() == 12
    assert attr.Get(attr.GetTimeSamples()[-1]) == 81.0
    state = stage.GetPrimAtPath("/Plate/Sensors/plate_tc5").GetAttribute("twin:state")
    assert state.Get(attr.GetTimeSamples()[-1]) == "warn"


def test_save_replaces_the_live_layer_atomically(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    twin.update({"plate/tc1": 20.0})
    twin.save()
    inode = twin.live_path.stat().st_ino
    twin.update({"plate/tc1": 21.0})
    twin.save()
    assert twin.live_path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in bound_plate.parent.iterdir()) == [
        "plate.geom.usdc", "plate.live.usdc", "plate.twin.usda", "plate.usda"]
    layer = Sdf.Layer.OpenAsAnonymous(str(twin.live_path))
    assert layer.GetAttributeAtPath("/Plate/Sensors/plate_tc1.twin:value").default == 21.0


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1, written out here so the test does not trust the code under test."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def test_colours_are_authored_as_linear_rgb(bound_plate: Path) -> None:
    """USD reads displayColor as linear: the colour map's sRGB colours are converted first."""
    from matplotlib import colormaps

    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    values = np.linspace(0.0, 100.0, n).astype(np.float32)
    twin.set_field("Plate", "temperature", values, vmin=0.0, vmax=100.0)
    twin.update({"plate/tc1": 20.0, "plate/tc3": 81.5, "plate/tc5": 99.0})
    stage = twin.stage
    srgb = colormaps["viridis"].resampled(256)(np.round(values / 100.0 * 255) / 255)[:, :3]
    np.testing.assert_allclose(_flat(stage, MESH, "displayColor"), _srgb_to_linear(srgb),
                               atol=2e-6)
    for channel, srgb_state in (("plate/tc1", (0.15, 0.68, 0.38)), ("plate/tc3", (1.0, 0.65, 0.0)),
                                ("plate/tc5", (0.9, 0.1, 0.1)), ("plate/tc2", (0.55, 0.55, 0.55))):
        prim = stage.GetPrimAtPath(f"/Plate/Sensors/{channel.replace('/', '_')}")
        assert _color(prim) == pytest.approx(tuple(_srgb_to_linear(np.array(srgb_state))),
                                             abs=1e-6), channel
    material = UsdShade.MaterialBindingAPI(stage.GetPrimAtPath(MESH)).ComputeBoundMaterial()[0]
    reader = stage.GetPrimAtPath(material.GetPath().AppendChild("DisplayColor"))
    fallback = reader.GetAttribute("inputs:fallback").Get()
    assert tuple(fallback) == pytest.approx(tuple(_srgb_to_linear(np.full(3, 0.55))), abs=1e-6)


def _switch(stage: Usd.Stage, quantity: str) -> None:
    """What a usdview/Omniverse user does: pick another variant of the mesh's displayField."""
    vset = stage.GetPrimAtPath(MESH).GetVariantSets().GetVariantSet("displayField")
    assert vset.SetVariantSelection(quantity)


def test_the_shown_field_is_a_choice_named_on_the_mesh(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    temperature = np.linspace(20.0, 90.0, n)
    stress = np.linspace(0.0, 40.0, n)[::-1].copy()
    twin.set_field("Plate", "temperature", temperature, vmin=20.0, vmax=100.0)
    twin.set_field("Plate", "von_mises", stress, vmin=0.0, vmax=50.0)  # written last
    twin.save()
    assert twin.displayed_fields == {MESH: "temperature"}
    del twin

    stage = _reopen(bound_plate.with_name("plate.twin.usda"))
    mesh = stage.GetPrimAtPath(MESH)
    vset = mesh.GetVariantSets().GetVariantSet("displayField")
    assert vset.GetVariantNames() == ["temperature", "von_mises"]
    # temperature is shown by default although von Mises was written last
    assert mesh.GetAttribute("twin:displayField").Get() == "temperature"
    np.testing.assert_allclose(_flat(stage, MESH, "displayColor"),
                               linear_colorize(temperature, 20.0, 100.0), rtol=1e-6)
    # switching the variant (no script: usdview's variant menu) shows von Mises
    _switch(stage, "von_mises")
    assert mesh.GetAttribute("twin:displayField").Get() == "von_mises"
    np.testing.assert_allclose(_flat(stage, MESH, "displayColor"),
                               linear_colorize(stress, 0.0, 50.0), rtol=1e-6)
    # both fields' values stay on the mesh whichever is shown
    np.testing.assert_allclose(_flat(stage, MESH, "temperature"), temperature, rtol=1e-6)

    # the choice from Python is stored and kept by later writes
    twin = Twin.open(bound_plate)
    twin.show_field("Plate", "von_mises")
    twin.set_field("Plate", "temperature", temperature + 1.0)
    assert twin.displayed_fields == {MESH: "von_mises"}
    with pytest.raises(FieldError, match="has no field 'strain' to show"):
        twin.show_field("Plate", "strain")
    twin.save()
    assert Twin.open(bound_plate).displayed_fields == {MESH: "von_mises"}


def test_recordings_show_temperature_and_switch_like_the_live_layer(bound_plate: Path,
                                                                    tmp_path: Path) -> None:
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    ramp = np.linspace(0.0, 1.0, n)
    out = tmp_path / "run.usdc"
    with twin.recording(out, fps=1.0, ranges={"temperature": (20.0, 100.0),
                                              "von_mises": (0.0, 50.0)}) as rec:
        for t in range(3):
            rec.write(float(t), fields={"Plate": {"temperature": 20.0 + 30.0 * t * ramp,
                                                  "von_mises": 10.0 * t * ramp[::-1]}})
    stage = _reopen(out)
    mesh = stage.GetPrimAtPath(MESH)
    assert mesh.GetAttribute("twin:displayField").Get() == "temperature"
    np.testing.assert_allclose(_flat(stage, MESH, "displayColor", 2.0),
                               linear_colorize(20.0 + 60.0 * ramp, 20.0, 100.0), rtol=1e-5)
    _switch(stage, "von_mises")
    np.testing.assert_allclose(_flat(stage, MESH, "displayColor", 2.0),
                               linear_colorize(20.0 * ramp[::-1], 0.0, 50.0), rtol=1e-5)
    # a twin that chose von Mises records it shown
    twin.set_field("Plate", "von_mises", ramp)
    twin.show_field("Plate", "von_mises")
    chosen = tmp_path / "chosen.usdc"
    with twin.recording(chosen) as rec:
        rec.write(0.0, fields={"Plate": {"temperature": 20.0 + ramp, "von_mises": ramp}})
    assert _reopen(chosen).GetPrimAtPath(MESH).GetAttribute("twin:displayField").Get() == \
        "von_mises"


def test_colour_ranges_are_stored_in_the_stage_and_kept(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    twin.set_field("Plate", "temperature", np.full(n, 50.0), vmin=20.0, vmax=105.0)
    twin.save()
    again = Twin.open(bound_plate)
    assert again.field_ranges == {"temperature": (20.0, 105.0)}
    assert again.set_field("Plate", "temperature", np.full(n, 91.0)) == (20.0, 105.0)
    assert Twin.open(bound_plate, reset=True).field_ranges == {}


@pytest.mark.parametrize("bad", ["50", float("nan"), float("inf"), True, None])
def test_update_refuses_text_nan_and_infinity(bound_plate: Path, bad: object) -> None:
    twin = Twin.open(bound_plate)
    with pytest.raises(BindingError, match=r"^sensor 'plate/tc1': value .* is not a (finite )?"
                                           r"number"):
        twin.update({"plate/tc3": 40.0, "plate/tc1": bad})  # type: ignore[dict-item]
    assert twin.values == {}
    twin.update({"plate/tc1": np.float32(41.5), "plate/tc3": 7})
    assert twin.values == {"plate/tc1": 41.5, "plate/tc3": 7.0}


def test_export_of_unbound_channels_names_skip_unknown(bound_plate: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from twin3d.bridge.server import Bridge
    from twin3d.cli import main

    rec = tmp_path / "session.db"

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        await bridge.ingest([Sample("plate/tc1", 50.0, 1.0), Sample("rig/other", 1.0, 1.0)],
                            "test", wait_commit=True)
        await bridge.stop()

    asyncio.run(record())
    out = tmp_path / "session.usdc"
    assert main(["export", str(rec), "-o", str(out), "--stage", str(bound_plate)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'rig/other'" in err[0] and "--skip-unknown" in err[0]
    assert not out.exists()
    assert main(["export", str(rec), "-o", str(out), "--stage", str(bound_plate),
                 "--skip-unknown"]) == 0


@pytest.mark.slow
def test_info_and_the_view_flag_impossible_fitted_inputs(bound_plate: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """Readings whose best fit needs an ambient below absolute zero are flagged, not shown."""
    from twin3d.cli import main

    twin = Twin.open(bound_plate)
    temps = [c for c, s in twin.sensors.items() if s.quantity == "temperature"]
    twin.update({c: 40.0 + i for i, c in enumerate(temps)})
    twin.save()
    assert main(["info", str(bound_plate)]) == 0
    out = capsys.readouterr().out
    assert f"fitted inputs on {MESH} (from the current values):" in out
    assert "ambient" in out and "IMPOSSIBLE" not in out
    twin.update({c: -400.0 for c in temps})
    twin.save()
    assert main(["info", str(bound_plate)]) == 0
    flagged = [line for line in capsys.readouterr().out.splitlines() if "IMPOSSIBLE" in line]
    assert any("below absolute zero" in line for line in flagged), flagged

    pytest.importorskip("pyvista")
    from twin3d.fields import ImplausibleInputWarning, build_field_models
    from twin3d.view import View

    heat = build_field_models(twin)[MESH]["temperature"]
    with View(twin, {MESH: heat}, off_screen=True, window_size=(320, 240)) as view:
        with pytest.warns(ImplausibleInputWarning, match="below absolute zero"):
            view.render()  # the live layer's values (-400 °C) are shown from the start
        assert view.problems and "below absolute zero" in view.problem_line.GetInput()
        assert view.problem_line.GetVisibility()
        view.push({c: 40.0 + i for i, c in enumerate(temps)})
        view.render()
        assert view.problems == [] and not view.problem_line.GetVisibility()


def test_an_older_live_layer_with_direct_colours_switches_too(bound_plate: Path) -> None:
    """Live layers written before the display variants held displayColor on the mesh itself,
    which would win over every variant: the next field written removes it."""
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    live = twin.stage.GetEditTarget().GetLayer()
    old = Sdf.CreatePrimInLayer(live, MESH)
    attr = Sdf.AttributeSpec(old, "primvars:displayColor", Sdf.ValueTypeNames.Color3fArray)
    attr.default = [(1.0, 0.0, 1.0)] * n
    twin.set_field("Plate", "temperature", np.linspace(20.0, 90.0, n), vmin=20.0, vmax=100.0)
    np.testing.assert_allclose(_flat(twin.stage, MESH, "displayColor"),
                               linear_colorize(np.linspace(20.0, 90.0, n), 20.0, 100.0),
                               rtol=1e-6)
