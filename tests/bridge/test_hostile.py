"""Hostile and careless peers, each observed from outside: real ``twin3d serve`` processes (or an
in-process bridge), plain WebSocket clients, the server's memory read from /proc."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from pathlib import Path

import numpy as np
import websockets
from bridge_helpers import receive_samples, run, serve_process, server_log

from twin3d.bridge import Bridge, BridgeConfig, Client
from twin3d.bridge.config import BridgeLimits
from twin3d.bridge.fanout import Chunk, Matcher, Subscriber
from twin3d.bridge.protocol import encode_alias, encode_binary
from twin3d.model import Sample


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def write_config(tmp: Path, **limits: float) -> Path:
    path = tmp / "bridge.toml"
    path.write_text("[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
    return path


async def connect_small(url: str, rcvbuf: int = 4096) -> websockets.ClientConnection:
    """A client whose kernel receive buffer is small, so that not reading pushes back at once."""
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    return await websockets.connect(url, sock=sock, max_queue=1)


# --- freshness -----------------------------------------------------------------------------------

def test_values_that_waited_too_long_become_a_gap_before_the_latest() -> None:
    """The rule itself: chunks older than max_staleness are never sent as if live."""
    frames: list[dict] = []

    async def go() -> None:
        names = ["a", "b"]
        sub = Subscriber(Matcher(["*"], ["*"]), names, lambda f: frames.append(json.loads(f)),
                         lambda: asyncio.sleep(0), max_staleness=1.0)
        old = time.monotonic() - 2.0
        for k in range(5):   # a backlog of 5 chunks, 2 s old: a viewer that fell behind
            sub.offer(Chunk(names, np.array([0, 1]), np.array([k, k + 0.5]), np.array([k, -k], float),
                            np.array([-1, -1]), old))
        task = asyncio.ensure_future(sub.run())
        await asyncio.sleep(0.05)
        sub.offer(Chunk(names, np.array([1]), np.array([9.0]), np.array([9.0]), np.array([-1]),
                        time.monotonic()))   # fresh: sent as it is
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(go())
    assert frames[0] == {"type": "gap", "channels": {"a": 4, "b": 4}, "skipped": 8, "reason": "stale"}
    assert frames[1]["samples"] == [{"channel": "a", "value": 4.0, "time": 4.0},
                                    {"channel": "b", "value": -4.0, "time": 4.5}]
    assert frames[2] == {"type": "sample", "channel": "b", "value": 9.0, "time": 9.0}
    assert len(frames) == 3


def test_a_stalled_viewer_is_told_what_it_skipped_and_why(tmp_path: Path) -> None:
    config = write_config(tmp_path, max_staleness=0.3)

    async def go(url: str) -> tuple[list[dict], int]:
        viewer = await connect_small(url)
        await viewer.send(json.dumps({"type": "subscribe", "channels": ["line/*"]}))
        assert json.loads(await viewer.recv())["type"] == "subscribed"
        n = 0
        async with Client(url) as pub:    # 3 s at ~2k values/s while the viewer reads nothing
            t_end = time.monotonic() + 3.0
            while time.monotonic() < t_end:
                await pub.publish_many([(f"line/c{i % 8}", float(n + i), time.time()) for i in range(20)])
                n += 20
                await asyncio.sleep(0.01)
            await pub.flush()
        frames: list[dict] = []
        values = 0
        while values + sum(f["skipped"] for f in frames if f["type"] == "gap") < n:
            msg = json.loads(await asyncio.wait_for(viewer.recv(), 10))
            frames.append(msg)
            values += len(msg.get("samples", [msg] if msg["type"] == "sample" else []))
        await viewer.close()
        return frames, n

    with serve_process(tmp_path, "--config", str(config)) as (_, url):
        frames, n = run(go(url), timeout=60)
    gaps = [f for f in frames if f["type"] == "gap"]
    values = [d for f in frames for d in f.get("samples", [f] if f["type"] == "sample" else [])]
    assert gaps and {g["reason"] for g in gaps} <= {"stale", "overflow"} and "stale" in {g["reason"] for g in gaps}
    assert len(values) + sum(g["skipped"] for g in gaps) == n          # every value: seen or counted
    assert [d["value"] for d in values] == sorted(d["value"] for d in values)   # never older after newer


def test_pong_tells_a_publisher_how_long_its_acks_lag(tmp_path: Path) -> None:
    async def go() -> tuple[float, float]:
        bridge = Bridge(record=tmp_path / "run.db")
        await bridge.start()
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            idle = json.loads(await ws.recv())["ack_lag"]
            await ws.send(encode_alias({"p/x": 0}))
            frame = encode_binary(np.zeros(50_000, np.uint32), np.arange(50_000.0), np.ones(50_000), 1)
            await ws.send(frame)
            await ws.send(json.dumps({"type": "ping"}))       # answered before the commit lands
            replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        await bridge.stop()
        pong = next(r for r in replies if r["type"] == "pong")
        return idle, pong["ack_lag"]

    idle, busy = run(go())
    assert idle == 0.0 and busy > 0.0


# --- hostile subscribers -------------------------------------------------------------------------

def test_a_subscribe_with_too_many_globs_is_refused() -> None:
    async def go() -> dict:
        bridge = Bridge()
        await bridge.start()
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": [f"x{i}/*" for i in range(10_000)]}))
            reply = json.loads(await ws.recv())
        await bridge.stop()
        return reply

    reply = run(go())
    assert reply["code"] == "too_many" and "256" in reply["message"]


def test_matching_a_big_subscription_never_freezes_the_bridge() -> None:
    """While one viewer's 256 globs are matched against 100,000 channels, others are served."""
    order: list[str] = []

    async def go() -> None:
        bridge = Bridge()
        await bridge.start()
        for k in range(0, 100_000, 10_000):
            await bridge.ingest([Sample(f"site{i % 97}/line{i}/temp", 1.0, 1.0) for i in range(k, k + 10_000)],
                                "sim")
        async with websockets.connect(bridge.url) as heavy, websockets.connect(bridge.url) as other:
            await heavy.send(json.dumps({"type": "subscribe",
                                         "channels": [f"site{i}/*/t[ae]mp" for i in range(256)]}))
            assert json.loads(await heavy.recv())["type"] == "subscribed"

            async def snapshot() -> None:
                await receive_samples(heavy, lambda got: len(got) >= 100_000, timeout=60)
                order.append("snapshot")

            task = asyncio.ensure_future(snapshot())
            await asyncio.sleep(0.01)
            await other.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(other.recv(), 60))["type"] == "pong"
            order.append("pong")
            await task
        await bridge.stop()

    run(go(), timeout=120)
    assert order == ["pong", "snapshot"]


