"""Read the meshes of a stage as numpy arrays in world space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pxr import Usd, UsdGeom, UsdShade, Vt

__all__ = ["DISPLAY_OF", "REST_POINTS", "MeshData", "read_meshes", "rest_points", "triangulate"]


@dataclass(frozen=True, eq=False)
class MeshData:
    """One mesh prim of a stage, triangulated, in world space.

    Attributes:
        path: the prim path (an instance proxy path for instanced meshes).
        points: (n, 3) float64, world space, stage units.
        faces: (m, 3) int64 triangle indices into ``points``.
        color: (3,) float RGB 0..1 from the bound material or displayColor.
        world: (4, 4) float64 the mesh's local-to-world matrix when it was read
            (column-vector convention: ``world @ [p_local, 1]``).
        surface: the display surface prim that holds these points, beside the mesh
            (:mod:`twin3d.usd.surface`); None: they are the mesh's own.
        source: the mesh as converted, when these points are its display surface.
    """

    path: str
    points: npt.NDArray[np.float64]
    faces: npt.NDArray[np.int64]
    color: tuple[float, float, float]
    world: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    surface: str | None = None
    source: MeshData | None = None

    @property
    def prim(self) -> str:
        """The prim that holds these points (and the fields over them)."""
        return self.surface or self.path


def triangulate(counts: npt.ArrayLike, indices: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Fan-triangulate polygons given as USD face vertex counts and indices.

    Returns:
        (m, 3) int64 triangle vertex indices.

    Examples:
        >>> triangulate([4], [0, 1, 2, 3]).tolist()
        [[0, 1, 2], [0, 2, 3]]
    """
    counts = np.asarray(counts, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    if counts.size and np.all(counts == 3):
        return indices.reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ntri = np.clip(counts - 2, 0, None)
    face_of_tri = np.repeat(np.arange(len(counts)), ntri)
    k = np.arange(ntri.sum()) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    base = starts[face_of_tri]
    return np.stack(
        [indices[base], indices[base + k + 1], indices[base + k + 2]], axis=1
    ).astype(np.int64)


def _color(prim: Usd.Prim) -> tuple[float, float, float]:
    material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    if material:
        shader = material.ComputeSurfaceSource()[0]
        if shader:
            inp = shader.GetInput("diffuseColor")
            if inp:
                src = inp.GetConnectedSources()[0] if inp.HasConnectedSource() else []
                value = inp.Get() if not src else None
                if value is not None:
                    return (float(value[0]), float(value[1]), float(value[2]))
    dc = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()
    if dc is not None and len(dc):
        c = np.asarray(dc, dtype=np.float64).reshape(-1, 3).mean(axis=0)
        return (float(c[0]), float(c[1]), float(c[2]))
    return (0.7, 0.7, 0.7)


#: Relationship from a display surface prim to the mesh it shows (:mod:`twin3d.usd.surface`).
DISPLAY_OF = "twin:displayOf"
#: A mesh a twin's live layer shows deformed keeps its points at rest in this attribute
#: (:class:`twin3d.usd.motion.Deformation`).
REST_POINTS = "twin:restPoints"


def rest_points(mesh: UsdGeom.Mesh) -> Vt.Vec3fArray | None:
    """The points of ``mesh`` at rest (default time): its ``twin:restPoints`` where a live
    layer shows it deformed, else its ``points``."""
    rest = mesh.GetPrim().GetAttribute(REST_POINTS)
    value = rest.Get() if rest else None
    return value if value is not None else mesh.GetPointsAttr().Get()


def read_meshes(stage: Usd.Stage, time: Usd.TimeCode | float | None = None) -> list[MeshData]:
    """Return every mesh of ``stage`` (instances expanded) in world space.

    Display surfaces that twin3d keeps beside meshes (prims with a ``twin:displayOf``
    relationship) are not meshes of the stage's own and are left out. At the default time a
    mesh is read at rest (:func:`rest_points`), also where a twin's live layer deforms it.

    Args:
        stage: an open stage.
        time: the time code to read points and transforms at (default: the default time).
    """
    tc = Usd.TimeCode.Default() if time is None else Usd.TimeCode(time)
    cache = UsdGeom.XformCache(tc)
    meshes: list[MeshData] = []
    for prim in Usd.PrimRange(stage.GetPseudoRoot(), Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdGeom.Mesh) or prim.HasRelationship(DISPLAY_OF):
            continue
        mesh = UsdGeom.Mesh(prim)
        pts = rest_points(mesh) if time is None else mesh.GetPointsAttr().Get(tc)
        counts = mesh.GetFaceVertexCountsAttr().Get(tc)
        idx = mesh.GetFaceVertexIndicesAttr().Get(tc)
        if pts is None or counts is None or idx is None or len(pts) == 0:
            continue
        local = np.asarray(pts, dtype=np.float64)
        m = np.asarray(cache.GetLocalToWorldTransform(prim), dtype=np.float64)
        world = local @ m[:3, :3] + m[3, :3]  # USD matrices are row-vector convention
        meshes.append(MeshData(str(prim.GetPath()), world, triangulate(counts, idx), _color(prim),
                               world=m.T.copy()))
    return meshes
