"""Fast readers for the common, simple cases of STL, OBJ and glTF (no trimesh import).

Each reader returns a trimesh-like scene (``units``, ``geometry``, ``graph``) that
:func:`twin3d.cad.load_part` consumes exactly as it consumes ``trimesh.load_scene``'s, or
``None`` when the file uses anything the fast path does not handle: the caller then uses
trimesh, the general path. Both give the same :class:`~twin3d.cad.Part` for the files the
fast path takes (``tests/test_cad.py`` compares them on real and generated files).

Why: importing trimesh (which pulls in scipy and networkx) takes about 1 s, and its OBJ
parser about 2.5 s for a 1.3M-triangle file; VTK's C++ OBJ reader (VTK is a core dependency)
takes 0.5 s, and glTF's binary accessors are typed arrays that numpy views directly.

* binary STL: chunked ``np.fromfile``, welded chunk by chunk; ASCII or damaged files decline.
* OBJ: ``vtkOBJReader``, for files of triangles without materials (``mtllib``/``usemtl``),
  texture coordinates, vertex colours (judged by the first ``v`` line), points or lines,
  named as trimesh names them.
* glTF / GLB: the JSON plus numpy views of the accessors, for triangle primitives (one per
  mesh), factor-only materials (no textures), no extensions, sparse accessors or morph
  targets, no cameras, and names that need no de-duplication.
"""

from __future__ import annotations

import json
import mmap
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.weld import WeldCollision, weld_chunks

__all__ = ["binary_stl_scene", "gltf_scene", "obj_scene"]

#: trimesh's colour for a PBR material without baseColorFactor (``visual.color.DEFAULT_COLOR``)
_PBR_DEFAULT_RGBA = np.array([102, 102, 102, 255], dtype=np.uint8)


def _scene(units: str | None, geometry: dict[str, Any],
           edges: list[tuple[str, str, dict[str, Any]]]) -> SimpleNamespace:
    """A trimesh-like scene from (parent, child, {"matrix", "geometry"}) edges."""
    children: dict[str, list[str]] = {}
    edge_data: dict[tuple[str, str], dict[str, Any]] = {}
    for a, b, data in edges:
        children.setdefault(a, []).append(b)
        edge_data[(a, b)] = data
    return SimpleNamespace(units=units, geometry=geometry, graph=SimpleNamespace(
        base_frame="world", transforms=SimpleNamespace(children=children, edge_data=edge_data)))


# --- STL ------------------------------------------------------------------------------------

_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])


def binary_stl_scene(path: Path) -> SimpleNamespace | None:
    """A binary STL as a one-mesh scene, welded as it is read; None if not binary.

    Records are read 65536 at a time and welded chunk by chunk (:func:`weld_chunks`): the
    triangle soup (three corners a triangle, about 3x the welded mesh) is never held whole.
    The geometry is marked ``welded``; on a 64-bit hash collision the soup is read whole
    and left to :func:`twin3d.weld.weld` (``faces`` None).
    """
    size = path.stat().st_size
    if size < 84:
        return None
    with path.open("rb") as f:
        head = f.read(84)
    count = int.from_bytes(head[80:84], "little")
    if count == 0 or 84 + 50 * count != size:
        return None
    try:
        points, faces = weld_chunks(_stl_corners(path, count), 3 * count)
        geom = SimpleNamespace(vertices=points, faces=faces, visual=None, welded=True)
    except WeldCollision:
        soup = np.concatenate(list(_stl_corners(path, count)))
        geom = SimpleNamespace(vertices=soup, faces=None, visual=None)  # corners 3 j .. 3 j + 2
    return _scene(None, {path.name: geom}, [("world", path.name, {"geometry": path.name})])


