"""twin3d.cad: pure reading, welding, normals, names and unit/axis decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

import twin3d.cad.obj as obj_module
import twin3d.cad.read as read_module
import twin3d.cad.weld as weld_module
from twin3d.cad import load_part, prim_name, unique_names, vertex_or_corner_normals
from twin3d.cad.geometry import conversion_matrix, follow_corners
from twin3d.cad.gltf import read_gltf
from twin3d.cad.obj import read_obj
from twin3d.cad.orient import orient_faces
from twin3d.cad.stl import read_stl
from twin3d.cad.weld import weld as _weld
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


def test_weld_numbers_points_along_longest_extent_and_survives_hash_collisions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    soup = trimesh.creation.icosphere(subdivisions=2).triangles.reshape(-1, 3)  # STL-like
    faces = np.arange(len(soup)).reshape(-1, 3)
    points, welded = _weld(soup, faces)
    np.testing.assert_array_equal(points[welded].reshape(-1, 3), soup)
    axis = int(np.argmax(np.ptp(points, axis=0)))
    assert np.all(np.diff(points[:, axis].astype(np.float32)) >= 0)  # nearby faces: nearby indices
    assert len(np.unique(welded)) == len(points)  # no unused points
    # groups that merge different points (what hash collisions give) must be caught
    monkeypatch.setattr(weld_module, "row_hashes", lambda v: np.zeros(len(v), dtype=np.uint64))
    points2, welded2 = _weld(soup, faces)
    np.testing.assert_array_equal(points2[welded2].reshape(-1, 3), soup)
    np.testing.assert_array_equal(points2, points)


def test_weld_chunks_gives_weld_of_the_whole_soup(monkeypatch: pytest.MonkeyPatch) -> None:
    soup = trimesh.creation.icosphere(subdivisions=3).triangles.reshape(-1, 3).astype(np.float32)
    row, col = np.argwhere(soup == 0)[3]
    soup[row, col] = 1e-10  # equal to 0 to 8 decimals, not bitwise: merged, first row kept
    whole = _weld(soup, None)
    for size in (1, 99, 1000, len(soup)):  # chunks need not hold whole triangles
        chunks = (soup[i:i + size] for i in range(0, len(soup), size))
        points, faces = weld_module.weld_chunks(chunks, len(soup))
        np.testing.assert_array_equal(points, whole[0])
        np.testing.assert_array_equal(faces, whole[1])
    with pytest.raises(ValueError, match="corner rows"):
        weld_module.weld_chunks([soup[:9]], 12)
    # every point hashing alike (what 64-bit collisions would be): weld_chunks refuses, and
    # the STL reader then welds the whole soup exactly, to the same part
    expected = load_part(DATA / "plate_holes.STL", units="mm")
    monkeypatch.setattr(weld_module, "row_hashes", lambda v: np.zeros(len(v), dtype=np.uint64))
    with pytest.raises(weld_module.WeldCollision):
        weld_module.weld_chunks([soup], len(soup))
    got = load_part(DATA / "plate_holes.STL", units="mm")
    np.testing.assert_array_equal(got.meshes[0].points, expected.meshes[0].points)
    np.testing.assert_array_equal(got.meshes[0].faces, expected.meshes[0].faces)


def test_per_corner_values_follow_flipped_faces() -> None:
    before = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    after = np.array([[0, 1, 2], [5, 4, 3], [7, 8, 6]])  # one flipped, one rotated
    uv = (before * 10.0)[..., None].repeat(2, axis=2)  # each corner's value names its point
    np.testing.assert_array_equal(follow_corners(before, after, uv)[..., 0], after * 10.0)


def test_normals_vertex_for_smooth_facevarying_for_hard_edges() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    n, interp = vertex_or_corner_normals(sphere.vertices, sphere.faces)
    assert interp == "vertex" and n.shape == (len(sphere.vertices), 3)
    unit = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1)[:, None]
    np.testing.assert_allclose(n, unit, atol=0.02)
    box = trimesh.creation.box()
    n, interp = vertex_or_corner_normals(box.vertices, box.faces)
    assert interp == "faceVarying" and n.shape == (box.faces.size, 3)
    # every corner of a box face carries that face's flat normal: points were not split
    np.testing.assert_allclose(n.reshape(-1, 3, 3), np.repeat(box.face_normals[:, None], 3, 1),
                               atol=1e-6)


def test_conversion_is_scale_times_rotation_without_shear() -> None:
    c = conversion_matrix(0.001, "Y", "Z")
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
    assert len(part.meshes) == 1 and part.uses == (3,)
    assert part.triangle_count == 3 * len(part.meshes[0].faces)


def test_meshes_are_handed_over_once() -> None:
    """The writer takes a part's meshes (so their arrays can go once authored): the part's
    other facts stay readable, and a taken mesh is an error, not an empty list."""
    part = load_part(DATA / "nested.glb")
    triangles = part.triangle_count
    (mesh,) = part.meshes.take_all()
    assert part.triangle_count == triangles == 3 * len(mesh.faces)
    assert len(part.meshes) == 1 and part.uses == (3,)
    with pytest.raises(RuntimeError, match="taken"):
        part.meshes[0]
    with pytest.raises(RuntimeError, match="taken"):
        part.meshes.take(0)


def _binary_stl(corners: list[list[float]]) -> bytes:
    records = np.zeros(len(corners) // 3, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                                 ("a", "<u2")])
    records["v"] = np.asarray(corners, dtype=np.float32).reshape(-1, 3, 3)
    return bytes(80) + len(records).to_bytes(4, "little") + records.tobytes()


_NAN_TRIANGLES = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 0], [float("nan"), 0, 1]]


@pytest.mark.parametrize(("content", "problem", "suffix"), [
    (None, "no such file", ".stl"), (b"", "empty", ".stl"),
    (b"solid x\nendsolid x\n", "no triangles", ".stl"),
    (_binary_stl(_NAN_TRIANGLES), "1 point.* not finite", ".stl"),
    (b"v 0 0 0\nv 1 0 0\nv inf 1 0\nf 1 2 3\n", "1 point.* not finite", ".obj")])
def test_bad_files(tmp_path: Path, content: bytes | None, problem: str, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CADImportError, match=problem) as info:
        load_part(path)
    assert f"bad{suffix}" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CADImportError, match="unsupported file type"):
        load_part(tmp_path / "x.dwg")


# --- fast readers (stl, obj, gltf) give the same Part as trimesh's general path ------------


def _node_tree(nodes: tuple) -> list:
    return [(n.name, n.label, n.mesh, None if n.matrix is None else np.round(n.matrix, 9).tolist(),
             _node_tree(n.children)) for n in nodes]


def _both_paths(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: object) -> tuple:
    monkeypatch.setattr(read_module, "FAST_READERS", True)
    fast = load_part(path, **kw)
    monkeypatch.setattr(read_module, "FAST_READERS", False)
    general = load_part(path, **kw)
    return fast, general


def _assert_same_part(fast, general) -> None:
    for attr in ("name", "format", "materials", "meters_per_unit", "up_axis", "units_note",
                 "axis_note", "uses", "warnings"):
        assert getattr(fast, attr) == getattr(general, attr), attr
    assert _node_tree(fast.nodes) == _node_tree(general.nodes)
    assert len(fast.meshes) == len(general.meshes)
    for a, b in zip(fast.meshes, general.meshes, strict=True):
        assert (a.name, a.interpolation, a.material) == (b.name, b.interpolation, b.material)
        # the same arrays in the same order (STL too: trimesh's float64 soup welds to the
        # same points as the fast path's float32 one, in the same order)
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.faces, b.faces)
        np.testing.assert_allclose(a.normals, b.normals, atol=1e-6)


def _fast_reader_takes(path: Path) -> bool:
    reader = {".stl": read_stl, ".obj": read_obj, ".glb": read_gltf,
              ".gltf": read_gltf}[path.suffix.lower()]
    return reader(path) is not None


@pytest.mark.parametrize(("name", "taken"), [
    ("featuretype.STL", True), ("plate_holes.STL", True), ("angle_block.STL", True),
    ("octagonal_pocket.stl", True), ("multibody.stl", False),  # ASCII: trimesh
    ("nested.glb", True), ("Duck.glb", False), ("BoxTextured.glb", False),  # textures: trimesh
    ("TestScene.gltf", False)])  # meshes of several primitives: trimesh (named repeatably)
def test_fast_readers_match_trimesh_on_real_files(name: str, taken: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = DATA / name
    assert _fast_reader_takes(path) is taken
    fast, general = _both_paths(path, monkeypatch, units="mm")
    _assert_same_part(fast, general)


def test_fast_obj_matches_trimesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = trimesh.load_mesh(str(DATA / "plate_holes.STL"))
    plain = tmp_path / "plate.obj"
    mesh.export(str(plain))  # "o plate_holes.STL", v and f lines
    with_normals = tmp_path / "normals.obj"
    with_normals.write_text(mesh.export(file_type="obj", include_normals=True).replace(
        "o plate_holes.STL\n", ""))  # v/vn and f a//n lines, named after the file
    mesh.visual.face_colors = [200, 30, 30, 255]
    coloured = tmp_path / "coloured.obj"
    mesh.export(str(coloured))  # a material (mtllib/usemtl): left to trimesh
    for path, taken in ((plain, True), (with_normals, True), (coloured, False)):
        assert _fast_reader_takes(path) is taken, path.name
        fast, general = _both_paths(path, monkeypatch, units="in")
        _assert_same_part(fast, general)
    assert fast.meshes and load_part(plain, units="in").meshes[0].name == "plate_holes_STL"


_TETRA = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"
_TETRA_F = "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"


@pytest.mark.parametrize(("text", "taken"), [
    (_TETRA + _TETRA_F, True),
    ((_TETRA + _TETRA_F).replace("\n", "\r\n"), True),  # CRLF
    (_TETRA + _TETRA_F.rstrip("\n"), True),  # no newline at the end
    ("# made by hand\n\nmtl_free 1\n" + _TETRA + _TETRA_F, False),  # an unknown keyword
    ("# made by hand\n\n" + _TETRA + "o tetra\ng body\ns off\n" + _TETRA_F, True),
    ("g first\no named\n" + _TETRA + _TETRA_F, True),  # a g line opens the block: file name
    (_TETRA + "vn 0 0 1\n" + _TETRA_F.replace(" 2", " 2//1"), False),  # some corners only
    (_TETRA + "vn 0 0 1\n" + "".join(
        " ".join(f"{c}//1" if c.isdigit() else c for c in ln.split()) + "\n"
        for ln in _TETRA_F.splitlines()), True),  # a//n everywhere
    (_TETRA + "vt 0 0\n" + _TETRA_F, False),  # texture coordinates
    (_TETRA + _TETRA_F.replace("f 1 3 2", "f 1/1 3/1 2/1"), False),
    (_TETRA + "f 1 2 3 4\n", False),  # a quad
    (_TETRA + "f -4 -2 -3\n", False),  # relative indices
    (_TETRA.replace("v 0 0 1", "v 0 0 1 1"), False),  # w
    (_TETRA.replace("v 0 0 1", "v 0 0 1 0.5 0.5 0.5") + _TETRA_F, False),  # a vertex colour
    (_TETRA.replace("v 0 0 1", "v 0 0 1 # apex") + _TETRA_F, False),  # a trailing comment
    (_TETRA.replace("v 0 0 1", "v 0 0 x") + _TETRA_F, False),  # not a number
    ("  " + _TETRA + _TETRA_F, False),  # an indented line
])
def test_fast_obj_parser_takes_simple_files_and_leaves_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, taken: bool) -> None:
    path = tmp_path / "tetra.obj"
    path.write_bytes(text.encode())
    assert _fast_reader_takes(path) is taken
    if taken:  # (the others go to trimesh either way)
        fast, general = _both_paths(path, monkeypatch, units="mm")
        _assert_same_part(fast, general)


def test_fast_obj_parser_spans_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of several 4 MiB blocks, whose lines straddle the blocks' edges."""
    monkeypatch.setattr(obj_module, "BLOCK", 997)  # a prime: every kind of cut
    mesh = trimesh.creation.icosphere(subdivisions=3)
    path = tmp_path / "sphere.obj"
    mesh.export(str(path))
    scene = read_obj(path)
    assert scene is not None and len(scene.meshes) == 1
    geom = scene.meshes[0]
    np.testing.assert_allclose(geom.vertices, mesh.vertices, atol=1e-7)
    np.testing.assert_array_equal(geom.faces, mesh.faces)
    fast, general = _both_paths(path, monkeypatch, units="mm")
    _assert_same_part(fast, general)
    long_line = tmp_path / "long.obj"  # one line longer than a block: left to trimesh
    long_line.write_text("# " + "x" * 3000 + "\n" + _TETRA + _TETRA_F)
    assert read_obj(long_line) is None


