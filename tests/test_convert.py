"""twin3d convert: real files in, USD stages reopened with pxr and compared with trimesh's load."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade

import twin3d
from twin3d.cad.convert import convert, geometry_path
from twin3d.cad.step import model_diagonal_mm
from twin3d.cli import main
from twin3d.usd.meshes import read_meshes
from twin3d.usd.validate import validate_stage

DATA = Path(__file__).parent / "data"
IN_CI = bool(os.environ.get("CI"))

# file -> (metres per unit of the source, source up axis, --units to pass)
VALID = {
    "featuretype.STEP": (1.0, "Z", None),
    "featuretype.STL": (0.0254, "Z", "in"),
    "box_sides.STEP": (1.0, "Z", None),
    "plate_holes.STL": (0.0254, "Z", "in"),
    "multibody.stl": (0.001, "Z", None),
    "Duck.glb": (1.0, "Y", None),
    "BoxTextured.glb": (1.0, "Y", None),
    "nested.glb": (1.0, "Y", None),
    "TestScene.gltf": (1.0, "Y", None),
    "cube_and_sphere_same_name.3mf": (0.001, "Z", None),
    "angle_block.STL": (0.0254, "Z", "in"),
    "idler_riser.STL": (0.001, "Z", "mm"),
    "octagonal_pocket.stl": (0.001, "Z", "mm"),
    "busted.STL": (0.001, "Z", "mm"),
    "base_interface_AP214.STEP": (1.0, "Z", None),
    "1002_tray_bottom.STL": (0.001, "Z", "mm"),
}
# Not here: cycloidal.ply, whose own faces share 242 edges four at a time (non-manifold): see
# test_non_manifold_source_converts_faithfully.


def _expected(path: Path, mpu: float, up: str) -> tuple[int, int, np.ndarray]:
    """Triangles, mesh nodes and world bbox (metres, Z-up) from trimesh's own load (STEP: at
    the tolerance twin3d chooses by default, 0.1 % of the model's size and 30 degrees)."""
    tolerance = {}
    if path.suffix.lower() == ".step":
        diagonal = model_diagonal_mm(path)
        assert diagonal is not None
        tolerance = {"tol_linear": 1e-3 * diagonal, "tol_angular": np.radians(30.0)}
    scene = trimesh.load_scene(str(path), **tolerance)
    tris = sum(len(scene.geometry[scene.graph[n][1]].faces) for n in scene.graph.nodes_geometry)
    lo, hi = scene.bounds * mpu
    if up == "Y":  # (x, y, z) -> (x, -z, y)
        lo, hi = np.array([lo[0], -hi[2], lo[1]]), np.array([hi[0], -lo[2], hi[1]])
    return tris, len(scene.graph.nodes_geometry), np.stack([lo, hi])


def assert_valid(path: Path) -> None:
    """Every validator (pxr, both NVIDIA packages) reports 0 failures, placeable profile on."""
    report = validate_stage(path, profile="placeable")
    assert report.ok, "\n".join(map(str, report.failures))
    assert any(r.startswith("pxr.UsdValidation") for r in report.ran)
    if IN_CI:
        assert not report.skipped, report.skipped


@pytest.mark.parametrize("name", sorted(VALID))
def test_converts_like_trimesh_loads(name: str, tmp_path: Path) -> None:
    mpu, up, units = VALID[name]
    out = tmp_path / "out.usda"
    with pytest.warns(UserWarning, match="carry no units") if name == "multibody.stl" else \
            _no_warning():
        assert convert(DATA / name, out, units=units) == out
    tris, mesh_nodes, bbox = _expected(DATA / name, mpu, up)

    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    meshes = read_meshes(stage)
    assert sum(len(m.faces) for m in meshes) == tris
    assert len(meshes) == mesh_nodes
    points = np.concatenate([m.points for m in meshes])
    np.testing.assert_allclose(points.min(axis=0), bbox[0], atol=1e-6 + 1e-6 * np.ptp(bbox))
    np.testing.assert_allclose(points.max(axis=0), bbox[1], atol=1e-6 + 1e-6 * np.ptp(bbox))
    assert_valid(out)


