"""Twin engine benchmark: latency and CPU live through a bridge, and the drift check's ROC.

    python benchmarks/engine.py                 # about 4 minutes
    python benchmarks/engine.py --seconds 60 --hours 8

1. **latency**: the demo plate twin (15 sensors, one virtual sensor), its plant publishing 1,000
   values/s (a round of 15 readings every 15 ms, stamped when sent) into ``twin3d serve``; the
   engine runs as ``twin3d engine`` in its own process; a subscriber in this process takes every
   derived channel. Latency = receive time - the derived sample's source time (the newest
   reading it was made from). Per-reading channels (``twin/virtual/*``, ``twin/input/*``) and
   per-period ones (``twin/health/*``, ``twin/suspect/*``, ``twin/eta/*``) are reported apart.
   The engine's CPU share is its process's CPU time over the wall time (1.0 = one core).
2. **ROC of the drift check** (sans-I/O, simulated time): the engine is fed healthy data for
   ``--hours`` hours (2 readings/s per sensor: the health residuals are standardised, so the
   false-flag rate per period does not depend on the rate) and, for each thermocouple, a drift
   of 0.05 K/s from t = 60 s (10 readings/s, as the demo); the CUSUM is replayed on the
   residuals the engine published, for each threshold ``h``: false flags per hour (all 15
   sensors together) against the delay from the drift's start to the flag (median and worst of
   the 11 thermocouples).
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
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from engine_plate import ENGINE_TABLES, NOISE, make_stage, steady  # noqa: E402

from twin3d.engine.core import Engine  # noqa: E402
from twin3d.engine.health import FaultCheck  # noqa: E402
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

def _health_series(engine: Engine, plant: SimulatedPlant, seconds: float,
                   rate: float) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for k in range(int(seconds * rate)):
        for s in engine.feed(plant.samples(k / rate)).samples:
            if s.channel.startswith("twin/health/"):
                series.setdefault(s.channel.removeprefix("twin/health/"), []).append((s.time, s.value))
    return series


def _flags(z: list[tuple[float, float]], h: float, settings: Any) -> list[float]:
    """Times the drift CUSUM with threshold ``h`` raises (rising edges)."""
    check = FaultCheck(None, h, settings.allowance, math.inf)
    out, was = [], False
    for t, value in z:
        check.period(value, t)
        now = check.flags["drift"]
        if now and not was:
            out.append(t)
        was = now
    return out


def roc(stage: Path, hours: float) -> tuple[list[tuple[float, float, int, float, float]], float]:
    engine = Engine(stage)
    t = time.perf_counter()
    healthy = _health_series(engine, _plant(engine, [], seed=11), hours * 3600.0, 2.0)
    fed = time.perf_counter() - t
    settings = engine.settings
    thermocouples = [c for c in engine.channels if "/tc" in c]
    delays: dict[float, list[float]] = {h: [] for h in THRESHOLDS}
    for i, channel in enumerate(thermocouples):
        eng = Engine(stage)
        start = 60.0
        series = _health_series(eng, _plant(eng, [Fault(channel, "drift", start, 0.05)], seed=100 + i),
                                start + 150.0, 10.0)[channel]
        for h in THRESHOLDS:
            after = [f for f in _flags(series, h, settings) if f >= start]
            delays[h].append(after[0] - start if after else math.inf)
    rows = []
    for h in THRESHOLDS:
        false = sum(len(_flags(z, h, settings)) for z in healthy.values())
        d = np.asarray(delays[h])
        rows.append((h, false / hours, false, float(np.median(d)), float(d.max())))
    return rows, fed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="latency measurement (s)")
    parser.add_argument("--rate", type=float, default=1000.0, help="values/s published")
    parser.add_argument("--hours", type=float, default=4.0, help="healthy data for the ROC (simulated h)")
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
        rows, fed = roc(stage, args.hours)
        print(f"\nROC: {args.hours:g} h of healthy data fed in {fed:.0f} s; drift 0.05 K/s on each of 11 thermocouples")
        print("| CUSUM threshold h | false flags per hour (15 sensors) | false flags | delay, median | delay, worst |")
        print("|---:|---:|---:|---:|---:|")
        for h, per_hour, n, med, worst in rows:
            print(f"| {h:g} | {per_hour:.2f} | {n} | {med:.0f} s | {worst:.0f} s |")


if __name__ == "__main__":
    main()
