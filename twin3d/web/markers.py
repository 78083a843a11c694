"""The sensor markers of the browser view: spheres that move with the parts they sit on.

vtk.js draws in 3D only, so each sensor is a small sphere coloured by its state (an RGB point
array). The spheres of the sensors on one part are one polydata whose actor shares that
part's matrix object (``vtkMatrix4x4``): when the part moves (its bound motion, or
:meth:`twin3d.view.View.set_transforms`) its markers move with it by the same 64 bytes of
``userMatrix`` in the scene update, and no point is re-sent. A state change re-sends only the
colour array of the group that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.colormap import ALARM_COLORS

__all__ = ["RGB_ARRAY", "Markers"]

#: name of the per-point RGB (uint8) array of the markers
RGB_ARRAY = "twin3d_rgb"


@dataclass(eq=False)
class _Group:
    """The markers of the sensors on one part (or on none)."""

    sensors: npt.NDArray[np.intp]   # indices into the view's sensor channels
    poly: Any                       # pyvista.PolyData, points at rest
    actor: Any                      # vtk.vtkActor


class Markers:
    """Sphere markers of a view's sensors, grouped by the part each moves with.

    Args:
        view: the :class:`~twin3d.view.View` whose sensors (``glyphs``, at rest: call before
            its first update) and parts the markers follow.
        radius: sphere radius, stage units.

    Attributes:
        groups: how many polydata (one per part with sensors, one for sensors on no part).
        ball_points: points of one sphere.
    """

    def __init__(self, view: Any, radius: float) -> None:
        import pyvista as pv

        g = view.glyphs
        parts = view.parts
        ball = pv.Sphere(radius=radius, theta_resolution=14, phi_resolution=10)
        self.ball_points = int(ball.n_points)
        self._ball = np.asarray(ball.points, dtype=np.float64)
        self._faces = np.asarray(ball.faces).reshape(-1, 4)
        owner: dict[int, list[int]] = {}
        for i, (ch, p) in enumerate(zip(g.channels, g.positions, strict=True)):
            anchor = parts.anchor(view.sensors[ch].target, p)
            owner.setdefault(-1 if anchor is None else anchor[0], []).append(i)
        self._groups: list[_Group] = []
        for part, sensors in sorted(owner.items()):
            idx = np.asarray(sensors, dtype=np.intp)
            poly = self._polydata(np.asarray(g.positions)[idx])
            actor = self._actor(poly)
            if part >= 0:  # the part's own matrix object: the markers move when it does
                actor.SetUserMatrix(parts.actors[part].actor.GetUserMatrix())
            view.plotter.renderer.AddActor(actor)
            self._groups.append(_Group(idx, poly, actor))

    @property
    def groups(self) -> int:
        """How many marker polydata there are."""
        return len(self._groups)

    def _polydata(self, positions: npt.NDArray[np.float64]) -> Any:
        import pyvista as pv

        k, n = len(positions), self.ball_points
        pts = (self._ball[None, :, :] + positions[:, None, :]).reshape(-1, 3)
        cells = np.concatenate([self._faces + np.array([0, i * n, i * n, i * n])
                                for i in range(k)])
        poly = pv.PolyData(pts.astype(np.float32), cells.ravel().astype(np.int64))
        rgb = np.zeros((len(pts), 3), dtype=np.uint8)
        rgb[:] = np.asarray(ALARM_COLORS["stale"]) * 255.0 + 0.5
        poly.point_data[RGB_ARRAY] = rgb
        poly.point_data.active_scalars_name = RGB_ARRAY
        return poly

    @staticmethod
    def _actor(poly: Any) -> Any:
        import vtk

        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.SetColorModeToDirectScalars()
        mapper.SetScalarModeToUsePointFieldData()
        mapper.SelectColorArray(RGB_ARRAY)
        mapper.ScalarVisibilityOn()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetAmbient(0.35)
        return actor

    def color(self, states: Sequence[str]) -> bool:
        """Write each marker's state colour (``states`` in sensor order); return whether any
        changed (only the groups that changed are marked modified)."""
        changed = False
        for grp in self._groups:
            want = np.repeat(np.asarray([ALARM_COLORS[states[i]] for i in grp.sensors]
                                        ).reshape(-1, 3) * 255.0 + 0.5,
                             self.ball_points, axis=0).astype(np.uint8)
            rgb = grp.poly.point_data[RGB_ARRAY]
            if np.array_equal(rgb, want):
                continue
            rgb[:] = want
            grp.poly.GetPointData().GetArray(RGB_ARRAY).Modified()
            changed = True
        return changed
