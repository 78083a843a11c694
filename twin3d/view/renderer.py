"""The renderer: a PyVista window (or off-screen plotter) showing the values pushed into it.

``View.push`` may be called from any thread or task: values are coalesced (latest per channel
wins) under a lock and applied on the next :meth:`View.render`, which writes the new field
into the mesh arrays in place, recolours the sensor glyphs and renders. Actors are made once,
in the constructor; no frame adds or removes one.

The view knows no data source, as pyvista's plotter does not: a bridge subscription or a
recorded replay pushes into it from :mod:`twin3d.view.feed`.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from twin3d._types import PathLike
from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP
from twin3d.errors import FieldError, RenderError
from twin3d.model import Sample, Sensor

__all__ = ["FieldModel", "TwinLike", "View"]


@runtime_checkable
class FieldModel(Protocol):
    """What the view needs of a field model (``twin3d.fields`` makes them)."""

    @property
    def channels(self) -> list[str]: ...  # the channel of each column of W

    @property
    def quantity(self) -> str: ...

    @property
    def unit(self) -> str: ...

    def update(self, values: Mapping[str, float]) -> npt.NDArray[np.floating[Any]]: ...


class TwinLike(Protocol):
    """What the view needs of a twin (``twin3d.Twin`` is one)."""

    @property
    def sensors(self) -> Mapping[str, Sensor]: ...

    @property
    def meshes(self) -> Sequence[Any]: ...  # twin3d.usd.geometry.MeshData

    @property
    def meters_per_unit(self) -> float: ...


def _ensure_offscreen_backend() -> None:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@lru_cache(maxsize=1)
def software_gl() -> bool:
    """Return True when OpenGL is a software renderer (llvmpipe, softpipe, SwiftShader)."""
    _ensure_offscreen_backend()
    import vtk

    rw = vtk.vtkRenderWindow()
    rw.SetOffScreenRendering(1)
    rw.SetSize(8, 8)
    rw.AddRenderer(vtk.vtkRenderer())
    try:
        rw.Render()
        caps = rw.ReportCapabilities() or ""
    except Exception:  # pragma: no cover - no context at all
        caps = ""
    finally:
        rw.Finalize()
    low = caps.lower()
    return any(s in low for s in ("llvmpipe", "softpipe", "swiftshader", "software"))


class View:
    """A live 3D view of a twin: meshes, an optional field overlay, sensor glyphs.

    Args:
        twin: anything with ``.sensors``, ``.meshes`` and ``.meters_per_unit`` (a ``Twin``).
        field_model: a field model, or a mapping ``{mesh prim path: model}``. A single model
            goes to the mesh whose vertex count matches its ``W``.
        off_screen: render without a window (EGL/OSMesa when there is no display).
        window_size: (width, height) pixels.
        field_range: fixed (vmin, vmax) of the colour map; None = auto from the field.
        cmap: matplotlib colour map name.
        stale_after: seconds without a value after which a sensor is greyed out.
        gpu: colour-map in a shader from a raw float attribute (else VTK's CPU mapping).
        lighting: light the surfaces (False shows exact colour-map colours).
        show_sensors: draw the sensor glyphs and labels.
        feature_angle: edges sharper than this (degrees) are shaded hard (normals are
            computed once; split points take their stage vertex's field value).
        clock: monotonic clock in seconds (injectable for tests).

    Examples:
        >>> view = View(twin, model, off_screen=True)          # doctest: +SKIP
        >>> view.push({"plate/tc1": 71.5}); view.render()      # doctest: +SKIP
        >>> view.screenshot("shot.png")                         # doctest: +SKIP
    """

    def __init__(
        self,
        twin: TwinLike,
        field_model: FieldModel | Mapping[str, FieldModel] | None = None,
        *,
        off_screen: bool = False,
        window_size: tuple[int, int] = (1024, 768),
        field_range: tuple[float, float] | None = None,
        cmap: str = DEFAULT_CMAP,
        stale_after: float = 10.0,
        gpu: bool = True,
        lighting: bool = True,
        show_sensors: bool = True,
        feature_angle: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _ensure_offscreen_backend()
        import pyvista as pv
        import vtk

        from twin3d.view.scene import (
            build_mesh_actor,
            build_sensor_glyphs,
            lookup_table_vtk,
        )

        self._clock = clock
        self.stale_after = float(stale_after)
        self.field_range = field_range
        self.connection = "no bridge"  # the source's state in the status line; feeders set it
        self.sensors: dict[str, Sensor] = dict(twin.sensors)
        meshes = list(twin.meshes)
        # live state
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self.values: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._arrivals: deque[tuple[float, int]] = deque()
        self._range: tuple[float, float] | None = None
        self._label_key: tuple[Any, ...] | None = None
        self.frame_ms = 0.0
        self.frames = 0
        self._closed = False
        if not meshes:
            raise RenderError("the stage has no meshes to show; convert a CAD file first "
                              "(twin3d convert)")
        aa = not software_gl()
        theme = copy.deepcopy(pv.global_theme)
        if not aa:  # MSAA x8 made llvmpipe frames 3.5x slower
            theme.anti_aliasing = None
            theme.multi_samples = 0
        self.plotter = pv.Plotter(off_screen=off_screen, window_size=list(window_size),
                                  theme=theme)
        self.plotter.set_background("#20232a", top="#3b4252")  # type: ignore[arg-type]
        self.mesh_actors = [build_mesh_actor(m, cmap=cmap, gpu=gpu, lighting=lighting,
                                             feature_angle=feature_angle) for m in meshes]
        for ma in self.mesh_actors:
            self.plotter.renderer.AddActor(ma.actor)
        self._models = self._assign_models(field_model)
        pts = np.concatenate([np.asarray(m.points) for m in meshes])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        self.diagonal = float(np.linalg.norm(hi - lo)) or 1.0
        # sensors with a place on the stage
        by_path = {m.path: m for m in meshes}
        chans, pos = [], []
        for ch, s in self.sensors.items():
            p = self._sensor_position(s, by_path)
            if p is not None:
                chans.append(ch)
                pos.append(p)
        self.glyphs = build_sensor_glyphs(chans, np.array(pos).reshape(-1, 3),
                                          radius=0.015 * self.diagonal)
        if show_sensors:
            for a in self.glyphs.actors:
                self.plotter.renderer.AddActor(a)
            self.plotter.renderer.AddViewProp(self.glyphs.label_actor)
        # scalar bar
        self.quantity, self.unit = "", ""
        self._lut = lookup_table_vtk(cmap, 0.0, 1.0)
        self.scalar_bar = None
        if self._models:
            model = next(iter(self._models.values()))
            self.quantity, self.unit = str(model.quantity), str(model.unit)
            bar = vtk.vtkScalarBarActor()
            bar.SetLookupTable(self._lut)
            bar.SetTitle(f"{self.quantity} [{self.unit}]" if self.unit else self.quantity)
            bar.SetNumberOfLabels(5)
            bar.SetOrientationToHorizontal()
            bar.SetPosition(0.55, 0.03)
            bar.SetWidth(0.42)
            bar.SetHeight(0.1)
            bar.SetLabelFormat("%.4g")
            bar.UnconstrainedFontSizeOn()
            bar.GetTitleTextProperty().SetFontSize(14)
            bar.GetLabelTextProperty().SetFontSize(12)
            bar.GetTitleTextProperty().ShadowOff()
            bar.GetLabelTextProperty().ShadowOff()
            bar.GetTitleTextProperty().ItalicOff()
            bar.GetLabelTextProperty().ItalicOff()
            self.plotter.renderer.AddViewProp(bar)
            self.scalar_bar = bar
        # a twin that keeps its latest readings (its live layer) shows them from the start
        initial = getattr(twin, "values", None)
        if isinstance(initial, Mapping) and initial:
            self.push({k: float(v) for k, v in initial.items()})
        self.status = self.plotter.add_text("", position="lower_left", font_size=9,
                                            color="#d8dee9", name="twin3d-status")
        self.plotter.camera_position = "iso"
        self.plotter.reset_camera()  # type: ignore[call-arg]
        if field_range is not None:
            self._set_range(*field_range)

    # --- setup helpers -------------------------------------------------------------------

    def _assign_models(
        self, field_model: FieldModel | Mapping[str, FieldModel] | None
    ) -> dict[int, FieldModel]:
        if field_model is None:
            return {}
        paths = {ma.path: i for i, ma in enumerate(self.mesh_actors)}
        if isinstance(field_model, Mapping):
            out = {}
            for path, model in field_model.items():
                if path not in paths:
                    raise FieldError(f"field model for {path}, which is not a mesh of the stage "
                                     f"(meshes: {', '.join(list(paths)[:4])})")
                out[paths[path]] = model
        else:
            n = _n_vertices(field_model)
            hits = [i for i, ma in enumerate(self.mesh_actors) if ma.n_vertices == n]
            if len(hits) != 1:
                raise FieldError(f"the field model has {n} vertices and {len(hits)} meshes of the "
                                 "stage match; pass {mesh path: model} instead")
            out = {hits[0]: field_model}
        for i, model in out.items():
            n = _n_vertices(model)
            if n is not None and n != self.mesh_actors[i].n_vertices:
                raise FieldError(f"field model for {self.mesh_actors[i].path} has {n} vertices, "
                                 f"the mesh {self.mesh_actors[i].n_vertices}; rebuild the model")
        return out

    @staticmethod
    def _sensor_position(s: Sensor, by_path: Mapping[str, Any]) -> np.ndarray | None:
        if s.position is not None:
            return np.asarray(s.position, dtype=np.float64)
        mesh = by_path.get(s.target)
        if s.vertex is not None and mesh is not None and 0 <= s.vertex < len(mesh.points):
            return np.asarray(mesh.points[s.vertex], dtype=np.float64)
        return None

    # --- data in ----------------------------------------------------------------------------

    def push(self, values: Mapping[str, float] | Iterable[Sample]) -> None:
        """Queue new values (latest per channel wins); safe from any thread or task.

        Args:
            values: ``{channel: value}``, or samples.
        """
        if not isinstance(values, Mapping):
            values = {s.channel: s.value for s in values}
        now = self._clock()
        with self._lock:
            self._pending.update(values)
            self._arrivals.append((now, len(values)))

    def values_per_second(self, window: float = 2.0) -> float:
        """Rate of pushed values over the last ``window`` seconds."""
        now = self._clock()
        with self._lock:
            while self._arrivals and self._arrivals[0][0] < now - window:
                self._arrivals.popleft()
            n = sum(k for _, k in self._arrivals)
        return n / window

    # --- frame ------------------------------------------------------------------------------

    def update(self) -> None:
        """Apply the pending values to the arrays, glyphs and status line (no render)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        now = self._clock()
        for ch, v in pending.items():
            self.values[ch] = float(v)
            self._seen[ch] = now
        if pending and self._models:
            for i, model in self._models.items():
                self.mesh_actors[i].write(model.update(dict(self.values)))
                if not self.mesh_actors[i].has_field:
                    self.mesh_actors[i].show_field(True)
            if self.field_range is None:
                self._auto_range()
        self._update_glyphs(now)
        self._place_labels()
        stale = sum(1 for ch in self.glyphs.channels if self._is_stale(ch, now))
        self.status.SetText(
            0, f"{self.connection}  -  {self.values_per_second():.0f} values/s  -  "
            f"frame {self.frame_ms:.1f} ms  -  {len(self.glyphs.channels)} sensors, {stale} stale")

    def render(self) -> None:
        """Apply pending values and draw one frame."""
        t0 = time.perf_counter()
        self.update()
        rw = self.plotter.ren_win
        if rw is None:
            raise RenderError("the view is closed; make a new View")
        rw.Render()
        self.frame_ms = (time.perf_counter() - t0) * 1e3
        self.frames += 1

    def _auto_range(self) -> None:
        lo, hi = math.inf, -math.inf
        for i in self._models:
            f = self.mesh_actors[i].field
            if f.size:
                lo, hi = min(lo, float(np.nanmin(f))), max(hi, float(np.nanmax(f)))
        if math.isfinite(lo) and math.isfinite(hi):
            if hi <= lo:
                hi = lo + 1e-6 * max(1.0, abs(lo))
            self._set_range(lo, hi)

    def _set_range(self, vmin: float, vmax: float) -> None:
        if self._range == (vmin, vmax):
            return
        self._range = (vmin, vmax)
        for i in self._models:
            self.mesh_actors[i].set_range(vmin, vmax)
        self._lut.SetTableRange(vmin, vmax)
        self._lut.Modified()

    @property
    def scalar_range(self) -> tuple[float, float] | None:
        """The (vmin, vmax) the colour map shows now."""
        return self._range

    def _place_labels(self, pixels: float = 14.0) -> None:
        """Anchor each label ``pixels`` above its glyph on screen (after camera moves)."""
        g = self.glyphs
        if not g.channels:
            return
        cam = self.plotter.camera
        key = (cam.GetMTime(), tuple(self.plotter.window_size))
        if key == self._label_key:
            return
        self._label_key = key
        ren = self.plotter.renderer
        out = np.asarray(g.points.points)
        for i, p in enumerate(g.positions):
            ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
            ren.WorldToDisplay()
            x, y, z = ren.GetDisplayPoint()
            ren.SetDisplayPoint(x, y + pixels + g.radius_px(ren, p), z)
            ren.DisplayToWorld()
            w = ren.GetWorldPoint()
            out[i] = np.asarray(w[:3]) / (w[3] or 1.0)
        g.points.points = out
        g.points.Modified()

    def _is_stale(self, ch: str, now: float) -> bool:
        seen = self._seen.get(ch)
        return seen is None or now - seen > self.stale_after

    def sensor_state(self, channel: str) -> str:
        """Return ``"ok"``, ``"warn"``, ``"alarm"`` or ``"stale"`` for a sensor now."""
        if self._is_stale(channel, self._clock()):
            return "stale"
        return self.sensors[channel].limits.state(self.values[channel])

    def _update_glyphs(self, now: float) -> None:
        for i, ch in enumerate(self.glyphs.channels):
            s = self.sensors[ch]
            v = self.values.get(ch)
            if v is None:
                self.glyphs.set(i, ALARM_COLORS["stale"], f"{ch}: no data")
                continue
            text = f"{ch}: {v:.4g} {s.unit}"
            if self._is_stale(ch, now):
                age = now - self._seen[ch]
                self.glyphs.set(i, ALARM_COLORS["stale"], f"{text} ({_age(age)} ago)")
            else:
                self.glyphs.set(i, ALARM_COLORS[s.limits.state(v)], text)

    # --- output -----------------------------------------------------------------------------

    def screenshot(self, path: PathLike | None = None) -> npt.NDArray[np.uint8]:
        """Render and return the image (h, w, 3) uint8; also write it to ``path`` if given."""
        self.render()
        img = np.asarray(self.plotter.screenshot(None, return_img=True))
        if path is not None:
            import imageio.v3 as iio

            from twin3d._io import atomic_output

            with atomic_output(path) as tmp:
                iio.imwrite(tmp, img)
        return img

    def screen_position(self, point: Sequence[float]) -> tuple[int, int]:
        """Return the (row, column) pixel of world ``point`` in the last rendered image."""
        ren = self.plotter.renderer
        ren.SetWorldPoint(float(point[0]), float(point[1]), float(point[2]), 1.0)
        ren.WorldToDisplay()
        x, y, _ = ren.GetDisplayPoint()
        h = self.plotter.window_size[1]
        return int(round(h - 1 - y)), int(round(x))

    def set_camera(self, position: Sequence[float], focal_point: Sequence[float],
                   up: Sequence[float] = (0.0, 0.0, 1.0), view_angle: float | None = None) -> None:
        """Place the camera (stage units); keeps the clipping range fitted to the scene."""
        cam = self.plotter.camera
        cam.position = tuple(map(float, position))
        cam.focal_point = tuple(map(float, focal_point))
        cam.up = tuple(map(float, up))
        if view_angle is not None:
            cam.view_angle = float(view_angle)
        self.plotter.renderer.ResetCameraClippingRange()

    def actor_ids(self) -> set[int]:
        """Identities of every prop in the renderer (to check that frames add none)."""
        props = self.plotter.renderer.GetViewProps()
        props.InitTraversal()
        return {id(props.GetNextProp()) for _ in range(props.GetNumberOfItems())}

    def close(self) -> None:
        """Release the window and its OpenGL context."""
        if not self._closed:
            self._closed = True
            self.plotter.close()

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- loops ------------------------------------------------------------------------------

    def show(self, *, fly: bool = True) -> None:
        """Open the interactive window and render until it is closed (blocks)."""
        self.open_window(fly=fly)
        while not self.window_closed():
            self.render()
            self.plotter.update(1)
            time.sleep(1 / 60)

    def open_window(self, *, fly: bool = True) -> None:
        """Open the interactive window without blocking; call ``plotter.update()`` between frames.

        Args:
            fly: first-person fly navigation (else pyvista's default trackball).
        """
        if fly and self.plotter.iren is not None:
            import vtk

            self.plotter.iren.interactor.SetInteractorStyle(vtk.vtkInteractorStyleFlight())
        self.plotter.show(interactive_update=True, auto_close=False)

    def window_closed(self) -> bool:
        """True once the window was closed (or :meth:`close` was called)."""
        return self._closed or self.plotter.render_window is None or \
            getattr(self.plotter, "_closed", False)


def _n_vertices(model: Any) -> int | None:
    w = getattr(model, "W", None)
    return int(w.shape[0]) if w is not None else None


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"
