"""The value shown at every sensor is the model's value there: on screen and in USD.

CAD triangulations are coarse (the angle block's side face is two triangles); a sensor used to
be tied to its nearest mesh vertex, which on ``angle_block.STL`` lay 11.6 mm away on another
face, so the face under a 78 °C thermocouple showed ~73 °C. Fields are now shown on a display
surface with a vertex at every sensor (:mod:`twin3d.display`); these tests read the colour at
each sensor's screen position and the USD primvars interpolated in the triangle the sensor sits
on, and compare them with the model's value at that point.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from plate_stage import MESH, SURFACE
from pxr import Sdf, Usd, UsdGeom

from twin3d.colormap import colorize
from twin3d.display import interpolate, locate

pv = pytest.importorskip("pyvista")
pytestmark = pytest.mark.render

from twin3d.view import View  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
BLOCK = "/Block/Geom/angle_block_STL"
#: On the block's -x face; the CAD vertex nearest to it (182) is 11.6 mm away on another face.
TC1 = (-0.017, 0.0127, -0.0174)
SIZE = (320, 240)


def _block_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> object:
    from twin3d.cad.convert import convert
    from twin3d.cli import main
    from twin3d.twin import Twin

    stage = tmp_path / "block.usda"
    convert([DATA / "angle_block.STL"], stage, units="in", name="Block", progress=False)
    rows = [("block/tc1", TC1), ("block/tc2", (0.0005, 0.0063, 0.0)),
            ("block/tc3", (0.017, 0.0127, -0.0174))]
    toml = "".join(f'[[sensor]]\nchannel = "{ch}"\nquantity = "temperature"\nunit = "degC"\n'
                   f'target = "{BLOCK}"\nposition = [{p[0]}, {p[1]}, {p[2]}]\n\n' for ch, p in rows)
    (tmp_path / "sensors.toml").write_text(toml)
    assert main(["bind", str(stage), "--sensors", str(tmp_path / "sensors.toml")]) == 0
    printed = capsys.readouterr().out
    assert "block/tc1" in printed and "in triangle" in printed and "vertex" not in printed
    return Twin.open(stage)


def _reopen(path: Path) -> Usd.Stage:
    gc.collect()
    for layer in Sdf.Layer.GetLoadedLayers():
        if not layer.anonymous and Path(layer.realPath).parent == path.parent:
            layer.Reload(force=True)
    return Usd.Stage.Open(str(path))


def _usd_value_at(stage: Usd.Stage, surface: str, quantity: str, point: object) -> float:
    """A vertex primvar of a mesh, linearly interpolated in the triangle ``point`` lies on."""
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath(surface))
    pts = np.asarray(mesh.GetPointsAttr().Get(), dtype=np.float64)
    faces = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    values = np.asarray(UsdGeom.PrimvarsAPI(mesh).GetPrimvar(quantity).ComputeFlattened())
    tri, bary, dist = locate(pts, faces, [point])
    assert dist[0] < 1e-6
    return float(interpolate(values, faces, tri, bary)[0])


def _pixel_at(view: View, point: object, normal: np.ndarray) -> np.ndarray:
    """Render with the camera looking straight at ``point`` along ``-normal``; its colour."""
    p = np.asarray(point, dtype=np.float64)
    up = (0.0, 0.0, 1.0) if abs(normal[2]) < 0.9 else (0.0, 1.0, 0.0)
    view.set_camera(p + 0.06 * normal, p, up=up, view_angle=30.0)
    img = view.screenshot()
    r, c = view.screen_position(p)
    return np.asarray(img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0), dtype=np.float64)


def _normal_at(points: np.ndarray, faces: np.ndarray, point: object) -> np.ndarray:
    tri, _, _ = locate(points, faces, [point])
    a, b, c = points[faces[tri[0]]]
    n = np.cross(b - a, c - a)
    return np.asarray(n / np.linalg.norm(n))


def test_bind_records_the_triangle_a_sensor_sits_on_not_a_far_vertex(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    twin = _block_twin(tmp_path, capsys)
    s = twin.sensors["block/tc1"]  # type: ignore[attr-defined]
    (mesh,) = twin.meshes  # type: ignore[attr-defined]
    cad = mesh.source
    assert s.vertex is None and s.triangle is not None and s.barycentric is not None
    corners = cad.points[cad.faces[s.triangle]]
    np.testing.assert_allclose(np.asarray(s.barycentric) @ corners, TC1, atol=1e-9)
    normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    assert normal[0] / np.linalg.norm(normal) == pytest.approx(-1.0)  # the face it is on
    nearest = int(np.argmin(np.linalg.norm(cad.points - TC1, axis=1)))
    assert nearest == 182 and nearest not in cad.faces[s.triangle]  # the far vertex
    # the display surface has a vertex at the sensor, on the same face
    assert np.min(np.linalg.norm(mesh.points - TC1, axis=1)) < 1e-6
    assert np.array_equal(mesh.points[:len(cad.points)], cad.points)


def test_the_block_shows_each_thermocouple_s_value_where_it_sits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.fields import build_field_models

    twin = _block_twin(tmp_path, capsys)
    (mesh,) = twin.meshes  # type: ignore[attr-defined]
    model = build_field_models(twin, cache=False)[BLOCK]["temperature"]
    readings = {"block/tc1": 78.0, "block/tc2": 60.0, "block/tc3": 65.0}
    field = model.update(readings).copy()
    # the model's value at each thermocouple: linear in the triangle it sits on
    at = {ch: float(interpolate(field, mesh.faces, *locate(mesh.points, mesh.faces,
                                                            [s.position])[:2])[0])
          for ch, s in twin.sensors.items()}  # type: ignore[attr-defined]
    for ch, v in readings.items():  # kriging honours its data (nugget 1e-3): not ~73 °C
        assert at[ch] == pytest.approx(v, abs=0.3), ch

    # on screen: the colour at the sensor's position is the colour map of that value
    with View(twin, {BLOCK: model}, off_screen=True, window_size=SIZE, lighting=False,  # type: ignore[arg-type]
              field_range=(50.0, 90.0), show_sensors=False) as view:
        view.push(readings)
        for ch, s in twin.sensors.items():  # type: ignore[attr-defined]
            got = _pixel_at(view, s.position, _normal_at(mesh.points, mesh.faces, s.position))
            want = colorize([at[ch]], 50.0, 90.0)[0] * 255.0
            np.testing.assert_allclose(got, want, atol=6, err_msg=ch)

    # in USD: the primvar on the display surface, interpolated at the sensor, is that value
    twin.set_field(BLOCK, "temperature", field)  # type: ignore[attr-defined]
    twin.save()  # type: ignore[attr-defined]
    stage = _reopen(twin.root_path)  # type: ignore[attr-defined]
    assert stage.GetPrimAtPath(BLOCK).GetAttribute("visibility").Get() == "invisible"
    for ch, s in twin.sensors.items():  # type: ignore[attr-defined]
        got = _usd_value_at(stage, BLOCK + "_display", "temperature", s.position)
        assert got == pytest.approx(at[ch], abs=1e-4), ch


def test_the_plate_shows_the_heat_model_s_value_at_every_thermocouple(bound_plate: Path) -> None:
    """Readings from the heat model's own physics: the field at every thermocouple is its
    reading (an exact fit), drawn there and stored there."""
    from twin3d.fields import build_field_models
    from twin3d.twin import Twin

    twin = Twin.open(bound_plate)
    (mesh,) = twin.meshes
    heat = build_field_models(twin)[MESH]["temperature"]
    readings = heat.readings({"source:heater": 40.0, "fixed:back_bolts": 25.0,
                              "fixed:back_bolts_right": 27.0, "ambient": 22.0})
    field = heat.update(readings).copy()
    at = {}
    for ch in heat.channels:
        tri, bary, dist = locate(mesh.points, mesh.faces, [twin.sensors[ch].position])
        assert dist[0] < 1e-6
        at[ch] = float(interpolate(field, mesh.faces, tri, bary)[0])
        assert at[ch] == pytest.approx(readings[ch], abs=0.05), ch
    lo, hi = min(at.values()) - 1.0, max(at.values()) + 1.0

    with View(twin, {MESH: heat}, off_screen=True, window_size=SIZE, lighting=False,
              field_range=(lo, hi), show_sensors=False) as view:
        view.push(readings)
        for ch in heat.channels:
            p = twin.sensors[ch].position
            got = _pixel_at(view, p, _normal_at(mesh.points, mesh.faces, p))
            np.testing.assert_allclose(got, colorize([at[ch]], lo, hi)[0] * 255.0, atol=6,
                                       err_msg=ch)

    twin.set_field(MESH, "temperature", field)
    twin.save()
    stage = _reopen(twin.root_path)
    for ch in heat.channels:
        got = _usd_value_at(stage, SURFACE, "temperature", twin.sensors[ch].position)
        assert got == pytest.approx(at[ch], abs=1e-4), ch
