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
   SQLite ``executemany`` in 1,000-row transactions into the same table;
4. the soak: P publishers x F fast subscribers x S slow subscribers for D seconds at R values/s
   (recording on): freshness of what fast subscribers receive (receive time - sample time),
   gaps, publishers' ack lag, the server's RSS; baseline: the same load through a plain
   websockets relay (``broadcast`` to every subscriber, no backpressure, no recording).

Servers, publishers and subscribers run in separate processes.

    python benchmarks/bridge.py --soak-only --rate 20000 --seconds 60 --publishers 10 \
        --fast 20 --slow 5
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import websockets

from twin3d.bridge.protocol import encode_alias, encode_binary

BATCH = 1000
CHANNELS = 100


# --- servers (own processes) -----------------------------------------------------------------

def _run_server(kind: str, q: Any, record: str | None) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        if kind == "relay":
            subs: set[Any] = set()

            async def relay(ws: Any) -> None:   # publishers' frames go to every subscriber
                first = await ws.recv()
                if isinstance(first, str) and '"hello"' in first:
                    await ws.send(json.dumps({"type": "hello", "resume": {"seq": None}}))
                elif isinstance(first, str) and '"subscribe"' in first:
                    subs.add(ws)
                    await ws.send(json.dumps({"type": "subscribed"}))
                    try:
                        await ws.wait_closed()
                    finally:
                        subs.discard(ws)
                    return
                async for msg in ws:
                    if isinstance(msg, str):
                        websockets.broadcast(subs, msg)
                        seq = json.loads(msg)["samples"][-1]["seq"]
                        await ws.send(json.dumps({"type": "ack", "seq": seq}))

            server = await websockets.serve(relay, "127.0.0.1", 0, compression=None, max_size=None)
            q.put(next(iter(server.sockets)).getsockname()[1])
            await stop.wait()
            server.close()
            await server.wait_closed()
        elif kind in ("echo", "sink"):
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
        self.kind = kind
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        self.proc = ctx.Process(target=_run_server, args=(kind, q, record))
        self.proc.start()
        self.url = f"ws://127.0.0.1:{q.get(timeout=30)}"

    def stop(self) -> None:
        assert self.proc.pid is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.join(30)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


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


# --- soak --------------------------------------------------------------------------------------

def _soak_subscribers(url: str, fast: int, slow: int, seconds: float, q: Any, ready: Any) -> None:
    """Fast subscribers read everything; slow ones read a frame every 0.5 s (small receive buffer)."""
    async def one(is_fast: bool, out: dict[str, Any], up: asyncio.Event) -> None:
        sock = socket.socket()
        if not is_fast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        host, port = url.removeprefix("ws://").split(":")
        sock.connect((host, int(port)))
        async with websockets.connect(url, sock=sock, compression=None, max_size=None,
                                      max_queue=None if is_fast else 1) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["*"]}))
            await ws.recv()
            up.set()
            end = time.monotonic() + seconds + 3
            while time.monotonic() < end:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 3.0)
                except TimeoutError:
                    break
                now = time.time()
                msg = orjson.loads(raw)
                if msg["type"] == "gap":
                    out["gaps"] += 1
                    out["skipped"] += msg["skipped"]
                elif msg["type"] in ("sample", "samples"):
                    items = msg["samples"] if msg["type"] == "samples" else [msg]
                    out["received"] += len(items)
                    if is_fast:   # a sample of the ages: the newest and oldest of each frame
                        out["age"] += [now - items[0]["time"], now - items[-1]["time"]]
                if not is_fast:
                    await asyncio.sleep(0.5)

    async def main() -> None:
        stats = {k: {"received": 0, "gaps": 0, "skipped": 0, "age": []} for k in ("fast", "slow")}
        ups = [asyncio.Event() for _ in range(fast + slow)]
        tasks = [asyncio.ensure_future(one(i < fast, stats["fast" if i < fast else "slow"], up))
                 for i, up in enumerate(ups)]
        for up in ups:
            await up.wait()
        ready.put(1)
        await asyncio.gather(*tasks, return_exceptions=True)
        q.put(stats)

    asyncio.run(main())


def _soak_publishers(url: str, n: int, rate: int, seconds: float, q: Any) -> None:
    """``n`` publishers, each ``rate / n`` values/s in frames every 10 ms, stamped at send."""
    async def one(k: int, lags: list[float]) -> int:
        sent: dict[int, float] = {}
        acked = -1
        async with websockets.connect(url, compression=None, max_size=None) as ws:
            await ws.send(json.dumps({"type": "hello", "version": 1, "client": f"soak-{k}"}))
            await ws.recv()

            async def acks() -> None:
                nonlocal acked
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "ack":
                        now = time.monotonic()
                        for s in range(acked + 1, msg["seq"] + 1):
                            t = sent.pop(s, None)
                            if t is not None:
                                lags.append(now - t)
                        acked = msg["seq"]

            rx = asyncio.ensure_future(acks())
            per_tick = max(1, round(rate / n / 100))
            start = time.monotonic()
            seq = 0
            while time.monotonic() - start < seconds:
                now = time.time()
                sent[seq] = time.monotonic()
                await ws.send(json.dumps({"type": "samples", "samples": [
                    {"channel": f"soak/p{k}/c{i % 10}", "value": float(i), "time": now, "seq": seq}
                    for i in range(per_tick)]}))
                seq += 1
                await asyncio.sleep(max(0.0, start + seq * 0.01 - time.monotonic()))
            end = time.monotonic() + 30
            while acked < seq - 1 and time.monotonic() < end:
                await asyncio.sleep(0.05)
            rx.cancel()
            return seq * per_tick

    async def main() -> None:
        lags: list[float] = []
        counts = await asyncio.gather(*(one(k, lags) for k in range(n)))
        q.put((sum(counts), lags))

    asyncio.run(main())


