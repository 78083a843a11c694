"""glTF and GLB without trimesh: the JSON, then each accessor's bytes read into numpy.

For triangle primitives (one per mesh), factor-only materials (no textures), no extensions,
sparse accessors or morph targets, no cameras, and names that need no de-duplication;
anything else is left to trimesh. Accessors are read from the file through one handle, only
their bytes: the file's buffer is never held whole (``benchmarks/RESULTS.md``, "Conversion").
Positions stay float32.
"""

from __future__ import annotations

import json
import os
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt

from twin3d.cad.scene import (
    DEFAULT_PBR_COLOR,
    ROOT,
    Edge,
    Material,
    Meshes,
    Scene,
    SourceMesh,
    rgba,
)

__all__ = ["read_gltf"]


class _Decline(Exception):
    """The file uses something this reader leaves to trimesh."""


_COMPONENT = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_PRIM_ATTRIBUTES = ("POSITION", "NORMAL", "TANGENT", "TEXCOORD_")


class _Buffer(NamedTuple):
    """A glTF buffer: ``length`` bytes of the open ``file`` from ``offset``."""

    file: BinaryIO
    offset: int
    length: int


def read_gltf(path: Path) -> Scene | None:
    """A simple glTF / GLB as a :class:`Scene`; None: leave it to trimesh.

    Node transforms compose ``matrix`` and translation, rotation and scale as trimesh does,
    and the hierarchy is walked in trimesh's order, so both give the same part.
    """
    try:
        with ExitStack() as files:  # one handle per file, closed when the reading is done
            return _read(path, files)
    except (_Decline, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


def _read(path: Path, files: ExitStack) -> Scene:
    header, buffers = _json_and_buffers(path, files)
    if header.get("extensionsUsed") or header.get("extensionsRequired"):
        raise _Decline
    materials = tuple(_material(m) for m in header.get("materials", []))
    meshes: list[SourceMesh] = []
    names: set[str] = set()
    for mesh in header.get("meshes", []):
        prims = mesh["primitives"]
        name = mesh.get("name", "GLTF")
        if len(prims) != 1 or not name or name in names:
            raise _Decline  # trimesh merges primitives / renames: leave it to trimesh
        names.add(name)
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
        material = p.get("material")
        if material is not None and not 0 <= material < len(materials):
            raise _Decline
        meshes.append(SourceMesh(name, pos, faces, material))  # float32 positions
    return Scene(Meshes(meshes), materials, _edges(header, len(meshes)), units="meters")


def _edges(header: dict[str, Any], n_meshes: int) -> tuple[Edge, ...]:
    """The node hierarchy as edges, in the order trimesh's loader walks it."""
    nodes = header.get("nodes", [])
    names = [n.get("name", str(i)) for i, n in enumerate(nodes)]
    if len(set(names)) != len(names) or ROOT in names or not all(names):
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
        if mesh is not None and not 0 <= mesh < n_meshes:
            raise _Decline
        edges.append(Edge(ROOT if parent is None else names[parent], names[b],
                          _node_matrix(node), mesh))
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
        if ":" in uri or "%" in uri or uri.startswith("/"):  # data: URIs, escapes, absolute
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
