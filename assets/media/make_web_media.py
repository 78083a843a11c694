"""Regenerate the README's picture of the SO-101 moving in the browser view.

    python assets/media/make_web_media.py

builds the robot demo's twin (the SO-101 from its URDF, its servo sensors) in a temporary
folder, starts a bridge and ``twin3d web`` on it, opens the page in Debian's headless Chromium
(``apt-get install chromium chromium-driver``; selenium), publishes a pose and servo
temperatures through the bridge, and saves the page: ``assets/media/web_robot.png``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import twin3d
from twin3d.bridge import Bridge, SyncClient
from twin3d.demos.robot import SENSOR_MAP, URDF

HERE = Path(__file__).resolve().parent
POSE = {"shoulder_pan": 0.7, "shoulder_lift": -0.5, "elbow_flex": 0.6, "wrist_flex": 0.9,
        "wrist_roll": 0.0, "gripper": 0.6}
TEMPS = {"shoulder_pan": 41.0, "shoulder_lift": 58.5, "elbow_flex": 47.0, "wrist_flex": 44.0,
         "wrist_roll": 39.5, "gripper": 36.0}


def serve_bridge() -> str:
    """A bridge on a thread of its own; return its URL."""
    ready: list[str] = []

    async def run() -> None:
        bridge = Bridge()
        await bridge.start()
        ready.append(bridge.url)
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(run()), daemon=True).start()
    while not ready:
        time.sleep(0.05)
    return ready[0]


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder = Path(tempfile.mkdtemp(prefix="twin3d-web-media-"))
    stage = folder / "so101.usda"
    twin3d.convert([URDF], stage, progress=False)
    twin3d.bind_sensors(stage, twin3d.load_sensor_map(SENSOR_MAP))
    bridge = serve_bridge()
    log = folder / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen([sys.executable, "-m", "twin3d", "web", str(stage), "--bridge",
                                bridge, "--port", "0"], stdout=out, stderr=subprocess.STDOUT)
    try:
        while not (m := re.search(r"on (http://[\d.]+:\d+/)", log.read_text())):
            if web.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.1)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--enable-unsafe-swiftshader",
                    "--disable-dev-shm-usage", "--window-size=1024,640",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        try:
            driver.get(m.group(1))
            time.sleep(8.0)  # the page, its meshes and its first scene
            with SyncClient(bridge) as client:
                for joint, angle in POSE.items():
                    client.publish(f"so101_new_calib/{joint}", angle)
                for joint, temp in TEMPS.items():
                    client.publish(f"so101_new_calib/servo_temperature/{joint}", temp)
                client.flush()
            time.sleep(4.0)  # the update drawn and the labels placed
            driver.save_screenshot(str(HERE / "web_robot.png"))
        finally:
            driver.quit()
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(10)
    print(f"wrote {HERE / 'web_robot.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
