"""Where the mesh must be fine: a size field from the part's features, and a refined surface.

A uniform mesh wastes elements in the bulk and starves holes and fillets, and a mesher that
keeps the input triangles keeps a 16-sided hole 16-sided however many elements it is given.
So the volume mesh is made in three steps:

1. :func:`size_field`: a target edge length ``h(x)``, the smallest of the bulk size and, around
   each feature, the feature's size growing by :data:`GRADING` per unit distance. Features:
   curved surfaces and curved sharp edges (size ``2π r /`` :data:`SEGMENTS` for a radius of
   curvature ``r``, estimated from the vertex normals and from circles through three points of
   each sharp edge), sensors and the borders of loaded and fixed regions (:data:`SPOT` of the
   bulk size). The whole field is scaled so the mesh gets about the number of tetrahedra asked
   for (:func:`fit_scale`), and no feature is resolved finer than :data:`FINEST` of the bulk.
2. :func:`refine_surface`: on curved patches and curved sharp edges, surface edges longer than
   ``h`` are split, each new point placed on the curve through the edge's ends that matches
   their normals (or, on a sharp edge, the tangents of that edge's curve): exactly on the
   circle for circular holes and fillets, so refining recovers the true shape from a coarse
   triangulation. Sensors become surface vertices.
3. TetGen fills the refined surface with quality tetrahedra, grading them from the surface
   spacing, the bulk capped at the bulk size (:func:`twin3d.fields.mesh.tetrahedralize`).

Flat faces are left to TetGen, which merges coplanar triangles and refines them itself, so a
sensor or a region border on a flat face shrinks the field but not (yet) TetGen's elements
there: TetGen's background sizing mesh, the way to pass it a field, crashed on a plate with a
hole through the ``tetgen`` binding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from twin3d.fields.mesh import smooth_patches

__all__ = ["FINEST", "GRADING", "SEGMENTS", "SizeField", "curvature_features", "expected_tets",
           "fit_scale", "refine_surface", "size_field"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Elements around a full circle of a curved feature at the nominal density.
SEGMENTS = 64
#: Growth of the element size per unit distance from a feature.
GRADING = 0.35
#: Finest size relative to the bulk size (smaller features are not resolved further).
FINEST = 1 / 40
#: Sensors and region borders: this share of the bulk size.
SPOT = 1 / 4
#: Normals differing by more than this (degrees) make a sharp edge.
SHARP_DEG = 30.0
#: Sharp edges meeting at more than this angle (degrees) from straight make a corner.
CORNER_DEG = 60.0
#: An edge is on a curved surface when the curve's midpoint is this share of its length off
#: the chord (a 64-gon's edge: 0.6%; a flat face's: 0).
CURVED = 0.002
#: Tetrahedra per unit of volume / h³ that TetGen makes (measured on boxes and plates).
TETS_PER_H3 = 16.0


@dataclass(frozen=True)
class SizeField:
    """A target edge length, metres: ``h(x) = min(scale * bulk, min_f(scale * s_f + G d_f))``.

    Attributes:
        points: (q, 3) feature points, metres.
        sizes: (q,) their sizes at scale 1, metres.
        bulk: the bulk size at scale 1, metres.
        scale: the factor applied to every size (chosen for the tetrahedron count).
        radii: (q,) radius of curvature behind each feature point (inf for spots).
    """

    points: FloatArray
    sizes: FloatArray
    bulk: float
    scale: float
    radii: FloatArray

    def __call__(self, x: npt.ArrayLike) -> FloatArray:
        """(m, 3) points -> (m,) sizes, metres."""
        q = np.asarray(x, dtype=np.float64).reshape(-1, 3)
        h = np.full(len(q), self.scale * self.bulk)
        if len(self.points):
            k = min(16, len(self.points))
            d, i = cKDTree(self.points).query(q, k=k)
            d, i = d.reshape(len(q), k), i.reshape(len(q), k)
            h = np.minimum(h, (self.scale * self.sizes[i] + GRADING * d).min(axis=1))
        return h

    def rescaled(self, scale: float) -> SizeField:
        """The same field with another scale."""
        return SizeField(self.points, self.sizes, self.bulk, float(scale), self.radii)

    @property
    def smallest_feature(self) -> float | None:
        """Smallest radius of curvature resolved with at least a third of :data:`SEGMENTS`
        elements around it (metres), or None when the part has no curved feature."""
        finite = np.isfinite(self.radii)
        if not finite.any():
            return None
        size = np.maximum(self.scale * self.sizes[finite], 0.0)
        ok = size <= 2 * np.pi * self.radii[finite] / (SEGMENTS / 3)
        return float(self.radii[finite][ok].min()) if ok.any() else None


def _edges(tri: IntArray) -> tuple[IntArray, IntArray]:
    """Unique sorted edges (e, 2) and each triangle's edge ids (m, 3): (t0t1, t1t2, t2t0)."""
    raw = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    edges, inv = np.unique(np.sort(raw, axis=1), axis=0, return_inverse=True)
    return edges, inv.ravel().reshape(3, -1).T


