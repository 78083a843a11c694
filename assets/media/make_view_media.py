"""Regenerate the view's README media: a screenshot and a walk-through GIF of a real part.

The part is ``1002_tray_bottom.STL`` (trimesh's models, see tests/data/README.md), converted with
``twin3d.convert``; six made-up thermocouples drive a kriged temperature field
(``twin3d.fields.build_models``) on the part's display surface (``twin3d.display``).
Run: ``python assets/media/make_view_media.py OUT_DIR``.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin3d.cad.convert import convert
from twin3d.display import refine_surface
from twin3d.fields import build_models
from twin3d.model import Limits, Sensor
from twin3d.usd.layer import open_stage
from twin3d.usd.meshes import MeshData, read_meshes
from twin3d.view import CameraPath, View, export_movie


@dataclass
class Scene:
    meshes: list[Any]
    sensors: dict[str, Sensor] = field(default_factory=dict)
    meters_per_unit: float = 1.0


def main(src: str, out_dir: str) -> None:
    out = Path(out_dir)
    work = Path(tempfile.mkdtemp())
    stage = convert([src], work / "part.usda", units="mm", up_axis="Z", progress=False)
    meshes = read_meshes(open_stage(stage))
    mesh = max(meshes, key=lambda m: len(m.points))
    pts = mesh.points
    lo, hi = pts.min(0), pts.max(0)
    # the tray stands in the XZ plane: spread the sensors over its -Y face (farthest points)
    top = np.flatnonzero(pts[:, 1] < lo[1] + 0.25 * (hi[1] - lo[1]))
    picks = [int(top[np.argmin(pts[top, 0] + pts[top, 1])])]
    for _ in range(5):
        d = np.min(np.linalg.norm(pts[top][:, None] - pts[picks][None], axis=2), axis=1)
        picks.append(int(top[np.argmax(d)]))
    temps = [38.0, 52.0, 61.0, 74.0, 88.0, 97.0]
    sensors = {f"part/tc{i + 1}": Sensor(f"part/tc{i + 1}", "temperature", "degC", mesh.path,
                                         position=tuple(map(float, pts[v])),
                                         limits=Limits(warn_high=80.0, alarm_high=95.0))
               for i, v in enumerate(picks)}
    # shown as a twin shows it: on a display surface with a vertex at every sensor
    surface = refine_surface(pts, mesh.faces, sites=[pts[v] for v in picks])
    shown = MeshData(mesh.path, surface.points, surface.faces, mesh.color, source=mesh)
    meshes = [shown if m is mesh else m for m in meshes]
    models = build_models(surface.points, surface.faces, 1.0, list(sensors.values()), {},
                          cache=False, solid=(pts, mesh.faces))
    values = dict(zip(sensors, temps, strict=True))
    with View(Scene(meshes, sensors), {mesh.path: models["temperature"]}, off_screen=True,
              window_size=(800, 560), field_range=(30.0, 100.0)) as view:
        view.push(values, time=1767261600.0)  # 2026-01-01 10:00 UTC
        c = (lo + hi) / 2
        d = float(np.linalg.norm(hi - lo))
        view.set_camera(c + d * np.array([0.45, -1.6, 0.6]), c, (0.0, 0.0, 1.0), 30.0)
        view.render()  # two frames first, so the status line has a steady frame time
        view.render()
        view.screenshot(out / "view_screenshot.png")
    with View(Scene(meshes, sensors), {mesh.path: models["temperature"]}, off_screen=True,
              window_size=(360, 252), field_range=(30.0, 100.0), show_sensors=True) as view:
        # swing in front of the face: a closed loop of keys on the -Y side
        a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        keys = c + d * np.stack([0.6 * np.cos(a), -1.5 + 0 * a, 0.45 * np.sin(a)], 1)
        path = CameraPath(keys, np.repeat(c[None], 8, 0), (0.0, 0.0, 1.0), 30.0, closed=True)
        k = [0]

        def drift(i: int) -> None:  # the readings wander, so the field moves during the walk
            k[0] = i
            view.push({ch: v + 8.0 * np.sin(0.25 * i + j) for j, (ch, v) in enumerate(values.items())},
                      time=1767261600.0 + 2.0 * i)

        export_movie(view, path, out / "view_walkthrough.gif", frames=30, fps=10,
                     before_frame=drift)


if __name__ == "__main__":
    main(sys.argv[2] if len(sys.argv) > 2 else "/work/shared/data/cad/1002_tray_bottom.STL",
         sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent))
