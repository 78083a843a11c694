"""Physics at real-part scale: solvers, mesh sizing, stress recovery, cancellable builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from scipy.spatial import Delaunay

from twin3d.errors import FieldError
from twin3d.fields import StressModel, cached, tetrahedralize
from twin3d.fields.fem import available_solvers, solve_spd
from twin3d.fields.mesh import region_borders
from twin3d.fields.progress import build_progress, step
from twin3d.fields.sizing import refine_surface, size_field
from twin3d.fields.stress import solve_load_cases
from twin3d.model import Sensor

# plate 400 x 200 x 5 mm with a 20 mm hole (d/W = 0.1), pulled along x
PLATE_L, PLATE_W, PLATE_T, HOLE_D = 0.4, 0.2, 0.005, 0.02
HEYWOOD_KT = 2 + (1 - HOLE_D / PLATE_W) ** 3  # net-section Kt of a finite-width plate: 2.729
PLATE_REGIONS = {"clamp": {"box": [[-0.21, -0.2, -0.1], [-0.199, 0.2, 0.1]]},
                 "pull": {"box": [[0.199, -0.2, -0.1], [0.21, 0.2, 0.1]]}}


def _coarse_plate(segments: int = 16) -> trimesh.Trimesh:
    """The plate's surface as a coarse CAD export: 4 corners and a 16-sided hole (40 points)."""
    ang = np.arange(segments) * 2 * np.pi / segments
    hole = np.c_[HOLE_D / 2 * np.cos(ang), HOLE_D / 2 * np.sin(ang)]
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [PLATE_L / 2, PLATE_W / 2]
    v2 = np.concatenate([corners, hole])
    tri = Delaunay(v2).simplices
    tri = tri[(tri < 4).any(axis=1)]  # a triangle of hole points only lies in the hole
    plate = trimesh.creation.extrude_triangulation(v2, tri, PLATE_T)
    plate.apply_translation([0.0, 0.0, -PLATE_T / 2])
    assert plate.is_watertight and len(plate.vertices) == 2 * (4 + segments)
    return plate


@pytest.mark.slow
def test_plate_hole_kt_converges_to_heywood_as_tets_grows_from_one_coarse_surface() -> None:
    plate = _coarse_plate()
    force = 1000.0
    net = force / ((PLATE_W - HOLE_D) * PLATE_T)
    stress = {"E": 200e9, "nu": 0.3, "fixed": ["clamp"],
              "load": [{"name": "pull", "region": "pull", "force": [force, 0.0, 0.0]}]}
    errors = []
    for tets in (10000, 18000, 30000):
        mesh = tetrahedralize(plate.vertices, plate.faces, 1.0, target_tets=tets)
        assert 0.75 * tets <= len(mesh.tets) <= 1.3 * tets  # `tets` means the element count
        _, _, sig = solve_load_cases(mesh, stress, PLATE_REGIONS, 1.0)
        xyz = mesh.nodes
        r = np.linalg.norm(xyz[:, :2], axis=1)
        wall = np.abs(r - HOLE_D / 2) < 1e-6  # nodes on the true (round) hole wall
        # σxx at θ = 90°, averaged through the thickness (one mean per height of nodes)
        peak = wall & (np.abs(xyz[:, 0]) < 1e-6)
        levels = np.unique(np.round(xyz[peak, 2], 7))
        kt = np.mean([sig[peak & np.isclose(xyz[:, 2], z, atol=1e-7), 0, 0].mean()
                      for z in levels]) / net
        errors.append(kt / HEYWOOD_KT - 1)
        # free-surface traction of the recovered stress on the hole wall: n is radial
        n = np.c_[xyz[wall, :2] / r[wall, None], np.zeros(wall.sum())]
        s = sig[wall, :, 0]
        t = np.stack([s[:, 0] * n[:, 0] + s[:, 3] * n[:, 1],
                      s[:, 3] * n[:, 0] + s[:, 1] * n[:, 1],
                      s[:, 5] * n[:, 0] + s[:, 4] * n[:, 1]], axis=1)
        traction = float(np.linalg.norm(t, axis=1).max()) / net
        print(f"tets {tets}: {len(mesh.tets)} made, {wall.sum()} nodes on the round wall, "
              f"Kt {kt:.4f} vs Heywood {HEYWOOD_KT:.4f} ({errors[-1]:+.2%}), "
              f"max |σ·n| on the wall {traction:.2%} of the net stress")
        assert wall.sum() > 4 * 32  # the 16-gon was refined onto the circle
        assert traction < 0.02
    assert abs(errors[-1]) < 0.02
    assert abs(errors[-1]) < abs(errors[0])


