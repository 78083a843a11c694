"""Publish -> pixel latency: the browser view (headless Chromium) against the desktop view.

One run, one real bridge (``twin3d serve`` on 127.0.0.1). For each mesh size, a flat plate of
about N vertices with one sensor whose value sets the whole field (so every pixel of the
plate changes colour with it) is shown twice:

  browser  ``twin3d.web.WebView`` in this process, fed by the bridge, drawn by Debian's headless
           Chromium (software WebGL: SwiftShader); the time from the bridge acknowledging a
           sample to the page's canvas (read with ``readPixels``) showing the new colour
  desktop  ``twin3d.view.View`` off-screen (EGL), subscribed to the same bridge and rendering
           at 30 frames/s as ``twin3d view`` does; the time to the first frame with the new
           colour (``GetPixelData`` of that pixel after each frame)

Values alternate between two far-apart colours; the next is published only after the last
one was seen. Then a sustained run: a publisher at 20 Hz for 8 s, and how many scene updates
the browser view sent and the browser reported drawn (its backpressure coalesces the rest).

Run:  python benchmarks/web.py [--sizes 10000 100000] [--samples 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))

from browser import CHROMIUM, chromium, page_ready, pixel

from twin3d.model import Limits, Sensor
from twin3d.usd.meshes import MeshData

CHANNEL = "bench/s"
LOW, HIGH = 15.0, 85.0   # far apart on the colour map (range 0..100)


def plate(n_vertices: int) -> MeshData:
    """A flat square plate (1 m) of about ``n_vertices`` vertices, triangulated."""
    k = int(np.sqrt(n_vertices) + 0.5)
    x, y = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(k * k)], 1)
    i, j = np.meshgrid(np.arange(k - 1), np.arange(k - 1))
    a = (j * k + i).ravel()
    faces = np.concatenate([np.stack([a, a + 1, a + k + 1], 1), np.stack([a, a + k + 1, a + k], 1)])
    return MeshData("/Bench/Plate", pts.astype(np.float64), faces.astype(np.int64),
                    (0.6, 0.6, 0.6))


@dataclass
class Twin:
    sensors: dict[str, Sensor]
    meshes: list[MeshData] = field(default_factory=list)
    meters_per_unit: float = 1.0


class Uniform:
    """A field model: the sensor's value everywhere."""

    quantity, unit, channels = "temperature", "degC", [CHANNEL]

    def __init__(self, n: int) -> None:
        self.n_vertices = n

    def update(self, values: Any) -> np.ndarray:
        return np.full(self.n_vertices, float(values.get(CHANNEL, LOW)), dtype=np.float32)


def make_twin(n: int) -> tuple[Twin, Uniform]:
    mesh = plate(n)
    centre = int(np.argmin(np.linalg.norm(mesh.points - [0.5, 0.5, 0.0], axis=1)))
    sensor = Sensor(CHANNEL, "temperature", "degC", mesh.path,
                    position=tuple(map(float, mesh.points[centre])), limits=Limits())
    return Twin({CHANNEL: sensor}, [mesh]), Uniform(len(mesh.points))