def test_fast_gltf_matches_trimesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hierarchy, matrices and TRS, instancing, factor materials, external buffers."""
    import json

    scene = trimesh.Scene()
    box, cyl = trimesh.creation.box(), trimesh.creation.cylinder(radius=0.3, height=1)
    box.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
        name="Steel", baseColorFactor=[0.5, 0.6, 0.7, 1.0], metallicFactor=0.9,
        roughnessFactor=0.3))
    tf = trimesh.transformations
    scene.add_geometry(box, node_name="base", geom_name="Box",
                       transform=tf.translation_matrix([1, 2, 3]))
    scene.add_geometry(cyl, node_name="arm", geom_name="Cyl", parent_node_name="base",
                       transform=tf.rotation_matrix(0.7, [1, 1, 0]))
    scene.add_geometry(box, node_name="base2", geom_name="Box", transform=tf.scale_matrix(2.0))
    glb = tmp_path / "gen.glb"
    scene.export(str(glb))
    # the same scene as .gltf + .bin, with TRS nodes and a material without baseColorFactor
    files = scene.export(file_type="gltf")
    header = json.loads(files["model.gltf"])
    for node in header["nodes"]:
        node.pop("matrix", None)
    header["nodes"][0].update(translation=[1, -2, 0.5], rotation=[0.1, 0.2, 0.3, 0.927],
                             scale=[1, 2, 1])
    header["nodes"][1].update(rotation=[0, 0.7071068, 0, 0.7071068])
    header["materials"][0]["pbrMetallicRoughness"].pop("baseColorFactor")
    header["materials"][0]["emissiveFactor"] = [0.1, 0.0, 0.2]
    gltf = tmp_path / "gen.gltf"
    gltf.write_text(json.dumps(header))
    for name, data in files.items():
        if name != "model.gltf":
            (tmp_path / name).write_bytes(data)
    for path in (glb, gltf):
        assert _fast_reader_takes(path), path.name
        fast, general = _both_paths(path, monkeypatch)
        _assert_same_part(fast, general)
        assert fast.uses == (2, 1) and len(fast.materials) == 2


def _volume(points: np.ndarray, faces: np.ndarray) -> float:
    p = np.asarray(points, dtype=np.float64)[faces]
    return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)


def test_orientation_keeps_a_consistent_source_even_across_non_manifold_edges() -> None:
    """Two closed boxes welded along a shared edge (4 faces on it, so directed edges repeat):
    each box is wound outward already and no face may be reversed."""
    a, b = trimesh.creation.box(), trimesh.creation.box()
    b.apply_translation([1.0, 1.0, 0.0])
    points, faces = _weld(np.vstack([a.triangles, b.triangles]).reshape(-1, 3), None)
    faces = np.asarray(faces, dtype=np.int64)
    assert orient_faces(points, faces) is faces
    # one reversed face in the second box: only it is turned back
    bad = faces.copy()
    bad[20] = bad[20, ::-1]
    fixed = orient_faces(points, bad)
    assert np.flatnonzero((fixed != bad).any(axis=1)).tolist() == [20]
    assert _volume(points, fixed) == pytest.approx(2.0)


def test_orientation_of_closed_shells_follows_the_solid_not_a_seed_face() -> None:
    box = trimesh.creation.box()
    points, faces = box.vertices, box.faces
    # 5 of 12 faces reversed, the first face among them: propagating from it turned the box
    # inside out; the solid's outside wins
    mixed = faces.copy()
    mixed[:5] = mixed[:5, ::-1]
    assert _volume(points, orient_faces(points, mixed)) == pytest.approx(1.0)
    # a hollow box: the cavity's wall faces into the cavity (negative volume), outer wall out
    hollow_points = np.vstack([points, points * 0.5])
    inner = faces[:, ::-1] + 8
    inner[[0, 2]] = inner[[0, 2], ::-1]
    got = orient_faces(hollow_points, np.vstack([faces, inner]))
    assert _volume(hollow_points, got[:12]) == pytest.approx(1.0)
    assert _volume(hollow_points, got[12:]) == pytest.approx(-0.125)


def test_orientation_of_open_surfaces_keeps_most_of_the_source() -> None:
    sphere = trimesh.creation.icosphere(2)
    cap = sphere.faces[sphere.vertices[sphere.faces].mean(axis=1)[:, 2] > 0.2]
    bad = cap.copy()
    bad[[0, 3, 7]] = bad[[0, 3, 7], ::-1]  # the first face too: no seed decides
    fixed = orient_faces(sphere.vertices, bad)
    assert np.flatnonzero((fixed != bad).any(axis=1)).tolist() == [0, 3, 7]
    normals = np.cross(*(sphere.vertices[fixed[:, k]] - sphere.vertices[fixed[:, 0]]
                         for k in (1, 2)))
    assert (np.einsum("ij,ij->i", normals, sphere.vertices[fixed].mean(axis=1)) > 0).all()
