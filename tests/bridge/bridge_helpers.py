"""Helpers for the bridge tests: a real ``twin3d serve`` subprocess on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import websockets

from twin3d.model import Sample

_LISTEN = re.compile(r"listening on (wss?://[\d.]+:\d+)")


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run a coroutine on a fresh loop, failing (not hanging) after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextmanager
def serve_process(tmp: Path, *args: str, name: str = "serve",
                  port: int = 0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``twin3d serve --port PORT ARGS``; yield (process, url); stop it with SIGTERM."""
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin3d", "serve", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            m = _LISTEN.search(log.read_text(errors="replace"))
            if m:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"twin3d serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_log(tmp: Path, name: str = "serve") -> str:
    return (tmp / f"{name}.log").read_text(errors="replace")


class Collector:
    """A real ingest callable for adapter tests: keeps every batch it is handed.

    Args:
        delay: seconds each call takes (a slow bridge).
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[tuple[list[Sample], str]] = []
        self.arrival: list[float] = []   # time.monotonic() of each sample's hand-over
        self.delay = delay

    async def __call__(self, samples: Sequence[Sample], source: str) -> int:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.batches.append((list(samples), source))
        self.arrival.extend(time.monotonic() for _ in samples)
        return len(samples)

    @property
    def samples(self) -> list[Sample]:
        return [s for batch, _ in self.batches for s in batch]

    async def wait_for(self, until: int | Callable[[list[Sample]], bool],
                       timeout: float = 10.0) -> list[Sample]:
        """The samples once there are ``until`` of them (or ``until(samples)`` holds), or at the
        timeout (the caller's assertions then say what is missing)."""
        done = until if callable(until) else (lambda s, n=until: len(s) >= n)
        deadline = time.monotonic() + timeout
        while not done(self.samples) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.samples


async def receive_samples(ws: Any, until: Callable[[list[dict[str, Any]]], bool],
                          got: list[dict[str, Any]] | None = None,
                          timeout: float = 10.0) -> list[dict[str, Any]]:
    """Read a subscriber's frames into ``got`` (sample dicts) until ``until(got)`` holds."""
    got = [] if got is None else got
    while not until(got):
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] in ("sample", "samples"):
            got += msg["samples"] if msg["type"] == "samples" else [msg]
    return got


@asynccontextmanager
async def bridge_subscriber(config: Any, record: Path | None,
                            patterns: list[str]) -> AsyncIterator[Any]:
    """An in-process bridge (with ``config``, recording to ``record``) and a plain WebSocket
    subscribed to ``patterns``; the bridge stops on exit."""
    from twin3d.bridge import Bridge

    bridge = Bridge(config, record=record)
    await bridge.start("127.0.0.1", 0)
    try:
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": patterns}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            yield ws
    finally:
        await bridge.stop()
