"""Where each browser's sensor labels go: the desktop view's placement for a browser's camera.

Each browser renders with its own camera (vtk.js, client-side), so the server places labels
per browser: the page reports its camera and size when they change (and the server places
them again when parts move), and :class:`LabelLayout` projects the sensors where they are now
with that camera, hides those a part hides as it is drawn now (a ray from the eye, tested by
the view's :class:`~twin3d.view.parts.Parts` as the desktop view does) and places the labels
with :func:`twin3d.view.labels.place_labels`.
Labels are HTML in the page; their size is estimated from a monospace font's advance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CHAR_PX", "LABEL_H_PX", "LabelLayout", "camera_matrix"]

#: advance of one character of the labels' monospace font (12 px DejaVu Sans Mono), pixels
CHAR_PX = 7.3
#: height of a label box (text and padding), pixels
LABEL_H_PX = 18.0
_PAD_PX = 10.0

F64 = npt.NDArray[np.float64]


def camera_matrix(camera: Mapping[str, Any], aspect: float, near_far: tuple[float, float]) -> F64:
    """World -> clip matrix (4, 4) of a vtk.js camera (``getCamera()`` of the page).

    Args:
        camera: ``position``, ``focalPoint``, ``viewUp``, ``viewAngle`` (degrees, vertical),
            ``parallelProjection``, ``parallelScale``.
        aspect: width / height of the canvas.
        near_far: clipping range along the view direction, stage units.
    """
    import vtk

    cam = vtk.vtkCamera()
    cam.SetPosition(*map(float, camera["position"]))
    cam.SetFocalPoint(*map(float, camera["focalPoint"]))
    cam.SetViewUp(*map(float, camera["viewUp"]))
    cam.SetViewAngle(float(camera.get("viewAngle", 30.0)))
    cam.SetParallelProjection(bool(camera.get("parallelProjection", False)))
    cam.SetParallelScale(float(camera.get("parallelScale", 1.0)))
    cam.SetClippingRange(*near_far)
    m = cam.GetCompositeProjectionTransformMatrix(aspect, -1.0, 1.0)
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])


class LabelLayout:
    """Label placement for browser cameras over a view's parts, where they are now.

    Args:
        parts: the view's :class:`~twin3d.view.parts.Parts` (the occluders, moved and
            deformed as they are drawn).
        marker_px: a marker's radius on screen, pixels (kept clear of labels).

    Attributes:
        center: (3,) centre of the parts' bounds at rest, stage units.
        diagonal: their bounding-box diagonal (1 for an empty scene).
    """

    def __init__(self, parts: Any, marker_px: float = 8.0) -> None:
        self.parts = parts
        if parts.actors:
            b = np.array([ma.polydata.bounds for ma in parts.actors]).reshape(-1, 3, 2)
            lo, hi = b[:, :, 0].min(axis=0), b[:, :, 1].max(axis=0)
        else:
            lo = hi = np.zeros(3)
        self.center = 0.5 * (lo + hi)
        self.diagonal = float(np.linalg.norm(hi - lo)) or 1.0
        self.marker_px = marker_px

    def project(self, positions: npt.ArrayLike, camera: Mapping[str, Any],
                size: tuple[int, int]) -> tuple[F64, npt.NDArray[np.bool_]]:
        """Pixels (k, 2) of the sensors at ``positions`` (k, 3) (x right, y up) and (k,) which
        are in front and on screen."""
        pts = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        w, h = size
        eye = np.asarray(camera["position"], dtype=np.float64)
        ahead = np.asarray(camera["focalPoint"], dtype=np.float64) - eye
        ahead /= np.linalg.norm(ahead) or 1.0
        depth = float((self.center - eye) @ ahead)
        r = 0.5 * self.diagonal
        near_far = (max(depth - r, 1e-3 * r), depth + r)
        m = camera_matrix(camera, w / max(h, 1), near_far)
        hom = np.column_stack([pts, np.ones(len(pts))]) @ m.T
        wq = hom[:, 3:4]
        ndc = hom[:, :3] / np.where(np.abs(wq) < 1e-300, 1e-300, wq)
        xy = np.column_stack([(ndc[:, 0] + 1.0) * 0.5 * w, (ndc[:, 1] + 1.0) * 0.5 * h])
        on = ((wq[:, 0] > 0) & (np.abs(ndc[:, 2]) <= 1.0) & (xy[:, 0] >= 0) & (xy[:, 0] < w)
              & (xy[:, 1] >= 0) & (xy[:, 1] < h))
        return xy, on

    def occluded(self, positions: npt.ArrayLike, camera: Mapping[str, Any],
                 margin: float) -> npt.NDArray[np.bool_]:
        """(k,) True where a part, as it is drawn now, lies between the eye and the sensor at
        ``positions`` (k, 3) (``margin``: stop this short of the sensor, stage units)."""
        eye = np.asarray(camera["position"], dtype=np.float64)
        ahead = np.asarray(camera["focalPoint"], dtype=np.float64) - eye
        ahead /= np.linalg.norm(ahead) or 1.0
        out: npt.NDArray[np.bool_] = self.parts.hidden(
            positions, eye, ahead, parallel=bool(camera.get("parallelProjection")),
            reach=10.0 * self.diagonal, margin=margin)
        return out

    def place(self, positions: npt.ArrayLike, camera: Mapping[str, Any], size: tuple[int, int],
              shown: Sequence[int], chars: Sequence[int], priority: Sequence[int],
              keep_out: Sequence[Sequence[float]] = ()) -> list[list[float]]:
        """Place the labels of sensors ``shown`` for one browser.

        Args:
            positions: (k, 3) where every sensor is now, stage units.
            camera: the browser's camera (see :func:`camera_matrix`).
            size: its canvas (width, height) in CSS pixels.
            shown: indices of the sensors to label.
            chars: (len(shown),) characters each label holds room for.
            priority: (len(shown),) lower is placed first (urgent states).
            keep_out: (x0, y0, x1, y1) areas to keep clear, pixels, y up.

        Returns:
            One row per placed label: ``[sensor, left, top, width, ax, ay, lx, ly]`` in CSS
            pixels from the top left: the label box, its marker, and the end of a leader line
            at the box (``lx = -1`` when the label sits next to its marker).
        """
        from twin3d.view.labels import place_labels

        if not len(shown):
            return []
        xy, on = self.project(positions, camera, size)
        visible = on & ~self.occluded(positions, camera, 0.01 * self.diagonal)
        label = [i for i in shown if visible[i]]
        if not label:
            return []
        pos = {i: n for n, i in enumerate(shown)}
        widths = [chars[pos[i]] * CHAR_PX + _PAD_PX for i in label]
        radii = np.full(len(label), self.marker_px)
        boxes, lead = place_labels(
            xy[label], np.column_stack([widths, np.full(len(label), LABEL_H_PX)]), radii,
            [priority[pos[i]] for i in label], size,
            obstacles=np.column_stack([xy[visible], np.full(int(visible.sum()), self.marker_px)]),
            keep_out=keep_out)
        h = size[1]
        rows = []
        for n, i in enumerate(label):
            x0, y0, x1, y1 = boxes[n]
            ax, ay = xy[i]
            lx, ly = -1.0, -1.0
            if lead[n]:
                lx, ly = min(max(ax, x0), x1), min(max(ay, y0), y1)
                ly = h - ly
            rows.append([float(i), round(float(x0), 1), round(h - float(y1), 1),
                         round(float(x1 - x0), 1), round(float(ax), 1), round(h - float(ay), 1),
                         round(float(lx), 1), round(float(ly), 1)])
        return rows
