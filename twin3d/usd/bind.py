"""``twin3d bind``: check a bindings file against a stage and author its sensors and property
bindings into the stage.

Each sensor becomes a small ``Sphere`` marker at ``/<Root>/Sensors/<channel as identifier>``
in the stage's root (interface) layer, with the ``Twin3DSensorAPI`` applied: ``twin:``
attributes (channel, quantity, unit, limits, snap distance, and where on the target it sits:
the triangle and barycentric coordinates, or the vertex it was given at), a ``twin:target``
relationship to the mesh it sits on, and ``primvars:displayColor`` (grey until a value
arrives) read by the display-colour preview material, so the marker's colour shows in every
renderer. :mod:`twin3d.usd.bindings` reads them back.

Positions are snapped to the nearest surface point of the target (:func:`twin3d.display.locate`);
a position farther than the tolerance is an error, as are unknown targets. Every check
runs before the first edit, so a bad map leaves the stage untouched.

Each ``[[binding]]`` becomes an instance of the multiple-apply ``Twin3DBindingAPI`` on its
prim (:func:`apply_binding`), in the same root layer: the binding's properties with axis
and pivot turned into the prim's local frame, and, for rotate and translate, the ops it drives
appended to the prim's op order at rest (:func:`twin3d.usd.motion.append_ops`). Binding again
replaces the bindings the root layer had; those authored in the asset itself (a URDF robot's
joints) stay.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils

from twin3d._types import PathLike
from twin3d.colormap import linear_state_color
from twin3d.display import locate
from twin3d.errors import BindingError, StageError
from twin3d.model import Sensor
from twin3d.sensors import DEFAULT_SNAP_TOLERANCE_M, PropertyBinding, SensorMap
from twin3d.usd.bindings import (
    BINDING_NAMESPACE,
    ENGINE_KEY,
    LIMIT_ATTRS,
    MODEL_KEY,
    SENSORS_SCOPE,
    binding_attr,
    sensor_prim_name,
)
from twin3d.usd.layer import open_stage, save_layer
from twin3d.usd.material import define_display_color_material
from twin3d.usd.meshes import triangulate
from twin3d.usd.motion import OP_PREFIX, append_ops
from twin3d.usd.schema import BINDING_API, SENSOR_API

__all__ = ["apply_binding", "bind_sensors"]

_MARKER_MATERIAL = "Materials/Marker"


def _root_prim(stage: Usd.Stage, where: str) -> Usd.Prim:
    root = stage.GetDefaultPrim()
    if not root:
        raise StageError(f"{where}: the stage has no defaultPrim; write it with 'twin3d convert'")
    return root


def _world_mesh(prim: Usd.Prim) -> tuple[np.ndarray, np.ndarray]:
    mesh = UsdGeom.Mesh(prim)
    pts = mesh.GetPointsAttr().Get()
    counts = mesh.GetFaceVertexCountsAttr().Get()
    idx = mesh.GetFaceVertexIndicesAttr().Get()
    if pts is None or counts is None or idx is None or len(pts) == 0:
        raise ValueError("has no points or faces")
    m = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()),
                   dtype=np.float64)
    local = np.asarray(pts, dtype=np.float64)
    return local @ m[:3, :3] + m[3, :3], triangulate(counts, idx)


def _snap(sensors: Sequence[Sensor], stage: Usd.Stage, tolerance: float,
          mpu: float) -> list[Sensor]:
    """Check each sensor against the stage and return it snapped; raises before any edit."""
    meshes: dict[str, trimesh.Trimesh] = {}
    names: dict[str, str] = {}
    out: list[Sensor] = []
    for s in sensors:
        name = sensor_prim_name(s.channel)
        if name in names:
            raise BindingError(s.channel, f"its prim name {name!r} clashes with channel "
                                          f"{names[name]!r}: rename one of them")
        names[name] = s.channel
        if not Sdf.Path.IsValidPathString(s.target):
            raise BindingError(s.channel, f"target {s.target!r} is not a valid prim path")
        prim = stage.GetPrimAtPath(s.target)
        if not prim:
            raise BindingError(s.channel, f"target {s.target} is not on the stage "
                                          "(see 'twin3d info' for its meshes)")
        if not prim.IsA(UsdGeom.Mesh):
            raise BindingError(s.channel, f"target {s.target} is a {prim.GetTypeName() or 'typeless prim'}"
                                          ", not a Mesh: bind to one of its meshes")
        if s.target not in meshes:
            try:
                pts, faces = _world_mesh(prim)
            except ValueError as exc:
                raise BindingError(s.channel, f"target {s.target} {exc}") from None
            meshes[s.target] = trimesh.Trimesh(pts, faces, process=False)
        tm = meshes[s.target]
        if s.vertex is not None:
            if s.vertex >= len(tm.vertices):
                raise BindingError(s.channel, f"vertex {s.vertex} is out of range: {s.target} has "
                                              f"{len(tm.vertices)} points")
            p = tm.vertices[s.vertex]
            out.append(replace(s, position=(float(p[0]), float(p[1]), float(p[2])),
                               snap_distance=0.0))
            continue
        assert s.position is not None
        which, bary, dist = locate(tm.vertices, tm.faces, [s.position])
        d = float(dist[0])
        if d > tolerance:
            raise BindingError(s.channel, f"position {_fmt(s.position)} is {d * mpu * 1000:.1f} mm "
                                          f"from the surface of {s.target} (tolerance "
                                          f"{tolerance * mpu * 1000:.1f} mm): fix the position or "
                                          "raise snap_tolerance")
        lam = (float(bary[0, 0]), float(bary[0, 1]), float(bary[0, 2]))
        p = np.asarray(lam) @ tm.vertices[tm.faces[which[0]]]  # the surface point, in it
        out.append(replace(s, position=(float(p[0]), float(p[1]), float(p[2])), vertex=None,
                           snap_distance=d, triangle=int(which[0]), barycentric=lam))
    return out


def _fmt(p: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in p) + ")"


def _marker_radius(stage: Usd.Stage, targets: set[str]) -> float:
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_])
    diag = 0.0
    for t in targets:
        box = cache.ComputeWorldBound(stage.GetPrimAtPath(t)).ComputeAlignedRange()
        if not box.IsEmpty():
            diag = max(diag, float(box.GetSize().GetLength()))
    return 0.01 * diag if diag > 0 else 0.005 / UsdGeom.GetStageMetersPerUnit(stage)


def _author(stage: Usd.Stage, root: Usd.Prim, sensors: Sequence[Sensor],
            requested: Sequence[Sensor], model: Mapping[str, Any] | None = None,
            engine: Mapping[str, Any] | None = None) -> None:
    scope_path = root.GetPath().AppendChild(SENSORS_SCOPE)
    layer = stage.GetRootLayer()
    if layer.GetPrimAtPath(scope_path):  # re-binding replaces the previous sensors
        parent = layer.GetPrimAtPath(root.GetPath())
        del parent.nameChildren[SENSORS_SCOPE]
    if not sensors and not model:
        return
    scope = UsdGeom.Scope.Define(stage, scope_path)
    scope.GetPrim().SetDocumentation("Sensors bound by twin3d bind (Twin3DSensorAPI markers).")
    if model:  # the field models' [model] table travels with the binding
        scope.GetPrim().SetCustomDataByKey(MODEL_KEY, json.dumps(model, sort_keys=True))
    if engine:  # and so do the twin engine's [[virtual]] and [engine] tables
        scope.GetPrim().SetCustomDataByKey(ENGINE_KEY, json.dumps(engine, sort_keys=True))
    material_path = scope_path.AppendPath(_MARKER_MATERIAL)
    UsdGeom.Scope.Define(stage, material_path.GetParentPath())
    material = define_display_color_material(stage, material_path, roughness=0.6, emissive=True)
    radius = _marker_radius(stage, {s.target for s in sensors})
    to_local = np.asarray(UsdGeom.Xformable(root).ComputeLocalToWorldTransform(
        Usd.TimeCode.Default()).GetInverse(), dtype=np.float64)
    stale = Gf.Vec3f(*linear_state_color("stale"))
    for s, req in zip(sensors, requested, strict=True):
        assert s.position is not None
        sphere = UsdGeom.Sphere.Define(stage, scope_path.AppendChild(sensor_prim_name(s.channel)))
        prim = sphere.GetPrim()
        local = np.asarray(s.position) @ to_local[:3, :3] + to_local[3, :3]
        sphere.AddTranslateOp().Set(Gf.Vec3d(*map(float, local)))
        sphere.CreateRadiusAttr(radius)
        sphere.CreateExtentAttr([Gf.Vec3f(-radius), Gf.Vec3f(radius)])
        sphere.CreateDisplayColorAttr([stale])
        UsdShade.MaterialBindingAPI.Apply(prim).Bind(material)
        prim.AddAppliedSchema(SENSOR_API)
        prim.SetDocumentation(s.description or s.channel)
        _attr(prim, "twin:channel", Sdf.ValueTypeNames.String, s.channel)
        _attr(prim, "twin:quantity", Sdf.ValueTypeNames.Token, s.quantity)
        _attr(prim, "twin:unit", Sdf.ValueTypeNames.String, s.unit)
        if s.description:
            _attr(prim, "twin:description", Sdf.ValueTypeNames.String, s.description)
        if req.position is not None:
            _attr(prim, "twin:requestedPosition", Sdf.ValueTypeNames.Point3d,
                  Gf.Vec3d(*req.position))
        _attr(prim, "twin:snapDistance", Sdf.ValueTypeNames.Double, s.snap_distance)
        if s.vertex is not None:
            _attr(prim, "twin:vertex", Sdf.ValueTypeNames.Int, int(s.vertex))
        if s.triangle is not None and s.barycentric is not None:
            _attr(prim, "twin:triangle", Sdf.ValueTypeNames.Int, int(s.triangle))
            _attr(prim, "twin:barycentric", Sdf.ValueTypeNames.Double3, Gf.Vec3d(*s.barycentric))
        for key, name in LIMIT_ATTRS.items():
            value = getattr(s.limits, key)
            if value is not None:
                _attr(prim, name, Sdf.ValueTypeNames.Double, float(value))
        _attr(prim, "twin:state", Sdf.ValueTypeNames.Token, "stale", uniform=False)
        prim.CreateRelationship("twin:target", custom=False).SetTargets([Sdf.Path(s.target)])


def _attr(prim: Usd.Prim, name: str, type_name: Sdf.ValueTypeName, value: object,
          uniform: bool = True) -> None:
    variability = Sdf.VariabilityUniform if uniform else Sdf.VariabilityVarying
    prim.CreateAttribute(name, type_name, custom=False, variability=variability).Set(value)


def bind_sensors(stage_path: PathLike, sensor_map: SensorMap, output: PathLike | None = None,
                 *, tolerance_m: float | None = None) -> list[Sensor]:
    """Author the sensors of ``sensor_map`` into the stage's root layer.

    Args:
        stage_path: the stage (its root layer gets the ``Sensors`` scope).
        sensor_map: from :func:`twin3d.sensors.load_sensor_map`.
        output: write the bound root layer here instead of in place (asset paths are
            re-anchored when it lands in another folder).
        tolerance_m: largest distance in metres from a position to its target's surface
            (default: the map's ``snap_tolerance``, else 5 mm).

    Returns:
        The sensors as bound: positions snapped (world space, stage units), the triangle
        each sits in with its barycentric coordinates, and the snap distance filled in.

    Raises:
        StageError: the stage cannot be opened or has no defaultPrim.
        BindingError: unknown target, position beyond the tolerance, vertex out of range,
            a property binding whose prim, attribute or frame does not fit; nothing is
            written.
    """
    stage = open_stage(stage_path)
    root = _root_prim(stage, str(stage_path))
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage))
    tol_m = tolerance_m if tolerance_m is not None else sensor_map.snap_tolerance
    tolerance = (DEFAULT_SNAP_TOLERANCE_M if tol_m is None else tol_m) / mpu
    bound = _snap(sensor_map.sensors, stage, tolerance, mpu)
    layer = stage.GetRootLayer()
    stage.SetEditTarget(Usd.EditTarget(layer))
    try:
        _clear_bindings(stage)  # in memory until exported: the checks see the asset's own
        local = [_check_binding(stage, b) for b in sensor_map.bindings]
        _author(stage, root, bound, sensor_map.sensors, sensor_map.model, sensor_map.engine)
        for b in local:
            apply_binding(stage.GetPrimAtPath(b.prim), b)
        _export(layer, Path(output if output is not None else layer.realPath))
    finally:
        layer.Reload(force=True)  # never leave an edited in-memory copy behind
    return bound


_NUMERIC = {"float", "double", "half", "int", "uint", "int64", "uint64", "uchar"}


def _check_binding(stage: Usd.Stage, b: PropertyBinding) -> PropertyBinding:
    """Check a property binding against the stage; return it in the prim's local frame."""
    if not Sdf.Path.IsValidPathString(b.prim):
        raise BindingError(b.channel, f"prim {b.prim!r} is not a valid prim path")
    prim = stage.GetPrimAtPath(b.prim)
    if not prim:
        raise BindingError(b.channel, f"prim {b.prim} is not on the stage (see 'twin3d info' "
                                      "for its prims)")
    if prim.IsInstanceProxy():
        raise BindingError(b.channel, f"prim {b.prim} is inside an instance, which cannot be "
                                      "edited: bind the instance "
                                      f"{_instance_root(prim).GetPath()}")
    if f"{BINDING_API}:{b.name}" in prim.GetAppliedSchemas():
        raise BindingError(b.channel, f"{b.prim} already has a binding named {b.name!r} (from "
                                      "the asset): give this one another name = \"...\"")
    kind = b.kind
    if kind in ("rotate", "translate"):
        if not prim.IsA(UsdGeom.Xformable):
            raise BindingError(b.channel, f"prim {b.prim} is a {prim.GetTypeName() or 'typeless prim'}"
                                          ", which cannot move: bind an Xform or a mesh")
        return _to_local(prim, b) if b.frame == "world" else b
    if kind == "visible" and not prim.IsA(UsdGeom.Imageable):
        raise BindingError(b.channel, f"prim {b.prim} is a {prim.GetTypeName() or 'typeless prim'}"
                                      ", which has no visibility: bind an Xform or a mesh")
    if kind == "color" and not any(p.IsA(UsdGeom.Mesh) for p in Usd.PrimRange(
            prim, Usd.TraverseInstanceProxies())):
        raise BindingError(b.channel, f"prim {b.prim} has no meshes to colour")
    if kind == "attribute":
        attr = prim.GetAttribute(b.attribute)
        if not attr:
            names = [a.GetName() for a in prim.GetAttributes()
                     if a.GetTypeName().type.typeName in _TYPE_NAMES]
            raise BindingError(b.channel, f"prim {b.prim} has no attribute {b.attribute!r} "
                                          f"(numeric ones: {', '.join(names) or 'none'})")
        if attr.GetTypeName().type.typeName not in _TYPE_NAMES:
            raise BindingError(b.channel, f"attribute {b.attribute} of {b.prim} is a "
                                          f"{attr.GetTypeName()}, not a number: bind a numeric "
                                          "attribute")
        if attr.GetVariability() == Sdf.VariabilityUniform:
            raise BindingError(b.channel, f"attribute {b.attribute} of {b.prim} is uniform: it "
                                          "cannot change over time")
    return b


#: the C++ type names of scalar numeric attribute types
_TYPE_NAMES = {Sdf.ValueTypeNames.Find(t).type.typeName for t in _NUMERIC}


def _instance_root(prim: Usd.Prim) -> Usd.Prim:
    while prim.IsInstanceProxy():
        prim = prim.GetParent()
    return prim


def _to_local(prim: Usd.Prim, b: PropertyBinding) -> PropertyBinding:
    """Axis and pivot given in world space, turned into the prim's own frame (where its
    appended ops act): the world transform at rest, column-vector convention."""
    from dataclasses import replace

    world = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(
        Usd.TimeCode.Default()), dtype=np.float64).T
    lin = world[:3, :3]
    gram = lin.T @ lin
    s2 = float(np.trace(gram)) / 3.0
    if s2 <= 0.0 or not np.allclose(gram, s2 * np.eye(3), rtol=1e-6, atol=1e-9 * s2):
        raise BindingError(b.channel, f"prim {b.prim} has a non-uniform scale or shear, so a "
                                      "world axis is no rotation in its frame: give axis and "
                                      "pivot in its own frame (frame = \"local\")")
    inv = np.linalg.inv(world)
    given = np.asarray(b.axis, dtype=np.float64)
    axis = inv[:3, :3] @ (given / np.linalg.norm(given))
    if b.kind == "rotate":
        axis = axis / float(np.linalg.norm(axis))
    pivot = inv[:3, :3] @ np.asarray(b.pivot, dtype=np.float64) + inv[:3, 3]
    return replace(b, axis=(float(axis[0]), float(axis[1]), float(axis[2])),
                   pivot=(float(pivot[0]), float(pivot[1]), float(pivot[2])), frame="local")


