"""Fast readers for the common, simple cases of STL, OBJ and glTF (no trimesh import).

Each reader returns a trimesh-like scene (``units``, ``geometry``, ``graph``) that
:func:`twin3d.cad.load_part` consumes exactly as it consumes ``trimesh.load_scene``'s, or
``None`` when the file uses anything the fast path does not handle: the caller then uses
trimesh, the general path. Both give the same :class:`~twin3d.cad.Part` for the files the
fast path takes (``tests/test_cad.py`` compares them on real and generated files).

Why: importing trimesh (which pulls in scipy and networkx) takes about 1 s, and its OBJ
parser about 2.5 s for a 1.3M-triangle file; memory: VTK's C++ OBJ reader was as fast as
numpy's text parsing but cost ~140 MiB (its import and its own arrays), and an STL's
triangle soup or a whole glTF buffer held in memory would be two to three times the
mesh's arrays (``benchmarks/RESULTS.md``, "Conversion").

* binary STL: chunked ``np.fromfile``, welded chunk by chunk; ASCII or damaged files decline.
* OBJ: numpy parses the text a 4 MiB block at a time, for files of triangles without
  materials, texture coordinates, vertex colours, points or lines, named as trimesh names
  them.
* glTF / GLB: the JSON, then each accessor's bytes read into numpy, for triangle
  primitives (one per mesh), factor-only materials (no textures), no extensions, sparse accessors or morph
  targets, no cameras, and names that need no de-duplication.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

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

def obj_scene(path: Path) -> SimpleNamespace | None:
    """A triangle-only OBJ without materials, UVs or colours, parsed by numpy a block at a time.

    Lines may be ``v x y z``, ``f a b c`` or ``f a//n b//n c//n``, ``vn`` (ignored: normals
    are recomputed), comments, ``o``/``g``/``s`` and blank lines; anything else (``vt``,
    ``usemtl``, vertex colours or ``w``, polygons, relative indices, a comment after a
    value ...) returns None, and trimesh reads the file. The mesh is named as trimesh names
    it: the ``o`` line that opens the face block, else the file name. Memory: the parsed
    arrays and one 4 MiB block's temporaries (the whole text is never held).
    """
    name: str | None = None  # decided by the first o/g/s line, or the first f line
    vertices: list[npt.NDArray[np.float64]] = []
    faces: list[npt.NDArray[np.int32]] = []
    with path.open("rb") as f:
        rest = b""
        while True:
            chunk = f.read(_OBJ_BLOCK)
            block = rest + chunk if chunk else rest + b"\n"  # the last line may lack one
            cut = block.rfind(b"\n") + 1
            if cut == 0 and len(block) > _OBJ_BLOCK:
                return None  # a line of over 4 MiB: not a simple OBJ
            block, rest = block[:cut], block[cut:]
            if block.strip():
                parsed = _obj_block(block)
                if parsed is None:
                    return None
                vertices.append(parsed.vertices)
                faces.append(parsed.faces)
                if name is None and parsed.opener is not None:
                    label = parsed.opener.decode("utf-8", "replace")
                    name = label[2:].strip() if label[:2] in ("o ", "o\t") else ""
                if name is None and len(parsed.faces):
                    name = ""
            if not chunk:
                break
    points = np.concatenate(vertices)
    del vertices
    if not len(points) or not sum(len(x) for x in faces) or len(points) >= 2**31:
        return None
    tri = np.concatenate(faces)
    del faces
    tri -= 1  # OBJ counts from 1
    if tri.max() >= len(points):
        return None  # missing vertices: trimesh says what is wrong
    name = name or path.name
    geom = SimpleNamespace(vertices=points, faces=tri, visual=None)
    return _scene(None, {name: geom}, [("world", name, {"geometry": name})])


class _ObjBlock(NamedTuple):
    vertices: npt.NDArray[np.float64]  # (k, 3), as trimesh reads them
    faces: npt.NDArray[np.int32]  # (j, 3), counted from 1
    opener: bytes | None  # the first o/g/s line before the block's first f line


_OBJ_BLOCK = 1 << 22  # bytes of text per parse step
_SPACE, _TAB, _LF, _CR = 32, 9, 10, 13


def _obj_block(block: bytes) -> _ObjBlock | None:
    """The vertices and triangles of whole OBJ lines; None: not a simple file."""
    a = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(a == _LF)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    first = a[starts]
    second = a[np.minimum(starts + 1, len(a) - 1)]
    blank_after = (second == _SPACE) | (second == _TAB)
    is_v = (first == ord("v")) & blank_after
    is_f = (first == ord("f")) & blank_after
    opens = ((first == ord("o")) | (first == ord("g")) | (first == ord("s"))) & (
        blank_after | (second == _LF) | (second == _CR))
    skip = (first == ord("#")) | (first == _LF) | (first == _CR) | (
        (first == ord("v")) & (second == ord("n"))) | opens
    if not np.all(is_v | is_f | skip):
        return None  # vt, usemtl, l, p, indented lines ...
    # trimesh names the mesh after an o line that opens the face block
    f_lines = np.flatnonzero(is_f)
    o_lines = np.flatnonzero(opens[:f_lines[0] if len(f_lines) else len(opens)])
    opener = block[starts[o_lines[0]]:ends[o_lines[0]]] if len(o_lines) else None
    word = a > _SPACE  # whitespace is space, tab, CR, LF
    starts_word = word.copy()
    starts_word[1:] &= ~word[:-1]
    words = np.add.reduceat(starts_word, starts, dtype=np.int32)
    del word, starts_word
    if np.any(words[is_v] != 4) or np.any(words[is_f] != 4):
        return None  # w or colours, polygons, trailing comments
    lengths = ends - starts + 1
    text_v = a[np.repeat(is_v, lengths)]
    text_f = a[np.repeat(is_f, lengths)]
    text_v[text_v == ord("v")] = _SPACE
    text_f[text_f == ord("f")] = _SPACE
    slash = text_f == ord("/")
    per_corner = 1
    if slash.any():  # only "a//n": the position, then the normal's index
        pairs = slash[:-1] & slash[1:]
        lines_f = int(is_f.sum())
        if int(slash.sum()) != 6 * lines_f or int(pairs.sum()) != 3 * lines_f:
            return None  # texture coordinates (a/t, a/t/n)
        text_f[slash] = _SPACE
        per_corner = 2
    try:
        v = np.fromstring(text_v.tobytes(), dtype=np.float64, sep=" ")
        f = np.fromstring(text_f.tobytes(), dtype=np.int64, sep=" ")
    except ValueError:  # a word that is not a number
        return None
    if len(v) != 3 * int(is_v.sum()) or len(f) != 3 * per_corner * int(is_f.sum()):
        return None
    f = f[::per_corner]
    if len(f) and (f.min() < 1 or f.max() >= 2**31):
        return None  # relative (negative) indices: trimesh resolves them
    return _ObjBlock(v.reshape(-1, 3), f.astype(np.int32).reshape(-1, 3), opener)


def _index_type(n_points: int) -> type[np.signedinteger[Any]]:
    """int32 for face indices below 2**31 points (half int64's memory), else int64."""
    return np.int32 if n_points < 2**31 else np.int64


# --- glTF -----------------------------------------------------------------------------------


class _Decline(Exception):
    """The file uses something the fast path leaves to trimesh."""


_COMPONENT = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_PRIM_ATTRIBUTES = ("POSITION", "NORMAL", "TANGENT", "TEXCOORD_")


class _Buffer(NamedTuple):
    """A glTF buffer: ``length`` bytes of ``path`` from ``offset`` (read when needed)."""

    path: Path
    offset: int
    length: int


def _gltf_json_and_buffers(path: Path) -> tuple[dict[str, Any], list[_Buffer]]:
    """The glTF JSON and where its buffers lie; no buffer is read here."""
    if path.suffix.lower() == ".glb":
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(20)
            if len(head) < 20 or head[:4] != b"glTF" or int.from_bytes(head[4:8], "little") != 2:
                raise _Decline
            n = int.from_bytes(head[12:16], "little")
            if head[16:20] != b"JSON" or 20 + n > size:
                raise _Decline
            header = json.loads(f.read(n))
            rest = 20 + n
            chunk = f.read(8)
        bin_chunk = None
        if len(chunk) == 8 and chunk[4:8] == b"BIN\x00":
            bin_chunk = _Buffer(path, rest + 8, min(int.from_bytes(chunk[:4], "little"),
                                                    size - rest - 8))
    else:
        header = json.loads(path.read_bytes())
        bin_chunk = None
    if not isinstance(header, dict):
        raise _Decline
    buffers: list[_Buffer] = []
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
        buffers.append(_Buffer(file, 0, file.stat().st_size))
    return header, buffers


def _accessor(header: dict[str, Any], buffers: list[_Buffer], index: int) -> npt.NDArray[Any]:
    """(count, width) array of accessor ``index``, read from its file (only its bytes)."""
    acc = header["accessors"][index]
    if "sparse" in acc or acc.get("normalized") or "bufferView" not in acc:
        raise _Decline
    dtype = np.dtype(_COMPONENT[acc["componentType"]])
    width = _WIDTH[acc["type"]]
    count = int(acc["count"])
    view = header["bufferViews"][acc["bufferView"]]
    buf = buffers[view["buffer"]]
    offset = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
    row = dtype.itemsize * width
    stride = int(view.get("byteStride") or row)
    span = stride * (count - 1) + row if count else 0
    if offset + span > min(buf.length, int(view.get("byteOffset", 0)) + int(view["byteLength"])):
        raise _Decline  # truncated: trimesh reports it
    with buf.path.open("rb") as f:
        f.seek(buf.offset + offset)
        if stride == row:
            return np.fromfile(f, dtype=dtype, count=count * width).reshape(count, width)
        raw = np.fromfile(f, dtype=np.uint8, count=span)  # interleaved: pick the rows out
    return np.ndarray((count, width), dtype=dtype, buffer=raw, strides=(stride, dtype.itemsize)).copy()


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
            # uint32 indices as int32 without a copy (>= 2**31 turns negative: rejected later)
            faces = (idx.view(np.int32) if idx.dtype == np.uint32 else
                     idx.astype(_index_type(len(pos)))).reshape(-1, 3)
        elif len(pos) % 3 == 0:
            faces = np.arange(len(pos), dtype=_index_type(len(pos))).reshape(-1, 3)
        else:
            raise _Decline
        visual = None
        if "material" in p:
            visual = SimpleNamespace(kind="texture", material=materials[p["material"]])
        geometry[name] = SimpleNamespace(vertices=pos, faces=faces, visual=visual)  # float32
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
