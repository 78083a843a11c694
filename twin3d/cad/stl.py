"""Binary STL without trimesh: read and welded chunk by chunk, into a one-mesh :class:`Scene`.

A binary STL stores three corners for every triangle, about three times the welded mesh;
reading it whole, as trimesh does, costs that much memory and about 1 s of imports
(``benchmarks/RESULTS.md``, "Conversion"). ASCII and damaged files are left to trimesh.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twin3d.cad.scene import ROOT, Edge, Meshes, Scene, SourceMesh
from twin3d.cad.weld import WeldCollision, weld_chunks

__all__ = ["read_stl"]

_RECORD = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])
#: triangles read per chunk
_CHUNK = 1 << 16


def read_stl(path: Path) -> Scene | None:
    """A binary STL as a one-mesh scene, welded as it is read; None if it is not binary.

    Records are read 65536 at a time and welded chunk by chunk (:func:`weld_chunks`): the
    triangle soup is never held whole. The mesh is marked ``welded``; on a 64-bit hash
    collision the soup is read whole and left to :func:`twin3d.cad.weld.weld` (``faces``
    None). The mesh and its node are named after the file, as trimesh names them.
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
        points, faces = weld_chunks(_corners(path, count), 3 * count)
        mesh = SourceMesh(path.name, points, faces, welded=True)
    except WeldCollision:
        soup = np.concatenate(list(_corners(path, count)))
        mesh = SourceMesh(path.name, soup, None)  # face j: rows 3 j .. 3 j + 2
    return Scene(Meshes([mesh]), edges=(Edge(ROOT, path.name, mesh=0),))


def _corners(path: Path, count: int) -> Iterator[npt.NDArray[np.float32]]:
    """The corners of a binary STL's ``count`` triangles, (3 k, 3) float32, a chunk at a time."""
    with path.open("rb") as f:
        f.seek(84)
        for i in range(0, count, _CHUNK):
            records = np.fromfile(f, dtype=_RECORD, count=min(_CHUNK, count - i))
            yield records["vertices"].reshape(-1, 3)
