"""Faults that must keep their promises, observed from outside: a real ``twin3d serve`` process
recording onto a real, small tmpfs that fills up, and plain WebSocket clients."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from bridge_helpers import run, serve_process, server_log

from twin3d.bridge import Client
from twin3d.errors import BridgeError


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (needs root, as in CI: ``.ci/run`` runs as root)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the disk-full tests: {done.stderr.strip()}")
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full; return it (delete it to free the space)."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 4096, 512, 1):   # unbuffered, down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free < 4096
    return ballast


def committed(rec: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(f"file:{rec}?mode=ro", uri=True) as db:
        return db.execute("SELECT seq, value FROM samples ORDER BY rowid").fetchall()


async def hello(url: str, client: str) -> tuple[websockets.ClientConnection, dict]:
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"type": "hello", "version": 1, "client": client}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_disk_full_is_one_error_fan_out_continues_and_acks_resume(small_disk: Path, tmp_path: Path) -> None:
    rec = small_disk / "run.db"

    async def go(url: str) -> dict:
        out: dict = {}
        sub = await websockets.connect(url)
        await sub.send(json.dumps({"type": "subscribe", "channels": ["line/*"]}))
        assert json.loads(await sub.recv())["type"] == "subscribed"
        pub, _ = await hello(url, "dev-1")
        await pub.send(json.dumps({"type": "sample", "channel": "line/x", "value": 1.0, "seq": 1}))
        assert json.loads(await asyncio.wait_for(pub.recv(), 5)) == {"type": "ack", "seq": 1}
        ballast = fill(small_disk)
        await pub.send(json.dumps({"type": "samples", "samples": [
            {"channel": "line/x", "value": float(i), "seq": i} for i in range(2, 2002)]}))
        out["error"] = json.loads(await asyncio.wait_for(pub.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(pub.recv(), 10)
        out["close"] = (pub.close_code, pub.close_reason)
        # live viewers kept receiving: the values that could not be recorded reached them
        seen: list[float] = []
        while not seen or seen[-1] != 2001.0:
            msg = json.loads(await asyncio.wait_for(sub.recv(), 5))
            seen += [d["value"] for d in msg.get("samples", [msg])]
        out["seen"] = seen
        # resume.seq is what is committed, not what was attempted
        again, out["hello_full"] = await hello(url, "dev-1")
        await again.close()
        ballast.unlink()                                   # space returns
        pub, out["hello_free"] = await hello(url, "dev-1")
        start = out["hello_free"]["resume"]["seq"] + 1
        await pub.send(json.dumps({"type": "samples", "samples": [
            {"channel": "line/x", "value": float(i), "seq": i} for i in range(start, 2002)]}))
        out["ack"] = json.loads(await asyncio.wait_for(pub.recv(), 10))
        await pub.close()
        await sub.close()
        return out

    with serve_process(tmp_path, "--record", str(rec)) as (_, url):
        out = run(go(url), timeout=60)
    log = server_log(tmp_path)

    assert out["error"]["type"] == "error" and out["error"]["code"] == "disk_full"
    assert str(rec) in out["error"]["message"] and "MB free" in out["error"]["message"]
    assert out["close"] == (1013, "disk_full")
    assert out["seen"][0] == 1.0 and out["seen"][-1] == 2001.0
    assert out["hello_full"]["resume"] == {"seq": 1} and out["hello_free"]["resume"] == {"seq": 1}
    assert out["ack"] == {"type": "ack", "seq": 2001}
    assert [s for s, _ in committed(rec)] == list(range(1, 2002))        # once each, none lost
    assert log.count("disk full") == 1, log                                 # one line per incident
    assert log.count("writing again") == 1 and "rollback" not in log.lower(), log


def test_disk_full_then_drop_then_restart_loses_no_acked_sample(small_disk: Path, tmp_path: Path) -> None:
    """The reported loss: disk full + a dropped connection + a restart, and flush() said ok
    while seq 8800-8999 were missing. Every sample must be stored exactly once in the end."""
    rec = small_disk / "run.db"
    n = 30_000

    with serve_process(tmp_path, "--record", str(rec), name="first") as (first, url):
        port = int(url.rsplit(":", 1)[1])

        async def go() -> tuple[int, list[str]]:
            async with Client(url, client_id="plc-7", max_batch=200) as c:
                ballast = None
                for i in range(n):
                    await c.publish("line/n", float(i), 1000.0 + i)
                    if i % 200 == 0:
                        await asyncio.sleep(0)
                    if i == 5000:
                        await asyncio.wait_for(c.flush(), 10)
                        ballast = fill(small_disk)
                assert ballast is not None
                while not any(code == "disk_full" for code, _ in c.errors):   # it kept trying
                    await asyncio.sleep(0.05)
                first.send_signal(signal.SIGTERM)                              # a restart...
                await asyncio.get_running_loop().run_in_executor(None, first.wait)
                ballast.unlink()                                               # ...with space again
                with serve_process(tmp_path, "--record", str(rec), name="second", port=port):
                    for _ in range(5):
                        try:
                            await asyncio.wait_for(c.flush(), 30)
                            break
                        except BridgeError as exc:   # the disk_full errors seen before the restart
                            assert "disk_full" in str(exc)
                    acked = c.acked
                codes = [code for code, _ in c.errors]
            return acked, codes

        acked, codes = run(go(), timeout=120)

    assert set(codes) == {"disk_full"}
    assert acked == n - 1
    assert [v for _, v in committed(rec)] == [float(i) for i in range(n)]   # none lost, none twice


def test_a_damaged_recording_keeps_its_intact_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.bridge import Bridge, read_recording
    from twin3d.cli import main

    rec = tmp_path / "run.sqlite"

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with Client(bridge.url, client_id="plc") as c:
            for i in range(60_000):
                await c.publish(f"line/c{i % 5}", float(i), 1000.0 + i)
            await c.flush()
        await bridge.stop()

    run(record(), timeout=60)
    size = rec.stat().st_size
    with rec.open("r+b") as f:            # a copy cut short, as by a full disk or a failed transfer
        f.truncate(int(size * 0.6) // 4096 * 4096)

    assert main(["export", str(rec), "-o", str(tmp_path / "all.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "twin3d recover" in err and not (tmp_path / "all.csv").exists()

    fixed = tmp_path / "fixed.sqlite"
    assert main(["recover", str(rec), "-o", str(fixed)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {fixed}: ") and "unreadable" in out
    values = [s.value for s in read_recording(fixed)]
    assert 10_000 < len(values) < 60_000
    assert values == [float(i) for i in range(len(values))]        # a prefix, in order, nothing invented
    assert main(["export", str(fixed), "-o", str(tmp_path / "fixed.csv")]) == 0
    assert main(["recover", str(rec), "-o", str(rec)]) == 2           # never over the damaged file


def test_no_exception_but_twin3d_s_own_reaches_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d import cli

    def boom(args: object) -> int:
        raise IndexError("too many indices for array")

    parser = cli.build_parser()
    args = parser.parse_args(["info", "x.usda"])
    args.run = boom
    original = cli.build_parser
    cli.build_parser = lambda: type("P", (), {"parse_args": lambda self, argv: args,  # type: ignore[assignment]
                                             "print_help": lambda self, f: None})()
    try:
        assert cli.main(["info", "x.usda"]) == 1
    finally:
        cli.build_parser = original
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("twin3d info: internal error: IndexError: too many indices")
