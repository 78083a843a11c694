"""Moving and deforming parts in the view: a matrix per part, points rewritten in place.

A moved part is drawn where its matrix says (pixels of an off-screen render), and moving it
touches no point or scalar buffer (their pointers and VTK modification times); a deformation
rewrites the points buffer it was drawn from; a twin's bound motion moves the parts from the
values pushed into the view.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from twin3d.errors import RenderError

pv = pytest.importorskip("pyvista")
pytestmark = pytest.mark.render

from twin3d.view import View  # noqa: E402

SIZE = (480, 360)
TOP = dict(position=(0.2, 0.15, 0.75), focal_point=(0.2, 0.15, 0.0), up=(0.0, 1.0, 0.0))


def _rz(degrees: float, t: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = t
    return m


def _rgb(view: View, img: np.ndarray, xyz: object) -> np.ndarray:
    r, c = view.screen_position(xyz)  # type: ignore[arg-type]
    return np.asarray(img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0), dtype=float)


def _buffers(ma: object) -> tuple[int, ...]:
    poly = ma.polydata  # type: ignore[attr-defined]
    pts = poly.GetPoints()
    return (pts.GetData().GetVoidPointer(0), pts.GetMTime(), pts.GetData().GetMTime(),
            ma.array.GetVoidPointer(0), ma.array.GetMTime(),  # type: ignore[attr-defined]
            poly.GetPointData().GetNormals().GetMTime(), poly.GetMTime(),
            id(ma.actor.GetMapper().GetInput()))  # type: ignore[attr-defined]


def test_a_moved_part_is_drawn_where_its_matrix_says(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    block = next(m for m in twin.meshes if m.path.endswith("Block"))
    centre = np.array([0.03, 0.03, 0.05, 1.0])  # top of the 6 cm block, its local frame
    corner_in = np.array([0.057, 0.003, 0.05, 1.0])
    corner_out = np.array([0.066, -0.006, 0.05, 1.0])
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
              show_sensors=False) as view:
        view.set_camera(**TOP)
        img = view.screenshot()
        red = _rgb(view, img, (block.world @ centre)[:3])
        grey = _rgb(view, img, (0.1, 0.1, 0.0))
        assert np.abs(red - grey).max() > 60  # the block stands out from the plate
        ma = next(a for a in view.mesh_actors if a.path == block.path)
        body = next(a for a in view.mesh_actors if a.path.endswith("Body"))
        before, body_before, actors = _buffers(ma), _buffers(body), view.actor_ids()
        world = _rz(30.0, (0.12, 0.08, 0.0)) @ np.linalg.inv(block.world) @ block.world
        view.set_transforms({block.path: world})
        img = view.screenshot()
        np.testing.assert_allclose(_rgb(view, img, (world @ centre)[:3]), red, atol=6)
        np.testing.assert_allclose(_rgb(view, img, (world @ corner_in)[:3]), red, atol=6)
        np.testing.assert_allclose(_rgb(view, img, (world @ corner_out)[:3]), grey, atol=6)
        np.testing.assert_allclose(_rgb(view, img, (block.world @ centre)[:3]), grey, atol=6)
        # only the actor's matrix changed: the same buffers, never marked modified
        assert _buffers(ma) == before and _buffers(body) == body_before
        assert view.actor_ids() == actors
        np.testing.assert_allclose(ma.moved, world @ np.linalg.inv(block.world), atol=1e-12)


def test_bad_transforms_and_displacements_are_one_line_and_change_nothing(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    with View(twin, model, off_screen=True, window_size=(160, 120)) as view:
        body, block = view.mesh_paths
        with pytest.raises(RenderError, match="/Nope is not a mesh of this view"):
            view.set_transforms({block: np.eye(4), "/Nope": np.eye(4)})
        with pytest.raises(RenderError, match=r"must be a finite \(4, 4\) array, got shape \(3, 3\)"):
            view.set_transforms({block: np.eye(3)})
        assert all(np.array_equal(ma.moved, np.eye(4)) for ma in view.mesh_actors)
        n = view.mesh_actors[0].n_vertices
        with pytest.raises(RenderError, match=rf"needs a \({n}, 3\) float array"):
            view.set_displacement(body, np.zeros((n, 2)))
        with pytest.raises(RenderError, match="scale must be a positive number"):
            view.set_displacement(body, np.zeros((n, 3)), scale=0.0)
        assert view.mesh_actors[0].version == 0


@pytest.mark.parametrize(("shader", "lit"), [(False, False), (True, False), (True, True)],
                         ids=["points", "shader", "shader-lit"])
def test_a_deformation_is_drawn_in_place(view_plate, shader: bool, lit: bool) -> None:  # type: ignore[no-untyped-def]
    """points: new positions written into the points buffer; shader (big meshes): a
    displacement attribute the vertex shader adds, the points buffer left as it is."""
    twin, model = view_plate
    body = next(m for m in twin.meshes if m.path.endswith("Body"))
    x = body.points[:, 0]
    bend = np.zeros((len(x), 3))
    bend[:, 1] = 0.001 * (x / 0.4) ** 2  # stage units: 1 mm at the far end
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=lit,
              show_sensors=True, labels="none") as view:
        view.set_camera(**TOP)
        img = view.screenshot()
        grey, background = _rgb(view, img, (0.38, 0.28, 0.0)), _rgb(view, img, (0.38, 0.33, 0.0))
        ma = next(a for a in view.mesh_actors if a.path == body.path)
        ma.shader_displacement = shader  # the view picks it by size: 1,271 points here
        points = ma.polydata.GetPoints()
        ptr, mtime, field = points.GetData().GetVoidPointer(0), points.GetMTime(), ma.array.GetMTime()
        normals = ma.polydata.GetPointData().GetNormals().GetMTime()
        marker = view.glyphs.positions[view.glyphs.channels.index("plate/tc4")].copy()
        view.set_displacement(body.path, bend, scale=40.0)  # 40 mm at the far end
        img = view.screenshot()
        expect = body.points + 40.0 * bend
        got = np.empty_like(expect)
        drawn = np.asarray(ma.polydata.points) + np.asarray([ma.offset(i) for i in range(ma.polydata.n_points)]) \
            if shader else np.asarray(ma.polydata.points)
        got[ma.vertex_ids if ma.vertex_ids is not None else slice(None)] = drawn
        np.testing.assert_allclose(got, expect, atol=1e-6)
        assert points.GetData().GetVoidPointer(0) == ptr  # the same buffer
        if shader:  # the points are not touched; the displacement attribute is
            assert points.GetMTime() == mtime
            disp = ma.polydata.point_data["twin3d_twin3dDispIn"]
            np.testing.assert_allclose(np.asarray(disp) * 40.0, np.asarray(drawn) - ma.rest, atol=1e-6)
        else:
            assert points.GetMTime() > mtime
        assert ma.array.GetMTime() == field  # the field is not re-uploaded
        assert ma.polydata.GetPointData().GetNormals().GetMTime() == normals  # not asked
        assert "deformation ×40" in view.status.GetText(0)
        # the far edge now reaches 4 cm further: the plate is drawn where it was background
        np.testing.assert_allclose(_rgb(view, img, (0.38, 0.33, 0.0)), grey, atol=6)
        assert np.abs(background - grey).max() > 20
        # the marker of tc4 (x = 0.35) moved with the surface it sits on
        moved = view.glyphs.positions[view.glyphs.channels.index("plate/tc4")]
        np.testing.assert_allclose(moved - marker, [0.0, 40.0 * 0.001 * (0.35 / 0.4) ** 2, 0.0],
                                   atol=1e-6)
        view.set_displacement(body.path, bend, scale=40.0, normals=True)
        assert ma.polydata.GetPointData().GetNormals().GetMTime() > normals
        view.set_displacement(body.path, None)  # back at rest
        img = view.screenshot()
        np.testing.assert_allclose(_rgb(view, img, (0.38, 0.33, 0.0)), background, atol=6)
        np.testing.assert_allclose(np.asarray(ma.polydata.points), ma.rest)
        assert "deformation" not in view.status.GetText(0)


def test_a_model_with_displacements_deforms_the_view(view_plate) -> None:  # type: ignore[no-untyped-def]
    """A field model that gives displacements (as twin3d.fields.StressModel does) deforms its
    mesh by ``deform_scale`` on every update."""
    twin, base = view_plate
    body = next(m for m in twin.meshes if m.path.endswith("Body"))

    class Bending:
        quantity, unit, channels, n_vertices = "von_mises", "MPa", base.channels, base.n_vertices

        def __init__(self) -> None:
            self.load = 0.0

        def update(self, values):  # type: ignore[no-untyped-def]
            self.load = float(values.get("plate/tc1", 0.0))
            return base.update(values)

        def displacement(self, values=None, out=None):  # type: ignore[no-untyped-def]
            d = np.zeros((len(body.points), 3), dtype=np.float32)
            d[:, 2] = 1e-5 * self.load * body.points[:, 0]
            return d

    model = Bending()
    with View(twin, {body.path: model}, off_screen=True, window_size=(160, 120),
              deform_scale=100.0) as view:  # type: ignore[dict-item]
        ma = next(a for a in view.mesh_actors if a.path == body.path)
        view.push({"plate/tc1": 20.0})
        view.render()
        tip = int(np.argmax(body.points[:, 0]))
        drawn = ma.points[tip if ma.vertex_ids is None else int(np.flatnonzero(ma.vertex_ids == tip)[0])]
        assert drawn[2] == pytest.approx(100.0 * 1e-5 * 20.0 * 0.4, rel=1e-5)
        assert "deformation ×100" in view.status.GetText(0)


def test_a_twin_s_bound_motion_moves_its_parts_from_pushed_values(bound_plate: Path,
                                                                 tmp_path: Path) -> None:
    from plate_stage import MESH, SENSORS, SURFACE
    from pxr import Usd, UsdGeom

    from twin3d.sensors import load_sensor_map
    from twin3d.twin import Twin
    from twin3d.usd.bind import bind_sensors

    text = SENSORS.read_text().split("# ===")[0] + (
        '[[binding]]\nchannel = "plate/turn"\nprim = "/Plate/Geom"\nkind = "rotate"\n'
        "axis = [0, 0, 1]\npivot = [0.1016, 0.1524, 0.0]\n")
    (tmp_path / "turn.toml").write_text(text)
    bind_sensors(bound_plate, load_sensor_map(tmp_path / "turn.toml"))
    twin = Twin.open(bound_plate)
    (mesh,) = twin.meshes
    with View(twin, off_screen=True, window_size=(160, 120)) as view:
        tc1 = view.glyphs.positions[view.glyphs.channels.index("plate/tc1")].copy()
        ma = view.mesh_actors[0]
        before = _buffers(ma)
        view.push({"plate/turn": 90.0})
        view.render()
        turn = twin.motion.world_matrices({"plate/turn": 90.0})[MESH]
        np.testing.assert_allclose(ma.moved, turn @ np.linalg.inv(mesh.world), atol=1e-12)
        assert _buffers(ma) == before
        # a quarter turn about the pivot, and the marker turned with the plate
        pivot = np.array([0.1016, 0.1524, 0.0])
        want = pivot + _rz(90.0)[:3, :3] @ (tc1 - pivot)
        np.testing.assert_allclose(view.glyphs.positions[view.glyphs.channels.index("plate/tc1")],
                                   want, atol=1e-9)
    # in USD, the display surface turns with the mesh (it sits beside it, under the moved prim)
    twin.update({"plate/turn": 90.0})
    cache = UsdGeom.XformCache(Usd.TimeCode.Default())
    surface = np.asarray(cache.GetLocalToWorldTransform(twin.stage.GetPrimAtPath(SURFACE)))
    np.testing.assert_allclose(surface.T, turn, atol=1e-12)


def test_displacement_modes_are_uploaded_once_and_weighed_by_uniforms(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    body = next(m for m in twin.meshes if m.path.endswith("Body"))
    x = body.points[:, 0]
    modes = np.zeros((len(x), 3, 2))
    modes[:, 1, 0] = 0.001 * (x / 0.4) ** 2  # mode 0 bends towards +y, mode 1 shifts in x
    modes[:, 0, 1] = 0.0005
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
              show_sensors=True, labels="none") as view:
        view.set_camera(**TOP)
        img = view.screenshot()
        grey, background = _rgb(view, img, (0.38, 0.28, 0.0)), _rgb(view, img, (0.38, 0.33, 0.0))
        ma = next(a for a in view.mesh_actors if a.path == body.path)
        view.set_displacement_modes(body.path, modes)
        assert ma.modes == 2
        arrays = [ma.polydata.point_data[f"twin3d_twin3dMode{j}"] for j in range(2)]
        uploaded = [a.GetMTime() for a in (ma.polydata.GetPointData().GetArray(f"twin3d_twin3dMode{j}")
                                           for j in range(2))]
        points = ma.polydata.GetPoints().GetMTime()
        tc4 = view.glyphs.channels.index("plate/tc4")
        marker = view.glyphs.positions[tc4].copy()
        for w in ([40.0, 0.0], [30.0, 20.0]):
            view.set_displacement_weights(body.path, w, scale=1.0)
            img = view.screenshot()
            # nothing uploaded: the modes and the points are as they were
            assert [ma.polydata.GetPointData().GetArray(f"twin3d_twin3dMode{j}").GetMTime()
                    for j in range(2)] == uploaded
            assert ma.polydata.GetPoints().GetMTime() == points
            want = np.array([w[1] * 0.0005, w[0] * 0.001 * (0.35 / 0.4) ** 2, 0.0])
            np.testing.assert_allclose(view.glyphs.positions[tc4] - marker, want, atol=1e-9)
            if w[0] == 40.0:  # the far edge bent 36 mm towards +y: drawn where it was not
                np.testing.assert_allclose(_rgb(view, img, (0.38, 0.33, 0.0)), grey, atol=6)
                assert np.abs(background - grey).max() > 20
        np.testing.assert_allclose(np.asarray(arrays[0])[:, 1].max(), 0.001, rtol=1e-6)
        assert "deformation ×1" in view.status.GetText(0)
        with pytest.raises(RenderError, match="has 2 displacement modes"):
            view.set_displacement_weights(body.path, [1.0, 2.0, 3.0])
        with pytest.raises(RenderError, match=r"needs a \(\d+, 3, k\) float array"):
            view.set_displacement_modes(body.path, modes[:, :2])


def test_a_stress_model_s_displacement_map_deforms_on_the_gpu(view_plate) -> None:  # type: ignore[no-untyped-def]
    """A model with a displacement map ``U`` (3n, channels), as twin3d.fields.StressModel has:
    uploaded once as modes; each update weighs them by the latest readings."""
    twin, base = view_plate
    body = next(m for m in twin.meshes if m.path.endswith("Body"))
    n, k = len(body.points), len(base.channels)
    rng = np.random.default_rng(2)
    U = np.asfortranarray(rng.normal(0.0, 1e-5, (3 * n, k)).astype(np.float32))

    class Stress:
        quantity, unit, channels, n_vertices = "von_mises", "MPa", base.channels, base.n_vertices

        def __init__(self) -> None:
            self.U, self.values = U, np.full(k, np.nan)

        def update(self, values):  # type: ignore[no-untyped-def]
            for j, c in enumerate(self.channels):
                if c in values:
                    self.values[j] = values[c]
            return base.update(values)

        def displacement(self, values=None, out=None):  # type: ignore[no-untyped-def]
            raise AssertionError("the view weighs U on the GPU; it does not ask for this")

    with View(twin, {body.path: Stress()}, off_screen=True, window_size=(160, 120),
              deform_scale=20.0) as view:  # type: ignore[dict-item]
        ma = next(a for a in view.mesh_actors if a.path == body.path)
        view.push({"plate/tc1": 50.0, "plate/tc3": -10.0})
        view.render()
        assert ma.modes == k
        v = np.zeros(k)
        v[base.channels.index("plate/tc1")], v[base.channels.index("plate/tc3")] = 50.0, -10.0
        want = 20.0 * (U @ v).reshape(n, 3)
        drawn = np.array([ma.offset(i) for i in range(ma.polydata.n_points)])
        got = want if ma.vertex_ids is None else want[ma.vertex_ids]
        np.testing.assert_allclose(drawn, got, atol=1e-9)
        assert "deformation ×20" in view.status.GetText(0)