def _normals(p: FloatArray, tri: IntArray) -> tuple[FloatArray, FloatArray]:
    cross = np.cross(p[tri[:, 1]] - p[tri[:, 0]], p[tri[:, 2]] - p[tri[:, 0]])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    return cross / np.maximum(2 * area, 1e-300)[:, None], area


def _geometry(p: FloatArray, tri: IntArray) -> tuple[
        IntArray, IntArray, IntArray, FloatArray, FloatArray, FloatArray,
        npt.NDArray[np.bool_]]:
    """Edges, triangle edge ids, edge -> its two triangles, facet normals, corner normals
    (m, 3, 3: the vertex normal within the triangle's smooth patch), crease tangents
    (n, 3; zero where the vertex is not on a smooth sharp edge) and, per edge, whether it
    touches a curved smooth patch."""
    edges, t2e = _edges(tri)
    e2t = np.full((len(edges), 2), -1, dtype=np.int64)
    flat = t2e.ravel()
    order = np.argsort(flat, kind="stable")
    first = np.searchsorted(flat[order], np.arange(len(edges)))
    e2t[:, 0] = order[first] // 3
    e2t[:, 1] = order[np.minimum(first + 1, len(order) - 1)] // 3
    n, _ = _normals(p, tri)
    label = smooth_patches(tri, n, SHARP_DEG)
    # angle-weighted vertex normal per (vertex, patch)
    corner_angle = np.empty((len(tri), 3))
    for c in range(3):
        a = p[tri[:, (c + 1) % 3]] - p[tri[:, c]]
        b = p[tri[:, (c + 2) % 3]] - p[tri[:, c]]
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        corner_angle[:, c] = np.arccos(np.clip(cos, -1, 1))
    stride = int(label.max()) + 1
    key = (tri * stride + label[:, None]).ravel()
    uniq, inv = np.unique(key, return_inverse=True)
    acc = np.zeros((len(uniq), 3))
    np.add.at(acc, inv.ravel(), (n[:, None, :] * corner_angle[:, :, None]).reshape(-1, 3))
    acc /= np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-300)
    corner = acc[inv.ravel()].reshape(len(tri), 3, 3)
    crease = label[e2t[:, 0]] != label[e2t[:, 1]]
    tangent = _crease_tangents(p, edges[crease])
    # a patch is curved when its facets' normals spread by more than a degree
    mean = np.zeros((stride, 3))
    np.add.at(mean, label, n)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-300)
    spread = np.zeros(stride)
    np.maximum.at(spread, label, 1 - np.einsum("ij,ij->i", n, mean[label]))
    curved_patch = spread > 1 - np.cos(np.radians(1.0))
    on_curved = curved_patch[label[e2t[:, 0]]] | curved_patch[label[e2t[:, 1]]]
    return edges, t2e, e2t, n, corner, tangent, on_curved


def _crease_tangents(p: FloatArray, ce: IntArray) -> FloatArray:
    """Unit tangent of the sharp-edge curve at vertices with two sharp edges in a smooth run
    (circle through the vertex and its two neighbours); zero elsewhere."""
    tangent = np.zeros_like(p)
    if not len(ce):
        return tangent
    ends = ce.ravel()
    count = np.bincount(ends, minlength=len(p))
    other = ce[:, ::-1].ravel()
    order = np.argsort(ends, kind="stable")
    ends, other = ends[order], other[order]
    start = np.searchsorted(ends, np.arange(len(p)))
    v = np.flatnonzero(count == 2)
    a, b = p[other[start[v]]], p[other[start[v] + 1]]
    pv = p[v]
    ha = np.linalg.norm(pv - a, axis=1)
    hb = np.linalg.norm(b - pv, axis=1)
    cos = np.einsum("ij,ij->i", pv - a, b - pv) / np.maximum(ha * hb, 1e-300)
    smooth = cos >= np.cos(np.radians(CORNER_DEG))
    t = ha[:, None] ** 2 * (b - pv) + hb[:, None] ** 2 * (pv - a)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-300)
    tangent[v[smooth]] = t[smooth]
    return tangent


