"""USD cameras: read the cameras of a stage as keyframes; write a path as a time-sampled camera.

The written camera layer (crate) sublayers the stage, so opening it in usdview or Omniverse
shows the scene and a ``UsdGeom.Camera`` under the default prim whose ``xformOp:transform`` is
sampled once per frame.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pxr import Gf, Sdf, Usd, UsdGeom

from twin3d._types import PathLike
from twin3d.errors import StageError
from twin3d.usd.layer import open_stage, save_layer

__all__ = ["CAMERA_SUFFIXES", "CameraKeys", "export_camera_path", "read_cameras"]

#: Suffixes of a camera layer: crate, since its time samples trip NVIDIA's ASCII rule in .usda.
CAMERA_SUFFIXES = (".usdc", ".usd")

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
    camera: str = "WalkCamera",
) -> str:
    """Write a crate layer with a time-sampled camera that follows the path, over the stage.

    The layer sublayers the stage, takes its defaultPrim, up axis and units, and holds the
    camera under the default prim (``/<defaultPrim>/<camera>``), so it validates as a stage
    of its own (``twin3d validate``).

    Args:
        output: the camera layer, ``.usdc`` or ``.usd`` (crate: time samples in ``.usda``
            trip the ASCII-performance rule).
        stage_path: the stage the camera walks through.
        positions: (n, 3) eye positions per frame, stage units.
        focal_points: (n, 3) points looked at per frame.
        up: view-up vector.
        fov: vertical field of view, degrees.
        fps: frames per second (``timeCodesPerSecond``); frame i is time code i.
        camera: the camera prim's name under the default prim.

    Returns:
        The output path.

    Raises:
        StageError: not a crate suffix, the stage cannot be opened or has no defaultPrim,
            or the path is empty.
    """
    out = os.fspath(output)
    if Path(out).suffix not in CAMERA_SUFFIXES:
        raise StageError(f"{out}: write the camera as .usdc (time samples in "
                         f"{Path(out).suffix or 'a file without suffix'} trip the "
                         "ASCII-performance rule)")
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    foc = np.asarray(focal_points, dtype=np.float64).reshape(-1, 3)
    if len(pos) == 0 or len(pos) != len(foc):
        raise StageError(f"camera path has {len(pos)} positions and {len(foc)} focal points; "
                         "give one of each per frame")
    src = open_stage(stage_path)
    root = src.GetDefaultPrim()
    if not root:
        raise StageError(f"{stage_path}: the stage has no defaultPrim; write it with "
                         "'twin3d convert'")
    layer = Sdf.Layer.CreateAnonymous(".usdc")
    layer.subLayerPaths.append(os.path.abspath(os.fspath(stage_path)))
    layer.defaultPrim = root.GetName()
    _author_camera(Usd.Stage.Open(layer), src, root.GetPath().AppendChild(camera), pos, foc,
                   up=up, fov=fov, fps=fps)
    rel = os.path.relpath(os.path.abspath(os.fspath(stage_path)),
                          os.path.dirname(os.path.abspath(out))).replace(os.sep, "/")
    layer.subLayerPaths = [rel if rel.startswith(".") else f"./{rel}"]
    save_layer(layer, out, crate=True)
    return out


def _author_camera(stage: Usd.Stage, src: Usd.Stage, path: Sdf.Path, pos: F64, foc: F64, *,
                   up: Sequence[float], fov: float, fps: float) -> None:
    """Define the time-sampled camera at ``path`` on ``stage`` (its root layer sublayers ``src``)."""
    UsdGeom.SetStageUpAxis(stage, UsdGeom.GetStageUpAxis(src))
    UsdGeom.SetStageMetersPerUnit(stage, UsdGeom.GetStageMetersPerUnit(src))
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(len(pos) - 1)
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    cam = UsdGeom.Camera.Define(stage, path)
    # a 35 mm-style aperture; focal length from the vertical fov
    v_ap = 15.2908
    cam.CreateVerticalApertureAttr(v_ap)
    cam.CreateHorizontalApertureAttr(20.955)
    cam.CreateFocalLengthAttr(v_ap / (2.0 * math.tan(math.radians(fov) / 2.0)))
    span = float(np.ptp(np.vstack([pos, foc]), axis=0).max()) or 1.0
    cam.CreateClippingRangeAttr(Gf.Vec2f(span * 1e-3, span * 100.0))
    # the camera is placed in world space: cancel its parent's transform
    parent = UsdGeom.Xformable(stage.GetPrimAtPath(path.GetParentPath()))
    to_parent = parent.ComputeLocalToWorldTransform(Usd.TimeCode.Default()).GetInverse()
    op = cam.AddTransformOp()
    fd = cam.CreateFocusDistanceAttr()
    upv = Gf.Vec3d(*map(float, up))
    for i, (p, f) in enumerate(zip(pos, foc, strict=True)):
        view = Gf.Matrix4d().SetLookAt(Gf.Vec3d(*p), Gf.Vec3d(*f), upv)
        op.Set(view.GetInverse() * to_parent, Usd.TimeCode(i))
        fd.Set(float(np.linalg.norm(f - p)), Usd.TimeCode(i))
