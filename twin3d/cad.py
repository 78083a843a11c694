"""CAD and mesh files -> plain intermediate data (parts, meshes, materials, nodes); pure.

Everything here is numpy and trimesh (with cascadio for STEP); no USD. The simple cases of
binary STL, OBJ and glTF are read without importing trimesh (:mod:`twin3d._cad_fast`, numpy
only), into the same structures, giving the same :class:`Part`. :func:`load_part` reads one file into a :class:`Part` already converted to the stage's units and up axis,
so the USD writer (:mod:`twin3d.usd.asset`) only copies arrays.

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
import unicodedata
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d._memory import release_free_memory
from twin3d._types import PathLike
from twin3d.errors import CADImportError, reason
from twin3d.weld import packed_argsort, weld

__all__ = [
    "DEFAULT_UNITS",
    "FORMATS",
    "UNITS",
    "Material",
    "MeshPart",
    "Node",
    "Part",
    "load_part",
    "prim_name",
    "unique_names",
    "vertex_or_corner_normals",
]

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
#: corners whose face normal is further than this from the smooth normal split (hard edge)
CREASE_ANGLE_DEG = 30.0
#: rows per step of the chunked array passes (their temporaries stay a few MiB)
_CHUNK = 1 << 16

_TRIMESH_UNITS = {"meters": 1.0, "meter": 1.0, "m": 1.0, "millimeters": 0.001, "millimeter": 0.001,
                  "mm": 0.001, "centimeters": 0.01, "centimeter": 0.01, "cm": 0.01,
                  "inches": 0.0254, "inch": 0.0254, "in": 0.0254, "feet": 0.3048, "foot": 0.3048,
                  "ft": 0.3048, "microns": 1e-6, "micron": 1e-6}


@dataclass(frozen=True)
class Material:
    """A preview-surface material.

    Attributes:
        name: a valid prim name.
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
    """

    name: str
    points: npt.NDArray[np.float32]
    faces: npt.NDArray[np.int32]
    normals: npt.NDArray[np.float32]
    interpolation: str
    material: int
    colors: npt.NDArray[np.float32] | None = None
    uvs: npt.NDArray[np.float32] | None = None

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
        meshes: the distinct meshes (a mesh used by several nodes appears once).
        materials: the distinct materials.
        nodes: the top-level nodes.
        meters_per_unit: metres per unit of the source.
        up_axis: the source's up axis.
        units_note: how the source's units were decided.
        axis_note: how the source's up axis was decided.
        uses: how many nodes use each mesh (more than one: write once, instance).
        warnings: things the user should hear about (assumed units ...).
    """

    name: str
    path: Path
    format: str
    sha256: str
    meshes: list[MeshPart]
    materials: list[Material]
    nodes: tuple[Node, ...]
    meters_per_unit: float
    up_axis: str
    units_note: str
    axis_note: str
    uses: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def triangle_count(self) -> int:
        """Triangles in the world (instances counted once per use)."""
        return sum(len(m.faces) * u for m, u in zip(self.meshes, self.uses, strict=True))


# --- names ----------------------------------------------------------------------------------

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")
#: the frame trimesh gives each primitive of a multi-primitive glTF mesh: "<node>_" + 6 random hex
_GLTF_PRIMITIVE_FRAME = re.compile(r"_[0-9a-f]{6}")
#: STEP assembly occurrence ids (NEXT_ASSEMBLY_USAGE_OCCURRENCE) as OpenCASCADE names them
_STEP_OCCURRENCE = re.compile(r"NAUO\d+")


