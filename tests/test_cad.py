"""twin3d.cad: pure reading, welding, normals, names and unit/axis decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from twin3d.cad import _conversion, _weld, load_part, prim_name, unique_names, vertex_or_corner_normals
from twin3d.errors import CADImportError

DATA = Path(__file__).parent / "data"


def test_prim_names_are_valid_and_readable() -> None:
    assert prim_name("d8 (1)") == "d8_1"
    assert prim_name("Würfel") == "Wurfel"
    assert prim_name("1st part") == "_1st_part"
    assert prim_name("部品") == "部品"
    assert prim_name("///") == "Part"
    assert prim_name("", "Node") == "Node"


def test_unique_names_never_collide() -> None:
    names = unique_names(["a", "a", "a_1", "b", "a"], taken=["b"])
    assert len(set(names)) == 5 and "b" not in names
    assert names[0] == "a" and names[2] == "a_1"


def test_weld_merges_by_position_and_drops_unused() -> None:
    # two triangles given as a soup (as STL stores them) plus an unused vertex
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                  [9, 9, 9], [-0.0, 1e-12, 0]], dtype=np.float64)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    points, faces = _weld(v, f)
    assert len(points) == 4
    np.testing.assert_array_equal(points[faces], v[f])


def test_normals_vertex_for_smooth_facevarying_for_hard_edges() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    n, interp = vertex_or_corner_normals(sphere.vertices, sphere.faces)
    assert interp == "vertex" and n.shape == (len(sphere.vertices), 3)
    np.testing.assert_allclose(n, sphere.vertices / np.linalg.norm(sphere.vertices, axis=1)[:, None],
                               atol=0.02)
    box = trimesh.creation.box()
    n, interp = vertex_or_corner_normals(box.vertices, box.faces)
    assert interp == "faceVarying" and n.shape == (box.faces.size, 3)
    # every corner of a box face carries that face's flat normal: points were not split
    np.testing.assert_allclose(n.reshape(-1, 3, 3), np.repeat(box.face_normals[:, None], 3, 1),
                               atol=1e-6)


def test_conversion_is_scale_times_rotation_without_shear() -> None:
    c = _conversion(0.001, "Y", "Z")
    np.testing.assert_allclose(c[:3, :3] @ [0, 1, 0], [0, 0, 0.001])  # Y-up becomes Z-up
    np.testing.assert_allclose(c[:3, :3] @ c[:3, :3].T, np.eye(3) * 1e-6)
    assert np.linalg.det(c[:3, :3]) > 0  # a rotation, not a mirror


def test_units_decisions() -> None:
    step = load_part(DATA / "featuretype.STEP")
    assert step.format == "STEP" and step.meters_per_unit == 1.0 and not step.warnings
    stl = load_part(DATA / "featuretype.STL")
    assert stl.meters_per_unit == 0.001 and "assuming mm" in stl.warnings[0]
    stl_in = load_part(DATA / "featuretype.STL", units="in")
    assert stl_in.meters_per_unit == 0.0254 and not stl_in.warnings
    glb = load_part(DATA / "nested.glb", units="mm")
    assert glb.meters_per_unit == 1.0 and "ignored" in glb.warnings[0]
    tmf = load_part(DATA / "cube_and_sphere_same_name.3mf")
    assert tmf.meters_per_unit == 0.001 and "millimeter" in tmf.units_note
    kept = load_part(DATA / "featuretype.STL", units="in", meters_per_unit=None)
    np.testing.assert_allclose(np.ptp(kept.meshes[0].points, axis=0), [5, 2.5, 1.375], rtol=1e-5)


def test_repeated_meshes_are_counted_once() -> None:
    part = load_part(DATA / "nested.glb")
    assert len(part.meshes) == 1 and part.uses == [3]
    assert part.triangle_count == 3 * len(part.meshes[0].faces)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"), (b"", "empty"), (b"solid x\nendsolid x\n", "no triangles")])
def test_bad_files(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "bad.stl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CADImportError, match=problem) as info:
        load_part(path)
    assert "bad.stl" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CADImportError, match="unsupported file type"):
        load_part(tmp_path / "x.dwg")
