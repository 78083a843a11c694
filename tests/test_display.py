"""Display surfaces (twin3d.display): refined where the CAD mesh is coarse, a vertex at each sensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from twin3d.display import interpolate, locate, refine_surface
from twin3d.errors import FieldError

DATA = Path(__file__).parent / "data"


def _angles(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(m, 3) interior angles in degrees."""
    out = []
    for k in range(3):
        a, b, c = points[faces[:, k]], points[faces[:, (k + 1) % 3]], points[faces[:, (k + 2) % 3]]
        u, w = b - a, c - a
        out.append(np.degrees(np.arctan2(np.linalg.norm(np.cross(u, w), axis=1),
                                         np.einsum("ij,ij->i", u, w))))
    return np.stack(out, axis=1)


def test_a_coarse_cad_part_is_refined_without_changing_its_shape() -> None:
    cad = trimesh.load(DATA / "plate_holes.STL")
    s = refine_surface(cad.vertices, cad.faces, max_edge=10.0)  # mm
    fine = trimesh.Trimesh(s.points, s.faces, process=False)
    assert cad.edges_unique_length.max() > 250.0  # the CAD mesh: triangles across the plate
    assert fine.edges_unique_length.max() <= 10.0 + 1e-9
    assert fine.is_watertight and fine.is_winding_consistent
    assert fine.volume == pytest.approx(cad.volume, rel=1e-12)
    assert fine.area == pytest.approx(cad.area, rel=1e-12)
    assert s.n_source == len(cad.vertices)
    np.testing.assert_array_equal(s.points[:s.n_source], cad.vertices)
    # every new point lies on the CAD surface
    _, dist, _ = trimesh.proximity.closest_point(cad, s.points[s.n_source:][::37])
    assert dist.max() < 1e-6  # mm


def test_every_site_gets_a_vertex_where_it_is() -> None:
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    sites = np.array([[0.1, 0.2, 0.5],        # inside a triangle of the top face
                      [0.0, 0.0, 0.5],        # on the diagonal edge of the top face
                      [0.5, 0.5, 0.5],        # a corner of the box
                      [0.1, 0.2, 0.5],        # the first site again
                      [0.1 + 1e-4, 0.2, 0.5],  # close beside it
                      [-0.5, 0.3, 0.52]])     # 2 cm off the surface: moved onto it
    s = refine_surface(box.vertices, box.faces, sites=sites, max_edge=0.3)
    on = sites.copy()
    on[-1, 2] = 0.5
    np.testing.assert_allclose(s.points[s.sites], on, atol=1e-12)
    assert s.sites[0] == s.sites[3] and s.sites[2] < 8  # the same site once; the corner kept
    fine = trimesh.Trimesh(s.points, s.faces, process=False)
    assert fine.is_watertight and fine.is_winding_consistent
    assert fine.volume == pytest.approx(1.0, rel=1e-12)


def test_a_site_near_an_edge_leaves_no_sliver_around_it() -> None:
    """A site a hair from a triangle's edge, on a flat face: its triangle is split and the
    edges around it flipped (Delaunay), so no triangle around it is a sliver."""
    square = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    site = [0.5, 0.5 - 1e-3, 0.0]  # 0.7 mm from the diagonal of a 1 m square
    s = refine_surface(square, faces, sites=[site], max_edge=10.0)
    star = s.faces[(s.faces == s.sites[0]).any(axis=1)]
    assert len(star) == 4  # the diagonal was flipped away: the site joins all four corners
    assert _angles(s.points, star).max() < 91.0
    split_only = np.array([[0, 1, 4], [1, 2, 4], [2, 0, 4]])  # what splitting alone gives
    assert _angles(np.vstack([square, [site]]), split_only).max() > 179.0


def test_locate_and_interpolate_reproduce_a_linear_field() -> None:
    cad = trimesh.load(DATA / "angle_block.STL")
    rng = np.random.default_rng(3)
    query, _ = trimesh.sample.sample_surface(cad, 50, seed=4)
    tri, bary, dist = locate(cad.vertices, cad.faces, query + rng.normal(0, 1e-4, query.shape))
    assert dist.max() < 1e-3 and np.allclose(bary.sum(axis=1), 1.0) and bary.min() >= 0.0
    a = np.array([2.0, -1.0, 0.5])
    got = interpolate(cad.vertices @ a + 3.0, cad.faces, tri, bary)
    closest = np.einsum("qk,qkj->qj", bary, cad.vertices[cad.faces[tri]])
    np.testing.assert_allclose(got, closest @ a + 3.0, atol=1e-9)


def test_bad_input_is_one_line() -> None:
    with pytest.raises(FieldError, match="needs \\(n, 3\\) points and \\(m, 3\\) triangles"):
        refine_surface(np.zeros((3, 3)), np.zeros((0, 3), dtype=int))
    with pytest.raises(FieldError, match="max_edge must be > 0"):
        refine_surface(np.eye(3), [[0, 1, 2]], max_edge=0.0)


def test_field_models_of_a_display_surface_are_cached_by_the_surface_they_mesh_too() -> None:
    from twin3d.fields import model_key

    box = trimesh.creation.box((1.0, 1.0, 1.0))
    s = refine_surface(box.vertices, box.faces, max_edge=0.4)
    other = trimesh.creation.box((1.0, 1.0, 1.01))
    keys = {model_key("heat", s.points, s.faces, 1.0, [], {}, solid)
            for solid in (None, (box.vertices, box.faces), (other.vertices, other.faces))}
    assert len(keys) == 3
