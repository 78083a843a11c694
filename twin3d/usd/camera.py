"""USD cameras: read the cameras of a stage as keyframes; write a path as a time-sampled camera.

The written camera layer sublayers the stage, so opening it in usdview or Omniverse shows the
scene and a ``UsdGeom.Camera`` whose ``xformOp:transform`` is sampled once per frame.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pxr import Gf, Sdf, Usd, UsdGeom

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.errors import StageError
from twin3d.usd.layer import open_stage

__all__ = ["CameraKeys", "export_camera_path", "read_cameras"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class CameraKeys:
    """A camera of a stage, as keyframes (one per authored time sample, else one).

    Attributes:
        path: the camera prim path.
        times: (k,) time codes.
        positions: (k, 3) float64 eye positions, world space, stage units.
        focal_points: (k, 3) float64 points looked at (eye + focusDistance along the view).
        up: the camera's up vector at the first key.
        fov: vertical field of view in degrees.
    """

    path: str
    times: F64
    positions: F64
    focal_points: F64
    up: tuple[float, float, float]
    fov: float


def _frame(cam: UsdGeom.Camera, tc: Usd.TimeCode, cache: UsdGeom.XformCache,
           dist: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cache.SetTime(tc)
    m = cache.GetLocalToWorldTransform(cam.GetPrim())
    eye = np.array(m.Transform(Gf.Vec3d(0, 0, 0)))
    ahead = np.array(m.TransformDir(Gf.Vec3d(0, 0, -1)))
    up = np.array(m.TransformDir(Gf.Vec3d(0, 1, 0)))
    ahead /= np.linalg.norm(ahead) or 1.0
    return eye, eye + dist * ahead, up / (np.linalg.norm(up) or 1.0)


def read_cameras(stage: Usd.Stage | PathLike) -> list[CameraKeys]:
    """Return every ``UsdGeom.Camera`` of the stage as keyframes.

    The focal point lies ``focusDistance`` ahead of the eye (cameras written by
    :func:`export_camera_path` store it per frame), or 1 stage unit when it is not authored.
    """
    if not isinstance(stage, Usd.Stage):
        stage = open_stage(stage)
    out: list[CameraKeys] = []
    for prim in stage.Traverse():
        if not prim.IsA(UsdGeom.Camera):
            continue
        cam = UsdGeom.Camera(prim)
        times: list[float] = sorted({t for op in UsdGeom.Xformable(prim).GetOrderedXformOps()
                                     for t in op.GetAttr().GetTimeSamples()})
        codes = [Usd.TimeCode(t) for t in times] or [Usd.TimeCode.Default()]
        cache = UsdGeom.XformCache()
        eyes, focs, ups = [], [], []
        for tc in codes:
            dist = cam.GetFocusDistanceAttr().Get(tc)
            eye, foc, up = _frame(cam, tc, cache, float(dist) if dist else 1.0)
            eyes.append(eye)
            focs.append(foc)
            ups.append(up)
        gc = cam.GetCamera(codes[0])
        out.append(CameraKeys(str(prim.GetPath()), np.asarray(times or [0.0], dtype=np.float64),
                              np.asarray(eyes), np.asarray(focs),
                              tuple(float(x) for x in ups[0]),  # type: ignore[arg-type]
                              float(gc.GetFieldOfView(Gf.Camera.FOVVertical))))
    return out


def export_camera_path(
    output: PathLike,
    stage_path: PathLike,
    positions: npt.ArrayLike,
    focal_points: npt.ArrayLike,
    *,
    up: Sequence[float] = (0.0, 0.0, 1.0),
    fov: float = 30.0,
    fps: float = 30.0,
    camera: str = "/WalkCamera",
) -> str:
    """Write a layer with a time-sampled camera that follows the path, over the stage.

    Args:
        output: the camera layer (``.usda``/``.usdc``/``.usd``); it sublayers ``stage_path``.
        stage_path: the stage the camera walks through.
        positions: (n, 3) eye positions per frame, stage units.
        focal_points: (n, 3) points looked at per frame.
        up: view-up vector.
        fov: vertical field of view, degrees.
        fps: frames per second (``timeCodesPerSecond``); frame i is time code i.
        camera: the camera prim path.

    Returns:
        The output path.

    Raises:
        StageError: the stage cannot be opened, or the path is empty.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    foc = np.asarray(focal_points, dtype=np.float64).reshape(-1, 3)
    if len(pos) == 0 or len(pos) != len(foc):
        raise StageError(f"camera path has {len(pos)} positions and {len(foc)} focal points; "
                         "give one of each per frame")
    src = open_stage(stage_path)
    out = os.fspath(output)
    with atomic_output(out) as tmp:
        layer = Sdf.Layer.CreateNew(str(tmp))
        rel = os.path.relpath(os.path.abspath(os.fspath(stage_path)),
                              os.path.dirname(os.path.abspath(out)))
        layer.subLayerPaths.append(rel.replace(os.sep, "/"))
        stage = Usd.Stage.Open(layer)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.GetStageUpAxis(src))
        UsdGeom.SetStageMetersPerUnit(stage, UsdGeom.GetStageMetersPerUnit(src))
        stage.SetStartTimeCode(0)
        stage.SetEndTimeCode(len(pos) - 1)
        stage.SetTimeCodesPerSecond(fps)
        stage.SetFramesPerSecond(fps)
        cam = UsdGeom.Camera.Define(stage, camera)
        # a 35 mm-style aperture; focal length from the vertical fov
        v_ap = 15.2908
        cam.CreateVerticalApertureAttr(v_ap)
        cam.CreateHorizontalApertureAttr(20.955)
        cam.CreateFocalLengthAttr(v_ap / (2.0 * math.tan(math.radians(fov) / 2.0)))
        span = float(np.ptp(np.vstack([pos, foc]), axis=0).max()) or 1.0
        cam.CreateClippingRangeAttr(Gf.Vec2f(span * 1e-3, span * 100.0))
        op = cam.AddTransformOp()
        fd = cam.CreateFocusDistanceAttr()
        upv = Gf.Vec3d(*map(float, up))
        for i, (p, f) in enumerate(zip(pos, foc)):
            view = Gf.Matrix4d().SetLookAt(Gf.Vec3d(*p), Gf.Vec3d(*f), upv)
            op.Set(view.GetInverse(), Usd.TimeCode(i))
            fd.Set(float(np.linalg.norm(f - p)), Usd.TimeCode(i))
        layer.Save()
    return out
