"""Author a converted asset: a small interface layer that payloads a ``.usdc`` geometry layer.

Layout (``<Name>`` is the root prim, ``<Part>`` one per input when there are several)::

    OUT.usda                 defaultPrim /<Name> (Xform, identity, kind component|assembly),
                             upAxis, metersPerUnit, customLayerData["twin3d"] (provenance),
                             payload -> OUT.geom.usdc
    OUT.geom.usdc            /<Name>
                               [/<Part>]                   (assembly only; kind component)
                                 /Geom/...                 source hierarchy: Xform / Mesh prims
                                 /Materials/<Mat>          UsdPreviewSurface (+ UsdUVTexture)
                                 /Prototypes/<Mesh>        class prims, for meshes used twice+
    OUT.textures/<Part>_<Mat>.png                          base colour images, if any

Repeated meshes are written once under ``Prototypes`` (a ``class``: never drawn itself) and
referenced by ``instanceable`` Xforms, which carry the material binding. A mesh whose faces
have different materials (a STEP part with coloured faces) gets one ``GeomSubset`` per
material, each bound to it (family ``materialBind``, a partition of the faces). Arrays go in
through ``Vt.*Array.FromNumpy``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

from twin3d.cad.scene import Material, MeshPart, Part

__all__ = ["AuthoredAsset", "author_asset", "package_usdz"]

Step = Callable[[str], None]
Finish = Callable[[Usd.Stage, Sdf.Path], None]

#: the texture coordinate primvar, as UsdPreviewSurface materials read it
ST = "st"


class _Textures:
    """Texture files for one asset: ``add`` returns the asset path a material refers to."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.files: dict[str, bytes] = {}

    def add(self, file: str, data: bytes) -> str:
        self.files[file] = data
        return f"./{self.folder}/{file}"


def _matrix(m: np.ndarray) -> Gf.Matrix4d:
    # cad uses column vectors (p' = M p); USD uses row vectors (p' = p M)
    return Gf.Matrix4d(m.T.tolist())


def _author_material(stage: Usd.Stage, scope: Sdf.Path, mat: Material,
                     texture_file: str | None) -> UsdShade.Material:
    """A UsdPreviewSurface; with a texture, its diffuse colour reads ``texture_file`` (an asset
    path) at the mesh's ``st`` primvar, tinted by ``mat.color``."""
    material = UsdShade.Material.Define(stage, scope.AppendChild(mat.name))
    shader = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("PreviewSurface"))
    shader.CreateIdAttr("UsdPreviewSurface")
    diffuse = shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
    if texture_file is None:
        diffuse.Set(Gf.Vec3f(*mat.color[:3]))
    else:
        reader = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("TexCoords"))
        reader.CreateIdAttr("UsdPrimvarReader_float2")
        reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set(ST)
        texture = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("BaseColor"))
        texture.CreateIdAttr("UsdUVTexture")
        texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(Sdf.AssetPath(texture_file))
        texture.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(
            reader.CreateOutput("result", Sdf.ValueTypeNames.Float2))
        texture.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
        texture.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("repeat")
        texture.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("repeat")
        if mat.color != (1.0, 1.0, 1.0, 1.0):
            texture.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*mat.color))
        diffuse.ConnectToSource(texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3))
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


def _bind_faces(mesh: UsdGeom.Mesh, per_face: np.ndarray | None,
                materials: list[UsdShade.Material]) -> None:
    """Bind each material of ``per_face`` ((m,) material index of each face) to a GeomSubset
    of the faces that use it, named after the material."""
    if per_face is None:
        return
    binding = UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim())
    order = np.argsort(per_face, kind="stable").astype(np.int32)
    used, starts = np.unique(per_face[order], return_index=True)
    for index, faces in zip(used, np.split(order, starts[1:]), strict=True):
        material = materials[int(index)]
        subset = binding.CreateMaterialBindSubset(material.GetPrim().GetName(),
                                                  Vt.IntArray.FromNumpy(faces))
        _bind(subset.GetPrim(), material)
    binding.SetMaterialBindSubsetsFamilyType(UsdGeom.Tokens.partition)


