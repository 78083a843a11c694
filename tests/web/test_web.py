"""The browser view without a browser: label geometry, the serializer, the token gate, the CLI
and ``Twin.show()``."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("trame_pyvista")


# --- label geometry ----------------------------------------------------------------------------

def _plate_parts() -> Any:
    """A 1 m square plate at z = 0 as the one part of a view (the labels' occluder)."""
    import pyvista as pv

    from twin3d.usd.meshes import MeshData
    from twin3d.view.actors import build_mesh_actor
    from twin3d.view.parts import Parts

    plane = pv.Plane(center=(0.0, 0.0, 0.0), direction=(0, 0, 1), i_size=1.0, j_size=1.0,
                     i_resolution=4, j_resolution=4).triangulate()
    mesh = MeshData("/plate", np.asarray(plane.points, dtype=np.float64),
                    np.asarray(plane.faces).reshape(-1, 4)[:, 1:].astype(np.int64), (0.7, 0.7, 0.7))
    return Parts([build_mesh_actor(mesh, gpu=False)])


CAMERA = {"position": [1.5, -2.0, 1.2], "focalPoint": [0.05, 0.1, 0.0], "viewUp": [0, 0, 1],
          "viewAngle": 30.0, "parallelProjection": False, "parallelScale": 1.0}


def test_projection_matches_vtk_renderer() -> None:
    """The sensors' pixels for a browser camera are where VTK's own renderer puts them."""
    import vtk

    from twin3d.web.layout import LabelLayout

    pts = np.array([[0.2, 0.1, 0.0], [-0.3, 0.4, 0.0], [0.0, -0.45, 0.0]])
    layout = LabelLayout(_plate_parts())
    xy, on = layout.project(pts, CAMERA, (800, 500))
    ren, win = vtk.vtkRenderer(), vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.AddRenderer(ren)
    win.SetSize(800, 500)
    cam = ren.GetActiveCamera()
    cam.SetPosition(*CAMERA["position"])
    cam.SetFocalPoint(*CAMERA["focalPoint"])
    cam.SetViewUp(*CAMERA["viewUp"])
    cam.SetViewAngle(30.0)
    for p, (x, y) in zip(pts, xy, strict=True):
        ren.SetWorldPoint(*p, 1.0)
        ren.WorldToDisplay()
        dx, dy, _ = ren.GetDisplayPoint()
        assert abs(dx - x) < 0.5 and abs(dy - y) < 0.5
    assert on.all()


def test_sensors_behind_the_part_get_no_label() -> None:
    """A sensor under the plate seen from above is hidden; one on top is labelled."""
    from twin3d.web.layout import LabelLayout

    pts = np.array([[0.1, 0.1, 0.001], [0.1, 0.1, -0.05]])
    layout = LabelLayout(_plate_parts())
    above = {**CAMERA, "position": [0.1, 0.1, 3.0], "focalPoint": [0.1, 0.1, 0.0],
             "viewUp": [0, 1, 0]}
    assert layout.occluded(pts, above, 0.01).tolist() == [False, True]
    rows = layout.place(pts, above, (800, 500), [0, 1], [12, 12], [0, 0])
    assert [int(r[0]) for r in rows] == [0]


def test_a_moved_part_hides_and_uncovers_sensors_where_it_is_now() -> None:
    """Occlusion follows the part's matrix: the plate lifted by 0.2 m hides a sensor at
    z = 0.1 from above and no longer hides one under its rest place; slid 2 m aside, it
    hides neither."""
    from twin3d.web.layout import LabelLayout

    parts = _plate_parts()
    layout = LabelLayout(parts)
    pts = np.array([[0.1, 0.1, 0.1], [0.1, 0.1, -0.05]])
    above = {**CAMERA, "position": [0.1, 0.1, 3.0], "focalPoint": [0.1, 0.1, 0.0],
             "viewUp": [0, 1, 0]}
    assert layout.occluded(pts, above, 0.01).tolist() == [False, True]
    lifted = np.eye(4)
    lifted[2, 3] = 0.2
    parts.set_transforms({"/plate": lifted})
    assert layout.occluded(pts, above, 0.01).tolist() == [True, True]
    aside = np.eye(4)
    aside[0, 3] = 2.0
    parts.set_transforms({"/plate": aside})
    assert layout.occluded(pts, above, 0.01).tolist() == [False, False]


def test_labels_do_not_overlap() -> None:
    from twin3d.web.layout import LABEL_H_PX, LabelLayout

    pts = np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.0, 0.01, 0.0], [0.01, 0.01, 0.0]])
    layout = LabelLayout(_plate_parts())
    rows = layout.place(pts, CAMERA, (800, 500), [0, 1, 2, 3], [14] * 4, [3, 0, 1, 2])
    assert len(rows) == 4
    boxes = [(r[1], r[2], r[1] + r[3], r[2] + LABEL_H_PX) for r in rows]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] + 1e-6 or b[2] <= a[0] + 1e-6 or a[3] <= b[1] + 1e-6 \
                or b[3] <= a[1] + 1e-6, (a, b)


# --- serializer ----------------------------------------------------------------------------------

