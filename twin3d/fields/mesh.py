"""Volume meshes for the field models: tetrahedralise a closed surface, select regions, probe.

The surface is what the USD stage holds (welded points, triangles, stage units). TetGen (the
``tetgen`` package) fills it with tetrahedra and keeps every input point as a node, so the
surface vertices of the USD mesh are FEM nodes. :func:`probe_matrix` maps FEM nodal values to
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

__all__ = ["TetMesh", "facet_geometry", "probe_matrix", "report_region", "select_facets",
           "smooth_patches", "surface_patches", "tetrahedralize"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class TetMesh:
    """A tetrahedral mesh in metres.

    Attributes:
        nodes: (n, 3) float64 node coordinates, metres.
        tets: (m, 4) int64 node indices of each tetrahedron.
        n_surface: the first ``n_surface`` nodes are the input surface points, in order.
    """

    nodes: FloatArray
    tets: IntArray
    n_surface: int

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
) -> TetMesh:
    """Fill a closed triangle surface with quality tetrahedra (TetGen).

    Args:
        points: (n, 3) float surface points, stage units.
        faces: (m, 3) int triangles; the surface must be closed (watertight) and consistent.
        meters_per_unit: the stage's metres per unit.
        max_volume: largest tetrahedron volume, m³; by default the solid's volume / ``target_tets``.
        target_tets: the rough number of tetrahedra wanted when ``max_volume`` is not given
            (a lower bound in practice: small features and ``quality`` add more).
        quality: TetGen's largest radius-edge ratio and smallest dihedral angle (degrees);
            looser values (e.g. ``(3.0, 0.0)``) give far fewer tetrahedra on thin parts.

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
    import tetgen
    import trimesh

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
    volume = abs(float(surf.volume))
    if max_volume is None:
        max_volume = volume / max(int(target_tets), 1)
    gen = tetgen.TetGen(pts, tri.astype(np.int32))
    try:
        with _quiet_stdout():  # TetGen's C++ prints to fd 1 even with its quiet switch
            switches = f"pq{quality[0]:g}/{quality[1]:g}a{max_volume:.6g}Q"
            nodes, tets = gen.tetrahedralize(switches=switches)[:2]
    except RuntimeError as exc:
        raise FieldError(f"TetGen could not mesh the surface ({exc}); check it is closed "
                         "and not self-intersecting") from None
    nodes = np.asarray(nodes, dtype=np.float64)
    tets = np.asarray(tets, dtype=np.int64)
    if len(nodes) < len(pts) or not np.allclose(nodes[: len(pts)], pts):
        raise FieldError("TetGen dropped surface points (duplicate or loose vertices?): "
                         "weld the surface before building a field model")
    return TetMesh(nodes=nodes, tets=tets, n_surface=len(pts))


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
    keep = np.ones(len(facets), dtype=bool)
    m = float(meters_per_unit)
    if "box" in region:
        lo, hi = (np.asarray(c, dtype=np.float64) * m for c in region["box"])
        tol = 1e-9 * float(np.ptp(mesh.p, axis=1).max())
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
    out = facets[keep]
    if not len(out):
        raise FieldError(f"region {name!r} contains no boundary facet of the part; "
                         "check its coordinates are in stage units and touch the surface")
    return out


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