def _author_mesh(stage: Usd.Stage, path: Sdf.Path, pending: dict[int, MeshPart], index: int,
                 matrix: np.ndarray | None) -> UsdGeom.Mesh:
    """Author mesh ``pending[index]``, taking it out of ``pending``: each numpy array is let
    go as soon as pxr holds its copy, so a big mesh is never held twice."""
    mesh = pending.pop(index)
    usd_mesh = UsdGeom.Mesh.Define(stage, path)
    n_points, n_faces = len(mesh.points), len(mesh.faces)
    extent, interpolation, colors, uvs = mesh.extent, mesh.interpolation, mesh.colors, mesh.uvs
    points, faces, normals = mesh.points, mesh.faces, mesh.normals
    del mesh
    usd_mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points))
    del points
    usd_mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(n_faces, 3, np.int32)))
    usd_mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
    del faces
    usd_mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(normals))
    del normals
    usd_mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex if interpolation == "vertex"
                                     else UsdGeom.Tokens.faceVarying)
    usd_mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(extent))
    usd_mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    usd_mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    usd_mesh.CreateDoubleSidedAttr(False)
    if colors is not None:
        interp = UsdGeom.Tokens.vertex if len(colors) == n_points and \
            len(colors) != n_faces else UsdGeom.Tokens.uniform
        pv = usd_mesh.CreateDisplayColorPrimvar(interp)
        pv.Set(Vt.Vec3fArray.FromNumpy(colors))
    if uvs is not None:  # indexed: corners share coordinates (NVIDIA's IndexedPrimvarChecker)
        rows = np.ascontiguousarray(uvs, dtype=np.float32).view(np.dtype((np.void, 8))).ravel()
        _, first_use, of_corner = np.unique(rows, return_index=True, return_inverse=True)
        st = UsdGeom.PrimvarsAPI(usd_mesh).CreatePrimvar(
            ST, Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying)
        st.Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(uvs[first_use], dtype=np.float32)))
        st.SetIndices(Vt.IntArray.FromNumpy(of_corner.astype(np.int32).ravel()))
    if matrix is not None:
        usd_mesh.AddTransformOp().Set(_matrix(matrix))
    return usd_mesh


def _set_display_name(prim: Usd.Prim, label: str) -> None:
    if label and label != prim.GetName():
        try:
            prim.SetDisplayName(label)
        except Exception:  # displayName is cosmetic; old usd-core lacks it
            pass


def _author_part(stage: Usd.Stage, root: Sdf.Path, part: Part, step: Step,
                 textures: _Textures) -> None:
    """Author one part's Geom, Materials and Prototypes under ``root``; takes the part's
    meshes (each is let go once authored)."""
    pending = dict(enumerate(part.meshes.take_all()))
    mesh_material = [m.material for m in pending.values()]
    face_materials = [m.face_materials for m in pending.values()]
    mats_path = root.AppendChild("Materials")
    UsdGeom.Scope.Define(stage, mats_path)
    materials = [_author_material(stage, mats_path, m, None if m.texture is None else
                                  textures.add(f"{part.name}_{m.name}.png", m.texture))
                 for m in part.materials]
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
            mesh_name = pending[i].name
            ppath = proto_root.AppendChild(mesh_name)
            pspec = Sdf.CreatePrimInLayer(stage.GetRootLayer(), ppath)
            pspec.specifier = Sdf.SpecifierClass
            pspec.typeName = "Xform"
            _author_mesh(stage, ppath.AppendChild("Mesh"), pending, i, None)
            protos[i] = ppath
            step(f"{part.name}: mesh {mesh_name}")

    def instance(path: Sdf.Path, mesh: int, matrix: np.ndarray | None, label: str) -> None:
        xf = UsdGeom.Xform.Define(stage, path)
        prim = xf.GetPrim()
        prim.GetReferences().AddInternalReference(protos[mesh])
        prim.SetInstanceable(True)
        if matrix is not None:
            xf.AddTransformOp().Set(_matrix(matrix))
        _bind(prim, materials[mesh_material[mesh]])
        _set_display_name(prim, label)

    # depth first, in source order; a loop, not a recursive closure: that would be a
    # reference cycle holding the part's arrays (and the stage) until the garbage collector ran
    todo = [(geom_path, node) for node in reversed(part.nodes)]
    while todo:
        parent, node = todo.pop()
        path = parent.AppendChild(node.name)
        if node.mesh is not None and node.mesh in protos and not node.children:
            instance(path, node.mesh, node.matrix, node.label)
            continue
        if node.mesh is not None and not node.children:
            mesh_name = pending[node.mesh].name
            um = _author_mesh(stage, path, pending, node.mesh, node.matrix)
            _bind(um.GetPrim(), materials[mesh_material[node.mesh]])
            _bind_faces(um, face_materials[node.mesh], materials)
            _set_display_name(um.GetPrim(), node.label)
            step(f"{part.name}: mesh {mesh_name}")
            continue
        xf = UsdGeom.Xform.Define(stage, path)
        if node.matrix is not None:
            xf.AddTransformOp().Set(_matrix(node.matrix))
        _set_display_name(xf.GetPrim(), node.label)
        if node.mesh is not None and node.mesh in protos:
            instance(path.AppendChild("Mesh"), node.mesh, None, "")
        elif node.mesh is not None:
            um = _author_mesh(stage, path.AppendChild("Mesh"), pending, node.mesh, None)
            _bind(um.GetPrim(), materials[mesh_material[node.mesh]])
            _bind_faces(um, face_materials[node.mesh], materials)
        todo.extend((path, child) for child in reversed(node.children))


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
        if part.tessellation:
            sources[part.name]["tessellation"] = part.tessellation
    scaled = "points scaled to stage units" if meters_per_unit == 1.0 else "source units kept"
    return {"twin3d": {
        "converter": f"twin3d {version}",
        "metersPerUnit": float(meters_per_unit),
        "upAxis": up_axis,
        "decisions": f"{scaled}; points rotated to {up_axis}-up; no scale or rotation on the root",
        "sources": sources,
    }}


