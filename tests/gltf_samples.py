"""Small glTF files written for the tests: any primitive mode, one buffer embedded as a data URI."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: a primitive: (n, 3) float32 positions, glTF mode, optional indices
Primitive = tuple[npt.NDArray[np.float32], int, Sequence[int] | None]


def gltf_file(path: Path, positions: npt.NDArray[np.float32], mode: int = 4,
              indices: Sequence[int] | None = None, required: Sequence[str] = (), *,
              more: Sequence[Primitive] = (), one_mesh: bool = False) -> Path:
    """Write a glTF whose primitives are ``(positions, mode, indices)`` and ``more``: each in a
    mesh and node of its own (``mesh0``, ``mesh1`` ...), or all in one mesh (``one_mesh``);
    ``required`` goes into ``extensionsUsed`` and ``extensionsRequired``. Returns ``path``."""
    blob = bytearray()
    accessors: list[dict[str, object]] = []
    views: list[dict[str, object]] = []

    def accessor(data: npt.NDArray[np.generic], kind: str, component: int) -> int:
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": data.nbytes})
        blob.extend(data.tobytes())
        blob.extend(b"\0" * (-len(blob) % 4))
        entry: dict[str, object] = {"bufferView": len(views) - 1, "componentType": component,
                                    "count": len(data), "type": kind}
        if kind == "VEC3":
            finite = data[np.isfinite(data).all(axis=1)] if len(data) else data
            if len(finite):
                entry["min"], entry["max"] = finite.min(0).tolist(), finite.max(0).tolist()
        accessors.append(entry)
        return len(accessors) - 1

    prims = []
    for pos, prim_mode, idx in [(positions, mode, indices), *more]:
        prim: dict[str, object] = {
            "attributes": {"POSITION": accessor(np.asarray(pos, np.float32), "VEC3", 5126)},
            "mode": prim_mode}
        if idx is not None:
            prim["indices"] = accessor(np.asarray(idx, np.uint32), "SCALAR", 5125)
        prims.append(prim)
    meshes = [{"name": "mesh0", "primitives": prims}] if one_mesh else [
        {"name": f"mesh{i}", "primitives": [p]} for i, p in enumerate(prims)]
    header: dict[str, object] = {
        "asset": {"version": "2.0"},
        "buffers": [{"byteLength": len(blob), "uri": "data:application/octet-stream;base64,"
                     + base64.b64encode(bytes(blob)).decode()}],
        "bufferViews": views, "accessors": accessors, "meshes": meshes,
        "nodes": [{"name": f"node{i}", "mesh": i} for i in range(len(meshes))],
        "scenes": [{"nodes": list(range(len(meshes)))}], "scene": 0}
    if required:
        header["extensionsUsed"] = header["extensionsRequired"] = list(required)
    path.write_text(json.dumps(header))
    return path