def _curve_midpoints(p0: FloatArray, p1: FloatArray, t0: FloatArray, t1: FloatArray
                     ) -> FloatArray:
    """Midpoints of cubic curves from p0 to p1 leaving along t0 and arriving along t1 (unit,
    oriented p0 -> p1), with the handle length that makes a circular arc exact."""
    d = p1 - p0
    c = np.linalg.norm(d, axis=1)
    cos = np.clip(np.einsum("ij,ij->i", t0, t1), -1.0, 1.0)
    theta = np.arccos(cos)
    small = theta < 1e-6
    half = np.where(small, 1.0, np.sin(theta / 2))
    handle = np.where(small, c / 3, (2 / 3) * c * np.tan(theta / 4) / half)
    mid: FloatArray = 0.5 * (p0 + p1) + 0.375 * handle[:, None] * (t0 - t1)
    bad = (theta > np.pi / 2) | (np.einsum("ij,ij->i", t0, d) <= 0) | (
        np.einsum("ij,ij->i", t1, d) <= 0)
    mid[bad] = 0.5 * (p0[bad] + p1[bad])
    return mid


def _tangent_along(normal: FloatArray, d: FloatArray) -> FloatArray:
    t: FloatArray = d - np.einsum("ij,ij->i", d, normal)[:, None] * normal
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-300)
    return t


def refine_surface(points: npt.ArrayLike, faces: npt.ArrayLike, field: SizeField, *,
                   spots: npt.ArrayLike = (), max_rounds: int = 12,
                   max_faces: int = 4_000_000) -> tuple[FloatArray, IntArray]:
    """Split surface edges longer than the field's size at points on the smooth shape they
    sample, where the field asks for less than the bulk size (TetGen sizes the rest).

    Args:
        points: (n, 3) surface points, metres.
        faces: (m, 3) triangles, consistently oriented.
        field: the size field.
        spots: (k, 3) points inserted into the surface first (at the nearest surface point).
        max_rounds: most rounds of splitting (each halves the edges it splits).
        max_faces: stop splitting beyond this many triangles.

    Returns:
        Points (n', 3) (the input points first, in order) and triangles (m', 3).
    """
    p = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    p, tri = _insert_spots(p, tri, np.asarray(spots, dtype=np.float64).reshape(-1, 3), field)
    bulk = 0.999 * field.scale * field.bulk
    for _ in range(max_rounds):
        edges, t2e, e2t, _, corner, tangent, on_curved = _geometry(p, tri)
        a, b = p[edges[:, 0]], p[edges[:, 1]]
        h = field(0.5 * (a + b))
        split = (np.linalg.norm(b - a, axis=1) > h) & (h < bulk)
        idx = np.flatnonzero(split)
        new = _new_points(p, tri, edges[idx], e2t[idx], corner, tangent)
        # only on curved patches and curved sharp edges: flat faces are TetGen's to refine (it
        # merges coplanar triangles, whatever their shape, and refines them to the volume
        # limit)
        sag = np.linalg.norm(new - 0.5 * (a[idx] + b[idx]), axis=1)
        curved = on_curved[idx] | (sag > CURVED * np.linalg.norm(b[idx] - a[idx], axis=1))
        idx, new = idx[curved], new[curved]
        if not len(idx) or len(tri) > max_faces:
            break
        p = np.concatenate([p, new])
        mid = np.full(len(edges), -1, dtype=np.int64)
        mid[idx] = len(p) - len(idx) + np.arange(len(idx))
        tri = _split_triangles(p, tri, mid[t2e])
    return p, tri


def _insert_spots(p: FloatArray, tri: IntArray, spots: FloatArray, field: SizeField
                  ) -> tuple[FloatArray, IntArray]:
    """Insert each spot at its nearest surface point (splitting that triangle in three),
    unless a vertex is already within a third of the local size."""
    if not len(spots):
        return p, tri
    import trimesh

    surf = trimesh.Trimesh(p, tri, process=False)
    near, _, which = trimesh.proximity.closest_point(surf, spots)  # type: ignore[no-untyped-call]
    near, which = np.asarray(near), np.asarray(which, dtype=np.int64)
    bary = trimesh.triangles.points_to_barycentric(  # type: ignore[no-untyped-call]
        p[tri[which]], near)
    gap = cKDTree(p).query(near)[0]
    # inside its triangle (not on an edge) and not next to a vertex
    keep = (gap > field(near) / 3) & (bary.min(axis=1) > 0.05)
    near, which = near[keep], which[keep]
    which, first = np.unique(which, return_index=True)  # one spot per triangle
    near = near[first]
    new = len(p) + np.arange(len(near))
    a, b, c = tri[which].T
    rest = np.delete(tri, which, axis=0)
    return np.concatenate([p, near]), np.concatenate(
        [rest, np.stack([a, b, new], 1), np.stack([b, c, new], 1), np.stack([c, a, new], 1)])


