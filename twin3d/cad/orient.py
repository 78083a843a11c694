"""Face orientation: keep a consistently wound source as it is; orient the rest by its solid.

A mesh is consistently wound when no directed edge is used twice: then every face is kept as
the source wound it (one sort of the 3 m directed edges says so). Otherwise the faces are split
into *patches*, faces joined through manifold edges (edges of exactly two faces): a seam, a
non-manifold edge (three or more faces, as where two solids touch) or a border ends a patch,
so that no decision crosses it. Each patch has two consistent windings, found at once as the
connected components of its double cover (each face kept or flipped, linked to its neighbours'
matching states). A patch that the source already winds one way is kept so; for a patch that
it winds both ways:

* a closed patch (every edge shared by exactly two of its faces) bounds a solid: its faces
  point out of the material: positive signed volume, negative for the wall of a cavity
  (a shell inside an odd number of other closed shells, by their winding numbers);
* an open patch keeps the winding of most of its source area.

Propagating from an arbitrary seed face, as ``trimesh.repair.fix_winding`` does, instead
crosses non-manifold edges and turned a quarter of a consistently wound turbine inside out
(issue 14).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["orient_faces"]

#: faces per step of the winding-number sums
_CHUNK = 1 << 16


def orient_faces(points: npt.NDArray[np.floating[Any]],
                 faces: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.integer[Any]]:
    """``faces`` wound consistently, each patch kept as the source winds it where it can be.

    Args:
        points: (n, 3) float vertices.
        faces: (m, 3) int triangles, no two corners of a face the same point.

    Returns:
        ``faces`` itself when no face needs flipping, else a (m, 3) copy with the flipped
        faces' last two corners swapped.
    """
    m, n = len(faces), len(points)
    key = np.empty(3 * m, dtype=np.int64)
    for i, (a, b) in enumerate(((0, 1), (1, 2), (2, 0))):
        k = key[i * m:(i + 1) * m]
        np.multiply(faces[:, a], n, out=k, dtype=np.int64)
        k += faces[:, b]
    key.sort()
    if not np.any(key[1:] == key[:-1]):
        return faces  # no directed edge used twice: consistent
    del key
    flip = _flips(np.asarray(points, dtype=np.float64), np.asarray(faces, dtype=np.int64))
    if not flip.any():
        return faces
    out = faces.copy()
    out[flip, 1], out[flip, 2] = faces[flip, 2], faces[flip, 1]
    return out


def _flips(points: npt.NDArray[np.float64], faces: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """(m,) which faces to flip (module docstring)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m, n = len(faces), len(points)
    a = faces.reshape(-1)  # half-edge h = 3 f + k runs from corner k to corner k + 1
    b = faces[:, [1, 2, 0]].reshape(-1)
    undirected = np.minimum(a, b) * n + np.maximum(a, b)
    forward = a < b
    order = np.argsort(undirected, kind="stable")
    sorted_keys = undirected[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    border = np.zeros(m, dtype=bool)  # a face with an edge that is not shared by exactly two
    border[order[np.repeat(sizes != 2, sizes)] // 3] = True
    pair = starts[sizes == 2]
    h1, h2 = order[pair], order[pair + 1]
    f1, f2 = h1 // 3, h2 // 3
    clash = forward[h1] == forward[h2]  # both faces run the edge the same way
    # the double cover: node f is face f as the source winds it, node m + f face f flipped
    rows = np.concatenate([f1, f1 + m])
    cols = np.concatenate([np.where(clash, f2 + m, f2), np.where(clash, f2, f2 + m)])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(2 * m, 2 * m))
    _, label = connected_components(graph, directed=False)
    kept, flipped = label[:m], label[m:]
    patch = np.minimum(kept, flipped)  # each patch: the lower of its two components
    flip = kept != patch  # one consistent winding of each patch (none for a Möbius strip)
    n_patch = int(patch.max()) + 1
    n_flip = np.bincount(patch, weights=flip, minlength=n_patch)
    n_faces = np.bincount(patch, minlength=n_patch)
    mixed = (n_flip > 0) & (n_flip < n_faces)  # the source winds the patch both ways
    # patches the source winds one way: as the source does
    flip &= mixed[patch]
    if not mixed.any():
        return np.asarray(flip, dtype=bool)
    p0, p1, p2 = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    cross = np.cross(p1 - p0, p2 - p0)
    area = np.linalg.norm(cross, axis=1)
    closed = np.bincount(patch, weights=border, minlength=n_patch) == 0
    # open patches: the winding of most of the source's area
    flipped_area = np.bincount(patch, weights=area * flip, minlength=n_patch)
    total_area = np.bincount(patch, weights=area, minlength=n_patch)
    swap = mixed & ~closed & (flipped_area > total_area / 2)
    # closed patches: out of the solid
    sign = np.where(flip, -1.0, 1.0)
    volume = np.bincount(patch, weights=sign * np.einsum("ij,ij->i", p0, cross),
                         minlength=n_patch)  # 6 x the signed volume
    for p in np.flatnonzero(mixed & closed):
        inside = _depth(int(p), patch, closed, flip, points, faces, area) % 2 == 1
        swap[p] = (volume[p] > 0) == inside  # a cavity's wall points into the cavity
    return np.asarray(flip ^ swap[patch], dtype=bool)


def _depth(p: int, patch: npt.NDArray[np.integer[Any]], closed: npt.NDArray[np.bool_],
           flip: npt.NDArray[np.bool_], points: npt.NDArray[np.float64],
           faces: npt.NDArray[np.int64], area: npt.NDArray[np.float64]) -> int:
    """How many other closed patches enclose patch ``p`` (winding number of a point of it)."""
    mine = np.flatnonzero(patch == p)
    others = np.flatnonzero(closed[patch] & (patch != p))
    if len(others) == 0:
        return 0
    f = mine[np.argmax(area[mine])]
    probe = points[faces[f]].mean(axis=0)  # inside its largest face
    omega = np.zeros(int(patch.max()) + 1)
    for i in range(0, len(others), _CHUNK):
        idx = others[i:i + _CHUNK]
        tri = faces[idx]
        tri = np.where(flip[idx, None], tri[:, [0, 2, 1]], tri)  # each patch wound one way
        r = points[tri] - probe  # (k, 3, 3)
        ln = np.linalg.norm(r, axis=2)
        det = np.einsum("ij,ij->i", r[:, 0], np.cross(r[:, 1], r[:, 2]))
        den = (ln[:, 0] * ln[:, 1] * ln[:, 2] + np.einsum("ij,ij->i", r[:, 0], r[:, 1]) * ln[:, 2]
               + np.einsum("ij,ij->i", r[:, 0], r[:, 2]) * ln[:, 1]
               + np.einsum("ij,ij->i", r[:, 1], r[:, 2]) * ln[:, 0])
        omega += np.bincount(patch[idx], weights=2 * np.arctan2(det, den), minlength=len(omega))
    return int(np.count_nonzero(np.abs(omega) > 2 * np.pi))  # |winding number| > 1/2