def test_metadata_for_a_viewer_that_never_reads_is_coalesced(tmp_path: Path) -> None:
    async def go(url: str, pid: int) -> float:
        viewer = await connect_small(url)
        await viewer.send(json.dumps({"type": "subscribe", "channels": ["*"]}))
        async with websockets.connect(url, max_size=None) as pub:
            await asyncio.sleep(0.2)
            before = rss_mb(pid)
            for k in range(300):   # ~800 KB each, the same 1,000 channels described again and again
                meta = {f"m/c{i}": {"unit": "degC", "note": f"{k:04d}" + "x" * 760} for i in range(1000)}
                text = json.dumps({"type": "meta", "channels": meta})
                assert len(text) < 1 << 20
                await pub.send(text)
            await pub.send(json.dumps({"type": "ping"}))
            while json.loads(await pub.recv())["type"] != "pong":
                pass
            grown = rss_mb(pid) - before
        viewer.transport.abort()
        return grown

    config = write_config(tmp_path, send_timeout=600)
    with serve_process(tmp_path, "--config", str(config)) as (proc, url):
        grown = run(go(url, proc.pid), timeout=120)
    assert grown < 60, f"the bridge grew by {grown:.0f} MB for one viewer that reads nothing"


def test_a_viewer_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    config = write_config(tmp_path, send_timeout=1.0)

    async def go(url: str) -> int | None:
        viewer = await connect_small(url)
        await viewer.send(json.dumps({"type": "subscribe", "channels": ["*"]}))
        async with Client(url) as pub:
            for k in range(40):    # far more than the viewer's buffers take
                await pub.publish_many([(f"d/c{i}", float(k), time.time()) for i in range(1000)])
                await asyncio.sleep(0.05)
            await pub.flush()
        try:
            while True:
                await asyncio.wait_for(viewer.recv(), 10)
        except websockets.ConnectionClosed:
            return viewer.close_code
        finally:
            await viewer.close()

    with serve_process(tmp_path, "--config", str(config)) as (_, url):
        code = run(go(url), timeout=60)
    log = server_log(tmp_path)
    assert "in 1 s (send_timeout): it does not read" in log, log
    assert code in (1008, 1006)


# --- hostile publishers --------------------------------------------------------------------------

