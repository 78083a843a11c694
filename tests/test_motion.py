"""Property bindings on the 10-part box_sides.STEP assembly: a lid on its hinge, a sliding
gusset, a hidden side, a coloured side, a light's intensity; in the live layer, in recordings,
in a stage opened without twin3d; every bad [[binding]] refused at bind time."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pxr import Sdf, Usd, UsdGeom, UsdLux, UsdShade

import twin3d
from twin3d.cad.convert import convert, geometry_path
from twin3d.cli import main
from twin3d.colormap import linear_colorize, linear_state_color
from twin3d.sensors import parse_sensor_map
from twin3d.usd.bind import bind_sensors
from twin3d.usd.bindings import read_property_bindings

DATA = Path(__file__).parent / "data"
LID = "/box_sides/Geom/box_top"
HINGE = (0.0, 0.161, 0.2063)  # a point on the top edge of the long side at y = 0.161
BINDINGS = f"""
[[binding]]
channel = "box/lid"
prim = "{LID}"
kind = "rotate"
axis = [1, 0, 0]
pivot = [{HINGE[0]}, {HINGE[1]}, {HINGE[2]}]
limits = [0, 110]

[[binding]]
channel = "box/slide"
prim = "/box_sides/Geom/gusset_3"
kind = "translate"
axis = [0, 0, 2]
scale = 0.001
offset = 0.002

[[binding]]
channel = "box/door"
prim = "/box_sides/Geom/side_long_1"
kind = "visible"
threshold = 0.5

[[binding]]
channel = "box/temp"
prim = "/box_sides/Geom/side_short"
kind = "color"
colormap = "viridis"
range = [20, 100]

[[binding]]
channel = "box/state"
prim = "/box_sides/Geom/side_long_1_1"
kind = "color"
states = {{ warn_high = 80, alarm_high = 95 }}

[[binding]]
channel = "box/lamp"
prim = "/box_sides/Lamp"
kind = "attribute"
attribute = "inputs:intensity"
scale = 10
limits = [0, 500]
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """box_sides.STEP converted, with a light in its root layer (for the attribute binding)."""
    out = convert(DATA / "box_sides.STEP", tmp_path_factory.mktemp("box") / "box.usda",
                  progress=False)
    stage = Usd.Stage.Open(str(out))
    UsdLux.SphereLight.Define(stage, "/box_sides/Lamp").CreateIntensityAttr(1.0)
    stage.GetRootLayer().Save()
    return out


@pytest.fixture
def bound(box: Path, tmp_path: Path) -> Path:
    for f in box.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    stage = tmp_path / box.name
    bind_sensors(stage, parse_sensor_map(BINDINGS))
    return stage


def _world_points(stage: Usd.Stage, path: str, time: Usd.TimeCode) -> np.ndarray:
    """The world points of the meshes under ``path`` (instance proxies too)."""
    cache = UsdGeom.XformCache(time)
    out = []
    for prim in Usd.PrimRange(stage.GetPrimAtPath(path), Usd.TraverseInstanceProxies()):
        if prim.IsA(UsdGeom.Mesh):
            m = np.asarray(cache.GetLocalToWorldTransform(prim), dtype=np.float64)
            pts = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get(), dtype=np.float64)
            out.append(pts @ m[:3, :3] + m[3, :3])
    return np.concatenate(out)


def _hinged(points: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation about the x axis through HINGE, by the textbook matrix."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return (points - HINGE) @ rx.T + HINGE


def test_lid_rotates_about_its_hinge_live_recorded_and_without_twin3d(bound: Path,
                                                                      tmp_path: Path) -> None:
    rest = _world_points(Usd.Stage.Open(str(bound)), LID, Usd.TimeCode.Default())
    twin = twin3d.Twin.open(bound, reset=True)
    twin.update({"box/lid": 35.0})
    twin.save()
    live = Usd.Stage.Open(str(twin.root_path))
    np.testing.assert_allclose(_world_points(live, LID, Usd.TimeCode.Default()),
                               _hinged(rest, 35.0), atol=1e-9)
    twin.update({"box/lid": 200.0})  # clamped to the upper limit
    np.testing.assert_allclose(_world_points(twin.stage, LID, Usd.TimeCode.Default()),
                               _hinged(rest, 110.0), atol=1e-9)
    # two value clips, 0-1.5 s and 1.5-3 s: the second starts between two samples
    with twin.recording(tmp_path / "lid.usdc", fps=1.0, origin=0.0, clip_seconds=1.5) as rec:
        for t, angle in enumerate([0.0, 20.0, 90.0]):
            rec.write(float(t), {"box/lid": angle})
    recording = Usd.Stage.Open(str(tmp_path / "lid.usdc"))
    assert len(Usd.ClipsAPI(recording.GetDefaultPrim()).GetClipAssetPaths()) == 2
    # at the samples, and between them (the quaternion slerps: halfway is the mean angle),
    # also across the clip boundary at 1.5
    for t, angle in ((0, 0.0), (0.5, 10.0), (1, 20.0), (1.25, 37.5), (1.5, 55.0), (2, 90.0)):
        np.testing.assert_allclose(_world_points(recording, LID, Usd.TimeCode(t)),
                                   _hinged(rest, angle), atol=1e-9)
    # plain pxr, no twin3d (so no schema plugin): the motion is in the layers
    code = ("import sys, numpy as np; from pxr import Usd, UsdGeom; "
            "s = Usd.Stage.Open(sys.argv[1]); p = s.GetPrimAtPath(sys.argv[2]); "
            "print(repr(np.asarray(UsdGeom.Xformable(p).ComputeLocalToWorldTransform("
            "Usd.TimeCode(2))).tolist()))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lid.usdc"), LID],
                         capture_output=True, text=True, check=True).stdout
    stage = Usd.Stage.Open(str(tmp_path / "lid.usdc"))
    want = np.asarray(UsdGeom.Xformable(stage.GetPrimAtPath(LID)).ComputeLocalToWorldTransform(
        Usd.TimeCode(2)))
    np.testing.assert_allclose(np.asarray(eval(out)), want, atol=1e-12)
    assert "twin3d" not in out


