"""The desktop view's screen-space overlay: sensor labels where they can be read, the state
legend, the status line and the problem line.

The labels of the sensors the view labels (and of any in warn, alarm or suspect) go next to
their markers, placed by :func:`twin3d.view.labels.place_labels`: never over one another, a
marker, the colour bar, the status lines or the legend. A marker a part hides is hidden with its
label (a ray from the eye, tested by the view's :class:`~twin3d.view.parts.Parts` as the parts
are drawn now). Placement runs again only when the camera, the window, the set of labels, the
parts or a label outgrowing its slot changed; otherwise labels keep their places.

The status line states the source, the source time of the latest value, the rates, staleness,
open alarms and any exaggerated deformation; the problem line, in the warn colour, the
physically impossible inputs a field model fitted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from twin3d.colormap import ALARM_COLORS

if TYPE_CHECKING:
    import pyvista as pv

    from twin3d.view.actors import ColorBar, SensorGlyphs
    from twin3d.view.parts import Parts

__all__ = ["Overlay", "source_time_text", "status_text"]


def source_time_text(t: float) -> str:
    """A source time (Unix seconds) as the status line shows it, in UTC.

    Examples:
        >>> source_time_text(1767225600.25)
        '2026-01-01 00:00:00.2 UTC'
    """
    stamp = datetime.fromtimestamp(t, tz=UTC)
    return f"{stamp:%Y-%m-%d %H:%M:%S}.{stamp.microsecond // 100_000} UTC"


def status_text(connection: str, source_time: float | None, rate: float, frame_ms: float,
                states: Sequence[str], alarms: Mapping[int, Mapping[str, Any]],
                deformations: Sequence[float]) -> str:
    """The desktop view's status line.

    Args:
        connection: the source's state.
        source_time: source time (Unix seconds) of the latest values, None before any.
        rate: values pushed per second.
        frame_ms: how long the last frame took, milliseconds.
        states: (k,) the state of each sensor with a marker.
        alarms: the bridge's alarms by id (those not ``cleared`` are counted).
        deformations: the exaggeration factors of the deformations shown.

    Examples:
        >>> status_text("live", None, 12.0, 3.25, ["ok", "stale"], {}, [])
        'live  ·  12 values/s  ·  frame 3.2 ms  ·  2 sensors, 1 stale'
    """
    parts = [connection]
    if source_time is not None:
        parts.append(f"source {source_time_text(source_time)}")
    parts += [f"{rate:.0f} values/s", f"frame {frame_ms:.1f} ms",
              f"{len(states)} sensors, {sum(s == 'stale' for s in states)} stale"]
    suspect = sum(s == "suspect" for s in states)
    if suspect:
        parts[-1] += f", {suspect} suspect"
    open_alarms = [a for a in list(alarms.values()) if a.get("state") != "cleared"]
    if open_alarms:
        unacked = sum(a.get("state") in ("active", "returned") for a in open_alarms)
        parts.append(f"{len(open_alarms)} open alarm{'s' if len(open_alarms) > 1 else ''} "
                     f"({unacked} unacknowledged)")
    if deformations:
        parts.append("deformation ×" + ", ×".join(f"{x:g}" for x in deformations))
    return "  ·  ".join(parts)  # not "|": VTK would parse it as math


class Overlay:
    """The 2D layer of a desktop view over its 3D scene; adds its actors to the plotter once.

    Args:
        plotter: the view's ``pyvista.Plotter``.
        glyphs: the sensor markers and their labels (their actors are added here).
        parts: the view's parts (the occluders).
        diagonal: the scene's bounding-box diagonal, stage units.
        labelled: the channels labelled whatever their state.
        show_sensors: draw the markers, their labels and the state legend.
        color_bar: the field's colour bar (labels keep clear of it), or None.

    Attributes:
        labelled: as given.
        legend: the state chips, top left (empty when no markers are shown).
        status: the status line's text actor (bottom left).
        problem_line: the problem line's text actor, above the status line.
    """

    def __init__(self, plotter: pv.Plotter, glyphs: SensorGlyphs, parts: Parts, *,
                 diagonal: float, labelled: Collection[str], show_sensors: bool,
                 color_bar: ColorBar | None) -> None:
        from twin3d.view.actors import build_legend, label_actor

        self.plotter = plotter
        self.glyphs = glyphs
        self.parts = parts
        self.diagonal = diagonal
        self.labelled = frozenset(labelled)
        self.color_bar = color_bar
        self._layout_key: tuple[Any, ...] | None = None
        self._slots: dict[int, tuple[float, float]] = {}  # label -> (width, height) placed for
        self._legend_right = 0.0
        ren = plotter.renderer
        g = glyphs
        for a in (g.marker_actor, g.leader_actor, *g.texts):
            a.SetVisibility(show_sensors and a.GetVisibility())
            ren.AddViewProp(a)
        self.legend = build_legend() if show_sensors and g.channels else []
        for chip in self.legend:
            ren.AddViewProp(chip)
        self.status = plotter.add_text("", position="lower_left", font_size=9,
                                       color="#d8dee9", name="twin3d-status")
        self.problem_line = label_actor("", size=12, color=ALARM_COLORS["warn"], opacity=0.9)
        self.problem_line.GetTextProperty().SetFrameColor(*ALARM_COLORS["warn"])
        self.problem_line.SetPosition(6.0, 26.0)
        self.problem_line.SetVisibility(False)
        ren.AddViewProp(self.problem_line)

    def show_status(self, text: str, problems: Sequence[str]) -> None:
        """Write the status line and show ``problems`` above it (none: the line is hidden)."""
        self.status.SetText(0, text)
        if problems:
            self.problem_line.SetInput("CHECK THE MODEL: " + "; ".join(problems))
        self.problem_line.SetVisibility(bool(problems))

    def layout(self, states: Sequence[str]) -> None:
        """Show the markers and labels that should be seen; no label overlaps another.

        Args:
            states: (k,) each marker's state (those in warn, alarm or suspect are labelled).
        """
        from twin3d.view.labels import STATE_ORDER, place_labels

        g = self.glyphs
        if not g.channels:
            return
        size = tuple(self.plotter.window_size)
        self._place_legend(size)
        shown = [i for i, ch in enumerate(g.channels)
                 if ch in self.labelled or states[i] in ("warn", "alarm", "suspect")]
        sizes = {i: g.text_size(i) for i in shown}
        key = (self.plotter.camera.GetMTime(), size, tuple(shown), self.parts.version)
        grown = any(sizes[i][0] > self._slots.get(i, (0.0, 0.0))[0] for i in shown)
        if key == self._layout_key and not grown:
            return
        self._layout_key = key
        anchors, radii, on_screen = self._project()
        visible = on_screen & ~self._occluded()
        g.move(anchors, visible)
        label = [i for i in shown if visible[i]]
        slots = {i: (sizes[i][0] + 12.0, sizes[i][1]) for i in label}
        boxes, lead = place_labels(
            anchors[label], [slots[i] for i in label], radii[label],
            [STATE_ORDER[states[i]] for i in label], (size[0], size[1]),
            obstacles=np.column_stack([anchors, radii])[visible],
            keep_out=self._reserved(size))
        placed = dict(zip(label, zip(boxes, lead, strict=True), strict=True))
        for i in range(len(g.channels)):
            if i not in placed:
                g.place(i, None, None)
                continue
            box, far = placed[i]
            text_box = (box[0], box[1], box[0] + sizes[i][0], box[3])
            g.place(i, text_box, _leader(anchors[i], radii[i], text_box) if far else None)
        self._slots = slots

    def _project(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Display pixels (k, 2) and pixel radii (k,) of the markers; (k,) which are on screen."""
        ren = self.plotter.renderer
        w, h = self.plotter.window_size
        g = self.glyphs
        xy = np.zeros((len(g.channels), 2))
        on = np.zeros(len(g.channels), dtype=bool)
        for i, p in enumerate(g.positions):
            ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
            ren.WorldToDisplay()
            x, y, z = ren.GetDisplayPoint()
            xy[i] = (x, y)
            on[i] = 0.0 <= z <= 1.0 and 0 <= x < w and 0 <= y < h
        return xy, np.full(len(g.channels), g.radius_px), on

    def _occluded(self) -> np.ndarray:
        """(k,) True where a part lies between the camera and the sensor."""
        cam = self.plotter.camera
        return self.parts.hidden(self.glyphs.positions, cam.GetPosition(),
                                 cam.GetDirectionOfProjection(),
                                 parallel=bool(cam.GetParallelProjection()),
                                 reach=10.0 * self.diagonal, margin=0.5 * self.glyphs.radius)

    def _reserved(self, size: Sequence[int]) -> list[tuple[float, float, float, float]]:
        """Screen areas labels keep clear of: the colour bar, the status lines, the legend."""
        out = [(0.0, 0.0, size[0] * 0.55, 46.0)]
        if self.color_bar is not None:
            out.append(self.color_bar.pixels())
        if self.legend:
            out.append((0.0, size[1] - 34.0, self._legend_right, float(size[1])))
        return out

    def _place_legend(self, size: Sequence[int]) -> None:
        x = 8.0
        for chip in self.legend:
            chip.SetPosition(x, size[1] - 26.0)
            bbox = [0.0, 0.0, 0.0, 0.0]
            chip.GetBoundingBox(self.plotter.renderer, bbox)
            x += max(bbox[1] - bbox[0], 20.0) + 6.0
        self._legend_right = x


def _leader(anchor: np.ndarray, radius: float, box: Sequence[float]) -> tuple[float, ...]:
    """A line from the marker's edge to the nearest point of the label's box."""
    x = min(max(anchor[0], box[0]), box[2])
    y = min(max(anchor[1], box[1]), box[3])
    d = np.array([x - anchor[0], y - anchor[1]])
    n = float(np.linalg.norm(d)) or 1.0
    start = anchor + d / n * radius
    return (float(start[0]), float(start[1]), float(x), float(y))