def prim_name(text: str, fallback: str = "Part") -> str:
    """Return a readable, valid ASCII USD prim name for ``text``.

    Accents are transliterated (``Würfel`` -> ``Wurfel``); letters with no ASCII form (CJK,
    Cyrillic ...) are kept as a Unicode identifier (valid prim names since USD 24);
    other illegal characters become ``_``; a leading digit gets a ``_`` prefix; names with
    nothing usable left become ``fallback``.

    Examples:
        >>> prim_name("d8 (1)"), prim_name("Würfel-2"), prim_name("3mf part"), prim_name("部品 1")
        ('d8_1', 'Wurfel_2', '_3mf_part', '部品_1')
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = _NOT_IDENT.sub("_", ascii_text).strip("_")
    lost = sum(ch.isalnum() for ch in text) - sum(ch.isalnum() for ch in ascii_text)
    if lost > 0 and not any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", text)):
        # letters with no ASCII form (CJK, Cyrillic ...): keep a Unicode identifier (USD >= 24)
        uni = "".join(c if ("a" + c).isidentifier() else "_"
                      for c in unicodedata.normalize("NFC", text))
        name = re.sub("_+", "_", uni).strip("_")
    if not name:
        return fallback
    if name[0].isdigit():
        name = "_" + name
    return name


def unique_names(names: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """Make ``names`` unique (and distinct from ``taken``) by appending ``_1``, ``_2`` ...

    Examples:
        >>> unique_names(["Object", "Object", "Object_1"])
        ['Object', 'Object_2', 'Object_1']
    """
    seen = set(taken) | set()
    counts: dict[str, int] = {}
    wanted = set(names)
    out: list[str] = []
    for n in names:
        cand = n
        if cand in seen:
            k = counts.get(n, 0)
            while True:
                k += 1
                cand = f"{n}_{k}"
                if cand not in seen and cand not in wanted:
                    break
            counts[n] = k
        seen.add(cand)
        out.append(cand)
    return out


# --- geometry -------------------------------------------------------------------------------


def vertex_or_corner_normals(
    points: npt.NDArray[np.floating[Any]], faces: npt.NDArray[np.integer[Any]],
    crease_deg: float = CREASE_ANGLE_DEG,
) -> tuple[npt.NDArray[np.float32], str]:
    """Area-weighted normals from the winding: per vertex, or per corner at hard edges.

    Smooth meshes get ``vertex`` normals (one per point). Where faces meet at more than
    ``crease_deg``, faces are grouped into smooth patches (connected through edges below the
    crease angle) and each corner gets its patch's normal: ``faceVarying``. Points are never
    split.

    Args:
        points: (n, 3) float vertices.
        faces: (m, 3) int triangles.
        crease_deg: dihedral angle above which an edge is hard.

    Returns:
        ((n, 3) or (3 m, 3) float32 unit normals, ``"vertex"`` or ``"faceVarying"``).
    """
    pts = np.ascontiguousarray(points.T, dtype=np.float32)  # (3, n): column gathers are fast
    n, m = len(points), len(faces)
    vn32 = np.zeros((3, n), dtype=np.float32)
    for i in range(0, m, _CHUNK):  # in chunks of faces: temporaries stay a few MiB
        f = np.ascontiguousarray(faces[i:i + _CHUNK].T)
        c = _face_cross(pts, f)
        corners = f.reshape(-1)  # every corner of the chunk's faces gets its face's normal
        lo, hi = int(corners.min()), int(corners.max()) + 1  # narrow: faces sorted by point
        corners -= lo
        for j in range(3):
            vn32[j, lo:hi] += np.bincount(corners, weights=np.tile(c[j], 3), minlength=hi - lo)
    ln = np.sqrt(np.einsum("ij,ij->j", vn32, vn32))
    ln[ln == 0] = 1.0
    vn32 /= ln
    del ln
    limit = np.float32(np.cos(np.radians(crease_deg / 2)))
    smooth = True
    for i in range(0, m, _CHUNK):  # corner k of every face: its face normal vs the smooth one
        f = np.ascontiguousarray(faces[i:i + _CHUNK].T)
        c = _face_cross(pts, f)  # computed again: cheaper than holding (3, m) normals
        lf = np.sqrt((c * c).sum(axis=0))
        live = lf > 0
        fnu = c / np.where(live, lf, 1.0)
        for k in range(3):
            s = np.take(vn32, f[k], axis=1)
            if np.any(((fnu * s).sum(axis=0) < limit) & live):
                smooth = False
                break
        if not smooth:
            break
    if smooth:
        return np.ascontiguousarray(vn32.T), "vertex"
    fn = np.concatenate([_face_cross(pts, np.ascontiguousarray(faces[i:i + _CHUNK].T))
                         for i in range(0, m, _CHUNK)], axis=1)
    del pts
    fn = fn.T.astype(np.float64)
    flat = faces.ravel()
    import trimesh

    mesh = trimesh.Trimesh(points, faces, process=False, validate=False)
    adj = mesh.face_adjacency
    smooth = adj[mesh.face_adjacency_angles <= np.radians(crease_deg)]
    labels = trimesh.graph.connected_component_labels(  # type: ignore[no-untyped-call]
        smooth, node_count=len(faces))
    key = flat.astype(np.int64) * (int(labels.max()) + 1) + np.repeat(labels, 3)
    groups, inverse = np.unique(key, return_inverse=True)
    if len(groups) == n:
        return np.ascontiguousarray(vn32.T), "vertex"
    gn = np.stack([np.bincount(inverse, weights=np.repeat(fn[:, k], 3), minlength=len(groups))
                   for k in range(3)], axis=1)
    return _unit(gn.astype(np.float64))[inverse].astype(np.float32), "faceVarying"


def _face_cross(pts: npt.NDArray[np.float32],
                f: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float32]:
    """(3, k) cross products (2 * area * unit normal) of faces ``f`` (3, k) over ``pts`` (3, n)."""
    a = np.take(pts, f[0], axis=1)  # np.take: ~4x faster than pts[:, f[0]]
    e1, e2 = np.take(pts, f[1], axis=1) - a, np.take(pts, f[2], axis=1) - a
    del a
    c = np.empty((3, f.shape[1]), dtype=np.float32)
    np.subtract(e1[1] * e2[2], e1[2] * e2[1], out=c[0])
    np.subtract(e1[2] * e2[0], e1[0] * e2[2], out=c[1])
    np.subtract(e1[0] * e2[1], e1[1] * e2[0], out=c[2])
    return c


def _consistent_winding(faces: npt.NDArray[np.integer[Any]],
                        n_points: int) -> npt.NDArray[np.integer[Any]]:
    """Return ``faces`` with a consistent winding (each shared edge used once each way).

    A consistently wound mesh never uses the same directed edge twice; that check is one
    sort of the 3 m directed edges (8 bytes each: at this point the mesh's arrays are all
    that is alive, and it is faster than sorting in slices). Only when it fails are faces
    flipped, by trimesh's ``fix_winding``.
    """
    m = len(faces)
    key = np.empty(3 * m, dtype=np.int64)
    for i, (a, b) in enumerate(((0, 1), (1, 2), (2, 0))):
        k = key[i * m:(i + 1) * m]
        np.multiply(faces[:, a], n_points, out=k, dtype=np.int64)
        k += faces[:, b]
    key.sort()
    if not np.any(key[1:] == key[:-1]):
        return faces
    import trimesh

    mesh = trimesh.Trimesh(np.zeros((n_points, 3)), faces, process=False, validate=False)
    trimesh.repair.fix_winding(mesh)  # type: ignore[no-untyped-call]
    return np.asarray(mesh.faces, dtype=faces.dtype)


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    length = np.linalg.norm(v, axis=1, keepdims=True)
    length[length == 0] = 1.0
    return np.asarray(v / length, dtype=np.float64)


def _conversion(scale: float, src_up: str, dst_up: str) -> npt.NDArray[np.float64]:
    """(4, 4) matrix C = scale * R taking source coordinates to stage coordinates."""
    r = np.eye(4)
    if src_up == "Y" and dst_up == "Z":
        r[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # (x, y, z) -> (x, -z, y)
    elif src_up == "Z" and dst_up == "Y":
        r[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # (x, y, z) -> (x, z, -y)
    c = r.copy()
    c[:3, :3] *= scale
    return c


# --- loading ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


#: read the simple cases of these formats without trimesh (False: always trimesh; for tests)
FAST_READERS = True


def _load_scene(path: Path, fmt: str) -> Any:
    if FAST_READERS and fmt in ("STL", "OBJ", "glTF"):
        from twin3d import _cad_fast

        reader = {"STL": _cad_fast.binary_stl_scene, "OBJ": _cad_fast.obj_scene,
                  "glTF": _cad_fast.gltf_scene}[fmt]
        scene = reader(path)
        release_free_memory()  # the parser's temporaries
        if scene is not None:
            return scene
    import trimesh

    if fmt == "STEP":
        try:
            import cascadio  # noqa: F401
        except ImportError:
            raise CADImportError(path, "reading STEP needs cascadio: pip install cascadio") from None
    try:
        # no trimesh processing: we weld ourselves (positions only, 10x faster)
        return trimesh.load_scene(str(path), process=False)
    except CADImportError:
        raise
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise CADImportError(path, f"not a readable {fmt} file ({reason(exc)})") from None


def _material_of(geom: Any, index: dict[tuple[Any, ...], int],
                 materials: list[Material]) -> tuple[int, npt.NDArray[np.float32] | None, str,
                                                     npt.NDArray[np.float32] | None]:
    """(material index, per-vertex/face colours or None, 'vertex'|'face'|'', per-vertex
    texture coordinates or None)."""
    visual = geom.visual
    name, rgba, metallic, roughness, emissive = "Material", None, 0.0, 0.5, (0.0, 0.0, 0.0)
    colors, kind, texture, uv = None, "", None, None
    if getattr(visual, "kind", None) == "texture" and getattr(visual, "material", None) is not None:
        mat = visual.material
        name = getattr(mat, "name", None) or name
        bc = getattr(mat, "baseColorFactor", None)
        image = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
        uv = getattr(visual, "uv", None)
        if image is not None and uv is not None and len(uv) == len(geom.vertices):
            texture, uv = _png(image), np.asarray(uv, dtype=np.float32)[:, :2]
            if bc is None:  # the image is the colour; a plain material's tint would dim it
                bc = [255, 255, 255, 255]
        else:
            uv = None
        rgba = np.asarray(bc if bc is not None else mat.main_color, dtype=np.float64)
        metallic = float(getattr(mat, "metallicFactor", None) or 0.0)
        rough = getattr(mat, "roughnessFactor", None)
        roughness = float(rough) if rough is not None else 0.5
        em = getattr(mat, "emissiveFactor", None)
        if em is not None:
            e = np.asarray(em, dtype=np.float64)
            emissive = (float(e[0]), float(e[1]), float(e[2]))
    elif getattr(visual, "kind", None) in ("face", "vertex"):
        arr = np.asarray(visual.face_colors if visual.kind == "face" else visual.vertex_colors)
        rgba = arr[0].astype(np.float64)
        if not np.all(arr == arr[0]):
            colors = (arr[:, :3].astype(np.float32) / 255.0)
            kind = visual.kind
            rgba = arr.mean(axis=0)
    if rgba is None:
        rgba = np.array([0.7, 0.7, 0.7, 1.0])
    elif rgba.max() > 1.0 or rgba.dtype.kind in "ui":
        rgba = rgba / 255.0
    c = np.clip(np.append(rgba[:4], [1.0] * (4 - len(rgba[:4]))), 0.0, 1.0)
    color = (float(c[0]), float(c[1]), float(c[2]), float(c[3]))
    key = (round(color[0], 4), round(color[1], 4), round(color[2], 4), round(color[3], 4),
           round(metallic, 4), round(roughness, 4), *(round(e, 4) for e in emissive),
           None if texture is None else hashlib.sha1(texture).hexdigest())
    if key not in index:
        base = prim_name(str(name), "Material")
        taken = [m.name for m in materials]
        index[key] = len(materials)
        materials.append(Material(unique_names([base], taken)[0], color, metallic, roughness,
                                  emissive, texture))
    return index[key], colors, kind, uv


def _png(image: Any) -> bytes:
    """A PIL image (any mode) as PNG bytes, RGB or RGBA."""
    import io

    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info
                              else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _mesh_part(path: Path, name: str, source: list[Any], conv: npt.NDArray[np.float64],
               material: int, colors: npt.NDArray[np.float32] | None,
               kind: str, welded: bool = False,
               uv: npt.NDArray[np.float32] | None = None) -> MeshPart | None:
    """``source``: [vertices, faces or None]; emptied, so that the caller's arrays are freed
    after the weld. ``welded``: the reader has welded them already (binary STL). ``uv``:
    per-vertex texture coordinates, kept per face corner (the weld merges by position)."""
    vertices = np.asarray(source[0])  # float32 sources stay float32 through the weld
    raw_faces = source[1]
    source.clear()
    if raw_faces is None:  # a triangle soup (binary STL): corner i of face j is row 3 j + i
        if vertices.size == 0 or len(vertices) % 3:
            return None
        faces = None
    else:
        faces = np.asarray(raw_faces)
        if faces.dtype.kind not in "iu":
            faces = faces.astype(np.int64)
        if faces.size == 0 or vertices.size == 0:
            return None
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise CADImportError(path, f"mesh {name!r} has face indices outside its vertex list")
    corner_uv = None if uv is None or faces is None else np.asarray(uv, np.float32)[faces]
    if kind == "vertex" and colors is not None:
        faces = np.arange(len(vertices)).reshape(-1, 3) if faces is None else faces
        # keep colours with their vertices through the weld: weld positions+colours
        points, tri = vertices, faces
        used = np.unique(tri)
        remap = np.full(len(points), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        points, tri, colors = points[used], remap[tri], colors[used]
    elif welded and faces is not None:
        points, tri = vertices, faces
    else:
        points, tri = weld(vertices, faces, overwrite_faces=True)  # ours: source is emptied
    del vertices, faces, raw_faces
    release_free_memory()  # the weld's temporaries: hand them back before the next phase
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points).all(axis=1)).sum())
        raise CADImportError(path, f"mesh {name!r} has {bad} point(s) that are not finite "
                                   "numbers (NaN or infinity): the file is corrupt")
    # drop faces that collapsed to a line or a point in the weld
    ok = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    if not ok.all():
        tri = tri[ok]
        if kind == "face" and colors is not None:
            colors = colors[ok]
        if corner_uv is not None:
            corner_uv = corner_uv[ok]
        used = np.unique(tri)
        if len(used) < len(points):
            remap = np.full(len(points), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            points, tri = points[used], remap[tri]
            if kind == "vertex" and colors is not None:
                colors = colors[used]
    del ok
    if len(tri) == 0:
        return None
    wound = _consistent_winding(tri, len(points))
    if corner_uv is not None and wound is not tri:  # flipped faces: their corners move
        corner_uv = _follow_corners(tri, wound, corner_uv)
    tri = wound
    del wound
    if not np.array_equal(conv[:3, :3], np.eye(3)):  # in float64, a chunk at a time
        rotated = np.empty(points.shape, dtype=np.float32)
        for i in range(0, len(points), _CHUNK):
            rotated[i:i + _CHUNK] = points[i:i + _CHUNK].astype(np.float64) @ conv[:3, :3].T
        points = rotated
        del rotated
    lowest = np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2])  # 5x tri.min(axis=1)
    if np.any(lowest[1:] < lowest[:-1]):
        order = packed_argsort(lowest.astype(np.uint64))  # 7x faster .usdc writes measured
        tri = np.ascontiguousarray(tri)
        for c in range(3):  # column by column: one column's copy at a time
            tri[:, c] = tri[order, c]
        if kind == "face" and colors is not None:
            colors = colors[order]
        if corner_uv is not None:
            corner_uv = corner_uv[order]
        del order
    del lowest
    release_free_memory()
    normals, interp = vertex_or_corner_normals(points, tri)
    release_free_memory()
    return MeshPart(name, points.astype(np.float32, copy=False),
                    tri.astype(np.int32, copy=False), normals, interp, material, colors,
                    None if corner_uv is None else corner_uv.reshape(-1, 2))


def _follow_corners(before: npt.NDArray[np.integer[Any]], after: npt.NDArray[np.integer[Any]],
                    per_corner: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``per_corner`` (m, 3, ...) reordered as each face's corners were, ``before`` -> ``after``
    (the same faces, some flipped or rotated; corners of a face are distinct points)."""
    rows = np.arange(len(before))[:, None]
    where = np.stack([np.argmax(before == after[:, k:k + 1], axis=1) for k in range(3)], axis=1)
    moved: npt.NDArray[Any] = per_corner[rows, where]
    return moved