def test_serializer_matches_trame_and_hashes_triangles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same state as trame-vtk's own serializer; the unchanged triangles are hashed only once,
    the field that changed is hashed again."""
    import pyvista as pv
    import vtk
    from trame_vtk.modules.vtk.serializers import SynchronizationContext, helpers
    from trame_vtk.modules.vtk.serializers.data import polydata_serializer

    from twin3d.web import serializer

    mesh = pv.Sphere(theta_resolution=30, phi_resolution=30)
    mesh.point_data["f"] = np.zeros(mesh.n_points, dtype=np.float32)
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(mesh)
    mapper.SetScalarModeToUsePointFieldData()
    mapper.SelectColorArray("f")
    mapper.ScalarVisibilityOn()
    ctx = SynchronizationContext()
    theirs = polydata_serializer(mapper, mesh, "1", ctx, 0)
    ours = serializer._polydata(mapper, mesh, "1", ctx, 0)
    assert ours == theirs

    hashed: list[int] = []
    real = helpers.hash_data_array
    monkeypatch.setattr(helpers, "hash_data_array",
                        lambda a: (hashed.append(a.GetNumberOfValues()), real(a))[1])
    mesh.point_data["f"][:] = 1.0
    mesh.GetPointData().GetArray("f").Modified()
    again = serializer._polydata(mapper, mesh, "1", ctx, 0)
    assert hashed == [mesh.n_points]  # the field only: not the triangles, not the points
    assert again is not None and again["properties"]["polys"] == ours["properties"]["polys"]
    def field_hash(state: Any) -> str:
        return str(next(f["hash"] for f in state["properties"]["fields"] if f["name"] == "f"))

    assert field_hash(again) != field_hash(ours)


# --- the token gate ------------------------------------------------------------------------------

def _gated_server(token: str) -> tuple[str, Any]:
    """A real aiohttp server on 127.0.0.1 behind the gate: '/' says 'data', '/ws' is a socket."""
    import threading

    from aiohttp import web

    from twin3d.web.auth import token_gate

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="data")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str("state")
        await sock.close()
        return sock

    async def main() -> None:
        app = web.Application(middlewares=[token_gate(token)])
        app.router.add_get("/", page)
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["stop"] = asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)

    return box["url"], stop


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str, **headers: str) -> tuple[int, str, Any]:
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def _post(url: str, body: str) -> tuple[int, str, Any]:
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_token_gate() -> None:
    """No token: the form, no data, no socket; wrong token: refused, no cookie; right token in
    the form: a session cookie that opens the page and the socket; a Bearer header opens both."""
    import websockets
    from websockets.sync.client import connect

    url, stop = _gated_server("s3cret")
    try:
        status, body, _ = _get(url + "/")
        assert status == 401 and 'id="t3-login"' in body and "data" not in body.split("<body>")[1][:5]
        status, body, headers = _post(url + "/login", "token=wrong")
        assert status == 403 and "Wrong token." in body and "Set-Cookie" not in headers
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            connect(url.replace("http", "ws") + "/ws", open_timeout=10)
        assert refused.value.response.status_code == 401
        status, _, headers = _post(url + "/login", "token=s3cret")
        assert status == 303 and headers["Location"] == "./"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "s3cret" not in cookie and "HttpOnly" in headers["Set-Cookie"]
        assert _get(url + "/", Cookie=cookie)[:2] == (200, "data")
        assert _get(url + "/", Cookie=cookie + "x")[0] == 401
        assert _get(url + "/", Authorization="Bearer s3cret")[:2] == (200, "data")
        assert _get(url + "/", Authorization="Bearer wrong")[0] == 401
        with connect(url.replace("http", "ws") + "/ws", additional_headers={"Cookie": cookie},
                     open_timeout=10) as sock:
            assert sock.recv(10) == "state"
    finally:
        stop()


# --- the command line ------------------------------------------------------------------------------

def test_web_on_a_stage_without_bindings(plate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.cli import main

    assert main(["web", str(plate)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "binds no sensors" in err[0] and "twin3d bind" in err[0]


@pytest.mark.parametrize("flags, word", [(["--port", "70000"], "--port"),
                                         (["--bridge", "http://127.0.0.1:1"], "--bridge")])
def test_web_bad_usage(bound_plate: Path, flags: list[str], word: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.cli import main

    assert main(["web", str(bound_plate), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0]


# --- Twin.show() in a notebook ----------------------------------------------------------------------

@pytest.mark.slow
def test_show_serves_the_page_from_the_running_loop(tmp_path: Path) -> None:
    """As in a Jupyter kernel: show() on a running loop returns the page at once (its iframe),
    and the loop then serves it."""
    import shutil

    from twin3d.twin import Twin

    plate = Path(__file__).resolve().parents[2] / "scenes" / "plate"
    for f in plate.glob("plate.*"):
        shutil.copy(f, tmp_path / f.name)
    twin = Twin.open(tmp_path / "plate.usda", reset=True)  # not the example's toy values (no plate state)

    async def kernel() -> tuple[str, int, str]:
        page = twin.show()
        html = page._repr_html_()
        loop = asyncio.get_running_loop()
        for _ in range(300):
            await asyncio.sleep(0.1)
            status, body, _ = await loop.run_in_executor(None, _get, page.url + "index.html")
            if status == 200:
                break
        await page.web.stop()
        return html, status, body

    html, status, body = asyncio.run(kernel())
    assert status == 200 and "<html" in body.lower()
    assert html.startswith("<iframe src=\"http://127.0.0.1:") and "twin3d live view" in html


@pytest.mark.slow
def test_show_from_a_script_serves_from_a_thread(tmp_path: Path) -> None:
    """Without a running loop (a script), show() returns once the page is served; close() stops it."""
    import shutil

    from twin3d.twin import Twin

    plate = Path(__file__).resolve().parents[2] / "scenes" / "plate"
    for f in plate.glob("plate.*"):
        shutil.copy(f, tmp_path / f.name)
    page = Twin.open(tmp_path / "plate.usda", reset=True).show()
    try:
        status, body, _ = _get(page.url + "index.html")
        assert status == 200 and "<html" in body.lower()
    finally:
        page.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(page.url + "index.html", timeout=5)
