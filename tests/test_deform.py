"""Deformed shapes from the real stress model in the live layer and recordings, reopened with pxr.

The plate (``tests/plate_stage.py``) is held at its rear bolts; its stress model
(:class:`twin3d.fields.StressModel`, P2 elasticity, cached on disk) gives the displacement of
every display-surface point for a set of readings. What is checked here is the authoring:
the points a USD reader gets are rest + scale * displacement, in the mesh's own frame.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plate_stage import MESH, SURFACE
from pxr import Sdf, Usd, UsdGeom

from twin3d.errors import FieldError
from twin3d.twin import Twin
from twin3d.usd.validate import validate_stage


def _reopen(path: Path) -> Usd.Stage:
    """Open from disk, as usdview would: no layer of this process is reused."""
    gc.collect()
    for layer in Sdf.Layer.GetLoadedLayers():
        if not layer.anonymous and Path(layer.realPath).exists() and \
                path.parent in Path(layer.realPath).parents:
            layer.Reload(force=True)
    return Usd.Stage.Open(str(path))


def _world(stage: Usd.Stage, path: str, time: float | None = None) -> np.ndarray:
    """The points of mesh ``path`` in world space (float64), as composed at ``time``."""
    tc = Usd.TimeCode.Default() if time is None else Usd.TimeCode(time)
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath(path))
    local = np.asarray(mesh.GetPointsAttr().Get(tc), dtype=np.float64)
    m = np.asarray(mesh.ComputeLocalToWorldTransform(tc), dtype=np.float64)
    return local @ m[:3, :3] + m[3, :3]  # row-vector convention


def _stress(twin: Twin) -> Any:
    from twin3d.fields import build_field_models

    return build_field_models(twin)[MESH]["von_mises"]


def _readings(stress: Any, press_kn: float, bolt_n: float) -> dict[str, float]:
    """What the plate's sensors read under the press and the bolt pull (the model's physics)."""
    return dict(stress.readings({"press": press_kn, "bolt_pull": bolt_n}))


def test_the_live_layer_shows_the_stress_model_s_deflection_exaggerated(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    (plate,) = twin.meshes
    assert plate.surface == SURFACE  # a plate with sensors deforms its display surface
    rest = plate.points.copy()
    stress = _stress(twin)
    values = _readings(stress, 1.0, 1000.0)
    d = np.asarray(stress.displacement(values), dtype=np.float64)
    assert d.shape == (len(rest), 3)
    # the model's displacement is linear in the readings and bends the free front edge down
    np.testing.assert_allclose(stress.displacement({k: 2 * v for k, v in values.items()}), 2 * d,
                               rtol=1e-5, atol=1e-9)
    front = rest[:, 1] < rest[:, 1].min() + 0.01
    assert d[front, 2].mean() < -1e-4

    assert twin.set_displacement("Plate", d, scale=50.0, time=100.0) is True
    twin.save()
    live = twin.live_path
    del twin
    stage = _reopen(bound_plate.with_name("plate.twin.usda"))  # what usdview opens
    want = rest + 50.0 * d
    np.testing.assert_allclose(_world(stage, SURFACE), want, atol=2e-6)
    assert np.abs(_world(stage, SURFACE) - rest).max() > 0.1  # visibly bent: ×50 of ~3 mm
    prim = stage.GetPrimAtPath(SURFACE)
    assert prim.GetAttribute("twin:deformScale").Get() == 50.0
    mesh = UsdGeom.Mesh(prim)
    m = np.asarray(mesh.ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
    kept = np.asarray(prim.GetAttribute("twin:restPoints").Get(), dtype=np.float64)
    np.testing.assert_allclose(kept @ m[:3, :3] + m[3, :3], rest, atol=1e-9)  # the rest, kept
    pts = np.asarray(mesh.GetPointsAttr().Get(), dtype=np.float64)
    np.testing.assert_allclose(np.asarray(mesh.GetExtentAttr().Get()),
                               [pts.min(axis=0), pts.max(axis=0)], atol=1e-7)
    faces = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    corners = pts[faces]  # the shading normals are those of the bent triangles
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    np.testing.assert_allclose(np.asarray(mesh.GetNormalsAttr().Get()),
                               cross / np.linalg.norm(cross, axis=1, keepdims=True), atol=1e-5)
    assert mesh.GetNormalsInterpolation() == UsdGeom.Tokens.uniform
    # the asset is not touched, and the twin reopened reads its plate at rest
    asset = Usd.Stage.Open(str(bound_plate))
    assert not asset.GetPrimAtPath(SURFACE)
    again = Twin.open(bound_plate)
    np.testing.assert_array_equal(again.meshes[0].points, rest)
    # the live layer opens on its own too, and every validator is clean on the deformed twin
    np.testing.assert_allclose(_world(Usd.Stage.Open(str(live)), SURFACE), want, atol=2e-6)
    for path in (again.root_path, live):
        report = validate_stage(path)
        assert report.failures == [], f"{path.name}: {[str(f) for f in report.failures]}"


def test_shapes_are_rate_limited_per_prim_and_go_back_to_rest(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)  # at most 2 shapes a second (the default)
    rest = twin.meshes[0].points.copy()
    stress = _stress(twin)
    low = stress.displacement(_readings(stress, 0.3, 200.0))
    high = stress.displacement(_readings(stress, 1.0, 1500.0))
    surface = UsdGeom.Mesh(twin.stage.GetPrimAtPath(SURFACE))
    normals = np.asarray(surface.GetNormalsAttr().Get())
    extent = np.asarray(surface.GetExtentAttr().Get())

    assert twin.set_displacement(MESH, low, scale=20.0, time=10.0)
    assert not twin.set_displacement(MESH, high, scale=20.0, time=10.3)  # within 1/2 s: skipped
    np.testing.assert_allclose(_world(twin.stage, SURFACE), rest + 20.0 * low, atol=2e-6)
    assert twin.set_displacement(MESH, high, scale=20.0, time=10.5)      # the next one is due
    np.testing.assert_allclose(_world(twin.stage, SURFACE), rest + 20.0 * high, atol=2e-6)
    assert twin.set_displacement(MESH, low, scale=5.0, time=9.0)  # a clock set back: due
    assert surface.GetPrim().GetAttribute("twin:deformScale").Get() == 5.0

    assert twin.set_displacement("Plate", None)  # back to rest, exactly as it was
    twin.save()
    del twin, surface
    stage = _reopen(bound_plate.with_name("plate.twin.usda"))
    surface = UsdGeom.Mesh(stage.GetPrimAtPath(SURFACE))
    np.testing.assert_array_equal(_world(stage, SURFACE), rest)
    np.testing.assert_array_equal(np.asarray(surface.GetNormalsAttr().Get()), normals)
    np.testing.assert_array_equal(np.asarray(surface.GetExtentAttr().Get()), extent)
    for name in ("twin:deformScale", "twin:restPoints"):
        assert not surface.GetPrim().HasAttribute(name)

    fast = Twin.open(bound_plate, deform_rate=10.0)  # 10 a second: 0.1 s apart is due
    assert fast.set_displacement("Plate", low, scale=1.0, time=0.0)
    assert fast.set_displacement("Plate", high, scale=1.0, time=0.1)
    assert not fast.set_displacement("Plate", low, scale=1.0, time=0.15)


def test_a_mesh_without_display_surface_deforms_over_the_asset_and_returns_to_it(
        plate: Path) -> None:
    """A mesh with no sensors (no display surface) gets the shape over its own points in the
    live layer; back to rest removes those opinions, so the asset's points show again."""
    twin = Twin.open(plate)
    (mesh,) = twin.meshes
    assert mesh.surface is None
    rest = mesh.points.copy()
    bend = np.zeros_like(rest)
    bend[:, 2] = ((rest[:, 1] - rest[:, 1].min()) / np.ptp(rest[:, 1])) ** 2 * 2e-3  # metres
    normals = np.asarray(UsdGeom.Mesh(twin.stage.GetPrimAtPath(MESH)).GetNormalsAttr().Get())
    assert twin.set_displacement(MESH, bend, scale=10.0, time=0.0)
    np.testing.assert_allclose(_world(twin.stage, MESH), rest + 10.0 * bend, atol=2e-6)
    # the converted mesh's own (per-vertex) normals are left as they are
    np.testing.assert_array_equal(
        np.asarray(UsdGeom.Mesh(twin.stage.GetPrimAtPath(MESH)).GetNormalsAttr().Get()), normals)
    twin.save()
    assert validate_stage(twin.root_path).failures == []
    np.testing.assert_array_equal(Twin.open(plate).meshes[0].points, rest)
    twin.set_displacement(MESH, None)
    spec = twin.stage.GetEditTarget().GetLayer().GetPrimAtPath(MESH)
    assert spec is None or not {"points", "extent", "twin:deformScale",
                                 "twin:restPoints"} & set(spec.attributes.keys())
    np.testing.assert_array_equal(_world(twin.stage, MESH), rest)


