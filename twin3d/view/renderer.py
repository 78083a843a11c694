"""The renderer: a PyVista window (or off-screen plotter) showing the values pushed into it.

``View.push`` may be called from any thread or task: values are coalesced (latest per channel
wins) under a lock and applied on the next :meth:`View.render`, which writes the new field
into the mesh arrays in place, recolours the sensor markers, places their labels and renders.
Actors are made once, in the constructor; no frame adds or removes one. The labels, the state
legend, the status line and the problem line are the view's :mod:`~twin3d.view.screen`.

The view knows no data source, as pyvista's plotter does not: a bridge subscription or a
recorded replay pushes into it from :mod:`twin3d.view.feed`.

What it shows, so that nothing misleads: the shown field in a colour map that no warn or
alarm colour can be mistaken for (viridis), over a fixed range (the stage's, or given) with
round ticks, "no data" before the first value; outlined markers in the state colours with a
legend; labels of the sensors behind the shown field (and of any in warn or alarm) with the
state in their text, never overlapping one another, hidden where the part hides the sensor;
a status line with the source, the source time of the latest value, the rate and staleness,
and a line of model problems when there are any.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from twin3d._types import PathLike
from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP
from twin3d.errors import FieldError, RenderError
from twin3d.model import Sample, Sensor
from twin3d.view.screen import source_time_text, status_text

__all__ = ["DeformingModel", "FieldModel", "FittedModel", "TwinLike", "View", "has_display",
           "source_time_text"]


@runtime_checkable
class FieldModel(Protocol):
    """What the view needs of a field model (``twin3d.fields`` makes them)."""

    @property
    def channels(self) -> list[str]: ...  # the channel of each column of W

    @property
    def quantity(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def n_vertices(self) -> int: ...  # mesh vertices the field covers (not rows of W)

    def update(self, values: Mapping[str, float]) -> npt.NDArray[np.floating[Any]]: ...


@runtime_checkable
class FittedModel(Protocol):
    """A field model that fits physical inputs (``twin3d.fields.HeatModel``) and can say which
    fitted values are physically impossible (``fitted_inputs().problems``)."""

    def fitted_inputs(self) -> Any: ...  # twin3d.fields.heat.FittedInputs


@runtime_checkable
class DeformingModel(Protocol):
    """A field model that also gives the displacement of its vertices
    (``twin3d.fields.StressModel``): (n_vertices, 3) in stage units, linear in the readings.

    A model that also has ``U``, the (3 n_vertices, n_channels) map of its readings to the
    displacement (row ``3 i + j``: component ``j`` of vertex ``i``), is deformed on the GPU:
    ``U`` is uploaded once as displacement modes and each update sets one weight per channel
    (its latest reading, 0 before any; the model's ``values``).
    """

    def displacement(self, values: Any = None, out: Any = None) -> npt.NDArray[np.floating[Any]]:
        ...  # values None: those of the last update


class TwinLike(Protocol):
    """What the view needs of a twin (``twin3d.Twin`` is one). A twin may also have a
    ``motion`` (:class:`twin3d.usd.motion.Motion`): its moving parts then follow the values
    pushed into the view."""

    @property
    def sensors(self) -> Mapping[str, Sensor]: ...

    @property
    def meshes(self) -> Sequence[Any]: ...  # twin3d.usd.meshes.MeshData

    @property
    def meters_per_unit(self) -> float: ...


def has_display() -> bool:
    """True when a window can be shown: macOS and Windows, or ``DISPLAY``/``WAYLAND_DISPLAY``."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _ensure_offscreen_backend() -> None:
    if not has_display():
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
    """A live 3D view of a twin: meshes, an optional field overlay, labelled sensor markers.

    Without a display it renders off-screen by itself (EGL/OSMesa): :meth:`screenshot`
    returns and saves images, :func:`twin3d.view.export_movie` writes movies; with one,
    :meth:`show` opens the window.

    Parts move by their actor's matrix alone (:meth:`set_transforms`; a twin's bound motion
    drives it from the pushed values), and deform by writing new positions into the points
    buffer they were drawn from (:meth:`set_displacement`; a model that gives displacements
    drives it with ``deform_scale``): no frame re-uploads a buffer it does not change, and
    none adds or removes an actor.

    Args:
        twin: anything with ``.sensors``, ``.meshes`` and ``.meters_per_unit`` (a ``Twin``).
        field_model: a field model, or a mapping ``{mesh prim path: model}``. A single model
            goes to the mesh whose vertex count is its ``n_vertices``.
        off_screen: render without a window; None (default): off-screen when there is no
            display.
        window_size: (width, height) pixels.
        field_range: fixed (vmin, vmax) of the colour map (pass the stage's,
            ``twin.field_ranges[quantity]``); None = the range of the data shown.
        cmap: matplotlib colour map name.
        title: the colour bar's title; default ``quantity (unit)`` of the field model.
        symmetric: keep the colour range symmetric about 0 when it follows the data
            (``field_range`` None): a difference field in a diverging map, white at 0
            (:mod:`twin3d.view.difference`).
        stale_after: seconds without a value after which a sensor is greyed out.
        gpu: colour-map in a shader from a raw float attribute (else VTK's CPU mapping).
        lighting: light the surfaces (False shows exact colour-map colours).
        show_sensors: draw the sensor markers, their labels and the state legend.
        labels: which sensors are labelled: ``"field"`` (those the shown field is made from;
            every sensor when there is no field), ``"all"``, ``"none"``, or a collection of
            quantities (``{"temperature", "strain"}``). Sensors in warn or alarm are always
            labelled (except with ``"none"``).
        feature_angle: edges sharper than this (degrees) are shaded hard (normals are
            computed once; split points take their stage vertex's field value).
        deform_scale: show meshes whose field model gives displacements
            (:class:`DeformingModel`) deformed this many times (stated on screen); None:
            undeformed.
        deform_models: ``{mesh prim path: model}`` whose displacement deforms each mesh
            (:class:`DeformingModel`, e.g. the stress model while the temperature is shown);
            default: the field models that give displacements.
        clock: monotonic clock in seconds (injectable for tests).

    Attributes:
        connection: the source's state in the status line (feeders set it).
        problems: lines shown above the status line in the warn colour: the physically
            impossible inputs a field model fitted to the latest values (an ambient below
            absolute zero, a heater that cools); empty: none shown.
        source_time: source time (Unix seconds) of the latest values, shown in the status line.
        alarms: the bridge's alarms by id (``Client.alarms``; :func:`~twin3d.view.feed_bridge`
            sets it): the open ones are counted in the status line.
        overlay: the screen-space layer (:class:`twin3d.view.screen.Overlay`): label
            placement, ``legend``, ``status`` and ``problem_line`` (also attributes of the view).

    A sensor whose ``twin/suspect/<channel>`` value (published by the twin engine) is 1 is shown
    as ``suspect``: its own colour and a labelled ``SUSPECT``.

    Examples:
        >>> view = View(twin, model)                            # doctest: +SKIP
        >>> view.push({"plate/tc1": 71.5}, time=1.7e9)          # doctest: +SKIP
        >>> image = view.screenshot("shot.png")                 # doctest: +SKIP
    """

    def __init__(
        self,
        twin: TwinLike,
        field_model: FieldModel | Mapping[str, FieldModel] | None = None,
        *,
        off_screen: bool | None = None,
        window_size: tuple[int, int] = (1024, 768),
        field_range: tuple[float, float] | None = None,
        cmap: str = DEFAULT_CMAP,
        title: str | None = None,
        symmetric: bool = False,
        stale_after: float = 10.0,
        gpu: bool = True,
        lighting: bool = True,
        show_sensors: bool = True,
        labels: str | Collection[str] = "field",
        feature_angle: float = 30.0,
        deform_scale: float | None = None,
        deform_models: Mapping[str, FieldModel] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _ensure_offscreen_backend()
        import pyvista as pv

        from twin3d.view.actors import build_mesh_actor, build_sensor_glyphs
        from twin3d.view.labels import short_names
        from twin3d.view.parts import Parts
        from twin3d.view.screen import Overlay

        self._clock = clock
        self.stale_after = float(stale_after)
        self.field_range = field_range
        self.symmetric = symmetric
        self.connection = "no bridge"
        self.problems: list[str] = []
        self.source_time: float | None = None
        self.alarms: Mapping[int, Mapping[str, Any]] = {}
        self.sensors: dict[str, Sensor] = dict(twin.sensors)
        meshes = list(twin.meshes)
        # live state
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._pending_time: float | None = None
        self.values: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._arrivals: deque[tuple[float, int]] = deque()
        self._range: tuple[float, float] | None = None
        self._followed = 0  # the parts' version the sensor markers were moved for
        self.deform_scale = deform_scale
        self.motion: Any = getattr(twin, "motion", None)  # twin3d.usd.motion.Motion
        self.frame_ms = 0.0
        self.frames = 0
        self._closed = False
        if not meshes:
            raise RenderError("the stage has no meshes to show; convert a CAD file first "
                              "(twin3d convert)")
        if off_screen is None:
            off_screen = not has_display()
        theme = copy.deepcopy(pv.global_theme)
        if software_gl():  # MSAA x8 made llvmpipe frames 3.5x slower
            theme.anti_aliasing = None
            theme.multi_samples = 0
        self.plotter = pv.Plotter(off_screen=off_screen, window_size=list(window_size),
                                  theme=theme)
        self.plotter.set_background("#20232a", top="#3b4252")  # type: ignore[arg-type]
        self.mesh_actors = [build_mesh_actor(m, cmap=cmap, gpu=gpu, lighting=lighting,
                                             feature_angle=feature_angle) for m in meshes]
        for ma in self.mesh_actors:
            self.plotter.renderer.AddActor(ma.actor)
        self.parts = Parts(self.mesh_actors)
        self._models = self._assign_models(field_model)
        self._deformers = self._assign_models(deform_models) if deform_models is not None else {
            i: m for i, m in self._models.items() if isinstance(m, DeformingModel)}
        if not all(isinstance(m, DeformingModel) for m in self._deformers.values()):
            raise FieldError("deform_models: a model that gives no displacement (a "
                             "StressModel does)")
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
        self._rest_positions = self.glyphs.positions.copy()
        self._anchors = [self.parts.anchor(self.sensors[ch].target, p) for ch, p in zip(chans, pos, strict=True)]
        self._names = short_names(chans)
        labelled = self._label_set(labels)
        self.show_sensors = show_sensors
        self.quantity, self.unit = "", ""
        self.color_bar: Any = None  # twin3d.view.actors.ColorBar when there is a field
        if self._models:
            self._add_color_bar(cmap, title)
        self.overlay = Overlay(self.plotter, self.glyphs, self.parts, diagonal=self.diagonal,
                               labelled=labelled, show_sensors=show_sensors,
                               color_bar=self.color_bar)
        # the overlay's actors, as the view has always named them
        self.legend = self.overlay.legend
        self.status = self.overlay.status
        self.problem_line = self.overlay.problem_line
        # a twin that keeps its latest readings (its live layer) shows them from the start
        initial = getattr(twin, "values", None)
        if isinstance(initial, Mapping) and initial:
            self.push({k: float(v) for k, v in initial.items()})
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
            n = field_model.n_vertices
            hits = [i for i, ma in enumerate(self.mesh_actors) if ma.n_vertices == n]
            if len(hits) != 1:
                raise FieldError(f"the field model has {n} vertices and {len(hits)} meshes of the "
                                 "stage match; pass {mesh path: model} instead")
            out = {hits[0]: field_model}
        for i, model in out.items():
            if model.n_vertices != self.mesh_actors[i].n_vertices:
                raise FieldError(f"field model for {self.mesh_actors[i].path} has "
                                 f"{model.n_vertices} vertices, the mesh "
                                 f"{self.mesh_actors[i].n_vertices}; rebuild the model")
        return out

    def _label_set(self, labels: str | Collection[str]) -> set[str]:
        """The channels labelled whatever their state."""
        chans = self.glyphs.channels
        if labels == "all":
            return set(chans)
        if labels == "none":
            return set()
        if labels == "field":
            driving = {c for m in self._models.values() for c in m.channels}
            return (driving & set(chans)) if self._models else set(chans)
        if isinstance(labels, str):
            raise RenderError(f"labels={labels!r}: use 'field', 'all', 'none' or quantities")
        wanted = set(labels)
        return {c for c in chans if self.sensors[c].quantity in wanted}

    def _add_color_bar(self, cmap: str, title: str | None) -> None:
        from twin3d.view.actors import build_color_bar
        from twin3d.view.labels import unit_text

        model = next(iter(self._models.values()))
        self.quantity, self.unit = str(model.quantity), str(model.unit)
        unit = unit_text(self.unit)
        if title is None:
            title = f"{self.quantity} ({unit})" if unit else self.quantity
        self.color_bar = build_color_bar(title, cmap)
        for prop in self.color_bar.actors():
            self.plotter.renderer.AddViewProp(prop)

    @staticmethod
    def _sensor_position(s: Sensor, by_path: Mapping[str, Any]) -> np.ndarray | None:
        if s.position is not None:
            return np.asarray(s.position, dtype=np.float64)
        mesh = by_path.get(s.target)
        if s.vertex is not None and mesh is not None and 0 <= s.vertex < len(mesh.points):
            return np.asarray(mesh.points[s.vertex], dtype=np.float64)
        return None

    # --- data in ----------------------------------------------------------------------------

    def push(self, values: Mapping[str, float] | Iterable[Sample],
             time: float | None = None) -> None:
        """Queue new values (latest per channel wins); safe from any thread or task.

        Args:
            values: ``{channel: value}``, or samples (their latest source time is shown).
            time: source time (Unix seconds) of ``{channel: value}`` values, for the status
                line.
        """
        if not isinstance(values, Mapping):
            samples = list(values)
            values = {s.channel: s.value for s in samples}
            time = max((s.time for s in samples), default=time)
        now = self._clock()
        with self._lock:
            self._pending.update(values)
            if time is not None:
                self._pending_time = max(time, self._pending_time or -math.inf)
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
        """Apply the pending values to the arrays, markers, labels and status line (no render)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            stamp, self._pending_time = self._pending_time, None
        now = self._clock()
        if stamp is not None:
            self.source_time = max(stamp, self.source_time or -math.inf)
        for ch, v in pending.items():
            self.values[ch] = float(v)
            self._seen[ch] = now
        if pending and self.motion is not None and not self.motion.channels.isdisjoint(pending):
            moved = self.motion.world_matrices(self.values)
            self.set_transforms({p: m for p, m in moved.items() if p in self.parts.index})
        if pending and self._models:
            for i, model in self._models.items():
                self.mesh_actors[i].write(model.update(self._channels_of(model)))
                if not self.mesh_actors[i].has_field:
                    self.mesh_actors[i].show_field(True)
            self.problems = [p for m in self._models.values() if isinstance(m, FittedModel)
                             for p in m.fitted_inputs().problems]
            if self.field_range is None:
                self._auto_range()
        if pending and self.deform_scale is not None:
            for i, deformer in self._deformers.items():
                if deformer is not self._models.get(i):  # not updated as the field shown
                    deformer.update(self._channels_of(deformer))
                self.parts.show_displacement(i, deformer, self.deform_scale)
        if self.color_bar is not None:
            self.color_bar.fit(self.plotter.window_size)
            if self._range is not None and any(self.mesh_actors[i].has_field
                                               for i in self._models):
                self.color_bar.show(*self._range)
        states = self._update_glyphs(now)
        if self.show_sensors:
            self._follow_parts()
            self.overlay.layout(states)
        self.overlay.show_status(
            status_text(self.connection, self.source_time, self.values_per_second(), self.frame_ms,
                        states, self.alarms, self.parts.deformations()), self.problems)

    def render(self) -> None:
        """Apply pending values and draw one frame."""
        t0 = time.perf_counter()
        self.update()
        rw = self.plotter.ren_win
        if rw is None:
            raise RenderError("the view is closed; make a new View")
        reach = self.parts.reach()
        if reach > 0.0:  # shader-displaced parts reach beyond their bounds: keep them unclipped
            ren = self.plotter.renderer
            box = np.asarray(ren.ComputeVisiblePropBounds(), dtype=np.float64)
            ren.ResetCameraClippingRange(*(box + np.tile([-reach, reach], 3)).tolist())
        rw.Render()
        self.frame_ms = (time.perf_counter() - t0) * 1e3
        self.frames += 1

    def _channels_of(self, model: FieldModel) -> dict[str, float]:
        """The latest values of the channels ``model`` is made from."""
        return {c: self.values[c] for c in model.channels if c in self.values}

    def _auto_range(self) -> None:
        lo, hi = math.inf, -math.inf
        for i in self._models:
            f = self.mesh_actors[i].field
            if f.size:
                lo, hi = min(lo, float(np.nanmin(f))), max(hi, float(np.nanmax(f)))
        if math.isfinite(lo) and math.isfinite(hi):
            if self.symmetric:
                hi = max(abs(lo), abs(hi), 1e-6)
                lo = -hi
            if hi <= lo:
                hi = lo + 1e-6 * max(1.0, abs(lo))
            self._set_range(lo, hi)

    def _set_range(self, vmin: float, vmax: float) -> None:
        if self._range == (vmin, vmax):
            return
        self._range = (vmin, vmax)
        for i in self._models:
            self.mesh_actors[i].set_range(vmin, vmax)

    @property
    def labelled_channels(self) -> frozenset[str]:
        """The channels labelled whatever their state (``labels=`` of the constructor)."""
        return self.overlay.labelled

    @property
    def scalar_range(self) -> tuple[float, float] | None:
        """The (vmin, vmax) the colour map shows now."""
        return self._range

    def _is_stale(self, ch: str, now: float) -> bool:
        seen = self._seen.get(ch)
        return seen is None or now - seen > self.stale_after

    def sensor_state(self, channel: str) -> str:
        """Return ``"ok"``, ``"warn"``, ``"alarm"``, ``"stale"`` or ``"suspect"`` for a sensor now."""
        if self._is_stale(channel, self._clock()):
            return "stale"
        if self.values.get(f"twin/suspect/{channel}") == 1.0:
            return "suspect"
        return self.sensors[channel].limits.state(self.values[channel])

    def _update_glyphs(self, now: float) -> list[str]:
        """Colour each marker and write its label's text; return each one's state."""
        from twin3d.view.labels import label_text

        states: list[str] = []
        for i, ch in enumerate(self.glyphs.channels):
            s, v = self.sensors[ch], self.values.get(ch)
            state: str = ("stale" if v is None or self._is_stale(ch, now)
                          else "suspect" if self.values.get(f"twin/suspect/{ch}") == 1.0
                          else s.limits.state(v))
            age = now - self._seen[ch] if ch in self._seen else None
            self.glyphs.set(i, ALARM_COLORS[state],
                            label_text(self._names[ch], v, s.unit, state, age))
            states.append(state)
        return states

    def label_text(self, channel: str) -> str | None:
        """The text of ``channel``'s label as last drawn, or None when it is hidden."""
        label = self.glyphs.texts[self.glyphs.channels.index(channel)]
        return str(label.GetInput()) if label.GetVisibility() else None

    # --- markers on the parts ----------------------------------------------------------------

    def _follow_parts(self) -> None:
        """Move the sensor markers with the parts they sit on (after moves or deformation)."""
        if self.parts.version != self._followed:
            self._followed = self.parts.version
            self.parts.follow(self._anchors, self._rest_positions, self.glyphs.positions)

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
        return round(h - 1 - y), round(x)

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

    def set_transforms(self, matrices: Mapping[str, npt.ArrayLike]) -> None:
        """Move meshes: ``{mesh path: (4, 4) matrix}``, each the mesh's local-to-world matrix
        (world space, column-vector convention ``p_world = M @ [p_local, 1]``, stage units:
        what :meth:`twin3d.usd.motion.Motion.world_matrices` gives).

        Only the actors' matrices change: no point or scalar buffer is written or uploaded,
        no actor is made. Meshes not named stay where they are; sensor markers follow the
        meshes they sit on.

        Raises:
            RenderError: a path that is not a mesh of the view (:attr:`mesh_paths`), or a
                matrix that is not a finite (4, 4) array; then no mesh moves.
        """
        self.parts.set_transforms(matrices)

    def set_displacement(self, prim: str, displacement: npt.ArrayLike | None,
                         scale: float = 1.0, *, normals: bool = False) -> None:
        """Show mesh ``prim`` deformed: its points at ``rest + scale * displacement``.

        The new positions are written into the float32 points buffer the mesh is drawn
        from (no new buffer, no new actor); the shading normals stay as at rest unless
        ``normals``. The status line states the exaggeration (``deformation ×scale``).

        Args:
            prim: the mesh's path.
            displacement: (n_vertices, 3) per vertex of the mesh as the twin gives it (its
                display surface, where it has one), stage units, in the frame of its points
                as read (world space at rest); None: back to rest.
            scale: the exaggeration factor (> 0).
            normals: recompute the normals for the deformed shape (slower at 1M points).

        Raises:
            RenderError: an unknown mesh, a displacement of the wrong shape or not floats, a
                scale that is not a positive number.
        """
        self.parts.set_displacement(prim, displacement, scale, normals)

    def set_displacement_modes(self, prim: str, modes: npt.ArrayLike) -> None:
        """Upload k displacement modes (n_vertices, 3, k) of mesh ``prim`` to the GPU, once
        (stage units per unit weight, frame of the points as read; k <= ``MAX_MODES`` of
        :mod:`twin3d.view.deform`). For a displacement linear in k numbers, as a stress
        model's is in its channels: :meth:`set_displacement_weights` then sets k uniforms.

        Raises:
            RenderError: an unknown mesh, modes of the wrong shape or count.
        """
        self.parts.set_modes(prim, modes)

    def set_displacement_weights(self, prim: str, weights: npt.ArrayLike, scale: float = 1.0,
                                 *, normals: bool = False) -> None:
        """Show mesh ``prim`` at ``rest + scale * Σ weights[j] * modes[j]``: k uniforms, no
        upload; the status line states the exaggeration.

        Raises:
            RenderError: an unknown mesh, no modes, not k finite weights, a bad scale.
        """
        self.parts.weigh(prim, weights, scale, normals)

    @property
    def mesh_paths(self) -> list[str]:
        """The paths of the meshes shown, in order (keys of :meth:`set_transforms`)."""
        return list(self.parts.index)

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
        """Open the interactive window and render until it is closed (blocks).

        Raises:
            RenderError: the view is off-screen (no display): save images instead.
        """
        self.open_window(fly=fly)
        while not self.window_closed():
            self.render()
            self.plotter.update(1)
            time.sleep(1 / 60)

    def open_window(self, *, fly: bool = True) -> None:
        """Open the interactive window without blocking; call ``plotter.update()`` between frames.

        Args:
            fly: first-person fly navigation (else pyvista's default trackball).

        Raises:
            RenderError: the view is off-screen, or the window cannot be opened.
        """
        if self.plotter.off_screen:
            raise RenderError("this view renders off-screen (no display): save a picture with "
                              "screenshot(path) or a movie with export_movie")
        if fly and self.plotter.iren is not None:
            import vtk

            self.plotter.iren.interactor.SetInteractorStyle(vtk.vtkInteractorStyleFlight())
        try:
            self.plotter.show(interactive_update=True, auto_close=False)
        except Exception as exc:  # e.g. pyvista's MismatchedInteractorError without X
            first = str(exc).splitlines()[0] if str(exc) else "no reason given"
            raise RenderError(f"cannot open a window ({type(exc).__name__}: {first}); render "
                              "off-screen instead (twin3d view --off-screen -o shot.png)") from None

    def window_closed(self) -> bool:
        """True once the window was closed (or :meth:`close` was called)."""
        return self._closed or self.plotter.render_window is None or \
            getattr(self.plotter, "_closed", False)

