"""Helpers for the browser tests: Debian's headless Chromium (selenium), ``twin3d web`` processes.

Chromium runs as root, so it needs ``--no-sandbox``; WebGL comes from SwiftShader; and
``--host-resolver-rules`` keeps it from reaching anything but 127.0.0.1 (it tries Google's
update and account services otherwise). Canvas pixels are read inside the page: every WebGL
context is made with ``preserveDrawingBuffer`` so ``readPixels`` sees the last frame.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PLATE = REPO / "scenes" / "plate"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
_SERVING = re.compile(r"on (http://[\d.]+:\d+/)")

_PRESERVE = """
const getContext = HTMLCanvasElement.prototype.getContext;
HTMLCanvasElement.prototype.getContext = function (kind, attrs) {
  return getContext.call(this, kind, Object.assign({}, attrs || {}, {preserveDrawingBuffer: true}));
};
"""

# (width, height, rgb bytes) of the view's canvas, read with WebGL
_CANVAS = """
const c = document.querySelector('.t3-canvas canvas');
if (!c) return null;
const gl = c.getContext('webgl2') || c.getContext('webgl');
const px = new Uint8Array(c.width * c.height * 4);
gl.readPixels(0, 0, c.width, c.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
let s = '';
for (let i = 0; i < px.length; i += 8192) s += String.fromCharCode.apply(null, px.subarray(i, i + 8192));
return [c.width, c.height, btoa(s)];
"""


def require_chromium() -> None:
    """Skip locally, fail in CI, when Chromium or its driver is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing or shutil.which("chromium") is None:
        message = "Chromium not found: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("selenium")


@contextmanager
def chromium(width: int = 1024, height: int = 700, *, network: bool = False) -> Iterator[Any]:
    """A headless Chromium driven by selenium (no downloads: Debian's browser and driver);
    ``network``: log its WebSocket frames (read them with :func:`ws_messages`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--enable-unsafe-swiftshader",
                "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    if network:
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _PRESERVE})
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, *, timeout: float = 30.0, what: str = "") -> Any:
    """Run ``script`` in the page until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        out = driver.execute_script(script)
        if out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what or script!r} within {timeout:g} s")
        time.sleep(0.05)


def page_ready(driver: Any, timeout: float = 60.0) -> list[list[float]]:
    """Wait until the scene loaded and this page's labels were placed; return the layout."""
    return wait_for(driver, "return window.trame && window.twin3d && window.trame.state && "
                    "(window.trame.state.get('twin3d_layouts') || {})[window.twin3d.id]",
                    timeout=timeout, what="the scene with its labels")


def state(driver: Any, key: str) -> Any:
    """A key of the page's trame state."""
    return driver.execute_script(f"return window.trame.state.get({key!r})")


def canvas(driver: Any) -> np.ndarray:
    """The WebGL canvas as (h, w, 3) uint8, top row first."""
    import base64

    w, h, data = driver.execute_script(_CANVAS)
    rgba = np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(h, w, 4)
    return np.ascontiguousarray(rgba[::-1, :, :3])


_PIXELS = """
const [x, y, r] = arguments;
const c = document.querySelector('.t3-canvas canvas');
const gl = c.getContext('webgl2') || c.getContext('webgl');
const n = 2 * r + 1, px = new Uint8Array(n * n * 4);
gl.readPixels(x - r, c.height - 1 - y - r, n, n, gl.RGBA, gl.UNSIGNED_BYTE, px);
return Array.from(px);
"""


def pixel(driver: Any, x: float, y: float, r: int = 1) -> np.ndarray:
    """Mean RGB of the canvas around CSS pixel (x, y) from the top left (device scale 1)."""
    px = np.asarray(driver.execute_script(_PIXELS, round(x), round(y), r), dtype=float)
    return px.reshape(-1, 4)[:, :3].mean(axis=0)


def copy_plate(tmp: Path) -> Path:
    """A copy of the example plate scene (its stage binds 15 sensors and a heat model)."""
    for f in PLATE.glob("plate.*"):
        shutil.copy(f, tmp / f.name)
    return tmp / "plate.usda"


@contextmanager
def web_process(tmp: Path, *args: str, name: str = "web") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``twin3d web ARGS --port 0``; yield (process, page URL); stop it with SIGINT."""
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "twin3d", "web", *args, "--port", "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            m = _SERVING.search(log.read_text(errors="replace"))
            if m:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"twin3d web did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def ws_messages(driver: Any) -> list[tuple[str, Any]]:
    """The wslink messages the page sent and received since the last call, decoded, in order:
    ``("sent" | "received", message)`` (needs ``chromium(network=True)``)."""
    import base64
    import json

    from wslink.chunking import UnChunker

    out: list[tuple[str, Any]] = []
    chunks = {"sent": UnChunker(), "received": UnChunker()}
    for u in chunks.values():
        u.set_max_message_size(1 << 30)
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        method = event["method"]
        if method not in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
            continue
        frame = event["params"]["response"]
        if frame["opcode"] != 2:  # wslink sends msgpack in binary frames only
            continue
        way = "sent" if method.endswith("Sent") else "received"
        message = chunks[way].process_chunk(base64.b64decode(frame["payloadData"]))
        if message is not None:
            out.append((way, message))
    return out


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        out = predicate()
        if out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)
