"""What the engine's judgement looks like in the view: a suspect sensor's glyph and label, and the
open alarms of a real bridge in the status line."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from twin3d.colormap import ALARM_COLORS

pv = pytest.importorskip("pyvista")
pytestmark = pytest.mark.render

if not pv.system_supports_plotting():  # pragma: no cover - CI runs with EGL or xvfb
    pytest.skip("no OpenGL context (EGL/OSMesa/X)", allow_module_level=True)

from twin3d.view import View, feed_bridge  # noqa: E402

SIZE = (480, 360)
TOP = dict(position=(0.2, 0.15, 0.75), focal_point=(0.2, 0.15, 0.0), up=(0.0, 1.0, 0.0))


def test_a_suspect_sensor_has_its_own_glyph_colour_and_label(view_plate) -> None:  # type: ignore[no-untyped-def]
    twin, model = view_plate
    with View(twin, model, off_screen=True, window_size=SIZE, field_range=(20.0, 100.0)) as view:
        view.set_camera(**TOP)
        view.push({"plate/tc1": 30.0, "plate/tc2": 40.0, "twin/suspect/plate/tc1": 1.0,
                   "twin/suspect/plate/tc2": 0.0})
        img = view.screenshot()
        assert view.sensor_state("plate/tc1") == "suspect" and view.sensor_state("plate/tc2") == "ok"
        r, c = view.screen_position(twin.sensors["plate/tc1"].position)
        got = img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(got, np.asarray(ALARM_COLORS["suspect"]) * 255.0, atol=3)
        assert view.label_text("plate/tc1") == "tc1  30 °C  SUSPECT"
        assert "1 suspect" in view.status.GetText(0)
        view.push({"twin/suspect/plate/tc1": 0.0})       # recovered
        view.render()
        assert view.sensor_state("plate/tc1") == "ok"


def test_open_alarms_of_the_bridge_are_in_the_status_line(view_plate) -> None:  # type: ignore[no-untyped-def]
    from twin3d.bridge import Bridge, Client

    twin, model = view_plate

    async def main() -> tuple[str, str]:
        bridge = Bridge()
        await bridge.start("127.0.0.1", 0)
        view = View(twin, model, off_screen=True, window_size=SIZE, show_sensors=False)
        subscribed = asyncio.Event()
        try:
            task = asyncio.create_task(feed_bridge(view, bridge.url, fps=30, subscribed=subscribed))
            await asyncio.wait_for(subscribed.wait(), 20)
            async with Client(bridge.url) as engine:
                await engine.publish("plate/tc3", 99.0)
                await engine.raise_alarm("plate/tc3", "alarm_high", value=99.0, limit=95.0)
                while not view.alarms:
                    await asyncio.sleep(0.02)
                frame = view.frames
                while view.frames < frame + 2:
                    await asyncio.sleep(0.02)
                raised = view.status.GetText(0)
                await engine.ack_alarm(next(iter(view.alarms)))
                await engine.raise_alarm("plate/tc3", "alarm_high", active=False)
                while next(iter(view.alarms.values()))["state"] != "cleared":
                    await asyncio.sleep(0.02)
                frame = view.frames
                while view.frames < frame + 2:
                    await asyncio.sleep(0.02)
                cleared = view.status.GetText(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return raised, cleared
        finally:
            view.close()
            await bridge.stop()

    raised, cleared = asyncio.run(asyncio.wait_for(main(), 60))
    assert "1 open alarm (1 unacknowledged)" in raised
    assert "open alarm" not in cleared
