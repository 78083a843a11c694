"""CAD and mesh files -> plain data (:mod:`~twin3d.cad.scene`) -> one OpenUSD asset.

Reading is numpy, and trimesh where the fast readers decline (cascadio for STEP); no USD:

* :mod:`~twin3d.cad.scene`: the plain data, a source's :class:`Scene` (what readers
  return) and a converted :class:`Part`;
* :mod:`~twin3d.cad.read`: a file -> :class:`Scene`, by :mod:`~twin3d.cad.stl`,
  :mod:`~twin3d.cad.obj` and :mod:`~twin3d.cad.gltf` (numpy only) or through trimesh;
  STEP tessellated by OpenCASCADE in a child process (:mod:`~twin3d.cad.step`, at a
  :class:`Tolerance` sized to the model);
* :mod:`~twin3d.cad.part`: :func:`load_part`, a file -> :class:`Part` in the stage's units
  and axis, its meshes welded (:mod:`~twin3d.cad.weld`), wound by their solid
  (:mod:`~twin3d.cad.orient`) and given normals (:mod:`~twin3d.cad.geometry`), its names
  made prim names (:mod:`~twin3d.cad.name`);
* :mod:`twin3d.cad.convert`: files -> a USD asset (``twin3d.convert``), written by
  :mod:`twin3d.usd.asset`.
"""

from __future__ import annotations

from twin3d.cad.geometry import vertex_or_corner_normals
from twin3d.cad.name import prim_name, unique_names
from twin3d.cad.part import DEFAULT_UNITS, FORMATS, UNITS, load_part
from twin3d.cad.read import read_scene
from twin3d.cad.scene import Material, MeshPart, Node, Part, Scene
from twin3d.cad.step import Tolerance

__all__ = [
    "DEFAULT_UNITS",
    "FORMATS",
    "UNITS",
    "Material",
    "MeshPart",
    "Node",
    "Part",
    "Scene",
    "Tolerance",
    "load_part",
    "prim_name",
    "read_scene",
    "unique_names",
    "vertex_or_corner_normals",
]
