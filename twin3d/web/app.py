"""The browser view: a :class:`~twin3d.view.View`'s scene served to browsers, drawn by vtk.js.

:class:`WebView` keeps a desktop :class:`~twin3d.view.View` off-screen as its model (the same
field, colour range, sensor states, label texts and status as the desktop window) and serves
its renderer with trame's client-side rendering (``trame_pyvista.PyVistaLocalView``): each
browser draws the scene itself with WebGL, so the server needs no GPU and renders nothing.
The meshes go to a browser once; afterwards an update sends only the arrays that changed
(the field, the markers' colours) and a small scene description. Labels, the colour bar,
the state legend and the status line are HTML over the canvas; each browser's labels are
placed for its own camera (:mod:`twin3d.web.layout`).

Moving parts (the twin's bound motion, :class:`twin3d.usd.motion.Motion`: a value on a
``rotate`` or ``translate`` channel) move by their actors' matrices alone: the view places
them from the pushed values, and the update carries each actor's ``userMatrix`` and no array.
The sensor markers on a part share its matrix (:mod:`twin3d.web.markers`), and every browser's
labels are placed again where the sensors are now.

Updates are paced by the browsers: the next one is sent only when a browser reports the
last one loaded (vtk.js draws only after all its array fetches finish), or after
``ack_timeout`` seconds; values arriving meanwhile are coalesced to the latest per channel,
and they are copied into the arrays only right before the update is sent.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP, lookup_table
from twin3d.model import Sample
from twin3d.view.camerapath import CameraPath, orbit_path
from twin3d.view.renderer import FieldModel, TwinLike, View
from twin3d.view.screen import source_time_text
from twin3d.web.markers import Markers

__all__ = ["ACK_TIMEOUT_S", "WebView"]

#: Seconds an update waits for a browser to report the previous one loaded.
ACK_TIMEOUT_S = 2.0
#: Browsers whose cameras the server keeps label layouts for (the most recent ones).
MAX_CLIENTS = 64
_STATIC = Path(__file__).parent / "static"
_MARKER_PX = 9.0


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb[:3])


def _camera_ok(camera: Any) -> bool:
    """A camera reported by a page: three finite 3-vectors and sane numbers."""
    if not isinstance(camera, Mapping):
        return False
    try:
        vecs = [np.asarray(camera[k], dtype=np.float64) for k in ("position", "focalPoint",
                                                                 "viewUp")]
        angle = float(camera.get("viewAngle", 30.0))
        scale = float(camera.get("parallelScale", 1.0))
    except (KeyError, TypeError, ValueError):
        return False
    return (all(v.shape == (3,) and np.isfinite(v).all() for v in vecs)
            and 0.0 < angle < 180.0 and math.isfinite(scale)
            and float(np.linalg.norm(vecs[0] - vecs[1])) > 0.0)


class WebView:
    """Serve a twin's live view to browsers.

    Args:
        twin: anything with ``.sensors``, ``.meshes`` and ``.meters_per_unit`` (a ``Twin``).
        field_model: a field model, or ``{mesh prim path: model}`` (see :class:`View`).
        field_range: fixed (vmin, vmax) of the colour map; None = the data's.
        cmap: matplotlib colour map name.
        labels: which sensors are labelled (see :class:`View`).
        stale_after: seconds without a value after which a sensor is stale.
        paths: camera paths the page can fly, by name (an orbit is always offered).
        ack_timeout: seconds an update waits for a browser's "loaded" before the next.
        token: when given, browsers must sign in with it (a form, or ``Authorization:
            Bearer``) before the page or any data is sent (:mod:`twin3d.web.auth`).
        name: the trame server's name (one per view in a process).

    Attributes:
        view: the desktop view the page shows (off-screen, never rendered).
        updates: scene updates sent to the browsers.
        acks: scene loads the browsers reported.

    Examples:
        >>> web = WebView(twin, models, field_range=(20.0, 105.0))   # doctest: +SKIP
        >>> web.start(port=8080)                                     # doctest: +SKIP
    """

    def __init__(self, twin: TwinLike,
                 field_model: FieldModel | Mapping[str, FieldModel] | None = None, *,
                 field_range: tuple[float, float] | None = None, cmap: str = DEFAULT_CMAP,
                 labels: str | Sequence[str] = "field", stale_after: float = 10.0,
                 paths: Mapping[str, CameraPath] | None = None,
                 ack_timeout: float = ACK_TIMEOUT_S, token: str | None = None,
                 name: str | None = None) -> None:
        from twin3d.web.layout import LabelLayout

        self.view = View(twin, field_model, off_screen=True, field_range=field_range,
                         cmap=cmap, stale_after=stale_after, gpu=False, labels=labels)
        self.cmap = cmap
        self.ack_timeout = float(ack_timeout)
        self._token = token
        self.updates = 0
        self.acks = 0
        self.alert = ""
        self._name = name or f"twin3d-web-{id(self):x}"
        g = self.view.glyphs
        self.channels: list[str] = list(g.channels)
        self._labelled = self.view.labelled_channels
        self._layout = LabelLayout(self.view.parts, marker_px=_MARKER_PX)
        self._markers = Markers(self.view, radius=0.008 * self._layout.diagonal)
        self._placed_for = self.view.parts.version  # the parts' version labels were placed for
        self._cameras: OrderedDict[str, tuple[dict[str, Any], tuple[int, int]]] = OrderedDict()
        self._reserved: dict[int, int] = {}   # label -> characters its slot holds
        self._shown: tuple[int, ...] = ()
        self._wake = asyncio.Event()
        self._scene_dirty = True
        self._in_flight = False
        self._sent_at = 0.0
        self._paths = {"orbit": orbit_path(self._layout.center, 1.6 * self._layout.diagonal,
                                           elevation=30.0), **(paths or {})}
        self._server: Any = None
        self._local: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- values in ---------------------------------------------------------------------------

    def push(self, values: Mapping[str, float] | Iterable[Sample], time: float | None = None) -> None:
        """Queue new values (latest per channel wins); the browsers get them on the next update.

        Call it from the server's event loop (a bridge feed does: :meth:`feed_bridge`).
        """
        self.view.push(values, time)
        self._scene_dirty = True
        self._wake.set()

    @property
    def connection(self) -> str:
        """The source's state as the status line shows it."""
        return self.view.connection

    @connection.setter
    def connection(self, text: str) -> None:
        self.view.connection = text
        self._wake.set()

    async def feed_bridge(self, url: str, token: str | None = None, *,
                          patterns: Sequence[str] = ("*",), retry: float = 2.0) -> None:
        """Subscribe to a bridge and push what arrives, for ever; while the bridge is down the
        page says so and this retries every ``retry`` seconds (a refused token included: it
        may be fixed in the bridge's config meanwhile)."""
        from twin3d.bridge import Client
        from twin3d.errors import AuthError, BridgeError

        while True:
            self.connection = f"connecting {url}"
            try:
                async with Client(url, token=token) as client:
                    sub = await client.subscribe(list(patterns))
                    self._set_alert("")
                    self.connection = f"connected {url}"
                    await self._pump_subscription(client, sub, url, retry)
            except AuthError as exc:
                self._set_alert(f"The bridge at {url} refused the token ({exc}); "
                                f"retrying every {retry:g} s")
                self.connection = f"refused by {url}"
            except BridgeError as exc:
                self._set_alert(f"The bridge at {url} is down ({exc}); retrying every {retry:g} s")
                self.connection = f"bridge down: {url}, retrying"
            await asyncio.sleep(retry)

    async def _pump_subscription(self, client: Any, sub: Any, url: str, retry: float) -> None:
        batches = sub.__aiter__()
        nxt: asyncio.Task[list[Sample]] | None = None
        try:
            while True:
                if nxt is None:
                    nxt = asyncio.ensure_future(batches.__anext__())
                done, _ = await asyncio.wait({nxt}, timeout=1.0)
                if nxt in done:
                    self.push(nxt.result())
                    nxt = None
                elif not client.connected:
                    self._set_alert(f"The bridge at {url} is down; reconnecting")
                    self.connection = f"bridge down: {url}, reconnecting"
                elif self.alert:
                    self._set_alert("")
                    self.connection = f"connected {url}"
        finally:
            if nxt is not None:
                nxt.cancel()

    def _set_alert(self, text: str) -> None:
        self.alert = text
        if self._server is not None:
            self._server.state.twin3d_alert = text

    # --- the scene ---------------------------------------------------------------------------

    def camera_presets(self) -> dict[str, dict[str, Any]]:
        """The page's camera buttons: iso, top, front, side (vtk.js camera dicts)."""
        c = self._layout.center
        dist = 0.5 * self._layout.diagonal / math.sin(math.radians(15.0)) * 1.05
        out = {}
        for name, direction, up in (("iso", (1, -1, 1), (0, 0, 1)), ("top", (0, 0, 1), (0, 1, 0)),
                                    ("front", (0, -1, 0), (0, 0, 1)), ("side", (1, 0, 0), (0, 0, 1))):
            d = np.asarray(direction, dtype=np.float64)
            d /= np.linalg.norm(d)
            out[name] = {"position": (c + d * dist).tolist(), "focalPoint": c.tolist(),
                         "viewUp": list(map(float, up)), "viewAngle": 30.0,
                         "parallelProjection": False}
        return out

    def camera_paths(self, fps: float = 30.0, seconds: float = 8.0) -> dict[str, dict[str, Any]]:
        """The page's camera paths, sampled for playback in the browser."""
        out = {}
        n = max(2, int(fps * seconds))
        for name, path in self._paths.items():
            pos, foc = path.sample(n)
            out[name] = {"position": np.round(pos, 6).tolist(),
                         "focalPoint": np.round(foc, 6).tolist(), "viewUp": list(path.up),
                         "viewAngle": float(path.fov), "fps": fps}
        return out

    # --- overlays ----------------------------------------------------------------------------

    def status_text(self, states: Sequence[str]) -> str:
        """The status line: connection, source time, values/s, scene updates/s, staleness."""
        v = self.view
        parts = [v.connection]
        if v.source_time is not None:
            parts.append(f"source {source_time_text(v.source_time)}")
        parts.append(f"{v.values_per_second():.0f} values/s")
        parts.append(f"{len(states)} sensors, {sum(s == 'stale' for s in states)} stale")
        return "  ·  ".join(parts)

    def _color_bar(self) -> dict[str, Any] | None:
        from twin3d.view.labels import nice_ticks

        bar = self.view.color_bar
        if bar is None:
            return None
        rng = self.view.scalar_range
        shown = rng is not None and any(ma.has_field for ma in self.view.mesh_actors)
        table = np.asarray(lookup_table(self.cmap, 16))
        stops = ", ".join(f"{_hex(c)} {100.0 * i / (len(table) - 1):.1f}%"
                          for i, c in enumerate(table))
        if not shown or rng is None:
            return {"title": f"{bar.name}: no data", "gradient": "", "ticks": []}
        lo, hi = rng
        span = (hi - lo) or 1.0
        ticks = [[f"{t:g}", round(100.0 * (t - lo) / span, 2)] for t in nice_ticks(lo, hi)[:8]]
        return {"title": bar.name, "gradient": f"linear-gradient(to right, {stops})",
                "ticks": ticks}

    def _labels(self, states: Sequence[str]) -> list[list[str]]:
        """[text, colour, state] of every sensor's label."""
        texts = self.view.glyphs.texts
        return [[str(texts[i].GetInput()), _hex(ALARM_COLORS[s]), s]
                for i, s in enumerate(states)]

    def _keep_out(self, size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """Areas the HTML overlays cover (pixels, y up): status, colour bar, legend, buttons."""
        w, h = size
        return [(0.0, 0.0, w - 470.0, 64.0), (w - 460.0, 0.0, float(w), 84.0),
                (0.0, h - 40.0, 470.0, float(h)), (w - 330.0, h - 76.0, float(w), float(h))]

    def layout_for(self, camera: Mapping[str, Any], size: tuple[int, int],
                   states: Sequence[str]) -> list[list[float]]:
        """Label boxes for one browser's camera and canvas size (see :meth:`LabelLayout.place`)."""
        from twin3d.view.labels import STATE_ORDER

        shown = [i for i, ch in enumerate(self.channels)
                 if ch in self._labelled or states[i] in ("warn", "alarm")]
        texts = self.view.glyphs.texts
        for i in shown:
            self._reserved[i] = max(self._reserved.get(i, 0), len(str(texts[i].GetInput())) + 3)
        return self._layout.place(self.view.glyphs.positions, camera, size, shown,
                                  [self._reserved[i] for i in shown],
                                  [STATE_ORDER[states[i]] for i in shown],
                                  keep_out=self._keep_out(size))

    def _relayout(self, states: Sequence[str], only: str | None = None) -> None:
        state = self._server.state
        layouts = dict(state.twin3d_layouts or {})
        for cid, (camera, size) in self._cameras.items():
            if only is None or cid == only:
                layouts[cid] = self.layout_for(camera, size, states)
        state.twin3d_layouts = {cid: layouts[cid] for cid in self._cameras if cid in layouts}

    def _refresh_overlays(self) -> None:
        """Labels, colour bar, status line and problems into the page's state."""
        v = self.view
        states = [v.sensor_state(ch) for ch in self.channels]
        if self._markers.color(states):
            self._scene_dirty = True
        state = self._server.state
        labels = self._labels(states)
        shown = tuple(i for i, ch in enumerate(self.channels)
                      if ch in self._labelled or states[i] in ("warn", "alarm"))
        outgrown = any(len(labels[i][0]) > self._reserved.get(i, 0) for i in shown)
        moved = self.view.parts.version != self._placed_for
        if shown != self._shown or outgrown or moved:
            self._shown = shown
            self._placed_for = self.view.parts.version
            self._relayout(states)
        state.twin3d_labels = labels
        state.twin3d_status = self.status_text(states)
        state.twin3d_problems = ("CHECK THE MODEL: " + "; ".join(v.problems)) if v.problems else ""
        state.twin3d_colorbar = self._color_bar()
        state.flush()

    # --- trame ---------------------------------------------------------------------------------

    def _on_camera(self, cid: str, camera: Any, size: Any) -> None:
        """A page reported its camera and canvas size: place its labels."""
        try:
            w, h = (int(x) for x in size)
        except (TypeError, ValueError):
            return
        if not (isinstance(cid, str) and 0 < len(cid) <= 32 and _camera_ok(camera)
                and 0 < w <= 16384 and 0 < h <= 16384):
            return
        self._cameras[cid] = (dict(camera), (w, h))
        self._cameras.move_to_end(cid)
        while len(self._cameras) > MAX_CLIENTS:
            self._cameras.popitem(last=False)
        states = [self.view.sensor_state(ch) for ch in self.channels]
        self._relayout(states, only=cid)
        self._server.state.flush()

    def _on_loaded(self, *_: Any) -> None:
        """A page finished loading the last scene update: the next one may go."""
        self.acks += 1
        self._in_flight = False
        self._wake.set()

    async def _update_loop(self) -> None:
        """Send scene updates paced by the browsers; refresh the overlays at least every second."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), 1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            waiting = self._in_flight and time.monotonic() - self._sent_at < self.ack_timeout
            if waiting:
                self._server.state.twin3d_status = self.status_text(
                    [self.view.sensor_state(ch) for ch in self.channels])
                self._server.state.flush()
                continue
            self.view.update()  # the latest values into the arrays, right before sending them
            self._refresh_overlays()
            if self._scene_dirty:
                self._scene_dirty = False
                self._in_flight = True
                self._sent_at = time.monotonic()
                self._local.update()
                self.updates += 1

    def build(self) -> Any:
        """Make the trame server and the page (once); return the server."""
        if self._server is not None:
            return self._server
        os.environ.setdefault("TRAME_ARGS", "")  # trame must not parse twin3d's command line
        os.environ.setdefault("WSLINK_READY_MSG", "")
        from trame.app import get_server
        from trame.ui.html import DivLayout
        from trame.widgets import client, html
        from trame_pyvista import PyVistaLocalView

        server = get_server(self._name, client_type="vue3")
        self._server = server
        server.enable_module({"serve": {"__twin3d": str(_STATIC)}, "scripts": ["__twin3d/twin3d.js"]})
        state = server.state
        state.client_only("twin3d_moving")
        state.twin3d_moving = False
        state.twin3d_layouts = {}
        state.twin3d_labels = []
        state.twin3d_channels = self.channels
        state.twin3d_status = ""
        state.twin3d_problems = ""
        state.twin3d_alert = self.alert
        state.twin3d_colorbar = None
        state.twin3d_cameras = self.camera_presets()
        state.twin3d_paths = self.camera_paths()
        server.trigger("twin3d_camera")(self._on_camera)
        server.trigger("twin3d_loaded")(self._on_loaded)
        server.controller.on_server_ready.add(self._on_ready)
        server.controller.on_client_connected.add(self._wake.set)
        if self._token:
            from twin3d.web.auth import token_gate

            gate = token_gate(self._token)
            server.controller.on_server_bind.add(lambda ws: ws.app.middlewares.append(gate))
        with DivLayout(server, template_name="main") as layout:
            layout.root.style = "position:fixed;inset:0;overflow:hidden;background:#20232a;"
            client.Style(_CSS)
            with html.Div(classes="t3-canvas"):
                self._local = PyVistaLocalView(self.view.plotter)  # type: ignore[no-untyped-call]
                ref = self._local.ref_name
                self._local.after_scene_loaded = f"window.twin3d.loaded(trame, '{ref}')"
                self._local.interactor_events = ("['StartAnimation', 'EndAnimation']",)
                self._local.StartAnimation = "window.twin3d.moving(trame)"
                self._local.EndAnimation = f"window.twin3d.report(trame, '{ref}')"
                self._local.resize = f"window.twin3d.report(trame, '{ref}')"
            _overlays(ref)
        return server

    def _on_ready(self, **_: Any) -> None:
        from twin3d.web.serializer import install_polydata_serializer

        self._loop = asyncio.get_running_loop()

        install_polydata_serializer()
        self._tasks.append(asyncio.ensure_future(self._update_loop()))
        self._wake.set()

    @property
    def port(self) -> int:
        """The port the server listens on (once started)."""
        return int(self._server.port)

    def start(self, host: str = "127.0.0.1", port: int = 8080, *, exec_mode: str = "main",
              feeds: Sequence[Any] = (), timeout: int = 0) -> Any:
        """Serve the page (blocks with ``exec_mode="main"``; ``"task"`` schedules it on the
        running loop and returns the task).

        Args:
            host: interface to listen on.
            port: TCP port (0 = any free one; see :attr:`port`).
            exec_mode: ``"main"`` (block) or ``"task"`` (return a task on the running loop).
            feeds: coroutines to run beside the server once it is up (e.g. :meth:`feed_bridge`).
            timeout: stop after this many seconds without a browser connected (0: never).
        """
        server = self.build()

        def go(**_: Any) -> None:
            for coro in feeds:
                self._tasks.append(asyncio.ensure_future(coro))

        server.controller.on_server_ready.add(go)
        return server.start(host=host, port=port, open_browser=False, show_connection_info=False,
                            disable_logging=True, exec_mode=exec_mode, timeout=timeout,
                            thread=threading.current_thread() is not threading.main_thread())

    def close(self, timeout: float = 30.0) -> None:
        """Stop serving from another thread than the server's (see :meth:`stop`)."""
        if self._loop is None or self._loop.is_closed():
            self.view.close()
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout)

    async def stop(self) -> None:
        """Stop the feeds, the update loop and the server."""
        from twin3d._tasks import cancel_and_wait

        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._server is not None:
            await self._server.stop()
        self.view.close()


