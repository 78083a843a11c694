"""``twin3d info``: a stage described in text (units, layers, hierarchy, bound sensors)."""

from __future__ import annotations

from collections.abc import Sequence

from pxr import Usd, UsdGeom

from twin3d._types import PathLike
from twin3d.usd.bindings import LIMIT_ATTRS, read_sensors
from twin3d.usd.layer import open_stage

__all__ = ["stage_info", "stage_meters_per_unit"]


def stage_meters_per_unit(path: PathLike) -> float:
    """The metersPerUnit of the stage at ``path``."""
    return float(UsdGeom.GetStageMetersPerUnit(open_stage(path)))


def _fmt(p: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in p) + ")"


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
        lim = ", ".join(f"{k}={v:g}" for k in LIMIT_ATTRS if (v := getattr(s.limits, k)) is not None)
        lines.append(f"  {s.channel:<16} {s.quantity:<12} [{s.unit}] -> {s.target} at "
                     f"{_fmt(s.position or (0, 0, 0))} (snapped {s.snap_distance * mpu * 1000:.2f} mm"
                     f", vertex {s.vertex}){f'  limits: {lim}' if lim else ''}")
    return "\n".join(lines)
