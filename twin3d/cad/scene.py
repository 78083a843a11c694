"""The plain data of CAD reading: a source's :class:`Scene` in, a converted :class:`Part` out.

Every reader (:mod:`twin3d.cad.stl`, :mod:`~twin3d.cad.obj`, :mod:`~twin3d.cad.gltf`, and
trimesh through :func:`twin3d.cad.read.from_trimesh`) returns a :class:`Scene`: the file's
meshes as it stores them, its materials, and its hierarchy as edges between named nodes, each
with a (4, 4) local transform, in the source's units and axis. :func:`twin3d.cad.load_part`
turns a scene into a :class:`Part`: welded meshes with normals, in the stage's units and axis,
and a tree of :class:`Node` with valid prim names, which the USD writer only copies.

Meshes are big, so they are handed over rather than shared: :class:`Meshes` gives each one
up once (:meth:`Meshes.take`), and its holder lets go of it, so that its arrays are freed as
soon as the taker is done with them (``benchmarks/RESULTS.md``, "Conversion"). Everything
else here is immutable.

The shapes leave room for what readers will need: a URDF's links are nodes placed by
their joints' edges, with each link's meshes read from their own files by these same
readers; a STEP file's named parts are nodes, and a part whose faces have different colours
is one mesh with a material index per face (:attr:`SourceMesh.face_materials`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_PBR_COLOR",
    "NO_MATERIAL",
    "ROOT",
    "Edge",
    "Material",
    "MeshPart",
    "Meshes",
    "Node",
    "Part",
    "Scene",
    "SourceMesh",
    "rgba",
]

M = TypeVar("M")


class Meshes(Generic[M]):
    """Meshes that their holder hands over, each once.

    Read them with ``meshes[i]``, ``len`` and iteration until they are taken;
    :meth:`take` gives one up and :meth:`take_all` every one: the holder then no longer
    refers to them, so their arrays are freed as soon as the taker drops them.
    """

    def __init__(self, meshes: Sequence[M]) -> None:
        self._items: list[M | None] = list(meshes)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        taken = sum(item is None for item in self._items)
        return f"Meshes({len(self._items)} meshes, {taken} taken)"

    def __getitem__(self, index: int) -> M:
        item = self._items[index]
        if item is None:
            raise RuntimeError(f"mesh {index} was taken (Meshes.take): it is no longer here")
        return item

    def __iter__(self) -> Iterator[M]:
        return (self[i] for i in range(len(self._items)))

    def take(self, index: int) -> M:
        """Hand mesh ``index`` over: this holder lets go of it.

        Raises:
            RuntimeError: it was taken already.
        """
        item = self[index]
        self._items[index] = None
        return item

    def take_all(self) -> list[M]:
        """Hand every mesh over, in order: this holder is left with none."""
        return [self.take(i) for i in range(len(self._items))]


def rgba(values: npt.ArrayLike) -> tuple[float, float, float, float]:
    """An RGBA colour, 0..1, from 8-bit (integers 0..255) or 0..1 values; RGB gets alpha 1.

    Examples:
        >>> rgba(np.array([255, 0, 51], dtype=np.uint8))
        (1.0, 0.0, 0.2, 1.0)
    """
    a = np.asarray(values)
    c = a.astype(np.float64) / 255.0 if a.dtype.kind in "ui" else a.astype(np.float64)
    c = np.clip(np.append(c[:4], [1.0] * (4 - len(c[:4]))), 0.0, 1.0)
    return float(c[0]), float(c[1]), float(c[2]), float(c[3])


@dataclass(frozen=True)
class Material:
    """A preview-surface material.

    Attributes:
        name: the source's name in a :class:`Scene`; a valid prim name, unique among the
            part's materials, in a :class:`Part`.
        color: (4,) RGBA 0..1 (linear values as the source gives them).
        metallic: 0..1.
        roughness: 0..1.
        emissive: (3,) RGB 0..1.
        texture: the base colour image as PNG bytes (``color`` then scales it), or None.
    """

    name: str
    color: tuple[float, float, float, float]
    metallic: float = 0.0
    roughness: float = 0.5
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture: bytes | None = field(default=None, repr=False)


#: the material of a mesh whose source gives it none
NO_MATERIAL = Material("Material", (0.7, 0.7, 0.7, 1.0))
#: the base colour of a PBR material that gives none: 0.4 grey, as trimesh reads it (glTF
#: says white); every reader uses it, so that stages converted before keep their colours
DEFAULT_PBR_COLOR = rgba(np.array([102, 102, 102, 255], dtype=np.uint8))


# --- what readers return --------------------------------------------------------------------

#: the name of the frame a reader's top-level nodes hang from (:attr:`Scene.root`)
ROOT = "world"


@dataclass(frozen=True, eq=False)
class SourceMesh:
    """A triangle mesh as the source stores it, in the source's units and axis.

    Attributes:
        name: the source's name for it.
        vertices: (n, 3) float32 or float64 positions.
        faces: (m, 3) integer triangles into ``vertices``; None: a triangle soup, whose
            face ``j`` is rows ``3 j``, ``3 j + 1`` and ``3 j + 2``.
        material: index into :attr:`Scene.materials`; None: the source gives none.
        vertex_colors: optional (n, 3) float32 RGB 0..1 colours, one per vertex.
        face_colors: optional (m, 3) float32 RGB 0..1 colours, one per face.
        uvs: optional (n, 2) float32 texture coordinates, one per vertex, for a textured
            material.
        welded: the reader merged equal points already (``faces`` index distinct points).
        face_materials: optional (m,) integer index into :attr:`Scene.materials` per face,
            for a mesh whose faces have different materials (``material`` is then the most
            used one).
    """

    name: str
    vertices: npt.NDArray[np.floating[Any]]
    faces: npt.NDArray[np.integer[Any]] | None
    material: int | None = None
    vertex_colors: npt.NDArray[np.float32] | None = None
    face_colors: npt.NDArray[np.float32] | None = None
    uvs: npt.NDArray[np.float32] | None = None
    welded: bool = False
    face_materials: npt.NDArray[np.integer[Any]] | None = None


@dataclass(frozen=True, eq=False)
class Edge:
    """An edge of a scene's hierarchy: ``child`` placed in ``parent``'s frame.

    Attributes:
        parent: the parent node's name (:attr:`Scene.root` for a top-level node).
        child: the child node's name, unique in the scene.
        matrix: (4, 4) float64 local transform of the child, column-vector convention
            (``p' = M p``), in the source's units and axis.
        mesh: index into :attr:`Scene.meshes` of the mesh the child shows, or None.
        label: the source's own name for the child, when ``child`` is not it ("": it is).
        keep: keep the child even when it shows no mesh (a URDF link: a frame that joints
            and bindings refer to).
    """

    parent: str
    child: str
    matrix: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    mesh: int | None = None
    label: str = ""
    keep: bool = False


@dataclass(frozen=True, eq=False)
class Scene:
    """One source file as read: meshes, materials and the hierarchy that places them.

    Attributes:
        meshes: the meshes, handed over once each (a mesh used by several edges is here once).
        materials: the materials the meshes refer to.
        edges: the hierarchy, parents before their children, siblings in the source's order.
        units: the length unit the file declares (``"meters"``, ``"millimeters"`` ...), or
            None when it declares none.
        root: the name of the frame the top-level nodes hang from (no node has it).
        warnings: what the reader noticed and the user should hear (one line each).
        tessellation: how surfaces were tessellated (STEP), for the provenance; "" for meshes.
    """

    meshes: Meshes[SourceMesh]
    materials: tuple[Material, ...] = ()
    edges: tuple[Edge, ...] = ()
    units: str | None = None
    root: str = ROOT
    warnings: tuple[str, ...] = ()
    tessellation: str = ""


# --- what reading gives -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MeshPart:
    """One welded triangle mesh, in stage units and axis, in its node's local frame.

    Attributes:
        name: a valid prim name (unique within the part's meshes).
        points: (n, 3) float32 welded vertices, each used by at least one face.
        faces: (m, 3) int32 triangles, sorted by their lowest vertex index.
        normals: (n, 3) float32 for ``vertex`` interpolation or (3 m, 3) for ``faceVarying``.
        interpolation: ``"vertex"`` (smooth) or ``"faceVarying"`` (the mesh has hard edges).
        material: index into :attr:`Part.materials`.
        colors: optional per-vertex (n, 3) or per-face (m, 3) float32 display colours.
        uvs: optional (3 m, 2) float32 texture coordinates, one per face corner (lower-left
            origin, as USD's ``st``), for a textured material.
        face_materials: optional (m,) int32 index into :attr:`Part.materials` per face, for a
            mesh whose faces have different materials (``material`` is the most used one);
            written as one ``GeomSubset`` per material.
    """

    name: str
    points: npt.NDArray[np.float32]
    faces: npt.NDArray[np.int32]
    normals: npt.NDArray[np.float32]
    interpolation: str
    material: int
    colors: npt.NDArray[np.float32] | None = None
    uvs: npt.NDArray[np.float32] | None = None
    face_materials: npt.NDArray[np.int32] | None = None

    @property
    def extent(self) -> npt.NDArray[np.float32]:
        """(2, 3) float32 min and max corner of the points."""
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)])


@dataclass(frozen=True)
class Node:
    """A node of the source's hierarchy.

    Attributes:
        name: a valid prim name, unique among its siblings.
        matrix: (4, 4) float64 local transform, column-vector convention (``p' = M p``),
            already in stage units and axis; ``None`` for identity.
        mesh: index into :attr:`Part.meshes`, or ``None``.
        children: child nodes.
        label: the source's own name (shown as the prim's displayName when it differs).
    """

    name: str
    matrix: npt.NDArray[np.float64] | None
    mesh: int | None
    children: tuple[Node, ...] = ()
    label: str = ""


@dataclass(frozen=True, eq=False)
class Part:
    """One input file, converted.

    Attributes:
        name: a valid prim name for the part.
        path: the source file.
        format: ``"STL"``, ``"glTF"``, ``"STEP"`` ...
        sha256: hex digest of the source file.
        meshes: the distinct meshes (a mesh used by several nodes appears once), handed
            over once: the USD writer takes them all and lets each go once authored.
        materials: the distinct materials.
        nodes: the top-level nodes.
        meters_per_unit: metres per unit of the source.
        up_axis: the source's up axis.
        units_note: how the source's units were decided.
        axis_note: how the source's up axis was decided.
        uses: how many nodes use each mesh (more than one: write once, instance).
        warnings: things the user should hear about (assumed units ...).
        tessellation: how a STEP file's surfaces were tessellated ("" for meshes).
        triangle_count: triangles in the world (instances counted once per use); it stays
            readable after the meshes are taken.
    """

    name: str
    path: Path
    format: str
    sha256: str
    meshes: Meshes[MeshPart]
    materials: tuple[Material, ...]
    nodes: tuple[Node, ...]
    meters_per_unit: float
    up_axis: str
    units_note: str
    axis_note: str
    uses: tuple[int, ...]
    warnings: tuple[str, ...] = ()
    tessellation: str = ""
    triangle_count: int = field(init=False)

    def __post_init__(self) -> None:
        count = sum(len(m.faces) * u for m, u in zip(self.meshes, self.uses, strict=True))
        object.__setattr__(self, "triangle_count", count)  # a frozen dataclass's derived field
