"""The live view and walk-throughs: the only room of twin3d that imports pyvista/vtk.

``View`` shows a twin's meshes, a field overlay and sensor glyphs and takes pushed values;
``CameraPath`` makes walk-throughs (keyframes, orbit, USD cameras, TOML); ``export_movie``
writes them to MP4 or GIF off-screen.
"""

from __future__ import annotations

from twin3d.view.camera import CameraPath, load_path, orbit_path
from twin3d.view.live import FieldModel, TwinLike, View
from twin3d.view.movie import export_movie

__all__ = ["CameraPath", "FieldModel", "TwinLike", "View", "export_movie", "load_path", "orbit_path"]