_CSS = """
.t3-canvas { position:absolute; inset:0; }
.t3-ui { position:absolute; font:12px/1.3 'DejaVu Sans', sans-serif; color:#d8dee9; }
.t3-label { position:absolute; font:12px/16px 'DejaVu Sans Mono', monospace; white-space:pre;
  background:rgba(20,23,28,0.86); color:#eceff4; border:1px solid; padding:0 4px;
  pointer-events:none; }
.t3-leader { position:absolute; height:1.5px; background:#eceff4; transform-origin:0 50%;
  pointer-events:none; }
.t3-chip { display:inline-block; margin-right:6px; padding:1px 6px; border:1px solid #000;
  font:12px 'DejaVu Sans', sans-serif; }
.t3-btn { font:12px 'DejaVu Sans', sans-serif; margin-left:4px; padding:2px 8px;
  background:#3b4252; color:#eceff4; border:1px solid #4c566a; border-radius:3px; cursor:pointer; }
.t3-alert { position:absolute; left:50%; top:44px; transform:translateX(-50%); padding:6px 14px;
  background:#bf616a; color:#fff; font:13px 'DejaVu Sans', sans-serif; border-radius:3px; }
"""


def _overlays(ref: str) -> None:
    """The HTML over the canvas: labels, legend, camera buttons, colour bar, status lines."""
    from trame.widgets import html

    with html.Div(classes="t3-ui", style="inset:0;pointer-events:none;",
                  v_show=("!twin3d_moving",), id="t3-labels"):
        html.Div(v_for="b in (twin3d_layouts[window.twin3d.id] || [])", key="'l' + b[0]",
                 v_show=("b[6] >= 0",), classes="t3-leader",
                 style=("{left: b[4] + 'px', top: b[5] + 'px', "
                        "width: Math.hypot(b[6] - b[4], b[7] - b[5]) + 'px', "
                        "transform: 'rotate(' + Math.atan2(b[7] - b[5], b[6] - b[4]) + 'rad)'}",))
        html.Div("{{ twin3d_labels[b[0]] && twin3d_labels[b[0]][0] }}",
                 v_for="b in (twin3d_layouts[window.twin3d.id] || [])", key="b[0]",
                 classes="t3-label",
                 style=("{left: b[1] + 'px', top: b[2] + 'px', "
                        "borderColor: twin3d_labels[b[0]] && twin3d_labels[b[0]][1]}",))
    with html.Div(classes="t3-ui", style="left:8px;top:8px;", id="t3-legend"):
        for state, text in (("ok", "ok"), ("warn", "WARN"), ("alarm", "ALARM"),
                            ("stale", "STALE / no data")):
            dark = state in ("warn", "stale")
            html.Span(text, classes="t3-chip",
                      style=f"background:{_hex(ALARM_COLORS[state])};"
                            f"color:{'#0d0d0d' if dark else '#ffffff'};")
    with html.Div(classes="t3-ui", style="right:8px;top:8px;text-align:right;", id="t3-cameras"):
        with html.Div():
            html.Span("camera", style="margin-right:2px;")
            for name in ("iso", "top", "front", "side"):
                html.Button(name, classes="t3-btn", id=f"t3-cam-{name}",
                            click=f"window.twin3d.setCamera(trame, '{ref}', twin3d_cameras.{name})")
        with html.Div(style="margin-top:6px;"):
            html.Span("fly", style="margin-right:2px;")
            html.Button("{{ name }}", v_for="(path, name) in twin3d_paths", key="name",
                        classes="t3-btn",
                        click=f"window.twin3d.play(trame, '{ref}', path)")
    with html.Div(classes="t3-ui", style="right:16px;bottom:14px;width:420px;", id="t3-colorbar",
                  v_if=("twin3d_colorbar",)):
        html.Div("{{ twin3d_colorbar.title }}", style="font-weight:bold;font-size:14px;"
                 "margin-bottom:4px;")
        html.Div(v_show=("twin3d_colorbar.gradient",),
                 style=("{height: '14px', border: '1px solid #eceff4', "
                        "background: twin3d_colorbar.gradient}",))
        with html.Div(style="position:relative;height:18px;"):
            html.Span("{{ t[0] }}", v_for="t in twin3d_colorbar.ticks", key="t[0]",
                      style=("{position: 'absolute', left: t[1] + '%', "
                             "transform: 'translateX(-50%)', top: '2px'}",))
    html.Div("{{ twin3d_problems }}", classes="t3-ui", v_show=("twin3d_problems",),
             id="t3-problems",
             style=f"left:8px;bottom:44px;max-width:calc(100% - 480px);color:{_hex(ALARM_COLORS['warn'])};")
    html.Div("{{ twin3d_status }}", classes="t3-ui", id="t3-status",
             style="left:8px;bottom:10px;max-width:calc(100% - 480px);")
    html.Div("{{ twin3d_alert }}", classes="t3-alert", v_show=("twin3d_alert",), id="t3-alert")