def load_part(path: PathLike, units: str | None = None, up_axis: str = "Z",
              meters_per_unit: float | None = 1.0, name: str | None = None) -> Part:
    """Read one CAD or mesh file into a :class:`Part` in stage units and axis.

    Args:
        path: STL, OBJ, PLY, OFF, glTF/GLB, 3MF or STEP/STP file.
        units: units of a unitless source (``m``, ``cm``, ``mm``, ``in``, ``ft``); ignored,
            with a warning, for formats that declare their units.
        up_axis: the stage's up axis, ``"Z"`` or ``"Y"``; points are rotated to it.
        meters_per_unit: the stage's metres per unit (points are scaled to it); ``None``
            keeps the source's units.
        name: the part's prim name (default: from the file name).

    Raises:
        CADImportError: missing, empty, corrupt or unsupported file.
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
    warnings: list[str] = []
    with ThreadPoolExecutor(1, thread_name_prefix="twin3d-sha256") as pool:
        digest = pool.submit(_sha256, p)  # beside the reading: hashlib releases the GIL
        return _read_part(p, fmt, declares, src_up, units, up_axis, meters_per_unit, name,
                          warnings, digest)


def _read_part(p: Path, fmt: str, declares: bool, src_up: str, units: str | None,
               up_axis: str, meters_per_unit: float | None, name: str | None,
               warnings: list[str], digest: Future[str]) -> Part:
    """:func:`load_part` once the file is checked; ``digest``: its SHA-256, being computed."""
    scene = _load_scene(p, fmt)
    if declares:
        mpu = _TRIMESH_UNITS.get(str(scene.units).lower()) if scene.units else None
        if mpu is None:
            mpu = 1.0 if fmt in ("glTF", "STEP") else 0.001
            units_note = f"{fmt} default ({mpu:g} m per unit)"
        else:
            units_note = f"declared by the {fmt} file: {scene.units}"
        if units is not None and abs(UNITS[units] - mpu) > 1e-12:
            warnings.append(f"{p.name}: --units {units} ignored: {fmt} declares its units "
                            f"({mpu:g} m per unit)")
    elif units is not None:
        mpu, units_note = UNITS[units], f"given: {units}"
    else:
        mpu, units_note = UNITS[DEFAULT_UNITS], f"assumed: {DEFAULT_UNITS} ({fmt} has no units)"
        warnings.append(f"{p.name}: {fmt} files carry no units; assuming {DEFAULT_UNITS} "
                        f"(pass --units m|cm|mm|in|ft)")
    axis_note = (f"{src_up} (glTF spec)" if fmt == "glTF" else
                 f"{src_up} (3MF spec)" if fmt == "3MF" else f"{src_up} (CAD convention, assumed)")
    scale = 1.0 if meters_per_unit is None else mpu / meters_per_unit
    conv = _conversion(scale, src_up, up_axis)
    conv_inv = np.linalg.inv(conv)

    materials: list[Material] = []
    mat_index: dict[tuple[Any, ...], int] = {}
    meshes: list[MeshPart] = []
    mesh_of_geom: dict[str, int | None] = {}
    by_content: dict[str, int] = {}
    mesh_names: list[str] = []
    uses: list[int] = []

    several = len(scene.geometry) > 1

    def mesh_for(geom_name: str) -> int | None:
        if geom_name in mesh_of_geom:
            return mesh_of_geom[geom_name]
        # each geometry is read once (cached by name): taking it out of the scene lets its
        # arrays be freed as soon as they are welded
        geom = scene.geometry.pop(geom_name, None)
        idx: int | None = None
        if geom is not None and hasattr(geom, "faces"):
            mat, colors, kind, uv = _material_of(geom, mat_index, materials)
            base = prim_name(str(geom_name), "Mesh")
            source = [geom.vertices, geom.faces]
            welded = bool(getattr(geom, "welded", False))
            del geom
            mp = _mesh_part(p, base, source, conv, mat, colors, kind, welded, uv)
            if mp is not None:
                digest = ""
                if several:  # only then can a mesh repeat another
                    h = hashlib.sha1(mp.points.tobytes())
                    h.update(mp.faces.tobytes())
                    h.update(str(mat).encode())
                    digest = h.hexdigest()
                if digest in by_content and colors is None:  # repeated part: instance it
                    idx = by_content[digest]
                else:
                    mname = unique_names([base], mesh_names)[0]
                    mesh_names.append(mname)
                    meshes.append(MeshPart(mname, mp.points, mp.faces, mp.normals,
                                           mp.interpolation, mp.material, mp.colors, mp.uvs))
                    uses.append(0)
                    idx = len(meshes) - 1
                    by_content[digest] = idx
        mesh_of_geom[geom_name] = idx
        return idx

    forest = scene.graph.transforms
    children = forest.children
    edges = forest.edge_data

    def build(parent: str, node: str) -> Node | None:
        data = edges.get((parent, node), {})
        m = np.asarray(data.get("matrix", np.eye(4)), dtype=np.float64)
        mesh = mesh_for(data["geometry"]) if data.get("geometry") is not None else None
        kids = [k for k in (build(node, c) for c in children.get(node, [])) if k is not None]
        if mesh is None and not kids:
            return None
        if mesh is not None:
            uses[mesh] += 1
        local = conv @ m @ conv_inv
        matrix = None if np.allclose(local, np.eye(4), atol=1e-12) else local
        label = str(node)
        if fmt == "glTF" and mesh is not None and not kids and \
                _GLTF_PRIMITIVE_FRAME.fullmatch(label[len(str(parent)):]):
            # trimesh names each primitive of a multi-primitive mesh "<node>_<random hex>";
            # its geometry's name is stable, so converting twice gives the same prim paths
            label = str(data["geometry"])
        readable = label
        if fmt == "STEP" and mesh is not None and _STEP_OCCURRENCE.fullmatch(label):
            readable = meshes[mesh].name  # "NAUO7" means nothing to people; the part name does
        # a node with a mesh and children gets a child prim "Mesh" for the mesh
        taken = ("Mesh",) if mesh is not None and kids else ()
        return Node(prim_name(readable, "Node"), matrix, mesh, _uniq_children(kids, taken), label)

    base_frame = scene.graph.base_frame
    top = [n for n in (build(base_frame, c) for c in children.get(base_frame, [])) if n is not None]
    if not meshes:
        raise CADImportError(p, f"no triangles found (empty, truncated or not a valid {fmt} file)")
    # a single wrapper node with identity transform adds nothing: unwrap it
    while len(top) == 1 and top[0].mesh is None and top[0].matrix is None and top[0].children:
        top = list(top[0].children)
    part_name = name or prim_name(p.stem, "Part")
    return Part(part_name, p, fmt, digest.result(), meshes, materials, _uniq_children(top), mpu,
                src_up, units_note, axis_note, uses, warnings)


def _uniq_children(nodes: list[Node], taken: Sequence[str] = ()) -> tuple[Node, ...]:
    names = unique_names([n.name for n in nodes], taken)
    return tuple(n if n.name == u else Node(u, n.matrix, n.mesh, n.children, n.label)
                 for n, u in zip(nodes, names, strict=True))
