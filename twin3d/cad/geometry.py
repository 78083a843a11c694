"""Mesh arrays made ready for USD: welded, wound, turned to the stage's axis, with normals.

Numpy only, except where a mesh needs more than a check: inconsistently wound faces are
oriented by their solid (:mod:`twin3d.cad.orient`, scipy) and trimesh finds smooth patches
across hard edges (imported only then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.cad.memory import release_free_memory
from twin3d.cad.orient import orient_faces
from twin3d.cad.scene import Meshes, MeshPart, SourceMesh
from twin3d.cad.weld import packed_argsort, weld
from twin3d.errors import CADImportError

__all__ = [
    "CREASE_ANGLE_DEG",
    "conversion_matrix",
    "follow_corners",
    "take_welded",
    "vertex_or_corner_normals",
]

#: corners whose face normal is further than this from the smooth normal split (hard edge)
CREASE_ANGLE_DEG = 30.0
#: rows per step of the chunked array passes (their temporaries stay a few MiB)
_CHUNK = 1 << 16


def take_welded(meshes: Meshes[SourceMesh], index: int, *, path: Path, name: str,
                conv: npt.NDArray[np.float64], material: int,
                face_materials: npt.NDArray[np.int32] | None = None) -> MeshPart | None:
    """Take source mesh ``index`` out of ``meshes`` and make it a :class:`MeshPart`.

    The mesh is welded (unless its reader did), stripped of faces that collapse, wound
    consistently, turned to the stage's axis, its faces sorted by their lowest point, and
    given normals. Taking it lets its arrays go as soon as they are welded: the source's
    vertices are never alive beside the rest of the work. Per-vertex texture coordinates
    are kept per face corner (the weld merges by position only).

    Args:
        meshes: the scene's meshes; mesh ``index`` is taken.
        index: which mesh.
        path: the source file (for errors).
        name: the mesh's prim name.
        conv: (4, 4) float64 source-to-stage matrix ``C = s R`` (unit scale times axis
            rotation); the points become ``C p``.
        material: the :class:`MeshPart`'s material index.
        face_materials: (m,) the :class:`MeshPart`'s material index of each source face, for
            a mesh whose faces have different materials; they follow the faces.

    Returns:
        The mesh, or None when no triangle is left.

    Raises:
        CADImportError: face indices outside the vertex list, or points that are not finite.
    """
    source = meshes.take(index)
    vertices = np.asarray(source.vertices)  # float32 sources stay float32 through the weld
    raw_faces, welded, uv = source.faces, source.welded, source.uvs
    colors = source.vertex_colors if source.vertex_colors is not None else source.face_colors
    kind = "vertex" if source.vertex_colors is not None else "face"
    del source  # the arrays are ours alone now: freed as soon as they are welded
    if raw_faces is None:  # a triangle soup (binary STL): corner i of face j is row 3 j + i
        if vertices.size == 0 or len(vertices) % 3:
            return None
        faces = None
    else:
        faces = np.asarray(raw_faces)
        if faces.dtype.kind not in "iu":
            faces = faces.astype(np.int64)
        if faces.size == 0 or vertices.size == 0:
            return None
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise CADImportError(path, f"mesh {name!r} has face indices outside its vertex list")
    corner_uv = None if uv is None or faces is None else np.asarray(uv, np.float32)[faces]
    if kind == "vertex" and colors is not None:
        faces = np.arange(len(vertices)).reshape(-1, 3) if faces is None else faces
        # keep colours with their vertices through the weld: weld positions+colours
        points, tri = vertices, faces
        used = np.unique(tri)
        remap = np.full(len(points), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        points, tri, colors = points[used], remap[tri], colors[used]
    elif welded and faces is not None:
        points, tri = vertices, faces
    else:
        points, tri = weld(vertices, faces, overwrite_faces=True)  # ours: taken
    del vertices, faces, raw_faces
    release_free_memory()  # the weld's temporaries: hand them back before the next phase
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points).all(axis=1)).sum())
        raise CADImportError(path, f"mesh {name!r} has {bad} point(s) that are not finite "
                                   "numbers (NaN or infinity): the file is corrupt")
    # drop faces that collapsed to a line or a point in the weld
    ok = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    if not ok.all():
        points, tri, colors, face_materials, corner_uv = _keep_faces(
            ok, points, tri, colors, kind, face_materials, corner_uv)
    del ok
    keep = _without_coincident_faces(tri)
    if keep is not None:
        points, tri, colors, face_materials, corner_uv = _keep_faces(
            keep, points, tri, colors, kind, face_materials, corner_uv)
    del keep
    if len(tri) == 0:
        return None
    wound = orient_faces(points, tri)
    if corner_uv is not None and wound is not tri:  # flipped faces: their corners move
        corner_uv = follow_corners(tri, wound, corner_uv)
    tri = wound
    del wound
    if not np.array_equal(conv[:3, :3], np.eye(3)):  # in float64, a chunk at a time
        rotated = np.empty(points.shape, dtype=np.float32)
        for i in range(0, len(points), _CHUNK):
            rotated[i:i + _CHUNK] = points[i:i + _CHUNK].astype(np.float64) @ conv[:3, :3].T
        points = rotated
        del rotated
    lowest = np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2])  # 5x tri.min(axis=1)
    if np.any(lowest[1:] < lowest[:-1]):
        order = packed_argsort(lowest.astype(np.uint64))  # 7x faster .usdc writes measured
        tri = np.ascontiguousarray(tri)
        for c in range(3):  # column by column: one column's copy at a time
            tri[:, c] = tri[order, c]
        if kind == "face" and colors is not None:
            colors = colors[order]
        if face_materials is not None:
            face_materials = face_materials[order]
        if corner_uv is not None:
            corner_uv = corner_uv[order]
        del order
    del lowest
    release_free_memory()
    normals, interp = vertex_or_corner_normals(points, tri)
    mesh = MeshPart(name, points.astype(np.float32, copy=False),
                    tri.astype(np.int32, copy=False), normals, interp, material, colors,
                    None if corner_uv is None else corner_uv.reshape(-1, 2), face_materials)
    del points, tri, corner_uv
    # the normals' temporaries, and float64 points (OBJ): resident until handed back, they
    # would sit under the writer's peak (15 MiB for 655k points, as glibc's heap fell)
    release_free_memory()
    return mesh


def follow_corners(before: npt.NDArray[np.integer[Any]], after: npt.NDArray[np.integer[Any]],
                   per_corner: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``per_corner`` (m, 3, ...) reordered as each face's corners were, ``before`` -> ``after``
    (the same faces, some flipped or rotated; corners of a face are distinct points)."""
    rows = np.arange(len(before))[:, None]
    where = np.stack([np.argmax(before == after[:, k:k + 1], axis=1) for k in range(3)], axis=1)
    moved: npt.NDArray[Any] = per_corner[rows, where]
    return moved


