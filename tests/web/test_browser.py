"""The browser view in a real browser: Debian's headless Chromium against ``twin3d web``.

Each test runs the real command on the example plate (15 sensors, a heat model), a real
bridge (``twin3d serve``) where it needs one, and reads what the page shows: its state,
its HTML and the pixels of its WebGL canvas.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    ws_messages,
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


# --- moving parts ------------------------------------------------------------------------------

ARM = "/so101_new_calib/Geom/base_link/shoulder_link/upper_arm_link/lower_arm_link"
PAN = "so101_new_calib/shoulder_pan"


def _so101(tmp: Path) -> Path:
    """The robot demo's SO-101 (converted from its URDF: each joint bound to a channel) with
    its servo temperature sensors."""
    import twin3d
    from twin3d.demos.robot import SENSOR_MAP, URDF

    stage = tmp / "so101.usda"
    twin3d.convert([URDF], stage, progress=False)
    twin3d.bind_sensors(stage, twin3d.load_sensor_map(SENSOR_MAP))
    return stage


def _pan_rotation(angle: float) -> np.ndarray:
    """(4, 4) world rotation of the shoulder-pan joint by ``angle`` rad, from the URDF's
    joint origin (xyz, fixed-axis rpy) and axis: the base link is the world frame."""
    import math
    import xml.etree.ElementTree as ET

    from twin3d.demos.robot import URDF

    joint = next(j for j in ET.parse(URDF).getroot().iter("joint")
                 if j.get("name") == "shoulder_pan")
    origin = joint.find("origin")
    assert origin is not None
    xyz = np.array([float(v) for v in origin.get("xyz", "0 0 0").split()])
    r, p, y = (float(v) for v in origin.get("rpy", "0 0 0").split())

    def rot(axis: int, a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    axis_el = joint.find("axis")
    assert axis_el is not None
    axis = rot(2, y) @ rot(1, p) @ rot(0, r) @ np.array([float(v) for v in axis_el.get("xyz", "").split()])
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    turn = np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross  # Rodrigues
    out = np.eye(4)
    out[:3, :3] = turn
    out[:3, 3] = xyz - turn @ xyz
    return out


def _arm_points(stage: Path, n: int = 3000) -> np.ndarray:
    """(n, 3) world points (read with pxr) of the meshes of the forearm, wrist and gripper."""
    from pxr import Usd, UsdGeom

    st = Usd.Stage.Open(str(stage))
    cache = UsdGeom.XformCache()
    out = []
    for prim in Usd.PrimRange(st.GetPrimAtPath(ARM), Usd.TraverseInstanceProxies()):
        if prim.IsA(UsdGeom.Mesh):
            m = np.asarray(cache.GetLocalToWorldTransform(prim), dtype=np.float64)
            pts = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get(), dtype=np.float64)
            out.append(pts @ m[:3, :3] + m[3, :3])
    pts = np.concatenate(out)
    return pts[np.random.default_rng(0).choice(len(pts), n, replace=False)]


def _pixels(points: np.ndarray, camera: dict[str, object], size: tuple[int, int]) -> np.ndarray:
    """(k, 2) integer CSS pixels from the top left of ``points`` seen by a page's camera."""
    from twin3d.web.layout import camera_matrix

    w, h = size
    hom = np.column_stack([points, np.ones(len(points))]) @ camera_matrix(camera, w / h, (0.01, 10.0)).T
    ndc = hom[:, :2] / hom[:, 3:4]
    return np.column_stack([(ndc[:, 0] + 1) * 0.5 * w, (1 - ndc[:, 1]) * 0.5 * h]).astype(int)


def _arm_share(img: np.ndarray, px: np.ndarray) -> float:
    """Share of the pixels ``px`` showing the arm's yellow plastic (not the dark background)."""
    h, w = img.shape[:2]
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    rgb = img[px[inside, 1], px[inside, 0]].astype(int)
    yellow = (rgb[:, 0] > 110) & (rgb[:, 1] > 90) & (rgb[:, 2] < 0.6 * rgb[:, 0])
    return float(yellow.sum()) / len(px)


def _walk(message: object) -> Iterator[object]:
    """Every value in a decoded message, the message first, depth first."""
    yield message
    if isinstance(message, dict):
        for v in message.values():
            yield from _walk(v)
    elif isinstance(message, list | tuple):
        for v in message:
            yield from _walk(v)


def _described(messages: list[tuple[str, object]], key: str) -> list[dict[str, Any]]:
    """The properties of the VTK objects described in ``messages`` (either way) that have
    ``key``, with the object's ``id``."""
    return [{**v["properties"], "id": v.get("id")} for _, m in messages for v in _walk(m)
            if isinstance(v, dict) and isinstance(v.get("properties"), dict)
            and key in v["properties"]]


def test_a_joint_value_turns_the_arm_in_place(tmp_path: Path) -> None:
    """A shoulder-pan angle published to the bridge turns the SO-101's arm in the page where
    the joint's rotation (computed here from the URDF) puts it: the pixels of the forearm's
    points turned become the arm's, those at rest become background. The update carries
    matrices: the page fetches no array, receives no binary data, and the scene it gets
    refers to the same point arrays as before."""
    require_chromium()
    stage = _so101(tmp_path)
    angle = 1.1
    rest = _arm_points(stage)
    turned = rest @ _pan_rotation(angle)[:3, :3].T + _pan_rotation(angle)[:3, 3]
    with serve_process(tmp_path) as (_, bridge), \
            web_process(tmp_path, str(stage), "--bridge", bridge) as (_, url), \
            chromium(network=True) as driver:
        driver.get(url)
        page_ready(driver)
        driver.find_element("id", "t3-cam-top").click()
        camera = state(driver, "twin3d_cameras")["top"]
        time.sleep(0.5)
        before = canvas(driver)
        size = (before.shape[1], before.shape[0])
        at_rest, at_turn = _pixels(rest, camera, size), _pixels(turned, camera, size)
        assert _arm_share(before, at_rest) > 0.4 and _arm_share(before, at_turn) < 0.1
        loaded = ws_messages(driver)
        points = {v["points"]["hash"] for v in _described(loaded, "points")}
        matrices = {v["id"]: v["userMatrix"] for v in _described(loaded, "userMatrix")}
        assert points and matrices

        _publish(bridge, {PAN: angle})
        until(lambda: _arm_share(canvas(driver), at_turn) > 0.4, 10, "the arm turned")
        time.sleep(0.5)  # any further update of this move has arrived
        after = canvas(driver)
        assert _arm_share(after, at_rest) < 0.1
        update = ws_messages(driver)
        fetched = [m["args"] for way, m in update if way == "sent"
                   and m.get("method") == "viewport.geometry.array.get"]
        assert not fetched, f"the page fetched arrays for a move: {fetched}"
        assert not [m for way, m in update if way == "received"
                    and any(isinstance(v, bytes | bytearray) for v in _walk(m))]
        assert {v["points"]["hash"] for v in _described(update, "points")} <= points
        moved = {v["id"]: np.reshape(v["userMatrix"], (4, 4)).T
                 for v in _described(update, "userMatrix")
                 if v["userMatrix"] != matrices.get(v["id"])}
        # every part past the joint, and the markers on them, turned by the joint's rotation
        assert len(moved) >= 10
        for m in moved.values():
            np.testing.assert_allclose(m, _pan_rotation(angle), atol=1e-5)