def test_non_manifold_source_converts_faithfully(tmp_path: Path) -> None:
    """cycloidal.ply converts like trimesh loads it; the validators' only complaint is the
    source's own non-manifold edges (counted here from the PLY's faces), which a converter
    that keeps the source's topology must not hide."""
    out = convert(DATA / "cycloidal.ply", tmp_path / "gear.usda", units="mm")
    source = trimesh.load(str(DATA / "cycloidal.ply"), process=False)
    edges = np.sort(source.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    non_manifold = int((uses > 2).sum())
    assert non_manifold == 242
    (mesh,) = read_meshes(Usd.Stage.Open(str(out)))
    assert len(mesh.faces) == len(source.faces)
    report = validate_stage(out, profile="placeable")
    assert report.failures and all(f.rule == "ManifoldChecker" for f in report.failures)
    assert any(f"{non_manifold} edges are non-manifold" in f.message for f in report.failures)


class _no_warning:
    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", UserWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def test_stage_layout_and_mesh_hygiene(tmp_path: Path) -> None:
    out = tmp_path / "ft.usda"
    convert(DATA / "featuretype.STEP", out)
    geom = geometry_path(out)
    assert geom.name == "ft.geom.usdc" and geom.is_file()
    assert Sdf.Layer.OpenAsAnonymous(str(geom)).GetFileFormat().formatId == "usdc"
    assert out.stat().st_size < 4096  # the interface layer holds no arrays
    stage = Usd.Stage.Open(str(out))
    root = stage.GetDefaultPrim()
    assert root.GetPath() == Sdf.Path("/featuretype") and root.IsA(UsdGeom.Xform)
    assert Usd.ModelAPI(root).GetKind() == "component"
    assert UsdGeom.Xformable(root).GetLocalTransformation() == Gf.Matrix4d(1)
    assert [p.GetName() for p in stage.GetPseudoRoot().GetChildren()] == ["featuretype"]
    assert root.HasPayload() if hasattr(root, "HasPayload") else root.HasAuthoredPayloads()

    meta = stage.GetRootLayer().customLayerData["twin3d"]
    src = meta["sources"]["featuretype"]
    assert src["sha256"] == hashlib.sha256((DATA / "featuretype.STEP").read_bytes()).hexdigest()
    assert src["file"] == "featuretype.STEP" and "metres" not in src["units"]
    assert meta["converter"] == f"twin3d {twin3d.__version__}"
    assert meta["upAxis"] == "Z" and meta["metersPerUnit"] == 1.0

    mesh_prims = [p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert mesh_prims and all(str(p.GetPath()).startswith("/featuretype/Geom/") for p in mesh_prims)
    for prim in mesh_prims:
        mesh = UsdGeom.Mesh(prim)
        pts = np.asarray(mesh.GetPointsAttr().Get())
        idx = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
        assert set(mesh.GetFaceVertexCountsAttr().Get()) == {3}
        assert mesh.GetSubdivisionSchemeAttr().HasAuthoredValue()
        assert mesh.GetSubdivisionSchemeAttr().Get() == "none"
        assert np.array_equal(np.unique(idx), np.arange(len(pts)))  # no unused vertices
        assert np.all(np.diff(idx.min(axis=1)) >= 0)  # faces sorted by lowest vertex
        normals = np.asarray(mesh.GetNormalsAttr().Get())
        interp = mesh.GetNormalsInterpolation()
        assert len(normals) == {"vertex": len(pts), "faceVarying": idx.size}[interp]
        # winding agrees with the normals: face normal . corner normals > 0
        tri = pts[idx]
        fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        corner = normals.reshape(-1, 3, 3) if interp == "faceVarying" else normals[idx]
        assert np.all(np.einsum("fj,fkj->fk", fn, corner) >= 0)
        extent = np.asarray(mesh.GetExtentAttr().Get())
        np.testing.assert_allclose(extent, [pts.min(axis=0), pts.max(axis=0)], rtol=1e-6)
        assert prim.HasAPI(UsdShade.MaterialBindingAPI)
        material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        assert material and str(material.GetPath()).startswith("/featuretype/Materials/")
        assert material.ComputeSurfaceSource()[0].GetIdAttr().Get() == "UsdPreviewSurface"


def test_points_are_welded_and_watertight(tmp_path: Path) -> None:
    out = tmp_path / "ft.usda"
    convert(DATA / "featuretype.STL", out, units="in")
    (mesh,) = read_meshes(Usd.Stage.Open(str(out)))
    tm = trimesh.Trimesh(mesh.points, mesh.faces, process=False)
    assert tm.is_watertight  # trimesh says the source is: welding kept it so
    assert trimesh.load_mesh(str(DATA / "featuretype.STL")).is_watertight
    assert len(mesh.points) == len(trimesh.load_mesh(str(DATA / "featuretype.STL")).vertices)


def test_step_in_metres_and_stl_in_inches_are_the_same_size(tmp_path: Path) -> None:
    assert main(["convert", str(DATA / "featuretype.STEP"), "-o", str(tmp_path / "a.usda")]) == 0
    assert main(["convert", str(DATA / "featuretype.STL"), "--units", "in",
                 "-o", str(tmp_path / "b.usda")]) == 0
    sizes = []
    for name in ("a.usda", "b.usda"):
        pts = np.concatenate([m.points for m in read_meshes(Usd.Stage.Open(str(tmp_path / name)))])
        sizes.append(np.ptp(pts, axis=0))
    np.testing.assert_allclose(sizes[0], sizes[1], rtol=1e-4)
    np.testing.assert_allclose(sizes[0], np.array([5, 2.5, 1.375]) * 0.0254, rtol=1e-4)


def test_unitless_default_is_mm_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    assert main(["convert", str(DATA / "featuretype.STL"), "-o", str(tmp_path / "a.usda")]) == 0
    err = capsys.readouterr().err
    assert "assuming mm" in err and "--units" in err
    pts = read_meshes(Usd.Stage.Open(str(tmp_path / "a.usda")))[0].points
    np.testing.assert_allclose(np.ptp(pts, axis=0), np.array([5, 2.5, 1.375]) * 0.001, rtol=1e-4)


def test_keep_units_and_up_axis(tmp_path: Path) -> None:
    out = convert(DATA / "featuretype.STL", tmp_path / "k.usda", units="in", keep_units=True)
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.0254)
    pts = read_meshes(stage)[0].points
    np.testing.assert_allclose(np.ptp(pts, axis=0), [5, 2.5, 1.375], rtol=1e-5)
    # glTF is Y-up; --up Y keeps its axis, points untouched
    out = convert(DATA / "Duck.glb", tmp_path / "y.usda", up_axis="Y")
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    pts = np.concatenate([m.points for m in read_meshes(stage)])
    np.testing.assert_allclose([pts.min(axis=0), pts.max(axis=0)],
                               trimesh.load_scene(str(DATA / "Duck.glb")).bounds, atol=1e-5)


def test_hierarchy_transforms_and_instancing(tmp_path: Path) -> None:
    out = convert(DATA / "TestScene.gltf", tmp_path / "t.usda")
    stage = Usd.Stage.Open(str(out))
    scene = trimesh.load_scene(str(DATA / "TestScene.gltf"))
    users: dict[str, int] = {}
    for node in scene.graph.nodes_geometry:
        users[scene.graph[node][1]] = users.get(scene.graph[node][1], 0) + 1
    shared_uses = sum(u for u in users.values() if u > 1)
    assert shared_uses >= 2
    instances = [p for p in stage.Traverse() if p.IsInstance()]
    assert len(instances) >= shared_uses
    assert len({p.GetPrototype().GetPath() for p in instances}) < len(instances)
    # the glTF node hierarchy is kept: TestNode holds Cylinder, Plane, Sphere, Cube
    node = stage.GetPrimAtPath("/TestScene/Geom/TestNode")
    assert node and {"Cylinder", "Plane", "Sphere", "Cube"} <= {c.GetName() for c in node.GetChildren()}
    # no scale anywhere on the way to the root
    assert UsdGeom.Xformable(stage.GetDefaultPrim()).GetLocalTransformation() == Gf.Matrix4d(1)
    # converting again gives the same prims (bindings refer to prim paths), although trimesh
    # names the frames of multi-primitive meshes with random suffixes
    again = Usd.Stage.Open(str(convert(DATA / "TestScene.gltf", tmp_path / "again.usda")))
    paths = [str(p.GetPath()) for p in stage.Traverse()]
    assert [str(p.GetPath()) for p in again.Traverse()] == paths
    assert "/TestScene/Geom/d8/d8_1__1" in paths  # the d8's second primitive, named after it


@pytest.mark.parametrize("suffix", [".usda", ".usdz"])
def test_base_colour_textures_are_carried_over(tmp_path: Path, suffix: str) -> None:
    """The texture is written beside the layers (or packaged), read by a UsdUVTexture at an
    indexed faceVarying ``st`` whose every corner is one of the source's (position, uv)."""
    from scipy.spatial import cKDTree

    out = convert(DATA / "Duck.glb", tmp_path / f"duck{suffix}")
    if suffix == ".usda":
        pngs = list((tmp_path / "duck.textures").glob("*.png"))
        assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["duck.usdz"]  # all packaged
    stage = Usd.Stage.Open(str(out))
    mesh_prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    st = UsdGeom.PrimvarsAPI(mesh_prim).GetPrimvar("st")
    assert st.GetInterpolation() == UsdGeom.Tokens.faceVarying and st.IsIndexed()
    material = UsdShade.MaterialBindingAPI(mesh_prim).ComputeBoundMaterial()[0]
    surface = material.ComputeSurfaceSource()[0]
    texture = surface.GetInput("diffuseColor").GetConnectedSources()[0][0].source
    assert UsdShade.Shader(texture.GetPrim()).GetIdAttr().Get() == "UsdUVTexture"
    resolved = UsdShade.Shader(texture.GetPrim()).GetInput("file").Get().resolvedPath
    assert resolved and "duck.textures" in resolved.replace("\\", "/")
    (mesh,) = read_meshes(stage)  # world space, metres, Z-up
    corners = np.hstack([mesh.points[mesh.faces.ravel()], np.asarray(st.ComputeFlattened())])
    source = trimesh.load_scene(str(DATA / "Duck.glb"), process=False).to_geometry()
    y_up_to_z_up = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)
    known = np.hstack([source.vertices @ y_up_to_z_up.T, source.visual.uv])
    distance, _ = cKDTree(known).query(corners)
    assert len(corners) == 3 * len(source.faces) and distance.max() < 1e-4


