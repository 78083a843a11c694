"""Volume meshes for the field models: tetrahedralise a closed surface, select regions, probe.

The surface is what the USD stage holds (welded points, triangles, stage units). It is first
refined where a size field asks for small elements, with new points placed on the smooth
shape the triangles sample (:mod:`twin3d.fields.sizing`); TetGen (the ``tetgen`` package)
then fills it with tetrahedra and keeps every input point as a node, so the surface vertices
of the USD mesh are FEM nodes. :func:`probe_matrix` maps FEM nodal values to
any set of points (surface vertices, sensor positions) as a sparse matrix, which is also how a
model built on a coarse solid is shown on a much finer display mesh.

Regions (the ``[model.regions]`` tables of the sensor map) select boundary facets:

* ``box = [[xmin, ymin, zmin], [xmax, ymax, zmax]]`` (stage units): facet centroids inside;
* ``sphere = {center = [x, y, z], radius = r}`` (stage units);
* ``cylinder = {center = [x, y, z], axis = [0, 0, 1], radius = r}``: centroids within ``r`` of
  the axis line (bolt holes, shafts); ``outside = true`` selects those at ``r`` or beyond;
  ``wall = true`` keeps only facets whose normal is radial (within ``angle``), i.e. the wall;
* ``normal = [nx, ny, nz]`` with optional ``angle = 10`` (degrees): outward facet normals
  within that angle, alone or combined with a box or sphere (both must hold);
* ``all = true``: the whole boundary.

:func:`report_region` says how many facets a selection holds and on how many connected surface
patches: ``normal = [-1, 0, 0]`` alone also catches the walls of holes that face −x.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.spatial import cKDTree

from twin3d.errors import FieldError
from twin3d.fields.base import RegionReport
from twin3d.fields.config import check_region
from twin3d.fields.progress import step

__all__ = ["TetMesh", "facet_geometry", "probe_matrix", "region_borders", "region_mask",
           "report_region", "select_facets", "smooth_patches", "surface_patches",
           "tetrahedralize"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class TetMesh:
    """A tetrahedral mesh in metres.

    Attributes:
        nodes: (n, 3) float64 node coordinates, metres.
        tets: (m, 4) int64 node indices of each tetrahedron.
        n_surface: the first ``n_surface`` nodes are the input surface points, in order.
        smallest_feature: the smallest radius of curvature (metres) the mesh resolves (see
            :class:`~twin3d.fields.sizing.SizeField`), None when it has no curved feature or
            was meshed uniformly.
    """

    nodes: FloatArray
    tets: IntArray
    n_surface: int
    smallest_feature: float | None = None

    def to_skfem(self) -> Any:
        """Return the mesh as a ``skfem.MeshTet``."""
        from skfem import MeshTet

        return MeshTet(np.ascontiguousarray(self.nodes.T), np.ascontiguousarray(self.tets.T))


def tetrahedralize(
    points: npt.ArrayLike,
    faces: npt.ArrayLike,
    meters_per_unit: float = 1.0,
    *,
    max_volume: float | None = None,
    target_tets: int = 20_000,
    quality: tuple[float, float] = (2.0, 10.0),
    spots: npt.ArrayLike = (),
) -> TetMesh:
    """Fill a closed triangle surface with quality tetrahedra (TetGen), sized where it matters.

    By default the mesh follows a size field (:mod:`twin3d.fields.sizing`): fine at curved
    surfaces and edges and at ``spots``, coarse in the bulk, scaled to about ``target_tets``
    tetrahedra; curved surfaces are refined onto their smooth shape first, so a coarse
    triangulation of a hole still gives a round hole. With ``max_volume`` the mesh is uniform
    and keeps the input triangles.

    Args:
        points: (n, 3) float surface points, stage units.
        faces: (m, 3) int triangles; the surface must be closed (watertight) and consistent.
        meters_per_unit: the stage's metres per unit.
        max_volume: largest tetrahedron volume, m³ (uniform mesh, no size field).
        target_tets: the number of tetrahedra wanted (within about 20%).
        quality: TetGen's largest radius-edge ratio and smallest dihedral angle (degrees);
            looser values (e.g. ``(3.0, 0.0)``) give far fewer tetrahedra on thin parts.
        spots: (k, 3) points to resolve finely (sensors, region borders), metres.

    Returns:
        The mesh in metres; its first ``n`` nodes are ``points`` (scaled), in order.

    Raises:
        FieldError: the surface is not closed or TetGen cannot fill it.

    Examples:
        >>> import trimesh
        >>> box = trimesh.creation.box((1.0, 0.1, 0.1))
        >>> tetrahedralize(box.vertices, box.faces, target_tets=500).n_surface
        8
    """
    import trimesh

    from twin3d.fields import sizing

    pts = np.asarray(points, dtype=np.float64) * float(meters_per_unit)
    tri = np.asarray(faces, dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 3 or tri.ndim != 2 or tri.shape[1] != 3 or not len(tri):
        raise FieldError("surface must be (n, 3) points and (m, 3) triangles with m > 0")
    surf = trimesh.Trimesh(pts, tri, process=False)
    if not surf.is_watertight:
        raise FieldError(
            "the surface is not closed (watertight), so it has no inside to mesh: "
            "convert the part as one solid or repair the CAD export"
        )
    if surf.volume < 0:
        tri = tri[:, ::-1]  # inward-facing triangles: the normals' patches need outward
    volume = abs(float(surf.volume))
    switches = f"pq{quality[0]:g}/{quality[1]:g}"
    if max_volume is not None:
        nodes, tets = _tetgen(pts, tri, f"{switches}a{max_volume:.6g}Q")
        return _checked(nodes, tets, pts, None)
    target = max(int(target_tets), 1)
    field = sizing.size_field(pts, tri, volume, target, spots)
    # a coarse mesh of the input (as TetGen always meshed it) to fit the field to the count
    bg_nodes, bg_tets = _tetgen(pts, tri, f"{switches}a{volume / min(target, 20_000) * 4:.6g}Q")
    field = sizing.fit_scale(field, bg_nodes, bg_tets, target)
    refined = True
    for attempt in range(3):
        bulk = field.scale * field.bulk
        # TetGen grades the inside from the surface; the bulk is capped at its size
        limit = f"{switches}a{bulk**3 / 8.5:.6g}Q"
        result = None
        if refined:
            step("refining the surface")
            ref_pts, ref_tri = sizing.refine_surface(pts, tri, field, spots=spots)
            step("meshing")
            # TetGen can crash or loop on a surface it dislikes: the refined one is meshed in
            # a child process, and the input surface (as always) when that fails
            result = _tetgen_isolated(ref_pts, ref_tri, limit, 60.0 + target / 1000)
            refined = result is not None
        if result is None:
            step("meshing")
            result = _tetgen(pts, tri, limit)
        nodes, tets = result
        ratio = len(tets) / target
        if 0.8 <= ratio <= 1.25 or attempt == 2:
            break
        field = field.rescaled(field.scale * ratio ** (1 / 3))
    if not refined:
        return _checked(nodes, tets, pts, None)
    return _checked(nodes, tets, pts, field.smallest_feature)


def _tetgen(points: FloatArray, faces: IntArray, switches: str) -> tuple[FloatArray, IntArray]:
    import tetgen

    gen = tetgen.TetGen(points, faces.astype(np.int32))
    try:
        with _quiet_stdout():  # TetGen's C++ prints to fd 1 even with its quiet switch
            nodes, tets = gen.tetrahedralize(switches=switches)[:2]
    except RuntimeError as exc:
        raise FieldError(f"TetGen could not mesh the surface ({exc}); check it is closed "
                         "and not self-intersecting") from None
    return np.asarray(nodes, dtype=np.float64), np.asarray(tets, dtype=np.int64)


def _tetgen_child(path: str, switches: str) -> None:
    os.chdir(os.path.dirname(path))  # TetGen drops debris files (skipped faces) in the cwd
    with np.load(path) as data:
        points, faces = data["points"], data["faces"]
    nodes, tets = _tetgen(points, faces, switches)
    np.savez(path, nodes=nodes, tets=tets)


def _tetgen_isolated(points: FloatArray, faces: IntArray, switches: str, timeout: float
                     ) -> tuple[FloatArray, IntArray] | None:
    """:func:`_tetgen` in a child process: None when it fails, crashes or runs past
    ``timeout`` seconds."""
    import multiprocessing
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "surface.npz")
        np.savez(path, points=points, faces=faces)
        child = multiprocessing.get_context("spawn").Process(
            target=_tetgen_child, args=(path, switches), daemon=True)
        child.start()
        try:
            child.join(timeout)
        finally:
            if child.is_alive():
                child.kill()
                child.join()
        if child.exitcode != 0:
            return None
        with np.load(path) as data:
            return np.asarray(data["nodes"]), np.asarray(data["tets"])


def _checked(nodes: FloatArray, tets: IntArray, pts: FloatArray,
             smallest_feature: float | None) -> TetMesh:
    if len(nodes) < len(pts) or not np.allclose(nodes[: len(pts)], pts):
        raise FieldError("TetGen dropped surface points (duplicate or loose vertices?): "
                         "weld the surface before building a field model")
    return TetMesh(nodes=nodes, tets=tets, n_surface=len(pts),
                   smallest_feature=smallest_feature)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real fd 1 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def probe_matrix(nodes: npt.ArrayLike, tets: npt.ArrayLike, query: npt.ArrayLike,
                 *, candidates: int = 12, chunk: int = 50_000) -> sp.csr_matrix:
    """Sparse linear interpolation from tetrahedral nodal values to arbitrary points.

    A point outside the mesh (a curved display surface, a sensor a hair off the part) takes
    the values of the nearest candidate tetrahedron with its barycentric weights clamped.

    Args:
        nodes: (n, 3) float node coordinates.
        tets: (m, 4) int tetrahedra.
        query: (q, 3) float points, same units as ``nodes``.
        candidates: tetrahedra (nearest by centroid) examined per point.
        chunk: points processed at a time (bounds memory).

    Returns:
        (q, n) CSR matrix ``P`` with ``P @ nodal_values`` the values at ``query``.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    tets = np.asarray(tets, dtype=np.int64)
    query = np.asarray(query, dtype=np.float64).reshape(-1, 3)
    q = len(query)
    rows = np.repeat(np.arange(q), 4)
    cols = np.empty((q, 4), dtype=np.int64)
    vals = np.empty((q, 4), dtype=np.float64)
    # exact node hits (surface vertices of a TetGen mesh) need no search
    node_tree = cKDTree(nodes)
    scale = float(np.ptp(nodes, axis=0).max()) or 1.0
    dist, nearest = node_tree.query(query)
    hit = dist <= 1e-9 * scale
    cols[hit] = nearest[hit, None]
    vals[hit] = (1.0, 0.0, 0.0, 0.0)
    todo = np.flatnonzero(~hit)
    if len(todo):
        k = min(candidates, len(tets))
        tree = cKDTree(nodes[tets].mean(axis=1))
        corner = nodes[tets]  # (m, 4, 3)
        t_mat = np.linalg.inv(np.transpose(corner[:, 1:] - corner[:, :1], (0, 2, 1)))  # (m,3,3)
        for start in range(0, len(todo), chunk):
            idx = todo[start:start + chunk]
            _, cand = tree.query(query[idx], k=k)
            cand = cand.reshape(len(idx), k)
            rel = query[idx, None, :] - corner[cand, 0]  # (c, k, 3)
            lam = np.einsum("ckij,ckj->cki", t_mat[cand], rel)
            bary = np.concatenate([1.0 - lam.sum(axis=2, keepdims=True), lam], axis=2)
            best = np.argmax(bary.min(axis=2), axis=1)
            pick = cand[np.arange(len(idx)), best]
            w = np.clip(bary[np.arange(len(idx)), best], 0.0, None)
            w /= w.sum(axis=1, keepdims=True)
            cols[idx] = tets[pick]
            vals[idx] = w
    return sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(q, len(nodes)))


