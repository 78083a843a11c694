"""The meshes of a view as parts that move and deform, and what lies in front of what.

A part moves by its actor's matrix alone (64 bytes per part per frame): its points and field
stay in the buffers they were uploaded in. A part deforms by writing new positions into its
float32 points buffer in place (normals only when asked), or, when it is big, by a
displacement attribute its vertex shader adds (:mod:`twin3d.view.actors`). Occlusion of sensor
markers is tested per part in the frame its points are drawn in, the ray brought there through
the inverse of the part's matrix, so a move needs no rebuild; a part's cell locator is made
again only after it deforms, on its shape as drawn (a part deformed in the shader too, unless
it has :data:`~twin3d.view.actors.SHADER_DISPLACEMENT_POINTS` points or more: it is tested at
rest).

Measured on the 2-core box (``benchmarks/view.py``; figures in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from vtkmodules.util.numpy_support import numpy_to_vtk

from twin3d.errors import RenderError
from twin3d.view.actors import SHADER_DISPLACEMENT_POINTS, MeshActor

__all__ = ["Parts"]


class Parts:
    """The mesh actors of a view, where they are and how they are deformed.

    Args:
        actors: the mesh actors, added to the renderer once.

    Attributes:
        actors: as given.
        index: ``{mesh path: position in actors}``.
        version: counts moves and deformations (caches of where things are key on it).
    """

    def __init__(self, actors: Sequence[MeshActor]) -> None:
        self.actors = list(actors)
        self.index = {ma.path: i for i, ma in enumerate(self.actors)}
        self.version = 0
        self._locators: dict[int, tuple[int, Any]] = {}  # part -> (its version, locator)

    def set_transforms(self, matrices: Mapping[str, npt.ArrayLike]) -> None:
        """Place parts by their local-to-world matrices (see :meth:`View.set_transforms`).

        Raises:
            RenderError: an unknown path or a bad matrix; then no part moves.
        """
        checked = []
        for path, matrix in matrices.items():
            i = self.index.get(path)
            if i is None:
                raise RenderError(f"set_transforms: {path} is not a mesh of this view (meshes: "
                                  f"{', '.join(list(self.index)[:4])}...)")
            m = np.asarray(matrix, dtype=np.float64)
            if m.shape != (4, 4) or not np.isfinite(m).all():
                raise RenderError(f"set_transforms: the matrix of {path} must be a finite "
                                  f"(4, 4) array, got shape {m.shape}")
            checked.append((i, m))
        for i, m in checked:
            self.actors[i].place(m)
        if checked:
            self.version += 1

    def set_displacement(self, prim: str, displacement: npt.ArrayLike | None, scale: float,
                         normals: bool) -> None:
        """Deform one part in place (see :meth:`View.set_displacement`).

        Raises:
            RenderError: an unknown mesh, a displacement of the wrong shape or kind, or a
                scale that is not a positive number.
        """
        ma = self._actor(prim, "set_displacement")
        d = None
        if displacement is not None:
            d = np.asarray(displacement)
            if d.shape != (ma.n_vertices, 3) or d.dtype.kind != "f":
                raise RenderError(f"set_displacement: {prim} needs a ({ma.n_vertices}, 3) float "
                                  f"array (one vector per vertex), got {d.shape} {d.dtype}")
            _check_scale("set_displacement", scale)
        ma.deform(d, float(scale), normals=normals)
        self.version += 1

    def set_modes(self, prim: str, modes: npt.ArrayLike) -> None:
        """Upload a part's displacement modes (see :meth:`View.set_displacement_modes`).

        Raises:
            RenderError: an unknown mesh, modes of the wrong shape or kind, or more than
                :data:`~twin3d.view.deform.MAX_MODES`.
        """
        from twin3d.view.deform import MAX_MODES

        ma = self._actor(prim, "set_displacement_modes")
        m = np.asarray(modes)
        if m.ndim != 3 or m.shape[:2] != (ma.n_vertices, 3) or m.dtype.kind != "f":
            raise RenderError(f"set_displacement_modes: {prim} needs a ({ma.n_vertices}, 3, k) "
                              f"float array (k displacement fields), got {m.shape} {m.dtype}")
        if not 1 <= m.shape[2] <= MAX_MODES:
            raise RenderError(f"set_displacement_modes: {m.shape[2]} modes; a mesh takes 1 to "
                              f"{MAX_MODES} (give set_displacement the summed field instead)")
        ma.set_modes(m)
        self.version += 1

    def weigh(self, prim: str, weights: npt.ArrayLike, scale: float, normals: bool) -> None:
        """Weigh a part's modes (see :meth:`View.set_displacement_weights`).

        Raises:
            RenderError: an unknown mesh, no modes uploaded, the wrong number of weights or
                weights that are not finite, a scale that is not a positive number.
        """
        ma = self._actor(prim, "set_displacement_weights")
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not ma.modes or w.shape != (ma.modes,) or not np.isfinite(w).all():
            raise RenderError(f"set_displacement_weights: {prim} has {ma.modes} displacement "
                              f"modes (set_displacement_modes), got {w.size} weights")
        _check_scale("set_displacement_weights", scale)
        ma.weigh(w, float(scale), normals=normals)
        self.version += 1

    def show_displacement(self, i: int, model: Any, scale: float) -> None:
        """Show part ``i`` deformed ×``scale`` by its field model's displacement (a
        :class:`~twin3d.view.renderer.DeformingModel`): by weighing its modes when the model
        has a displacement map ``U`` (uploaded once; k uniforms an update), else by the
        displacement it computes."""
        from twin3d.view.deform import MAX_MODES

        ma = self.actors[i]
        U = getattr(model, "U", None)
        k = len(getattr(model, "channels", ()))
        if U is not None and np.shape(U) == (3 * ma.n_vertices, k) and k <= MAX_MODES:
            if ma.modes != k:
                self.set_modes(ma.path, np.asarray(U).reshape(ma.n_vertices, 3, k))
            readings = np.asarray(getattr(model, "values", np.zeros(k)), dtype=np.float64)
            self.weigh(ma.path, np.nan_to_num(readings, nan=0.0), scale, False)
        else:
            self.set_displacement(ma.path, model.displacement(), scale, False)

    def _actor(self, prim: str, what: str) -> MeshActor:
        i = self.index.get(prim)
        if i is None:
            raise RenderError(f"{what}: {prim} is not a mesh of this view")
        return self.actors[i]

    def deformations(self) -> list[float]:
        """The exaggeration factors shown (one per distinct factor; empty: none deformed)."""
        return sorted({ma.deformation for ma in self.actors if ma.deformation})

    def reach(self) -> float:
        """How far beyond their bounds shader displacements draw any part (stage units)."""
        return max((ma.reach for ma in self.actors), default=0.0)

    def anchor(self, target: str, point: npt.ArrayLike) -> tuple[int, int] | None:
        """The part a point on mesh ``target`` moves with, and the drawn point nearest it."""
        i = self.index.get(target)
        if i is None:
            return None
        rest = self.actors[i].rest
        return i, int(np.argmin(((rest - np.asarray(point)) ** 2).sum(axis=1)))

    def follow(self, anchors: Sequence[tuple[int, int] | None], rest: npt.NDArray[np.float64],
               out: npt.NDArray[np.float64]) -> None:
        """Where points anchored on parts are now: ``out[i]`` for ``rest[i]`` (k, 3).

        A point moves with its part and by the displacement of its anchor point.
        """
        for i, anchor in enumerate(anchors):
            if anchor is None:
                continue
            m, v = anchor
            ma = self.actors[m]
            p = rest[i] + ma.offset(v)
            out[i] = ma.moved[:3, :3] @ p + ma.moved[:3, 3]

    def hidden(self, points: npt.ArrayLike, eye: npt.ArrayLike, ahead: npt.ArrayLike, *,
               parallel: bool, reach: float, margin: float) -> npt.NDArray[np.bool_]:
        """(k,) True where a part, as it is drawn now, lies between the camera and each of
        ``points`` (k, 3), world space.

        Args:
            points: the points seen (sensor markers' centres).
            eye: the camera's position; ``ahead``: its unit direction of projection.
            parallel: a parallel projection: rays come along ``ahead`` from ``reach`` behind
                each point instead of from the eye.
            reach: how far behind a point a parallel ray starts (beyond every part).
            margin: stop each ray this short of its point (the marker's own surface).
        """
        import vtk

        eye = np.asarray(eye, dtype=np.float64)
        ahead = np.asarray(ahead, dtype=np.float64)
        segments = []
        for p in np.asarray(points, dtype=np.float64).reshape(-1, 3):
            start = p - ahead * reach if parallel else eye
            ray = p - start
            segments.append((start, p - ray / (np.linalg.norm(ray) or 1.0) * margin))
        out = np.zeros(len(segments), dtype=bool)
        hits, cells = vtk.vtkPoints(), vtk.vtkIdList()
        for m, ma in enumerate(self.actors):
            locator = self._locator(m)
            back = np.linalg.inv(ma.moved)
            for i, (start, stop) in enumerate(segments):
                if out[i]:
                    continue
                a = back[:3, :3] @ start + back[:3, 3]
                b = back[:3, :3] @ stop + back[:3, 3]
                locator.IntersectWithLine(a.tolist(), b.tolist(), 0.0, hits, cells)
                out[i] = cells.GetNumberOfIds() > 0
        return out

    def _locator(self, m: int) -> Any:
        """The cell locator of part ``m`` as drawn now (made on first use and after a change)."""
        import vtk

        ma = self.actors[m]
        kept = self._locators.get(m)
        if kept is None or kept[0] != ma.version:
            surface = ma.polydata
            if ma.shader_displacement and ma.deformation and \
                    surface.n_points < SHADER_DISPLACEMENT_POINTS:  # markers ride the drawn shape
                drawn = vtk.vtkPoints()
                drawn.SetData(numpy_to_vtk(np.asarray(ma.drawn(), dtype=np.float32),  # type: ignore[no-untyped-call]
                                           deep=1))
                surface = vtk.vtkPolyData()
                surface.ShallowCopy(ma.polydata)  # the triangles shared; its own points
                surface.SetPoints(drawn)
            locator = vtk.vtkStaticCellLocator()
            locator.SetDataSet(surface)
            locator.BuildLocator()
            kept = (ma.version, locator)
            self._locators[m] = kept
        return kept[1]


def _check_scale(what: str, scale: object) -> None:
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0.0):
        raise RenderError(f"{what}: scale must be a positive number, got {scale!r}")
