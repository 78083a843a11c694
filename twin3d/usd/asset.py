"""Author a converted asset: a small interface layer that payloads a ``.usdc`` geometry layer.

Layout (``<Name>`` is the root prim, ``<Part>`` one per input when there are several)::

    OUT.usda                 defaultPrim /<Name> (Xform, identity, kind component|assembly),
                             upAxis, metersPerUnit, customLayerData["twin3d"] (provenance),
                             payload -> OUT.geom.usdc
    OUT.geom.usdc            /<Name>
                               [/<Part>]                   (assembly only; kind component)
                                 /Geom/...                 source hierarchy: Xform / Mesh prims
                                 /Materials/<Mat>          UsdPreviewSurface
                                 /Prototypes/<Mesh>        class prims, for meshes used twice+

Repeated meshes are written once under ``Prototypes`` (a ``class``: never drawn itself) and
referenced by ``instanceable`` Xforms, which carry the material binding. Arrays go in through
``Vt.*Array.FromNumpy``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

from twin3d.cad import Material, MeshPart, Node, Part

__all__ = ["GEOM_SUFFIX", "write_asset"]

#: the geometry layer is ``<output stem>.geom.usdc`` beside the interface layer
GEOM_SUFFIX = ".geom.usdc"

Step = Callable[[str], None]


def _matrix(m: np.ndarray) -> Gf.Matrix4d:
    # cad uses column vectors (p' = M p); USD uses row vectors (p' = p M)
    return Gf.Matrix4d(m.T.tolist())


def _author_material(stage: Usd.Stage, scope: Sdf.Path, mat: Material) -> UsdShade.Material:
    material = UsdShade.Material.Define(stage, scope.AppendChild(mat.name))
    shader = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("PreviewSurface"))
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*mat.color[:3]))
    shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(float(mat.metallic))
    shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(float(mat.roughness))
    if any(mat.emissive):
        shader.CreateInput("emissiveColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*mat.emissive))
    if mat.color[3] < 1.0:
        shader.CreateInput("opacity", Sdf.ValueTypeNames.Float).Set(float(mat.color[3]))
    out = shader.CreateOutput("surface", Sdf.ValueTypeNames.Token)
    material.CreateSurfaceOutput().ConnectToSource(out)
    return material


def _bind(prim: Usd.Prim, material: UsdShade.Material) -> None:
    UsdShade.MaterialBindingAPI.Apply(prim).Bind(material)


def _author_mesh(stage: Usd.Stage, path: Sdf.Path, mesh: MeshPart,
                 matrix: np.ndarray | None) -> UsdGeom.Mesh:
    usd_mesh = UsdGeom.Mesh.Define(stage, path)
    n_faces = len(mesh.faces)
    usd_mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(mesh.points))
    usd_mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(n_faces, 3, np.int32)))
    usd_mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(mesh.faces.reshape(-1)))
    usd_mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(mesh.normals))
    usd_mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex if mesh.interpolation == "vertex"
                                     else UsdGeom.Tokens.faceVarying)
    usd_mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(mesh.extent))
    usd_mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    usd_mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    usd_mesh.CreateDoubleSidedAttr(False)
    if mesh.colors is not None:
        interp = UsdGeom.Tokens.vertex if len(mesh.colors) == len(mesh.points) and \
            len(mesh.colors) != n_faces else UsdGeom.Tokens.uniform
        pv = usd_mesh.CreateDisplayColorPrimvar(interp)
        pv.Set(Vt.Vec3fArray.FromNumpy(mesh.colors))
    if matrix is not None:
        usd_mesh.AddTransformOp().Set(_matrix(matrix))
    return usd_mesh


def _set_display_name(prim: Usd.Prim, label: str) -> None:
    if label and label != prim.GetName():
        try:
            prim.SetDisplayName(label)
        except Exception:  # noqa: S110 - displayName is cosmetic; old usd-core lacks it
            pass


def _author_part(stage: Usd.Stage, root: Sdf.Path, part: Part, step: Step) -> None:
    """Author one part's Geom, Materials and Prototypes under ``root``."""
    mats_path = root.AppendChild("Materials")
    UsdGeom.Scope.Define(stage, mats_path)
    materials = [_author_material(stage, mats_path, m) for m in part.materials]
    geom_path = root.AppendChild("Geom")
    geom = UsdGeom.Xform.Define(stage, geom_path)
    Usd.ModelAPI(geom.GetPrim()).SetKind(Kind.Tokens.subcomponent)
    protos: dict[int, Sdf.Path] = {}
    instanced = [i for i, u in enumerate(part.uses) if u > 1]
    if instanced:
        proto_root = root.AppendChild("Prototypes")
        spec = Sdf.CreatePrimInLayer(stage.GetRootLayer(), proto_root)
        spec.specifier = Sdf.SpecifierClass
        for i in instanced:
            mesh = part.meshes[i]
            ppath = proto_root.AppendChild(mesh.name)
            pspec = Sdf.CreatePrimInLayer(stage.GetRootLayer(), ppath)
            pspec.specifier = Sdf.SpecifierClass
            pspec.typeName = "Xform"
            _author_mesh(stage, ppath.AppendChild("Mesh"), mesh, None)
            protos[i] = ppath
            step(f"{part.name}: mesh {mesh.name}")

    def instance(path: Sdf.Path, mesh: int, matrix: np.ndarray | None, label: str) -> None:
        xf = UsdGeom.Xform.Define(stage, path)
        prim = xf.GetPrim()
        prim.GetReferences().AddInternalReference(protos[mesh])
        prim.SetInstanceable(True)
        if matrix is not None:
            xf.AddTransformOp().Set(_matrix(matrix))
        _bind(prim, materials[part.meshes[mesh].material])
        _set_display_name(prim, label)

    def add(parent: Sdf.Path, node: Node) -> None:
        path = parent.AppendChild(node.name)
        if node.mesh is not None and node.mesh in protos and not node.children:
            instance(path, node.mesh, node.matrix, node.label)
            return
        if node.mesh is not None and not node.children:
            mesh = part.meshes[node.mesh]
            um = _author_mesh(stage, path, mesh, node.matrix)
            _bind(um.GetPrim(), materials[mesh.material])
            _set_display_name(um.GetPrim(), node.label)
            step(f"{part.name}: mesh {mesh.name}")
            return
        xf = UsdGeom.Xform.Define(stage, path)
        if node.matrix is not None:
            xf.AddTransformOp().Set(_matrix(node.matrix))
        _set_display_name(xf.GetPrim(), node.label)
        if node.mesh is not None and node.mesh in protos:
            instance(path.AppendChild("Mesh"), node.mesh, None, "")
        elif node.mesh is not None:
            mesh = part.meshes[node.mesh]
            um = _author_mesh(stage, path.AppendChild("Mesh"), mesh, None)
            _bind(um.GetPrim(), materials[mesh.material])
        for child in node.children:
            add(path, child)

    for node in part.nodes:
        add(geom_path, node)