def vertex_or_corner_normals(
    points: npt.NDArray[np.floating[Any]], faces: npt.NDArray[np.integer[Any]],
    crease_deg: float = CREASE_ANGLE_DEG,
) -> tuple[npt.NDArray[np.float32], str]:
    """Area-weighted normals from the winding: per vertex, or per corner at hard edges.

    Smooth meshes get ``vertex`` normals (one per point). Where faces meet at more than
    ``crease_deg``, faces are grouped into smooth patches (connected through edges below the
    crease angle) and each corner gets its patch's normal: ``faceVarying``. Points are never
    split.

    Args:
        points: (n, 3) float vertices.
        faces: (m, 3) int triangles.
        crease_deg: dihedral angle above which an edge is hard.

    Returns:
        ((n, 3) or (3 m, 3) float32 unit normals, ``"vertex"`` or ``"faceVarying"``).
    """
    pts = np.ascontiguousarray(points.T, dtype=np.float32)  # (3, n): column gathers are fast
    n, m = len(points), len(faces)
    vn32 = np.zeros((3, n), dtype=np.float32)
    for i in range(0, m, _CHUNK):  # in chunks of faces: temporaries stay a few MiB
        f = np.ascontiguousarray(faces[i:i + _CHUNK].T)
        c = _face_cross(pts, f)
        corners = f.reshape(-1)  # every corner of the chunk's faces gets its face's normal
        lo, hi = int(corners.min()), int(corners.max()) + 1  # narrow: faces sorted by point
        corners -= lo
        for j in range(3):
            vn32[j, lo:hi] += np.bincount(corners, weights=np.tile(c[j], 3), minlength=hi - lo)
    ln = np.sqrt(np.einsum("ij,ij->j", vn32, vn32))
    ln[ln == 0] = 1.0
    vn32 /= ln
    del ln
    limit = np.float32(np.cos(np.radians(crease_deg / 2)))
    smooth = True
    for i in range(0, m, _CHUNK):  # corner k of every face: its face normal vs the smooth one
        f = np.ascontiguousarray(faces[i:i + _CHUNK].T)
        c = _face_cross(pts, f)  # computed again: cheaper than holding (3, m) normals
        lf = np.sqrt((c * c).sum(axis=0))
        live = lf > 0
        fnu = c / np.where(live, lf, 1.0)
        for k in range(3):
            s = np.take(vn32, f[k], axis=1)
            if np.any(((fnu * s).sum(axis=0) < limit) & live):
                smooth = False
                break
        if not smooth:
            break
    if smooth:
        return np.ascontiguousarray(vn32.T), "vertex"
    fn = np.concatenate([_face_cross(pts, np.ascontiguousarray(faces[i:i + _CHUNK].T))
                         for i in range(0, m, _CHUNK)], axis=1)
    del pts
    fn = fn.T.astype(np.float64)
    flat = faces.ravel()
    import trimesh

    mesh = trimesh.Trimesh(points, faces, process=False, validate=False)
    adj = mesh.face_adjacency
    smooth = adj[mesh.face_adjacency_angles <= np.radians(crease_deg)]
    labels = trimesh.graph.connected_component_labels(  # type: ignore[no-untyped-call]
        smooth, node_count=len(faces))
    key = flat.astype(np.int64) * (int(labels.max()) + 1) + np.repeat(labels, 3)
    groups, inverse = np.unique(key, return_inverse=True)
    if len(groups) == n:
        return np.ascontiguousarray(vn32.T), "vertex"
    gn = np.stack([np.bincount(inverse, weights=np.repeat(fn[:, k], 3), minlength=len(groups))
                   for k in range(3)], axis=1)
    return _unit(gn.astype(np.float64))[inverse].astype(np.float32), "faceVarying"


