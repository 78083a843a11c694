"""The browser view in a real browser: Debian's headless Chromium against ``twin3d web``.

Each test runs the real command on the example plate (15 sensors, a heat model), a real
bridge (``twin3d serve``) where it needs one, and reads what the page shows: its state,
its HTML and the pixels of its WebGL canvas.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from bridge.bridge_helpers import serve_process
from browser import (
    canvas,
    chromium,
    copy_plate,
    page_ready,
    pixel,
    require_chromium,
    state,
    until,
    wait_for,
    web_process,
)
from conftest import IMAGE_CACHE, IN_CI

pytestmark = [pytest.mark.slow]

BASELINE = IMAGE_CACHE / "web_plate.png"
# values of the baseline picture: every sensor, so none is stale and all colours are known
VALUES = {**{f"plate/tc{i}": 30.0 + 6.0 * i for i in range(1, 12)},
          "plate/sg1": -120.0, "plate/sg2": 80.0, "plate/sg3": 250.0, "plate/load": 2500.0}


def _publish(url: str, values: dict[str, float]) -> float:
    """Publish ``values``; return the monotonic time when the bridge had them all."""
    from twin3d.bridge import SyncClient

    with SyncClient(url) as client:
        for ch, v in values.items():
            client.publish(ch, v)
        client.flush()
    return time.monotonic()


def _label(driver: object, channel: str) -> str:
    chans = state(driver, "twin3d_channels")
    return str(state(driver, "twin3d_labels")[chans.index(channel)][0])


def _compare_baseline(img: np.ndarray, tmp: Path) -> None:
    import imageio.v3 as iio

    if not BASELINE.exists():
        if IN_CI:
            pytest.fail(f"missing baseline {BASELINE.name}: run the test once locally and commit it")
        iio.imwrite(BASELINE, img)
        return
    iio.imwrite(tmp / "web_plate.png", img)
    base = iio.imread(BASELINE)
    assert base.shape == img.shape, f"canvas {img.shape} vs baseline {base.shape}"
    diff = np.abs(base.astype(int) - img.astype(int)).max(axis=2)
    # a tolerance for anti-aliased edges and SwiftShader rounding; a moved camera, a changed
    # colour map or a missing mesh changes far more pixels than this
    share = float((diff > 24).mean())
    assert share < 0.01, f"{share:.2%} of the canvas differs from {BASELINE.name} (see {tmp})"


def test_page_shows_live_values(tmp_path: Path) -> None:
    """The page loads; published values reach the labels and the canvas within 1 s; the
    canvas matches the committed baseline."""
    require_chromium()
    stage = copy_plate(tmp_path)
    with serve_process(tmp_path) as (_, bridge), \
            web_process(tmp_path, str(stage), "--bridge", bridge) as (_, url), \
            chromium() as driver:
        driver.get(url)
        page_ready(driver)
        wait_for(driver, "return (window.trame.state.get('twin3d_status') || '')"
                 ".startsWith('connected')", what="connected in the status line")
        assert state(driver, "twin3d_colorbar")["title"] == "temperature (°C)"

        _publish(bridge, VALUES)
        until(lambda: _label(driver, "plate/tc11") == "tc11  96 °C  ALARM", 10,
              "the published values in the labels")
        time.sleep(1.0)  # the last scene update drawn (its arrays fetched)
        _compare_baseline(canvas(driver), tmp_path)

        chans = state(driver, "twin3d_channels")
        row = next(r for r in page_ready(driver) if chans[int(r[0])] == "plate/tc5")
        ax, ay = row[4], row[5]
        before = pixel(driver, ax, ay)
        t0 = _publish(bridge, {"plate/tc5": 99.5})

        def changed() -> bool:
            now = pixel(driver, ax, ay)
            return (_label(driver, "plate/tc5") == "tc5  99.5 °C  ALARM"
                    and float(np.abs(now - before).max()) > 40.0 and now[0] > 2 * now[1])

        until(changed, 10, "the alarm at tc5 (label and red marker)")
        latency = time.monotonic() - t0
        assert latency < 1.0, f"publish -> label and pixel took {latency:.2f} s"


def test_bridge_down_page_says_so_and_retries(tmp_path: Path) -> None:
    """With the bridge down the page says so; once it is up the values arrive by themselves."""
    require_chromium()
    stage = copy_plate(tmp_path)
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    port = hold.getsockname()[1]
    bridge = f"ws://127.0.0.1:{port}"
    with web_process(tmp_path, str(stage), "--bridge", bridge) as (_, url), chromium() as driver:
        driver.get(url)
        page_ready(driver)
        alert = wait_for(driver, "return document.getElementById('t3-alert').offsetParent && "
                         "document.getElementById('t3-alert').textContent",
                         what="the bridge-down alert")
        assert "is down" in alert and "retrying" in alert and bridge in alert
        assert "bridge down" in state(driver, "twin3d_status")
        hold.close()
        with serve_process(tmp_path, port=port) as _:
            wait_for(driver, "return (window.trame.state.get('twin3d_status') || '')"
                     ".startsWith('connected')", timeout=30, what="connected after the retry")
            assert not state(driver, "twin3d_alert")
            _publish(bridge, {"plate/tc2": 61.0})
            until(lambda: _label(driver, "plate/tc2") == "tc2  61 °C", 10, "the value after the retry")


def test_token_gate_behind_reverse_proxy(tmp_path: Path) -> None:
    """Under /twin/ behind a reverse proxy, a wrong token gets the form again and no page (no
    scene); the right one, posted by the form, gets the twin (HTTP and WebSocket forwarded)."""
    from proxy import reverse_proxy
    from selenium.webdriver.common.by import By

    require_chromium()
    stage = copy_plate(tmp_path)
    with web_process(tmp_path, str(stage), "--token", "s3cret") as (_, url), \
            reverse_proxy("/twin/", url) as front, chromium() as driver:
        driver.get(front)
        driver.find_element(By.ID, "token").send_keys("wrong")
        driver.find_element(By.ID, "t3-login").submit()
        err = wait_for(driver, "const e = document.getElementById('t3-login-error'); "
                       "return e && e.textContent", what="the refusal")
        assert err == "Wrong token."
        assert driver.execute_script("return typeof window.trame") == "undefined"
        driver.find_element(By.ID, "token").send_keys("s3cret")
        driver.find_element(By.ID, "t3-login").submit()
        assert page_ready(driver)
        assert driver.current_url.startswith(front)
        assert "s3cret" not in driver.current_url
        assert state(driver, "twin3d_colorbar")["title"] == "temperature (°C)"
