"""``twin3d demo --scene robot``: a moving twin, the SO-101 arm picking and placing.

1. convert the SO-101 from its URDF (``twin3d/data/so101/``): one Xform per link, UsdPhysics
   joints, each joint bound to the channel ``so101_new_calib/<joint>`` (radians);
2. bind its servos' temperatures (``so101_sensors.toml``): a sensor on each servo's housing;
3. start the bridge in-process on 127.0.0.1 with recording on;
4. run the simulated arm over real WebSocket connections: a pick-and-place cycle
   (:class:`~twin3d.demos.pickplace.PickAndPlace`, joint angles at :data:`JOINT_HZ`) and
   the servos' temperatures (:data:`TEMP_HZ`), which rise with the torque each servo holds
   against gravity (link masses from the URDF, the part while it is held): the shoulder
   lift carries the whole arm and warms up most, the elbow next, the wrist and gripper
   servos hardly at all;
5. subscribe like any viewer: move the links, follow the gripper with the camera, show the
   temperatures on the servos (a window with a display; off-screen to a movie and PNG
   snapshots without one), author the joints and temperatures into the USD live layer and
   a USD recording that plays the motion in usdview and Omniverse.

Heat runs faster than the arm: the servos' thermal time constant is a fraction of the run
(:data:`HEAT_SPEEDUP`), so that the warming fits a demo of any length, as the plate demo's
cooling failure does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from twin3d._types import PathLike
from twin3d.demos.common import DemoResult, Moves, fresh, in_folder, say, stream, validate
from twin3d.demos.pickplace import JOINTS, PickAndPlace, ServoHeat, gravity_torque
from twin3d.errors import Twin3DError

__all__ = ["ArmLoad", "RobotPlant", "RobotScene", "build_robot", "run_robot"]

DATA = Path(__file__).resolve().parents[1] / "data"
URDF = DATA / "so101" / "so101.urdf"
SENSOR_MAP = DATA / "so101_sensors.toml"
JOINT_HZ = 50.0         # joint angles published this often
TEMP_HZ = 5.0           # servo temperatures published this often
LIVE_EVERY_S = 2.0      # live layer saved this often
PAYLOAD_KG = 0.2        # the part the arm carries
TEMP_NOISE = 0.1        # °C, the servos' temperature readings
#: Thermal time constant = run duration / HEAT_SPEEDUP (at least 10 s of run).
HEAT_SPEEDUP = 1.5


def build_robot(folder: Path) -> tuple[Any, Any]:
    """Convert the SO-101 and bind its servo sensors in ``folder``; return (twin, robot)."""
    from twin3d.cad.convert import convert
    from twin3d.cad.urdf import read_urdf
    from twin3d.sensors import load_sensor_map
    from twin3d.twin import Twin
    from twin3d.usd.bind import bind_sensors

    missing = [p.name for p in (URDF, SENSOR_MAP) if not p.is_file()]
    if missing:
        raise Twin3DError(f"the robot demo's data ({', '.join(missing)}) is missing from {DATA}: "
                          "reinstall twin3d (pip install --force-reinstall twin3d)")
    stage = folder / "so101.usda"
    t0 = time.perf_counter()
    convert([URDF], stage, progress=False)
    robot = read_urdf(URDF)
    movable = [j.name for j in robot.joints if j.movable]
    say(f"[1/5] converted {URDF.name} -> {stage}: {len(robot.links)} links, {len(movable)} "
        f"joints bound to {robot.name}/<joint> ({time.perf_counter() - t0:.1f} s)")
    bound = bind_sensors(stage, load_sensor_map(SENSOR_MAP))
    twin = Twin.open(stage, reset=True)
    say(f"[2/5] bound {len(bound)} servo temperature sensors from {SENSOR_MAP.name}")
    return twin, robot


class ArmLoad:
    """The torque each joint's servo holds against gravity, from the URDF's link masses and
    centres of mass and the links' poses on the stage.

    Args:
        robot: the URDF robot (:func:`twin3d.cad.urdf.read_urdf`).
        moves: the stage's moving prims (its joint bindings).
    """

    def __init__(self, robot: Any, moves: Moves) -> None:
        self.robot, self.moves = robot, moves
        joint_of = {b.channel: b for b in moves.motion.bindings}
        #: the prim of each movable joint's child link, by joint name
        self.link_prims: dict[str, str] = {}
        link_prim: dict[str, str] = {}
        for j in robot.joints:
            b = joint_of.get(f"{robot.name}/{j.name}")
            if b is not None:
                self.link_prims[j.name] = b.prim
                link_prim[j.child] = b.prim
        self._bodies = [(link_prim[name], link.mass, link.com[:3, 3]) for name, link
                        in robot.links.items() if name in link_prim and link.mass]
        self._axes = {j.name: np.asarray(j.axis, dtype=np.float64) for j in robot.joints
                      if j.name in self.link_prims}
        # the tool centre point: the frame a fixed joint hangs off the gripper ("gripper_frame")
        tcp = next(j for j in robot.joints if j.type == "fixed" and j.parent in link_prim)
        #: the prim of the link that holds the tool centre point
        self.tcp_link = link_prim[tcp.parent]
        self._tcp = tcp.origin[:, 3]

    def poses(self, q: Mapping[str, float]) -> dict[str, Any]:
        """World (4, 4) matrices of the moving prims at joint values ``q`` (by joint name)."""
        return self.moves.world({f"{self.robot.name}/{j}": v for j, v in q.items()})

    def tcp(self, world: Mapping[str, Any]) -> Any:
        """(3,) the gripper's frame (tool centre point) in the world, metres."""
        return (world[self.tcp_link] @ self._tcp)[:3]

    def torques(self, q: Mapping[str, float], payload: float = 0.0) -> dict[str, float]:
        """Gravity's torque (N m) about each movable joint at ``q``, with ``payload`` kg at
        the tool centre point."""
        world = self.poses(q)
        bodies = [(path, mass, (world[path] @ np.append(com, 1.0))[:3])
                  for path, mass, com in self._bodies]
        if payload > 0:
            bodies.append((self.tcp_link, payload, self.tcp(world)))
        out: dict[str, float] = {}
        for joint, prim in self.link_prims.items():
            frame = world[prim]
            carried = [(m, c) for path, m, c in bodies if path == prim or
                       path.startswith(prim + "/")]
            out[joint] = gravity_torque(frame[:3, 3], frame[:3, :3] @ self._axes[joint],
                                        [m for m, _ in carried], [c for _, c in carried])
        return out


