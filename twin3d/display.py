"""Display surfaces: a part's triangulation made fine enough to carry a field, with a vertex
at every sensor.

CAD exports triangulate flat faces with as few triangles as they can: long thin triangles
that span a whole face. A field drawn on them is interpolated linearly across 250 mm from
corners that may sit on other faces (streaks), and a sensor tied to a mesh vertex may be
11.6 mm away on another face. A display surface fixes both:

* every edge longer than ``max_edge`` is bisected (``trimesh.remesh.subdivide_to_size``: one
  shared midpoint per edge, so a closed surface stays closed), so the field is carried at
  that resolution everywhere; the surface keeps its shape exactly (the new points lie on the
  old triangles);
* each sensor gets a vertex of its own at its position, inserted into the triangle (or on the
  edge) it sits on, with the neighbouring flat triangles re-cut locally (Delaunay edge flips
  between coplanar triangles) so no sliver is left around it. The value of a field at that
  vertex is the value at the sensor, in the model, on screen and in USD alike.

The first ``n_source`` points of a display surface are the input points, in order (new points
come after), so a sensor given by vertex index keeps its index.

Pure geometry (numpy, trimesh); :mod:`twin3d.usd.surface` keeps display surfaces in a stage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin3d.errors import FieldError

__all__ = ["DISPLAY_DIVISIONS", "DisplaySurface", "interpolate", "locate", "refine_surface",
           "surface_digest"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The default ``max_edge`` of a display surface is its mesh's bounding-box diagonal / this.
DISPLAY_DIVISIONS = 20
#: Bump when the refinement changes, so surfaces kept in stages are made again.
DISPLAY_VERSION = "display-1"
_EPS = 1e-6  # barycentric tolerance: a site this close to an edge or a corner is on it
#             (float32 CAD points put a site given at a vertex some 1e-8 away from it)
_FLAT = 1e-9  # 1 - cos of the largest angle between triangles treated as one plane


@dataclass(frozen=True, eq=False)
class DisplaySurface:
    """A surface refined for display.

    Attributes:
        points: (n, 3) float64, the same units and frame as the input points.
        faces: (m, 3) int64 triangles, wound as the input ones.
        n_source: the first ``n_source`` points are the input points, in order.
        sites: (k,) int64 the vertex at each site (sensor) given, in order.
    """

    points: FloatArray
    faces: IntArray
    n_source: int
    sites: IntArray


def surface_digest(points: npt.ArrayLike, faces: npt.ArrayLike, sites: npt.ArrayLike,
                   max_edge: float | None = None) -> str:
    """A hex digest of everything a display surface depends on (to know when to remake it)."""
    h = hashlib.sha256(f"{DISPLAY_VERSION}|{max_edge!r}".encode())
    for a, dtype in ((points, np.float64), (faces, np.int64), (sites, np.float64)):
        h.update(np.ascontiguousarray(a, dtype=dtype).tobytes())
        h.update(b"|")
    return h.hexdigest()[:32]


def refine_surface(points: npt.ArrayLike, faces: npt.ArrayLike, *, sites: npt.ArrayLike = (),
                   max_edge: float | None = None,
                   divisions: int = DISPLAY_DIVISIONS) -> DisplaySurface:
    """Refine a triangle surface for display and give each site a vertex.

    Args:
        points: (n, 3) float vertices.
        faces: (m, 3) int triangles.
        sites: (k, 3) float points on (or within a hair of) the surface, e.g. sensors; each
            is moved onto the surface (its nearest point) and becomes a vertex.
        max_edge: the longest edge wanted, same units as ``points``; default: the
            bounding-box diagonal / ``divisions``.
        divisions: see ``max_edge``.

    Returns:
        The display surface; ``sites[i]`` is the vertex of site ``i``.

    Raises:
        FieldError: empty or malformed arrays, or a ``max_edge`` that is not positive.

    Examples:
        >>> import trimesh
        >>> box = trimesh.creation.box((1.0, 1.0, 1.0))
        >>> s = refine_surface(box.vertices, box.faces, sites=[[0.1, 0.2, 0.5]], max_edge=0.3)
        >>> s.n_source, bool(abs(s.points[s.sites[0]] - [0.1, 0.2, 0.5]).max() < 1e-12)
        (8, True)
    """
    import trimesh

    pts = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    where = np.asarray(sites, dtype=np.float64).reshape(-1, 3)
    if pts.ndim != 2 or pts.shape[1] != 3 or not len(pts) or tri.ndim != 2 \
            or tri.shape[1] != 3 or not len(tri):
        raise FieldError("a display surface needs (n, 3) points and (m, 3) triangles, m > 0")
    if max_edge is None:
        max_edge = float(np.linalg.norm(np.ptp(pts, axis=0))) / max(int(divisions), 1)
    if not max_edge > 0.0:
        raise FieldError(f"max_edge must be > 0, got {max_edge}")
    longest = float(trimesh.Trimesh(pts, tri, process=False).edges_unique_length.max())
    rounds = max(int(np.ceil(np.log2(max(longest / max_edge, 1.0)))), 0) + 1
    fine_pts, fine_tri = trimesh.remesh.subdivide_to_size(  # type: ignore[no-untyped-call]
        pts, tri, max_edge, max_iter=rounds)
    fine_pts = np.asarray(fine_pts, dtype=np.float64)
    fine_tri = np.asarray(fine_tri, dtype=np.int64)
    first, _, _ = locate(fine_pts, fine_tri, where)
    mesh = _Insertion(fine_pts, fine_tri)
    vertex = np.array([mesh.insert(p, int(t)) for p, t in zip(where, first, strict=True)], dtype=np.int64)
    return DisplaySurface(mesh.points(), mesh.faces(), len(pts), vertex)


def locate(points: npt.ArrayLike, faces: npt.ArrayLike, query: npt.ArrayLike
           ) -> tuple[IntArray, FloatArray, FloatArray]:
    """The triangle each query point sits on, its barycentric coordinates there, its distance.

    Args:
        points: (n, 3) float vertices.
        faces: (m, 3) int triangles.
        query: (q, 3) float points.

    Returns:
        (q,) int64 triangle indices, (q, 3) float64 barycentric coordinates of the nearest
        surface point in that triangle (summing to 1), (q,) float64 distances to it.
    """
    import trimesh

    pts = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    q = np.asarray(query, dtype=np.float64).reshape(-1, 3)
    if not len(q):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros(0)
    surface = trimesh.Trimesh(pts, tri, process=False)
    closest, dist, which = trimesh.proximity.closest_point(surface, q)  # type: ignore[no-untyped-call]
    which = np.asarray(which, dtype=np.int64)
    bary = trimesh.triangles.points_to_barycentric(  # type: ignore[no-untyped-call]
        pts[tri[which]], closest)
    bary = np.clip(np.asarray(bary, dtype=np.float64), 0.0, None)
    bary /= bary.sum(axis=1, keepdims=True)
    return which, bary, np.asarray(dist, dtype=np.float64)


def interpolate(values: npt.ArrayLike, faces: npt.ArrayLike, triangles: npt.ArrayLike,
                barycentric: npt.ArrayLike) -> FloatArray:
    """A per-vertex field at points given by triangle and barycentric coordinates.

    Args:
        values: (n,) float per-vertex values.
        faces: (m, 3) int triangles.
        triangles: (q,) int the triangle of each point.
        barycentric: (q, 3) float its barycentric coordinates.

    Returns:
        (q,) float64, linear interpolation inside each triangle (as renderers draw it).
    """
    v = np.asarray(values, dtype=np.float64)
    corners = np.asarray(faces, dtype=np.int64)[np.asarray(triangles, dtype=np.int64)]
    out: FloatArray = np.einsum("qk,qk->q", v[corners], np.asarray(barycentric, dtype=np.float64))
    return out


class _Insertion:
    """A triangle mesh that vertices are inserted into, one at a time (Lawson's algorithm
    restricted to flat neighbourhoods: edges between triangles that are not coplanar are
    never flipped, so the surface keeps its shape)."""

    def __init__(self, points: FloatArray, faces: IntArray) -> None:
        self._pts = [points]
        self._n = len(points)
        self._faces = faces.copy()
        self._m = len(faces)
        self._touched: set[int] = set()  # faces changed or made by insertions so far

    def points(self) -> FloatArray:
        if len(self._pts) > 1:
            self._pts = [np.concatenate(self._pts)]
        return self._pts[0]

    def faces(self) -> IntArray:
        return self._faces[: self._m].copy()

    def _add_point(self, p: FloatArray) -> int:
        self._pts.append(p.reshape(1, 3))
        self._n += 1
        return self._n - 1

    def _set_face(self, i: int | None, face: Sequence[int]) -> int:
        if i is None:
            if self._m == len(self._faces):
                self._faces = np.concatenate([self._faces, np.zeros_like(self._faces)])
            i = self._m
            self._m += 1
        self._faces[i] = face
        self._touched.add(i)
        return i

    def _faces_with(self, a: int, b: int) -> IntArray:
        f = self._faces[: self._m]
        return np.flatnonzero((f == a).any(axis=1) & (f == b).any(axis=1))

    def insert(self, p: FloatArray, near: int) -> int:
        """Insert a vertex at the surface point nearest ``p``; return its index.

        Args:
            p: (3,) the point.
            near: the triangle nearest ``p`` before any insertion (only it and the
                triangles insertions made since can be nearest now).
        """
        pts = self.points()
        candidates = np.array(sorted(self._touched | {near}), dtype=np.int64)
        which, bary, _ = locate(pts, self._faces[candidates], p)
        t, lam = int(candidates[which[0]]), bary[0]
        face = self._faces[t].copy()
        if lam.max() >= 1.0 - _EPS:  # on a corner already
            return int(face[np.argmax(lam)])
        c = lam @ pts[face]
        if lam.min() <= _EPS:  # on an edge: split the triangles on both sides of it
            k = int(np.argmin(lam))
            a, b = int(face[(k + 1) % 3]), int(face[(k + 2) % 3])
            v = self._add_point(c)
            outer = []
            for f in self._faces_with(a, b).tolist():
                tri = self._faces[f].tolist()
                r = tri.index(a)
                if tri[(r + 1) % 3] != b:  # the neighbour runs b -> a
                    r = tri.index(b)
                x, y, z = tri[r], tri[(r + 1) % 3], tri[(r + 2) % 3]
                self._set_face(f, (x, v, z))
                self._set_face(None, (v, y, z))
                outer += [(f, z, x), (f, y, z)]
            self._legalize(v, outer)
            return v
        v = self._add_point(c)
        x, y, z = (int(i) for i in face)
        self._set_face(t, (x, y, v))
        self._set_face(None, (y, z, v))
        self._set_face(None, (z, x, v))
        self._legalize(v, [(t, x, y), (t, y, z), (t, z, x)])
        return v

    def _legalize(self, v: int, edges: list[tuple[int, int, int]]) -> None:
        """Flip the edges facing ``v`` that are not locally Delaunay, within flat regions."""
        pts = self.points()
        stack = [(a, b) for _, a, b in edges]
        for _ in range(64 * len(stack) + 64):  # each flip removes a bad edge; bounded anyway
            if not stack:
                return
            a, b = stack.pop()
            pair = self._faces_with(a, b).tolist()
            mine = [f for f in pair if v in self._faces[f]]
            other = [f for f in pair if v not in self._faces[f]]
            if len(pair) != 2 or len(mine) != 1 or len(other) != 1:
                continue  # a boundary or non-manifold edge: leave it
            q = next(int(i) for i in self._faces[other[0]] if i not in (a, b))
            tri = self._faces[mine[0]].tolist()
            r = tri.index(v)
            a1, b1 = tri[(r + 1) % 3], tri[(r + 2) % 3]  # the face runs v -> a1 -> b1
            if not _flat(pts[[v, a1, b1]], pts[[b1, a1, q]]) or not _opposite_angles_exceed_pi(
                    pts[v], pts[q], pts[a1], pts[b1]):
                continue
            self._set_face(mine[0], (v, a1, q))
            self._set_face(other[0], (v, q, b1))
            stack += [(a1, q), (q, b1)]
            pts = self.points()


def _normal(tri: FloatArray) -> FloatArray:
    n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    return np.asarray(n / (np.linalg.norm(n) or 1.0), dtype=np.float64)


def _flat(t1: FloatArray, t2: FloatArray) -> bool:
    """Whether two consistently wound triangles sharing an edge lie in one plane."""
    return float(_normal(t1) @ _normal(t2)) >= 1.0 - _FLAT


def _opposite_angles_exceed_pi(v: FloatArray, q: FloatArray, a: FloatArray,
                               b: FloatArray) -> bool:
    """Whether the angles at ``v`` and ``q`` facing edge ``ab`` sum to more than π (so the
    edge is not Delaunay and ``vq`` is the better diagonal)."""
    def angle(o: FloatArray) -> float:
        u, w = a - o, b - o
        return float(np.arctan2(np.linalg.norm(np.cross(u, w)), u @ w))

    return angle(v) + angle(q) > np.pi + 1e-12
