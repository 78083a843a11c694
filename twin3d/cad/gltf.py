"""glTF and GLB without trimesh: the JSON, then each accessor's bytes read into numpy.

For one primitive per mesh (triangles, strips or fans; points and lines are left out),
factor-only materials (no textures), no extensions, sparse accessors or morph targets, no
cameras, and names that need no de-duplication; anything else is left to trimesh. Accessors
are read from the file through one handle, only their bytes: the file's buffer is never held
whole (``benchmarks/RESULTS.md``, "Conversion"). Positions stay float32.

Compressed geometry is checked first, whichever reader goes on: Draco
(``KHR_draco_mesh_compression``) needs DracoPy (``twin3d[draco]``), with which trimesh
decodes it; meshopt (``EXT_meshopt_compression``) cannot be read, and the error says so.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt

from twin3d.cad.scene import (
    DEFAULT_PBR_COLOR,
    NO_MATERIAL,
    ROOT,
    Edge,
    Material,
    Meshes,
    Scene,
    SourceMesh,
    rgba,
)
from twin3d.errors import CADImportError

__all__ = ["check_compression", "read_gltf"]


class _Decline(Exception):
    """The file uses something this reader leaves to trimesh."""


_COMPONENT = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_PRIM_ATTRIBUTES = ("POSITION", "NORMAL", "TANGENT", "TEXCOORD_")
#: primitive modes with a surface: triangles, triangle strip, triangle fan
_TRIANGLES, _STRIP, _FAN = 4, 5, 6
#: compressions of mesh data that no reader here decodes
_UNREADABLE = ("EXT_meshopt_compression", "KHR_meshopt_compression")


class _Buffer(NamedTuple):
    """A glTF buffer: ``length`` bytes of the open ``file`` from ``offset``."""

    file: BinaryIO
    offset: int
    length: int


def read_gltf(path: Path, *, merged: bool = False) -> Scene | None:
    """A simple glTF / GLB as a :class:`Scene`; None: leave it to trimesh.

    Node transforms compose ``matrix`` and translation, rotation and scale as trimesh does,
    and the hierarchy is walked in trimesh's order, so both give the same part.

    Args:
        path: the ``.gltf`` or ``.glb`` file.
        merged: read each mesh's primitives as one mesh, with a material per face when they
            differ, and make duplicate mesh and node names unique as trimesh does (the prim
            paths of stages converted through trimesh stay): how a STEP file's tessellation
            is read (:mod:`twin3d.cad.step`).

    Raises:
        CADImportError: the geometry is compressed in a way that cannot be read here
            (:func:`check_compression`).
    """
    try:
        with ExitStack() as files:  # one handle per file, closed when the reading is done
            return _read(path, files, merged)
    except CADImportError:
        raise
    except (_Decline, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None  # (a bad base64 buffer is a ValueError too)


def check_compression(path: Path, header: dict[str, Any] | None = None) -> None:
    """Refuse, in one line, geometry compressed in a way that no reader here decodes.

    Args:
        path: the glTF / GLB file.
        header: its JSON, if read already (else it is read; an unreadable file passes, and
            its reader says what is wrong).

    Raises:
        CADImportError: Draco without DracoPy installed, or meshopt compression without
            uncompressed fallback buffers (the extension is required).
    """
    if header is None:
        try:
            with ExitStack() as files:
                header, _ = _json_and_buffers(path, files)
        except (_Decline, OSError, ValueError, KeyError, TypeError):
            return
    required = set(header.get("extensionsRequired") or ())
    used = set(header.get("extensionsUsed") or ()) | required
    if "KHR_draco_mesh_compression" in used:
        try:
            import DracoPy  # noqa: F401  (trimesh's glTF loader decodes with it)
        except ImportError:
            raise CADImportError(path, "Draco-compressed (KHR_draco_mesh_compression): "
                                       "install twin3d[draco] (DracoPy) to read it") from None
    for name in _UNREADABLE:  # only used: the file has uncompressed fallback buffers
        if name in required:
            raise CADImportError(path, f"compressed with {name}, which twin3d cannot read: "
                                       "decompress it first (glTF-Transform or gltfpack)")


def _read(path: Path, files: ExitStack, merged: bool) -> Scene:
    header, buffers = _json_and_buffers(path, files)
    check_compression(path, header)
    if header.get("extensionsUsed") or header.get("extensionsRequired"):
        raise _Decline
    materials = [_material(m) for m in header.get("materials", [])]
    n_source = len(materials)
    meshes: list[SourceMesh] = []
    index: list[int | None] = []  # the scene's mesh of each glTF mesh (None: no triangles)
    names: set[str] = set()
    counts: dict[str, int] = {}
    for mesh in header.get("meshes", []):
        prims = mesh["primitives"]
        name = mesh.get("name", "GLTF")
        if merged:  # the names trimesh gave them (stages converted before keep their paths)
            name = _unique_name(name, names, counts)
        elif len(prims) != 1 or not name or name in names:
            raise _Decline  # trimesh merges primitives / renames: leave it to trimesh
        names.add(name)
        parts = []
        for p in prims:
            if "extensions" in p or "targets" in p or \
                    not all(k.startswith(_PRIM_ATTRIBUTES) for k in p["attributes"]):
                raise _Decline
            material = p.get("material")
            if material is not None and not 0 <= material < n_source:
                raise _Decline
            if p.get("mode", _TRIANGLES) not in (_TRIANGLES, _STRIP, _FAN):
                continue  # points and lines: no surface
            pos, faces = _primitive(header, buffers, p)
            if len(faces):
                parts.append((pos, faces, material))
        if not parts:
            index.append(None)
            continue
        index.append(len(meshes))
        if len(parts) == 1:
            meshes.append(SourceMesh(name, parts[0][0], parts[0][1], parts[0][2]))
            continue
        used = [m for _, _, m in parts]
        if any(m is None for m in used) and any(m is not None for m in used):
            if len(materials) == n_source:  # the glTF default material, for these primitives
                materials.append(NO_MATERIAL)
            used = [n_source if m is None else m for m in used]
        offsets = np.cumsum([0] + [len(pos) for pos, _, _ in parts])
        sizes = [len(f) for _, f, _ in parts]
        per_face = None if used[0] is None or len(set(used)) == 1 else np.repeat(
            np.asarray(used, dtype=np.int32), sizes)
        meshes.append(SourceMesh(
            name, np.concatenate([pos for pos, _, _ in parts]),
            np.concatenate([f.astype(np.int64) + o for (_, f, _), o in zip(parts, offsets,
                                                                              strict=False)]),
            None if used[0] is None else int(used[int(np.argmax(sizes))]),
            face_materials=per_face))
    return Scene(Meshes(meshes), tuple(materials), _edges(header, index, merged),
                 units="meters")


def _unique_name(name: str, used: set[str], counts: dict[str, int]) -> str:
    """``name``, or ``name_1``, ``name_2`` ... (after a trailing number: the next one) when
    taken, as trimesh's ``unique_name`` names a glTF's meshes."""
    if name and name not in used:
        return name
    stem, start = name or "geometry", counts.get(name, 0)
    head, _, tail = stem.rpartition("_")
    if start == 0 and head and tail.isdigit():
        stem, start = head, int(tail)
    i = start + 1
    while f"{stem}_{i}" in used:
        i += 1
    counts[name] = i
    return f"{stem}_{i}"


def _primitive(header: dict[str, Any], buffers: list[_Buffer],
               p: dict[str, Any]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.integer[Any]]]:
    """A surface primitive's (n, 3) float32 positions and (m, 3) triangles."""
    pos = _accessor(header, buffers, p["attributes"]["POSITION"])
    if pos.shape[1] != 3 or pos.dtype != np.float32:
        raise _Decline
    mode = p.get("mode", _TRIANGLES)
    if "indices" in p:
        idx = _accessor(header, buffers, p["indices"])
        if idx.shape[1] != 1 or idx.dtype.kind != "u":
            raise _Decline
        if mode == _TRIANGLES:
            if len(idx) % 3:
                raise _Decline
            # uint32 indices as int32 without a copy (>= 2**31 turns negative: rejected later)
            return pos, (idx.view(np.int32) if idx.dtype == np.uint32 else
                         idx.astype(_index_type(len(pos)))).reshape(-1, 3)
        corners = idx.reshape(-1).astype(np.int64)
    elif mode == _TRIANGLES:
        if len(pos) % 3:
            raise _Decline
        return pos, np.arange(len(pos), dtype=_index_type(len(pos))).reshape(-1, 3)
    else:
        corners = np.arange(len(pos), dtype=np.int64)
    return pos, _strip_or_fan(corners, mode).astype(_index_type(len(pos)))


