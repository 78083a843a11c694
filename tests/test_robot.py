"""URDF robots: the SO-101 converted, moved through its joint channels, checked against an
independent forward kinematics (written here from the URDF XML with numpy), validated; every
bad URDF refused with one line and nothing written."""

from __future__ import annotations

import math
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pxr import Usd, UsdGeom, UsdPhysics
from scipy.spatial import cKDTree

import twin3d
from twin3d.cad.convert import convert
from twin3d.cli import main
from twin3d.errors import BindingError, CADImportError, FieldError
from twin3d.usd.bindings import read_property_bindings
from twin3d.usd.validate import OAV_ENV, validate_stage

SO101 = Path(__file__).parent / "data" / "robots" / "so101"
URDF = SO101 / "so101.urdf"
TOL_M = 1e-4  # 0.1 mm
IN_CI = bool(os.environ.get("CI"))


# --- an independent forward kinematics, from the XML --------------------------------------


def _floats(el: ET.Element | None, attr: str, default: str) -> np.ndarray:
    return np.array([float(v) for v in (el.get(attr, default) if el is not None
                                        else default).split()])


def _pose(el: ET.Element | None) -> np.ndarray:
    """URDF <origin>: translation xyz, then fixed-axis rotations about x (roll), y, z."""
    xyz, (r, p, y) = _floats(el, "xyz", "0 0 0"), _floats(el, "rpy", "0 0 0")
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = xyz
    return out


