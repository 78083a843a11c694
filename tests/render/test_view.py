"""The live view: field overlay, alarm glyphs, stale sensors, in-place frames, a real bridge.

Every image test asserts the data first (scalar range, the pixel colour at a sensor's screen
position against the shared colour map), then compares with the committed baseline PNG.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from twin3d.colormap import ALARM_COLORS, colorize

pv = pytest.importorskip("pyvista")
pytestmark = pytest.mark.render

if not pv.system_supports_plotting():  # pragma: no cover - CI runs with EGL or xvfb
    pytest.skip("no OpenGL context (EGL/OSMesa/X)", allow_module_level=True)

from twin3d.view import View, feed_bridge, feed_recording  # noqa: E402

SIZE = (480, 360)
TOP = dict(position=(0.2, 0.15, 0.75), focal_point=(0.2, 0.15, 0.0), up=(0.0, 1.0, 0.0))


def rgb255(c: object) -> np.ndarray:
    return np.asarray(c, dtype=float) * 255.0


def pixel(view: View, img: np.ndarray, xyz: object) -> np.ndarray:
    r, c = view.screen_position(xyz)  # type: ignore[arg-type]
    return img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0)


class FakeClock:
    """A settable monotonic clock (the view takes its time from it)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_field_overlay(view_plate, assert_image) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    values = {"plate/tc1": 30.0, "plate/tc2": 60.0, "plate/tc3": 90.0, "plate/tc4": 97.0}
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
              field_range=(20.0, 100.0), show_sensors=False) as view:
        view.set_camera(**TOP)
        view.push(values)
        img = view.screenshot()
        # data: fixed range, the field equals each reading at its sensor's vertex
        assert view.scalar_range == (20.0, 100.0)
        body = next(ma for ma in view.mesh_actors if ma.path.endswith("Body"))
        assert body.has_field and body.field.dtype == np.float32
        field = model.update(values)
        np.testing.assert_allclose(body.field_at_vertices(), field, rtol=1e-6)
        # pixels: the colour map of each sensor's value, at its screen position
        for ch, s in twin.sensors.items():
            got = pixel(view, img, s.position)
            want = rgb255(colorize([values[ch]], 20.0, 100.0)[0])
            np.testing.assert_allclose(got, want, atol=8, err_msg=ch)
        block = next(ma for ma in view.mesh_actors if ma.path.endswith("Block"))
        assert not block.has_field  # a mesh without a model keeps its material colour
        assert_image(view.plotter)


def test_auto_range_and_cpu_path_match_gpu(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    values = {"plate/tc1": 12.0, "plate/tc2": 48.0, "plate/tc3": 70.0, "plate/tc4": 33.0}
    images = []
    for gpu in (True, False):
        with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
                  show_sensors=False, gpu=gpu) as view:
            view.set_camera(**TOP)
            view.push(values)
            img = view.screenshot()
            # IDW is a convex combination: the auto range is exactly the readings' range
            lo, hi = view.scalar_range  # type: ignore[misc]
            assert lo == pytest.approx(12.0, abs=1e-4) and hi == pytest.approx(70.0, abs=1e-4)
            for ch, s in twin.sensors.items():
                want = rgb255(colorize([values[ch]], lo, hi)[0])
                np.testing.assert_allclose(pixel(view, img, s.position), want, atol=8,
                                           err_msg=f"{ch} gpu={gpu}")
            images.append(img.astype(float))
    assert np.abs(images[0] - images[1]).mean() < 2.0


def test_sensor_glyphs_alarm_and_stale(view_plate, assert_image) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    clock = FakeClock()
    with View(twin, model, off_screen=True, window_size=SIZE, field_range=(20.0, 100.0),
              stale_after=10.0, clock=clock) as view:
        view.set_camera(**TOP)
        view.push({"plate/tc1": 30.0, "plate/tc2": 85.0, "plate/tc3": 99.0})  # tc4: never
        img = view.screenshot()
        want = {"plate/tc1": "ok", "plate/tc2": "warn", "plate/tc3": "alarm",
                "plate/tc4": "stale"}
        for ch, state in want.items():
            assert view.sensor_state(ch) == state
            got = pixel(view, img, twin.sensors[ch].position)
            np.testing.assert_allclose(got, rgb255(ALARM_COLORS[state]), atol=3, err_msg=ch)
        # the state is in the label's text, not only in its colour
        assert view.label_text("plate/tc1") == "tc1  30 °C"
        assert view.label_text("plate/tc2") == "tc2  85 °C  WARN"
        assert view.label_text("plate/tc3") == "tc3  99 °C  ALARM"
        assert view.label_text("plate/tc4") == "tc4  no data"
        assert_image(view.plotter)

        # 25 s later only tc3 has reported again: tc1 and tc2 are stale, with their age
        clock.t += 25.0
        view.push({"plate/tc3": 70.0})
        img = view.screenshot()
        assert [view.sensor_state(c) for c in want] == ["stale", "stale", "ok", "stale"]
        assert view.label_text("plate/tc1") == "tc1  30 °C  STALE 25s"
        np.testing.assert_allclose(pixel(view, img, twin.sensors["plate/tc1"].position),
                                   rgb255(ALARM_COLORS["stale"]), atol=3)
        status = view.status.GetText(0)
        assert "4 sensors, 3 stale" in status and "frame" in status