def _new_points(p: FloatArray, tri: IntArray, edges: IntArray, e2t: IntArray,
                corner: FloatArray, tangent: FloatArray) -> FloatArray:
    i0, i1 = edges[:, 0], edges[:, 1]
    p0, p1 = p[i0], p[i1]
    d = p1 - p0
    # the normals of the edge's ends within its first triangle
    t = e2t[:, 0]
    pos0 = np.argmax(tri[t] == i0[:, None], axis=1)
    pos1 = np.argmax(tri[t] == i1[:, None], axis=1)
    n0, n1 = corner[t, pos0], corner[t, pos1]
    n0b = corner[e2t[:, 1], np.argmax(tri[e2t[:, 1]] == i0[:, None], axis=1)]
    sharp = np.einsum("ij,ij->i", n0, n0b) < np.cos(np.radians(SHARP_DEG))
    t0, t1 = _tangent_along(n0, d), _tangent_along(n1, d)
    # on a sharp edge: the tangents of its curve (straight where a corner ends it)
    c0, c1 = tangent[i0], tangent[i1]
    c0 = c0 * np.sign(np.einsum("ij,ij->i", c0, d))[:, None]
    c1 = c1 * np.sign(np.einsum("ij,ij->i", c1, d))[:, None]
    straight = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
    c0 = np.where(np.linalg.norm(c0, axis=1, keepdims=True) > 0, c0, straight)
    c1 = np.where(np.linalg.norm(c1, axis=1, keepdims=True) > 0, c1, straight)
    t0 = np.where(sharp[:, None], c0, t0)
    t1 = np.where(sharp[:, None], c1, t1)
    return _curve_midpoints(p0, p1, t0, t1)


def _split_triangles(p: FloatArray, tri: IntArray, mids: IntArray) -> IntArray:
    """Split each triangle by its edges' midpoints (-1: not split): 1, 2 or 4 ways + 1."""
    out = [tri[(mids < 0).all(axis=1)]]
    marked = (mids >= 0).sum(axis=1)
    for rot in range(3):  # rotate so the pattern starts at local edge 0
        t = np.roll(tri, -rot, axis=1)
        m = np.roll(mids, -rot, axis=1)
        one = (marked == 1) & (m[:, 0] >= 0)
        a, b, c, ab = t[one, 0], t[one, 1], t[one, 2], m[one, 0]
        out += [np.stack([a, ab, c], 1), np.stack([ab, b, c], 1)]
        two = (marked == 2) & (m[:, 0] >= 0) & (m[:, 1] >= 0)
        a, b, c, ab, bc = t[two, 0], t[two, 1], t[two, 2], m[two, 0], m[two, 1]
        out.append(np.stack([ab, b, bc], 1))
        # quad a-ab-bc-c: cut along its shorter diagonal
        short = (np.linalg.norm(p[ab] - p[c], axis=1) <= np.linalg.norm(p[a] - p[bc], axis=1))
        out += [np.stack([a, ab, c], 1)[short], np.stack([ab, bc, c], 1)[short],
                np.stack([a, ab, bc], 1)[~short], np.stack([a, bc, c], 1)[~short]]
    three = marked == 3
    a, b, c = tri[three, 0], tri[three, 1], tri[three, 2]
    ab, bc, ca = mids[three, 0], mids[three, 1], mids[three, 2]
    out += [np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1),
            np.stack([ab, bc, ca], 1)]
    return np.concatenate(out)