def test_the_assets_own_transform_is_kept(bound: Path, box: Path) -> None:
    geom = Sdf.Layer.FindOrOpen(str(geometry_path(bound)))
    before = Sdf.Layer.FindOrOpen(str(geometry_path(box)))
    attr = f"{LID}.xformOp:transform"
    assert geom.GetAttributeAtPath(attr).default == before.GetAttributeAtPath(attr).default
    stage = Usd.Stage.Open(str(bound))
    prim = stage.GetPrimAtPath(LID)
    assert list(UsdGeom.Xformable(prim).GetXformOpOrderAttr().Get()) == [
        "xformOp:transform", "xformOp:translate:twin_rotate_box_lid_pivot",
        "xformOp:orient:twin_rotate_box_lid", "!invert!xformOp:translate:twin_rotate_box_lid_pivot"]
    assert "Twin3DBindingAPI:rotate_box_lid" in prim.GetAppliedSchemas()
    # binding again replaces: the same ops, once
    bind_sensors(bound, parse_sensor_map(BINDINGS))
    stage = Usd.Stage.Open(str(bound))
    prim = stage.GetPrimAtPath(LID)
    assert len(UsdGeom.Xformable(prim).GetXformOpOrderAttr().Get()) == 4
    # and a file without bindings takes them out again, leaving the asset's op order
    bind_sensors(bound, parse_sensor_map('[[binding]]\nchannel = "x/y"\nprim = "/box_sides"\n'
                                         'kind = "visible"\nthreshold = 1\n'))
    stage = Usd.Stage.Open(str(bound))
    prim = stage.GetPrimAtPath(LID)
    assert list(UsdGeom.Xformable(prim).GetXformOpOrderAttr().Get()) == ["xformOp:transform"]
    assert prim.GetAppliedSchemas() == ["MaterialBindingAPI"]  # the asset's own


def test_translate_visible_color_attribute(bound: Path) -> None:
    stage0 = Usd.Stage.Open(str(bound))
    gusset = _world_points(stage0, "/box_sides/Geom/gusset_3", Usd.TimeCode.Default())
    twin = twin3d.Twin.open(bound, reset=True)
    twin.update({"box/slide": 5.0, "box/door": 0.2, "box/temp": 60.0, "box/state": 90.0,
                 "box/lamp": 12.0})
    stage = twin.stage
    # 5 mm * 0.001 + 2 mm along +z (the axis is normalised)
    moved = _world_points(stage, "/box_sides/Geom/gusset_3", Usd.TimeCode.Default())
    np.testing.assert_allclose(moved - gusset, np.tile([0, 0, 0.007], (len(gusset), 1)),
                               atol=1e-12)
    side = stage.GetPrimAtPath("/box_sides/Geom/side_long_1")
    assert UsdGeom.Imageable(side).ComputeVisibility() == UsdGeom.Tokens.invisible
    mesh = stage.GetPrimAtPath("/box_sides/Geom/side_short")
    np.testing.assert_allclose(UsdGeom.Mesh(mesh).GetDisplayColorAttr().Get()[0],
                               linear_colorize([60.0], 20, 100, "viridis")[0], atol=1e-6)
    material, _ = UsdShade.MaterialBindingAPI(mesh).ComputeBoundMaterial()
    assert material.GetPath().name == "Twin3DBindingColor"
    state = [p for p in Usd.PrimRange(stage.GetPrimAtPath("/box_sides/Geom/side_long_1_1"))
             if p.GetAttribute("primvars:displayColor").HasAuthoredValue()]
    assert state and all(np.allclose(p.GetAttribute("primvars:displayColor").Get()[0],
                                     linear_state_color("warn")) for p in state)
    lamp = UsdLux.SphereLight(stage.GetPrimAtPath("/box_sides/Lamp"))
    assert lamp.GetIntensityAttr().Get() == pytest.approx(120.0)
    twin.update({"box/door": 0.9, "box/lamp": 99.0, "box/state": 99.0})
    assert UsdGeom.Imageable(side).ComputeVisibility() == UsdGeom.Tokens.inherited
    assert lamp.GetIntensityAttr().Get() == pytest.approx(500.0)  # clamped
    assert np.allclose(state[0].GetAttribute("primvars:displayColor").Get()[0],
                       linear_state_color("alarm"))
    # the stored bindings, read back by any tool
    kinds = {b.channel: b.kind for b in read_property_bindings(stage)}
    assert kinds == {"box/lid": "rotate", "box/slide": "translate", "box/door": "visible",
                     "box/temp": "color", "box/state": "color", "box/lamp": "attribute"}
    assert stage.GetPrimAtPath(LID).GetAttribute("twin:binding:rotate_box_lid:value").Get() \
        is None  # no lid value yet
    assert stage.GetPrimAtPath("/box_sides/Lamp").GetAttribute(
        "twin:binding:attribute_box_lamp:value").Get() == 99.0


