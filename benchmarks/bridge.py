"""Bridge benchmark on loopback: throughput, latency, recording, each against a baseline measured now.

    python benchmarks/bridge.py            # about 1-2 minutes

1. values/s into the bridge (validated, fanned out, acked) for JSON single samples, JSON batches
   of 1,000 and binary batches of 1,000, against a raw ``websockets`` echo server fed the same
   frames (the ceiling the issue names: the echo sends everything back) and against a one-way
   sink that only reads (the stricter ceiling: the bridge also sends only acks back);
2. publish -> subscriber latency at 10,000 values/s (a ``samples`` frame per 1 ms tick), 1 publisher
   process, 4 subscriber connections in a third process; baseline: raw websockets round trip at
   the same rate;
3. recorded rows/s with acks (SQLite WAL, synchronous=FULL, group commit) against a bare
   SQLite ``executemany`` in 1,000-row transactions into the same table.

Servers, publisher and subscribers run in separate processes.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from twin3d.bridge.protocol import encode_alias, encode_binary

BATCH = 1000
CHANNELS = 100


# --- servers (own processes) -----------------------------------------------------------------

def _run_server(kind: str, q: Any, record: str | None) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        if kind in ("echo", "sink"):
            async def echo(ws: Any) -> None:
                async for msg in ws:
                    await ws.send(msg)

            async def sink(ws: Any) -> None:   # reads everything, answers only "end"
                async for msg in ws:
                    if msg == "end":
                        await ws.send("end")

            server = await websockets.serve(echo if kind == "echo" else sink, "127.0.0.1", 0,
                                            compression=None, max_size=None)
            q.put(next(iter(server.sockets)).getsockname()[1])
            await stop.wait()
            server.close()
            await server.wait_closed()
        else:
            from twin3d.bridge import Bridge
            bridge = Bridge(record=record)
            await bridge.start()
            q.put(bridge.port)
            await stop.wait()
            await bridge.stop()

    asyncio.run(main())


class Server:
    def __init__(self, kind: str, record: str | None = None) -> None:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        self.proc = ctx.Process(target=_run_server, args=(kind, q, record))
        self.proc.start()
        self.url = f"ws://127.0.0.1:{q.get(timeout=30)}"

    def stop(self) -> None:
        assert self.proc.pid is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.join(30)


# --- payloads --------------------------------------------------------------------------------

def payloads(kind: str, n_values: int) -> tuple[list[str | bytes], list[str | bytes]]:
    """(setup frames, data frames) for ``n_values`` values; data frame i carries seq i."""
    rng = np.random.default_rng(0)
    now = time.time()
    if kind == "json_single":
        return [], [json.dumps({"type": "sample", "channel": f"bench/c{i % CHANNELS}",
                                "value": round(float(rng.normal(50, 5)), 3), "time": now + i * 1e-4,
                                "seq": i}) for i in range(n_values)]
    n_frames = n_values // BATCH
    if kind == "json_batch":
        out: list[str | bytes] = []
        for f in range(n_frames):
            out.append(json.dumps({"type": "samples", "samples": [
                {"channel": f"bench/c{k % CHANNELS}", "value": round(float(v), 3),
                 "time": now + (f * BATCH + k) * 1e-6, "seq": f}
                for k, v in enumerate(rng.normal(50, 5, BATCH))]}))
        return [], out
    alias = np.arange(BATCH, dtype=np.uint32) % CHANNELS
    setup: list[str | bytes] = [encode_alias({f"bench/c{k}": k for k in range(CHANNELS)})]
    return setup, [encode_binary(alias, now + np.arange(BATCH) * 1e-6, rng.normal(50, 5, BATCH), seq=f)
                   for f in range(n_frames)]


async def _through(url: str, setup: list[str | bytes], frames: list[str | bytes], mode: str) -> float:
    """Seconds to push ``frames`` and get the last echo (echo), the "end" reply (sink) or the
    last ack (bridge)."""
    echo = mode == "echo"
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        for f in setup:
            await ws.send(f)
        last = len(frames) - 1

        async def receive() -> None:
            if mode == "sink":
                await ws.recv()
                return
            if echo:
                for _ in range(len(frames) + len(setup)):
                    await ws.recv()
                return
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "error":
                    raise RuntimeError(msg)
                if msg["type"] == "ack" and msg["seq"] == last:
                    return

        t0 = time.perf_counter()
        rx = asyncio.ensure_future(receive())
        for f in frames:
            await ws.send(f)
        if mode == "sink":
            await ws.send("end")
        await rx
        return time.perf_counter() - t0


def throughput() -> list[dict[str, Any]]:
    rows = []
    cases = [("json_single", 40_000), ("json_batch", 200_000), ("binary_batch", 3_000_000)]
    for kind, n in cases:
        setup, frames = payloads(kind, n)
        result: dict[str, Any] = {"case": kind, "values": n, "frames": len(frames)}
        for server_kind in ("echo", "sink", "bridge"):
            srv = Server(server_kind)
            try:
                secs = min(asyncio.run(_through(srv.url, setup, frames, server_kind))
                           for _ in range(2))
            finally:
                srv.stop()
            result[server_kind] = n / secs
        result["ratio"] = result["bridge"] / result["echo"]
        result["sink_ratio"] = result["bridge"] / result["sink"]
        rows.append(result)
        print(f"  {kind:13s} bridge {result['bridge']:>11,.0f} values/s | echo ceiling "
              f"{result['echo']:>11,.0f} ({result['ratio']:.0%}) | one-way sink "
              f"{result['sink']:>11,.0f} ({result['sink_ratio']:.0%})", flush=True)
    return rows


# --- latency ---------------------------------------------------------------------------------

def _subscribers(url: str, n: int, q: Any, ready: Any) -> None:
    """``n`` subscriber connections in one process (separate from the server and publisher)."""
    async def one(lat: list[float], gaps: list[int], up: asyncio.Event) -> None:
        async with websockets.connect(url, compression=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["*"]}))
            await ws.recv()
            up.set()
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 2.0)
                except TimeoutError:
                    return
                now = time.time()
                msg = json.loads(raw)
                if msg["type"] == "gap":
                    gaps.append(msg["skipped"])
                    continue
                lat.extend(now - d["time"] for d in (msg["samples"] if msg["type"] == "samples" else [msg]))

    async def main() -> None:
        lat: list[float] = []
        gaps: list[int] = []
        ups = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.ensure_future(one(lat, gaps, up)) for up in ups]
        for up in ups:
            await up.wait()
        ready.put(1)
        await asyncio.gather(*tasks)
        q.put((lat, sum(gaps)))

    asyncio.run(main())


async def _paced_publisher(url: str, rate: int, seconds: float, echo: bool) -> list[float]:
    """Publish ``rate`` values/s: every 1 ms tick one ``samples`` frame with the values due (about
    10), each stamped with its own send time; for echo, return every value's round trip."""
    rtts: list[float] = []
    async with websockets.connect(url, compression=None) as ws:
        async def drain() -> None:
            while True:
                raw = await ws.recv()
                if echo:
                    now = time.time()
                    rtts.extend(now - d["time"] for d in json.loads(raw)["samples"])

        rx = asyncio.ensure_future(drain())
        start = time.perf_counter()
        i = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate)
            if due > i:
                now = time.time()
                await ws.send(json.dumps({"type": "samples", "samples": [
                    {"channel": f"lat/c{k % CHANNELS}", "value": float(k), "time": now, "seq": k}
                    for k in range(i, due)]}))
                i = due
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.5)
        rx.cancel()
    return rtts


