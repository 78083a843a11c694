"""``twin3d bind`` / ``twin3d info``: sensors authored into a real converted stage, reopened with pxr."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from plate_stage import MESH, SENSORS
from pxr import Sdf, Usd, UsdGeom, UsdShade

import twin3d.usd  # noqa: F401  (registers the schema)
from twin3d.cli import main
from twin3d.colormap import linear_state_color
from twin3d.errors import BindingError
from twin3d.sensors import load_sensor_map, parse_sensor_map
from twin3d.usd.bind import bind_sensors
from twin3d.usd.bindings import read_sensors

MAP = load_sensor_map(SENSORS)


def _sha(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _surface(stage_path: Path) -> trimesh.Trimesh:
    stage = Usd.Stage.Open(str(stage_path))
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath(MESH))
    pts = np.asarray(mesh.GetPointsAttr().Get(), dtype=np.float64)
    faces = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    return trimesh.Trimesh(pts, faces, process=False)


def test_bind_authors_sensor_prims(plate: Path) -> None:
    bound = bind_sensors(plate, MAP)
    assert [s.channel for s in bound] == MAP.channels

    stage = Usd.Stage.Open(str(plate))
    scope = stage.GetPrimAtPath("/Plate/Sensors")
    assert scope.GetTypeName() == "Scope"
    markers = [p for p in scope.GetChildren() if p.HasAPI("Twin3DSensorAPI")]
    assert len(markers) == len(MAP.sensors) == 15
    surface = _surface(plate)
    for requested in MAP.sensors:
        prim = stage.GetPrimAtPath(f"/Plate/Sensors/{requested.channel.replace('/', '_')}")
        assert prim.GetTypeName() == "Sphere"
        assert prim.GetAttribute("twin:channel").Get() == requested.channel
        assert prim.GetAttribute("twin:quantity").Get() == requested.quantity
        assert prim.GetAttribute("twin:unit").Get() == requested.unit
        assert prim.GetRelationship("twin:target").GetTargets() == [Sdf.Path(MESH)]
        for key, name in [("warn_high", "warnHigh"), ("alarm_high", "alarmHigh"),
                          ("warn_low", "warnLow"), ("alarm_low", "alarmLow")]:
            attr = prim.GetAttribute(f"twin:limits:{name}")
            assert attr.Get() == getattr(requested.limits, key)
        # the marker sits on the surface; the recorded snap distance is the distance moved
        world = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(
            Usd.TimeCode.Default()).ExtractTranslation())
        _, dist, _ = trimesh.proximity.closest_point(surface, world[None])
        assert dist[0] < 1e-6
        moved = np.linalg.norm(world - np.asarray(requested.position))
        assert prim.GetAttribute("twin:snapDistance").Get() == pytest.approx(moved, abs=1e-7)
        assert tuple(prim.GetAttribute("twin:requestedPosition").Get()) == requested.position
        # where it sits: a triangle of the mesh (the nearest to the requested position) and
        # barycentric coordinates in it that give the marker's position; no far vertex
        assert not prim.GetAttribute("twin:vertex").HasAuthoredValue()
        t = prim.GetAttribute("twin:triangle").Get()
        lam = np.asarray(prim.GetAttribute("twin:barycentric").Get())
        assert lam.min() >= 0.0 and lam.sum() == pytest.approx(1.0)
        assert np.linalg.norm(lam @ surface.vertices[surface.faces[t]] - world) < 1e-7
        corners = surface.triangles[[t]]
        d_t = trimesh.triangles.closest_point(corners, np.asarray([requested.position]))
        assert np.linalg.norm(d_t[0] - requested.position) == pytest.approx(moved, abs=1e-7)
        # visible, grey until a value arrives, shown through a displayColor material
        assert tuple(UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()[0]) == pytest.approx(
            linear_state_color("stale"))
        assert prim.GetAttribute("twin:state").Get() == "stale"
        material = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()[0]
        assert material.GetPath() == Sdf.Path("/Plate/Sensors/Materials/Marker")
    tc5 = stage.GetPrimAtPath("/Plate/Sensors/plate_tc5")
    assert tc5.GetAttribute("twin:snapDistance").Get() == pytest.approx(0.0008, abs=1e-6)


def test_read_sensors_round_trip(bound_plate: Path) -> None:
    sensors = read_sensors(Usd.Stage.Open(str(bound_plate)))
    assert list(sensors) == MAP.channels
    s = sensors["plate/tc5"]
    assert s.target == MESH and s.quantity == "temperature" and s.unit == "degC"
    assert s.position == pytest.approx((0.1016, 0.120, 0.0127), abs=1e-6)
    assert s.limits == MAP["plate/tc5"].limits
    # where it sits: a triangle of the mesh and barycentric coordinates there, no vertex
    bound = {b.channel: b for b in bind_sensors(bound_plate, MAP)}
    assert s.vertex is None and s.triangle == bound["plate/tc5"].triangle is not None
    assert s.barycentric == pytest.approx(bound["plate/tc5"].barycentric, abs=1e-12)
    assert s.description == MAP["plate/tc5"].description


def test_schema_gives_typed_properties(bound_plate: Path) -> None:
    definition = Usd.SchemaRegistry().FindAppliedAPIPrimDefinition("Twin3DSensorAPI")
    assert definition is not None
    stage = Usd.Stage.Open(str(bound_plate))
    prim = stage.GetPrimAtPath("/Plate/Sensors/plate_tc1")
    time = prim.GetAttribute("twin:time")  # never authored: it exists through the schema
    assert time.IsDefined() and not time.IsAuthored()
    assert prim.GetAttribute("twin:quantity").GetMetadata("allowedTokens") is not None


def test_stage_opens_without_the_schema_plugin(bound_plate: Path) -> None:
    script = (
        "import json, sys\n"
        "from pxr import Usd\n"
        f"stage = Usd.Stage.Open({str(bound_plate)!r})\n"
        "prim = stage.GetPrimAtPath('/Plate/Sensors/plate_tc3')\n"
        "print(json.dumps({'twin3d': any(m.startswith('twin3d') for m in sys.modules),\n"
        "  'channel': prim.GetAttribute('twin:channel').Get(),\n"
        "  'warn': prim.GetAttribute('twin:limits:warnHigh').Get(),\n"
        "  'target': [str(t) for t in prim.GetRelationship('twin:target').GetTargets()],\n"
        "  'typed': prim.GetAttribute('twin:time').IsDefined(),\n"
        "  'schemas': list(prim.GetPrimTypeInfo().GetAppliedAPISchemas())}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PXR_PLUGINPATH_NAME", "PYTHONPATH")}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    out = json.loads(run.stdout)
    assert out == {"twin3d": False, "channel": "plate/tc3", "warn": 80.0, "target": [MESH],
                   "typed": False, "schemas": ["MaterialBindingAPI", "Twin3DSensorAPI"]}
    assert "Error" not in run.stderr and "Warning" not in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace(f'target = "{MESH}"', 'target = "/Plate/Geom/Nope"', 1),
         "sensor 'plate/tc1': target /Plate/Geom/Nope is not on the stage"),
        (lambda t: t.replace(f'target = "{MESH}"', 'target = "/Plate/Geom"', 1),
         "sensor 'plate/tc1': target /Plate/Geom is a Xform, not a Mesh"),
        (lambda t: t.replace("position = [0.030, 0.030, 0.0127]",
                             "position = [0.030, 0.030, 0.0427]", 1),
         "sensor 'plate/tc1': position (0.03, 0.03, 0.0427) is 30.0 mm from the surface"),
        (lambda t: t.replace("position = [0.030, 0.030, 0.0127]", "vertex = 99999", 1),
         "sensor 'plate/tc1': vertex 99999 is out of range"),
        (lambda t: t.replace('channel = "plate/tc2"', 'channel = "plate_tc1"', 1),
         "sensor 'plate_tc1': its prim name 'plate_tc1' clashes with channel 'plate/tc1'"),
    ],
)
def test_bad_bindings_leave_the_stage_untouched(plate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                edit: object, problem: str) -> None:
    text = edit(SENSORS.read_text())  # type: ignore[operator]
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    before = _sha(plate, plate.with_name("plate.geom.usdc"))
    with pytest.raises(BindingError, match="^" + problem.replace("(", r"\(").replace(")", r"\)")):
        bind_sensors(plate, parse_sensor_map(text))
    assert main(["bind", str(plate), "--sensors", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"twin3d bind: error: {problem}") and "\n" not in err
    assert _sha(plate, plate.with_name("plate.geom.usdc")) == before
    assert not Usd.Stage.Open(str(plate)).GetPrimAtPath("/Plate/Sensors")


def test_malformed_map_exit_1_and_untouched(plate: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SENSORS.read_text() + "\n[[sensor]]\nchannel = \"plate/tc1\"\n")
    before = _sha(plate)
    assert main(["bind", str(plate), "--sensors", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "sensor #16 'plate/tc1'" in err and err.count("\n") == 1
    assert _sha(plate) == before


def test_tolerance_flag_and_output_elsewhere(plate: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = _sha(plate)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "bound.usda"
    # tc5 sits 0.8 mm above the face: a 0.5 mm tolerance rejects it, the default accepts it
    assert main(["bind", str(plate), "--sensors", str(SENSORS), "-o", str(out),
                 "--tolerance", "0.0005"]) == 1
    assert "sensor 'plate/tc5'" in capsys.readouterr().err and not out.exists()
    assert main(["bind", str(plate), "--sensors", str(SENSORS), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "plate/tc5" in printed and "snapped 0.80 mm" in printed
    assert _sha(plate) == before  # -o leaves the input alone
    stage = Usd.Stage.Open(str(out))  # the payload path was re-anchored to ../
    assert stage.GetPrimAtPath(MESH).IsA(UsdGeom.Mesh)
    assert len(read_sensors(stage)) == 15
    assert list(out_dir.iterdir()) == [out]  # no temporary files left


def test_rebinding_replaces_the_sensors(bound_plate: Path) -> None:
    small = parse_sensor_map(f'[[sensor]]\nchannel = "plate/only"\nquantity = "generic"\n'
                             f'target = "{MESH}"\nvertex = 0\n')
    bind_sensors(bound_plate, small)
    sensors = read_sensors(Usd.Stage.Open(str(bound_plate)))
    assert list(sensors) == ["plate/only"]
    assert sensors["plate/only"].vertex == 0 and sensors["plate/only"].snap_distance == 0.0


def test_info_prints_units_hierarchy_and_sensors(bound_plate: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(bound_plate)]) == 0
    out = capsys.readouterr().out
    assert "upAxis Z, metersPerUnit 1, defaultPrim /Plate" in out
    assert "plate_holes_stl [Mesh]  (618 points, 1252 faces)" in out
    # part dimensions, to place sensors by: the plate is 8 × 12 × 0.5 inches
    assert "size 203.2 × 304.8 × 12.7 mm, from (0, 0, 0) to (0.2032, 0.3048, 0.0127)" in out
    assert "sensors: 15" in out
    assert "plate/tc5" in out and f"-> {MESH}" in out and "snapped 0.80 mm" in out
    assert "warn_high=80, alarm_high=95" in out
    capsys.readouterr()
    assert main(["info", str(bound_plate.with_name("missing.usda"))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"twin3d info: error: {bound_plate.with_name('missing.usda')}: no such file"]
    garbage = bound_plate.with_name("garbage.usda")
    garbage.write_bytes(b"\x00not usd at all")
    assert main(["info", str(garbage)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"twin3d info: error: {garbage}: cannot open")


def test_info_shows_meshes_inside_instances(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The enclosure's four gussets are one instanced mesh: each copy is listed with its size."""
    step = Path(__file__).resolve().parents[1] / "assets" / "assembly" / "box_sides.STEP"
    stage = tmp_path / "enclosure.usda"
    assert main(["convert", str(step), "-o", str(stage), "--name", "Enclosure"]) == 0
    capsys.readouterr()
    assert main(["info", str(stage)]) == 0
    lines = capsys.readouterr().out.splitlines()
    instances = [i for i, line in enumerate(lines) if line.endswith("[Xform]  (instance)")]
    assert len(instances) >= 4
    for i in instances:
        depth = len(lines[i]) - len(lines[i].lstrip())
        mesh, size = lines[i + 1], lines[i + 2]
        assert "[Mesh]" in mesh and len(mesh) - len(mesh.lstrip()) == depth + 2, mesh
        assert size.lstrip().startswith("size ") and " mm, from (" in size, size