def facet_geometry(mesh: Any, facets: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centroids (k, 3), outward unit normals (k, 3) and areas (k,) of boundary facets."""
    p = mesh.p.T
    tri = p[mesh.facets[:, facets].T]  # (k, 3, 3)
    cen = tri.mean(axis=1)
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = 0.5 * np.linalg.norm(nrm, axis=1)
    nrm /= np.maximum(2.0 * area, 1e-300)[:, None]
    inside = p[mesh.t[:, mesh.f2t[0, facets]].T].mean(axis=1)
    flip = np.einsum("ij,ij->i", nrm, cen - inside) < 0
    nrm[flip] *= -1.0
    return cen, nrm, area


def select_facets(mesh: Any, name: str, region: Mapping[str, Any],
                  meters_per_unit: float) -> IntArray:
    """Boundary facets of a ``skfem.MeshTet`` (metres) inside a region given in stage units.

    Args:
        mesh: the skfem mesh, metres.
        name: the region's name, for messages.
        region: a ``[model.regions.NAME]`` table (see the module docstring).
        meters_per_unit: the stage's metres per unit.

    Returns:
        (k,) int64 facet indices, k > 0.

    Raises:
        FieldError: an unknown key, a malformed shape, or a region that selects nothing.
    """
    check_region(name, region)
    facets = np.asarray(mesh.boundary_facets(), dtype=np.int64)
    cen, nrm, _ = facet_geometry(mesh, facets)
    keep = region_mask(cen, nrm, region, meters_per_unit)
    out = facets[keep]
    if not len(out):
        raise FieldError(f"region {name!r} contains no boundary facet of the part; "
                         "check its coordinates are in stage units and touch the surface")
    return out


def region_mask(centroids: FloatArray, normals: FloatArray, region: Mapping[str, Any],
                meters_per_unit: float) -> npt.NDArray[np.bool_]:
    """Which facets (by centroid and outward unit normal, metres) a checked region selects."""
    cen, nrm = centroids, normals
    keep = np.ones(len(cen), dtype=bool)
    m = float(meters_per_unit)
    if "box" in region:
        lo, hi = (np.asarray(c, dtype=np.float64) * m for c in region["box"])
        tol = 1e-9 * float(np.ptp(cen, axis=0).max()) if len(cen) else 0.0
        keep &= np.all((cen >= np.minimum(lo, hi) - tol) & (cen <= np.maximum(lo, hi) + tol),
                       axis=1)
    if "sphere" in region:
        centre = np.asarray(region["sphere"]["center"], dtype=np.float64) * m
        keep &= np.linalg.norm(cen - centre, axis=1) <= float(region["sphere"]["radius"]) * m
    if "cylinder" in region:
        cyl = region["cylinder"]
        centre = np.asarray(cyl["center"], dtype=np.float64) * m
        axis = np.asarray(cyl.get("axis", (0.0, 0.0, 1.0)), dtype=np.float64)
        axis = axis / np.linalg.norm(axis)
        rel = cen - centre
        radial = rel - np.outer(rel @ axis, axis)
        dist = np.linalg.norm(radial, axis=1)
        radius = float(cyl["radius"]) * m
        keep &= dist >= radius if cyl.get("outside", False) else dist <= radius
        if cyl.get("wall", False):  # only facets whose normal is radial: the wall itself
            radial_n = np.abs(np.einsum("ij,ij->i", nrm, radial)) / np.maximum(dist, 1e-300)
            keep &= radial_n >= np.cos(np.radians(float(region.get("angle", 10.0))))
    if "normal" in region:
        want = np.asarray(region["normal"], dtype=np.float64)
        cos = np.cos(np.radians(float(region.get("angle", 10.0))))
        keep &= nrm @ (want / np.linalg.norm(want)) >= cos
    return keep


def region_borders(points: npt.ArrayLike, faces: npt.ArrayLike,
                   regions: Mapping[str, Mapping[str, Any]], meters_per_unit: float
                   ) -> FloatArray:
    """Points on the borders of regions on a triangle surface (edge ends and midpoints).

    Args:
        points: (n, 3) surface points, metres.
        faces: (m, 3) outward-oriented triangles.
        regions: ``{name: region table}`` (stage units).
        meters_per_unit: the stage's metres per unit.

    Returns:
        (k, 3) points, metres: where loads and supports start, which the mesh resolves finely.
    """
    p = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    corner = p[tri]
    cen = corner.mean(axis=1)
    nrm = np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-300)
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, eid = np.unique(edges, axis=0, return_inverse=True)
    eid = eid.ravel()
    out = [np.zeros((0, 3))]
    for region in regions.values():
        inside = np.tile(region_mask(cen, nrm, region, meters_per_unit), 3).astype(np.int64)
        count = np.bincount(eid, weights=inside, minlength=int(eid.max()) + 1)
        border = np.flatnonzero(count == 1)
        first = np.unique(eid, return_index=True)[1]
        ends = edges[first[border]]
        out += [p[ends.ravel()], p[ends].mean(axis=1)]
    return np.concatenate(out)


def surface_patches(mesh: Any, facets: IntArray) -> IntArray:
    """Sizes of the edge-connected surface patches a set of boundary facets forms.

    Args:
        mesh: the skfem mesh.
        facets: (k,) int facet indices.

    Returns:
        (p,) int64 facet count of each patch, largest first (``p == 1``: one connected face).
    """
    from scipy.sparse.csgraph import connected_components

    tri = np.sort(np.asarray(mesh.facets[:, facets].T, dtype=np.int64), axis=1)  # (k, 3)
    k = len(tri)
    if not k:
        return np.zeros(0, dtype=np.int64)
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]])
    _, edge_id = np.unique(edges, axis=0, return_inverse=True)
    edge_id = edge_id.ravel()
    n = k + int(edge_id.max()) + 1  # facets and edges as one bipartite graph
    graph = sp.coo_matrix((np.ones(3 * k), (np.tile(np.arange(k), 3), k + edge_id)),
                          shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels[:k])
    return np.sort(sizes[sizes > 0])[::-1].astype(np.int64)


def report_region(mesh: Any, name: str, role: str, facets: IntArray) -> RegionReport:
    """Facet count, connected patches and area of a selection (see :class:`RegionReport`)."""
    area = float(facet_geometry(mesh, facets)[2].sum())
    return RegionReport(name=name, role=role, facets=len(facets),
                        patches=len(surface_patches(mesh, facets)), area=area)


def smooth_patches(tri: npt.ArrayLike, normals: npt.ArrayLike, angle_deg: float) -> IntArray:
    """Label the triangles of a surface by smooth patch: sharp edges separate patches.

    Args:
        tri: (m, 3) int vertex indices of the triangles.
        normals: (m, 3) unit normals of the triangles (consistently outward).
        angle_deg: two triangles sharing an edge are in one patch when their normals differ
            by less than this angle.

    Returns:
        (m,) int64 patch label of each triangle (0, 1, ...).
    """
    from scipy.sparse.csgraph import connected_components

    t = np.sort(np.asarray(tri, dtype=np.int64), axis=1)
    n = np.asarray(normals, dtype=np.float64)
    m = len(t)
    edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [0, 2]]])
    owner = np.tile(np.arange(m), 3)
    _, eid = np.unique(edges, axis=0, return_inverse=True)
    eid = eid.ravel()
    order = np.argsort(eid, kind="stable")
    a, b = owner[order][:-1], owner[order][1:]
    same = eid[order][:-1] == eid[order][1:]
    a, b = a[same], b[same]
    keep = np.einsum("ij,ij->i", n[a], n[b]) > np.cos(np.radians(angle_deg))
    graph = sp.coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(m, m))
    labels: IntArray = connected_components(graph, directed=False)[1].astype(np.int64)
    return labels
