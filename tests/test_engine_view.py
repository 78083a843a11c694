"""What the engine's judgement looks like in the view: a suspect sensor's glyph and label, the
open alarms of a real bridge in the status line, and a what-if's field minus the live one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from engine_plate import MESH, make_stage, steady

from twin3d.colormap import ALARM_COLORS, colorize

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


def test_the_difference_of_a_what_if_and_live(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``twin3d whatif --set heater=x2`` on noise-free readings, then the view of its temperature
    minus the live one: at each thermocouple the colour of the forward model's own difference
    (the heater's share of its reading), red where the scenario is warmer; the bar names it."""
    from twin3d.cli import main
    from twin3d.engine.core import Engine
    from twin3d.twin import Twin
    from twin3d.view.command import difference_models, shown_field_models
    from twin3d.view.difference import DIFFERENCE_CMAP

    stage = make_stage(tmp_path)
    engine = Engine(stage)
    heat = engine.models[MESH]["temperature"]
    inputs = steady(0.0)
    now = heat.readings({n: inputs[n] for n in heat.inputs})
    engine.twin.update(now)
    engine.twin.save()
    assert main(["whatif", str(stage), "--set", "heater=x2"]) == 0
    doubled = heat.readings({n: inputs[n] * (2.0 if n == "source:heater" else 1.0) for n in heat.inputs})
    expected = {c: doubled[c] - now[c] for c in now}
    assert expected["plate/tc5"] > 5.0 and 0.0 < expected["plate/tc7"] < 1.0   # above the heater; by a bolt
    scale = 2.0 * expected["plate/tc5"]

    twin = Twin.open(stage)
    field, models = shown_field_models(twin, "temperature")
    shown = difference_models(twin, field, models, "heater_x2")
    title = "temperature: heater_x2 − live (K)"
    top = dict(position=(0.1016, 0.1524, 0.7), focal_point=(0.1016, 0.1524, 0.0), up=(0.0, 1.0, 0.0))
    with View(twin, shown, off_screen=True, window_size=SIZE, field_range=(-scale, scale),
              cmap=DIFFERENCE_CMAP, title=shown[MESH].title, symmetric=True, show_sensors=False,
              lighting=False) as view:
        view.set_camera(**top)
        img = view.screenshot(tmp_path / "difference.png")
        assert view.color_bar.title.GetInput() == title
        for channel in ("plate/tc5", "plate/tc2", "plate/tc7"):
            r, c = view.screen_position(twin.sensors[channel].position)
            got = img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0)
            want = colorize([expected[channel]], -scale, scale, DIFFERENCE_CMAP)[0] * 255.0
            np.testing.assert_allclose(got, want, atol=8, err_msg=channel)
            assert got[0] > got[2], channel                          # red: warmer than now
    with View(twin, shown, off_screen=True, window_size=SIZE, cmap=DIFFERENCE_CMAP,
              symmetric=True) as view:
        view.render()
        lo, hi = view.scalar_range or (0.0, 0.0)
        assert lo == -hi and hi >= expected["plate/tc5"] - 0.05     # symmetric about 0

    png = tmp_path / "view.png"
    argv = ["view", str(stage), "--field", "temperature", "--size", "480x360", "-o", str(png)]
    assert main([*argv, "--difference", "heater_x2"]) == 0 and png.stat().st_size > 0
    capsys.readouterr()
    assert main([*argv, "--difference", "heater_x3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no scenario 'heater_x3'" in err and "(scenarios: heater_x2)" in err
    assert main(["view", str(stage), "--difference", "heater_x2", "-o", str(png)]) == 2
    assert "--field temperature" in capsys.readouterr().err