def _stl_corners(path: Path, count: int) -> Iterator[npt.NDArray[np.float32]]:
    """The corners of a binary STL's ``count`` triangles, (3 k, 3) float32, 65536 at a time."""
    chunk = 1 << 16
    with path.open("rb") as f:
        f.seek(84)
        for i in range(0, count, chunk):
            records = np.fromfile(f, dtype=_STL_RECORD, count=min(chunk, count - i))
            yield records["vertices"].reshape(-1, 3)


# --- OBJ ------------------------------------------------------------------------------------

#: trimesh starts the face block at the first of these; an ``o`` there names the mesh
_OBJ_STARTERS = (b"\nusemtl ", b"\no ", b"\ng ", b"\ns ")


def obj_scene(path: Path) -> SimpleNamespace | None:
    """A triangle-only OBJ without materials, UVs or colours, read by ``vtkOBJReader``.

    The mesh is named as trimesh names it: the ``o`` line that opens the face block, else
    the file name. Returns None (use trimesh) for anything else, or if VTK reads no
    triangles or any polygon that is not a triangle.
    """
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm.find(b"usemtl") >= 0 or mm.find(b"mtllib", 0, 1 << 16) >= 0:
            return None  # materials split meshes in trimesh
        v = mm.find(b"v ", 0, 1 << 20)
        if v < 0:
            return None
        end = mm.find(b"\n", v)
        if len(mm[v + 2:end if end >= 0 else len(mm)].split(b"#")[0].split()) != 3:
            return None  # w or vertex colours, which trimesh keeps
        f_at = mm.find(b"\nf ")
        if f_at < 0:
            return None
        hits = [(pos, tok) for tok in _OBJ_STARTERS if (pos := mm.find(tok, 0, f_at)) >= 0]
        pos, tok = min(hits, default=(f_at, b"\nf "))
        name = path.name
        if tok == b"\no ":
            end = mm.find(b"\n", pos + 3)
            label = mm[pos + 3:end if end >= 0 else len(mm)].decode("utf-8", "replace").strip()
            name = label or name
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkObject
    from vtkmodules.vtkIOGeometry import vtkOBJReader

    reader = vtkOBJReader()
    reader.SetFileName(str(path))
    shown = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()  # a bad file goes to trimesh, which says why
    try:
        reader.Update()
    finally:
        vtkObject.SetGlobalWarningDisplay(shown)
    poly = reader.GetOutput()
    if (poly is None or poly.GetNumberOfPolys() == 0 or poly.GetNumberOfLines()
            or poly.GetNumberOfVerts() or poly.GetNumberOfStrips()
            or poly.GetFieldData().GetNumberOfArrays()  # materials
            or _array_names(poly.GetPointData()) - {"Normals"}  # texture coordinates
            or _array_names(poly.GetCellData()) - {"GroupIds"}):
        return None
    cells = poly.GetPolys()
    to_numpy: Any = vtk_to_numpy
    offsets = to_numpy(cells.GetOffsetsArray())
    if np.any(np.diff(offsets) != 3):
        return None
    points = np.asarray(to_numpy(poly.GetPoints().GetData()), dtype=np.float64)
    faces = to_numpy(cells.GetConnectivityArray()).reshape(-1, 3).astype(_index_type(len(points)))
    del reader, poly, cells
    geom = SimpleNamespace(vertices=points, faces=faces, visual=None)
    return _scene(None, {name: geom}, [("world", name, {"geometry": name})])


def _index_type(n_points: int) -> type[np.signedinteger[Any]]:
    """int32 for face indices below 2**31 points (half int64's memory), else int64."""
    return np.int32 if n_points < 2**31 else np.int64


def _array_names(data: Any) -> set[str]:
    return {data.GetAbstractArray(i).GetName() for i in range(data.GetNumberOfArrays())}


# --- glTF -----------------------------------------------------------------------------------


class _Decline(Exception):
    """The file uses something the fast path leaves to trimesh."""


_COMPONENT = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_PRIM_ATTRIBUTES = ("POSITION", "NORMAL", "TANGENT", "TEXCOORD_")