class AuthoredAsset:
    """A converted asset authored in memory: :meth:`save` writes its two layers.

    Authoring and saving are apart so that the caller can hand freed memory back in between:
    the ``.usdc`` writer needs working memory of its own (``benchmarks/RESULTS.md``,
    "Conversion").
    """

    def __init__(self, geometry: Sdf.Layer, root: Sdf.Path, meta: dict[str, Any], axis: str,
                 meters_per_unit: float, assembly: bool, extent: Gf.Range3d,
                 geometry_asset_path: str, textures: dict[str, bytes]) -> None:
        #: texture files the geometry layer refers to: name in the texture folder -> PNG bytes
        self.textures = textures
        self._geometry = geometry
        self._root = root
        self._meta = meta
        self._axis = axis
        self._mpu = meters_per_unit
        self._assembly = assembly
        self._extent = extent
        self._geometry_asset_path = geometry_asset_path

    def save(self, interface: Path, geometry: Path, textures: Path | None = None) -> None:
        """Write the ``.usdc`` geometry layer to ``geometry``, the interface layer (any USD
        suffix), which payloads it through the asset path given when authoring, to
        ``interface``, and the :attr:`textures` into the folder ``textures`` (created)."""
        if self.textures:
            if textures is None:
                raise ValueError("this asset has textures: give the folder to write them to")
            textures.mkdir(exist_ok=True)
            for file, data in self.textures.items():
                (textures / file).write_bytes(data)
        self._geometry.Export(str(geometry))
        iface = Sdf.Layer.CreateAnonymous(interface.suffix)
        istage = Usd.Stage.Open(iface, Usd.Stage.LoadNone)
        UsdGeom.SetStageUpAxis(istage, self._axis)
        UsdGeom.SetStageMetersPerUnit(istage, self._mpu)
        if self._geometry.pseudoRoot.HasInfo("kilogramsPerUnit"):  # a robot's physics
            iface.pseudoRoot.SetInfo("kilogramsPerUnit",
                                     self._geometry.pseudoRoot.GetInfo("kilogramsPerUnit"))
        itop = UsdGeom.Xform.Define(istage, self._root)
        istage.SetDefaultPrim(itop.GetPrim())
        Usd.ModelAPI(itop.GetPrim()).SetKind(Kind.Tokens.assembly if self._assembly
                                             else Kind.Tokens.component)
        itop.GetPrim().GetPayloads().AddPayload(self._geometry_asset_path)
        if not self._extent.IsEmpty():
            UsdGeom.ModelAPI(itop).SetExtentsHint(Vt.Vec3fArray(
                [Gf.Vec3f(*self._extent.GetMin()), Gf.Vec3f(*self._extent.GetMax())]))
        iface.customLayerData = self._meta
        iface.Export(str(interface))


def author_asset(parts: Sequence[Part], *, name: str, meters_per_unit: float, up_axis: str,
                 version: str, geometry_asset_path: str, texture_folder: str = "textures",
                 step: Step | None = None, finish: Finish | None = None,
                 provenance: dict[str, Any] | None = None) -> AuthoredAsset:
    """Author the parts' geometry layer in memory.

    Takes the parts' meshes (``Part.meshes.take_all``), and lets each mesh's arrays go as
    soon as pxr holds its copy of them, so a big mesh is never in memory twice.

    Args:
        parts: one or more converted inputs (several make an assembly).
        name: the root prim's name.
        meters_per_unit: the stage's metersPerUnit.
        up_axis: ``"Z"`` or ``"Y"``.
        version: converter version for the provenance.
        geometry_asset_path: how the interface layer will refer to the geometry layer
            (relative, e.g. ``./OUT.geom.usdc``).
        texture_folder: the folder beside the layers that textures will be saved in (the
            materials refer to ``./<texture_folder>/<Part>_<Material>.png``).
        step: called with a label after each mesh (progress).
        finish: called with the geometry stage and the root prim's path once the parts are
            authored (a URDF robot's physics and bindings: :mod:`twin3d.usd.articulation`).
        provenance: more entries for the layers' ``customLayerData["twin3d"]``.
    """
    step = step or (lambda _label: None)
    textures = _Textures(texture_folder)
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
            _author_part(stage, ppath, part, step, textures)
    else:
        _author_part(stage, root, parts[0], step, textures)
    if finish is not None:
        finish(stage, root)
    meta["twin3d"].update(provenance or {})
    extent = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_],
                               useExtentsHint=False).ComputeWorldBound(top.GetPrim()).ComputeAlignedRange()
    geo_layer.customLayerData = meta
    return AuthoredAsset(geo_layer, root, meta, axis, meters_per_unit, assembly, extent,
                         geometry_asset_path, textures.files)


def package_usdz(interface: Path, output: Path) -> None:
    """Package ``interface`` (and the layers it references) into the ``.usdz`` ``output``."""
    if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(interface)), str(output)):
        raise OSError(f"cannot package {interface} into {output}")