def test_failed_handshakes_leave_nothing_behind(tmp_path: Path) -> None:
    token = tmp_path / "bridge.toml"
    token.write_text('[[token]]\nname = "plc"\ntoken = "pub-secret-1"\npublish = ["*"]\n')

    def requests(port: int, n: int) -> None:
        for _ in range(n):   # a valid token, but a plain GET: the upgrade fails (426)
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pub-secret-1\r\n"
                          b"X-Pad: " + b"p" * 8000 + b"\r\n\r\n")
                s.recv(4096)

    with serve_process(tmp_path, "--config", str(token)) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        requests(port, 500)
        before = rss_mb(proc.pid)
        requests(port, 5000)
        grown = rss_mb(proc.pid) - before
    assert grown < 15, f"{grown:.0f} MB kept after 5,000 failed handshakes"


def test_announced_aliases_are_not_channels_until_they_carry_a_sample(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> dict:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with websockets.connect(bridge.url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "alias", "channels": {f"ph/c{i}": i for i in range(30_000)}}))
            await ws.send(encode_binary(np.array([7], np.uint32), np.array([1.0]), np.array([2.0]), 1))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await bridge.stop()
        return ack

    assert run(go()) == {"type": "ack", "seq": 1}
    with sqlite3.connect(rec) as db:
        assert db.execute("SELECT name FROM channels").fetchall() == [("ph/c7",)]


def test_the_bridge_holds_at_most_max_total_channels() -> None:
    async def go() -> list[dict]:
        bridge = Bridge(BridgeConfig(limits=BridgeLimits(max_total_channels=1000)))
        await bridge.start()
        replies = []
        for k in range(3):   # three connections of 400 new channels each: the third is refused
            async with websockets.connect(bridge.url) as ws:
                await ws.send(json.dumps({"type": "samples", "samples": [
                    {"channel": f"c{k}/{i}", "value": 1.0, "seq": i + 1} for i in range(400)]}))
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await bridge.stop()
        return replies

    first, second, third = run(go())
    assert first["type"] == second["type"] == "ack"
    assert third["code"] == "too_many_channels" and "max_total_channels" in third["message"]


def test_reconnecting_publishers_without_hello_are_one_source(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        for i in range(20):
            async with websockets.connect(bridge.url) as ws:
                await ws.send(json.dumps({"type": "sample", "channel": "p/x", "value": float(i), "seq": 1}))
                await asyncio.wait_for(ws.recv(), 5)
        await bridge.stop()

    run(go())
    with sqlite3.connect(rec) as db:
        assert db.execute("SELECT name FROM sources").fetchall() == [("anonymous@127.0.0.1",)]
        assert db.execute("SELECT count(*) FROM samples").fetchone() == (20,)


def test_a_heavy_publisher_does_not_starve_a_light_one(tmp_path: Path) -> None:
    """One publisher floods 1 MiB binary frames; another's acks keep coming while it does."""
    rec = tmp_path / "run.db"

    async def go() -> tuple[int, int]:
        bridge = Bridge(record=rec, synchronous="NORMAL")
        await bridge.start()
        heavy = await websockets.connect(bridge.url, max_size=None)
        await heavy.send(encode_alias({f"h/c{i}": i for i in range(100)}))
        frames = 60
        n = 50_000      # records per frame: 1 MiB
        alias = np.arange(n, dtype=np.uint32) % 100
        heavy_acked = 0

        async def flood() -> None:
            nonlocal heavy_acked
            for k in range(frames):
                await heavy.send(encode_binary(alias, np.full(n, float(k)), np.ones(n), k + 1))

        async def heavy_acks() -> None:
            nonlocal heavy_acked
            while heavy_acked < frames:
                heavy_acked = json.loads(await heavy.recv())["seq"]

        tasks = [asyncio.ensure_future(flood()), asyncio.ensure_future(heavy_acks())]
        await asyncio.sleep(0.2)
        light_done_while_heavy_pending = 0
        async with websockets.connect(bridge.url) as light:
            for seq in range(1, 6):
                await light.send(json.dumps({"type": "sample", "channel": "l/x", "value": 1.0, "seq": seq}))
                assert json.loads(await asyncio.wait_for(light.recv(), 60)) == {"type": "ack", "seq": seq}
                light_done_while_heavy_pending += heavy_acked < frames
        await asyncio.gather(*tasks)
        await heavy.close()
        await bridge.stop()
        return light_done_while_heavy_pending, heavy_acked

    light, heavy = run(go(), timeout=120)
    assert heavy == 60
    assert light == 5    # every light ack came while the flood was still being recorded


def test_an_open_bridge_beyond_loopback_says_so_loudly(tmp_path: Path) -> None:
    with serve_process(tmp_path, "--host", "0.0.0.0"):
        pass
    log = server_log(tmp_path)
    assert "without tokens" in log and "without TLS" in log and "any Origin" in log