def _about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` about ``axis``, from the quaternion (not Rodrigues' formula)."""
    x, y, z = axis / np.linalg.norm(axis) * math.sin(angle / 2)
    w = math.cos(angle / 2)
    out = np.eye(4)
    out[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                   [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                   [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    return out


def fk(urdf: Path, q: dict[str, float]) -> dict[str, np.ndarray]:
    """World pose of every link at joint values ``q`` (radians / metres)."""
    root = ET.parse(urdf).getroot()
    joints = root.findall("joint")
    children = {j.find("child").get("link") for j in joints}
    base = next(link.get("name") for link in root.findall("link")
                if link.get("name") not in children)
    poses = {base: np.eye(4)}
    todo = [base]
    while todo:
        parent = todo.pop()
        for j in joints:
            if j.find("parent").get("link") != parent:
                continue
            axis = _floats(j.find("axis"), "xyz", "1 0 0")
            move = np.eye(4)
            if j.get("type") in ("revolute", "continuous"):
                move = _about(axis, q.get(j.get("name"), 0.0))
            elif j.get("type") == "prismatic":
                move[:3, 3] = axis / np.linalg.norm(axis) * q.get(j.get("name"), 0.0)
            child = j.find("child").get("link")
            poses[child] = poses[parent] @ _pose(j.find("origin")) @ move
            todo.append(child)
    return poses


def stl_points(path: Path) -> np.ndarray:
    """The distinct corners of a binary STL, read with numpy."""
    rec = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    corners = np.fromfile(path, dtype=rec, offset=84)["v"].reshape(-1, 3).astype(np.float64)
    return np.unique(corners, axis=0)


def expected_points(urdf: Path, q: dict[str, float]) -> dict[str, np.ndarray]:
    """Every link's visual mesh points in the world, by link name."""
    poses = fk(urdf, q)
    out: dict[str, np.ndarray] = {}
    for link in ET.parse(urdf).getroot().findall("link"):
        pts = []
        for v in link.findall("visual"):
            mesh = v.find("geometry/mesh")
            scale = _floats(mesh, "scale", "1 1 1")
            local = stl_points(urdf.parent / mesh.get("filename")) * scale
            m = poses[link.get("name")] @ _pose(v.find("origin"))
            pts.append(local @ m[:3, :3].T + m[:3, 3])
        if pts:
            out[link.get("name")] = np.concatenate(pts)
    return out


def stage_points(stage: Usd.Stage, time: Usd.TimeCode) -> dict[str, np.ndarray]:
    """Every link's mesh points in the world as USD composes them, by link (prim) name: the
    meshes under a rigid body, not under a deeper one."""
    cache = UsdGeom.XformCache(time)
    out: dict[str, list[np.ndarray]] = {}
    for prim in Usd.PrimRange(stage.GetPseudoRoot(), Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdGeom.Mesh):
            continue
        link = prim.GetParent()
        while not link.HasAPI(UsdPhysics.RigidBodyAPI):
            link = link.GetParent()
        m = np.asarray(cache.GetLocalToWorldTransform(prim), dtype=np.float64)
        local = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get(time), dtype=np.float64)
        out.setdefault(link.GetName(), []).append(local @ m[:3, :3] + m[3, :3])
    return {k: np.concatenate(v) for k, v in out.items()}


def assert_same_places(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Each link's point sets match both ways within 0.1 mm (a Hausdorff distance)."""
    assert sorted(got) == sorted(want)
    for link in want:
        d1 = cKDTree(want[link]).query(got[link])[0].max()
        d2 = cKDTree(got[link]).query(want[link])[0].max()
        assert max(d1, d2) < TOL_M, f"{link}: meshes {max(d1, d2) * 1000:.3f} mm off"


def limits(urdf: Path) -> dict[str, tuple[float, float]]:
    return {j.get("name"): (float(j.find("limit").get("lower")), float(j.find("limit").get("upper")))
            for j in ET.parse(urdf).getroot().findall("joint") if j.get("type") == "revolute"}


def random_vectors(n: int, seed: int = 7) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{j: float(rng.uniform(lo, hi)) for j, (lo, hi) in limits(URDF).items()}
            for _ in range(n)]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(URDF, tmp_path_factory.mktemp("so101") / "so101.usda", progress=False)


# --- the SO-101 --------------------------------------------------------------------------------


def test_links_are_nested_xforms_and_joints_usdphysics(robot: Path) -> None:
    stage = Usd.Stage.Open(str(robot))
    root = stage.GetDefaultPrim()
    assert root.GetName() == "so101_new_calib" and root.HasAPI(UsdPhysics.ArticulationRootAPI)
    links = {p.GetName(): p for p in stage.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)}
    urdf = ET.parse(URDF).getroot()
    assert sorted(links) == sorted(link.get("name") for link in urdf.findall("link"))
    assert all(p.IsA(UsdGeom.Xform) for p in links.values())
    assert links["shoulder_link"].GetParent() == links["base_link"]  # the kinematic tree
    assert links["gripper_link"].GetParent() == links["wrist_link"]
    for j in urdf.findall("joint"):
        prim = root.GetChild("Joints").GetChild(j.get("name"))
        body0 = prim.GetRelationship("physics:body0").GetTargets()[0]
        body1 = prim.GetRelationship("physics:body1").GetTargets()[0]
        assert (body0.name, body1.name) == (j.find("parent").get("link"),
                                            j.find("child").get("link"))
        if j.get("type") == "fixed":
            assert prim.IsA(UsdPhysics.FixedJoint)
            continue
        assert prim.IsA(UsdPhysics.RevoluteJoint)
        lim = j.find("limit")
        joint = UsdPhysics.RevoluteJoint(prim)
        assert joint.GetLowerLimitAttr().Get() == pytest.approx(
            math.degrees(float(lim.get("lower"))), rel=1e-6)  # degrees, as UsdPhysics wants
        assert joint.GetUpperLimitAttr().Get() == pytest.approx(
            math.degrees(float(lim.get("upper"))), rel=1e-6)
        # the joint frame seen from each body is the same place and orientation at rest
        cache = UsdGeom.XformCache()
        frames = []
        for body, pos, rot in ((body0, "localPos0", "localRot0"), (body1, "localPos1", "localRot1")):
            w = np.asarray(cache.GetLocalToWorldTransform(stage.GetPrimAtPath(body))).T
            q = prim.GetAttribute(f"physics:{rot}").Get()
            local = np.eye(4)
            local[:3, :3] = _about(np.array(q.GetImaginary()) if q.GetImaginary().GetLength()
                                   > 0 else np.array([1.0, 0, 0]),
                                   2 * math.atan2(q.GetImaginary().GetLength(), q.GetReal()))[:3, :3]
            local[:3, 3] = prim.GetAttribute(f"physics:{pos}").Get()
            frames.append(w @ local)
        np.testing.assert_allclose(frames[0], frames[1], atol=1e-6)
        # the physics axis is the URDF axis
        axis = {"X": 0, "Y": 1, "Z": 2}[joint.GetAxisAttr().Get()]
        np.testing.assert_allclose(frames[1][:3, axis] / np.linalg.norm(frames[1][:3, axis]),
                                   (fk(URDF, {})[j.find("child").get("link")][:3, :3]
                                    @ _floats(j.find("axis"), "xyz", "1 0 0")), atol=1e-6)


def test_every_movable_joint_is_bound_to_robot_slash_joint(robot: Path) -> None:
    stage = Usd.Stage.Open(str(robot))
    bindings = {b.channel: b for b in read_property_bindings(stage)}
    assert sorted(bindings) == sorted(f"so101_new_calib/{j}" for j in limits(URDF))
    pan = bindings["so101_new_calib/shoulder_pan"]
    assert pan.kind == "rotate" and pan.prim.endswith("/base_link/shoulder_link")
    assert pan.scale == pytest.approx(180 / math.pi)  # radians in, degrees in the op
    assert pan.upper == pytest.approx(math.degrees(1.91986))
    prim = stage.GetPrimAtPath(pan.prim)
    assert "Twin3DBindingAPI:shoulder_pan" in prim.GetAppliedSchemas()
    # the asset's own transform first, the joint's op appended after it
    assert list(UsdGeom.Xformable(prim).GetXformOpOrderAttr().Get()) == [
        "xformOp:transform", "xformOp:orient:twin_shoulder_pan"]


@pytest.mark.slow
def test_meshes_sit_where_independent_fk_puts_them_live_and_recorded(robot: Path,
                                                                     tmp_path: Path) -> None:
    stage_path = tmp_path / robot.name
    for f in robot.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    twin = twin3d.Twin.open(stage_path, reset=True)
    vectors = [dict.fromkeys(limits(URDF), 0.0), *random_vectors(3)]
    with twin.recording(tmp_path / "run.usdc", fps=1.0, origin=0.0, clip_seconds=1.0) as rec:
        for t, q in enumerate(vectors):  # one value clip each
            rec.write(float(t), {f"so101_new_calib/{j}": v for j, v in q.items()})
    for q in vectors[1:]:
        twin.update({f"so101_new_calib/{j}": v for j, v in q.items()})
        twin.save()
        live = Usd.Stage.Open(str(twin.root_path))  # a fresh pxr stage: what usdview shows
        assert_same_places(stage_points(live, Usd.TimeCode.Default()), expected_points(URDF, q))
    recording = Usd.Stage.Open(str(tmp_path / "run.usdc"))
    for t, q in enumerate(vectors):
        assert_same_places(stage_points(recording, Usd.TimeCode(t)), expected_points(URDF, q))


UPPER_ARM = "/so101_new_calib/Geom/base_link/shoulder_link/upper_arm_link/upper_arm_so101_v1"


def test_a_deforming_link_bends_in_world_space_and_rides_its_joints(robot: Path,
                                                                    tmp_path: Path) -> None:
    """A displacement in world space (as StressModel.displacement gives it) is recorded in the
    mesh's own frame: at rest the points move by exactly it, scaled; at a joint vector the
    displaced shape is where the independent forward kinematics carries it."""
    twin = twin3d.Twin.open(robot, reset=True)
    rest = next(m.points for m in twin.meshes if m.path == UPPER_ARM)
    shift = np.tile([0.002, -0.001, 0.003], (len(rest), 1))  # metres, world axes
    q0 = dict.fromkeys(limits(URDF), 0.0)
    q1 = random_vectors(1, seed=5)[0]
    with twin.recording(tmp_path / "run.usdc", fps=1.0, origin=0.0, clip_seconds=1.0,
                        deform_scale=2.0, deform_rate=1.0) as rec:
        for t, q in enumerate((q0, q1)):
            rec.write(float(t), {f"so101_new_calib/{j}": v for j, v in q.items()},
                      displacement={UPPER_ARM: shift})
        with pytest.raises(FieldError, match="instanced mesh"):
            servo = "/so101_new_calib/Geom/base_link/sts3215_03a_v1/Mesh"
            rec.write(1.0, displacement={servo: np.zeros((9526, 3))})
    stage = Usd.Stage.Open(str(tmp_path / "run.usdc"))
    mesh = stage.GetPrimAtPath(UPPER_ARM)

    def world(t: float) -> np.ndarray:
        m = np.asarray(UsdGeom.XformCache(t).GetLocalToWorldTransform(mesh))
        return np.asarray(UsdGeom.Mesh(mesh).GetPointsAttr().Get(t)) @ m[:3, :3] + m[3, :3]

    bent = rest + 2.0 * shift
    np.testing.assert_allclose(world(0.0), bent, atol=1e-6)
    move = fk(URDF, q1)["upper_arm_link"] @ np.linalg.inv(fk(URDF, q0)["upper_arm_link"])
    np.testing.assert_allclose(world(1.0), bent @ move[:3, :3].T + move[:3, 3], atol=TOL_M)


def test_motion_world_matrices_agree_with_usd(robot: Path) -> None:
    """The 4x4 poses a view uses to move actors are those USD composes."""
    from twin3d.usd.motion import Motion

    twin = twin3d.Twin.open(robot, reset=True)
    q = {f"so101_new_calib/{j}": v for j, v in random_vectors(1, seed=3)[0].items()}
    twin.update(q)
    poses = Motion.from_stage(twin.stage).world_matrices(q)
    cache = UsdGeom.XformCache()
    meshes = [p for p in Usd.PrimRange(twin.stage.GetPseudoRoot(), Usd.TraverseInstanceProxies())
              if p.IsA(UsdGeom.Mesh) and "shoulder_link" in str(p.GetPath())]
    assert {str(p.GetPath()) for p in meshes} <= set(poses)
    for p in meshes:
        np.testing.assert_allclose(poses[str(p.GetPath())],
                                   np.asarray(cache.GetLocalToWorldTransform(p)).T, atol=1e-9)


def test_unknown_channel_and_bad_value_raise(robot: Path) -> None:
    twin = twin3d.Twin.open(robot, reset=True)
    with pytest.raises(BindingError, match="so101_new_calib/elbow"):
        twin.update({"so101_new_calib/elbow": 0.1})
    with pytest.raises(BindingError, match="not a number"):
        twin.update({"so101_new_calib/elbow_flex": "up"})


def _need_validators() -> None:
    try:
        import usd_validation_nvidia  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("usd-validation-nvidia missing: pip install -e '.[validate]'")
        pytest.skip("usd-validation-nvidia not installed")
    if not os.environ.get(OAV_ENV):
        if IN_CI:
            pytest.fail(f"{OAV_ENV} not set: .ci/run creates that environment")
        pytest.skip(f"{OAV_ENV} not set")


@pytest.mark.slow
def test_robot_stage_and_recording_pass_every_validator(robot: Path, tmp_path: Path) -> None:
    _need_validators()
    report = validate_stage(robot)
    assert len(report.ran) == 3 and not report.failures, "\n".join(map(str, report.failures))
    twin = twin3d.Twin.open(robot, reset=True)
    bend = np.zeros((len(next(m.points for m in twin.meshes if m.path == UPPER_ARM)), 3))
    bend[:, 2] = np.linspace(0.0, 1e-3, len(bend))
    with twin.recording(tmp_path / "rec.usdc", fps=10.0, clip_seconds=0.2) as rec:  # 2 clips
        for t, q in enumerate(random_vectors(3, seed=11)):
            rec.write(t * 0.1, {f"so101_new_calib/{j}": v for j, v in q.items()},
                      displacement={UPPER_ARM: bend * t})
    report = validate_stage(tmp_path / "rec.usdc")
    assert len(report.ran) == 3 and not report.failures, "\n".join(map(str, report.failures))


# --- a small robot with shapes, prismatic and continuous joints, packages -------------------

SMALL = """<?xml version="1.0"?>
<robot name="cart">
  <material name="red"><color rgba="1 0 0 1"/></material>
  <link name="base">
    <visual><origin xyz="0 0 0.05"/><geometry><box size="0.4 0.2 0.1"/></geometry>
      <material name="red"/></visual>
  </link>
  <link name="slider">
    <visual><geometry><mesh filename="{mesh}" scale="0.001 0.002 0.001"/></geometry>
      <material name="blue"><color rgba="0 0 1 1"/></material></visual>
  </link>
  <link name="wheel">
    <visual><origin rpy="1.5708 0 0"/><geometry><cylinder radius="0.05" length="0.02"/>
      </geometry></visual>
  </link>
  <link name="tip"/>
  <joint name="slide" type="prismatic">
    <origin xyz="0 0 0.1"/><parent link="base"/><child link="slider"/>
    <axis xyz="1 1 0"/><limit lower="-0.1" upper="0.2" effort="1" velocity="1"/>
  </joint>
  <joint name="spin" type="continuous">
    <origin xyz="0.1 0 0" rpy="0 0.3 0"/><parent link="slider"/><child link="wheel"/>
    <axis xyz="0 -1 0"/>
  </joint>
  <joint name="tip_joint" type="fixed">
    <origin xyz="0 0 0.2"/><parent link="wheel"/><child link="tip"/>
  </joint>
</robot>
"""


def _small(folder: Path, mesh: str = "package://cart_description/meshes/part.stl") -> Path:
    pkg = folder / "cart_description"
    (pkg / "meshes").mkdir(parents=True)
    (pkg / "urdf").mkdir()
    (pkg / "package.xml").write_text("<package><name>cart_description</name></package>")
    shutil.copy(SO101 / "assets" / "waveshare_mounting_plate_so101_v2.stl",
                pkg / "meshes" / "part.stl")
    path = pkg / "urdf" / "cart.urdf"
    path.write_text(SMALL.format(mesh=mesh))
    return path


def test_small_robot_prismatic_continuous_shapes_and_package_layout(tmp_path: Path) -> None:
    urdf = _small(tmp_path)
    out = convert(urdf, tmp_path / "cart.usda", progress=False)
    stage = Usd.Stage.Open(str(out))
    joints = stage.GetDefaultPrim().GetChild("Joints")
    assert joints.GetChild("slide").IsA(UsdPhysics.PrismaticJoint)
    slide = UsdPhysics.PrismaticJoint(joints.GetChild("slide"))
    assert (slide.GetLowerLimitAttr().Get(), slide.GetUpperLimitAttr().Get()) == \
        pytest.approx((-0.1, 0.2))  # metres
    spin = UsdPhysics.RevoluteJoint(joints.GetChild("spin"))
    assert not spin.GetLowerLimitAttr().HasAuthoredValue()  # continuous: no limits
    bindings = {b.channel: b for b in read_property_bindings(stage)}
    assert sorted(bindings) == ["cart/slide", "cart/spin"]
    assert bindings["cart/slide"].kind == "translate"
    colors = {str(m.GetPath()).rsplit("/", 1)[-1]: m for m in stage.Traverse()
              if m.IsA(UsdGeom.Mesh)}
    assert "box" in colors and "cylinder" in colors
    twin = twin3d.Twin.open(out, reset=True)
    q = {"slide": 0.15, "spin": 2.5}
    twin.update({f"cart/{j}": v for j, v in q.items()})
    got = {}
    cache = UsdGeom.XformCache()
    for link in ("slider", "wheel", "tip"):
        prim = next(p for p in twin.stage.Traverse() if p.GetName() == link)
        got[link] = np.asarray(cache.GetLocalToWorldTransform(prim)).T
    want = fk(urdf, q)
    for link, m in got.items():
        np.testing.assert_allclose(m, want[link], atol=1e-9)
    # a limit clamps: 0.5 m asked, 0.2 m is the end of the slide
    twin.update({"cart/slide": 0.5})
    prim = next(p for p in twin.stage.Traverse() if p.GetName() == "slider")
    np.testing.assert_allclose(np.asarray(UsdGeom.XformCache().GetLocalToWorldTransform(prim)).T,
                               fk(urdf, {"slide": 0.2})["slider"], atol=1e-9)


def test_package_path_flag_finds_packages_elsewhere(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    urdf = _small(tmp_path / "src")
    moved = tmp_path / "robot.urdf"
    shutil.move(urdf, moved)  # away from the package layout
    assert main(["convert", str(moved), "-o", str(tmp_path / "a.usda")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cart_description" in err and "--package-path" in err
    assert main(["convert", str(moved), "-o", str(tmp_path / "a.usda"),
                 "--package-path", str(tmp_path / "src")]) == 0
    assert (tmp_path / "a.usda").is_file()


# --- bad URDFs -----------------------------------------------------------------------------

GOOD_JOINT = """<joint name="j" type="revolute"><parent link="a"/><child link="b"/>
<limit lower="-1" upper="1"/></joint>"""


def _robot(body: str) -> str:
    return f'<?xml version="1.0"?>\n<robot name="r">\n{body}\n</robot>\n'


BAD = [
    ("missing_mesh.urdf", _robot('<link name="a"><visual><geometry><mesh filename="nope.stl"/>'
                                 '</geometry></visual></link>'), "nope.stl"),
    ("no_parent.urdf", _robot('<link name="b"/><joint name="j" type="fixed"><parent link="x"/>'
                              '<child link="b"/></joint>'), "parent link 'x' does not exist"),
    ("no_child.urdf", _robot('<link name="a"/><joint name="j" type="fixed"><parent link="a"/>'
                             '<child link="y"/></joint>'), "child link 'y' does not exist"),
    ("cycle.urdf", _robot('<link name="r0"/><link name="a"/><link name="b"/>'
                          '<joint name="j0" type="fixed"><parent link="r0"/><child link="a"/></joint>'
                          '<joint name="j1" type="fixed"><parent link="b"/><child link="a"/>'
                          '</joint>'), "child of two joints"),
    ("loop.urdf", _robot('<link name="r0"/><link name="a"/><link name="b"/>'
                         '<joint name="j1" type="fixed"><parent link="a"/><child link="b"/></joint>'
                         '<joint name="j2" type="fixed"><parent link="b"/><child link="a"/>'
                         '</joint>'), "cycle"),
    ("two_roots.urdf", _robot('<link name="a"/><link name="b"/>'), "2 root links (a, b)"),
    ("bad_type.urdf", _robot('<link name="a"/><link name="b"/><joint name="j" type="hinge">'
                             '<parent link="a"/><child link="b"/></joint>'),
     "unknown joint type 'hinge'"),
    ("no_limit.urdf", _robot('<link name="a"/><link name="b"/><joint name="j" type="revolute">'
                             '<parent link="a"/><child link="b"/></joint>'), "needs <limit"),
    ("macro.urdf", ('<robot name="r" xmlns:xacro="http://www.ros.org/wiki/xacro">'
                    '<xacro:property name="w" value="1"/><link name="a"/></robot>'), "xacro"),
    ("robot.urdf.xacro", _robot('<link name="a"/>'),
     "expand it first: xacro robot.urdf.xacro > robot.urdf"),
    ("broken.urdf", '<?xml version="1.0"?>\n<robot name="r">\n<link name="a">\n</robot>\n',
     "line 4"),
    ("mesh.urdf", _robot('<link name="a"><visual><geometry><mesh filename="m.dae"/></geometry>'
                         '</visual></link>'), "m.dae"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_urdf_exits_1_with_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str,
        message: str) -> None:
    (tmp_path / name).write_text(text)
    (tmp_path / "m.dae").write_text("<COLLADA/>")
    out = tmp_path / "out" / "r.usda"
    out.parent.mkdir()
    assert main(["convert", str(tmp_path / name), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("twin3d convert: error:"), err
    assert message in err, err
    assert list(out.parent.iterdir()) == []
    with pytest.raises(CADImportError):
        convert(tmp_path / name, out, progress=False)


def test_urdf_does_not_mix_with_other_inputs(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(URDF), str(SO101 / "assets" / "base_so101_v2.stl"), "-o",
                 str(tmp_path / "x.usda")]) == 2
    assert "on its own" in capsys.readouterr().err


def test_units_flags_are_ignored_out_loud_for_a_urdf(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    urdf = _small(tmp_path)
    assert main(["convert", str(urdf), "-o", str(tmp_path / "c.usda"), "--units", "mm"]) == 0
    assert "--units ignored: URDF is metres" in capsys.readouterr().err
    assert main(["convert", str(urdf), "-o", str(tmp_path / "d.usda"), "--up", "Y"]) == 2
