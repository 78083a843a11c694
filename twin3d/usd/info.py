"""``twin3d info``: a stage described in text (units, size, layers, hierarchy, bound sensors).

Sizes are world-space bounding boxes, in millimetres with their corners in stage units, so
sensor positions can be written from them; meshes inside instances are listed (as instance
proxies), since sensors may sit on them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pxr import Usd, UsdGeom

from twin3d._types import PathLike
from twin3d.model import Sensor
from twin3d.usd.bindings import LIMIT_ATTRS, read_sensors
from twin3d.usd.layer import open_stage

__all__ = ["stage_info", "stage_meters_per_unit", "where_on_mesh"]


def stage_meters_per_unit(path: PathLike) -> float:
    """The metersPerUnit of the stage at ``path``."""
    return float(UsdGeom.GetStageMetersPerUnit(open_stage(path)))


def where_on_mesh(sensor: Sensor) -> str:
    """Where a bound sensor sits on its mesh, as ``bind`` and ``info`` print it.

    Examples:
        >>> where_on_mesh(Sensor("a/t", "temperature", "degC", "/A/M", (0.0, 0.0, 0.0),
        ...                      triangle=7, barycentric=(0.5, 0.25, 0.25)))
        'in triangle 7 at (0.5, 0.25, 0.25)'
    """
    if sensor.vertex is not None:
        return f"at vertex {sensor.vertex}"
    if sensor.triangle is not None and sensor.barycentric is not None:
        return f"in triangle {sensor.triangle} at {_fmt(round(x, 3) for x in sensor.barycentric)}"
    return "on its mesh"


def _fmt(p: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in p) + ")"


def _size(box: UsdGeom.BBoxCache, prim: Usd.Prim, mpu: float) -> str:
    """``size X × Y × Z mm, from (min) to (max)``: a prim's world box, corners in stage units."""
    r = box.ComputeWorldBound(prim).ComputeAlignedRange()
    if r.IsEmpty():
        return "size: empty"
    lo, hi = r.GetMin(), r.GetMax()
    mm = " × ".join(f"{(hi[i] - lo[i]) * mpu * 1000:.4g}" for i in range(3))
    return f"size {mm} mm, from {_fmt(lo)} to {_fmt(hi)}"


def stage_info(path: PathLike, *, max_prims: int = 80) -> str:
    """Return a text summary of a stage: units, size, layers, hierarchy and bound sensors.

    Args:
        path: the stage.
        max_prims: prims listed before the hierarchy is cut short.

    Raises:
        StageError: the stage is missing or not a readable USD file (one line).
    """
    stage = open_stage(path)
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage))
    root = stage.GetDefaultPrim()
    box = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_,
                                                     UsdGeom.Tokens.render])
    lines = [f"stage: {path}",
             f"  upAxis {UsdGeom.GetStageUpAxis(stage)}, metersPerUnit {mpu:g}, "
             f"defaultPrim {root.GetPath() if root else '(none)'}"]
    if root:
        lines.append(f"  {_size(box, root, mpu)} (world space, stage units)")
    if stage.HasAuthoredTimeCodeRange():
        lines.append(f"  time codes {stage.GetStartTimeCode():g}..{stage.GetEndTimeCode():g} at "
                     f"{stage.GetTimeCodesPerSecond():g}/s")
    lines.append("layers:")
    for layer in dict.fromkeys(stage.GetLayerStack(includeSessionLayers=False)):
        lines.append(f"  {layer.identifier}")
    lines.append("hierarchy:")
    n = 0
    for prim in Usd.PrimRange(stage.GetPseudoRoot(), Usd.TraverseInstanceProxies()):
        if prim.IsPseudoRoot():
            continue
        depth = len(prim.GetPath().GetPrefixes())
        n += 1
        if n > max_prims:
            continue
        indent = "  " * depth
        extra = "  (instance)" if prim.IsInstance() else ""
        size = ""
        if prim.IsA(UsdGeom.Mesh):
            mesh = UsdGeom.Mesh(prim)
            pts = mesh.GetPointsAttr().Get()
            counts = mesh.GetFaceVertexCountsAttr().Get()
            extra = f"  ({len(pts or [])} points, {len(counts or [])} faces)"
            size = f"\n{indent}    {_size(box, prim, mpu)}"
        kind = Usd.ModelAPI(prim).GetKind()
        lines.append(f"{indent}{prim.GetName()} [{prim.GetTypeName() or '-'}]"
                     f"{f' kind={kind}' if kind else ''}{extra}{size}")
    if n > max_prims:
        lines.append(f"  ... {n - max_prims} more prims")
    sensors = read_sensors(stage)
    lines.append(f"sensors: {len(sensors)}")
    for s in sensors.values():
        lim = ", ".join(f"{k}={v:g}" for k in LIMIT_ATTRS if (v := getattr(s.limits, k)) is not None)
        lines.append(f"  {s.channel:<16} {s.quantity:<12} [{s.unit}] -> {s.target} at "
                     f"{_fmt(s.position or (0, 0, 0))} (snapped {s.snap_distance * mpu * 1000:.2f} mm"
                     f", {where_on_mesh(s)}){f'  limits: {lim}' if lim else ''}")
    return "\n".join(lines)
