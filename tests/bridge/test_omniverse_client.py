"""streaming/omniverse_client.py against a real bridge and a real bound stage (pxr only)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

from plate_stage import bound_plate, plate_templates  # noqa: F401
from pxr import Usd, UsdGeom

from twin3d.bridge import Bridge, Client
from twin3d.colormap import ALARM_COLORS

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "streaming" / "omniverse_client.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("omniverse_client", CLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markers_follow_the_bridge_live(bound_plate: Path) -> None:  # noqa: F811
    oc = _module()
    stage = Usd.Stage.Open(str(bound_plate))
    stage.SetEditTarget(Usd.EditTarget(stage.GetSessionLayer()))  # as in Omniverse
    base = bound_plate.read_bytes()

    async def run() -> None:
        bridge = Bridge()
        await bridge.start("127.0.0.1", 0)
        task = asyncio.create_task(oc.follow(stage, bridge.url))
        try:
            async with Client(bridge.url) as pub:
                await asyncio.sleep(0.5)  # the subscription is in place
                await pub.publish_many([("plate/tc1", 50.0, 1.0), ("plate/tc5", 85.0, 1.0),
                                        ("plate/tc3", 99.0, 1.0), ("plate/sg1", -700.0, 1.0)])
                await pub.flush()
                for _ in range(100):
                    if stage.GetPrimAtPath(_path(stage, "plate/sg1")).GetAttribute(
                            "twin:value").Get() is not None:
                        break
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await bridge.stop()

    asyncio.run(run())
    expect = {"plate/tc1": (50.0, "ok"), "plate/tc5": (85.0, "warn"),
              "plate/tc3": (99.0, "alarm"), "plate/sg1": (-700.0, "alarm")}
    for channel, (value, state) in expect.items():
        prim = stage.GetPrimAtPath(_path(stage, channel))
        assert prim.GetAttribute("twin:value").Get() == value
        assert prim.GetAttribute("twin:state").Get() == state
        color = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()[0]
        assert tuple(round(c, 3) for c in color) == tuple(round(c, 3) for c in ALARM_COLORS[state])
    assert bound_plate.read_bytes() == base  # Omniverse-style: only the session layer changed


def _path(stage: Usd.Stage, channel: str) -> str:
    return str(_module().sensor_prims(stage)[channel].GetPath())


def test_file_mode_saves_the_latest_values(bound_plate: Path) -> None:  # noqa: F811
    live = bound_plate.with_name("plate.session.usda")
    live.write_text(f'#usda 1.0\n(\n    defaultPrim = "Plate"\n'
                    f'    subLayers = [@./{bound_plate.name}@]\n)\n')

    async def run() -> bytes:
        bridge = Bridge()
        await bridge.start("127.0.0.1", 0)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(CLIENT), str(live), bridge.url, "--seconds", "4",
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            async with Client(bridge.url) as pub:
                for i in range(25):
                    await pub.publish("plate/tc2", 60.0 + i)
                    await asyncio.sleep(0.1)
                await pub.flush()
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, out
            return out
        finally:
            await bridge.stop()

    out = asyncio.run(run())
    assert b"saved the latest values of 15 sensors" in out
    stage = Usd.Stage.Open(str(live))
    prim = _module().sensor_prims(stage)["plate/tc2"]
    assert prim.GetAttribute("twin:value").Get() == 84.0
    assert prim.GetAttribute("twin:state").Get() == "warn"