def soak(kind: str, rate: int, seconds: float, publishers: int, fast: int, slow: int) -> dict[str, Any]:
    """One soak run against ``kind`` ("bridge", recording on, or "relay")."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TWIN3D_BENCH_DIR")) as tmp:
        srv = Server(kind, record=str(Path(tmp) / "soak.db") if kind == "bridge" else None)
        sq, ready, pq = ctx.Queue(), ctx.Queue(), ctx.Queue()
        subs = ctx.Process(target=_soak_subscribers, args=(srv.url, fast, slow, seconds, sq, ready))
        pubs = ctx.Process(target=_soak_publishers, args=(srv.url, publishers, rate, seconds, pq))
        rss = [srv.rss_mb()]
        try:
            subs.start()
            ready.get(timeout=60)
            pubs.start()
            t_end = time.monotonic() + seconds + 40
            while pq.empty() and time.monotonic() < t_end:
                rss.append(srv.rss_mb())
                time.sleep(1.0)
            published, lags = pq.get(timeout=60)
            stats = sq.get(timeout=60)
        finally:
            pubs.join(10)
            subs.join(10)
            srv.stop()
    age = np.array(stats["fast"]["age"]) * 1e3
    lag = np.array(lags) * 1e3
    out = {"kind": kind, "rate": rate, "seconds": seconds, "publishers": publishers, "fast": fast,
           "slow": slow, "published": published,
           "fresh_p50": float(np.percentile(age, 50)) if age.size else float("nan"),
           "fresh_p99": float(np.percentile(age, 99)) if age.size else float("nan"),
           "fresh_max": float(age.max()) if age.size else float("nan"),
           "fast_gaps": stats["fast"]["gaps"], "slow_gaps": stats["slow"]["gaps"],
           "fast_received": stats["fast"]["received"], "slow_received": stats["slow"]["received"],
           "ack_p50": float(np.percentile(lag, 50)) if lag.size else float("nan"),
           "ack_p99": float(np.percentile(lag, 99)) if lag.size else float("nan"),
           "rss_start": rss[0], "rss_peak": max(rss), "rss_end": rss[-1]}
    print(f"  {kind:6s} {rate:,} values/s, {publishers} publishers x {fast} fast + {slow} slow subscribers, "
          f"{seconds:g} s: fresh p50 {out['fresh_p50']:.0f} ms, p99 {out['fresh_p99']:.0f} ms, max "
          f"{out['fresh_max']:.0f} ms; gaps fast {out['fast_gaps']}, slow {out['slow_gaps']}; ack lag p50 "
          f"{out['ack_p50']:.0f} ms, p99 {out['ack_p99']:.0f} ms; server RSS {out['rss_start']:.0f} -> "
          f"{out['rss_peak']:.0f} -> {out['rss_end']:.0f} MB", flush=True)
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
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--soak-only", action="store_true", help="only section 4")
    ap.add_argument("--rate", type=int, default=20_000, help="soak: values/s in all")
    ap.add_argument("--seconds", type=float, default=30.0, help="soak: duration")
    ap.add_argument("--publishers", type=int, default=10)
    ap.add_argument("--fast", type=int, default=20, help="soak: subscribers that read everything")
    ap.add_argument("--slow", type=int, default=5, help="soak: subscribers that read a frame per 0.5 s")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"bridge benchmark on loopback; {machine()}", flush=True)
    if args.soak_only:
        print("4. soak (twin3d bridge, recording; baseline: plain websockets relay):")
        for kind in ("bridge", "relay"):
            soak(kind, args.rate, args.seconds, args.publishers, args.fast, args.slow)
        print(f"total {time.perf_counter() - t0:.0f} s")
        return 0
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
    print("4. soak (twin3d bridge, recording; baseline: plain websockets relay):")
    runs4 = [soak(kind, args.rate, args.seconds, args.publishers, args.fast, args.slow)
             for kind in ("bridge", "relay")]
    print(f"  fresh p99 <= 1 s for fast subscribers with slow ones present: "
          f"{runs4[0]['fresh_p99']:.0f} ms -> {'met' if runs4[0]['fresh_p99'] <= 1000 else 'NOT met'}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