def test_markers_land_in_world_space_under_a_moved_root(tmp_path: Path) -> None:
    """Positions are world space: a translated and rotated root must not move the markers."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    stage_path = tmp_path / "box.usda"
    stage = Usd.Stage.CreateNew(str(stage_path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)  # centimetres: the tolerance is given in metres
    root = UsdGeom.Xform.Define(stage, "/Box")
    root.AddTranslateOp().Set((10.0, 20.0, 30.0))
    root.AddRotateZOp().Set(90.0)
    stage.SetDefaultPrim(root.GetPrim())
    mesh = UsdGeom.Mesh.Define(stage, "/Box/Body")
    mesh.CreatePointsAttr([tuple(map(float, p)) for p in box.vertices])
    mesh.CreateFaceVertexCountsAttr([3] * len(box.faces))
    mesh.CreateFaceVertexIndicesAttr([int(i) for i in box.faces.reshape(-1)])
    stage.GetRootLayer().Save()
    del stage
    # top face in world space is z = 30.5; ask for a point 0.2 cm above it
    smap = parse_sensor_map('[[sensor]]\nchannel = "box/t"\nquantity = "temperature"\n'
                            'target = "/Box/Body"\nposition = [10.1, 20.2, 30.7]\n')
    with pytest.raises(BindingError, match=r"is 2\.0 mm from the surface of /Box/Body \(tolerance 1\.0 mm\)"):
        bind_sensors(stage_path, smap, tolerance_m=0.001)
    (s,) = bind_sensors(stage_path, smap)
    assert s.position == pytest.approx((10.1, 20.2, 30.5))
    assert s.snap_distance == pytest.approx(0.2)
    reopened = Usd.Stage.Open(str(stage_path))
    marker = reopened.GetPrimAtPath("/Box/Sensors/box_t")
    world = UsdGeom.Xformable(marker).ComputeLocalToWorldTransform(Usd.TimeCode.Default())
    assert tuple(world.ExtractTranslation()) == pytest.approx((10.1, 20.2, 30.5))


def test_the_model_table_travels_with_the_binding(plate: Path) -> None:
    from twin3d.twin import Twin

    smap = load_sensor_map(SENSORS)
    assert smap.model["thermal"]["sources"] == ["heater"]
    bind_sensors(plate, smap)
    assert Twin.open(plate).model == smap.model  # any tool gets the physics from the stage
    without = SENSORS.read_text(encoding="utf-8").split("[model.")[0]
    bind_sensors(plate, parse_sensor_map(without))  # re-binding without a model drops it
    assert Twin.open(plate).model == {}