def apply_binding(prim: Usd.Prim, b: PropertyBinding) -> None:
    """Author property binding ``b`` (local frame) on ``prim`` at the stage's edit target.

    Applies the ``Twin3DBindingAPI:<name>`` instance, writes the properties its kind uses,
    and for rotate and translate appends the ops it drives (:func:`append_ops`).

    Raises:
        StageError: the prim cannot carry it (not Xformable, ops of that name exist).
    """
    prim.AddAppliedSchema(f"{BINDING_API}:{b.name}")
    t = Sdf.ValueTypeNames

    def put(prop: str, type_name: Sdf.ValueTypeName, value: object) -> None:
        _attr(prim, binding_attr(b.name, prop), type_name, value)

    put("channel", t.String, b.channel)
    put("kind", t.Token, b.kind)
    if b.kind in ("rotate", "translate", "attribute"):
        put("scale", t.Double, b.scale)
        put("offset", t.Double, b.offset)
        if b.lower is not None:
            put("lower", t.Double, b.lower)
        if b.upper is not None:
            put("upper", t.Double, b.upper)
    if b.kind in ("rotate", "translate"):
        put("axis", t.Vector3d, Gf.Vec3d(*b.axis))
    if b.kind == "rotate":
        put("pivot", t.Point3d, Gf.Vec3d(*b.pivot))
    if b.kind == "visible":
        put("threshold", t.Double, b.threshold)
        put("invert", t.Bool, b.invert)
    if b.kind == "color" and b.colormap:
        put("colormap", t.Token, b.colormap)
        put("range", t.Double2, Gf.Vec2d(*b.range))
    if b.kind == "color" and not b.colormap:
        for key, name in LIMIT_ATTRS.items():
            value = getattr(b.states, key)
            if value is not None:
                put(name.rsplit(":", 1)[1], t.Double, float(value))
    if b.kind == "attribute":
        put("attribute", t.Token, b.attribute)
    if b.kind in ("rotate", "translate"):
        append_ops(prim, b)


