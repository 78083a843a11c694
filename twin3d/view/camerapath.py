"""Camera paths for walk-throughs: keyframes (spline), orbits, USD cameras, TOML files.

A path TOML (stage units, world space)::

    fov = 35                 # vertical view angle, degrees (optional)
    up = [0, 0, 1]           # optional, default Z-up
    closed = false           # loop back to the first key
    [[key]]
    position = [0.8, -0.6, 0.5]
    focal_point = [0.2, 0.15, 0.0]
    [[key]]
    position = [0.2, -0.3, 0.2]
    focal_point = [0.2, 0.15, 0.0]

or an orbit (``[orbit]`` with ``center``, ``radius``, ``elevation`` degrees, ``turns``), or
``camera = "/World/Cam"`` to follow a camera of the stage.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d._types import PathLike
from twin3d.errors import RenderError

__all__ = ["CameraPath", "load_path", "orbit_path"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class CameraPath:
    """A camera path through keyframes, interpolated by a cubic spline.

    Attributes:
        positions: (k, 3) float64 camera positions, stage units.
        focal_points: (k, 3) float64 points looked at.
        up: (3,) view-up vector.
        fov: vertical view angle in degrees.
        closed: whether the path loops back to its first key (periodic spline).
    """

    positions: F64
    focal_points: F64
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov: float = 30.0
    closed: bool = False

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        foc = np.asarray(self.focal_points, dtype=np.float64).reshape(-1, 3)
        if len(pos) < 1 or len(pos) != len(foc):
            raise RenderError(f"a camera path needs as many focal points as positions "
                                  f"(got {len(pos)} and {len(foc)}), at least one of each")
        if not (np.isfinite(pos).all() and np.isfinite(foc).all()):
            raise RenderError("camera path keys must be finite numbers")
        pos.flags.writeable = False
        foc.flags.writeable = False
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "focal_points", foc)

    def sample(self, n: int) -> tuple[F64, F64]:
        """Return ``n`` evenly spaced (by key-to-key distance) camera poses along the path.

        The spline passes through every key; parameters are the cumulative chord length of
        the positions (focal points follow the same parameter).

        Returns:
            positions (n, 3), focal points (n, 3).
        """
        from scipy.interpolate import CubicSpline

        if n < 1:
            raise RenderError(f"frames must be at least 1, got {n}")
        pos, foc = self.positions, self.focal_points
        if len(pos) == 1:
            return np.repeat(pos, n, 0), np.repeat(foc, n, 0)
        if self.closed:
            pos = np.vstack([pos, pos[:1]])
            foc = np.vstack([foc, foc[:1]])
        step = np.linalg.norm(np.diff(pos, axis=0), axis=1) + np.linalg.norm(
            np.diff(foc, axis=0), axis=1)
        t = np.concatenate([[0.0], np.cumsum(np.maximum(step, 1e-9))])
        bc = "periodic" if self.closed else ("natural" if len(pos) > 2 else "not-a-knot")
        ts = np.linspace(0.0, t[-1], n, endpoint=not self.closed)
        if len(pos) == 2:
            a = (ts / t[-1])[:, None]
            return pos[0] + a * (pos[1] - pos[0]), foc[0] + a * (foc[1] - foc[0])
        return CubicSpline(t, pos, bc_type=bc)(ts), CubicSpline(t, foc, bc_type=bc)(ts)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "camera path") -> CameraPath:
        """Build a path from parsed TOML (``[[key]]`` tables or an ``[orbit]`` table)."""
        up = _vec(data.get("up", (0.0, 0.0, 1.0)), "up", source)
        fov = float(data.get("fov", 30.0))
        if "orbit" in data:
            o = data["orbit"]
            if not isinstance(o, dict) or "center" not in o or "radius" not in o:
                raise RenderError(f"{source}: [orbit] needs center = [x, y, z] and radius")
            return orbit_path(_vec(o["center"], "orbit.center", source), float(o["radius"]),
                              elevation=float(o.get("elevation", 25.0)),
                              keys=int(o.get("keys", 12)), up=up, fov=fov)
        keys = data.get("key")
        if not isinstance(keys, list) or not keys:
            raise RenderError(f"{source}: no [[key]] tables (each with position and "
                                  "focal_point), no [orbit] and no camera = \"/Prim/Path\"")
        pos, foc = [], []
        for i, k in enumerate(keys):
            if not isinstance(k, dict) or "position" not in k or "focal_point" not in k:
                raise RenderError(f"{source}: key {i + 1} needs position = [x, y, z] and "
                                      "focal_point = [x, y, z]")
            pos.append(_vec(k["position"], f"key {i + 1} position", source))
            foc.append(_vec(k["focal_point"], f"key {i + 1} focal_point", source))
        return cls(np.array(pos), np.array(foc), up, fov, bool(data.get("closed", False)))

    def to_toml(self) -> str:
        """Return the path as TOML text that :func:`load_path` reads back."""
        lines = [f"fov = {self.fov!r}", f"up = {list(self.up)!r}",
                 f"closed = {'true' if self.closed else 'false'}"]
        for p, f in zip(self.positions, self.focal_points, strict=True):
            lines += ["", "[[key]]", f"position = {[float(x) for x in p]!r}",
                      f"focal_point = {[float(x) for x in f]!r}"]
        return "\n".join(lines) + "\n"


def _vec(value: Any, what: str, source: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in value)
    except (TypeError, ValueError):
        raise RenderError(f"{source}: {what} must be three numbers [x, y, z], "
                              f"got {value!r}") from None
    return (x, y, z)


def orbit_path(center: Sequence[float], radius: float, *, elevation: float = 25.0,
               keys: int = 12, up: Sequence[float] = (0.0, 0.0, 1.0),
               fov: float = 30.0) -> CameraPath:
    """A closed circle around ``center`` looking at it.

    Args:
        center: (3,) point looked at, stage units.
        radius: distance from the centre, stage units.
        elevation: degrees above the plane normal to ``up``.
        keys: keyframes on the circle (the spline closes it smoothly).
    """
    if radius <= 0 or keys < 3:
        raise RenderError(f"an orbit needs radius > 0 and at least 3 keys "
                              f"(got radius {radius}, keys {keys})")
    u = np.asarray(up, dtype=np.float64)
    u = u / np.linalg.norm(u)
    a = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    el = math.radians(elevation)
    ang = np.linspace(0.0, 2 * math.pi, keys, endpoint=False)
    c = np.asarray(center, dtype=np.float64)
    pos = c + radius * (math.cos(el) * (np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b)
                        + math.sin(el) * u)
    return CameraPath(pos, np.repeat(c[None], keys, 0), tuple(map(float, u)), fov,  # type: ignore[arg-type]
                      closed=True)


def load_path(path: PathLike, stage: PathLike | None = None) -> CameraPath:
    """Read a camera path TOML; ``camera = "/Prim"`` reads that camera from ``stage``.

    Raises:
        RenderError: unreadable file, bad TOML or keys, or an unknown camera.
    """
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        raise RenderError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RenderError(f"{path}: not valid TOML ({exc})") from None
    if "camera" in data:
        if stage is None:
            raise RenderError(f"{path}: camera = {data['camera']!r} needs the stage")
        from twin3d.usd.camera import read_cameras

        cams = {c.path: c for c in read_cameras(stage)}
        cam = cams.get(str(data["camera"]))
        if cam is None:
            raise RenderError(f"{path}: no camera {data['camera']!r} on the stage "
                                  f"(cameras: {', '.join(cams) or 'none'})")
        return CameraPath(cam.positions, cam.focal_points, cam.up, cam.fov)
    return CameraPath.from_dict(data, source=str(path))