def _gltf_json_and_buffers(path: Path) -> tuple[dict[str, Any], list[memoryview]]:
    if path.suffix.lower() == ".glb":
        data = memoryview(path.read_bytes())
        if len(data) < 20 or bytes(data[:4]) != b"glTF" or \
                int.from_bytes(data[4:8], "little") != 2:
            raise _Decline
        size = int.from_bytes(data[12:16], "little")
        if bytes(data[16:20]) != b"JSON" or 20 + size > len(data):
            raise _Decline
        header = json.loads(bytes(data[20:20 + size]))
        rest = 20 + size
        bin_chunk = None
        if rest + 8 <= len(data) and bytes(data[rest + 4:rest + 8]) == b"BIN\x00":
            n = int.from_bytes(data[rest:rest + 4], "little")
            bin_chunk = data[rest + 8:rest + 8 + n]
    else:
        header = json.loads(path.read_bytes())
        bin_chunk = None
    if not isinstance(header, dict):
        raise _Decline
    buffers: list[memoryview] = []
    for i, buf in enumerate(header.get("buffers", [])):
        uri = buf.get("uri")
        if uri is None:
            if i != 0 or bin_chunk is None:
                raise _Decline
            buffers.append(bin_chunk)
            continue
        if ":" in uri or "%" in uri or uri.startswith("/"):  # data: URIs, escapes, absolute
            raise _Decline
        file = path.parent / uri
        if not file.is_file():
            raise _Decline
        buffers.append(memoryview(file.read_bytes()))
    return header, buffers


def _accessor(header: dict[str, Any], buffers: list[memoryview], index: int) -> npt.NDArray[Any]:
    """(count, width) numpy view of accessor ``index`` (strided views, no copy)."""
    acc = header["accessors"][index]
    if "sparse" in acc or acc.get("normalized") or "bufferView" not in acc:
        raise _Decline
    dtype = np.dtype(_COMPONENT[acc["componentType"]])
    width = _WIDTH[acc["type"]]
    count = int(acc["count"])
    view = header["bufferViews"][acc["bufferView"]]
    buf = buffers[view["buffer"]]
    offset = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
    stride = int(view.get("byteStride") or dtype.itemsize * width)
    end = offset + stride * (count - 1) + dtype.itemsize * width if count else offset
    if end > min(len(buf), int(view.get("byteOffset", 0)) + int(view["byteLength"])):
        raise _Decline  # truncated: trimesh reports it
    return np.ndarray((count, width), dtype=dtype, buffer=buf, offset=offset,
                      strides=(stride, dtype.itemsize))


def _material(mat: dict[str, Any]) -> SimpleNamespace:
    """What trimesh's PBRMaterial gives ``cad._material_of`` for a factor-only material."""
    pbr = dict(mat.get("pbrMetallicRoughness", {}))
    if "extensions" in mat or any(k.endswith("Texture") for k in (*mat, *pbr)):
        raise _Decline
    bc = pbr.get("baseColorFactor")
    rgba = None
    if bc is not None:  # trimesh keeps it as uint8 RGBA
        c = np.clip(np.asarray(bc, dtype=np.float64) * 255.0, 0.0, 255.0).round()
        rgba = np.append(c, 255.0)[:4].astype(np.uint8) if c.shape == (3,) else c.astype(np.uint8)
    em = mat.get("emissiveFactor")
    return SimpleNamespace(
        name=mat.get("name"), baseColorFactor=rgba, main_color=_PBR_DEFAULT_RGBA,
        metallicFactor=None if pbr.get("metallicFactor") is None else float(pbr["metallicFactor"]),
        roughnessFactor=None if pbr.get("roughnessFactor") is None
        else float(pbr["roughnessFactor"]),
        emissiveFactor=None if em is None else np.asarray(em, dtype=np.float64).reshape(3))


