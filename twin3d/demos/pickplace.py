"""The robot demo's simulated plant: a pick-and-place cycle of the SO-101 and its servos' heat. Pure numpy.

:class:`PickAndPlace` moves the arm's six joints from waypoint to waypoint along minimum-jerk
segments (Flash and Hogan's quintic ``s(u) = 10u³ - 15u⁴ + 6u⁵``): position, velocity and
acceleration are continuous, every segment starts and ends at rest, and a joint never leaves
the interval between two waypoints, so a trajectory whose waypoints are inside the joint
limits stays inside them. Each segment lasts long enough for its largest joint move ``d`` to
keep the peak speed ``1.875 d / T`` and the peak acceleration ``5.7735 d / T²`` within the
given bounds.

:class:`ServoHeat` is a first-order thermal model per servo, ``C dT/dt = P - (T - T_amb) / R``
with ``P = P_idle + k τ²`` (copper losses grow with the square of the current, and the current
with the torque the servo holds), integrated exactly for piecewise-constant torques.
:func:`gravity_torque` is the torque gravity puts on a joint: what a servo holds while the
arm moves slowly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from twin3d.errors import Twin3DError

__all__ = ["GRAVITY", "JOINTS", "WAYPOINTS", "PickAndPlace", "Segment", "ServoHeat",
           "gravity_torque", "min_jerk"]

#: The SO-101's joints in the order of every joint vector here (its URDF's joint names).
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
#: m/s², world -Z.
GRAVITY = np.array([0.0, 0.0, -9.81])

_OPEN, _CLOSED = 1.2, 0.15  # gripper (rad): open, and closed on a part ~3 cm wide
#: The cycle's poses (radians, in :data:`JOINTS` order). The pick and place poses put the
#: gripper's frame 45 mm above the table, pointing down, at (0.24, -0.11) and (0.22, 0.13) m
#: (solved once by least squares on the arm's forward kinematics); "above" poses are 65 mm
#: higher. The part is turned by the wrist on the way.
WAYPOINTS: dict[str, tuple[float, ...]] = {
    "rest": (0.0, -1.57, 1.45, 0.75, 0.0, 0.0),
    "ready": (0.0, -0.9, 0.5, 1.3, 0.0, 0.3),
    "above pick": (0.5, 0.008, -0.227, 1.45, 0.0, _OPEN),
    "pick": (0.5, 0.411, -0.34, 1.492, 0.0, _OPEN),
    "grip": (0.5, 0.411, -0.34, 1.492, 0.0, _CLOSED),
    "lift": (0.5, 0.008, -0.227, 1.45, 0.0, _CLOSED),
    "above place": (-0.622, -0.039, -0.172, 1.45, 1.2, _CLOSED),
    "place": (-0.622, 0.359, -0.261, 1.473, 1.2, _CLOSED),
    "release": (-0.622, 0.359, -0.261, 1.473, 1.2, _OPEN),
    "retreat": (-0.622, -0.039, -0.172, 1.45, 1.2, _OPEN),
}
#: The cycle, from "ready" back to "ready"; the arm leaves "rest" once, at the start.
_CYCLE = ("ready", "above pick", "pick", "grip", "lift", "above place", "place", "release",
          "retreat", "ready")
_HOLDING = ("lift", "above place", "place")  # the moves made with the part in the gripper
_PEAK_SPEED = 1.875              # max of s'(u): 15/8
_PEAK_ACCEL = 10.0 / math.sqrt(3.0)  # max of |s''(u)|


def min_jerk(u: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The minimum-jerk profile and its first two derivatives at ``u`` in [0, 1].

    Examples:
        >>> [float(v[0]) for v in min_jerk([0.5])]
        [0.5, 1.875, 0.0]
    """
    x = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    s = x**3 * (10.0 - 15.0 * x + 6.0 * x * x)
    ds = 30.0 * x * x * (1.0 - x) ** 2
    dds = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x)
    return s, ds, dds


@dataclass(frozen=True)
class Segment:
    """One move of the trajectory: from ``start`` (s) for ``duration`` (s), ``q0`` -> ``q1``
    ((6,) radians), ending at the waypoint ``to``."""

    start: float
    duration: float
    q0: tuple[float, ...]
    q1: tuple[float, ...]
    to: str

    @property
    def end(self) -> float:
        """When the segment ends (s)."""
        return self.start + self.duration