def test_a_local_frame_binding_matches_its_world_twin(bound: Path) -> None:
    """The same hinge given in the lid's own frame moves it the same way."""
    stage = Usd.Stage.Open(str(bound))
    world = np.asarray(UsdGeom.Xformable(stage.GetPrimAtPath(LID)).ComputeLocalToWorldTransform(
        Usd.TimeCode.Default())).T
    inv = np.linalg.inv(world)
    pivot = inv[:3, :3] @ np.asarray(HINGE) + inv[:3, 3]
    axis = inv[:3, :3] @ np.array([1.0, 0.0, 0.0])
    text = BINDINGS.split("[[binding]]")[0] + f"""
[[binding]]
channel = "box/lid"
prim = "{LID}"
kind = "rotate"
frame = "local"
axis = [{axis[0]}, {axis[1]}, {axis[2]}]
pivot = [{pivot[0]}, {pivot[1]}, {pivot[2]}]
"""
    bind_sensors(bound, parse_sensor_map(text))
    rest = _world_points(Usd.Stage.Open(str(bound)), LID, Usd.TimeCode.Default())
    twin = twin3d.Twin.open(bound, reset=True)
    twin.update({"box/lid": 42.0})
    np.testing.assert_allclose(_world_points(twin.stage, LID, Usd.TimeCode.Default()),
                               _hinged(rest, 42.0), atol=1e-9)


BAD = [
    ('prim = "/box_sides/Geom/nope"\nkind = "visible"\nthreshold = 1',
     "prim /box_sides/Geom/nope is not on the stage"),
    (f'prim = "{LID}"\nkind = "rotate"\naxis = [0, 0]\npivot = [0, 0, 0]',
     "axis must be three finite numbers"),
    (f'prim = "{LID}"\nkind = "rotate"\naxis = [0, 0, 0]\npivot = [0, 0, 0]',
     "axis must not be zero"),
    (f'prim = "{LID}"\nkind = "rotate"\naxis = [1, 0, 0]', "needs pivot"),
    (f'prim = "{LID}"\nkind = "rotate"\naxis = [1, 0, 0]\npivot = [0, 0, 0]\nspeed = 2',
     "unknown key 'speed'"),
    (f'prim = "{LID}"\nkind = "spin"', "kind 'spin' is not one of"),
    ('prim = "/box_sides/Materials"\nkind = "translate"\naxis = [1, 0, 0]',
     "cannot move"),
    ('prim = "/box_sides/Lamp"\nkind = "attribute"\nattribute = "inputs:brightness"',
     "has no attribute 'inputs:brightness'"),
    ('prim = "/box_sides/Geom/gusset_3/Mesh"\nkind = "visible"\nthreshold = 1',
     "inside an instance"),
    (f'prim = "{LID}"\nkind = "color"\ncolormap = "viridis"', "needs range"),
    (f'prim = "{LID}"\nkind = "translate"\naxis = [1, 0, 0]\nlimits = [2, 1]',
     "limits must be two finite numbers"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[b[1][:24] for b in BAD])
def test_bad_binding_is_one_line_and_leaves_the_stage_untouched(
        box: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str,
        message: str) -> None:
    for f in box.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    stage = tmp_path / box.name
    before = stage.read_bytes()
    toml = tmp_path / "b.toml"
    toml.write_text(f'[[binding]]\nchannel = "box/x"\n{body}\n')
    assert main(["bind", str(stage), "--sensors", str(toml)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("twin3d bind: error:"), err
    assert message in err, err
    assert stage.read_bytes() == before


def test_world_matrices_move_actors_like_usd(bound: Path) -> None:
    from twin3d.usd.motion import Motion

    twin = twin3d.Twin.open(bound, reset=True)
    values = {"box/lid": 25.0, "box/slide": 3.0}
    twin.update(values)
    poses = Motion.from_stage(twin.stage).world_matrices(values)
    cache = UsdGeom.XformCache()
    for path in (LID, "/box_sides/Geom/gusset_3/Mesh"):
        assert path in poses
        np.testing.assert_allclose(poses[path], np.asarray(cache.GetLocalToWorldTransform(
            twin.stage.GetPrimAtPath(path))).T, atol=1e-12)