def _provenance(parts: Sequence[Part], meters_per_unit: float, up_axis: str,
                version: str) -> dict[str, Any]:
    sources = {}
    for part in parts:
        sources[part.name] = {
            "file": part.path.name,
            "sha256": part.sha256,
            "format": part.format,
            "sourceMetersPerUnit": float(part.meters_per_unit),
            "units": part.units_note,
            "sourceUpAxis": part.axis_note,
            "triangles": int(part.triangle_count),
        }
    scaled = "points scaled to stage units" if meters_per_unit == 1.0 else "source units kept"
    return {"twin3d": {
        "converter": f"twin3d {version}",
        "metersPerUnit": float(meters_per_unit),
        "upAxis": up_axis,
        "decisions": f"{scaled}; points rotated to {up_axis}-up; no scale or rotation on the root",
        "sources": sources,
    }}


def write_asset(parts: Sequence[Part], interface: Path, geometry: Path, *, name: str,
                meters_per_unit: float, up_axis: str, version: str,
                geometry_asset_path: str, step: Step | None = None) -> None:
    """Write the geometry layer and the interface layer (each to the path given).

    Args:
        parts: one or more converted inputs (several make an assembly).
        interface: where to write the interface layer (any USD suffix).
        geometry: where to write the ``.usdc`` geometry layer.
        name: the root prim's name.
        meters_per_unit: the stage's metersPerUnit.
        up_axis: ``"Z"`` or ``"Y"``.
        version: converter version for the provenance.
        geometry_asset_path: how the interface layer refers to the geometry layer
            (relative, e.g. ``./OUT.geom.usdc``).
        step: called with a label after each mesh (progress).
    """
    step = step or (lambda _label: None)
    root = Sdf.Path.absoluteRootPath.AppendChild(name)
    meta = _provenance(parts, meters_per_unit, up_axis, version)
    axis = UsdGeom.Tokens.z if up_axis == "Z" else UsdGeom.Tokens.y
    assembly = len(parts) > 1

    geo_layer = Sdf.Layer.CreateAnonymous(".usdc")
    stage = Usd.Stage.Open(geo_layer)
    UsdGeom.SetStageUpAxis(stage, axis)
    UsdGeom.SetStageMetersPerUnit(stage, meters_per_unit)
    top = UsdGeom.Xform.Define(stage, root)
    stage.SetDefaultPrim(top.GetPrim())
    Usd.ModelAPI(top.GetPrim()).SetKind(Kind.Tokens.assembly if assembly else Kind.Tokens.component)
    if assembly:
        for part in parts:
            ppath = root.AppendChild(part.name)
            xf = UsdGeom.Xform.Define(stage, ppath)
            Usd.ModelAPI(xf.GetPrim()).SetKind(Kind.Tokens.component)
            _author_part(stage, ppath, part, step)
    else:
        _author_part(stage, root, parts[0], step)
    extent = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_],
                               useExtentsHint=False).ComputeWorldBound(top.GetPrim()).ComputeAlignedRange()
    geo_layer.customLayerData = meta
    geo_layer.Export(str(geometry))
    del stage

    iface = Sdf.Layer.CreateAnonymous(interface.suffix)
    istage = Usd.Stage.Open(iface, Usd.Stage.LoadNone)
    UsdGeom.SetStageUpAxis(istage, axis)
    UsdGeom.SetStageMetersPerUnit(istage, meters_per_unit)
    itop = UsdGeom.Xform.Define(istage, root)
    istage.SetDefaultPrim(itop.GetPrim())
    Usd.ModelAPI(itop.GetPrim()).SetKind(Kind.Tokens.assembly if assembly else Kind.Tokens.component)
    itop.GetPrim().GetPayloads().AddPayload(geometry_asset_path)
    if not extent.IsEmpty():
        UsdGeom.ModelAPI(itop).SetExtentsHint(
            Vt.Vec3fArray([Gf.Vec3f(*extent.GetMin()), Gf.Vec3f(*extent.GetMax())]))
    iface.customLayerData = meta
    iface.Export(str(interface))


def package_usdz(interface: Path, output: Path) -> None:
    """Package ``interface`` (and the layers it references) into the ``.usdz`` ``output``."""
    if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(interface)), str(output)):
        raise OSError(f"cannot package {interface} into {output}")


def remove_quietly(*paths: Path) -> None:
    """Remove files that may or may not exist."""
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass
