"""Sensors in the stage: authoring the ``Sensors`` scope (``twin3d bind``) and reading it back.

Each sensor becomes a small ``Sphere`` marker at ``/<Root>/Sensors/<channel as identifier>``
in the stage's root (interface) layer, with the ``Twin3DSensorAPI`` applied: ``twin:``
attributes (channel, quantity, unit, limits, snap distance, nearest vertex), a ``twin:target``
relationship to the mesh it sits on, and ``primvars:displayColor`` (grey until a value
arrives) read by a small preview material, so the marker's colour shows in every renderer.

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
from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdShade, UsdUtils

from twin3d._types import PathLike
from twin3d.colormap import ALARM_COLORS
from twin3d.errors import BindingError, StageError
from twin3d.model import Limits, Sensor
from twin3d.sensors import DEFAULT_SNAP_TOLERANCE_M, SensorMap
from twin3d.usd.layer import open_stage, save_layer
from twin3d.usd.mesh import triangulate
from twin3d.usd.schema import SENSOR_API

__all__ = ["MODEL_KEY", "SENSORS_SCOPE", "bind_sensors", "read_model", "read_sensors", "sensor_prim_name",
           "sensor_prims", "stage_info", "stage_meters_per_unit"]

#: Name of the scope under the default prim that holds the sensor markers.
SENSORS_SCOPE = "Sensors"
#: customData key on the Sensors scope holding the sensor map's [model] table (JSON).
MODEL_KEY = "twin3d:model"
_MARKER_MATERIAL = "Materials/Marker"
_LIMIT_ATTRS = {"alarm_low": "twin:limits:alarmLow", "warn_low": "twin:limits:warnLow",
                "warn_high": "twin:limits:warnHigh", "alarm_high": "twin:limits:alarmHigh"}


def sensor_prim_name(channel: str) -> str:
    """Return the prim name of a channel's marker (a valid USD identifier).

    Examples:
        >>> sensor_prim_name("plate/tc3")
        'plate_tc3'
    """
    return str(Tf.MakeValidIdentifier(channel))


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


def _author_marker_material(stage: Usd.Stage, scope: Sdf.Path) -> UsdShade.Material:
    """A preview material whose colour is the prim's displayColor (shown by every renderer)."""
    path = scope.AppendPath(_MARKER_MATERIAL)
    UsdGeom.Scope.Define(stage, path.GetParentPath())
    material = UsdShade.Material.Define(stage, path)
    surface = UsdShade.Shader.Define(stage, path.AppendChild("PreviewSurface"))
    surface.CreateIdAttr("UsdPreviewSurface")
    reader = UsdShade.Shader.Define(stage, path.AppendChild("DisplayColor"))
    reader.CreateIdAttr("UsdPrimvarReader_float3")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("displayColor")
    reader.CreateInput("fallback", Sdf.ValueTypeNames.Float3).Set(Gf.Vec3f(*ALARM_COLORS["stale"]))
    out = reader.CreateOutput("result", Sdf.ValueTypeNames.Float3)
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(out)
    surface.CreateInput("emissiveColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(out)
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.6)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    return material


def _author(stage: Usd.Stage, root: Usd.Prim, sensors: Sequence[Sensor],
            requested: Sequence[Sensor], model: Mapping[str, Any] | None = None) -> None:
    scope_path = root.GetPath().AppendChild(SENSORS_SCOPE)
    layer = stage.GetRootLayer()
    if layer.GetPrimAtPath(scope_path):  # re-binding replaces the previous sensors
        parent = layer.GetPrimAtPath(root.GetPath())
        del parent.nameChildren[SENSORS_SCOPE]
    scope = UsdGeom.Scope.Define(stage, scope_path)
    scope.GetPrim().SetDocumentation("Sensors bound by twin3d bind (Twin3DSensorAPI markers).")
    if model:  # the field models' [model] table travels with the binding
        scope.GetPrim().SetCustomDataByKey(MODEL_KEY, json.dumps(model, sort_keys=True))
    material = _author_marker_material(stage, scope_path)
    radius = _marker_radius(stage, {s.target for s in sensors})
    to_local = np.asarray(UsdGeom.Xformable(root).ComputeLocalToWorldTransform(
        Usd.TimeCode.Default()).GetInverse(), dtype=np.float64)
    stale = Gf.Vec3f(*ALARM_COLORS["stale"])
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
        for key, name in _LIMIT_ATTRS.items():
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
        _author(stage, root, bound, sensor_map.sensors, sensor_map.model)
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


def stage_meters_per_unit(path: PathLike) -> float:
    """The metersPerUnit of the stage at ``path``."""
    return float(UsdGeom.GetStageMetersPerUnit(open_stage(path)))


def sensor_prims(stage: Usd.Stage) -> dict[str, Usd.Prim]:
    """Return ``{channel: marker prim}`` for the sensors bound on ``stage``.

    Works with or without the schema plugin: a sensor prim is any child of the ``Sensors``
    scope with a ``twin:channel`` attribute.
    """
    root = stage.GetDefaultPrim()
    if not root:
        return {}
    scope = root.GetChild(SENSORS_SCOPE)
    out: dict[str, Usd.Prim] = {}
    if not scope:
        return out
    for prim in scope.GetChildren():
        attr = prim.GetAttribute("twin:channel")
        channel = attr.Get() if attr else None
        if channel:
            out[str(channel)] = prim
    return out


def _get(prim: Usd.Prim, name: str) -> object:
    attr = prim.GetAttribute(name)
    return attr.Get() if attr and attr.HasAuthoredValue() else None


def read_model(stage: Usd.Stage) -> dict[str, Any]:
    """The sensor map's ``[model]`` table that ``bind`` stored on the stage (``{}`` if none)."""
    root = stage.GetDefaultPrim()
    scope = root.GetChild(SENSORS_SCOPE) if root else None
    text = scope.GetCustomDataByKey(MODEL_KEY) if scope else None
    if not text or scope is None:
        return {}
    try:
        model = json.loads(str(text))
    except ValueError:
        raise StageError(f"the {MODEL_KEY} custom data of {scope.GetPath()} is not valid JSON; "
                         "bind the sensor map again") from None
    return model if isinstance(model, dict) else {}


def read_sensors(stage: Usd.Stage) -> dict[str, Sensor]:
    """Return ``{channel: Sensor}`` for the sensors bound on ``stage``.

    Positions are the markers' world positions (stage units), i.e. after snapping.
    """
    cache = UsdGeom.XformCache(Usd.TimeCode.Default())
    out: dict[str, Sensor] = {}
    for channel, prim in sensor_prims(stage).items():
        m = cache.GetLocalToWorldTransform(prim)
        t = m.ExtractTranslation()
        targets = prim.GetRelationship("twin:target").GetTargets() if prim.GetRelationship(
            "twin:target") else []
        limits = Limits(**{k: (None if (v := _get(prim, a)) is None else float(v))  # type: ignore[arg-type]
                           for k, a in _LIMIT_ATTRS.items()})
        vertex = _get(prim, "twin:vertex")
        out[channel] = Sensor(
            channel=channel,
            quantity=str(_get(prim, "twin:quantity") or "generic"),
            unit=str(_get(prim, "twin:unit") or ""),
            target=str(targets[0]) if targets else "",
            position=(float(t[0]), float(t[1]), float(t[2])),
            vertex=None if vertex is None or int(vertex) < 0 else int(vertex),  # type: ignore[call-overload]
            limits=limits,
            description=str(_get(prim, "twin:description") or ""),
            snap_distance=float(_get(prim, "twin:snapDistance") or 0.0),  # type: ignore[arg-type]
        )
    return out


def stage_info(path: PathLike, *, max_prims: int = 60) -> str:
    """Return a text summary of a stage: layers, units, hierarchy and bound sensors."""
    stage = open_stage(path)
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage))
    root = stage.GetDefaultPrim()
    lines = [f"stage: {path}",
             f"  upAxis {UsdGeom.GetStageUpAxis(stage)}, metersPerUnit {mpu:g}, "
             f"defaultPrim {root.GetPath() if root else '(none)'}"]
    if stage.HasAuthoredTimeCodeRange():
        lines.append(f"  time codes {stage.GetStartTimeCode():g}..{stage.GetEndTimeCode():g} at "
                     f"{stage.GetTimeCodesPerSecond():g}/s")
    lines.append("layers:")
    for layer in dict.fromkeys(stage.GetLayerStack(includeSessionLayers=False)):
        lines.append(f"  {layer.identifier}")
    lines.append("hierarchy:")
    n = 0
    for prim in Usd.PrimRange(stage.GetPseudoRoot()):
        if prim.IsPseudoRoot():
            continue
        depth = len(prim.GetPath().GetPrefixes())
        n += 1
        if n > max_prims:
            continue
        extra = ""
        if prim.IsA(UsdGeom.Mesh):
            mesh = UsdGeom.Mesh(prim)
            pts = mesh.GetPointsAttr().Get()
            counts = mesh.GetFaceVertexCountsAttr().Get()
            extra = f"  ({len(pts or [])} points, {len(counts or [])} faces)"
        kind = Usd.ModelAPI(prim).GetKind()
        lines.append(f"  {'  ' * (depth - 1)}{prim.GetName()} [{prim.GetTypeName() or '-'}]"
                     f"{f' kind={kind}' if kind else ''}{extra}")
    if n > max_prims:
        lines.append(f"  ... {n - max_prims} more prims")
    sensors = read_sensors(stage)
    lines.append(f"sensors: {len(sensors)}")
    for s in sensors.values():
        lim = ", ".join(f"{k}={v:g}" for k in _LIMIT_ATTRS if (v := getattr(s.limits, k)) is not None)
        lines.append(f"  {s.channel:<16} {s.quantity:<12} [{s.unit}] -> {s.target} at "
                     f"{_fmt(s.position or (0, 0, 0))} (snapped {s.snap_distance * mpu * 1000:.2f} mm"
                     f", vertex {s.vertex}){f'  limits: {lim}' if lim else ''}")
    return "\n".join(lines)