def _node_matrix(node: dict[str, Any]) -> npt.NDArray[np.float64]:
    """(4, 4) local matrix (column vectors): ``matrix`` times T, R, S as trimesh composes them."""
    m = np.eye(4)
    if "matrix" in node:
        m = np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
    if "translation" in node:
        t = np.eye(4)
        t[:3, 3] = np.asarray(node["translation"], dtype=np.float64)
        m = m @ t
    if "rotation" in node:
        x, y, z, w = (float(c) for c in node["rotation"])
        n = x * x + y * y + z * z + w * w
        if n > 1e-12:
            s = 2.0 / n
            r = np.eye(4)
            r[:3, :3] = [[1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
                         [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
                         [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]]
            m = m @ r
    if "scale" in node:
        m = m @ np.diag([*(float(c) for c in node["scale"]), 1.0])
    return m


def gltf_scene(path: Path) -> SimpleNamespace | None:
    """A simple glTF / GLB read with numpy views of its accessors; None: use trimesh."""
    try:
        return _gltf_scene(path)
    except (_Decline, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


def _gltf_scene(path: Path) -> SimpleNamespace:
    header, buffers = _gltf_json_and_buffers(path)
    if header.get("extensionsUsed") or header.get("extensionsRequired"):
        raise _Decline
    materials = [_material(m) for m in header.get("materials", [])]
    geometry: dict[str, Any] = {}
    mesh_geom: dict[int, str] = {}
    for index, mesh in enumerate(header.get("meshes", [])):
        prims = mesh["primitives"]
        name = mesh.get("name", "GLTF")
        if len(prims) != 1 or not name or name in geometry:
            raise _Decline  # trimesh merges primitives / renames: leave it to trimesh
        p = prims[0]
        attr = p["attributes"]
        if p.get("mode", 4) != 4 or "extensions" in p or "targets" in p or \
                not all(k.startswith(_PRIM_ATTRIBUTES) for k in attr):
            raise _Decline
        pos = _accessor(header, buffers, attr["POSITION"])
        if pos.shape[1] != 3 or pos.dtype != np.float32:
            raise _Decline
        if "indices" in p:
            idx = _accessor(header, buffers, p["indices"])
            if idx.shape[1] != 1 or idx.dtype.kind != "u" or len(idx) % 3:
                raise _Decline
            faces = idx.reshape(-1, 3).astype(_index_type(len(pos)))  # half int64's memory
        elif len(pos) % 3 == 0:
            faces = np.arange(len(pos), dtype=_index_type(len(pos))).reshape(-1, 3)
        else:
            raise _Decline
        visual = None
        if "material" in p:
            visual = SimpleNamespace(kind="texture", material=materials[p["material"]])
        geometry[name] = SimpleNamespace(vertices=pos.astype(np.float64), faces=faces,
                                         visual=visual)
        mesh_geom[index] = name
    nodes = header.get("nodes", [])
    names = [n.get("name", str(i)) for i, n in enumerate(nodes)]
    if len(set(names)) != len(names) or "world" in names or not all(names):
        raise _Decline
    scene_index = header.get("scene", 0)
    roots = header["scenes"][scene_index].get("nodes", []) if "scenes" in header else []
    edges: list[tuple[str, str, dict[str, Any]]] = []
    queue: deque[tuple[int | None, int]] = deque((None, r) for r in roots)
    seen: set[int] = set()
    while queue:  # the same order as trimesh's loader (last in, first out)
        parent, b = queue.pop()
        if b in seen:
            raise _Decline  # a node with two parents
        seen.add(b)
        node = nodes[b]
        if "camera" in node:
            raise _Decline
        queue.extend((b, c) for c in node.get("children", []))
        data: dict[str, Any] = {"matrix": _node_matrix(node)}
        if "mesh" in node:
            data["geometry"] = mesh_geom[node["mesh"]]
        edges.append(("world" if parent is None else names[parent], names[b], data))
    return _scene("meters", geometry, edges)