def _strip_or_fan(corners: npt.NDArray[np.int64], mode: int) -> npt.NDArray[np.int64]:
    """(k - 2, 3) triangles of a strip or fan of k corners, wound as the glTF spec says
    (strip: ``p_i, p_{i+1+i%2}, p_{i+2-i%2}``; fan: ``p_{i+1}, p_{i+2}, p_0``)."""
    k = len(corners) - 2
    if k <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    i = np.arange(k)
    if mode == _STRIP:
        odd = i % 2
        return np.stack([corners[i], corners[i + 1 + odd], corners[i + 2 - odd]], axis=1)
    return np.stack([corners[i + 1], corners[i + 2], np.full(k, corners[0])], axis=1)


def _edges(header: dict[str, Any], index: list[int | None], merged: bool) -> tuple[Edge, ...]:
    """The node hierarchy as edges, in the order trimesh's loader walks it; ``index``: the
    scene's mesh of each glTF mesh. ``merged``: duplicate node names are made unique as
    trimesh makes them."""
    nodes = header.get("nodes", [])
    names = [n.get("name", str(i)) for i, n in enumerate(nodes)]
    if merged:  # unique as trimesh makes them, in the nodes' order
        used: set[str] = set()
        counts: dict[str, int] = {}
        for i, name in enumerate(names):
            names[i] = _unique_name(str(name), used, counts)
            used.add(names[i])
        if ROOT in used:
            names[names.index(ROOT)] = _unique_name(ROOT, used, {})
    elif len(set(names)) != len(names) or ROOT in names or not all(names):
        raise _Decline
    scene_index = header.get("scene", 0)
    roots = header["scenes"][scene_index].get("nodes", []) if "scenes" in header else []
    edges: list[Edge] = []
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
        mesh = node.get("mesh")
        if mesh is not None and not 0 <= mesh < len(index):
            raise _Decline
        edges.append(Edge(ROOT if parent is None else names[parent], names[b],
                          _node_matrix(node), None if mesh is None else index[mesh]))
    return tuple(edges)


