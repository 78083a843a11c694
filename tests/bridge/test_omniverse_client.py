"""The Omniverse extension's twin-side logic (omni.twin3d.live's follower: pxr + websockets)
against a real bridge and a real bound stage; the Kit window is not run here."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from bridge_helpers import run
from pxr import Usd, UsdGeom

from twin3d.bridge import Bridge, BridgeConfig, Client
from twin3d.bridge.config import Role

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "streaming" / "omni.twin3d.live"
FOLLOWER = EXTENSION / "omni" / "twin3d" / "live" / "follower.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("follower", FOLLOWER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def test_the_extension_folder_is_a_kit_extension() -> None:
    import tomllib

    config = tomllib.loads((EXTENSION / "config" / "extension.toml").read_text())
    assert config["python"]["module"] == [{"name": "omni.twin3d.live"}]
    assert (EXTENSION / "omni" / "twin3d" / "live" / "__init__.py").is_file()
    assert not (EXTENSION / "omni" / "__init__.py").exists()   # never shadow Kit's own omni package
    assert (EXTENSION / config["package"]["readme"]).is_file()


def test_markers_follow_the_bridge_in_the_session_layer(bound_plate: Path) -> None:
    fo = _module()
    stage = Usd.Stage.Open(str(bound_plate))
    base = bound_plate.read_bytes()

    async def go() -> object:
        bridge = Bridge()
        await bridge.start("127.0.0.1", 0)
        follower = fo.Follower(stage, bridge.url)
        follower.start()
        try:
            await _until(lambda: follower.status.startswith("connected"))
            async with Client(bridge.url) as pub:
                await pub.publish_many([("plate/tc1", 50.0, 1.0), ("plate/tc5", 85.0, 1.0),
                                        ("plate/tc3", 99.0, 1.0), ("plate/sg1", -700.0, 2.0)])
                await pub.flush()
                await _until(lambda: follower.values >= 4)
        finally:
            await follower.stop()
            await bridge.stop()
        return follower

    follower = run(go())
    assert follower.channels == 15 and follower.last_time == 2.0 and not follower.errors
    expect = {"plate/tc1": (50.0, "ok"), "plate/tc5": (85.0, "warn"),
              "plate/tc3": (99.0, "alarm"), "plate/sg1": (-700.0, "alarm")}
    prims = fo.sensor_prims(stage)
    session = stage.GetSessionLayer()
    for channel, (value, state) in expect.items():
        prim = prims[channel]
        assert prim.GetAttribute("twin:value").Get() == value
        assert prim.GetAttribute("twin:state").Get() == state
        color = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()[0]
        assert tuple(round(c, 4) for c in color) == fo.COLORS[state]
        assert session.GetAttributeAtPath(prim.GetPath().AppendProperty("twin:value")) is not None
    assert bound_plate.read_bytes() == base  # only the session layer changed


def test_colours_agree_with_what_twin3d_authors(bound_plate: Path) -> None:
    """The extension must not import twin3d, so it keeps its own copy of the state colours."""
    import twin3d

    fo = _module()
    twin = twin3d.Twin.open(bound_plate)
    twin.update({"plate/tc1": 50.0, "plate/tc5": 85.0, "plate/tc3": 99.0})
    prims = fo.sensor_prims(twin.stage)
    for channel in ("plate/tc1", "plate/tc5", "plate/tc3"):
        prim = prims[channel]
        state = prim.GetAttribute("twin:state").Get()
        color = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()[0]
        assert tuple(round(c, 3) for c in color) == tuple(round(c, 3) for c in fo.COLORS[state]), state


def test_a_bridge_that_is_down_is_retried_and_a_wrong_token_is_refused(bound_plate: Path) -> None:
    fo = _module()
    stage = Usd.Stage.Open(str(bound_plate))

    async def go() -> tuple[str, str]:
        bridge = Bridge(BridgeConfig(tokens={"view-secret-1": Role("hmi", (), ("*",))}))
        await bridge.start("127.0.0.1", 0)
        port = bridge.port
        await bridge.stop()
        follower = fo.Follower(stage, f"ws://127.0.0.1:{port}", "view-secret-1")
        follower.start()
        await _until(lambda: "retrying" in follower.status)
        down = follower.status
        bridge = Bridge(BridgeConfig(tokens={"view-secret-1": Role("hmi", (), ("*",))}))
        await bridge.start("127.0.0.1", port)          # the bridge comes back: it reconnects
        await _until(lambda: follower.status.startswith("connected"), 20)
        await follower.stop()
        wrong = fo.Follower(stage, bridge.url, "wrong-token-1")
        task = wrong.start()
        await asyncio.wait_for(task, 10)               # gives up: retrying cannot fix a token
        await bridge.stop()
        return down, wrong.status

    down, refused = run(go(), timeout=60)
    assert down.startswith("disconnected") and "retrying" in down
    assert refused.startswith("refused") and "token" in refused


def test_a_stage_without_bindings_is_one_clear_error(tmp_path: Path) -> None:
    fo = _module()
    stage = Usd.Stage.CreateInMemory()
    with pytest.raises(ValueError, match="no sensors bound on this stage: run twin3d bind first"):
        fo.Follower(stage, "ws://127.0.0.1:1")


def test_file_mode_saves_the_latest_values(bound_plate: Path) -> None:
    live = bound_plate.with_name("plate.session.usda")
    live.write_text(f'#usda 1.0\n(\n    defaultPrim = "Plate"\n'
                    f'    subLayers = [@./{bound_plate.name}@]\n)\n')

    async def go() -> bytes:
        bridge = Bridge()
        await bridge.start("127.0.0.1", 0)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(FOLLOWER), str(live), bridge.url, "--seconds", "4",
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

    out = run(go(), timeout=90)
    assert b"saved the latest values of 15 sensors" in out
    stage = Usd.Stage.Open(str(live))
    prim = _module().sensor_prims(stage)["plate/tc2"]
    assert prim.GetAttribute("twin:value").Get() == 84.0
    assert prim.GetAttribute("twin:state").Get() == "warn"
