"""What the engineer sees must be right (issue 12): field sizing, labels, colours, range, time.

Each test renders the real plate scene off-screen and reads back what a person would read:
pixels, label texts and where the labels sit, the colour bar's ticks, the status line.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from view_scene import NX, IdwModel, make_plate

from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP, colorize, lookup_table
from twin3d.model import Limits, Sample, Sensor

pv = pytest.importorskip("pyvista")
pytestmark = pytest.mark.render

from twin3d.view import View  # noqa: E402

SIZE = (480, 360)
TOP = dict(position=(0.2, 0.15, 0.75), focal_point=(0.2, 0.15, 0.0), up=(0.0, 1.0, 0.0))


def _box(view: View, text: object) -> tuple[float, float, float, float]:
    """The pixel box (x0, y0, x1, y1) a drawn text covers (VTK gives it about its position)."""
    bbox = [0.0, 0.0, 0.0, 0.0]
    text.GetBoundingBox(view.plotter.renderer, bbox)  # type: ignore[attr-defined]
    x, y = text.GetPosition()  # type: ignore[attr-defined]
    return (x + bbox[0], y + bbox[2], x + bbox[1], y + bbox[3])


def _boxes(view: View) -> dict[str, tuple[float, float, float, float]]:
    """Pixel boxes of the labels drawn in the last frame, by channel."""
    return {ch: _box(view, text) for ch, text in zip(view.glyphs.channels, view.glyphs.texts, strict=True)
            if text.GetVisibility()}


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


class SixRowModel:
    """Shaped like twin3d.fields.StressModel: W has six rows (tensor components) per vertex."""

    quantity, unit = "von_mises", "MPa"

    def __init__(self, base: IdwModel) -> None:
        self.channels = base.channels
        self.base = base
        self.W = np.repeat(base.W, 6, axis=0)
        self.n_vertices = base.W.shape[0]

    def update(self, values):  # type: ignore[no-untyped-def]
        return self.base.update(values)


def test_a_stress_model_is_sized_by_its_vertices_not_its_rows(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    stress = SixRowModel(model)
    with View(twin, stress, off_screen=True, window_size=(64, 48)) as view:  # by vertex count
        view.push({"plate/tc1": 10.0})
        view.render()
        body = next(ma for ma in view.mesh_actors if ma.path.endswith("Body"))
        assert body.has_field and body.n_vertices == stress.n_vertices
    with View(twin, {body.path: stress}, off_screen=True, window_size=(64, 48)):
        pass


def test_without_a_display_the_view_goes_off_screen_and_a_window_is_one_error(
        view_plate, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from twin3d.errors import RenderError

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    twin, model = view_plate
    with View(twin, model, window_size=(96, 72)) as view:  # as the README calls it
        assert view.plotter.off_screen
        view.push({"plate/tc1": 50.0})
        image = view.screenshot()
        assert image.shape == (72, 96, 3) and image.std() > 5
        with pytest.raises(RenderError, match="renders off-screen"):
            view.show()


def _cluster(tmp_path: Path) -> tuple[object, IdwModel]:
    """The plate with three extra thermocouples a few millimetres apart, and a strain gauge."""
    twin, _ = make_plate(tmp_path)
    body = next(m for m in twin.meshes if m.path.endswith("Body"))
    sensors = dict(twin.sensors)
    lim = Limits(warn_high=80.0, alarm_high=95.0)
    for k, (i, j) in enumerate([(14, 20), (15, 20), (14, 21)]):
        ch = f"plate/tc{5 + k}"
        sensors[ch] = Sensor(ch, "temperature", "degC", body.path,
                             position=tuple(map(float, body.points[j * NX + i])), limits=lim)
    sensors["plate/sg1"] = Sensor("plate/sg1", "strain", "ustrain", body.path,
                                  position=tuple(map(float, body.points[10 * NX + 12])),
                                  limits=Limits(warn_high=500.0, alarm_high=800.0))
    temps = [s for s in sensors.values() if s.quantity == "temperature"]
    verts = [int(np.argmin(np.linalg.norm(body.points - s.position, axis=1))) for s in temps]
    twin = replace(twin, sensors=sensors)  # type: ignore[type-var]
    return twin, IdwModel(body.points, temps, verts)


def test_labels_never_overlap_and_show_the_shown_quantity(tmp_path: Path) -> None:
    twin, model = _cluster(tmp_path)
    values = {"plate/tc1": 30.0, "plate/tc2": 60.0, "plate/tc3": 90.0, "plate/tc4": 97.0,
              "plate/tc5": 70.0, "plate/tc6": 72.0, "plate/tc7": 85.0, "plate/sg1": 120.0}
    with View(twin, model, off_screen=True, window_size=SIZE, field_range=(20.0, 100.0)) as view:
        for camera in (TOP, dict(position=(0.75, -0.45, 0.45), focal_point=(0.2, 0.15, 0.0),
                                 up=(0.0, 0.0, 1.0))):
            view.set_camera(**camera)
            view.push(values)
            view.render()
            boxes = _boxes(view)
            # a temperature view labels the thermocouples, not the strain gauge (in its limits)
            assert "plate/sg1" not in boxes and len(boxes) == 7
            assert view.label_text("plate/tc4") == "tc4  97 °C  ALARM"
            assert view.label_text("plate/tc7") == "tc7  85 °C  WARN"
            names = sorted(boxes)
            for a in names:  # no two labels overlap; none covers a marker
                for b in names:
                    if a < b:
                        assert _overlap(boxes[a], boxes[b]) == 0.0, (a, b)
                for ch, s in twin.sensors.items():
                    r, c = view.screen_position(s.position)
                    y = SIZE[1] - 1 - r
                    x0, y0, x1, y1 = boxes[a]
                    assert not (x0 < c < x1 and y0 < y < y1), (a, ch)
        # the gauge in warn is labelled anyway; "all" labels every sensor
        view.push({"plate/sg1": 650.0})
        view.render()
        assert view.label_text("plate/sg1") == "sg1  650 µm/m  WARN"
    with View(twin, model, off_screen=True, window_size=SIZE, labels="all") as view:
        view.set_camera(**TOP)
        view.push(values)
        view.render()
        assert view.label_text("plate/sg1") == "sg1  120 µm/m"


def test_labels_of_sensors_behind_the_part_are_hidden(tmp_path: Path) -> None:
    """A thermocouple on the back of the block: labelled from behind, hidden from the front."""
    twin, model = make_plate(tmp_path)
    block = next(m for m in twin.meshes if m.path.endswith("Block"))
    lo, hi = block.points.min(0), block.points.max(0)
    back = (float((lo[0] + hi[0]) / 2), float(hi[1]), float((lo[2] + hi[2]) / 2))  # face +y
    sensors = dict(twin.sensors)
    sensors["plate/tc9"] = Sensor("plate/tc9", "temperature", "degC", block.path,
                                  position=back, limits=Limits(warn_high=80.0))
    twin = replace(twin, sensors=sensors)  # type: ignore[type-var]
    center = np.array(back)
    with View(twin, model, off_screen=True, window_size=SIZE, labels="all") as view:
        view.push({"plate/tc9": 40.0, "plate/tc3": 30.0})
        view.set_camera(center + np.array([0.0, -0.5, 0.12]), center, (0.0, 0.0, 1.0))  # from the front
        view.render()
        assert view.label_text("plate/tc9") is None
        assert view.label_text("plate/tc3") is not None  # on the plate, in view
        view.set_camera(center + np.array([0.0, 0.5, 0.12]), center, (0.0, 0.0, 1.0))   # from behind
        view.render()
        assert view.label_text("plate/tc9") == "tc9  40 °C"


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB -> CIELAB (D65), written out here so the test does not trust the code under test."""
    c = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def test_no_colour_of_the_default_map_reads_as_warn_or_alarm() -> None:
    table = _lab(np.asarray(lookup_table(DEFAULT_CMAP), dtype=np.float64))
    for state in ("warn", "alarm"):
        distance = np.linalg.norm(table - _lab(np.asarray(ALARM_COLORS[state])), axis=1).min()
        assert distance > 30.0, (DEFAULT_CMAP, state, distance)  # inferno: 2.0 from warn


