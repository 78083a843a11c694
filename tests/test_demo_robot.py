"""The robot demo: its pick-and-place trajectory (within the joint limits, smooth), its servo
heat (closed forms, the loaded joints warm most), and the whole run through a real bridge,
reopened in pxr with the links moving."""

from __future__ import annotations

import math
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from test_robot import fk

from twin3d.cli import main
from twin3d.demos.pickplace import (
    JOINTS,
    WAYPOINTS,
    PickAndPlace,
    ServoHeat,
    gravity_torque,
)
from twin3d.errors import Twin3DError

URDF = Path(__file__).resolve().parents[1] / "twin3d" / "data" / "so101" / "so101.urdf"
RATE = 50.0  # Hz, as the demo publishes


def urdf_limits(urdf: Path = URDF) -> dict[str, tuple[float, float]]:
    """``{joint: (lower, upper)}`` read from the XML."""
    out = {}
    for j in ET.parse(urdf).getroot().findall("joint"):
        limit = j.find("limit")
        if limit is not None and j.get("type") == "revolute":
            out[j.get("name")] = (float(limit.get("lower")), float(limit.get("upper")))
    return out


def sampled(traj: PickAndPlace, cycles: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(n,) times and (n, 6) joint angles at 50 Hz over the start and some cycles."""
    t = np.arange(0.0, traj.cycle_start + cycles * traj.cycle_seconds, 1.0 / RATE)
    q = np.array([[traj.positions(x)[j] for j in JOINTS] for x in t])
    return t, q


# --- the trajectory ------------------------------------------------------------------------


def test_trajectory_stays_within_the_urdf_limits_and_moves_every_joint() -> None:
    limits = urdf_limits()
    assert set(limits) == set(JOINTS)
    traj = PickAndPlace(limits)
    _, q = sampled(traj)
    lo = np.array([limits[j][0] for j in JOINTS])
    hi = np.array([limits[j][1] for j in JOINTS])
    assert np.all(q >= lo) and np.all(q <= hi)
    span = q.max(axis=0) - q.min(axis=0)
    assert np.all(span > 0.15), dict(zip(JOINTS, span.round(3), strict=True))


def test_trajectory_is_smooth_speed_and_acceleration_bounded() -> None:
    traj = PickAndPlace(max_speed=1.2, max_accel=4.0)
    t, q = sampled(traj)
    dt = 1.0 / RATE
    v = np.diff(q, axis=0) / dt
    a = np.diff(q, n=2, axis=0) / dt**2
    # finite differences of a smooth curve stay within the bounds (a hair of slack: rounding
    # of the published angles to 1e-6 rad)
    assert np.abs(v).max() <= 1.2 + 1e-3
    assert np.abs(a).max() <= 4.0 * 1.01 + 0.01
    # no step anywhere: the acceleration changes by at most the min-jerk profile's jerk,
    # 60 d / T^3 for a move d in T seconds, over one sample
    jerk = max(60.0 * max(abs(y - x) for x, y in zip(s.q0, s.q1, strict=True)) / s.duration**3
               for s in traj.segments)
    assert np.abs(np.diff(a, axis=0)).max() / dt <= jerk * 1.05 + 1.0
    # the analytic velocity agrees with the samples (state() is what positions() moves along)
    mid = t[:-1] + dt / 2
    analytic = np.array([traj.state(x)[1] for x in mid])
    assert np.abs(analytic - v).max() < 0.01
    # it moves near the bounds: the bounds are what limits it, not a slow made-up profile
    assert np.abs(v).max() > 0.8 * 1.2 or np.abs(a).max() > 0.8 * 4.0
    # the cycle repeats seamlessly: same pose one cycle later, at rest at its ends
    for x in (traj.cycle_start, traj.cycle_start + 3.3):
        np.testing.assert_allclose(traj.state(x)[0], traj.state(x + traj.cycle_seconds)[0],
                                   atol=1e-9)
    np.testing.assert_allclose(traj.state(traj.cycle_start)[1], 0.0, atol=1e-12)


def test_trajectory_closed_forms_of_min_jerk() -> None:
    """Peak speed 1.875 d/T and peak acceleration 5.7735 d/T^2 on every segment."""
    traj = PickAndPlace(max_speed=1.0, max_accel=3.0)
    for seg in traj.segments:
        d = np.abs(np.subtract(seg.q1, seg.q0))
        u = np.linspace(0.0, 1.0, 2001)
        v = np.array([traj.state(seg.start + x * seg.duration)[1] for x in u[1:-1]])
        np.testing.assert_allclose(np.abs(v).max(axis=0), 1.875 * d / seg.duration, rtol=1e-3,
                                   atol=1e-9)
        assert (1.875 * d / seg.duration).max() <= 1.0 + 1e-9
        assert (10 / math.sqrt(3) * d / seg.duration**2).max() <= 3.0 + 1e-9


def test_a_waypoint_outside_the_limits_is_refused_by_name() -> None:
    tight = urdf_limits() | {"elbow_flex": (-0.2, 0.2)}
    with pytest.raises(Twin3DError, match="elbow_flex"):
        PickAndPlace(tight)
    with pytest.raises(Twin3DError, match="positive"):
        PickAndPlace(max_speed=0.0)


def test_the_gripper_holds_the_part_between_grip_and_release() -> None:
    traj = PickAndPlace()
    by_end = {s.to: s for s in traj.segments[1:]}
    assert not traj.holding(by_end["grip"].start + 0.1)       # still closing
    assert traj.holding(by_end["lift"].start + 0.1)
    assert traj.holding(by_end["place"].end - 0.01)
    assert not traj.holding(by_end["release"].start + 0.1)    # opening
    assert traj.positions(by_end["lift"].start)["gripper"] == WAYPOINTS["grip"][-1]


# --- heat ------------------------------------------------------------------------------------


def test_gravity_torque_closed_forms() -> None:
    g = 9.81
    # 2 kg at 0.3 m on a horizontal arm, pivot about +Y: gravity turns it toward -Z (+Y torque)
    assert gravity_torque([0, 0, 0], [0, 1, 0], [2.0], [[0.3, 0, 0]]) == pytest.approx(2 * g * 0.3)
    # the lever arm is what is horizontal from the axis: raising the mass changes nothing
    assert gravity_torque([1, 1, 1], [0, 2, 0], [2.0], [[1.3, 1.0, 5.0]]) == \
        pytest.approx(2 * g * 0.3)
    # a vertical axis carries no gravity torque; masses add
    assert gravity_torque([0, 0, 0], [0, 0, 1], [1.0], [[0.5, 0.2, 0]]) == 0.0
    assert gravity_torque([0, 0, 0], [0, -1, 0], [1.0, 1.0], [[0.1, 0, 0], [0.2, 0, 0]]) == \
        pytest.approx(-g * 0.3)


def test_servo_heat_follows_the_first_order_closed_form() -> None:
    heat = ServoHeat(["a", "b"], ambient=20.0, resistance=5.0, time_constant=8.0, idle=1.0,
                     copper=10.0)
    assert heat.temperatures == {"a": 25.0, "b": 25.0}
    steady = 20.0 + 5.0 * (1.0 + 10.0 * 0.5**2)  # 37.5 °C at 0.5 N m
    for _ in range(100):                          # 10 s in small steps...
        heat.step(0.1, {"a": 0.5})
    expected = steady + (25.0 - steady) * math.exp(-10.0 / 8.0)
    assert heat.temperatures["a"] == pytest.approx(expected, rel=1e-12)
    assert heat.temperatures["b"] == pytest.approx(25.0)
    one = ServoHeat(["a"], ambient=20.0, resistance=5.0, time_constant=8.0, idle=1.0,
                    copper=10.0)
    one.step(10.0, {"a": 0.5})                    # ...or one: exact for constant torque
    assert one.temperatures["a"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(Twin3DError):
        ServoHeat(["a"], time_constant=0.0)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The demo's SO-101 converted and bound, and its ArmLoad."""
    from twin3d.cad.urdf import read_urdf
    from twin3d.demos.common import Moves
    from twin3d.demos.robot import ArmLoad, build_robot

    twin, robot = build_robot(tmp_path_factory.mktemp("arm"))
    assert robot.name == ET.parse(URDF).getroot().get("name")
    return twin, ArmLoad(read_urdf(URDF), Moves(twin.stage))


def test_arm_torques_match_an_independent_model_from_the_urdf(arm) -> None:  # type: ignore[no-untyped-def]
    """Masses, centres of mass and joint frames from the XML and the tests' own kinematics."""
    _, load = arm
    root = ET.parse(URDF).getroot()
    joints = {j.get("name"): j for j in root.findall("joint")}
    inertial = {}
    for link in root.findall("link"):
        el = link.find("inertial")
        if el is not None:
            com = np.array([float(v) for v in el.find("origin").get("xyz").split()])
            inertial[link.get("name")] = (float(el.find("mass").get("value")), com)

    def below(link: str) -> list[str]:
        out = [link]
        for j in joints.values():
            if j.find("parent").get("link") == link:
                out += below(j.find("child").get("link"))
        return out

    rng = np.random.default_rng(5)
    limits = urdf_limits()
    for _ in range(3):
        q = {j: float(rng.uniform(*limits[j])) for j in JOINTS}
        poses = fk(URDF, q)
        got = load.torques(q)
        for name in JOINTS:
            child = joints[name].find("child").get("link")
            frame = poses[child]
            axis = frame[:3, :3] @ np.array([float(v) for v in
                                              joints[name].find("axis").get("xyz").split()])
            tau = 0.0
            for link in below(child):
                if link in inertial:
                    m, com = inertial[link]
                    c = poses[link][:3, :3] @ com + poses[link][:3, 3]
                    tau += axis @ np.cross(c - frame[:3, 3], m * np.array([0, 0, -9.81]))
            assert got[name] == pytest.approx(tau, abs=1e-6), name


def test_the_loaded_servos_warm_up_most(arm) -> None:  # type: ignore[no-untyped-def]
    from twin3d.demos.robot import RobotPlant

    twin, load = arm
    plant = RobotPlant(load, duration=30.0, limits=urdf_limits())
    temps: dict[str, list[float]] = {}
    for n in range(int(30.0 * RATE)):
        for channel, value in plant.readings(n / RATE).items():
            if "/servo_temperature/" in channel:
                assert channel in twin.sensors  # every reading has its sensor on the stage
                temps.setdefault(channel.rsplit("/", 1)[1], []).append(value)
    assert set(temps) == set(JOINTS) and all(len(v) == 150 for v in temps.values())  # 5 Hz
    rise = {j: v[-1] - v[0] for j, v in temps.items()}
    # the shoulder lift carries the arm, the elbow the forearm; the others next to nothing
    assert rise["shoulder_lift"] > rise["elbow_flex"] > 5.0
    assert max(rise[j] for j in ("shoulder_pan", "wrist_roll", "gripper")) < 1.0
    assert rise["wrist_flex"] < rise["elbow_flex"] / 2
    # the story: the shoulder reaches its warn limit in the run, not its alarm
    limits = twin.sensors["so101_new_calib/servo_temperature/shoulder_lift"].limits
    assert limits.warn_high <= max(temps["shoulder_lift"]) < limits.alarm_high


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.render
@pytest.mark.slow
def test_robot_demo_headless_runs_end_to_end_and_its_recording_moves_the_links(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pxr import Usd, UsdGeom

    from twin3d.usd.validate import validate_stage

    out = tmp_path / "robot"
    assert main(["demo", "--scene", "robot", "--headless", "--duration", "5", "-o",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "[5/5] streaming 6 joints at 50 Hz" in text and "Traceback" not in text
    published = int(text.split("Done after")[1].split("values published")[0].split(":")[1])
    assert f"{published} acknowledged" in text

    # every joint at 50 Hz through the bridge, recorded once each
    with sqlite3.connect(out / "recording.sqlite") as db:
        rows = db.execute("SELECT channel, time, value FROM samples_named "
                          "ORDER BY channel, time").fetchall()
    assert len(rows) == published
    by_channel: dict[str, list[tuple[float, float]]] = {}
    for channel, t, v in rows:
        by_channel.setdefault(channel, []).append((t, v))
    pan = np.array(by_channel["so101_new_calib/shoulder_pan"])
    assert len(pan) == 250
    np.testing.assert_allclose(np.diff(pan[:, 0]), 1.0 / RATE, atol=1e-4)

    # the movie changes from frame to frame (the arm moves, the camera follows)
    import imageio.v2 as imageio

    with imageio.get_reader(str(out / "demo.mp4")) as reader:
        frames = [np.asarray(f, dtype=np.int16) for f in reader]
    assert len(frames) >= 40
    assert float(np.abs(frames[-1] - frames[len(frames) // 3]).mean()) > 3.0

    # the recording reopens in pxr and plays the motion: each recorded joint angle puts the
    # gripper where the tests' own forward kinematics does
    for name in ("so101.usda", "recording.usdc"):
        assert validate_stage(out / name).failures == [], name
    assert sorted(p.name for p in (out / "recording.clips").iterdir())[:2] == \
        ["0000.usdc", "manifest.usdc"]  # USD value clips
    stage = Usd.Stage.Open(str(out / "recording.usdc"))
    gripper = next(p for p in stage.Traverse() if p.GetName() == "gripper_link")
    codes = stage.GetRootLayer().timeCodesPerSecond
    assert codes == RATE
    origin = min(t for samples in by_channel.values() for t, _ in samples)
    base = UsdGeom.Xformable(stage.GetPrimAtPath("/so101_new_calib")).ComputeLocalToWorldTransform(0)
    assert np.allclose(np.asarray(base), np.eye(4))
    seen = []
    for k in (10, 120, 240):
        t = pan[k, 0]
        q = {c.rsplit("/", 1)[1]: dict(s)[t] for c, s in by_channel.items()
             if "/servo_temperature/" not in c}
        world = np.asarray(UsdGeom.Xformable(gripper).ComputeLocalToWorldTransform(
            Usd.TimeCode((t - origin) * codes))).T
        np.testing.assert_allclose(world[:3, 3], fk(URDF, q)["gripper_link"][:3, 3], atol=1e-4)
        seen.append(world[:3, 3])
    assert np.linalg.norm(seen[2] - seen[0]) > 0.02  # and it moved


def test_the_robot_scene_builds_the_demo_twin(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scenes" / "robot" / "build.py"
    run = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and "(6 sensors)" in run.stdout
    from twin3d.twin import Twin

    twin = Twin.open(tmp_path / "so101.usda")
    assert len(twin.sensors) == 6 and len(twin.meshes) == 17  # 13 files, one of them 5 times (the servo)
    assert all(f"so101_new_calib/{j}" in run.stdout for j in JOINTS)


@pytest.mark.render
def test_moving_parts_change_only_their_actors_matrix(arm) -> None:  # type: ignore[no-untyped-def]
    """View.set_transforms: the moved mesh keeps its points buffer; its marker follows."""
    from twin3d.view import View

    twin, load = arm
    view = View(twin, None, off_screen=True, window_size=(320, 200))
    try:
        view.render()
        ids = view.actor_ids()
        gripper = "so101_new_calib/servo_temperature/gripper"
        sensor = twin.sensors[gripper]
        actor = next(a for a in view.mesh_actors if a.path == sensor.target)
        points = actor.polydata.GetPoints().GetData()
        stamp = points.GetMTime()
        q = {j: 0.3 for j in JOINTS}
        values = {f"so101_new_calib/{j}": v for j, v in q.items()}
        moves = load.moves(values)  # relative to rest: what the actor's matrix must become
        view.set_transforms({p: m for p, m in load.moves.world(values).items() if p in view.mesh_paths})
        view.render()
        m = moves[sensor.target]
        user = actor.actor.GetUserMatrix()
        np.testing.assert_allclose([[user.GetElement(r, c) for c in range(4)] for r in range(4)],
                                   m, atol=1e-12)
        assert actor.polydata.GetPoints().GetData() is points and points.GetMTime() == stamp
        assert view.actor_ids() == ids
        i = view.glyphs.channels.index(gripper)
        np.testing.assert_allclose(view.glyphs.positions[i],
                                   m[:3, :3] @ np.asarray(sensor.position) + m[:3, 3], atol=1e-12)
        # the gripper's frame went where the tests' own kinematics puts it
        world = load.moves.world({f"so101_new_calib/{j}": v for j, v in q.items()})
        np.testing.assert_allclose(world[load.tcp_link][:3, 3],
                                   fk(URDF, q)["gripper_link"][:3, 3], atol=1e-9)
    finally:
        view.close()


def test_a_failed_robot_demo_says_why_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import twin3d.demos.robot

    monkeypatch.setattr(twin3d.demos.robot, "URDF", tmp_path / "gone" / "so101.urdf")
    out = tmp_path / "robot"
    assert main(["demo", "--scene", "robot", "--headless", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "so101.urdf" in err[0] and "reinstall twin3d" in err[0]
    assert not out.exists()
    assert main(["demo", "--scene", "arm"]) == 2
    assert "invalid choice: 'arm'" in capsys.readouterr().err
