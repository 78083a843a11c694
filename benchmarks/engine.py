"""Twin engine benchmark: latency and CPU live through a bridge, and the drift check's ROC.

    python benchmarks/engine.py                 # about 15 minutes on 2 cores
    python benchmarks/engine.py --roc-only --hours 1 --seeds 1

1. **latency**: the demo plate twin (15 sensors, one virtual sensor), its plant publishing 1,000
   values/s (a round of 15 readings every 15 ms, stamped when sent) into ``twin3d serve``; the
   engine runs as ``twin3d engine`` in its own process; a subscriber in this process takes every
   derived channel. Latency = receive time - the derived sample's source time (the newest
   reading it was made from). Per-reading channels (``twin/virtual/*``, ``twin/input/*``) and
   per-period ones (``twin/health/*``, ``twin/suspect/*``, ``twin/eta/*``) are reported apart.
   The engine's CPU share is its process's CPU time over the wall time (1.0 = one core).
2. **ROC of the drift check** (sans-I/O, simulated time), one engine per CUSUM threshold ``h``
   (a verdict also needs the sensor's own evidence, so the CUSUM alone cannot be replayed): fed
   healthy data for ``--hours`` hours (2 readings/s per sensor: the health residuals are
   standardised, so the false-flag rate per period does not depend on the rate), and, for each
   thermocouple and ``--seeds`` noise seeds, a drift of 0.05 K/s from t = 60 s (10 readings/s,
   as the demo): false flags per hour (all 15 sensors together) against the delay from the
   drift's start to the drifting sensor's flag (median and worst), and the drifts whose
   neighbours were flagged too. The runs share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from engine_plate import ENGINE_TABLES, NOISE, make_stage, steady  # noqa: E402

from twin3d.engine.core import Engine  # noqa: E402
from twin3d.engine.plant import Fault, SimulatedPlant  # noqa: E402

THRESHOLDS = (5.0, 8.0, 10.0, 12.0, 15.0, 20.0)
_LISTEN = re.compile(r"listening on (ws://[\d.]+:\d+)")


def _plant(engine: Engine, faults: list[Fault], seed: int, t0: float = 0.0) -> SimulatedPlant:
    mesh = next(iter(engine.models))
    models = list(engine.models[mesh].values())
    sensors = engine.twin.sensors
    noise = {c: NOISE[sensors[c].quantity] for m in models for c in m.channels}
    return SimulatedPlant(models, steady, noise, faults=faults, seed=seed, t0=t0)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- 1. latency and CPU ----------------------------------------------------------------------

def latency(stage: Path, seconds: float, rate: float) -> dict[str, Any]:
    from twin3d.bridge import Client

    folder = stage.parent
    log = folder / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen([sys.executable, "-m", "twin3d", "serve", "--port", "0"],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (m := _LISTEN.search(log.read_text())):
            if time.monotonic() > deadline or serve.poll() is not None:
                raise SystemExit(f"twin3d serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        url = m.group(1)
        engine_log = folder / "engine.log"
        with engine_log.open("wb") as out:
            eng = subprocess.Popen([sys.executable, "-m", "twin3d", "engine", str(stage), "--bridge", url, "-q"],
                                   stdout=out, stderr=subprocess.STDOUT)
        try:
            return asyncio.run(_measure(Client, url, eng.pid, Engine(stage), seconds, rate))
        finally:
            eng.send_signal(signal.SIGINT)
            eng.wait(30)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)


async def _measure(client_cls: Any, url: str, pid: int, engine: Engine, seconds: float,
                   rate: float) -> dict[str, Any]:
    plant = _plant(engine, [], seed=1)
    n_sensors = len(engine.channels)
    period = n_sensors / rate                     # one round of every sensor per period
    lat: dict[str, list[float]] = {"reading": [], "period": []}
    measuring = False
    async with client_cls(url, client_id="plant") as pub, client_cls(url) as sub_client:
        sub = await sub_client.subscribe(["twin/*"])

        async def listen() -> None:
            async for batch in sub:
                now = time.time()
                if not measuring:
                    continue
                for s in batch:
                    kind = "reading" if s.channel.startswith(("twin/virtual/", "twin/input/")) else "period"
                    lat[kind].append(now - s.time)

        listener = asyncio.ensure_future(listen())
        t_start = time.monotonic()
        k = 0
        cpu0 = wall0 = 0.0
        sent = 0
        warmup = 5.0
        while True:
            elapsed = time.monotonic() - t_start
            if elapsed >= warmup + seconds:
                break
            if not measuring and elapsed >= warmup:
                measuring, cpu0, wall0, sent = True, _cpu_seconds(pid), time.monotonic(), 0
            now = time.time()
            readings = plant.readings(k * period)
            await pub.publish_many([(c, v, now) for c, v in readings.items()])
            sent += len(readings)
            k += 1
            await asyncio.sleep(max(0.0, t_start + k * period - time.monotonic()))
        cpu = _cpu_seconds(pid) - cpu0
        wall = time.monotonic() - wall0
        await asyncio.sleep(0.5)
        listener.cancel()
    out: dict[str, Any] = {"values_per_s": sent / wall, "cpu_share": cpu / wall,
                           "gaps": sub_client.gaps}
    for kind, values in lat.items():
        arr = np.asarray(values) * 1e3
        out[kind] = (len(arr), float(np.percentile(arr, 50)), float(np.percentile(arr, 99)))
    return out


# --- 2. ROC ------------------------------------------------------------------------------------

def _false_flags(stage: Path, h: float, hours: float) -> tuple[int, float]:
    """Suspect verdicts over ``hours`` of healthy data (2 readings/s), and the CPU seconds."""
    t = time.process_time()
    engine = Engine(stage, threshold=h)
    plant = _plant(engine, [], seed=11)
    flags = 0
    for k in range(int(hours * 3600.0 * 2.0)):
        flags += sum(a.kind == "suspect" and a.active for a in engine.feed(plant.samples(k / 2.0)).alarms)
    return flags, time.process_time() - t


def _drift(stage: Path, h: float, channel: str, seed: int) -> tuple[float, bool]:
    """(delay from the drift's start to ``channel``'s flag, inf if none; whether another
    sensor was flagged)."""
    engine = Engine(stage, threshold=h)
    start = 60.0
    plant = _plant(engine, [Fault(channel, "drift", start, 0.05)], seed=seed)
    delay, others = math.inf, False
    for k in range(int((start + 150.0) * 10.0)):
        for a in engine.feed(plant.samples(k / 10.0)).alarms:
            if a.kind == "suspect" and a.active:
                if a.channel == channel and k / 10.0 >= start:
                    delay = min(delay, k / 10.0 - start)
                else:
                    others = True
    return delay, others


def roc(stage: Path, hours: float, seeds: int) -> tuple[list[tuple[float, float, int, float, float, int, int]], float]:
    thermocouples = [c for c in Engine(stage).channels if "/tc" in c]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        healthy = {h: pool.submit(_false_flags, stage, h, hours) for h in THRESHOLDS}
        drifts = {h: [pool.submit(_drift, stage, h, c, 100 + 20 * i + s)
                      for i, c in enumerate(thermocouples) for s in range(seeds)] for h in THRESHOLDS}
        rows = []
        for h in THRESHOLDS:
            false, _ = healthy[h].result()
            done = [f.result() for f in drifts[h]]
            d = np.asarray([delay for delay, _ in done])
            rows.append((h, false / hours, false, float(np.median(d)), float(d.max()),
                         sum(others for _, others in done), len(done)))
        fed = healthy[THRESHOLDS[-1]].result()[1]
    return rows, fed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="latency measurement (s)")
    parser.add_argument("--rate", type=float, default=1000.0, help="values/s published")
    parser.add_argument("--hours", type=float, default=4.0, help="healthy data for the ROC (simulated h)")
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds of each thermocouple's drift")
    parser.add_argument("--runs", type=int, default=1, help="latency runs (each reported)")
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--roc-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stage = make_stage(Path(tmp), ENGINE_TABLES)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}")
        for run in range(0 if args.roc_only else args.runs):
            lat = latency(stage, args.seconds, args.rate)
            print(f"\nrun {run + 1}: {lat['values_per_s']:.0f} values/s published for {args.seconds:g} s "
                  f"(load average {os.getloadavg()[0]:.1f}); engine CPU share {lat['cpu_share']:.1%} of "
                  f"one core; {lat['gaps']} values skipped for the subscriber")
            print("| derived channels | samples | p50 | p99 |\n|---|---:|---:|---:|")
            for kind, label in (("reading", "per reading: twin/virtual/*, twin/input/*"),
                                ("period", "per health period: twin/health/*, twin/suspect/*, twin/eta/*")):
                n, p50, p99 = lat[kind]
                print(f"| {label} | {n} | {p50:.1f} ms | {p99:.1f} ms |")
        if args.latency_only:
            return
        rows, fed = roc(stage, args.hours, args.seeds)
        print(f"\nROC: {args.hours:g} h of healthy data per threshold ({fed:.0f} s of CPU each); drift "
              f"0.05 K/s on each of 11 thermocouples, {args.seeds} seeds each")
        print("| CUSUM threshold h | false flags per hour (15 sensors) | false flags | delay, median | "
              "delay, worst | drifts with a neighbour flagged |")
        print("|---:|---:|---:|---:|---:|---:|")
        for h, per_hour, n, med, worst, blamed, runs in rows:
            print(f"| {h:g} | {per_hour:.2f} | {n} | {med:.0f} s | {worst:.0f} s | {blamed} of {runs} |")


if __name__ == "__main__":
    main()