def _json_and_buffers(path: Path, files: ExitStack) -> tuple[dict[str, Any], list[_Buffer]]:
    """The glTF JSON and where its buffers lie, each file opened once; no buffer is read."""
    opened: dict[Path, BinaryIO] = {}

    def open_once(file: Path) -> BinaryIO:
        if file not in opened:
            opened[file] = files.enter_context(file.open("rb"))
        return opened[file]

    bin_chunk = None
    if path.suffix.lower() == ".glb":
        f = open_once(path)
        size = os.fstat(f.fileno()).st_size
        head = f.read(20)
        if len(head) < 20 or head[:4] != b"glTF" or int.from_bytes(head[4:8], "little") != 2:
            raise _Decline
        n = int.from_bytes(head[12:16], "little")
        if head[16:20] != b"JSON" or 20 + n > size:
            raise _Decline
        header = json.loads(f.read(n))
        rest = 20 + n
        chunk = f.read(8)
        if len(chunk) == 8 and chunk[4:8] == b"BIN\x00":
            bin_chunk = _Buffer(f, rest + 8, min(int.from_bytes(chunk[:4], "little"),
                                                 size - rest - 8))
    else:
        header = json.loads(path.read_bytes())
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
        if uri.startswith("data:") and ";base64," in uri[:200]:  # embedded: into a temp file
            f = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (the stack closes it)
            f.write(base64.b64decode(uri.split(",", 1)[1], validate=True))
            buffers.append(_Buffer(f, 0, f.tell()))
            continue
        if ":" in uri or "%" in uri or uri.startswith("/"):  # other URIs, escapes, absolute
            raise _Decline
        file = path.parent / uri
        if not file.is_file():
            raise _Decline
        f = open_once(file)
        buffers.append(_Buffer(f, 0, os.fstat(f.fileno()).st_size))
    return header, buffers


def _accessor(header: dict[str, Any], buffers: list[_Buffer], index: int) -> npt.NDArray[Any]:
    """(count, width) array of accessor ``index``, read from its buffer's file (its bytes only)."""
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
    buf.file.seek(buf.offset + offset)
    if stride == row:
        return np.fromfile(buf.file, dtype=dtype, count=count * width).reshape(count, width)
    raw = np.fromfile(buf.file, dtype=np.uint8, count=span)  # interleaved: pick the rows out
    return np.ndarray((count, width), dtype=dtype, buffer=raw,
                      strides=(stride, dtype.itemsize)).copy()


def _material(mat: dict[str, Any]) -> Material:
    """A factor-only material; the base colour in 8 bits, as trimesh keeps it."""
    pbr = dict(mat.get("pbrMetallicRoughness", {}))
    if "extensions" in mat or any(k.endswith("Texture") for k in (*mat, *pbr)):
        raise _Decline
    bc = pbr.get("baseColorFactor")
    color = DEFAULT_PBR_COLOR
    if bc is not None:
        c = np.clip(np.asarray(bc, dtype=np.float64) * 255.0, 0.0, 255.0).round()
        color = rgba(c.astype(np.uint8))
    em = mat.get("emissiveFactor")
    e = (0.0, 0.0, 0.0) if em is None else tuple(
        float(x) for x in np.asarray(em, dtype=np.float64).reshape(3))
    return Material(
        str(mat.get("name") or "Material"), color,
        float(pbr.get("metallicFactor") or 0.0),
        0.5 if pbr.get("roughnessFactor") is None else float(pbr["roughnessFactor"]),
        (e[0], e[1], e[2]))


def _index_type(n_points: int) -> type[np.signedinteger[Any]]:
    """int32 for face indices below 2**31 points (half int64's memory), else int64."""
    return np.int32 if n_points < 2**31 else np.int64


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
