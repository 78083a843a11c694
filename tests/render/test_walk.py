"""Walk-throughs: camera paths, a rendered path frame, movies, the USD camera, ``twin3d view``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from twin3d.errors import RenderError
from twin3d.view.camerapath import CameraPath, load_path, orbit_path

pv = pytest.importorskip("pyvista")

KEYS = dict(positions=[[0.75, -0.45, 0.45], [0.2, -0.35, 0.3], [-0.3, 0.1, 0.35]],
            focal_points=[[0.2, 0.15, 0.0], [0.2, 0.15, 0.0], [0.25, 0.2, 0.0]])


# --- camera paths (pure) -------------------------------------------------------------------


def test_spline_passes_through_its_keys() -> None:
    path = CameraPath(np.array(KEYS["positions"]), np.array(KEYS["focal_points"]))
    pos, foc = path.sample(9)
    assert pos.shape == foc.shape == (9, 3)
    np.testing.assert_allclose(pos[0], KEYS["positions"][0])
    np.testing.assert_allclose(pos[-1], KEYS["positions"][-1])
    np.testing.assert_allclose(foc[-1], KEYS["focal_points"][-1])
    # the middle key is on the curve: some sample lies close to it, none jumps away
    d = np.linalg.norm(path.sample(401)[0] - KEYS["positions"][1], axis=1)
    assert d.min() < 5e-3
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert steps.max() < 3 * steps.mean()


def test_orbit_is_closed_circle_around_center() -> None:
    path = orbit_path((1.0, 2.0, 0.0), 2.0, elevation=30.0, keys=8)
    pos, foc = path.sample(50)
    r = np.linalg.norm(pos - [1.0, 2.0, 0.0], axis=1)
    np.testing.assert_allclose(r, 2.0, rtol=2e-2)
    np.testing.assert_allclose(pos[:, 2], 2.0 * math.sin(math.radians(30)), rtol=2e-2)
    np.testing.assert_allclose(foc, np.tile([1.0, 2.0, 0.0], (50, 1)))
    # closed: the last frame steps to the first as the others step to each other
    steps = np.linalg.norm(np.diff(np.vstack([pos, pos[:1]]), axis=0), axis=1)
    assert steps.max() / steps.min() < 1.2


def test_path_toml_round_trip_and_errors(tmp_path: Path) -> None:
    path = CameraPath(np.array(KEYS["positions"]), np.array(KEYS["focal_points"]), fov=40.0)
    f = tmp_path / "walk.toml"
    f.write_text(path.to_toml())
    back = load_path(f)
    np.testing.assert_allclose(back.positions, path.positions)
    assert back.fov == 40.0 and not back.closed
    f.write_text("[orbit]\ncenter = [0, 0, 0]\nradius = 2\n")
    assert load_path(f).closed
    for text, match in [("[[key]]\nposition = [1, 2]\n", "key 1 needs position"),
                        ("[[key]]\nposition = [1, 2]\nfocal_point = [0, 0, 0]\n",
                         "three numbers"),
                        ("fov = 30\n", "no \\[\\[key\\]\\] tables"),
                        ("[[key]\n", "not valid TOML"),
                        ('camera = "/Cam"\n', "needs the stage")]:
        f.write_text(text)
        with pytest.raises(RenderError, match=match) as exc:
            load_path(f)
        assert "\n" not in str(exc.value)
    with pytest.raises(RenderError, match="cannot read"):
        load_path(tmp_path / "missing.toml")


# --- USD camera ------------------------------------------------------------------------------


def test_path_exported_as_time_sampled_usd_camera(view_plate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pxr import Sdf, Usd, UsdGeom

    from twin3d.errors import StageError
    from twin3d.usd.camera import export_camera_path, read_cameras

    twin, _ = view_plate
    path = orbit_path((0.2, 0.15, 0.0), 0.6, elevation=35.0)
    pos, foc = path.sample(24)
    out = export_camera_path(tmp_path / "walk.usdc", twin.stage_path, pos, foc, fps=12.0,
                             fov=path.fov)
    stage = Usd.Stage.Open(str(out))
    assert stage.GetTimeCodesPerSecond() == 12.0
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0.0, 23.0)
    assert stage.GetPrimAtPath("/Plate/Geom/Body").IsA(UsdGeom.Mesh)  # the scene comes along
    assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/Plate")
    assert Sdf.FileFormat.FindByExtension("usdc").CanRead(str(out))  # crate, not text
    cam = UsdGeom.Camera(stage.GetPrimAtPath("/Plate/WalkCamera"))
    op = UsdGeom.Xformable(cam).GetOrderedXformOps()[0]
    assert len(op.GetAttr().GetTimeSamples()) == 24
    assert cam.GetCamera(0).GetFieldOfView(cam.GetCamera(0).FOVVertical) == pytest.approx(
        path.fov, abs=1e-3)
    keys = read_cameras(out)[0]
    np.testing.assert_allclose(keys.positions, pos, atol=1e-9)
    np.testing.assert_allclose(keys.focal_points, foc, atol=1e-6)
    # and a path TOML can follow it
    (tmp_path / "cam.toml").write_text('camera = "/Plate/WalkCamera"\n')
    again = load_path(tmp_path / "cam.toml", out)
    np.testing.assert_allclose(again.positions, pos, atol=1e-9)
    # a stage of its own that the validators find nothing new in (defaultPrim, samples in
    # crate): only the test plate's own findings remain
    from twin3d.usd.validate import validate_stage

    def found(path: Path) -> set[tuple[str, str]]:
        return {(f.rule, f.prim) for f in validate_stage(path).failures}

    assert found(Path(out)) <= found(twin.stage_path)
    with pytest.raises(StageError, match=r"write the camera as \.usdc"):
        export_camera_path(tmp_path / "walk.usda", twin.stage_path, pos, foc)
    assert not (tmp_path / "walk.usda").exists()


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.render
def test_walkthrough_frame(view_plate, assert_image) -> None:  # type: ignore[no-untyped-def]
    from twin3d.colormap import colorize
    from twin3d.view import View

    twin, model = view_plate
    path = CameraPath(np.array(KEYS["positions"]), np.array(KEYS["focal_points"]), fov=35.0)
    pos, foc = path.sample(5)
    values = {"plate/tc1": 25.0, "plate/tc2": 55.0, "plate/tc3": 75.0, "plate/tc4": 92.0}
    with View(twin, model, off_screen=True, window_size=(480, 360), field_range=(20.0, 100.0),
              lighting=False, show_sensors=False) as view:
        view.push(values)
        view.set_camera(pos[2], foc[2], path.up, path.fov)
        img = view.screenshot()
        np.testing.assert_allclose(view.plotter.camera.position, pos[2])
        assert view.plotter.camera.view_angle == pytest.approx(35.0)
        assert view.scalar_range == (20.0, 100.0)
        for ch, s in twin.sensors.items():
            r, c = view.screen_position(s.position)
            if 1 <= r < 359 and 1 <= c < 479:
                got = img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 3).mean(0)
                want = colorize([values[ch]], 20.0, 100.0)[0] * 255
                np.testing.assert_allclose(got, want, atol=10, err_msg=ch)
        assert_image(view.plotter)


@pytest.mark.render
@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_movie_export(view_plate, tmp_path: Path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    import imageio.v3 as iio

    from twin3d.view import View, export_movie

    twin, model = view_plate
    seen = []
    with View(twin, model, off_screen=True, window_size=(160, 120)) as view:
        out = export_movie(view, orbit_path((0.2, 0.15, 0.0), 0.6), tmp_path / f"walk{suffix}",
                           frames=6, fps=10, progress=False,
                           before_frame=lambda i: (seen.append(i),
                                                  view.push({"plate/tc1": 10.0 * i})))
        assert view.values["plate/tc1"] == 50.0
    assert seen == list(range(6))
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 6 and frames.shape[1:3] == (120, 160)
    assert np.abs(frames[0].astype(int) - frames[3].astype(int)).mean() > 2  # it moves
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.usda", f"walk{suffix}"]


@pytest.mark.render
def test_movie_bad_suffix_leaves_nothing(view_plate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from twin3d.view import View, export_movie

    twin, model = view_plate
    with View(twin, model, off_screen=True, window_size=(64, 48)) as view:
        with pytest.raises(RenderError, match=r"use \.mp4 or \.gif"):
            export_movie(view, orbit_path((0, 0, 0), 1.0), tmp_path / "walk.avi", frames=2)
    assert list(tmp_path.iterdir()) == [tmp_path / "plate.usda"]


# --- CLI -------------------------------------------------------------------------------------


@pytest.mark.render
def test_cli_view_walkthrough_and_usd_camera(view_plate, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import imageio.v3 as iio

    from twin3d.cli import main

    twin, _ = view_plate
    toml = tmp_path / "walk.toml"
    toml.write_text(CameraPath(np.array(KEYS["positions"]),
                               np.array(KEYS["focal_points"])).to_toml())
    gif, cam = tmp_path / "walk.gif", tmp_path / "cam.usdc"
    rc = main(["view", str(twin.stage_path), "--off-screen", "--path", str(toml), "--frames", "4",
               "-o", str(gif), "--size", "160x120", "--usd-camera", str(cam)])
    assert rc == 0, capsys.readouterr().err
    assert iio.imread(gif, index=None).shape[:3] == (4, 120, 160)
    assert cam.exists() and f"wrote {gif}" in capsys.readouterr().out
    # a text camera layer is refused before anything is rendered
    assert main(["view", str(twin.stage_path), "--off-screen", "-o", str(tmp_path / "y.gif"),
                 "--usd-camera", str(tmp_path / "cam.usda")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".usdc" in err[0]
    assert not (tmp_path / "y.gif").exists() and not (tmp_path / "cam.usda").exists()
    # bad usage -> 2; bad input -> 1, one line, nothing written
    assert main(["view", str(twin.stage_path), "-o", str(tmp_path / "x.avi")]) == 2
    assert main(["view", str(twin.stage_path), "--path", str(tmp_path / "none.toml"),
                 "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[1].startswith("twin3d view: error: ") and "none.toml" in err[1]
    assert not (tmp_path / "x.png").exists()


@pytest.mark.render
def test_usd_camera_of_the_real_plate_passes_twin3d_validate(bound_plate: Path, tmp_path: Path,
                                                            capsys) -> None:  # type: ignore[no-untyped-def]
    from twin3d.cli import main

    cam = tmp_path / "cam.usdc"
    assert main(["view", str(bound_plate), "--off-screen", "-o", str(tmp_path / "shot.png"),
                 "--size", "64x48", "--usd-camera", str(cam)]) == 0
    capsys.readouterr()
    assert main(["validate", str(cam)]) == 0, capsys.readouterr().out


@pytest.mark.render
@pytest.mark.slow
def test_cli_view_replays_a_recording_with_a_field(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """End to end: bind sensors, record through a real bridge, replay into ``twin3d view``."""
    import asyncio

    import imageio.v3 as iio
    from view_scene import SENSOR_VERTS, bind_plate

    pytest.importorskip("twin3d.twin")
    from twin3d.bridge import Bridge
    from twin3d.cli import main
    from twin3d.model import Sample

    stage = bind_plate(tmp_path)
    rec = tmp_path / "rec.sqlite"

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start("127.0.0.1", 0)
        try:
            await bridge.ingest([Sample(ch, 20.0 + 25.0 * n + k, 50.0 + k)
                                 for k in range(3) for n, ch in enumerate(SENSOR_VERTS)],
                                "test", wait_commit=True)
        finally:
            await bridge.stop()

    asyncio.run(record())
    shots = {}
    for name, extra in [("plain", []), ("field", ["--field", "temperature", "--recording",
                                                   str(rec)])]:
        out = tmp_path / f"{name}.png"
        rc = main(["view", str(stage), "-o", str(out), "--size", "320x240", *extra])
        assert rc == 0, capsys.readouterr().err
        shots[name] = iio.imread(out)[..., :3].astype(float)
    # the replayed field changed the plate's colours
    assert np.abs(shots["field"] - shots["plain"]).mean() > 5
    assert main(["view", str(stage), "--field", "von_mises", "-o", str(tmp_path / "x.png")]) == 2
    assert "no mesh of the stage has that field" in capsys.readouterr().err


@pytest.mark.render
@pytest.mark.slow
def test_cli_view_records_a_live_bridge_off_screen(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``twin3d view --bridge URL -o walk.gif``: frames of live values from a real bridge."""
    import asyncio
    import threading

    import imageio.v3 as iio
    from view_scene import SENSOR_VERTS, bind_plate

    pytest.importorskip("twin3d.twin")
    from twin3d.bridge import Bridge
    from twin3d.cli import main
    from twin3d.model import Sample

    stage = bind_plate(tmp_path)
    started, stop = threading.Event(), threading.Event()
    url: list[str] = []

    def serve() -> None:  # a real bridge on its own loop, fed with samples until told to stop
        async def run() -> None:
            bridge = Bridge()
            await bridge.start("127.0.0.1", 0)
            url.append(bridge.url)
            started.set()
            k = 0
            try:
                while not stop.is_set():
                    k += 1
                    await bridge.ingest([Sample(ch, 20.0 + 25.0 * n, float(k))
                                         for n, ch in enumerate(SENSOR_VERTS)], "test")
                    await asyncio.sleep(0.05)
            finally:
                await bridge.stop()

        asyncio.run(run())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert started.wait(20)
        gif = tmp_path / "live.gif"
        rc = main(["view", str(stage), "--bridge", url[0], "--field", "temperature",
                   "--frames", "4", "--fps", "8", "-o", str(gif), "--size", "160x120"])
        assert rc == 0, capsys.readouterr().err
    finally:
        stop.set()
        thread.join(20)
    frames = iio.imread(gif, index=None)
    assert frames.shape[:3] == (4, 120, 160)
    plain = tmp_path / "plain.gif"
    assert main(["view", str(stage), "--frames", "4", "--fps", "8", "-o", str(plain),
                 "--size", "160x120"]) == 0
    # the live field coloured the plate (same camera path, same size)
    assert np.abs(frames.astype(float) - iio.imread(plain, index=None).astype(float)).mean() > 5