class RobotPlant:
    """The simulated arm: its joint angles every tick, its servos' temperatures every few.

    Args:
        load: the arm's gravity load.
        duration: seconds the plant runs.
        seed: seed of the temperature noise.
        limits: ``{joint: (lower, upper)}`` radians, checked against the trajectory.
    """

    def __init__(self, load: ArmLoad, duration: float, seed: int = 0,
                 limits: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.load, self.duration = load, max(float(duration), 1e-3)
        self.rate_hz = JOINT_HZ
        self.trajectory = PickAndPlace(limits)
        self.heat = ServoHeat(JOINTS, time_constant=max(self.duration, 10.0) / HEAT_SPEEDUP)
        self.rng = np.random.default_rng(seed)
        self.prefix = load.robot.name
        self._t = 0.0
        self._tick = 0

    def readings(self, t: float) -> dict[str, float]:
        """The joint angles at ``t`` (rad), and every ``JOINT_HZ / TEMP_HZ`` ticks the servo
        temperatures (°C), heated by the torques held since the last tick."""
        q = self.trajectory.positions(t)
        torques = self.load.torques(q, PAYLOAD_KG if self.trajectory.holding(t) else 0.0)
        temps = self.heat.step(t - self._t, torques)
        self._t = t
        out = {f"{self.prefix}/{j}": v for j, v in q.items()}
        if self._tick % round(JOINT_HZ / TEMP_HZ) == 0:
            out |= {f"{self.prefix}/servo_temperature/{j}":
                    round(v + float(self.rng.normal(0.0, TEMP_NOISE)), 1)
                    for j, v in temps.items()}
        self._tick += 1
        return out


class RobotScene:
    """Each frame of the robot demo: the links where the joints put them, the camera
    following the gripper, the live layer every :data:`LIVE_EVERY_S`.

    Args:
        twin: the robot's twin.
        view: its view.
        load: the arm's load (its poses and tool centre point).
        duration: seconds the demo runs (the camera swings 40° around the arm over it).
    """

    fps = 20.0

    def __init__(self, twin: Any, view: Any, load: ArmLoad, duration: float) -> None:
        self.twin, self.view, self.load = twin, view, load
        self.duration = duration
        self.focus: Any = None
        first = next(iter(load.link_prims.values()))  # the link the first joint turns
        self.base = load.moves.world({})[first][:3, 3]
        self.next_live = 0.0
        self._t = 0.0

    def frame(self, t: float, latest: Mapping[str, float], rec: Any) -> str:
        """Move the links and the camera; save the live layer when due; return the status."""
        target = self.load.tcp(self.load.moves.world(latest))
        # the camera eases after the gripper (time constant 0.5 s): it glides, never jerks
        ease = 1.0 if self.focus is None else 1.0 - math.exp(-(t - self._t) / 0.5)
        self.focus = target if self.focus is None else self.focus + (target - self.focus) * ease
        self._t = t
        # look at the gripper from beside it, a little above, swinging round on the servos'
        # side; the arm's base stays in the picture
        look = 0.55 * self.focus + 0.45 * self.base
        azimuth = math.radians(70.0 + 40.0 * t / self.duration)
        elevation = math.radians(24.0)
        eye = look + 0.7 * np.array([math.cos(azimuth) * math.cos(elevation),
                                      math.sin(azimuth) * math.cos(elevation),
                                      math.sin(elevation)])
        self.view.set_camera(eye, look, (0.0, 0.0, 1.0), 38.0)
        if t >= self.next_live and latest:
            self._save(latest)
            self.next_live = t + LIVE_EVERY_S
        temps = [(v, c.rsplit("/", 1)[-1]) for c, v in latest.items() if c in self.twin.sensors]
        hot = max(temps, default=(math.nan, "-"))
        return f"hottest servo {hot[1]} {hot[0]:.1f} °C"

    def finish(self, latest: Mapping[str, float], rec: Any) -> None:
        """The final joint angles and temperatures into the live layer."""
        if latest:
            self._save(latest)

    def _save(self, latest: Mapping[str, float]) -> None:
        self.twin.update(latest, time=time.time())
        self.twin.save()


def run_robot(output: PathLike = "twin3d-demo-robot", *, duration: float = 30.0, seed: int = 0,
              headless: bool = True, movie: PathLike | None = None,
              window_size: tuple[int, int] = (960, 600)) -> DemoResult:
    """Run the robot demo end to end in ``output`` and return what it produced.

    Args:
        output: working folder (created, and removed again if the demo fails).
        duration: seconds of the simulated arm.
        seed: seed of the temperature noise.
        headless: render off-screen into a movie (else a window).
        movie: the movie to write when headless (``.mp4`` or ``.gif``; default
            ``OUTPUT/demo.mp4``).
        window_size: the view's size in pixels.

    Raises:
        Twin3DError: the demo files are missing or a step failed (the message says which).
    """
    return in_folder(output, lambda folder: _run(folder, duration, seed, headless, movie,
                                                 window_size))


def _run(folder: Path, duration: float, seed: int, headless: bool, movie: PathLike | None,
         window_size: tuple[int, int]) -> DemoResult:
    from twin3d.view import View

    twin, robot = build_robot(folder)
    result = DemoResult(folder=folder, stage=twin.stage_path, live=twin.root_path,
                        recording_db=folder / "recording.sqlite",
                        recording_usd=folder / "recording.usdc", scene="robot",
                        recorded="joint angles moving the links, servo temperatures",
                        example=f"{robot.name}/shoulder_pan 0.5")
    if headless:
        result.movie = Path(movie) if movie else folder / "demo.mp4"
    fresh(result.recording_db, result.recording_usd)
    load = ArmLoad(robot, Moves(twin.stage))
    limits = {j.name: (j.lower, j.upper) for j in robot.joints
              if j.lower is not None and j.upper is not None}
    plant = RobotPlant(load, duration, seed, limits)
    say(f"[3/5] pick and place: a {plant.trajectory.cycle_seconds:.1f} s cycle within the "
        f"joint limits, servo heat from the gravity torques (time constant "
        f"{plant.heat.time_constant:.0f} s)")
    view = View(twin, None, off_screen=headless, window_size=window_size)
    scene = RobotScene(twin, view, load, plant.duration)
    intro = (f"[5/5] streaming {len(JOINTS)} joints at {JOINT_HZ:g} Hz and {len(twin.sensors)} "
             f"servo temperatures at {TEMP_HZ:g} Hz"
             + (f"; rendering off-screen to {result.movie}" if headless else "; close the "
                "window or press Ctrl-C to stop early"))
    asyncio.run(stream(twin, view, plant, scene, result, patterns=[f"{robot.name}/*"],
                       headless=headless, record_fps=JOINT_HZ, step="4/5", intro=intro))
    validate(result)
    return result