def test_frames_write_in_place(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    rng = np.random.default_rng(1)
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
              field_range=(0.0, 100.0), show_sensors=False) as view:
        view.set_camera(**TOP)
        view.render()
        actors = view.actor_ids()
        body = next(ma for ma in view.mesh_actors if ma.path.endswith("Body"))
        points_ptr = body.polydata.GetPoints().GetData().GetVoidPointer(0)
        field_ptr = body.array.GetVoidPointer(0)
        mtime = body.polydata.GetPoints().GetMTime()
        for _ in range(10):
            last = {ch: float(v) for ch, v in zip(twin.sensors, rng.uniform(5, 95, 4), strict=False)}
            view.push(last)
            view.render()
        img = view.screenshot()
        assert view.actor_ids() == actors
        from twin3d.view.renderer import software_gl

        if software_gl():  # MSAA makes llvmpipe frames ~3.5x slower: off there
            assert view.plotter.ren_win.GetMultiSamples() == 0
        assert body.polydata.GetPoints().GetData().GetVoidPointer(0) == points_ptr
        assert body.polydata.GetPoints().GetMTime() == mtime  # geometry never touched
        assert body.array.GetVoidPointer(0) == field_ptr  # the same buffer, rewritten
        for ch, s in twin.sensors.items():
            np.testing.assert_allclose(pixel(view, img, s.position),
                                       rgb255(colorize([last[ch]], 0.0, 100.0)[0]), atol=8)