def latency(rate: int = 10_000, seconds: float = 5.0, n_subs: int = 4) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    echo = Server("echo")
    try:
        rtts = asyncio.run(_paced_publisher(echo.url, rate, seconds, True))
    finally:
        echo.stop()
    srv = Server("bridge")
    q, ready = ctx.Queue(), ctx.Queue()
    subs = ctx.Process(target=_subscribers, args=(srv.url, n_subs, q, ready))
    try:
        subs.start()
        ready.get(timeout=30)
        asyncio.run(_paced_publisher(srv.url, rate, seconds, False))
        results = [q.get(timeout=60)]
    finally:
        subs.join(10)
        srv.stop()
    lat = np.array([x for r, _ in results for x in r]) * 1e3
    gaps = sum(g for _, g in results)
    rt = np.array(rtts) * 1e3
    out = {"rate": rate, "subscribers": n_subs, "received": int(lat.size), "gaps": gaps,
           "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
           "echo_p50": float(np.percentile(rt, 50)), "echo_p99": float(np.percentile(rt, 99))}
    print(f"  {rate:,} values/s, 1 publisher -> {n_subs} subscribers: p50 {out['p50']:.2f} ms, "
          f"p99 {out['p99']:.2f} ms ({out['received']:,} received, {gaps} skipped); raw echo "
          f"round trip at the same rate: p50 {out['echo_p50']:.2f} ms, p99 {out['echo_p99']:.2f} ms",
          flush=True)
    return out