def test_bad_displacements_and_scales_are_refused(bound_plate: Path) -> None:
    twin = Twin.open(bound_plate)
    n = len(twin.meshes[0].points)
    ok = np.zeros((n, 3))
    with pytest.raises(FieldError, match=rf"shape \({n}, 2\), need \({n}, 3\)"):
        twin.set_displacement("Plate", np.zeros((n, 2)))
    with pytest.raises(FieldError, match="NaN or infinite"):
        twin.set_displacement("Plate", np.full((n, 3), np.inf))
    with pytest.raises(FieldError, match="'Nowhere' is not on the stage"):
        twin.set_displacement("Nowhere", ok)
    for bad in (0.0, -2.0, math.nan, math.inf, "50", True):
        with pytest.raises(FieldError, match="scale must be a positive finite number"):
            twin.set_displacement("Plate", ok, scale=bad)  # type: ignore[arg-type]
    for rate in (0.0, -1.0, math.nan):
        with pytest.raises(FieldError, match="deform_rate must be a positive finite number"):
            Twin.open(bound_plate, deform_rate=rate)
    layer = twin.stage.GetEditTarget().GetLayer()  # nothing was authored by the refusals
    assert layer.GetAttributeAtPath(Sdf.Path(SURFACE).AppendProperty("twin:deformScale")) is None