def test_markers_are_outlined_and_the_states_have_a_legend(view_plate) -> None:  # type: ignore[no-untyped-def]
    from twin3d.view.actors import MARKER_PX, OUTLINE_PX

    twin, model = view_plate
    with View(twin, model, off_screen=True, window_size=SIZE, field_range=(20.0, 100.0),
              lighting=False) as view:
        view.set_camera(**TOP)
        view.push({"plate/tc1": 30.0, "plate/tc2": 85.0, "plate/tc3": 99.0, "plate/tc4": 40.0})
        img = view.screenshot().astype(float)
        rad = MARKER_PX + OUTLINE_PX / 2  # the middle of the outline
        for ch, s in twin.sensors.items():  # a dark ring around each marker
            r, c = view.screen_position(s.position)
            ring = [img[round(r + rad * math.sin(a)), round(c + rad * math.cos(a))]
                    for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
            assert np.median(np.asarray(ring).max(axis=1)) < 40, ch
        legend = [chip.GetInput().strip() for chip in view.legend]
        assert legend == ["ok", "WARN", "ALARM", "STALE / no data"]
        for chip, state in zip(view.legend, ("ok", "warn", "alarm", "stale"), strict=False):
            assert chip.GetTextProperty().GetBackgroundColor() == pytest.approx(
                ALARM_COLORS[state])


def test_colour_bar_round_ticks_title_clear_and_no_data(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    with View(twin, model, off_screen=True, window_size=SIZE, field_range=(20.0, 105.0)) as view:
        view.set_camera(**TOP)
        view.render()
        bar = view.color_bar
        assert bar is not None and bar.title.GetInput() == "temperature (°C): no data"
        assert not bar.strip.GetVisibility() and not any(t.GetVisibility() for t in bar.labels)
        view.push({"plate/tc1": 91.0})
        view.render()
        ticks = [t.GetInput() for t in bar.labels if t.GetVisibility()]
        assert ticks == ["20", "40", "60", "80", "100"]
        assert bar.title.GetInput() == "temperature (°C)" and bar.strip.GetVisibility()
        title = _box(view, bar.title)
        for t in bar.labels:
            if t.GetVisibility():
                box = _box(view, t)
                assert box[3] < title[1], (t.GetInput(), box, title)  # ticks below the title
                assert box[1] > 12.0, (t.GetInput(), box)  # and above the status line


def test_status_line_shows_the_source_time_of_the_latest_value(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    t = 1767225600.0  # 2026-01-01 00:00:00 UTC
    with View(twin, model, off_screen=True, window_size=SIZE) as view:
        view.push([Sample("plate/tc1", 30.0, t + 12.5), Sample("plate/tc2", 31.0, t + 3.0)])
        view.render()
        assert "source 2026-01-01 00:00:12.5 UTC" in view.status.GetText(0)
        import vtk  # the status is plain text: VTK would parse a "|" as (slow) math

        renderer = vtk.vtkTextRenderer()
        assert renderer.DetectBackend(view.status.GetText(0)) == renderer.FreeType
        view.push({"plate/tc3": 40.0}, time=t + 60.0)
        view.render()
        assert "source 2026-01-01 00:01:00.0 UTC" in view.status.GetText(0)
        view.problems = ["ambient fitted at -222.9 degC, below absolute zero"]
        view.render()
        assert view.problem_line.GetVisibility()
        assert "ambient fitted at -222.9" in view.problem_line.GetInput()


def test_field_overlay_colours_use_the_fixed_range(view_plate) -> None:  # type: ignore[no-untyped-def]
    """A plate at 91 °C in a 20-105 range is bright, not the dark 'cold' of a data range."""
    twin, model = view_plate
    values = {ch: 91.0 + i * 0.5 for i, ch in enumerate(twin.sensors)}
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
              field_range=(20.0, 105.0), show_sensors=False) as view:
        view.set_camera(**TOP)
        view.push(values)
        img = view.screenshot()
        for ch, s in twin.sensors.items():
            r, c = view.screen_position(s.position)
            got = img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0)
            np.testing.assert_allclose(got, colorize([values[ch]], 20.0, 105.0)[0] * 255, atol=8)
