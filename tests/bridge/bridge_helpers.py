"""Helpers for the bridge tests: a real ``twin3d serve`` subprocess on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