def _clear_bindings(stage: Usd.Stage) -> None:
    """Take the property bindings out of the stage's root layer (``twin3d bind`` made them);
    those of weaker layers (the asset's own) stay."""
    layer = stage.GetRootLayer()
    specs: list[Sdf.PrimSpec] = []
    layer.Traverse(Sdf.Path.absoluteRootPath, lambda path: specs.append(layer.GetPrimAtPath(path))
                   if path.IsPrimPath() else None)
    for spec in specs:
        schemas = spec.GetInfo("apiSchemas")
        ours = [s for s in schemas.GetAddedOrExplicitItems() if s.startswith(f"{BINDING_API}:")]
        names = [p.name for p in spec.properties if p.name.startswith(f"{BINDING_NAMESPACE}:")
                 or (p.name.startswith("xformOp:") and len(p.name.split(":")) > 2
                     and p.name.split(":")[2].startswith(OP_PREFIX))]
        if not ours and not names:
            continue
        if ours:
            spec.SetInfo("apiSchemas", Sdf.TokenListOp.Create(
                prependedItems=[s for s in schemas.prependedItems if s not in ours],
                appendedItems=[s for s in schemas.appendedItems if s not in ours]))
        for name in names:
            spec.RemoveProperty(spec.properties[name])
        order = spec.properties.get("xformOpOrder")
        if order is None:
            continue
        kept = [op for op in (order.default or []) if not (len(op.split(":")) > 2 and
                                                           op.split(":")[2].startswith(OP_PREFIX))]
        order.default = kept
        stack = stage.GetPrimAtPath(spec.path).GetAttribute("xformOpOrder").GetPropertyStack(
            Usd.TimeCode.Default())
        weaker = stack[1].default if len(stack) > 1 else []
        if list(weaker or []) == kept:  # it only held the bindings' ops: the asset's order rules
            spec.RemoveProperty(order)


def _export(layer: Sdf.Layer, out: Path) -> None:
    src_dir = Path(layer.realPath).resolve().parent
    dst_dir = out.resolve().parent
    copy = Sdf.Layer.CreateAnonymous(out.suffix or ".usda")
    copy.TransferContent(layer)
    if src_dir != dst_dir:
        def reanchor(asset: str) -> str:
            if not asset or os.path.isabs(asset) or ":" in asset.split("/")[0]:
                return asset
            return os.path.relpath(src_dir / asset, dst_dir).replace(os.sep, "/")
        UsdUtils.ModifyAssetPaths(copy, reanchor)
    # a temporary file renamed over the target: readers never see a half-written stage
    save_layer(copy, out)
