"""``twin3d bind``: check a sensor map against a stage and author its sensors into the stage.

Each sensor becomes a small ``Sphere`` marker at ``/<Root>/Sensors/<channel as identifier>``
in the stage's root (interface) layer, with the ``Twin3DSensorAPI`` applied: ``twin:``
attributes (channel, quantity, unit, limits, snap distance, nearest vertex), a ``twin:target``
relationship to the mesh it sits on, and ``primvars:displayColor`` (grey until a value
arrives) read by the display-colour preview material, so the marker's colour shows in every
renderer. :mod:`twin3d.usd.bindings` reads them back.

Positions are snapped to the nearest surface point of the target (``trimesh.proximity``);
a position farther than the tolerance is an error, as are unknown targets. Every check
runs before the first edit, so a bad map leaves the stage untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils

from twin3d._types import PathLike
from twin3d.colormap import linear_state_color
from twin3d.errors import BindingError, StageError
from twin3d.model import Sensor
from twin3d.sensors import DEFAULT_SNAP_TOLERANCE_M, SensorMap
from twin3d.usd.bindings import ENGINE_KEY, LIMIT_ATTRS, MODEL_KEY, SENSORS_SCOPE, sensor_prim_name
from twin3d.usd.geometry import triangulate
from twin3d.usd.layer import open_stage, save_layer
from twin3d.usd.material import define_display_color_material
from twin3d.usd.schema import SENSOR_API

__all__ = ["bind_sensors"]

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
            out.append(_replace(s, tuple(map(float, p)), s.vertex, 0.0))
            continue
        assert s.position is not None
        q = np.asarray([s.position], dtype=np.float64)
        closest, dist, _ = trimesh.proximity.closest_point(tm, q)  # type: ignore[no-untyped-call]
        d = float(dist[0])
        if d > tolerance:
            raise BindingError(s.channel, f"position {_fmt(s.position)} is {d * mpu * 1000:.1f} mm "
                                          f"from the surface of {s.target} (tolerance "
                                          f"{tolerance * mpu * 1000:.1f} mm): fix the position or "
                                          "raise snap_tolerance")
        vertex = int(tm.kdtree.query(closest[0])[1])  # the mesh point nearest the sensor
        out.append(_replace(s, tuple(map(float, closest[0])), vertex, d))
    return out


def _replace(s: Sensor, pos: tuple[float, ...], vertex: int, snap: float) -> Sensor:
    from dataclasses import replace

    return replace(s, position=(pos[0], pos[1], pos[2]), vertex=vertex, snap_distance=snap)


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
    for s, req in zip(sensors, requested):
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
        _attr(prim, "twin:vertex", Sdf.ValueTypeNames.Int, int(s.vertex if s.vertex is not None else -1))
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
        The sensors as bound: positions snapped (world space, stage units), nearest
        vertex and snap distance filled in.

    Raises:
        StageError: the stage cannot be opened or has no defaultPrim.
        BindingError: unknown target, position beyond the tolerance, vertex out of range;
            nothing is written.
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
        _author(stage, root, bound, sensor_map.sensors, sensor_map.model, sensor_map.engine)
        _export(layer, Path(output if output is not None else layer.realPath))
    finally:
        layer.Reload(force=True)  # never leave an edited in-memory copy behind
    return bound


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
