"""MQTT adapter benchmark: messages/s into the bridge against mosquitto_sub on the same stream.

    python benchmarks/mqtt.py              # about 1.5 minutes; needs mosquitto and mosquitto-clients
    python benchmarks/mqtt.py -n 30000 --repeat 1 --no-reference

A mosquitto broker is started on 127.0.0.1 (unlimited queues, so nothing is dropped). Every run
sends the same stream -- N QoS 0 JSON messages ``{"v": ..., "ts": ...}`` spread over 4 topics
``plant/line<k>/temp`` by 4 ``mosquitto_pub -l`` processes -- to:

1. ``mosquitto_sub -C N`` (the ceiling);
2. the twin3d MQTT adapter (gmqtt) with topic template ``plant/{line}/temp`` -> ``{line}/temp``,
   JSON value and time paths, into an ``ingest`` that only counts (the adapter alone);
3. the same adapter into a real ``Bridge.ingest`` recording to SQLite (WAL, synchronous=FULL):
   validated, recorded and fanned out.

Two timings per subscriber:

- live: from the first publish to the last message received, subscriber running all along.
  On a small machine the publishers and the broker share the cores, so this is capped by them;
- backlog: the subscriber is held (SIGSTOP for mosquitto_sub, socket reads paused for the
  adapter) while the whole stream is published, then released; the time to drain the broker's
  backlog is the subscriber's own capacity.

For reference (live only, when installed): a plain aiomqtt loop (``async for message in
client.messages``) and paho-mqtt's threaded loop handing batches to asyncio -- the clients that
were measured before choosing gmqtt. Rates are medians over the rounds; compare the ratios to
mosquitto_sub across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from twin3d.bridge.adapters.mqtt import MqttAdapter
from twin3d.model import Sample

TOPICS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stream:
    """The broker and the message files the publishers send."""

    def __init__(self, n: int, tmp: Path) -> None:
        self.port = _free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 0\nmax_queued_bytes 0\n")
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.n = n - n % TOPICS
        self.files = []
        for k in range(TOPICS):
            path = tmp / f"line{k}.txt"
            with path.open("w") as f:
                for i in range(self.n // TOPICS):
                    f.write(f'{{"v": {20 + (i % 1000) / 100:.3f}, "ts": {1763800000 + i * 1e-3:.6f}}}\n')
            self.files.append(path)

    def publish(self) -> list[subprocess.Popen[bytes]]:
        """Start the publishers (one per topic); returns the processes."""
        return [subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "0",
                                  "-t", f"plant/line{k}/temp", "-l"], stdin=path.open("rb"))
                for k, path in enumerate(self.files)]

    def close(self) -> None:
        self.broker.terminate()
        self.broker.wait(5)


def run_mosquitto_sub(stream: Stream, backlog: bool) -> float:
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(stream.port), "-q", "0",
                            "-t", "plant/#", "-C", str(stream.n)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # subscribed
    if backlog:
        os.kill(sub.pid, signal.SIGSTOP)
        for p in stream.publish():
            p.wait()
        time.sleep(0.5)
        t0 = time.perf_counter()
        os.kill(sub.pid, signal.SIGCONT)
        sub.wait(120)
        return stream.n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    pubs = stream.publish()
    sub.wait(120)
    t1 = time.perf_counter()
    for p in pubs:
        p.wait()
    return stream.n / (t1 - t0)


async def _adapter_rate(stream: Stream, ingest: Callable[[Sequence[Sample], str], Awaitable[Any]],
                        count: Callable[[], int], backlog: bool) -> float:
    adapter = MqttAdapter({"name": "bench", "host": "127.0.0.1", "port": stream.port, "topics": [
        {"topic": "plant/{line}/temp", "channel": "{line}/temp", "value": "v", "time": "ts"}]}, ingest)
    task = asyncio.create_task(adapter.run())
    await asyncio.wait_for(adapter.connected.wait(), 10)
    await asyncio.sleep(0.5)  # SUBACK
    pubs = []
    if backlog:
        adapter.pause_reading(True)
        for p in stream.publish():
            await asyncio.to_thread(p.wait)
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        adapter.pause_reading(False)
    else:
        t0 = time.perf_counter()
        pubs = stream.publish()
    while count() < stream.n:
        await asyncio.sleep(0.001)
    t1 = time.perf_counter()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    for p in pubs:
        p.wait()
    assert adapter.bad_messages == 0
    return stream.n / (t1 - t0)


def run_adapter_counting(stream: Stream, backlog: bool) -> float:
    got = [0]

    async def ingest(samples: Sequence[Sample], source: str) -> int:
        got[0] += len(samples)
        return len(samples)

    return asyncio.run(_adapter_rate(stream, ingest, lambda: got[0], backlog))


def run_adapter_bridge(stream: Stream, tmp: Path, backlog: bool) -> float:
    from twin3d.bridge import Bridge

    async def main() -> float:
        record = tmp / f"rec-{time.monotonic_ns()}.sqlite"
        bridge = Bridge(record=record)
        await bridge.start("127.0.0.1", 0)
        got = [0]

        async def ingest(samples: Sequence[Sample], source: str) -> int:
            n = await bridge.ingest(samples, source)
            got[0] += n
            return n

        try:
            return await _adapter_rate(stream, ingest, lambda: got[0], backlog)
        finally:
            await bridge.stop()

    return asyncio.run(main())


def run_aiomqtt(stream: Stream) -> float | None:
    try:
        import aiomqtt
    except ImportError:
        return None

    async def main() -> float:
        async with aiomqtt.Client("127.0.0.1", stream.port) as client:
            await client.subscribe("plant/#")
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            pubs = stream.publish()
            n = 0
            async for _ in client.messages:
                n += 1
                if n == stream.n:
                    break
            t1 = time.perf_counter()
        for p in pubs:
            p.wait()
        return stream.n / (t1 - t0)

    return asyncio.run(main())


def run_paho_threaded(stream: Stream) -> float | None:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        return None

    async def main() -> float:
        loop = asyncio.get_running_loop()
        buf: list[Any] = []
        lock = threading.Lock()
        state = {"scheduled": False, "n": 0}
        done = asyncio.Event()

        def drain() -> None:
            with lock:
                batch = buf[:]
                buf.clear()
                state["scheduled"] = False
            state["n"] += len(batch)
            if state["n"] >= stream.n:
                done.set()

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with lock:
                buf.append((msg.topic, msg.payload))
                if not state["scheduled"]:
                    state["scheduled"] = True
                    loop.call_soon_threadsafe(drain)

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = on_message
        client.connect("127.0.0.1", stream.port)
        client.subscribe("plant/#")
        client.loop_start()
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        pubs = stream.publish()
        await asyncio.wait_for(done.wait(), 120)
        t1 = time.perf_counter()
        client.loop_stop()
        client.disconnect()
        for p in pubs:
            p.wait()
        return stream.n / (t1 - t0)

    return asyncio.run(main())


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=60_000, help="messages per run (default 60000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3); medians are reported")
    parser.add_argument("--no-reference", action="store_true", help="skip the aiomqtt/paho reference runs")
    args = parser.parse_args(argv)
    for exe in ("mosquitto_pub", "mosquitto_sub"):
        if shutil.which(exe) is None:
            print(f"{exe} not found: apt-get install mosquitto mosquitto-clients", file=sys.stderr)
            return 1
    print(f"machine: {os.cpu_count()} cores, {_cpu()}, Python {platform.python_version()}")
    names = {"sub": "mosquitto_sub (ceiling)", "count": "twin3d MQTT adapter -> counting ingest",
             "bridge": "twin3d MQTT adapter -> Bridge.ingest (SQLite FULL)"}
    with tempfile.TemporaryDirectory() as tmp:
        stream = Stream(args.n, Path(tmp))
        print(f"stream: {stream.n:,} QoS 0 JSON messages over {TOPICS} topics, "
              f"{TOPICS} mosquitto_pub -l publishers, {args.repeat} rounds")
        rates: dict[tuple[str, str], list[float]] = {(k, m): [] for m in ("live", "backlog") for k in names}
        try:
            for _ in range(args.repeat):
                for mode in ("live", "backlog"):
                    backlog = mode == "backlog"
                    rates["sub", mode].append(run_mosquitto_sub(stream, backlog))
                    rates["count", mode].append(run_adapter_counting(stream, backlog))
                    rates["bridge", mode].append(run_adapter_bridge(stream, Path(tmp), backlog))
            reference = {} if args.no_reference else {
                "aiomqtt (plain async for)": run_aiomqtt(stream),
                "paho-mqtt threaded loop, batches to asyncio": run_paho_threaded(stream),
            }
        finally:
            stream.close()
    med = {key: statistics.median(v) for key, v in rates.items()}
    print(f"\n{'subscriber':<52} {'live msg/s':>11} {'ratio':>6} {'backlog msg/s':>14} {'ratio':>6}")
    for key, name in names.items():
        live, drain = med[key, "live"], med[key, "backlog"]
        print(f"{name:<52} {live:>11,.0f} {live / med['sub', 'live']:>5.2f}x "
              f"{drain:>14,.0f} {drain / med['sub', 'backlog']:>5.2f}x")
    for name, rate in reference.items():
        if rate is not None:
            print(f"{'reference: ' + name:<52} {rate:>11,.0f} {rate / med['sub', 'live']:>5.2f}x")
    print("\nper round (messages/s): " + "; ".join(
        f"{k} {m}: " + ", ".join(f"{r:,.0f}" for r in v) for (k, m), v in rates.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
