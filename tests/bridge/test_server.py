"""The bridge server with real WebSocket connections on 127.0.0.1 and a real SQLite recording."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sqlite3
from pathlib import Path

import pytest
import websockets
from bridge_helpers import run, serve_process, server_log

from twin3d.bridge import Bridge, Client, SyncClient, read_recording
from twin3d.cli import main
from twin3d.errors import ProtocolViolation
from twin3d.model import Sample


def test_client_publish_flush_records_everything_once(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> tuple[int, int]:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with Client(bridge.url, client_id="plc-1") as c:
            for i in range(5000):
                await c.publish(f"plate/tc{i % 7}", float(i), 1000.0 + i)
            await c.flush()
            acked = c.acked
        await bridge.stop()
        return acked, bridge.port

    acked, port = run(go())
    assert acked == 4999 and port > 0
    rows = list(read_recording(rec))
    assert [r.value for r in rows] == [float(i) for i in range(5000)]
    assert {r.source for r in rows} == {"plc-1"}
    assert rows[10].channel == "plate/tc3" and rows[10].time == 1010.0
    # the file is plain SQLite that people can query
    with sqlite3.connect(rec) as db:
        assert db.execute("SELECT count(*) FROM samples_named WHERE channel='plate/tc0'").fetchone()[0] == 715
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_json_publisher_and_subscriber_same_shapes() -> None:
    async def go() -> tuple[dict, dict, dict]:
        bridge = Bridge()
        await bridge.start()
        async with websockets.connect(bridge.url) as sub, websockets.connect(bridge.url) as pub:
            await sub.send(json.dumps({"type": "subscribe", "channels": ["plate/*"]}))
            assert json.loads(await sub.recv())["type"] == "subscribed"
            await pub.send(json.dumps({"type": "sample", "channel": "pump/flow", "value": 1.0, "seq": 1}))
            await pub.send(json.dumps({"type": "sample", "channel": "plate/tc3", "value": 81.5,
                                       "time": 1763800000.25, "seq": 17}))
            ack1, ack2 = json.loads(await pub.recv()), None
            if ack1["seq"] != 17:
                ack2 = json.loads(await pub.recv())
            got = json.loads(await sub.recv())
        await bridge.stop()
        return ack1 if ack2 is None else ack2, got, {}

    ack, got, _ = run(go())
    assert ack == {"type": "ack", "seq": 17}
    assert got == {"type": "sample", "channel": "plate/tc3", "value": 81.5, "time": 1763800000.25, "seq": 17}


def test_stuck_subscriber_never_stalls_publisher_and_slow_one_gets_gap() -> None:
    n = 100_000

    async def go() -> tuple[list[dict], int]:
        bridge = Bridge()
        await bridge.start()
        stuck = await websockets.connect(bridge.url, max_queue=1)   # subscribes, never reads
        slow = await websockets.connect(bridge.url, max_queue=1)    # reads only after the burst
        for ws in (stuck, slow):
            await ws.send(json.dumps({"type": "subscribe", "channels": ["line/*"]}))
        assert json.loads(await slow.recv())["type"] == "subscribed"
        async with Client(bridge.url) as pub:
            for i in range(n):
                await pub.publish(f"line/ch{i % 4}", float(i), float(i))
            await asyncio.wait_for(pub.flush(), 20)   # not stalled by either viewer
            acked = pub.acked
        frames: list[dict] = []
        last: dict[str, float] = {}
        while len(last) < 4 or min(last.values()) < n - 4:
            msg = json.loads(await asyncio.wait_for(slow.recv(), 10))
            frames.append(msg)
            items = msg.get("samples", [msg] if msg["type"] == "sample" else [])
            last.update({d["channel"]: d["value"] for d in items})
        stuck.transport.abort()   # a viewer that vanished without a close handshake
        await slow.close()
        await bridge.stop()
        return frames, acked

    frames, acked = run(go(), timeout=60)
    assert acked == n - 1
    values = [d["value"] for f in frames for d in f.get("samples", [f] if f["type"] == "sample" else [])]
    skipped = sum(f["skipped"] for f in frames if f["type"] == "gap")
    assert skipped > 0 and len(values) + skipped == n     # told exactly what it missed
    assert values == sorted(values) and values[-4:] == [float(n - 4 + k) for k in range(4)]


def test_reconnect_resumes_after_last_acked_seq(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> int:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with Client(bridge.url, client_id="resumer") as c:
            for i in range(1000):
                await c.publish("a/b", float(i), float(i))
            await c.flush()
            for conn in list(bridge._conns):   # the network drops every connection
                await conn.ws.close(1011)
            assert await c.publish_many([Sample("a/b", float(i), float(i)) for i in range(1000, 1500)]
                                        + [("a/b", float(i), float(i)) for i in range(1500, 2000)]) == 1999
            await asyncio.wait_for(c.flush(), 10)
            acked = c.acked
        await bridge.stop()
        return acked

    assert run(go()) == 1999
    assert [s.value for s in read_recording(rec)] == [float(i) for i in range(2000)]


def test_ingest_validates_records_and_fans_out(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> list[Sample]:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with Client(bridge.url) as c:
            sub = await c.subscribe(["mqtt/*"])
            with pytest.raises(ProtocolViolation, match="bad_value"):
                await bridge.ingest([Sample("mqtt/t", float("nan"), 1.0)], "mqtt:broker")
            n = await bridge.ingest([Sample("mqtt/t", 5.0, 1.0), Sample("mqtt/u", 6.0, 2.0, seq=3)],
                                    "mqtt:broker", wait_commit=True)
            assert n == 2
            got = await asyncio.wait_for(anext(sub), 5)
        await bridge.stop()
        return got

    got = run(go())
    assert [(s.channel, s.value) for s in got] == [("mqtt/t", 5.0), ("mqtt/u", 6.0)]
    assert list(read_recording(rec)) == [Sample("mqtt/t", 5.0, 1.0, None, "mqtt:broker"),
                                         Sample("mqtt/u", 6.0, 2.0, 3, "mqtt:broker")]


@pytest.mark.parametrize(("channel", "value", "time", "code"), [
    ("a\u2003b", 1.0, 1.0, "bad_channel"),     # a space that is not " " or tab
    ("a\nb", 1.0, 1.0, "bad_channel"),
    ("x" * 129, 1.0, 1.0, "bad_channel"),
    ("p/q", True, 1.0, "bad_value"),            # a bool is not a number
    ("p/q", "81.5", 1.0, "bad_value"),
    ("p/q", 1.0, float("inf"), "bad_time"),
    ("p/q", 1.0, True, "bad_time"),             # nor is it a time
])
def test_ingest_and_the_wire_apply_one_rule(channel: str, value: object, time: float, code: str) -> None:
    """An adapter (in-process) and a WebSocket publisher are refused the same samples, alike."""
    from twin3d.bridge.protocol import BridgeProtocol, Publish

    proto = BridgeProtocol()
    proto.receive_text(json.dumps({"type": "sample", "channel": channel, "value": value,
                                   "time": time if time != float("inf") else 1e999}), now=0.0)
    wire = [e for e in proto.events_received() if not isinstance(e, Publish)]

    async def go() -> ProtocolViolation:
        bridge = Bridge()
        await bridge.start()
        try:
            with pytest.raises(ProtocolViolation) as info:
                await bridge.ingest([Sample(channel, value, time)], "mqtt:x")  # type: ignore[arg-type]
        finally:
            await bridge.stop()
        return info.value

    refused = run(go())
    assert [(e.code, e.message) for e in wire] == [(code, refused.message)]  # type: ignore[union-attr]


def test_sync_client_round_trip() -> None:
    async def server(ready: asyncio.Future[str], done: asyncio.Event) -> None:
        bridge = Bridge()
        await bridge.start()
        ready.set_result(bridge.url)
        await done.wait()
        await bridge.stop()

    import threading

    loop = asyncio.new_event_loop()
    ready: asyncio.Future[str] = loop.create_future()
    done = asyncio.Event()
    t = threading.Thread(target=loop.run_until_complete, args=(server(ready, done),))
    t.start()
    try:
        while not ready.done():
            pass
        url = ready.result()
        with SyncClient(url) as viewer, SyncClient(url) as pub:
            batches = viewer.subscribe(["s/*"], timeout=5)
            seq = pub.publish("s/x", 2.5, 10.0)
            pub.flush(timeout=5)
            assert pub.acked == seq == 0
            assert next(batches) == [Sample("s/x", 2.5, 10.0, 0)]
    finally:
        loop.call_soon_threadsafe(done.set)
        t.join(10)
        loop.close()


def test_cli_serve_replay_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"

    async def make_source() -> None:
        bridge = Bridge(record=src)
        await bridge.start()
        await bridge.ingest([Sample(f"p/c{i % 3}", i * 0.5, 100.0 + i * 0.01) for i in range(300)], "sim",
                            wait_commit=True)
        await bridge.stop()

    run(make_source())
    with serve_process(tmp_path, "--record", str(dst)) as (proc, url):
        assert main(["replay", str(src), "--to", url, "--speed", "0"]) == 0
        assert "replayed 300 samples" in capsys.readouterr().out
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    log = server_log(tmp_path)
    assert "shutting down" in log and "Traceback" not in log
    assert [(s.channel, s.time, s.value) for s in read_recording(dst)] == \
        [(s.channel, s.time, s.value) for s in read_recording(src)]

    out = tmp_path / "out.csv"
    assert main(["export", str(dst), "-o", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["channel", "time", "value", "seq", "source"]
    assert len(rows) == 301 and rows[1][:3] == ["p/c0", "100.0", "0.0"]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "missing.db"), "-o", str(tmp_path / "x.csv")]) == 1
    assert "no such recording" in capsys.readouterr().err
    not_rec = tmp_path / "other.db"
    sqlite3.connect(not_rec).execute("CREATE TABLE t(x)").connection.commit()
    assert main(["export", str(not_rec), "-o", str(tmp_path / "x.csv")]) == 1
    assert "not a twin3d recording" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["export", str(not_rec), "-o", str(tmp_path / "x.txt")]) == 1
    assert main(["export", str(not_rec), "-o", str(tmp_path / "x.usdc")]) == 1
    assert main(["serve", "--cert", "c.pem"]) == 2
    bad = tmp_path / "bridge.toml"
    bad.write_text('[[token]]\ntoken = "short"\n')
    assert main(["serve", "--config", str(bad)]) == 1
    assert "at least 8 characters" in capsys.readouterr().err


def test_serve_starts_csv_adapter_from_config_and_replay_reads_csv(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("twin3d.bridge.adapters.csv")
    data = tmp_path / "runs" / "bench.csv"
    data.parent.mkdir()
    data.write_text("time,plate/tc1,plate/tc2\n0.0,20.5,21\n0.05,20.7,\n0.1,,22.5\n")
    cfg = tmp_path / "bridge.toml"
    cfg.write_text('[[csv]]\npath = "runs/bench.csv"\n')   # relative to bridge.toml
    rec = tmp_path / "run.db"
    with serve_process(tmp_path, "--config", str(cfg), "--record", str(rec)) as (proc, url):
        import time as _t
        deadline = _t.monotonic() + 10
        while _t.monotonic() < deadline:
            if rec.exists() and len(list(read_recording(rec))) == 4:
                break
            _t.sleep(0.1)
        assert main(["replay", str(data), "--to", url, "--speed", "0"]) == 0
        assert "replayed 4 samples" in capsys.readouterr().out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    rows = list(read_recording(rec))
    by_source: dict[str, list[tuple[str, float]]] = {}
    for s in rows:
        by_source.setdefault("csv" if s.source and s.source.startswith("csv") else "replay", []).append(
            (s.channel, s.value))
    expected = [("plate/tc1", 20.5), ("plate/tc2", 21.0), ("plate/tc1", 20.7), ("plate/tc2", 22.5)]
    assert sorted(by_source["csv"]) == sorted(expected)
    assert by_source["replay"] == expected


def test_export_usd_time_samples_on_the_bound_stage(tmp_path: Path, bound_plate: Path) -> None:
    from pxr import Usd

    rec = tmp_path / "run.db"

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        await bridge.ingest([Sample("plate/tc3", 20.0 + i, 1.7e9 + i * 0.5) for i in range(4)], "t",
                            wait_commit=True)
        await bridge.stop()

    run(record())
    out = tmp_path / "run.usdc"
    assert main(["export", str(rec), "-o", str(out), "--stage", str(bound_plate), "--fps", "2"]) == 0
    stage = Usd.Stage.Open(str(out))
    attr = stage.GetPrimAtPath("/Plate/Sensors/plate_tc3").GetAttribute("twin:value")
    assert attr.GetTimeSamples() == [0.0, 1.0, 2.0, 3.0]
    assert [attr.Get(t) for t in range(4)] == [20.0, 21.0, 22.0, 23.0]
    bad = tmp_path / "bad.db"

    async def unbound() -> None:
        bridge = Bridge(record=bad)
        await bridge.start()
        await bridge.ingest([Sample("nowhere/x", 1.0, 1.0)], "t", wait_commit=True)
        await bridge.stop()

    run(unbound())
    assert main(["export", str(bad), "-o", str(tmp_path / "bad.usdc"), "--stage", str(bound_plate)]) == 1
    assert not (tmp_path / "bad.usdc").exists()


def test_resend_after_a_lost_ack_is_recorded_once_and_a_restarted_numbering_is_refused(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def send(url: str, seqs: range) -> tuple[dict, dict]:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "version": 1, "client": "dev-9"}))
            hello = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "samples", "samples": [
                {"channel": "d/x", "value": float(i), "time": float(i), "seq": i} for i in seqs]}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return hello, reply

    async def go() -> list[tuple[dict, dict]]:
        bridge = Bridge(record=rec)
        await bridge.start()
        first = await send(bridge.url, range(1, 11))
        await bridge.stop()                                  # a restart on the same recording
        bridge = Bridge(record=rec)
        await bridge.start()
        naive = await send(bridge.url, range(5, 16))         # ignores resume.seq: a rebooted device
        resumed = await send(bridge.url, range(11, 16))      # continues after resume.seq
        await bridge.stop()
        return [first, naive, resumed]

    (hello1, ack1), (hello2, refused), (hello3, ack3) = run(go())
    assert hello1["resume"] == {"seq": None} and ack1 == {"type": "ack", "seq": 10}
    assert hello2["resume"] == {"seq": 10} and refused["code"] == "bad_seq"
    assert "resume.seq is 10" in refused["message"]
    assert hello3["resume"] == {"seq": 10} and ack3 == {"type": "ack", "seq": 15}
    assert [s.seq for s in read_recording(rec)] == list(range(1, 16))     # once each


def test_a_seq_that_goes_back_is_refused_not_acked() -> None:
    async def go() -> list[dict]:
        bridge = Bridge()
        await bridge.start()
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps({"type": "hello", "version": 1, "client": "dev-3"}))
            await ws.recv()
            replies = []
            for seq in (100, 50, 101):
                await ws.send(json.dumps({"type": "sample", "channel": "d/y", "value": 1.0, "seq": seq}))
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await bridge.stop()
        return replies

    replies = run(go())
    assert [r.get("seq", r.get("code")) for r in replies] == [100, "bad_seq", 101]


def test_late_subscriber_first_gets_the_latest_value_per_channel() -> None:
    async def go() -> list[Sample]:
        bridge = Bridge()
        await bridge.start()
        await bridge.ingest([Sample("p/a", 1.0, 1.0), Sample("p/b", 2.0, 2.0), Sample("p/a", 3.0, 3.0),
                             Sample("q/c", 9.0, 4.0)], "sim")
        async with Client(bridge.url) as c:
            sub = await c.subscribe(["p/*"])
            got = await asyncio.wait_for(anext(sub), 5)
        await bridge.stop()
        return got

    got = run(go())
    assert sorted((s.channel, s.value, s.time) for s in got) == [("p/a", 3.0, 3.0), ("p/b", 2.0, 2.0)]


def test_client_describe_and_receive_meta() -> None:
    async def go() -> dict:
        bridge = Bridge()
        await bridge.start()
        async with Client(bridge.url) as viewer, Client(bridge.url) as pub:
            sub = await viewer.subscribe(["p/*"])
            await pub.describe("p/a", unit="degC", quantity="temperature")
            await pub.publish("p/a", 1.0)
            await asyncio.wait_for(anext(sub), 5)   # meta is sent before the sample
            meta = viewer.meta
        await bridge.stop()
        return meta

    assert run(go()) == {"p/a": {"unit": "degC", "quantity": "temperature"}}


def test_channel_metadata_is_forwarded_kept_and_recorded(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"

    async def go() -> tuple[dict, dict, dict]:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with websockets.connect(bridge.url) as live, websockets.connect(bridge.url) as pub:
            await live.send(json.dumps({"type": "subscribe", "channels": ["plate/*"]}))
            await live.recv()
            await pub.send(json.dumps({"type": "meta", "channels": {
                "plate/tc1": {"unit": "degC", "quantity": "temperature"}, "pump/x": {"unit": "bar"}}}))
            forwarded = json.loads(await asyncio.wait_for(live.recv(), 5))
            await pub.send(json.dumps({"type": "sample", "channel": "plate/tc1", "value": 1, "seq": 1}))
            assert json.loads(await pub.recv())["type"] == "ack"
        await bridge.stop()
        bridge = Bridge(record=rec)                       # restart: metadata comes back
        await bridge.start()
        async with websockets.connect(bridge.url) as late:
            await late.send(json.dumps({"type": "subscribe", "channels": ["plate/*"]}))
            await late.recv()
            again = json.loads(await asyncio.wait_for(late.recv(), 5))
        await bridge.stop()
        return forwarded, again, bridge.meta

    forwarded, again, meta = run(go())
    expected = {"type": "meta", "channels": {"plate/tc1": {"unit": "degC", "quantity": "temperature"}}}
    assert forwarded == expected and again == expected
    assert meta["pump/x"] == {"unit": "bar"}
    with sqlite3.connect(rec) as db:
        assert dict(db.execute("SELECT name, meta FROM channel_meta"))["plate/tc1"] == \
            '{"unit": "degC", "quantity": "temperature"}'


def test_replay_speed_rules_are_one_rule() -> None:
    from twin3d.bridge.pacing import Pace
    from twin3d.errors import UsageError

    assert Pace(0).delay(5.0) == 0.0 and Pace(0).delay(1e9) == 0.0   # 0: as fast as possible
    pace = Pace(2.0)
    assert pace.delay(100.0) <= 0.0                                    # the first sample starts the clock
    assert 4.9 < pace.delay(110.0) <= 5.0                              # 10 recorded s at 2x: 5 s later
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--speed must be a number >= 0"):
            Pace(bad)