def test_a_recording_of_the_stress_model_s_shapes_through_twin_recording(bound_plate: Path,
                                                                          tmp_path: Path) -> None:
    """Through ``Twin.recording`` (value clips): the shapes at their time codes are rest +
    scale * displacement of the readings recorded with them, from the rest shape even when
    the live layer shows the twin deformed; the recording validates."""
    first = Twin.open(bound_plate)
    rest = first.meshes[0].points.copy()
    stress = _stress(first)
    first.set_displacement("Plate", stress.displacement(_readings(stress, 1.0, 0.0)), scale=7.0)
    first.save()
    del first
    twin = Twin.open(bound_plate)  # a later session, whose live layer shows the plate bent
    out = tmp_path / "run.usdc"
    shapes = {}
    with twin.recording(out, fps=4.0, origin=0.0, clip_seconds=1.0, deform_scale=30.0,
                        deform_rate=2.0) as rec:
        for i in range(10):  # 2.5 s at 4 Hz: shapes at 2 Hz, codes 0, 2, 4, 6, 8
            values = _readings(stress, 0.2 + 0.1 * i, 100.0 * i)
            d = stress.displacement(values)
            rec.write(i / 4, values, displacement={"Plate": d})
            shapes[float(i)] = np.asarray(d, dtype=np.float64)
    stage = _reopen(out)
    points = UsdGeom.Mesh(stage.GetPrimAtPath(SURFACE)).GetPointsAttr()
    assert points.GetTimeSamples() == [0.0, 2.0, 4.0, 6.0, 8.0]
    for code in points.GetTimeSamples():
        np.testing.assert_allclose(_world(stage, SURFACE, code), rest + 30.0 * shapes[code],
                                   atol=2e-6)
    assert stage.GetPrimAtPath(SURFACE).GetAttribute("twin:deformScale").Get() == 30.0
    load = stage.GetPrimAtPath("/Plate/Sensors/plate_load").GetAttribute("twin:value")
    assert load.Get(8.0) == pytest.approx(800.0)
    report = validate_stage(out)
    assert report.failures == [], [str(f) for f in report.failures]


def test_the_engine_keeps_the_deflection_in_the_live_layer(tmp_path: Path) -> None:
    """``twin3d engine --live-every S --deform-scale X``: with its fields, the engine authors the
    stress model's displacement of the latest readings, X times, into the live layer."""
    from engine_plate import drive, make_stage, plant_for

    from twin3d.engine.core import Engine

    engine = Engine(make_stage(tmp_path), live_every=1.0, deform_scale=20.0)
    rest = engine.twin.meshes[0].points.copy()
    stress = engine.models[MESH]["von_mises"]
    drive(engine, plant_for(engine, seed=5), 0.0, 2.1)  # its last step (t = 2 s) is a live one
    stage = _reopen(engine.twin.root_path)  # as saved
    prim = stage.GetPrimAtPath(SURFACE)
    assert prim.GetAttribute("twin:deformScale").Get() == 20.0
    np.testing.assert_allclose(_world(stage, SURFACE), rest + 20.0 * stress.displacement(),
                               atol=2e-6)  # the readings of the last live update
    assert np.abs(_world(stage, SURFACE) - rest).max() > 1e-3


@pytest.mark.parametrize("argv", [
    ["demo", "--deform-scale", "0"],
    ["demo", "--deform-scale", "-3"],
    ["demo", "--deform-scale", "nan"],
    ["demo", "--deform-scale", "inf"],
    ["demo", "--deform-scale", "ten"],
    ["demo", "--scene", "robot", "--deform-scale", "5"],
    ["view", "STAGE", "--deform-scale", "0"],
    ["engine", "STAGE", "--bridge", "ws://127.0.0.1:1", "--deform-scale", "-1",
     "--live-every", "1"],
    ["engine", "STAGE", "--bridge", "ws://127.0.0.1:1", "--deform-scale", "5"],
], ids=["zero", "negative", "nan", "inf", "text", "robot", "view", "engine", "engine-no-live"])
def test_bad_deform_scales_are_bad_usage(argv: list[str], bound_plate: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.cli import main

    argv = [str(bound_plate) if a == "STAGE" else a for a in argv]
    out = tmp_path / "demo"
    if argv[0] == "demo":
        argv += ["-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--deform-scale" in err[0], err
    assert not out.exists()


def test_view_deform_scale_needs_a_stress_model(plate: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.cli import main

    assert main(["view", str(plate), "--deform-scale", "10", "-o", str(plate.with_name("x.png"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no mesh of the stage has a stress model" in err[0]
    assert not plate.with_name("x.png").exists()
