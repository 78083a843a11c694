"""URDF robots -> plain data: a checked :class:`Robot` and the :class:`Part` of its link tree. No USD.

:func:`read_urdf` parses the XML (standard library; ``expat`` refuses entity expansion bombs
and ElementTree resolves no external entities), checks the kinematic tree (one root, no cycle,
known links and joint types, limits where URDF requires them) and resolves every visual mesh
file: relative to the URDF file, ``file://`` paths, and ``package://NAME/...`` through the
package folders given or the ROS package layout around the file. :func:`robot_part` reads the
meshes with the readers of :mod:`twin3d.cad.read` (STL, OBJ, glTF; box, cylinder and sphere
through ``trimesh.creation``) into one :class:`~twin3d.cad.scene.Part`: one node per link,
placed in its parent link's frame by its joint's origin, holding its visuals placed by their
``<origin>`` and ``<mesh scale>``. URDF is metres and Z-up, so nothing is rescaled; a mesh
file's coordinates are taken as they are stored, in its link's frame. Collision geometry is
left out (it is not shown).

Materials: a visual's ``<material>`` colour (``rgba`` as sRGB values, as ROS tools show them)
becomes a linear preview colour; a mesh file's own materials win over it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt

from twin3d.cad.name import prim_name
from twin3d.cad.part import FORMATS, file_sha256, part_from_scene
from twin3d.cad.read import read_scene
from twin3d.cad.scene import ROOT, Edge, Material, Meshes, Part, Scene, SourceMesh
from twin3d.colormap import srgb_to_linear
from twin3d.errors import CADImportError

__all__ = ["JOINT_TYPES", "Joint", "Link", "Robot", "Visual", "read_urdf", "robot_part",
           "rpy_matrix"]

#: the joint types twin3d converts (URDF's floating and planar joints are not supported)
JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")
_XACRO = ("{http://www.ros.org/wiki/xacro}", "{http://ros.org/wiki/xacro}")
_MESH_FORMATS = ("STL", "OBJ", "glTF")
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Visual:
    """One ``<visual>`` of a link.

    Attributes:
        label: its name (the ``name`` attribute, else the mesh file's stem or the shape).
        origin: (4, 4) float64 pose in the link frame, column-vector convention.
        scale: (3,) the ``<mesh scale>`` (1 for shapes).
        mesh: the resolved mesh file, or None for a shape.
        shape: ``"box"``, ``"cylinder"`` or ``"sphere"`` with its sizes, or None for a mesh.
        material: the colour given by the URDF (linear RGBA), or None.
    """

    label: str
    origin: Matrix
    scale: tuple[float, float, float]
    mesh: Path | None
    shape: tuple[str, tuple[float, ...]] | None
    material: Material | None


@dataclass(frozen=True, eq=False)
class Link:
    """A ``<link>``: its visuals and inertial properties.

    Attributes:
        name: the URDF name.
        visuals: in file order.
        mass: kilograms, or None without ``<inertial>``.
        com: (4, 4) float64 inertial frame in the link frame (centre of mass, axes).
        inertia: (3, 3) float64 inertia tensor in the inertial frame, kg m^2.
    """

    name: str
    visuals: tuple[Visual, ...]
    mass: float | None = None
    com: Matrix | None = None
    inertia: Matrix | None = None


@dataclass(frozen=True, eq=False)
class Joint:
    """A ``<joint>``.

    Attributes:
        name: the URDF name.
        type: one of :data:`JOINT_TYPES`.
        parent: the parent link's name.
        child: the child link's name.
        origin: (4, 4) float64 pose of the joint (= child link) frame in the parent link frame.
        axis: (3,) unit axis in the joint frame.
        lower: lowest position (radians or metres), None for continuous and fixed joints.
        upper: highest position.
    """

    name: str
    type: str
    parent: str
    child: str
    origin: Matrix
    axis: tuple[float, float, float]
    lower: float | None
    upper: float | None

    @property
    def movable(self) -> bool:
        """Whether a channel drives it (revolute, continuous, prismatic)."""
        return self.type != "fixed"


@dataclass(frozen=True, eq=False)
class Robot:
    """A checked URDF robot.

    Attributes:
        name: the ``<robot name>`` (the channels are ``<name>/<joint name>``).
        path: the URDF file.
        links: by name, in file order.
        joints: in file order.
        root: the root link's name.
        warnings: things the user should hear about (ignored textures, mimic joints).
    """

    name: str
    path: Path
    links: dict[str, Link]
    joints: tuple[Joint, ...]
    root: str
    warnings: tuple[str, ...] = ()

    def child_joints(self, link: str) -> list[Joint]:
        """The joints whose parent is ``link``, in file order."""
        return [j for j in self.joints if j.parent == link]


def rpy_matrix(xyz: Sequence[float], rpy: Sequence[float]) -> Matrix:
    """The (4, 4) pose of a URDF ``<origin xyz rpy>``: fixed-axis roll (x), pitch (y), yaw
    (z), so ``R = Rz(yaw) Ry(pitch) Rx(roll)``; column-vector convention.

    Examples:
        >>> rpy_matrix([1, 2, 3], [0, 0, 0])[:3, 3].tolist()
        [1.0, 2.0, 3.0]
    """
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), \
        math.cos(y), math.sin(y)
    out = np.eye(4)
    out[:3, :3] = [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                   [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                   [-sp, cp * sr, cp * cr]]
    out[:3, 3] = [float(v) for v in xyz]
    return out


class _Reader:
    """Parses one URDF file's elements, with errors that say where."""

    def __init__(self, path: Path, package_paths: Sequence[Path]) -> None:
        self.path = path
        self.package_paths = [Path(p) for p in package_paths]
        self.materials: dict[str, Material] = {}
        self.warnings: list[str] = []

    def fail(self, problem: str) -> CADImportError:
        return CADImportError(self.path, problem)

    def numbers(self, el: ET.Element | None, attr: str, n: int, default: Sequence[float],
                where: str) -> tuple[float, ...]:
        text = None if el is None else el.get(attr)
        if text is None:
            return tuple(float(v) for v in default)
        try:
            values = tuple(float(v) for v in text.split())
        except ValueError:
            values = ()
        if len(values) != n or not all(math.isfinite(v) for v in values):
            raise self.fail(f"{where}: {attr}=\"{text}\" is not {n} number"
                            f"{'s' if n > 1 else ''}")
        return values

    def origin(self, el: ET.Element, where: str) -> Matrix:
        o = el.find("origin")
        return rpy_matrix(self.numbers(o, "xyz", 3, (0, 0, 0), f"{where} <origin>"),
                          self.numbers(o, "rpy", 3, (0, 0, 0), f"{where} <origin>"))

    def material(self, el: ET.Element | None, where: str) -> Material | None:
        if el is None:
            return None
        name = el.get("name", "")
        color = el.find("color")
        if el.find("texture") is not None:
            self.warnings.append(f"{where}: material {name!r}: its texture is not converted "
                                 "(only its colour)")
        if color is None:
            if name and name in self.materials:
                return self.materials[name]
            if name:
                raise self.fail(f"{where}: material {name!r} is not defined: define it at the "
                                "top level with a <color rgba=\"r g b a\"/>")
            return None
        rgba = self.numbers(color, "rgba", 4, (1, 1, 1, 1), f"{where} material {name!r}")
        lin = srgb_to_linear(np.clip(np.asarray(rgba[:3]), 0.0, 1.0))
        mat = Material(prim_name(name or "Material", "Material"),
                       (float(lin[0]), float(lin[1]), float(lin[2]),
                        float(np.clip(rgba[3], 0.0, 1.0))))
        if name:
            self.materials.setdefault(name, mat)
        return mat

    def mesh_file(self, uri: str, where: str) -> Path:
        if uri.startswith("package://"):
            rest = uri[len("package://"):]
            package, _, rel = rest.partition("/")
            for folder in self._package_folders(package):
                if (folder / rel).is_file():
                    return folder / rel
            raise self.fail(f"{where}: mesh {uri}: package {package!r} not found, or it has no "
                            f"{rel}: pass --package-path DIR (the package folder, or the "
                            "folder holding it)")
        if uri.startswith("file://"):
            file = Path(unquote(urlparse(uri).path))
        elif "://" in uri:
            raise self.fail(f"{where}: mesh {uri}: only files, file:// and package:// URIs "
                            "are read")
        else:
            file = Path(uri) if Path(uri).is_absolute() else self.path.parent / uri
        if not file.is_file():
            raise self.fail(f"{where}: mesh file {file} not found")
        return file

    def _package_folders(self, package: str) -> list[Path]:
        """Where package ``package`` may be: under each package path, and in the ROS
        layout around the URDF (an ancestor named after it, or holding it)."""
        out: list[Path] = []
        for base in [*self.package_paths, *self.path.resolve().parents]:
            for cand in (base, base / package):
                if cand.is_dir() and (cand.name == package or _package_name(cand) == package):
                    out.append(cand)
        return out


def _package_name(folder: Path) -> str | None:
    xml = folder / "package.xml"
    if not xml.is_file():
        return None
    try:
        name = ET.parse(xml).getroot().findtext("name")
    except (ET.ParseError, OSError):
        return None
    return name.strip() if name else None


def _parse(path: Path) -> ET.Element:
    if path.suffix.lower() == ".xacro" or path.name.lower().endswith(".xacro.urdf"):
        raise CADImportError(path, f"is a xacro file: expand it first: xacro {path.name} > "
                                   f"{path.name.removesuffix('.xacro')}")
    if not path.is_file():
        raise CADImportError(path, "no such file" if not path.exists() else "not a file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        why = str(exc).split(":")[0]
        raise CADImportError(path, f"malformed XML at line {line}, column {col + 1}: {why}") \
            from None
    if any(el.tag.startswith(_XACRO) for el in root.iter()) or "${" in ET.tostring(
            root, encoding="unicode"):
        stem = path.name.removesuffix(".urdf")
        raise CADImportError(path, f"uses xacro macros: expand it first: xacro {stem}.xacro > "
                                   f"{path.name}")
    if root.tag != "robot":
        raise CADImportError(path, f"not a URDF: the root element is <{root.tag}>, not <robot>")
    return root


def read_urdf(path: Path, package_paths: Sequence[Path] = ()) -> Robot:
    """Read and check a URDF robot; resolve its visual mesh files.

    Args:
        path: the ``.urdf`` file.
        package_paths: folders for ``package://NAME/...``: a package folder itself (named
            NAME, or whose ``package.xml`` names it) or a folder holding ``NAME/``.

    Raises:
        CADImportError: a ``.xacro`` file, malformed XML (with its line), no robot name, a
            duplicate or unknown link, an unknown joint type, a missing limit, two roots, a
            cycle, a mesh file that is missing or in an unsupported format.
    """
    root = _parse(path)
    r = _Reader(path, package_paths)
    name = root.get("name", "").strip()
    if not name or any(c.isspace() for c in name):
        raise r.fail("<robot> needs a name without spaces: the channels are <robot name>/<joint>")
    for el in root.findall("material"):
        r.material(el, "top-level material")
    links: dict[str, Link] = {}
    for el in root.findall("link"):
        link = _link(r, el)
        if link.name in links:
            raise r.fail(f"two links are named {link.name!r}: link names must be unique")
        links[link.name] = link
    if not links:
        raise r.fail("no <link>: a robot has at least one link")
    joints = [_joint(r, el, links) for el in root.findall("joint")]
    seen: dict[str, Joint] = {}
    parent_of: dict[str, Joint] = {}
    for j in joints:
        if j.name in seen:
            raise r.fail(f"two joints are named {j.name!r}: joint names must be unique")
        seen[j.name] = j
        if j.child in parent_of:
            raise r.fail(f"link {j.child!r} is the child of two joints ({parent_of[j.child].name}"
                         f", {j.name}): each link has one parent")
        parent_of[j.child] = j
    roots = [n for n in links if n not in parent_of]
    reached: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        reached.add(n)
        todo.extend(j.child for j in joints if j.parent == n)
    lost = [n for n in links if n not in reached]
    if lost:
        raise r.fail(f"the joints form a cycle: {_cycle(lost[0], parent_of)}")
    if len(roots) > 1:
        raise r.fail(f"{len(roots)} root links ({', '.join(roots)}): a robot has one root; "
                     "connect them with a joint")
    for j in joints:
        if j.movable and not j.name.strip():
            raise r.fail("a movable joint has no name: its channel is <robot name>/<joint name>")
    mimics = [el.get("name", "?") for el in root.findall("joint") if el.find("mimic") is not None]
    for m in mimics:
        r.warnings.append(f"joint {m!r} mimics another joint: it is bound to its own channel "
                          f"{name}/{m}")
    return Robot(name, path, links, tuple(joints), roots[0], tuple(r.warnings))


def _cycle(start: str, parent_of: dict[str, Joint]) -> str:
    chain = [start]
    while True:
        nxt = parent_of[chain[-1]].parent
        if nxt in chain:
            loop = [*chain[chain.index(nxt):], nxt]
            return " -> ".join(reversed(loop))
        chain.append(nxt)


def _link(r: _Reader, el: ET.Element) -> Link:
    name = el.get("name")
    if not name:
        raise r.fail("a <link> has no name")
    visuals = []
    for i, v in enumerate(el.findall("visual"), start=1):
        where = f"link {name!r} visual {i}"
        geom = v.find("geometry")
        shape_el = None if geom is None else next(iter(geom), None)
        if shape_el is None:
            raise r.fail(f"{where}: no <geometry>: give a <mesh>, <box>, <cylinder> or <sphere>")
        material = r.material(v.find("material"), where)
        origin = r.origin(v, where)
        if shape_el.tag == "mesh":
            uri = shape_el.get("filename")
            if not uri:
                raise r.fail(f"{where}: <mesh> has no filename")
            file = r.mesh_file(uri, where)
            fmt = FORMATS.get(file.suffix.lower(), ("",))[0]
            if file.suffix.lower() == ".dae":
                raise r.fail(f"{where}: mesh {file.name}: COLLADA (.dae) meshes are not read; "
                             "convert it to glTF, OBJ or STL (e.g. with Blender)")
            if fmt not in _MESH_FORMATS:
                raise r.fail(f"{where}: mesh {file.name}: unsupported mesh format "
                             f"{file.suffix or '(none)'!r} (STL, OBJ, glTF/GLB)")
            scale = r.numbers(shape_el, "scale", 3, (1, 1, 1), f"{where} <mesh>")
            visuals.append(Visual(v.get("name") or file.stem, origin,
                                  (scale[0], scale[1], scale[2]), file, None, material))
            continue
        sizes = {"box": ("size", 3), "cylinder": ("radius", 1), "sphere": ("radius", 1)}
        if shape_el.tag not in sizes:
            raise r.fail(f"{where}: unknown geometry <{shape_el.tag}> (mesh, box, cylinder, "
                         "sphere)")
        attr, n = sizes[shape_el.tag]
        dims = r.numbers(shape_el, attr, n, (), f"{where} <{shape_el.tag}>") \
            if shape_el.get(attr) is not None else None
        if dims is None:
            raise r.fail(f"{where}: <{shape_el.tag}> needs {attr}")
        if shape_el.tag == "cylinder":
            dims = (*dims, *r.numbers(shape_el, "length", 1, (), f"{where} <cylinder>"))
        if any(d <= 0 for d in dims):
            raise r.fail(f"{where}: <{shape_el.tag}> sizes must be > 0")
        visuals.append(Visual(v.get("name") or shape_el.tag, origin, (1.0, 1.0, 1.0), None,
                              (shape_el.tag, dims), material))
    inertial = el.find("inertial")
    if inertial is None or inertial.find("mass") is None:
        return Link(name, tuple(visuals))
    where = f"link {name!r} <inertial>"
    mass = r.numbers(inertial.find("mass"), "value", 1, (0,), where)[0]
    inertia = inertial.find("inertia")
    keys = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
    ixx, ixy, ixz, iyy, iyz, izz = (r.numbers(inertia, k, 1, (0,), where)[0] for k in keys)
    tensor = np.array([[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]], dtype=np.float64)
    return Link(name, tuple(visuals), mass, r.origin(inertial, where), tensor)


def _joint(r: _Reader, el: ET.Element, links: dict[str, Link]) -> Joint:
    name = el.get("name", "")
    jtype = el.get("type", "")
    where = f"joint {name!r}"
    if jtype not in JOINT_TYPES:
        known = "floating and planar joints are not supported" \
            if jtype in ("floating", "planar") else "unknown joint type"
        raise r.fail(f"{where}: {known} {jtype!r} (revolute, continuous, prismatic, fixed)")
    ends = {}
    for end in ("parent", "child"):
        e = el.find(end)
        link = None if e is None else e.get("link")
        if not link:
            raise r.fail(f"{where}: no <{end} link=\"...\"/>")
        if link not in links:
            raise r.fail(f"{where}: {end} link {link!r} does not exist")
        ends[end] = link
    axis = np.asarray(r.numbers(el.find("axis"), "xyz", 3, (1, 0, 0), f"{where} <axis>"))
    lower = upper = None
    if jtype != "fixed":
        norm = float(np.linalg.norm(axis))
        if norm < 1e-9:
            raise r.fail(f"{where}: <axis xyz> must not be zero for a {jtype} joint")
        axis = axis / norm
    if jtype in ("revolute", "prismatic"):
        lim = el.find("limit")
        if lim is None:
            raise r.fail(f"{where}: a {jtype} joint needs <limit lower=\"...\" upper=\"...\"/>"
                         + (" (or make it continuous)" if jtype == "revolute" else ""))
        lower = r.numbers(lim, "lower", 1, (0,), f"{where} <limit>")[0]
        upper = r.numbers(lim, "upper", 1, (0,), f"{where} <limit>")[0]
        if lower > upper:
            raise r.fail(f"{where}: <limit> lower {lower:g} > upper {upper:g}")
    return Joint(name, jtype, ends["parent"], ends["child"], r.origin(el, where),
                 (float(axis[0]), float(axis[1]), float(axis[2])), lower, upper)


def _shape_mesh(shape: tuple[str, tuple[float, ...]]) -> tuple[np.ndarray, np.ndarray]:
    import trimesh  # only for robots with shapes: it takes about 1 s to import

    kind, dims = shape
    if kind == "box":
        tm = trimesh.creation.box(extents=dims)
    elif kind == "cylinder":
        tm = trimesh.creation.cylinder(radius=dims[0], height=dims[1], sections=48)
    else:
        tm = trimesh.creation.icosphere(subdivisions=3, radius=dims[0])
    return np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64)


def robot_part(robot: Robot, name: str) -> Part:
    """Read a robot's visual meshes into one :class:`Part`: a node per link, each under its
    parent link's node (placed by the joint's origin) and first holding its child links'
    nodes, in the order of :meth:`Robot.child_joints`, then its visuals.

    Raises:
        CADImportError: a mesh file that cannot be read.
    """
    meshes: list[SourceMesh] = []
    materials: list[Material] = []
    edges: list[Edge] = []
    by_key: dict[tuple[object, ...], tuple[list[Edge], str | None]] = {}
    files: dict[Path, Scene] = {}
    mat_index: dict[int, int] = {}

    def material(mat: Material | None) -> int | None:
        if mat is None:
            return None
        if id(mat) not in mat_index:
            mat_index[id(mat)] = len(materials)
            materials.append(mat)
        return mat_index[id(mat)]

    def file_edges(visual: Visual, vid: str) -> tuple[list[Edge], str | None]:
        """The edges (under ``vid``) of a visual's file, and the mesh node to collapse."""
        key = (visual.mesh, visual.shape, id(visual.material))
        if key in by_key:
            return by_key[key]
        if visual.shape is not None:
            pts, faces = _shape_mesh(visual.shape)
            meshes.append(SourceMesh(visual.shape[0], pts, faces, material(visual.material)))
            shaped: tuple[list[Edge], str | None] = (
                [Edge(ROOT, "shape", mesh=len(meshes) - 1)], "shape")
            by_key[key] = shaped
            return shaped
        assert visual.mesh is not None
        again = visual.mesh in files  # with another material: the welder edits arrays in place
        if not again:
            files[visual.mesh] = read_scene(visual.mesh, FORMATS[visual.mesh.suffix.lower()][0])
        scene = files[visual.mesh]
        first = len(meshes)
        own = len(materials)
        materials.extend(scene.materials)
        for i in range(len(scene.meshes)):
            src = scene.meshes[i]
            mat = material(visual.material) if src.material is None else own + src.material
            meshes.append(SourceMesh(
                src.name, src.vertices.copy() if again else src.vertices,
                None if src.faces is None else src.faces.copy() if again else src.faces,
                mat, src.vertex_colors, src.face_colors, src.uvs, src.welded))
        moved = [Edge(e.parent, e.child, e.matrix, None if e.mesh is None else first + e.mesh,
                      e.label) for e in scene.edges]
        single = len(moved) == 1 and moved[0].mesh is not None and \
            np.allclose(moved[0].matrix, np.eye(4))
        found: tuple[list[Edge], str | None] = (moved, moved[0].child if single else None)
        by_key[key] = found
        return found

    def add_link(link_name: str, parent: str, matrix: Matrix) -> None:
        edges.append(Edge(parent, f"link:{link_name}", matrix, label=link_name, keep=True))
        for j in robot.child_joints(link_name):
            add_link(j.child, f"link:{link_name}", j.origin)
        for k, visual in enumerate(robot.links[link_name].visuals):
            vid = f"visual:{link_name}:{k}"
            placed = visual.origin @ np.diag([*visual.scale, 1.0])
            sub, single = file_edges(visual, vid)
            if single is not None:
                edges.append(Edge(f"link:{link_name}", vid, placed, sub[0].mesh, visual.label))
                continue
            edges.append(Edge(f"link:{link_name}", vid, placed, label=visual.label))
            for e in sub:
                edges.append(Edge(vid if e.parent == ROOT else f"{vid}/{e.parent}",
                                  f"{vid}/{e.child}", e.matrix, e.mesh, e.label or e.child))

    add_link(robot.root, ROOT, np.eye(4))
    scene = Scene(Meshes(meshes), tuple(materials), tuple(edges), "meters", ROOT)
    meshes.clear()  # the scene's Meshes hold them now, to be taken once
    files.clear()
    by_key.clear()
    return part_from_scene(scene, robot.path, "URDF", name=name,
                           sha256=file_sha256(robot.path),
                           units_note="URDF: metres", axis_note="Z (URDF)",
                           warnings=robot.warnings)
