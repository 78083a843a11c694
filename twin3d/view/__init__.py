"""The live view and walk-throughs: the only room of twin3d that imports pyvista/vtk.

``View`` (``renderer``) shows a twin's meshes, a field overlay and sensor glyphs and takes
pushed values; the feeders (``feed``) push into it from a bridge subscription or a recorded
replay; ``CameraPath`` (``camerapath``) makes walk-throughs (keyframes, orbit, USD cameras,
TOML); ``export_movie`` (``movie``) writes them to MP4 or GIF off-screen; ``actors`` builds the
VTK actors once; ``screen`` places the view's labels and writes its status line; ``command`` is
``twin3d view``.
"""

from __future__ import annotations

from twin3d.view.camerapath import CameraPath, load_path, orbit_path
from twin3d.view.feed import feed_bridge, feed_recording, spread_recording
from twin3d.view.movie import export_movie
from twin3d.view.renderer import FieldModel, TwinLike, View

__all__ = ["CameraPath", "FieldModel", "TwinLike", "View", "export_movie", "feed_bridge",
           "feed_recording", "load_path", "orbit_path", "spread_recording"]