def test_push_coalesces_latest_from_threads(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    calls = []

    class Counting:
        channels, quantity, unit, n_vertices = (model.channels, model.quantity, model.unit,
                                                model.n_vertices)

        def update(self, values):  # type: ignore[no-untyped-def]
            calls.append(dict(values))
            return model.update(values)

    with View(twin, Counting(), off_screen=True, window_size=(64, 48)) as view:
        def writer(ch: str) -> None:
            for i in range(500):
                view.push({ch: float(i)})

        threads = [threading.Thread(target=writer, args=(ch,)) for ch in twin.sensors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        view.render()
        assert len(calls) == 1  # 2000 pushes, one field update
        assert all(view.values[ch] == 499.0 for ch in twin.sensors)
        assert view.values_per_second() > 0


def test_bad_field_model_is_one_line(view_plate) -> None:  # type: ignore[no-untyped-def]
    from twin3d.errors import FieldError

    twin, model = view_plate
    with pytest.raises(FieldError, match="not a mesh of the stage"):
        View(twin, {"/Nope": model}, off_screen=True, window_size=(64, 48))


def test_bridge_stream_into_view(view_plate) -> None:  # type: ignore[no-untyped-def]
    bridge_mod = pytest.importorskip("twin3d.bridge.server")
    from twin3d.bridge import Client

    twin, model = view_plate
    rng = np.random.default_rng(7)
    batches = [{ch: float(v) for ch, v in zip(twin.sensors, rng.uniform(5, 95, 4), strict=False)}
               for _ in range(30)]
    frames = 12

    async def main() -> tuple[View, set[int], set[int]]:
        bridge = bridge_mod.Bridge()
        await bridge.start("127.0.0.1", 0)
        view = View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
                    field_range=(0.0, 100.0), show_sensors=False)
        view.set_camera(**TOP)
        first: set[int] = set()
        subscribed = asyncio.Event()
        try:
            task = asyncio.create_task(feed_bridge(view, bridge.url, max_frames=None, fps=60,
                                                   subscribed=subscribed))
            for _ in range(200):
                if subscribed.is_set():
                    break
                await asyncio.sleep(0.02)
            assert subscribed.is_set()
            first = view.actor_ids()
            async with Client(bridge.url) as pub:
                for b in batches:
                    await pub.publish_many([(ch, v, 0.0) for ch, v in b.items()])
                    await asyncio.sleep(0.01)
                await pub.flush()
            for _ in range(300):  # until the last values are in (latest per channel wins)
                if view.values == batches[-1]:
                    break
                await asyncio.sleep(0.02)
            start = view.frames
            while view.frames < start + frames:
                await asyncio.sleep(0.02)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return view, first, view.actor_ids()
        finally:
            await bridge.stop()

    view, first, after = asyncio.run(main())
    try:
        assert view.frames >= frames
        assert after == first  # no actor added or removed after the first frame
        assert view.values == batches[-1]
        img = view.screenshot()
        for ch, s in twin.sensors.items():
            np.testing.assert_allclose(pixel(view, img, s.position),
                                       rgb255(colorize([batches[-1][ch]], 0.0, 100.0)[0]),
                                       atol=8, err_msg=ch)
    finally:
        view.close()


def test_replay_recording_into_view(view_plate, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("twin3d.bridge.server")
    from twin3d.bridge import Bridge, read_recording
    from twin3d.model import Sample

    twin, model = view_plate
    rec = tmp_path / "rec.sqlite"
    rows = [Sample(ch, 10.0 * k + i, 100.0 + 0.01 * k) for k in range(5)
            for i, ch in enumerate(twin.sensors)]

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start("127.0.0.1", 0)
        try:
            await bridge.ingest(rows, "test", wait_commit=True)
        finally:
            await bridge.stop()

    asyncio.run(record())
    samples = list(read_recording(rec))
    assert len(samples) == len(rows)
    with View(twin, model, off_screen=True, window_size=SIZE, lighting=False,
              field_range=(0.0, 100.0), show_sensors=False) as view:
        view.set_camera(**TOP)
        asyncio.run(feed_recording(view, samples, speed=50.0, fps=60.0))
        assert view.connection == "replay at 50x speed, finished"
        last = {ch: 40.0 + i for i, ch in enumerate(twin.sensors)}
        assert view.values == last
        img = view.screenshot()
        for ch, s in twin.sensors.items():
            np.testing.assert_allclose(pixel(view, img, s.position),
                                       rgb255(colorize([last[ch]], 0.0, 100.0)[0]), atol=8)


def test_hard_edges_split_points_but_field_follows_stage_vertices(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, _ = view_plate

    class PerVertex:  # field = reading × stage vertex index, on the 8-vertex block
        channels, quantity, unit, n_vertices = ["plate/tc1"], "temperature", "degC", 8
        W = np.arange(8, dtype=np.float32).reshape(8, 1)

        def update(self, values):  # type: ignore[no-untyped-def]
            return self.W[:, 0] * values["plate/tc1"]

    block_path = next(m.path for m in twin.meshes if m.path.endswith("Block"))
    with View(twin, {block_path: PerVertex()}, off_screen=True, window_size=(64, 48)) as view:
        view.push({"plate/tc1": 2.0})
        view.render()
        block = next(ma for ma in view.mesh_actors if ma.path == block_path)
        assert block.polydata.n_points == 24  # each cube corner split in three
        np.testing.assert_array_equal(block.field_at_vertices(), 2.0 * np.arange(8))
        pts = np.asarray(block.polydata.points)
        stage_pts = next(m.points for m in twin.meshes if m.path == block_path)
        np.testing.assert_allclose(pts, stage_pts[block.vertex_ids], atol=1e-6)
        np.testing.assert_array_equal(block.field, 2.0 * block.vertex_ids)


XVFB_SCRIPT = """
import asyncio, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import view_scene as c
from twin3d.colormap import colorize
from twin3d.model import Sample
from twin3d.view import View, feed_recording
twin, model = c.make_plate(Path(tempfile.mkdtemp()))
view = View(twin, model, off_screen=False, window_size=(320, 240), field_range=(0.0, 100.0),
            lighting=False, show_sensors=False)
view.set_camera((0.2, 0.15, 0.75), (0.2, 0.15, 0.0), (0.0, 1.0, 0.0))
samples = [Sample(ch, 20.0 * (i + 1), 0.001 * i) for i, ch in enumerate(twin.sensors)]
asyncio.run(feed_recording(view, samples, fps=30, max_frames=8))
img = view.screenshot()
err = max(abs(img[r, c_].astype(float) - colorize([view.values[ch]], 0, 100)[0] * 255).max()
          for ch, s in twin.sensors.items() for r, c_ in [view.screen_position(s.position)])
print(json.dumps({"window": type(view.plotter.ren_win).__name__, "frames": view.frames,
                  "err": float(err)}))
view.close()
"""


@pytest.mark.slow
def test_window_with_a_display_under_xvfb(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import require_binary

    xvfb = require_binary("xvfb-run", "xvfb xauth")
    script = tmp_path / "window.py"
    script.write_text(XVFB_SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VTK_DEFAULT_OPENGL_WINDOW", "DISPLAY")}
    out = subprocess.run([xvfb, "-a", sys.executable, str(script), str(Path(__file__).parent)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["window"] == "vtkXOpenGLRenderWindow"  # a real X window, not EGL
    assert res["frames"] >= 8 and res["err"] <= 8