# --- recording -------------------------------------------------------------------------------

def bare_sqlite(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE samples(channel INTEGER NOT NULL, time REAL NOT NULL, "
               "value REAL NOT NULL, seq INTEGER, source INTEGER NOT NULL)")
    rng = np.random.default_rng(1)
    chunks = [list(zip((np.arange(BATCH) % CHANNELS).tolist(), (np.arange(BATCH) * 1e-6 + i).tolist(),
                       rng.normal(50, 5, BATCH).tolist(), [i] * BATCH, [1] * BATCH, strict=True))
              for i in range(n // BATCH)]
    t0 = time.perf_counter()
    for rows in chunks:
        db.execute("BEGIN")
        db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    secs = time.perf_counter() - t0
    db.close()
    return n / secs


def recording(n: int = 1_000_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TWIN3D_BENCH_DIR")) as tmp:
        bare = bare_sqlite(Path(tmp) / "bare.db", n)
        out: dict[str, Any] = {"values": n, "bare": bare}
        for kind in ("binary_batch", "json_batch"):
            count = n if kind == "binary_batch" else n // 4
            rec = Path(tmp) / f"{kind}.db"
            srv = Server("bridge", record=str(rec))
            try:
                setup, frames = payloads(kind, count)
                secs = asyncio.run(_through(srv.url, setup, frames, "bridge"))
            finally:
                srv.stop()
            with sqlite3.connect(rec) as db:
                stored = db.execute("SELECT count(*) FROM samples").fetchone()[0]
            assert stored == count, (stored, count)
            out[kind] = count / secs
        print(f"  recorded with acks: binary batches {out['binary_batch']:,.0f} rows/s, JSON batches "
              f"{out['json_batch']:,.0f} rows/s; bare SQLite executemany (1,000-row transactions) "
              f"{bare:,.0f} rows/s; ratio {out['binary_batch'] / bare:.0%}", flush=True)
        return out


def machine() -> str:
    try:
        model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in model.splitlines() if "Model name" in ln), "?")
    except OSError:
        model = "?"
    return (f"{os.cpu_count()}-core {platform.machine()}, {model}, Python {platform.python_version()}, "
            f"websockets {websockets.__version__}, SQLite {sqlite3.sqlite_version}")


def main() -> int:
    t0 = time.perf_counter()
    print(f"bridge benchmark on loopback; {machine()}", flush=True)
    print("1. values/s into the bridge (validated, fanned out, acked) vs raw websockets echo:")
    thr = throughput()
    print("2. publish -> subscriber latency (3 runs of 4 s; the median run counts):")
    runs = sorted((latency(seconds=4.0) for _ in range(3)), key=lambda r: r["p99"])
    lat = runs[1]
    print("3. recording:")
    rec = recording()
    batched = max(r["ratio"] for r in thr if r["case"] != "json_single")
    print("targets:")
    print(f"  batched values/s >= 50% of echo ceiling: json {thr[1]['ratio']:.0%}, "
          f"binary {thr[2]['ratio']:.0%} -> {'met' if batched >= 0.5 else 'NOT met'} "
          f"(of the one-way sink: json {thr[1]['sink_ratio']:.0%}, binary {thr[2]['sink_ratio']:.0%})")
    print(f"  p99 < 10 ms at 10k values/s, 4 subscribers: {lat['p99']:.2f} ms -> "
          f"{'met' if lat['p99'] < 10 else 'NOT met'}")
    print(f"  recording with acks >= 200k values/s: {rec['binary_batch']:,.0f} -> "
          f"{'met' if rec['binary_batch'] >= 200_000 else 'NOT met'}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
