"""Display surfaces kept in a stage: a refined copy of a mesh, beside it, that carries its fields.

A mesh with sensors on it shows its fields on a display surface (:mod:`twin3d.display`): its
triangles bisected where they are long, with a vertex at each sensor. The surface is kept in
the twin's live layer (and in recordings that hold fields) as a sibling ``Mesh`` prim named
``<mesh>_display``, with

* a ``twin:displayOf`` relationship to the mesh (readers of meshes skip such prims:
  :func:`twin3d.usd.meshes.read_meshes`),
* the mesh's points in the mesh's own frame (its local transform copied as one
  ``xformOp:transform``), so it follows every transform above the mesh,
* the mesh's material and colour, flat normals (one per triangle), extent, no subdivision,
* ``customData = {twin3d = {displaySurface = DIGEST}}``: a digest of what it was made from
  (the mesh's points and triangles, the sensor positions), so it is made again only when one
  of them changes.

The mesh itself is hidden (``visibility = "invisible"``) in the same layer; its geometry stays
as converted in the asset, beside the display surface: make it visible again in usdview to
compare. A motion bound to the mesh prim itself (not to a prim above it) does not move the
display surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, Vt

from twin3d.display import refine_surface, surface_digest
from twin3d.usd.meshes import DISPLAY_OF, MeshData, rest_points, triangulate
from twin3d.usd.spec import bind_material, ensure_attr

__all__ = ["DIGEST_KEY", "SUFFIX", "KeptSurface", "author_surface", "display_path", "drop_surface",
           "flat_normals", "keep_surface"]

#: The display surface of mesh ``.../name`` is the prim ``.../name_display``.
SUFFIX = "_display"
#: Key in the display prim's ``twin3d`` customData of the digest it was made from.
DIGEST_KEY = "displaySurface"
_T = Sdf.ValueTypeNames


@dataclass(frozen=True, eq=False)
class KeptSurface:
    """A mesh's display surface, as kept (or to be kept) in a layer.

    Attributes:
        path: the display prim.
        mesh: the mesh it shows.
        points: (n, 3) float32, the mesh's local frame (as USD stores them).
        faces: (m, 3) int32 triangles.
        transform: (4, 4) the mesh's local transform (``Gf`` row-vector convention), or None
            for the identity.
        color: linear RGB of the mesh.
        material: the material bound to the mesh, if any.
        digest: what the surface was made from (:func:`twin3d.display.surface_digest`).
    """

    path: Sdf.Path
    mesh: Sdf.Path
    points: npt.NDArray[np.float32]
    faces: npt.NDArray[np.int32]
    transform: npt.NDArray[np.float64] | None
    color: tuple[float, float, float]
    material: Sdf.Path | None
    digest: str

    def mesh_data(self, mesh: MeshData) -> MeshData:
        """The surface as :class:`MeshData` of ``mesh`` (world space, path = the mesh's)."""
        local = self.points.astype(np.float64)
        m = mesh.world
        world = local @ m[:3, :3].T + m[:3, 3]
        return MeshData(mesh.path, world, self.faces.astype(np.int64), mesh.color,
                        world=mesh.world, surface=str(self.path), source=mesh)


def display_path(mesh: Sdf.Path | str) -> Sdf.Path:
    """The display surface prim of ``mesh``.

    Examples:
        >>> str(display_path("/Plate/Geom/plate_holes_stl"))
        '/Plate/Geom/plate_holes_stl_display'
    """
    path = Sdf.Path(str(mesh))
    return path.GetParentPath().AppendChild(path.name + SUFFIX)


def _digest_of(prim: Usd.Prim) -> str | None:
    data = prim.GetCustomDataByKey("twin3d") if prim else None
    return str(data.get(DIGEST_KEY)) if isinstance(data, dict) and DIGEST_KEY in data else None


def keep_surface(stage: Usd.Stage, mesh: Usd.Prim, sites: Sequence[Sequence[float]],
                 color: tuple[float, float, float]) -> tuple[KeptSurface, bool]:
    """The display surface of ``mesh`` with a vertex at each site: the one in ``stage`` if
    it was made from the same inputs, else a new one (not yet authored).

    Args:
        stage: the composed stage.
        mesh: the mesh prim (not an instance proxy).
        sites: (k, 3) world positions (stage units) of the sensors on it.
        color: the mesh's colour (linear RGB).

    Returns:
        The surface, and whether it is new (then author it with :func:`author_surface`).
    """
    geom = UsdGeom.Mesh(mesh)
    local = np.asarray(rest_points(geom), dtype=np.float64)
    faces = triangulate(geom.GetFaceVertexCountsAttr().Get(), geom.GetFaceVertexIndicesAttr().Get())
    to_world = np.asarray(geom.ComputeLocalToWorldTransform(Usd.TimeCode.Default()),
                          dtype=np.float64)
    inv = np.linalg.inv(to_world)
    where = np.asarray(sites, dtype=np.float64).reshape(-1, 3)
    where = where @ inv[:3, :3] + inv[3, :3]  # world -> the mesh's frame (row vectors)
    digest = surface_digest(local, faces, where)
    own = np.asarray(geom.GetLocalTransformation(Usd.TimeCode.Default()), dtype=np.float64)
    transform = None if np.allclose(own, np.eye(4)) else own
    material = UsdShade.MaterialBindingAPI(mesh).GetDirectBinding().GetMaterialPath()
    path = display_path(mesh.GetPath())
    kept_prim = stage.GetPrimAtPath(path)
    if kept_prim and _digest_of(kept_prim) == digest:
        kept = UsdGeom.Mesh(kept_prim)
        pts = np.asarray(rest_points(kept), dtype=np.float32)  # also when shown deformed
        tri = np.asarray(kept.GetFaceVertexIndicesAttr().Get(), dtype=np.int32).reshape(-1, 3)
        return KeptSurface(path, mesh.GetPath(), pts, tri, transform, color,
                           material or None, digest), False
    surface = refine_surface(local, faces, sites=where)
    return KeptSurface(path, mesh.GetPath(), surface.points.astype(np.float32),
                       surface.faces.astype(np.int32), transform, color, material or None,
                       digest), True


def author_surface(layer: Sdf.Layer, kept: KeptSurface, *, color: bool = True) -> None:
    """Author a display surface into ``layer`` (replacing one there) and hide its mesh.

    Sdf API only: safe inside an ``Sdf.ChangeBlock``.

    Args:
        layer: the live layer, or a recording's topology layer.
        kept: the surface.
        color: author the mesh's colour as a constant ``displayColor`` (not in a layer
            whose fields come from stronger layers, such as value clips: a direct colour
            would hide the fields' display variants there).
    """
    old = layer.GetPrimAtPath(kept.path)
    if old is not None:
        parent = layer.GetPrimAtPath(kept.path.GetParentPath())
        del parent.nameChildren[kept.path.name]
    spec = Sdf.CreatePrimInLayer(layer, kept.path)
    spec.specifier, spec.typeName = Sdf.SpecifierDef, "Mesh"
    spec.documentation = (f"Display surface of {kept.mesh} (twin3d): its triangles refined, a "
                          "vertex at each sensor; carries the fields. The mesh is hidden.")
    spec.customData = {"twin3d": {DIGEST_KEY: kept.digest}}
    pts, tri = kept.points, kept.faces

    def put(name: str, type_name: Sdf.ValueTypeName, value: object, uniform: bool = False,
            **info: object) -> None:
        attr = Sdf.AttributeSpec(spec, name, type_name,
                                 Sdf.VariabilityUniform if uniform else Sdf.VariabilityVarying)
        attr.default = value
        for key, v in info.items():
            attr.SetInfo(key, v)

    put("points", _T.Point3fArray, Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(pts)))
    put("faceVertexCounts", _T.IntArray, Vt.IntArray.FromNumpy(
        np.full(len(tri), 3, dtype=np.int32)))
    put("faceVertexIndices", _T.IntArray, Vt.IntArray.FromNumpy(
        np.ascontiguousarray(tri.reshape(-1))))
    put("normals", _T.Normal3fArray, Vt.Vec3fArray.FromNumpy(flat_normals(pts, tri)),
        interpolation="uniform")  # flat: one per triangle
    put("extent", _T.Float3Array, Vt.Vec3fArray([Gf.Vec3f(*map(float, pts.min(axis=0))),
                                                 Gf.Vec3f(*map(float, pts.max(axis=0)))]))
    put("subdivisionScheme", _T.Token, "none", uniform=True)
    if color:
        put("primvars:displayColor", _T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(*kept.color)]),
            interpolation="constant")
    if kept.transform is not None:
        put("xformOp:transform", _T.Matrix4d, Gf.Matrix4d(kept.transform.tolist()))
        put("xformOpOrder", _T.TokenArray, Vt.TokenArray(["xformOp:transform"]), uniform=True)
    rel = Sdf.RelationshipSpec(spec, DISPLAY_OF, True)
    rel.targetPathList.explicitItems = [kept.mesh]
    if kept.material is not None:
        bind_material(layer, kept.path, kept.material)
    ensure_attr(layer, kept.mesh, "visibility", _T.Token).default = UsdGeom.Tokens.invisible


def flat_normals(points: npt.ArrayLike, faces: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The unit normal of each triangle (counter-clockwise winding), as a display surface has.

    Args:
        points: (n, 3) float.
        faces: (m, 3) int triangles.

    Returns:
        (m, 3) float32, C-contiguous.

    Examples:
        >>> flat_normals([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]).tolist()
        [[0.0, 0.0, 1.0]]
    """
    corners = np.asarray(points, dtype=np.float64)[np.asarray(faces)]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
    return np.ascontiguousarray(normals, dtype=np.float32)


def drop_surface(layer: Sdf.Layer, mesh: Sdf.Path) -> bool:
    """Remove the display surface of ``mesh`` from ``layer`` and show the mesh again.

    Returns:
        Whether there was one.
    """
    path = display_path(mesh)
    if layer.GetPrimAtPath(path) is None:
        return False
    del layer.GetPrimAtPath(path.GetParentPath()).nameChildren[path.name]
    spec = layer.GetPrimAtPath(mesh)
    vis = spec.attributes.get("visibility") if spec else None
    if vis is not None:
        spec.RemoveProperty(vis)
    return True