def curvature_features(points: npt.ArrayLike, faces: npt.ArrayLike
                       ) -> tuple[FloatArray, FloatArray]:
    """Points on curved surfaces and curved sharp edges, and their radius of curvature.

    Args:
        points: (n, 3) surface points, metres.
        faces: (m, 3) triangles.

    Returns:
        (q, 3) points (vertices and edge midpoints) and (q,) radii, metres.
    """
    p = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    edges, _, e2t, n, corner, tangent, _ = _geometry(p, tri)
    na, nb = n[e2t[:, 0]], n[e2t[:, 1]]
    angle = np.arccos(np.clip(np.einsum("ij,ij->i", na, nb), -1, 1))
    smooth = angle < np.radians(SHARP_DEG)
    # smooth edges: chord length over the turn of the vertex normals along it
    t = e2t[:, 0]
    n0 = corner[t, np.argmax(tri[t] == edges[:, :1], axis=1)]
    n1 = corner[t, np.argmax(tri[t] == edges[:, 1:], axis=1)]
    turn = np.arccos(np.clip(np.einsum("ij,ij->i", n0, n1), -1, 1))
    chord = np.linalg.norm(p[edges[:, 1]] - p[edges[:, 0]], axis=1)
    radius_e = np.where(smooth & (turn > 1e-3), chord / np.maximum(turn, 1e-300), np.inf)
    # sharp edges: curvature of the circle through each vertex and its two neighbours
    radius_v = np.full(len(p), np.inf)
    on = np.flatnonzero(np.linalg.norm(tangent, axis=1) > 0)
    if len(on):
        sharp = ~smooth
        ce = edges[sharp]
        nbr: dict[int, list[int]] = {}
        for u, w in ce.tolist():
            nbr.setdefault(u, []).append(w)
            nbr.setdefault(w, []).append(u)
        for v in on.tolist():
            a, b = p[nbr[v][0]], p[nbr[v][1]]
            chord = float(np.linalg.norm(b - a))
            s = float(np.linalg.norm(np.cross(a - p[v], b - p[v]))) / max(
                float(np.linalg.norm(a - p[v]) * np.linalg.norm(b - p[v])), 1e-300)
            if s > 1e-6:
                radius_v[v] = chord / (2 * s)
    np.minimum.at(radius_v, edges[:, 0], radius_e)
    np.minimum.at(radius_v, edges[:, 1], radius_e)
    keep_v = np.isfinite(radius_v)
    keep_e = np.isfinite(radius_v[edges]).any(axis=1)
    mid_r = np.minimum(radius_v[edges[:, 0]], radius_v[edges[:, 1]])
    pts = np.concatenate([p[keep_v], 0.5 * (p[edges[keep_e, 0]] + p[edges[keep_e, 1]])])
    return pts, np.concatenate([radius_v[keep_v], mid_r[keep_e]])


def size_field(points: npt.ArrayLike, faces: npt.ArrayLike, volume: float, target_tets: int,
               spots: npt.ArrayLike = ()) -> SizeField:
    """The size field of a part for about ``target_tets`` tetrahedra (see the module doc).

    Args:
        points: (n, 3) surface points, metres.
        faces: (m, 3) triangles.
        volume: the solid's volume, m³.
        target_tets: the tetrahedron count wanted.
        spots: (k, 3) points to resolve finely (sensors, borders of loaded and fixed
            regions), metres.

    Returns:
        The field, its scale not yet fitted to the count (1.0): see :func:`fit_scale`.
    """
    bulk = float(np.cbrt(TETS_PER_H3 * volume / max(int(target_tets), 1)))
    cpts, radii = curvature_features(points, faces)
    csize = np.maximum(2 * np.pi * radii / SEGMENTS, FINEST * bulk)
    spots = np.asarray(spots, dtype=np.float64).reshape(-1, 3)
    return SizeField(points=np.concatenate([cpts, spots]),
                     sizes=np.concatenate([csize, np.full(len(spots), SPOT * bulk)]),
                     bulk=bulk, scale=1.0,
                     radii=np.concatenate([radii, np.full(len(spots), np.inf)]))


def expected_tets(field: SizeField, nodes: FloatArray, tets: IntArray) -> float:
    """Tetrahedra a mesh sized by ``field`` would have, integrated over a background mesh."""
    corner = nodes[tets]
    vol = np.abs(np.einsum("ij,ij->i", corner[:, 1] - corner[:, 0], np.cross(
        corner[:, 2] - corner[:, 0], corner[:, 3] - corner[:, 0]))) / 6
    h = field(nodes)[tets].mean(axis=1)
    return float((vol * TETS_PER_H3 / h**3).sum())


def fit_scale(field: SizeField, nodes: FloatArray, tets: IntArray, target: int) -> SizeField:
    """The field rescaled so :func:`expected_tets` is about ``target`` (bisection on scale)."""
    lo, hi = 0.05, 20.0
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        if expected_tets(field.rescaled(mid), nodes, tets) > target:
            lo = mid
        else:
            hi = mid
    return field.rescaled(np.sqrt(lo * hi))