def _face_cross(pts: npt.NDArray[np.float32],
                f: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float32]:
    """(3, k) cross products (2 * area * unit normal) of faces ``f`` (3, k) over ``pts`` (3, n)."""
    a = np.take(pts, f[0], axis=1)  # np.take: ~4x faster than pts[:, f[0]]
    e1, e2 = np.take(pts, f[1], axis=1) - a, np.take(pts, f[2], axis=1) - a
    del a
    c = np.empty((3, f.shape[1]), dtype=np.float32)
    np.subtract(e1[1] * e2[2], e1[2] * e2[1], out=c[0])
    np.subtract(e1[2] * e2[0], e1[0] * e2[2], out=c[1])
    np.subtract(e1[0] * e2[1], e1[1] * e2[0], out=c[2])
    return c


def _keep_faces(keep: npt.NDArray[np.bool_], points: npt.NDArray[Any], tri: npt.NDArray[Any],
                colors: npt.NDArray[Any] | None, kind: str, face_materials: npt.NDArray[Any] | None,
                corner_uv: npt.NDArray[Any] | None) -> tuple[Any, Any, Any, Any, Any]:
    """Keep the faces ``keep`` (a mask) with their per-face data (colours when ``kind`` is
    "face", materials, corner UVs), and only the points they use (with their colours when
    ``kind`` is "vertex"); returns ``(points, tri, colors, face_materials, corner_uv)``."""
    tri = tri[keep]
    if kind == "face" and colors is not None:
        colors = colors[keep]
    if face_materials is not None:
        face_materials = face_materials[keep]
    if corner_uv is not None:
        corner_uv = corner_uv[keep]
    used = np.unique(tri)
    if len(used) < len(points):
        remap = np.full(len(points), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        points, tri = points[used], remap[tri]
        if kind == "vertex" and colors is not None:
            colors = colors[used]
    return points, tri, colors, face_materials, corner_uv


def _without_coincident_faces(tri: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.bool_] | None:
    """Which faces to keep when some lie on the same three points; None when none do.

    A triangle written twice keeps one copy; two written with opposite windings are a
    zero-thickness double wall, whose shared edges four faces use (non-manifold, as NVIDIA's
    ManifoldChecker reports): both go. In general a group keeps one face of the winding that
    outnumbers the other, none when they are as many.
    """
    m = len(tri)
    key = tri.min(axis=1).astype(np.int64)
    hi = tri.max(axis=1).astype(np.int64)
    if int(hi.max(initial=0)) < (1 << 21):  # first a sort of packed keys: most meshes have none
        mid = tri.sum(axis=1, dtype=np.int64)
        mid -= key
        mid -= hi
        key <<= 42
        mid <<= 21
        key |= mid
        key |= hi
        del mid, hi
        key.sort()  # in place: a third of the memory and time of np.unique's inverse
        if not np.any(key[1:] == key[:-1]):
            return None
    del key
    t = np.asarray(tri, dtype=np.int64)
    lo, hi = t.min(axis=1), t.max(axis=1)
    mid = t.sum(axis=1) - lo - hi
    if int(hi.max(initial=0)) < (1 << 21):
        key = (lo << 42) | (mid << 21) | hi
    else:  # rows as bytes: slower, for meshes of over two million points
        key = np.ascontiguousarray(np.stack([lo, mid, hi], axis=1)).view(np.dtype((np.void, 24)))
        key = key.reshape(-1)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    if len(counts) == m:
        return None
    # winding: even (+1) when the corner after the lowest is the middle one
    first = np.argmin(t, axis=1)
    after = t[np.arange(m), (first + 1) % 3]
    sign = np.where(after == mid, 1, -1)
    net = np.zeros(len(counts), dtype=np.int64)
    np.add.at(net, inverse, sign)
    keep = counts[inverse] == 1
    shared = np.flatnonzero(~keep)
    wanted = np.sign(net)[inverse[shared]]
    candidates = shared[(wanted != 0) & (sign[shared] == wanted)]
    _, one = np.unique(inverse[candidates], return_index=True)  # one face per group
    keep[candidates[one]] = True
    return np.asarray(keep, dtype=np.bool_)


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    length = np.linalg.norm(v, axis=1, keepdims=True)
    length[length == 0] = 1.0
    return np.asarray(v / length, dtype=np.float64)


def conversion_matrix(scale: float, src_up: str, dst_up: str) -> npt.NDArray[np.float64]:
    """(4, 4) matrix C = scale * R taking source coordinates to stage coordinates."""
    r = np.eye(4)
    if src_up == "Y" and dst_up == "Z":
        r[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # (x, y, z) -> (x, -z, y)
    elif src_up == "Z" and dst_up == "Y":
        r[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # (x, y, z) -> (x, z, -y)
    c = r.copy()
    c[:3, :3] *= scale
    return c