def test_surface_refinement_puts_new_points_on_the_round_hole() -> None:
    plate = _coarse_plate()
    field = size_field(plate.vertices, plate.faces, float(plate.volume), 20000)
    pts, tri = refine_surface(plate.vertices, plate.faces, field)
    assert np.array_equal(pts[: len(plate.vertices)], plate.vertices)  # input points first
    refined = trimesh.Trimesh(pts, tri, process=False)
    assert refined.is_watertight and refined.is_winding_consistent
    r = np.linalg.norm(pts[:, :2], axis=1)
    rim = np.abs(np.abs(pts[:, 2]) - PLATE_T / 2) < 1e-12
    on_rim = rim & (r < 2 * HOLE_D)
    near_hole = r < HOLE_D
    assert on_rim.sum() >= 4 * 32  # both rims, at least 64 points each (was 16)
    # rim points lie on the circle (not on the 16-gon's chords, 0.19 mm inside it)
    np.testing.assert_allclose(r[on_rim & near_hole], HOLE_D / 2, rtol=1e-9)
    # the hole grows from the 16-gon to the circle: the volume comes within 10% of that gap
    exact = PLATE_L * PLATE_W * PLATE_T - np.pi * (HOLE_D / 2) ** 2 * PLATE_T
    assert abs(refined.volume - exact) < 0.1 * abs(plate.volume - exact)


def test_tets_is_the_element_count_and_the_model_reports_its_mesh() -> None:
    box = trimesh.creation.box((0.5, 0.03, 0.06))
    box.apply_translation([0.25, 0.0, 0.0])
    mesh = tetrahedralize(box.vertices, box.faces, 1.0, target_tets=3000)
    assert 2400 <= len(mesh.tets) <= 3750
    assert mesh.smallest_feature is None  # no curved feature on a box
    cell = Sensor("beam/load", "force", "N", "/Beam", position=(0.5, 0.0, 0.0))
    cfg = {"regions": {"root": {"normal": [-1, 0, 0]}, "tip": {"normal": [1, 0, 0]}},
           "stress": {"E": 200e9, "fixed": ["root"], "tets": 2000, "load": [
               {"name": "tip", "region": "tip", "force": [0, 0, -1], "channel": "beam/load"}]}}
    model = StressModel.build(box.vertices, box.faces, 1.0, [cell], cfg)
    assert model.mesh is not None and 1600 <= model.mesh.elements <= 2500
    assert "tetrahedra" in str(model.mesh)
    back = StressModel.from_arrays(model.to_arrays())
    assert back.mesh == model.mesh


def test_region_borders_and_a_plate_reports_its_hole_as_smallest_feature() -> None:
    plate = _coarse_plate()
    border = region_borders(plate.vertices, plate.faces, {"pull": PLATE_REGIONS["pull"]}, 1.0)
    assert len(border) and np.allclose(border[:, 0], PLATE_L / 2)  # the pulled end's edges
    mesh = tetrahedralize(plate.vertices, plate.faces, 1.0, target_tets=8000)
    assert mesh.smallest_feature == pytest.approx(HOLE_D / 2, rel=0.05)


def test_the_solvers_agree_on_one_system() -> None:
    from skfem import Basis, ElementTetP1, MeshTet
    from skfem.models.poisson import laplace, mass

    m = MeshTet().refined(3)
    basis = Basis(m, ElementTetP1())
    A = sp.csr_matrix(laplace.assemble(basis) + mass.assemble(basis))
    b = np.random.default_rng(0).random((A.shape[0], 2))
    have = available_solvers()
    assert have[0] == "auto" and have[-1] == "superlu"
    results = {name: solve_spd(A, b, method=name) for name in have}
    for name, x in results.items():
        np.testing.assert_allclose(A @ x, b, rtol=1e-6, atol=1e-8, err_msg=name)
    with pytest.raises(FieldError, match="unknown solver 'mumps'"):
        solve_spd(A, b, method="mumps")


def test_a_cancelled_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    def interrupted() -> dict:
        step("solving", 1, 2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), build_progress("test"):
        cached("k1", interrupted, dict, dict, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []

    def save_interrupted(model: dict) -> dict:
        return {"a": _Interrupting()}

    with pytest.raises(KeyboardInterrupt):
        cached("k2", lambda: {"a": 1}, save_interrupted, dict, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written entry, no temporary file
    assert cached("k3", lambda: {"a": np.ones(2)}, dict, dict, directory=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["k3.npz"]


class _Interrupting:
    """An array-like that is interrupted while numpy writes it."""

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        raise KeyboardInterrupt


def test_progress_draws_nothing_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    step("outside any build")  # a no-op
    with build_progress("quiet"):
        for i in range(3):
            step("working", i, 3)
    assert capsys.readouterr() == ("", "")