class PickAndPlace:
    """The pick-and-place trajectory: "rest" to "ready" once, then the cycle, over and over.

    Args:
        limits: ``{joint: (lower, upper)}`` radians (the URDF's); every waypoint must lie
            inside (a joint without limits is not checked).
        max_speed: rad/s no joint exceeds.
        max_accel: rad/s² no joint exceeds.
        min_move: shortest segment (s).
        hold: seconds the gripper takes to close or open (its segments last at least this).

    Raises:
        Twin3DError: a waypoint lies outside a joint's limits, or a bound is not positive.

    Examples:
        >>> traj = PickAndPlace()
        >>> traj.positions(0.0)["shoulder_lift"]
        -1.57
    """

    def __init__(self, limits: Mapping[str, tuple[float, float]] | None = None, *,
                 max_speed: float = 1.2, max_accel: float = 4.0, min_move: float = 0.5,
                 hold: float = 0.6) -> None:
        if not (max_speed > 0 and max_accel > 0 and min_move > 0 and hold > 0):
            raise Twin3DError("the trajectory's speed, acceleration and durations must be positive")
        for name, q in WAYPOINTS.items():
            for joint, v in zip(JOINTS, q, strict=True):
                lo, hi = (limits or {}).get(joint, (-math.inf, math.inf))
                if not lo <= v <= hi:
                    raise Twin3DError(f"waypoint {name!r} puts {joint} at {v} rad, outside its "
                                      f"limits [{lo:g}, {hi:g}]")
        self.max_speed, self.max_accel = float(max_speed), float(max_accel)
        route = ("rest", *_CYCLE)
        segments: list[Segment] = []
        t = 0.0
        for a, b in pairwise(route):
            q0, q1 = WAYPOINTS[a], WAYPOINTS[b]
            move = max(abs(y - x) for x, y in zip(q0, q1, strict=True))
            floor = hold if b in ("grip", "release") else min_move
            duration = max(floor, _PEAK_SPEED * move / max_speed,
                           math.sqrt(_PEAK_ACCEL * move / max_accel))
            segments.append(Segment(t, duration, q0, q1, b))
            t += duration
        #: every move in time order: the first leaves "rest", the others are one cycle
        self.segments = tuple(segments)
        self._starts = np.array([s.start for s in self.segments])

    @property
    def cycle_start(self) -> float:
        """When the first cycle starts (s): the arm reaches "ready"."""
        return self.segments[0].end

    @property
    def cycle_seconds(self) -> float:
        """The length of one cycle (s)."""
        return self.segments[-1].end - self.cycle_start

    def _segment(self, t: float) -> tuple[Segment, float]:
        """The segment playing at ``t`` and the time into it."""
        if t >= self.cycle_start:
            t = self.cycle_start + (t - self.cycle_start) % self.cycle_seconds
        i = max(int(np.searchsorted(self._starts, max(t, 0.0), side="right")) - 1, 0)
        seg = self.segments[i]
        return seg, min(max(t, 0.0) - seg.start, seg.duration)

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joint positions (rad), velocities (rad/s) and accelerations (rad/s²) at ``t`` (s),
        each (6,) in :data:`JOINTS` order."""
        seg, dt = self._segment(t)
        s, ds, dds = min_jerk(dt / seg.duration)
        q0, q1 = np.asarray(seg.q0), np.asarray(seg.q1)
        return (q0 + (q1 - q0) * s, (q1 - q0) * ds / seg.duration,
                (q1 - q0) * dds / seg.duration**2)

    def positions(self, t: float) -> dict[str, float]:
        """``{joint: radians}`` at time ``t`` (s)."""
        return {j: round(float(v), 6) for j, v in zip(JOINTS, self.state(t)[0], strict=True)}

    def holding(self, t: float) -> bool:
        """Whether the gripper holds the part at ``t``: from the end of "grip" until "release"
        starts to open it."""
        return self._segment(t)[0].to in _HOLDING


def gravity_torque(origin: npt.ArrayLike, axis: npt.ArrayLike, masses: npt.ArrayLike,
                   centres: npt.ArrayLike) -> float:
    """The torque (N m) about a joint that holds masses up against gravity.

    Args:
        origin: (3,) a point on the joint axis, metres.
        axis: (3,) the axis direction (normalised here).
        masses: (k,) kilograms of the bodies the joint carries.
        centres: (k, 3) their centres of mass, metres, world space (Z up).

    Returns:
        The torque gravity exerts about the axis (right-hand rule); the servo holds its
        negative.

    Examples:
        >>> gravity_torque([0, 0, 0], [0, 1, 0], [1.0], [[0.5, 0, 0]])  # 1 kg at 0.5 m
        4.905
    """
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    m = np.asarray(masses, dtype=np.float64).reshape(-1)
    arms = np.asarray(centres, dtype=np.float64).reshape(-1, 3) - np.asarray(origin, np.float64)
    moments = np.cross(arms, m[:, None] * GRAVITY)
    return round(float(a @ moments.sum(axis=0)), 12)


@dataclass
class ServoHeat:
    """Each servo's temperature: ``C dT/dt = P - (T - T_amb) / R``, ``P = idle + k τ²``.

    Attributes:
        joints: the servo of each joint, by joint name.
        ambient: °C around the arm.
        resistance: K/W from the motor to the air.
        time_constant: ``R C`` in seconds.
        idle: W every powered servo dissipates (electronics, holding still).
        copper: W per (N m)² of held torque.
        temperatures: °C now, by joint (start at ambient + ``R idle``: powered and idle).
    """

    joints: Sequence[str]
    ambient: float = 24.0
    resistance: float = 9.0
    time_constant: float = 20.0
    idle: float = 0.6
    copper: float = 12.0
    temperatures: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if not (self.resistance > 0 and self.time_constant > 0):
            raise Twin3DError("a servo's thermal resistance and time constant must be positive")
        if self.temperatures is None:
            self.temperatures = {j: self.steady(0.0) for j in self.joints}

    def steady(self, torque: float) -> float:
        """The temperature (°C) a servo settles at holding ``torque`` (N m)."""
        return self.ambient + self.resistance * (self.idle + self.copper * torque * torque)

    def step(self, dt: float, torques: Mapping[str, float]) -> dict[str, float]:
        """Advance ``dt`` seconds holding ``torques`` (N m, by joint; missing: none); return the
        temperatures. Exact for torques constant over the step."""
        assert self.temperatures is not None
        decay = math.exp(-max(dt, 0.0) / self.time_constant)
        for j in self.joints:
            target = self.steady(float(torques.get(j, 0.0)))
            self.temperatures[j] = target + (self.temperatures[j] - target) * decay
        return dict(self.temperatures)
