"""The engine end to end through a real bridge (WebSocket on 127.0.0.1, tokens, a recording):
``twin3d engine`` as its own process, the plate's plant publishing, an operator acknowledging the
alarm the engine raised (a viewer may not), the alarm cleared and exported with the derived
channels; and the ``[[engine]]`` table of bridge.toml starting the engine in the bridge."""

from __future__ import annotations

import asyncio
import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_plate import make_stage, plant_for, steady

from twin3d.bridge import Bridge, Client, load_config
from twin3d.cli import main
from twin3d.engine.core import Engine
from twin3d.errors import AdapterError, AuthError

TOKENS = """
[[token]]
name = "engine"
token = "engine-secret"
publish = ["twin/*"]
subscribe = ["plate/*"]
alarms = ["raise"]

[[token]]
name = "sensors"
token = "sensor-secret"
publish = ["plate/*"]

[[token]]
name = "operator"
token = "operator-secret"
subscribe = ["*"]
alarms = ["acknowledge"]

[[token]]
name = "viewer"
token = "viewer-secret"
subscribe = ["*"]
"""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_stage(tmp_path_factory.mktemp("bridge_plate"))


async def _lockstep(sensors: Client, seen: dict[str, float], plant: object, t0: float,
                    start: float, stop: float) -> None:
    """Publish the plant's rounds one at a time, each once the engine has answered the last."""
    for k in range(round(start * 10), round(stop * 10)):
        batch = plant.samples(k / 10)  # type: ignore[attr-defined]
        await sensors.publish_many(batch)
        stamp = batch[0].time
        while seen.get("twin/input/heater", -1.0) < stamp:
            await asyncio.sleep(0.001)


def test_engine_process_alarm_acknowledged_cleared_and_exported(tmp_path: Path, stage: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(TOKENS)
    rec = tmp_path / "run.sqlite"
    engine_model = Engine(stage)                       # the plant uses the same physics
    hot = {"heater": 300.0}

    def inputs(t: float) -> dict[str, float]:
        base = steady(t)
        if 15.0 <= t < 35.0:
            base["source:heater"] = hot["heater"]
        return base

    plant = plant_for(engine_model, inputs, seed=21)
    log = tmp_path / "engine.log"
    codes: list[int | None] = []

    async def scenario() -> tuple[dict, dict, set[str], list]:
        bridge = Bridge(load_config(config), record=rec)
        await bridge.start("127.0.0.1", 0)
        plant.t0 = time.time()
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "twin3d", "engine", str(stage), "--bridge",
                                     bridge.url, "--token", "engine-secret"], stdout=out, stderr=subprocess.STDOUT)
        try:
            async with Client(bridge.url, "sensor-secret") as sensors, \
                    Client(bridge.url, "operator-secret") as op, Client(bridge.url, "viewer-secret") as viewer:
                seen: dict[str, float] = {}
                channels: set[str] = set()
                sub = await viewer.subscribe(["twin/*", "plate/*"])
                await op.subscribe(["plate/*"])

                async def watch() -> None:
                    async for batch in sub:
                        for s in batch:
                            channels.add(s.channel)
                            seen[s.channel] = max(seen.get(s.channel, -1.0), s.time)

                watcher = asyncio.ensure_future(watch())
                while "twin/input/heater" not in seen:         # the engine is up and publishing
                    await sensors.publish_many(plant.samples(0.0))
                    await asyncio.sleep(0.2)
                    assert proc.poll() is None, log.read_text()
                await _lockstep(sensors, seen, plant, plant.t0, 0.1, 20.0)
                raised = await op.wait_alarm(lambda a: a["channel"] == "plate/tc5"
                                             and a["kind"] == "alarm_high", 30)
                await viewer.ack_alarm(raised["id"])            # a viewer may look, not acknowledge
                with pytest.raises(AuthError, match="may not acknowledge alarms"):
                    await viewer.wait_alarm(lambda a: a["id"] == raised["id"]
                                            and a["state"] == "acknowledged", 10)
                await op.ack_alarm(raised["id"])
                await op.wait_alarm(lambda a: a["id"] == raised["id"] and a["state"] == "acknowledged", 10)
                await _lockstep(sensors, seen, plant, plant.t0, 20.0, 50.0)
                cleared = await op.wait_alarm(lambda a: a["id"] == raised["id"] and a["state"] == "cleared", 30)
                await sensors.flush(30)
                watcher.cancel()
                return raised, cleared, channels, viewer.errors
        finally:
            proc.send_signal(signal.SIGINT)     # it flushes to the bridge: keep the loop running
            try:
                codes.append(await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30))
            finally:
                if proc.poll() is None:
                    proc.kill()
                await bridge.stop()

    raised, cleared, channels, viewer_errors = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert codes == [0], log.read_text()                   # Ctrl-C: a clean stop
    assert raised["value"] > 95.0 and raised["limit"] == 95.0
    assert cleared["acknowledged_by"] == "operator" and cleared["cleared"] >= cleared["acknowledged"]
    assert ("forbidden" in [code for code, _ in viewer_errors])
    for name in ("twin/virtual/under_heater", "twin/virtual/under_heater/sigma", "twin/health/plate/tc1",
                 "twin/suspect/plate/tc1", "twin/input/heater", "twin/input/ambient"):
        assert name in channels, name
    out = tmp_path / "alarms.csv"
    assert main(["export", str(rec), "--alarms", "-o", str(out)]) == 0
    rows = [r for r in csv.DictReader(out.open()) if r["channel"] == "plate/tc5" and r["kind"] == "alarm_high"]
    assert [(r["state"], r["acknowledged_by"]) for r in rows] == [("cleared", "operator")]
    samples = tmp_path / "run.csv"
    assert main(["export", str(rec), "-o", str(samples)]) == 0
    recorded = {r["channel"] for r in csv.DictReader(samples.open())}
    assert {"twin/virtual/under_heater", "twin/health/plate/tc5", "twin/input/heater"} <= recorded
    assert "engine on" in log.read_text()


def test_engine_table_of_bridge_toml_runs_the_engine_in_the_bridge(tmp_path: Path, stage: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(TOKENS + f'\n[[engine]]\nname = "plate"\nstage = "{stage}"\ntoken = "engine-secret"\n')
    plant = plant_for(Engine(stage), seed=22)

    async def scenario() -> set[str]:
        bridge = Bridge(load_config(config))
        await bridge.start("127.0.0.1", 0)
        try:
            async with Client(bridge.url, "sensor-secret") as sensors, Client(bridge.url, "viewer-secret") as viewer:
                sub = await viewer.subscribe(["twin/*"])
                got: set[str] = set()
                t = 0.0
                while "twin/virtual/under_heater" not in got or "twin/health/plate/tc1" not in got:
                    await sensors.publish_many(plant.samples(t))
                    t += 0.1
                    try:
                        batch = await asyncio.wait_for(anext(sub), 0.05)
                        got |= {s.channel for s in batch}
                    except TimeoutError:
                        pass
                return got
        finally:
            await bridge.stop()

    got = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert "twin/input/heater" in got
    bad = tmp_path / "bad.toml"
    bad.write_text(TOKENS + '\n[[engine]]\nstage = "missing.usda"\n')

    async def refuse() -> None:
        bridge = Bridge(load_config(bad))
        await bridge.start("127.0.0.1", 0)

    with pytest.raises(AdapterError, match=r"\[\[engine\]\] #1: stage .*missing.usda' is not a file"):
        asyncio.run(refuse())