def test_repeated_step_parts_are_instanced(tmp_path: Path) -> None:
    out = convert(DATA / "box_sides.STEP", tmp_path / "b.usda")
    stage = Usd.Stage.Open(str(out))
    instances = [p for p in stage.Traverse() if p.IsInstance()]
    assert len(instances) >= 2
    protos = {p.GetPrototype() for p in instances}
    assert len(protos) < len(instances)
    for prim in instances:  # the binding sits on the instance, where it can reach the material
        material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        assert material


def test_duplicate_unicode_and_illegal_names(tmp_path: Path) -> None:
    box = trimesh.load_mesh(str(DATA / "featuretype.STL"))
    scene = trimesh.Scene()
    for i, label in enumerate(["Würfel", "部品", "a b/c (1)", "a_b_c_1", "1st"]):
        scene.add_geometry(box.copy(), node_name=label, geom_name=f"{label}_g{i}",
                           transform=trimesh.transformations.translation_matrix([i * 10, 0, 0]))
    src = tmp_path / "names.glb"
    scene.export(str(src))
    out = convert(src, tmp_path / "n.usda")
    stage = Usd.Stage.Open(str(out))
    names = [c.GetName() for c in stage.GetPrimAtPath("/names/Geom").GetChildren()]
    assert len(names) == 5 and len(set(names)) == 5
    assert all(Sdf.Path.IsValidIdentifier(n) for n in names)
    assert {"Wurfel", "部品", "_1st", "a_b_c_1"} <= set(names)
    labels = {c.GetDisplayName() for c in stage.GetPrimAtPath("/names/Geom").GetChildren()}
    assert {"Würfel", "a b/c (1)"} <= labels  # the source's own names stay readable
    assert_valid(out)


