"""Read a CAD or mesh file into a :class:`~twin3d.cad.scene.Scene`: a fast reader, else trimesh.

Binary STL, simple OBJ and simple glTF have readers of their own that import no trimesh
(:mod:`twin3d.cad.stl`, :mod:`~twin3d.cad.obj`, :mod:`~twin3d.cad.gltf`): importing
trimesh, which pulls in scipy and networkx, takes about 1 s. Everything else, and whatever a
fast reader declines, goes through ``trimesh.load_scene`` and :func:`from_trimesh`, the only
code that knows trimesh's scene graph and visuals. Both paths give the same
:class:`~twin3d.cad.scene.Part` for the files the fast readers take (``tests/test_cad.py``
compares them on real and generated files). STEP is tessellated by :mod:`twin3d.cad.step`
into a GLB, read as glTF. What trimesh logs while it reads (a missing texture image ...)
becomes one warning line each, never a traceback on the terminal.
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.cad.gltf import check_compression, read_gltf
from twin3d.cad.memory import release_free_memory
from twin3d.cad.obj import read_obj
from twin3d.cad.scene import DEFAULT_PBR_COLOR, Edge, Material, Meshes, Scene, SourceMesh, rgba
from twin3d.cad.step import Tolerance, tessellate_step
from twin3d.cad.stl import read_stl
from twin3d.errors import CADImportError, reason

__all__ = ["FAST_READERS", "from_trimesh", "read_scene"]

#: read the simple cases of STL, OBJ and glTF without trimesh (False: always trimesh; for tests)
FAST_READERS = True

_FAST: dict[str, Callable[[Path], Scene | None]] = {
    "STL": read_stl, "OBJ": read_obj, "glTF": read_gltf}
#: the frame trimesh gives each primitive of a multi-primitive glTF mesh: "<node>_" + 6 random hex
_GLTF_PRIMITIVE_FRAME = re.compile(r"_[0-9a-f]{6}")


def read_scene(path: Path, fmt: str, *, tolerance: Tolerance | None = None,
               timeout: float | None = None,
               progress: Callable[[str], None] | None = None) -> Scene:
    """Read ``path``, a file of format ``fmt`` (a name in :data:`twin3d.cad.FORMATS`).

    Args:
        path: the file.
        fmt: its format.
        tolerance: STEP only: how finely its surfaces are tessellated (default
            :class:`~twin3d.cad.step.Tolerance()`).
        timeout: STEP only: seconds the tessellation may take; None: no limit.
        progress: STEP only: called with a label before tessellating.

    Raises:
        CADImportError: the file cannot be read (STEP without cascadio, corrupt, compressed
            in a way that cannot be decoded, tessellation past ``timeout`` ...).
    """
    if fmt == "STEP":
        return _read_step(path, tolerance or Tolerance(), timeout, progress)
    if fmt == "glTF" and not FAST_READERS:
        check_compression(path)  # read_gltf does it when it runs
    reader = _FAST.get(fmt) if FAST_READERS else None
    if reader is not None:
        scene = reader(path)
        release_free_memory()  # the parser's temporaries
        if scene is not None:
            return scene
    return _load_with_trimesh(path, fmt)


def _read_step(path: Path, tolerance: Tolerance, timeout: float | None,
               progress: Callable[[str], None] | None) -> Scene:
    """A STEP file tessellated into a GLB (:mod:`twin3d.cad.step`), read as glTF."""
    with tempfile.TemporaryDirectory(prefix="twin3d-step-") as folder:
        glb = Path(folder) / "tessellated.glb"
        note = tessellate_step(path, glb, tolerance, timeout, progress)
        scene = read_gltf(glb, merged=True)
        if scene is None:  # something the glTF reader leaves to trimesh
            scene = _load_with_trimesh(glb, "glTF", path)
    # cascadio writes metres, whatever the STEP file's unit
    return replace(scene, units="meters", tessellation=note)


def _load_with_trimesh(path: Path, fmt: str, source: Path | None = None) -> Scene:
    """``trimesh.load_scene`` and :func:`from_trimesh`; ``source``: the file to name in
    messages (default ``path``)."""
    import trimesh

    what = f"not a readable {fmt} file" if source is None else \
        "OpenCASCADE's tessellation of it could not be read"
    source = source or path
    with _trimesh_log(source) as said:
        try:
            # no trimesh processing: we weld ourselves (positions only, 10x faster)
            loaded = trimesh.load_scene(str(path), process=False)
        except Exception as exc:  # trimesh raises many types for corrupt files
            raise CADImportError(source, f"{what} ({reason(exc)})") from None
    scene = from_trimesh(loaded, fmt)
    return replace(scene, warnings=scene.warnings + tuple(said))


@contextmanager
def _trimesh_log(path: Path) -> Iterator[list[str]]:
    """Collect what trimesh logs at warning level and above as one line each (the same line
    once), instead of letting Python print it (a traceback, with exc_info)."""
    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = record.getMessage().strip().rstrip("!.")
            if record.exc_info and record.exc_info[1] is not None:
                line += f" ({type(record.exc_info[1]).__name__}: {reason(record.exc_info[1])})"
            line = f"{path.name}: trimesh: {line}"
            if line not in said:
                said.append(line)

    logger = logging.getLogger("trimesh")
    handler = Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield said
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def from_trimesh(loaded: Any, fmt: str) -> Scene:
    """A ``trimesh.Scene`` as a :class:`Scene`, emptying it of its geometry as it goes.

    Geometry without faces (paths, point clouds) is left out. Visuals become materials:
    a PBR or simple material (with its base colour texture as PNG, when the mesh has a
    texture coordinate per vertex), or per-vertex or per-face colours, which stay per
    vertex or face when they differ (their mean is the material's colour).

    Args:
        loaded: what ``trimesh.load_scene`` returned.
        fmt: the file's format; for ``"glTF"``, the frames trimesh names after one primitive
            of a multi-primitive mesh (``<node>_<random hex>``) are labelled with the
            primitive's geometry name, so that converting twice gives the same prim paths.
    """
    units = str(loaded.units) if loaded.units else None  # from the geometry: read it first
    graph = loaded.graph
    children: dict[str, list[str]] = graph.transforms.children
    edge_data: dict[tuple[str, str], dict[str, Any]] = graph.transforms.edge_data
    meshes: list[SourceMesh] = []
    materials: list[Material] = []
    index: dict[str, int | None] = {}
    edges: list[Edge] = []
    todo = [(graph.base_frame, c) for c in reversed(children.get(graph.base_frame, []))]
    while todo:  # parents before children, siblings in trimesh's order
        parent, node = todo.pop()
        data = edge_data.get((parent, node), {})
        geom_name = data.get("geometry")
        mesh = None
        if geom_name is not None:
            if geom_name not in index:
                # taken out of trimesh's scene: only our arrays hold it now
                geom = loaded.geometry.pop(geom_name, None)
                index[geom_name] = None if geom is None or not hasattr(geom, "faces") else \
                    len(meshes)
                if index[geom_name] is not None:
                    meshes.append(_mesh(str(geom_name), geom, materials))
            mesh = index[geom_name]
        label = str(node)
        if fmt == "glTF" and mesh is not None and not children.get(node) and \
                _GLTF_PRIMITIVE_FRAME.fullmatch(label[len(str(parent)):]):
            label = str(geom_name)
        edges.append(Edge(str(parent), str(node),
                          np.asarray(data.get("matrix", np.eye(4)), dtype=np.float64), mesh,
                          "" if label == str(node) else label))
        todo.extend((node, c) for c in reversed(children.get(node, [])))
    return Scene(Meshes(meshes), tuple(materials), tuple(edges), units, str(graph.base_frame))


def _mesh(name: str, geom: Any, materials: list[Material]) -> SourceMesh:
    """A trimesh ``Trimesh`` as a :class:`SourceMesh`; its material(s), if any, appended."""
    vertices = np.asarray(geom.vertices)
    visual = geom.visual
    material: Material | None = None
    vertex_colors = face_colors = uvs = per_face = None
    kind = getattr(visual, "kind", None)
    mat = getattr(visual, "material", None)
    if kind == "texture" and hasattr(mat, "materials"):  # a MultiMaterial: one per face
        which = np.asarray(getattr(visual, "face_materials", None) or [], dtype=np.int64)
        subs = [_material(m) for m in getattr(mat, "materials", [])]
        if subs and len(which) == len(geom.faces) and which.min() >= 0 and \
                which.max() < len(subs):
            per_face = which + len(materials)
            materials.extend(subs)
            return SourceMesh(name, vertices, np.asarray(geom.faces),
                              int(np.bincount(per_face).argmax()), face_materials=per_face)
        material = subs[0] if subs else None
    elif kind == "texture" and mat is not None:
        material, uvs = _textured(visual, len(vertices))
    elif kind in ("face", "vertex"):
        arr = np.asarray(visual.face_colors if kind == "face" else visual.vertex_colors)
        color = rgba(arr[0])
        if not np.all(arr == arr[0]):
            colors = arr[:, :3].astype(np.float32) / 255.0
            vertex_colors, face_colors = (colors, None) if kind == "vertex" else (None, colors)
            color = rgba(arr.mean(axis=0) / 255.0)
        material = Material("Material", color)
    if material is not None:
        materials.append(material)
    return SourceMesh(name, vertices, np.asarray(geom.faces),
                      None if material is None else len(materials) - 1,
                      vertex_colors, face_colors, uvs)


def _textured(visual: Any, n_vertices: int) -> tuple[Material, npt.NDArray[np.float32] | None]:
    """The material of trimesh's ``TextureVisuals``, and its per-vertex texture coordinates
    when it has a base colour image that they map."""
    mat = visual.material
    image = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
    uv = getattr(visual, "uv", None)
    if image is not None and uv is not None and len(uv) == n_vertices:
        return _material(mat, _png(image)), np.asarray(uv, dtype=np.float32)[:, :2]
    return _material(mat), None


def _material(mat: Any, texture: bytes | None = None) -> Material:
    """A trimesh material (PBR or simple) as a :class:`Material`, with ``texture`` as its base
    colour image (its colour then only tints it: white unless the material gives one)."""
    from trimesh.visual.material import PBRMaterial

    bc = getattr(mat, "baseColorFactor", None)  # PBR materials; simple ones have a diffuse
    if bc is not None:
        color = rgba(np.asarray(bc))
    elif texture is not None:  # the image is the colour; a plain material's tint would dim it
        color = (1.0, 1.0, 1.0, 1.0)
    elif isinstance(mat, PBRMaterial):
        color = DEFAULT_PBR_COLOR
    else:  # a simple material's diffuse colour
        color = rgba(np.asarray(mat.main_color))
    em = getattr(mat, "emissiveFactor", None)
    e = (0.0, 0.0, 0.0) if em is None else tuple(float(x) for x in np.asarray(em, np.float64)[:3])
    rough = getattr(mat, "roughnessFactor", None)
    return Material(str(getattr(mat, "name", None) or "Material"), color,
                    float(getattr(mat, "metallicFactor", None) or 0.0),
                    0.5 if rough is None else float(rough), (e[0], e[1], e[2]), texture)


def _png(image: Any) -> bytes:
    """A PIL image (any mode) as PNG bytes, RGB or RGBA."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info
                              else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
