"""One CAD or mesh file -> a :class:`~twin3d.cad.scene.Part` in the stage's units and axis.

:func:`load_part` reads the file's :class:`~twin3d.cad.scene.Scene` (:mod:`twin3d.cad.read`),
decides its units and up axis, and turns each mesh a node shows into a welded
:class:`~twin3d.cad.scene.MeshPart` (:mod:`twin3d.cad.geometry`), so that the USD writer
(:mod:`twin3d.usd.asset`) only copies arrays.

Units and axes decided here (the audit trail goes into the stage's layer metadata):

======================  ===========================  ========================
format                  units                        up axis
======================  ===========================  ========================
STEP / STP              declared (cascadio: metres)  Z (CAD convention)
glTF / GLB              metres (glTF spec)           Y (glTF spec)
3MF                     declared (``unit``, mm)      Z (3MF spec)
STL, OBJ, PLY, OFF      none: ``units`` argument,    Z (assumed)
                        else millimetres + warning
======================  ===========================  ========================

Converting never puts a scale or rotation on a root: with ``C = s R`` (unit scale times
axis rotation) points become ``C p`` and every node's local matrix ``C M C^-1``, so the
world positions are ``C`` times the source's and no node gains a scale.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d._types import PathLike
from twin3d.cad.geometry import conversion_matrix, take_welded
from twin3d.cad.name import prim_name, unique_names
from twin3d.cad.read import read_scene
from twin3d.cad.scene import (
    NO_MATERIAL,
    Edge,
    Material,
    Meshes,
    MeshPart,
    Node,
    Part,
    Scene,
)
from twin3d.cad.step import Tolerance
from twin3d.errors import CADImportError

__all__ = ["DEFAULT_UNITS", "FORMATS", "UNITS", "file_sha256", "load_part", "part_from_scene"]

#: metres per unit for the ``--units`` choices
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254, "ft": 0.3048}
#: units assumed for unitless formats when none is given (with a warning)
DEFAULT_UNITS = "mm"
#: suffix -> (format name, declares units, source up axis)
FORMATS: dict[str, tuple[str, bool, str]] = {
    ".stl": ("STL", False, "Z"),
    ".obj": ("OBJ", False, "Z"),
    ".ply": ("PLY", False, "Z"),
    ".off": ("OFF", False, "Z"),
    ".gltf": ("glTF", True, "Y"),
    ".glb": ("glTF", True, "Y"),
    ".3mf": ("3MF", True, "Z"),
    ".step": ("STEP", True, "Z"),
    ".stp": ("STEP", True, "Z"),
}

#: metres per unit of the unit names files declare (:attr:`Scene.units`)
_UNIT_NAMES = {"meters": 1.0, "meter": 1.0, "m": 1.0, "millimeters": 0.001, "millimeter": 0.001,
               "mm": 0.001, "centimeters": 0.01, "centimeter": 0.01, "cm": 0.01,
               "inches": 0.0254, "inch": 0.0254, "in": 0.0254, "feet": 0.3048, "foot": 0.3048,
               "ft": 0.3048, "microns": 1e-6, "micron": 1e-6}
#: STEP assembly occurrence ids (NEXT_ASSEMBLY_USAGE_OCCURRENCE) as OpenCASCADE names them
_STEP_OCCURRENCE = re.compile(r"NAUO\d+")


def load_part(path: PathLike, units: str | None = None, up_axis: str = "Z",
              meters_per_unit: float | None = 1.0, name: str | None = None, *,
              tolerance: Tolerance | None = None, timeout: float | None = None,
              skip_bad_parts: bool = False, progress: Callable[[str], None] | None = None,
              ) -> Part:
    """Read one CAD or mesh file into a :class:`Part` in stage units and axis.

    Args:
        path: STL, OBJ, PLY, OFF, glTF/GLB, 3MF or STEP/STP file.
        units: units of a unitless source (``m``, ``cm``, ``mm``, ``in``, ``ft``); ignored,
            with a warning, for formats that declare their units.
        up_axis: the stage's up axis, ``"Z"`` or ``"Y"``; points are rotated to it.
        meters_per_unit: the stage's metres per unit (points are scaled to it); ``None``
            keeps the source's units.
        name: the part's prim name (default: from the file name).
        tolerance: how finely STEP surfaces are tessellated (default :class:`Tolerance()`:
            relative to the model's size).
        timeout: give up (:class:`CADImportError`) when reading takes longer than this
            many seconds; None: no limit.
        skip_bad_parts: leave out a mesh that cannot be converted (a warning names it)
            instead of failing.
        progress: called with a short label as the reading goes (tessellating, each mesh).

    Raises:
        CADImportError: missing, empty, corrupt or unsupported file, or past ``timeout``.
    """
    p = Path(path)
    fmt_info = FORMATS.get(p.suffix.lower())
    if fmt_info is None:
        raise CADImportError(p, f"unsupported file type {p.suffix or '(none)'!r}; supported: "
                             + ", ".join(sorted({f[0] for f in FORMATS.values()})))
    fmt, declares, src_up = fmt_info
    if not p.is_file():
        raise CADImportError(p, "no such file" if not p.exists() else "not a file")
    if p.stat().st_size == 0:
        raise CADImportError(p, "file is empty")
    if units is not None and units not in UNITS:
        raise CADImportError(p, f"unknown units {units!r}; use one of {', '.join(UNITS)}")
    with ThreadPoolExecutor(1, thread_name_prefix="twin3d-sha256") as pool:
        digest = pool.submit(file_sha256, p)  # beside the reading: hashlib releases the GIL
        limit = _Deadline(p, timeout)
        # reading starts now: the tessellation (STEP) may take all of the time
        scene = read_scene(p, fmt, tolerance=tolerance, timeout=timeout, progress=progress)
        tessellation = scene.tessellation
        mpu, units_note, warnings = _source_units(p, fmt, declares, scene.units, units)
        warnings[:0] = scene.warnings
        axis_note = (f"{src_up} (glTF spec)" if fmt == "glTF" else f"{src_up} (3MF spec)"
                     if fmt == "3MF" else f"{src_up} (CAD convention, assumed)")
        scale = 1.0 if meters_per_unit is None else mpu / meters_per_unit
        builder = _Builder(scene, p, fmt, conversion_matrix(scale, src_up, up_axis),
                           limit=limit, skip_bad_parts=skip_bad_parts, progress=progress)
        del scene  # the builder takes each mesh out of it once read
        top = builder.nodes(builder.root)
        warnings += builder.warnings
        if not builder.meshes:
            raise CADImportError(p, "no triangles found (empty, truncated or not a valid "
                                    f"{fmt} file)" if not builder.skipped else
                                 f"every mesh was left out ({builder.warnings[-1]})")
        # a single wrapper node with identity transform adds nothing: unwrap it
        while len(top) == 1 and top[0].mesh is None and top[0].matrix is None and top[0].children:
            top = list(top[0].children)
        return Part(name or prim_name(p.stem, "Part"), p, fmt, digest.result(),
                    Meshes(builder.meshes), tuple(builder.materials), _unique_children(top),
                    mpu, src_up, units_note, axis_note, tuple(builder.uses), tuple(warnings),
                    tessellation)


def part_from_scene(scene: Scene, path: Path, fmt: str, *, name: str, sha256: str,
                    units_note: str, axis_note: str, warnings: Sequence[str] = ()) -> Part:
    """A scene already in stage units and axis (a URDF robot's: metres, Z-up) as a
    :class:`Part`, its top-level nodes kept as they are (no wrapper is unwrapped).

    Takes the scene's meshes, as :func:`load_part` does.

    Raises:
        CADImportError: the scene's meshes have no triangle.
    """
    builder = _Builder(scene, path, fmt, np.eye(4))
    del scene  # the builder takes each mesh out of it once read
    top = builder.nodes(builder.root)
    if not builder.meshes:
        raise CADImportError(path, "no triangles found in its meshes")
    return Part(name, path, fmt, sha256, Meshes(builder.meshes), tuple(builder.materials),
                _unique_children(top), 1.0, "Z", units_note, axis_note, tuple(builder.uses),
                tuple(warnings))


def _source_units(p: Path, fmt: str, declares: bool, declared: str | None,
                  units: str | None) -> tuple[float, str, list[str]]:
    """(metres per unit of the source, how that was decided, warnings)."""
    warnings: list[str] = []
    if declares:
        mpu = _UNIT_NAMES.get(declared.lower()) if declared else None
        if mpu is None:
            mpu = 1.0 if fmt in ("glTF", "STEP") else 0.001
            note = f"{fmt} default ({mpu:g} m per unit)"
        else:
            note = f"declared by the {fmt} file: {declared}"
        if units is not None and abs(UNITS[units] - mpu) > 1e-12:
            warnings.append(f"{p.name}: --units {units} ignored: {fmt} declares its units "
                            f"({mpu:g} m per unit)")
    elif units is not None:
        mpu, note = UNITS[units], f"given: {units}"
    else:
        mpu, note = UNITS[DEFAULT_UNITS], f"assumed: {DEFAULT_UNITS} ({fmt} has no units)"
        warnings.append(f"{p.name}: {fmt} files carry no units; assuming {DEFAULT_UNITS} "
                        f"(pass --units m|cm|mm|in|ft)")
    return mpu, note, warnings


class _Deadline:
    """When a reading's ``timeout`` is up (None: never)."""

    def __init__(self, path: Path, timeout: float | None) -> None:
        self.path, self.timeout = path, timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def check(self) -> None:
        """Raises CADImportError: the time is up."""
        if self.at is not None and time.monotonic() > self.at:
            raise CADImportError(self.path, f"reading took longer than --timeout "
                                            f"{self.timeout:g} s")


class _Builder:
    """A scene's hierarchy as :class:`Node` trees, in stage units and axis.

    Each mesh is taken out of the scene and welded the first time a node shows it; the
    materials are those the meshes use, each once, in the order they are first used. A mesh
    that cannot be converted fails the part, or with ``skip_bad_parts`` is left out with a
    warning that names it.
    """

    def __init__(self, scene: Scene, path: Path, fmt: str, conv: npt.NDArray[np.float64], *,
                 limit: _Deadline | None = None, skip_bad_parts: bool = False,
                 progress: Callable[[str], None] | None = None) -> None:
        self.root = scene.root
        self.meshes: list[MeshPart] = []
        self.materials: list[Material] = []
        self.uses: list[int] = []
        self._source = scene.meshes
        self._source_materials = scene.materials
        self._several = len(scene.meshes) > 1  # only then can a mesh repeat another
        self._children: dict[str, list[Edge]] = {}
        for edge in scene.edges:
            self._children.setdefault(edge.parent, []).append(edge)
        self._path, self._fmt = path, fmt
        self._conv, self._conv_inv = conv, np.linalg.inv(conv)
        self._mesh_of: dict[int, int | None] = {}
        self._by_content: dict[str, int] = {}
        self._material_of: dict[tuple[object, ...], int] = {}
        self._limit = limit or _Deadline(path, None)
        self._skip, self._progress = skip_bad_parts, progress
        self.warnings: list[str] = []
        self.skipped = 0

    def nodes(self, parent: str) -> list[Node]:
        """The nodes under ``parent`` that show a mesh or have children that do."""
        return [n for n in (self._node(e) for e in self._children.get(parent, []))
                if n is not None]

    def _node(self, edge: Edge) -> Node | None:
        mesh = None if edge.mesh is None else self._mesh(edge.mesh)
        kids = self.nodes(edge.child)
        if mesh is None and not kids and not edge.keep:
            return None
        if mesh is not None:
            self.uses[mesh] += 1
        local = self._conv @ edge.matrix @ self._conv_inv
        matrix = None if np.allclose(local, np.eye(4), atol=1e-12) else local
        label = edge.label or edge.child
        readable = label
        if self._fmt == "STEP" and mesh is not None and _STEP_OCCURRENCE.fullmatch(label):
            readable = self.meshes[mesh].name  # "NAUO7" means nothing to people; the part does
        # a node with a mesh and children gets a child prim "Mesh" for the mesh
        taken = ("Mesh",) if mesh is not None and kids else ()
        return Node(prim_name(readable, "Node"), matrix, mesh, _unique_children(kids, taken),
                    label)

    def _mesh(self, index: int) -> int | None:
        """The part's mesh for the scene's mesh ``index`` (taken and welded the first time)."""
        if index in self._mesh_of:
            return self._mesh_of[index]
        self._limit.check()
        if self._progress is not None:
            self._progress(f"mesh {len(self._mesh_of) + 1} of {len(self._source)}")
        peek = self._source[index]
        base = prim_name(peek.name, "Mesh")
        material, per_face = self._materials(peek.material, peek.face_materials)
        colored = peek.vertex_colors is not None or peek.face_colors is not None or \
            per_face is not None
        label = peek.name
        del peek  # take_welded must hold the only reference to the arrays
        try:
            mp = take_welded(self._source, index, path=self._path, name=base, conv=self._conv,
                             material=material, face_materials=per_face)
        except CADImportError as exc:
            if not self._skip:
                several = "; --skip-bad-parts leaves it out" if len(self._source) > 1 else ""
                raise CADImportError(self._path, exc.problem + several) from None
            self.warnings.append(f"{self._path.name}: left out mesh {label!r}: {exc.problem}")
            self.skipped += 1
            mp = None
        found: int | None = None
        if mp is not None:
            digest = ""
            if self._several:
                h = hashlib.sha1(mp.points.tobytes())
                h.update(mp.faces.tobytes())
                h.update(str(material).encode())
                digest = h.hexdigest()
            if digest in self._by_content and not colored:  # repeated part: instance it
                found = self._by_content[digest]
            else:
                self.meshes.append(replace(mp, name=unique_names(
                    [base], [m.name for m in self.meshes])[0]))
                self.uses.append(0)
                found = len(self.meshes) - 1
                self._by_content[digest] = found
        self._mesh_of[index] = found
        return found

    def _materials(self, index: int | None, per_face: npt.NDArray[np.integer[Any]] | None,
                   ) -> tuple[int, npt.NDArray[np.int32] | None]:
        """The part's material for a mesh, and for each of its faces when they differ."""
        if per_face is None:
            return self._material(index), None
        used, inverse = np.unique(per_face, return_inverse=True)
        mine = np.array([self._material(int(u)) for u in used], dtype=np.int32)
        faces = mine[inverse.reshape(-1)]
        if len(np.unique(mine)) == 1:
            return int(mine[0]), None
        return int(np.bincount(faces).argmax()), faces

    def _material(self, index: int | None) -> int:
        """The part's material for the scene's material ``index`` (None: the source has none)."""
        mat = NO_MATERIAL if index is None else self._source_materials[index]
        key = (*(round(c, 4) for c in mat.color), round(mat.metallic, 4),
               round(mat.roughness, 4), *(round(e, 4) for e in mat.emissive),
               None if mat.texture is None else hashlib.sha1(mat.texture).hexdigest())
        if key not in self._material_of:
            self._material_of[key] = len(self.materials)
            name = unique_names([prim_name(mat.name, "Material")],
                                [m.name for m in self.materials])[0]
            self.materials.append(replace(mat, name=name))
        return self._material_of[key]


def _unique_children(nodes: list[Node], taken: Sequence[str] = ()) -> tuple[Node, ...]:
    names = unique_names([n.name for n in nodes], taken)
    return tuple(n if n.name == u else replace(n, name=u) for n, u in zip(nodes, names,
                                                                          strict=True))


def file_sha256(path: Path) -> str:
    """The hex SHA-256 digest of a file, read a megabyte at a time."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()