def start_bridge(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = tmp / "bridge.log"
    proc = subprocess.Popen([sys.executable, "-m", "twin3d", "serve", "--port", "0"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    for _ in range(400):
        m = re.search(r"listening on (ws://[\d.]+:\d+)", log.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        time.sleep(0.05)
    raise SystemExit(f"bridge did not start:\n{log.read_text()}")


class Publisher:
    """Publishes from a thread; ``send`` returns when the bridge acknowledged the sample."""

    def __init__(self, url: str) -> None:
        from twin3d.bridge import SyncClient

        self.client = SyncClient(url)

    def send(self, value: float) -> float:
        self.client.publish(CHANNEL, value)
        self.client.flush()
        return time.perf_counter()

    def close(self) -> None:
        self.client.close()


def far(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).max()) > 30.0


# --- browser ---------------------------------------------------------------------------------

def browser_run(n: int, url: str, samples: int) -> dict[str, Any]:
    from twin3d.web.app import WebView

    twin, model = make_twin(n)
    web = WebView(twin, model, field_range=(0.0, 100.0), labels="all")
    box: dict[str, Any] = {}
    ready = threading.Event()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        box["loop"] = loop
        box["stop"] = asyncio.Event()
        web.build().controller.on_server_ready.add(lambda **_: ready.set())

        async def main() -> None:
            web.start(port=0, exec_mode="task", feeds=[web.feed_bridge(url)])
            await box["stop"].wait()
            await web.stop()

        loop.run_until_complete(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(60)
    pub = Publisher(url)
    out: dict[str, Any] = {}
    try:
        with chromium(1024, 700) as driver:
            driver.get(f"http://127.0.0.1:{web.port}/")
            row = page_ready(driver, timeout=120)[0]
            x, y = row[4] + 40.0, row[5]
            lat = []
            colors = {}
            for value in (LOW, HIGH):  # the two colours, settled
                pub.send(value)
                time.sleep(3.0)
                colors[value] = pixel(driver, x, y)
            assert far(colors[LOW], colors[HIGH]), colors
            for k in range(samples):
                value = HIGH if k % 2 == 0 else LOW
                t0 = pub.send(value)
                deadline = t0 + 20.0
                while True:
                    now = pixel(driver, x, y, r=0)
                    if not far(now, colors[value]):
                        lat.append(time.perf_counter() - t0)
                        break
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"browser: value {value} never drawn ({now})")
                time.sleep(0.3)
            out["latency"] = lat
            # sustained 20 Hz publishing
            u0, a0, t0 = web.updates, web.acks, time.perf_counter()
            k = 0
            while time.perf_counter() - t0 < 8.0:
                pub.send(LOW + (HIGH - LOW) * (k % 7) / 6)
                k += 1
                time.sleep(max(0.0, t0 + k / 20.0 - time.perf_counter()))
            dt = time.perf_counter() - t0
            out["published_hz"] = k / dt
            out["updates_hz"] = (web.updates - u0) / dt
            out["drawn_hz"] = (web.acks - a0) / dt
    finally:
        pub.close()
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
    return out


# --- desktop ---------------------------------------------------------------------------------

def desktop_run(n: int, url: str, samples: int) -> dict[str, Any]:
    from twin3d.bridge import Client
    from twin3d.view import View

    twin, model = make_twin(n)
    view = View(twin, model, off_screen=True, field_range=(0.0, 100.0), labels="all")
    view.render()
    row, col = view.screen_position(twin.sensors[CHANNEL].position)  # type: ignore[arg-type]
    h = view.plotter.window_size[1]
    px, py = col + 40, h - 1 - row
    rw = view.plotter.ren_win

    import vtk

    data = vtk.vtkUnsignedCharArray()

    def read() -> np.ndarray:
        rw.GetPixelData(px, py, px, py, 0, data, 0)
        return np.array([data.GetValue(i) for i in range(3)], dtype=float)

    async def main() -> list[float]:
        async with Client(url) as sub_client, Client(url) as pub_client:
            sub = await sub_client.subscribe([CHANNEL])

            async def pump() -> None:
                async for batch in sub:
                    view.push(batch)

            task = asyncio.ensure_future(pump())
            colors = {}
            for value in (LOW, HIGH):
                await pub_client.publish(CHANNEL, value)
                await pub_client.flush()
                for _ in range(30):
                    await asyncio.sleep(1 / 30)
                    view.render()
                colors[value] = read()
            assert far(colors[LOW], colors[HIGH]), colors
            lat = []
            for k in range(samples):
                value = HIGH if k % 2 == 0 else LOW
                await pub_client.publish(CHANNEL, value)
                await pub_client.flush()
                t0 = time.perf_counter()
                while True:  # the render loop of twin3d view: 30 frames/s
                    f0 = time.perf_counter()
                    view.render()
                    if not far(read(), colors[value]):
                        lat.append(time.perf_counter() - t0)
                        break
                    await asyncio.sleep(max(0.0, 1 / 30 - (time.perf_counter() - f0)))
                await asyncio.sleep(0.3)
            task.cancel()
            return lat

    try:
        return {"latency": asyncio.run(main())}
    finally:
        view.close()


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--samples", type=int, default=20)
    args = ap.parse_args()
    import tempfile

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
               platform.processor())
    chrome = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.node()}: {os.cpu_count()} cores, {cpu}; {chrome}; Python "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        bridge, url = start_bridge(Path(tmp))
        try:
            print("| vertices | view | p50 ms | p99 ms | max ms | samples | sustained 20 Hz: "
                  "updates sent/s | drawn/s |")
            print("|---:|---|---:|---:|---:|---:|---:|---:|")
            for n in args.sizes:
                b = browser_run(n, url, args.samples)
                d = desktop_run(n, url, args.samples)
                for name, r in (("browser", b), ("desktop", d)):
                    lat = r["latency"]
                    sus = (f"{r['updates_hz']:.1f} | {r['drawn_hz']:.1f}" if "updates_hz" in r
                           else "– | –")
                    print(f"| {n:,} | {name} | {pct(lat, 50):.0f} | {pct(lat, 99):.0f} | "
                          f"{max(lat) * 1e3:.0f} | {len(lat)} | {sus} |", flush=True)
                print(f"<!-- {n}: median ratio browser/desktop "
                      f"{statistics.median(b['latency']) / statistics.median(d['latency']):.1f}x; "
                      f"load average {os.getloadavg()[0]:.2f} -->", flush=True)
        finally:
            bridge.terminate()
            bridge.wait(10)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