@pytest.mark.render
def test_cli_view_says_when_no_subscription_comes(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``twin3d view --bridge URL -o shot.png`` with no bridge there: one line with the real wait."""
    import socket

    from view_scene import bind_plate

    pytest.importorskip("twin3d.twin")
    from twin3d.cli import main
    from twin3d.view import command

    stage = bind_plate(tmp_path)
    monkeypatch.setattr(command, "SUBSCRIBE_TIMEOUT_S", 0.5)
    with socket.socket() as closed:  # a bound port that does not listen: connections refused
        closed.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{closed.getsockname()[1]}"
        out = tmp_path / "shot.png"
        rc = main(["view", str(stage), "--bridge", url, "-o", str(out), "--size", "64x48"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.strip().splitlines() == [
        f"twin3d view: error: {url}: no subscription after 0.5 s; is the bridge up?"]
    assert not out.exists()


# --- what the CLI shows (issue 12) -----------------------------------------------------------


def _record(rec: Path, values: list[dict[str, float]], t0: float = 50.0) -> None:
    """A real bridge recording of ``values`` (one dict per second from ``t0``)."""
    import asyncio

    from twin3d.bridge import Bridge
    from twin3d.model import Sample

    async def run() -> None:
        bridge = Bridge(record=rec)
        await bridge.start("127.0.0.1", 0)
        try:
            await bridge.ingest([Sample(ch, v, t0 + k) for k, batch in enumerate(values)
                                 for ch, v in batch.items()], "test", wait_commit=True)
        finally:
            await bridge.stop()

    asyncio.run(run())


@pytest.fixture
def seen_views(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What each View showed when it was closed: its colour range, bar ticks and status."""
    from twin3d.view.renderer import View

    seen: list[dict[str, object]] = []
    close = View.close

    def spy(self: View) -> None:
        if not self._closed:
            bar = self.color_bar
            seen.append({"range": self.scalar_range, "status": self.status.GetText(0),
                         "ticks": [t.GetInput() for t in bar.labels if t.GetVisibility()]
                         if bar else []})
        close(self)

    monkeypatch.setattr(View, "close", spy)
    return seen


@pytest.mark.render
def test_cli_view_without_a_display_goes_off_screen_by_itself(
        tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The demo's 'Next:' command on a machine with no display: off-screen, says where."""
    import imageio.v3 as iio
    from view_scene import SENSOR_VERTS, bind_plate

    from twin3d.cli import main

    stage = bind_plate(tmp_path)
    _record(tmp_path / "recording.sqlite", [{ch: 20.0 + 25.0 * n + k for n, ch in
                                             enumerate(SENSOR_VERTS)} for k in range(3)])
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = main(["view", str(stage), "--recording", str(tmp_path / "recording.sqlite"),
               "--field", "temperature", "--frames", "3", "--size", "160x120"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err.strip().splitlines() == [
        "twin3d view: no display (DISPLAY is not set): rendering off-screen to "
        "recording-replay.mp4"]
    assert out.strip().splitlines()[-1] == "wrote recording-replay.mp4"
    assert iio.imread(work / "recording-replay.mp4", index=None).shape[:3] == (3, 120, 160)
    assert main(["view", str(stage)]) == 0
    assert (work / "plate-view.png").stat().st_size > 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.render
def test_cli_view_uses_the_stage_range_and_shows_the_source_time(
        tmp_path: Path, capsys, seen_views) -> None:  # type: ignore[no-untyped-def]
    from view_scene import SENSOR_VERTS, bind_plate

    import twin3d
    from twin3d.cli import main

    stage = bind_plate(tmp_path)
    rec = tmp_path / "rec.sqlite"
    _record(rec, [{ch: 85.0 + 2.0 * n + k for n, ch in enumerate(SENSOR_VERTS)}
                  for k in range(3)], t0=1767225600.0)
    common = ["view", str(stage), "--recording", str(rec), "--field", "temperature",
              "--size", "320x240"]
    # no range stored: the data's own
    assert main([*common, "-o", str(tmp_path / "a.png")]) == 0
    lo, hi = seen_views[-1]["range"]  # type: ignore[misc]
    assert 85.0 <= lo < hi <= 93.0
    # the live layer stores 20..105 for temperature: views use it from then on
    twin = twin3d.Twin.open(stage)
    n = sum(len(m.points) for m in twin.meshes)
    twin.set_field("Plate", "temperature", np.full(n, 50.0), vmin=20.0, vmax=105.0)
    twin.save()
    assert main([*common, "-o", str(tmp_path / "b.png")]) == 0
    shot = seen_views[-1]
    assert shot["range"] == (20.0, 105.0)
    assert shot["ticks"] == ["20", "40", "60", "80", "100"]
    # snapshots and movies say which time they show, and how fast a replay runs
    assert "replay rec.sqlite" in shot["status"]  # type: ignore[operator]
    assert "source 2026-01-01 00:00:02.0 UTC" in shot["status"]  # type: ignore[operator]
    assert main([*common, "--range", "0", "200", "--frames", "4", "--fps", "2",
                 "-o", str(tmp_path / "c.gif")]) == 0
    movie = seen_views[-1]
    assert movie["range"] == (0.0, 200.0)
    assert "replay rec.sqlite, 2 s in 2 s (1x)" in movie["status"]  # type: ignore[operator]
    assert main([*common, "--range", "5", "1", "-o", str(tmp_path / "d.png")]) == 2
    assert "VMIN < VMAX" in capsys.readouterr().err


@pytest.mark.render
@pytest.mark.slow
def test_cli_view_shows_von_mises_of_the_real_plate(bound_plate: Path, tmp_path: Path,
                                                   capsys, seen_views) -> None:  # type: ignore[no-untyped-def]
    """The stress model has six rows of W per vertex: the view sizes it by its vertices."""
    import imageio.v3 as iio

    from twin3d.cli import main

    out = tmp_path / "vm.png"
    rc = main(["view", str(bound_plate), "--field", "von_mises", "--off-screen", "-o", str(out),
               "--size", "320x240"])
    assert rc == 0, capsys.readouterr().err
    assert iio.imread(out).shape[:2] == (240, 320)
    assert seen_views[-1]["ticks"] == []  # no readings yet: "no data", not a 0-1 bar
