"""Where each browser's sensor labels go: the desktop view's placement for a browser's camera.

Each browser renders with its own camera (vtk.js, client-side), so the server places labels
per browser: the page reports its camera and size when they change, and :class:`LabelLayout`
projects the sensors with that camera, hides those the part hides (a ray from the eye, as the
desktop view does) and places the labels with :func:`twin3d.view.labels.place_labels`.
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
    """Label placement for browser cameras over fixed meshes and sensor positions.

    Args:
        positions: (k, 3) sensor positions, stage units.
        surfaces: the meshes' ``vtkPolyData`` (occluders).
        marker_px: a marker's radius on screen, pixels (kept clear of labels).
    """

    def __init__(self, positions: npt.ArrayLike, surfaces: Sequence[Any],
                 marker_px: float = 8.0) -> None:
        import vtk

        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        merge = vtk.vtkAppendPolyData()
        for poly in surfaces:
            merge.AddInputData(poly)
        merge.Update()
        self._merged = merge.GetOutput()
        self._locator = vtk.vtkStaticCellLocator()
        self._locator.SetDataSet(self._merged)
        self._locator.BuildLocator()
        b = np.asarray(self._merged.GetBounds()).reshape(3, 2)
        self.center = b.mean(axis=1)
        self.diagonal = float(np.linalg.norm(b[:, 1] - b[:, 0])) or 1.0
        self.marker_px = marker_px

    def project(self, camera: Mapping[str, Any], size: tuple[int, int]) -> tuple[F64, npt.NDArray[np.bool_]]:
        """Pixels (k, 2) of the sensors (x right, y up) and (k,) which are in front and on screen."""
        w, h = size
        eye = np.asarray(camera["position"], dtype=np.float64)
        ahead = np.asarray(camera["focalPoint"], dtype=np.float64) - eye
        ahead /= np.linalg.norm(ahead) or 1.0
        depth = float((self.center - eye) @ ahead)
        r = 0.5 * self.diagonal
        near_far = (max(depth - r, 1e-3 * r), depth + r)
        m = camera_matrix(camera, w / max(h, 1), near_far)
        hom = np.column_stack([self.positions, np.ones(len(self.positions))]) @ m.T
        wq = hom[:, 3:4]
        ndc = hom[:, :3] / np.where(np.abs(wq) < 1e-300, 1e-300, wq)
        xy = np.column_stack([(ndc[:, 0] + 1.0) * 0.5 * w, (ndc[:, 1] + 1.0) * 0.5 * h])
        on = ((wq[:, 0] > 0) & (np.abs(ndc[:, 2]) <= 1.0) & (xy[:, 0] >= 0) & (xy[:, 0] < w)
              & (xy[:, 1] >= 0) & (xy[:, 1] < h))
        return xy, on

    def occluded(self, camera: Mapping[str, Any], margin: float) -> npt.NDArray[np.bool_]:
        """(k,) True where a mesh lies between the eye and the sensor (``margin``: stop this
        short of the sensor, stage units)."""
        import vtk

        eye = np.asarray(camera["position"], dtype=np.float64)
        ahead = np.asarray(camera["focalPoint"], dtype=np.float64) - eye
        ahead /= np.linalg.norm(ahead) or 1.0
        out = np.zeros(len(self.positions), dtype=bool)
        hits, cells = vtk.vtkPoints(), vtk.vtkIdList()
        for i, p in enumerate(self.positions):
            start = p - ahead * 10.0 * self.diagonal if camera.get("parallelProjection") else eye
            ray = p - start
            stop = p - ray / (np.linalg.norm(ray) or 1.0) * margin
            self._locator.IntersectWithLine(start.tolist(), stop.tolist(), 0.0, hits, cells)
            out[i] = cells.GetNumberOfIds() > 0
        return out

    def place(self, camera: Mapping[str, Any], size: tuple[int, int], shown: Sequence[int],
              chars: Sequence[int], priority: Sequence[int],
              keep_out: Sequence[Sequence[float]] = ()) -> list[list[float]]:
        """Place the labels of sensors ``shown`` for one browser.

        Args:
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
        xy, on = self.project(camera, size)
        visible = on & ~self.occluded(camera, 0.01 * self.diagonal)
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