def test_same_name_3mf_objects_get_unique_names(tmp_path: Path) -> None:
    out = convert(DATA / "cube_and_sphere_same_name.3mf", tmp_path / "c.usda")
    stage = Usd.Stage.Open(str(out))
    meshes = [p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert len(meshes) == 2 and len({p.GetName() for p in meshes}) == 2


def test_assembly_of_several_inputs(tmp_path: Path) -> None:
    out = tmp_path / "asm.usda"
    assert main(["convert", str(DATA / "featuretype.STEP"), str(DATA / "nested.glb"),
                 "-o", str(out), "--name", "Cell"]) == 0
    stage = Usd.Stage.Open(str(out))
    root = stage.GetDefaultPrim()
    assert root.GetName() == "Cell" and Usd.ModelAPI(root).GetKind() == "assembly"
    parts = {c.GetName(): c for c in root.GetChildren()}
    assert set(parts) == {"featuretype", "nested"}
    assert all(Usd.ModelAPI(p).GetKind() == "component" for p in parts.values())
    assert stage.GetPrimAtPath("/Cell/featuretype/Geom") and stage.GetPrimAtPath("/Cell/nested/Materials")
    assert set(stage.GetRootLayer().customLayerData["twin3d"]["sources"]) == {"featuretype", "nested"}
    assert_valid(out)


@pytest.mark.parametrize("fmt", ["obj", "ply", "off"])
def test_other_mesh_formats(fmt: str, tmp_path: Path) -> None:
    mesh = trimesh.load_mesh(str(DATA / "plate_holes.STL"))
    src = tmp_path / f"plate.{fmt}"
    mesh.export(str(src))
    out = convert(src, tmp_path / "p.usdc", units="in")
    meshes = read_meshes(Usd.Stage.Open(str(out)))
    assert sum(len(m.faces) for m in meshes) == len(mesh.faces)
    pts = np.concatenate([m.points for m in meshes])
    np.testing.assert_allclose(np.ptp(pts, axis=0), np.ptp(mesh.vertices, axis=0) * 0.0254,
                               rtol=1e-5)
    assert_valid(out)


def test_usdz_output(tmp_path: Path) -> None:
    out = convert(DATA / "nested.glb", tmp_path / "n.usdz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.usdz"]
    stage = Usd.Stage.Open(str(out))
    assert len(read_meshes(stage)) == 3
    assert_valid(out)


# --- bad input -----------------------------------------------------------------------------

def _bad_files(tmp: Path) -> dict[str, Path]:
    glb = (DATA / "nested.glb").read_bytes()
    stl = (DATA / "featuretype.STL").read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "missing": tmp / "nope.stl",
        "empty": DATA / "empty.stl",
        "zero-bytes": tmp / "zero.stl",
        "truncated-glb": tmp / "trunc.glb",
        "random-glb": tmp / "random.glb",
        "truncated-stl": tmp / "trunc.stl",
        "random-stl": tmp / "random.stl",
        "unsupported": tmp / "model.dwg",
    }
    files["zero-bytes"].write_bytes(b"")
    files["truncated-glb"].write_bytes(glb[: len(glb) // 2])
    files["random-glb"].write_bytes(rng.bytes(4000))
    files["truncated-stl"].write_bytes(stl[:3000])
    files["random-stl"].write_bytes(rng.bytes(4000))
    files["unsupported"].write_bytes(b"AC1027")
    return files


@pytest.mark.parametrize("case", ["missing", "empty", "zero-bytes", "truncated-glb", "random-glb",
                                  "truncated-stl", "random-stl", "unsupported"])
def test_bad_input_one_line_exit_1_nothing_left(case: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = _bad_files(tmp_path)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    assert main(["convert", str(src), "-o", str(outdir / "x.usda"), "--units", "mm"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("twin3d convert: error: ") and src.name in lines[0]
    assert "Traceback" not in err
    assert list(outdir.iterdir()) == []


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (tmp_path / "missing" / "x.usda", blocker / "x.usda", tmp_path):
        assert main(["convert", str(DATA / "nested.glb"), "-o", str(target)]) in (1, 2)
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0]
    assert main(["convert", str(DATA / "nested.glb"), "-o", str(blocker / "x.usda")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_bad_usage_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(DATA / "nested.glb"), "-o", str(tmp_path / "x.obj")]) == 2
    assert main(["convert", str(DATA / "nested.glb"), "-o", str(tmp_path / "x.usda"),
                 "--units", "parsec"]) == 2
    assert main(["convert", "-o", str(tmp_path / "x.usda")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("twin3d") for line in err)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(twin3d.errors.UsageError):
        convert(DATA / "nested.glb", tmp_path / "x.usda", up_axis="X")


def test_step_assembly_parts_get_their_part_names(tmp_path: Path) -> None:
    out = twin3d.convert([DATA / "box_sides.STEP"], tmp_path / "box.usda", progress=False)
    stage = Usd.Stage.Open(str(out))
    names = [p.GetName() for p in stage.GetPrimAtPath("/box_sides/Geom").GetChildren()]
    assert "box_base" in names and "box_top" in names and "side_short_B" in names
    assert not any(n.startswith("NAUO") for n in names)  # occurrence ids are not names
