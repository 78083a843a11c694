"""``twin3d demo``: the whole loop on the demo twin, from CAD file to a recorded, viewable twin.

1. convert ``plate_holes.stl`` (a real machined plate, millimetres) to USD;
2. bind the sensors of ``plate_sensors.toml`` (11 thermocouples, 3 strain gauges, a load
   cell) and build its field models (steady-conduction FEM + residual kriging, P2
   elasticity; cached on disk after the first run);
3. start the bridge in-process on 127.0.0.1 with recording on (SQLite, acks after commit);
4. run simulated sensors over real WebSocket connections: the plate's heater runs steadily
   while the frame that cools it through the rear bolts slowly warms up (its cooling water
   degrades), until a thermocouple goes into alarm; a press cycles on the pad and the front
   bolt's pull is measured by the load cell. The readings come from the models' own physics
   (:meth:`~twin3d.fields.base.LinearFieldModel.readings`) plus sensor noise;
5. subscribe like any viewer: reconstruct the temperature and von Mises fields from the
   readings, show them (a window with a display; off-screen to a movie and PNG snapshots
   without one), author them into the USD live layer and a time-sampled USD recording.

Both inputs ship inside the package (``twin3d/data/``), so the demo runs from any folder after
a plain ``pip install``. A demo that fails leaves nothing behind in a folder it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin3d._types import PathLike
from twin3d.errors import Twin3DError
from twin3d.model import Sample, Sensor

__all__ = ["DemoResult", "PlateScenario", "build_twin", "run_demo", "summary"]

#: The demo's inputs, installed with the package (see twin3d/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
PLATE_CAD = DATA / "plate_holes.stl"
SENSOR_MAP = DATA / "plate_sensors.toml"
#: The device-side publisher of a clone of the repository (not installed with the package).
PUBLISHER = Path(__file__).resolve().parents[1] / "streaming" / "publisher.py"

#: Sensor noise (standard deviation) by quantity, in the sensors' units.
NOISE = {"temperature": 0.2, "strain": 1.5, "force": 4.0}
RATE_HZ = 10.0          # each sensor publishes this often
USD_EVERY_S = 0.5       # fields into the USD recording this often
LIVE_EVERY_S = 2.0      # live layer saved this often
TEMP_RANGE = (20.0, 105.0)


@dataclass
class DemoResult:
    """What a demo run produced."""

    folder: Path
    stage: Path
    live: Path
    recording_db: Path
    recording_usd: Path
    movie: Path | None = None
    snapshots: list[Path] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    published: int = 0
    acknowledged: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    validation: list[str] = field(default_factory=list)


class PlateScenario:
    """Simulated plant: the plate's inputs over time and what its sensors read.

    The heater holds the hottest thermocouple near 55 °C while the frame's temperature at
    the rear bolts rises along a smooth ramp, calibrated so that the hottest thermocouple
    ends a few degrees beyond its alarm limit; the press on the pad and the bolt pull cycle.

    Args:
        heat: the plate's :class:`~twin3d.fields.HeatModel` (its forward model makes readings).
        stress: the plate's :class:`~twin3d.fields.StressModel`.
        sensors: the twin's sensors (limits and quantities).
        duration: seconds the scenario spans.
        seed: seed of the sensor noise.
    """

    def __init__(self, heat: Any, stress: Any, sensors: Mapping[str, Sensor], duration: float,
                 seed: int = 0) -> None:
        self.heat, self.stress, self.duration = heat, stress, max(float(duration), 1e-3)
        self.sensors = sensors
        self.rng = np.random.default_rng(seed)
        self.ambient = 22.0
        src = [n for n in heat.inputs if n.startswith("source:")]
        fixed = [n for n in heat.inputs if n.startswith("fixed:")]
        per_watt = heat.readings({n: 1.0 for n in src})
        per_kelvin = heat.readings({n: 1.0 for n in fixed})
        base = heat.readings({n: 25.0 for n in fixed} | {"ambient": self.ambient})
        self.hottest = max(per_watt, key=per_watt.__getitem__)
        self.power = (55.0 - base[self.hottest]) / per_watt[self.hottest]
        limit = sensors[self.hottest].limits.alarm_high or 95.0
        self.frame_rise = (limit + 6.0 - 55.0) / max(per_kelvin[self.hottest], 1e-3)
        self._src, self._fixed = src, fixed
        # loads: peak gauge strain at 85% of the gauges' warn limit (the heat is the story)
        peak = {n: (1.0 if n == "press" else 2400.0) for n in stress.inputs}
        strains = [abs(v) for c, v in stress.readings(peak).items()
                   if sensors[c].quantity == "strain"]
        warn = min((sensors[c].limits.warn_high or math.inf) for c in stress.channels
                   if sensors[c].quantity == "strain") if strains else math.inf
        self.load_scale = 1.0 if not strains or not math.isfinite(warn) else \
            0.85 * warn / max(max(strains), 1e-9)

    def inputs(self, t: float) -> tuple[dict[str, float], dict[str, float]]:
        """Heat inputs (W, °C) and load-case amplitudes at time ``t`` (s)."""
        tau = min(max(t / self.duration, 0.0), 1.0)
        ramp = np.clip((tau - 0.1) / 0.8, 0.0, 1.0)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: the cooling water degrades
        heat = {n: self.power for n in self._src}
        heat |= {n: 25.0 + self.frame_rise * ramp for n in self._fixed}
        heat["ambient"] = self.ambient + 0.5 * math.sin(t / 7.0)
        loads = {}
        for name in self.stress.inputs:
            if name == "press":  # kN on the pad
                amplitude = 0.6 + 0.4 * math.sin(2 * math.pi * t / 9.0 + 1.0)
            else:                # N of bolt pull
                amplitude = 1500.0 + 900.0 * math.sin(2 * math.pi * t / 6.0)
            loads[name] = amplitude * self.load_scale
        return heat, loads

    def readings(self, t: float) -> dict[str, float]:
        """Every sensor's reading at time ``t``: the physics plus sensor noise."""
        heat, loads = self.inputs(t)
        out: dict[str, float] = self.heat.readings(heat) | self.stress.readings(loads)
        for channel, value in out.items():
            sigma = NOISE.get(self.sensors[channel].quantity, 0.0)
            out[channel] = round(value + float(self.rng.normal(0.0, sigma)), 3)
        return out


def _say(message: str) -> None:
    print(message, flush=True)


def build_twin(folder: Path) -> tuple[Any, dict[str, Any], str]:
    """Convert and bind the demo plate in ``folder``; return (twin, models, mesh path)."""
    from twin3d.cad.convert import convert
    from twin3d.fields import build_field_models
    from twin3d.sensors import load_sensor_map
    from twin3d.twin import Twin
    from twin3d.usd.bind import bind_sensors

    missing = [p.name for p in (PLATE_CAD, SENSOR_MAP) if not p.is_file()]
    if missing:
        raise Twin3DError(f"the demo's data ({', '.join(missing)}) is missing from {DATA}: "
                          "reinstall twin3d (pip install --force-reinstall twin3d)")
    stage = folder / "plate.usda"
    t0 = time.perf_counter()
    convert([PLATE_CAD], stage, units="mm", name="Plate", progress=False)
    _say(f"[1/5] converted {PLATE_CAD.name} (millimetres) -> {stage} "
         f"({time.perf_counter() - t0:.1f} s)")
    sensor_map = load_sensor_map(SENSOR_MAP)
    bound = bind_sensors(stage, sensor_map)
    twin = Twin.open(stage, reset=True)
    worst = max(s.snap_distance for s in bound) * twin.meters_per_unit * 1000
    _say(f"[2/5] bound {len(bound)} sensors from {SENSOR_MAP.name} "
         f"(largest snap {worst:.2f} mm)")
    t0 = time.perf_counter()
    per_mesh = build_field_models(twin)  # the [model] table travels in the bound stage
    if len(per_mesh) != 1:
        raise Twin3DError(f"the demo plate should have one mesh with sensors, found {len(per_mesh)}")
    mesh_path, models = next(iter(per_mesh.items()))
    for needed in ("temperature", "von_mises"):
        if needed not in models:
            raise Twin3DError(f"the demo's sensor map builds no {needed} model; check its [model]")
    _say(f"[3/5] field models: {models['temperature']!r}, {models['von_mises']!r} "
         f"({time.perf_counter() - t0:.1f} s; built once, then cached on disk)")
    return twin, models, mesh_path


def run_demo(output: PathLike = "twin3d-demo", *, duration: float = 30.0, seed: int = 0,
             headless: bool | None = None, movie: PathLike | None = None,
             window_size: tuple[int, int] = (960, 600)) -> DemoResult:
    """Run the demo twin end to end and return what it produced.

    Args:
        output: working folder (created, and removed again if the demo fails; earlier demo
            files in it are replaced).
        duration: seconds of simulated sensors.
        seed: seed of the sensor noise, for reproducible runs.
        headless: render off-screen (default: when there is no display).
        movie: the movie to write when headless (``.mp4`` or ``.gif``; default
            ``OUTPUT/demo.mp4``).
        window_size: the view's size in pixels.

    Raises:
        Twin3DError: the demo files are missing or a step failed (the message says which).
    """
    from twin3d.view.renderer import has_display

    if duration <= 0:
        raise Twin3DError(f"--duration must be positive, got {duration}")
    folder = Path(output)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        result = _run(folder, duration, seed, not has_display() if headless is None else headless,
                      movie, window_size)
    except BaseException:
        if created:  # nothing left behind: the folder was ours
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return result


def _run(folder: Path, duration: float, seed: int, headless: bool, movie: PathLike | None,
         window_size: tuple[int, int]) -> DemoResult:
    twin, models, mesh_path = build_twin(folder)
    result = DemoResult(folder=folder, stage=twin.stage_path, live=twin.root_path,
                        recording_db=folder / "recording.sqlite",
                        recording_usd=folder / "recording.usdc")
    if headless:
        result.movie = Path(movie) if movie else folder / "demo.mp4"
    for stale in (result.recording_db, result.recording_usd):
        for p in (stale, Path(f"{stale}-wal"), Path(f"{stale}-shm")):
            p.unlink(missing_ok=True)
    scenario = PlateScenario(models["temperature"], models["von_mises"], twin.sensors, duration,
                             seed)
    asyncio.run(_stream(twin, models, mesh_path, scenario, result, headless, window_size))
    _validate(result)
    return result


async def _stream(twin: Any, models: dict[str, Any], mesh_path: str, scenario: PlateScenario,
                  result: DemoResult, headless: bool, window_size: tuple[int, int]) -> None:
    from twin3d.bridge import Bridge, Client
    from twin3d.view import View
    from twin3d.view.feed import background

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    bridge = Bridge(record=result.recording_db)
    await bridge.start("127.0.0.1", 0)
    _say(f"[4/5] bridge on {bridge.url}, recording every sample to {result.recording_db}")
    heat, stress = models["temperature"], models["von_mises"]
    view = View(twin, heat, off_screen=headless, window_size=window_size,
                field_range=TEMP_RANGE)
    latest: dict[str, float] = {}
    states: dict[str, str] = {}
    t_start = time.time()

    def note(batch: Sequence[Sample]) -> None:
        for s in batch:
            latest[s.channel] = s.value
            sensor = twin.sensors.get(s.channel)
            if sensor is None:
                continue
            state = sensor.limits.state(s.value)
            if state != states.get(s.channel, "ok") and state != "ok":
                msg = (f"t={s.time - t_start:5.1f} s  {state.upper():5} {s.channel} "
                       f"{s.value:.1f} {sensor.unit} ({sensor.description})")
                result.alarms.append(msg)
                _say(f"      {msg}")
            states[s.channel] = state

    async def sensors_task(client: Any) -> None:
        t0 = time.monotonic()
        n = 0
        first = client.seq + 1
        while not stop.is_set():
            t = time.monotonic() - t0
            if t >= scenario.duration:
                break
            now = time.time()
            readings = scenario.readings(t)
            await client.publish_many([(ch, v, now) for ch, v in readings.items()])
            result.published += len(readings)
            n += 1
            await asyncio.sleep(max(0.0, n / RATE_HZ - (time.monotonic() - t0)))
        await client.flush(timeout=30)
        result.acknowledged = client.acked - first + 1

    async def viewer_task(client: Any, rec: Any) -> None:
        sub = await client.subscribe(["plate/*"])
        view.connection = f"connected {bridge.url}"
        async for batch in sub:
            view.push(batch)
            note(batch)
            rec.write_samples(batch)

    with twin.recording(result.recording_usd, fps=10.0,
                        ranges={"temperature": TEMP_RANGE}) as rec:
        async with Client(bridge.url, client_id="demo-sensors") as pub, \
                Client(bridge.url, client_id="demo-viewer") as sub:
            async with background(viewer_task(sub, rec)):
                await asyncio.sleep(0.2)  # let the subscription start before the first sample
                sensors = asyncio.create_task(sensors_task(pub))
                await _frames(view, twin, heat, stress, mesh_path, rec, latest, result,
                              sensors, stop, headless, scenario.duration)
                if stop.is_set():
                    result.interrupted = True
                    sensors.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sensors
                await asyncio.sleep(0.3)  # the last values reach the viewer
        _write_fields(twin, heat, stress, mesh_path, rec, latest, time.time(), live=True)
    view.close()
    await bridge.stop()
    result.seconds = time.time() - t_start


def _write_fields(twin: Any, heat: Any, stress: Any, mesh_path: str, rec: Any,
                  latest: Mapping[str, float], now: float, *, live: bool) -> None:
    if not latest:
        return
    temperature = heat.update(latest).copy()
    sigma = None if heat.sigma is None else heat.sigma.copy()
    von_mises = stress.update(latest).copy()
    rec.write(now, fields={mesh_path: {"temperature": temperature, "von_mises": von_mises}})
    if live:
        twin.update(latest, time=now)
        twin.set_field(mesh_path, "temperature", temperature, vmin=TEMP_RANGE[0],
                       vmax=TEMP_RANGE[1], sigma=sigma)
        twin.set_field(mesh_path, "von_mises", von_mises)
        twin.save()


async def _frames(view: Any, twin: Any, heat: Any, stress: Any, mesh_path: str, rec: Any,
                  latest: dict[str, float], result: DemoResult, sensors: asyncio.Task[None],
                  stop: asyncio.Event, headless: bool, duration: float) -> None:
    """The frame loop: render, write movie frames and snapshots, author USD."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from twin3d.view.movie import movie_writer

    fps = 10.0
    pts = np.concatenate([m.points for m in twin.meshes])
    center = (pts.min(axis=0) + pts.max(axis=0)) / 2
    radius = float(np.linalg.norm(np.ptp(pts, axis=0))) * 1.6
    shots = {"start": result.folder / "snapshot_start.png",
             "alarm": result.folder / "snapshot_alarm.png"}
    _say(f"[5/5] streaming {len(twin.sensors)} sensors at {RATE_HZ:g} Hz"
         + (f"; rendering off-screen to {result.movie}" if headless else "; close the window "
            "or press Ctrl-C to stop early"))
    writer = movie_writer(result.movie, fps) if headless and result.movie else \
        contextlib.nullcontext(None)
    t0 = time.monotonic()
    next_usd = next_live = 0.0
    with writer as append, Progress(TextColumn("      streaming"), BarColumn(),
                                    TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                    transient=True, disable=not _is_tty()) as bar:
        task = bar.add_task("stream", total=None, status="")
        if not headless:
            view.plotter.show(interactive_update=True, auto_close=False)
        while not sensors.done() and not stop.is_set():
            t = time.monotonic() - t0
            azimuth = math.radians(-125.0 + 50.0 * t / duration)
            position = center + radius * np.array([math.cos(azimuth) * math.cos(0.6),
                                                   math.sin(azimuth) * math.cos(0.6),
                                                   math.sin(0.6)])
            view.set_camera(position, center, (0.0, 0.0, 1.0), 30.0)
            view.render()
            if append is not None:
                append(view.screenshot())
            else:
                view.plotter.update(1)
                if view.window_closed():
                    stop.set()
            result.frames += 1
            if t >= 2.0 and "start" in shots:
                result.snapshots.append(_snapshot(view, shots.pop("start")))
            if "alarm" in shots and any("ALARM" in a for a in result.alarms):
                result.snapshots.append(_snapshot(view, shots.pop("alarm")))  # the first alarm
            if t >= next_usd:
                _write_fields(twin, heat, stress, mesh_path, rec, latest, time.time(),
                              live=t >= next_live)
                if t >= next_live:
                    next_live = t + LIVE_EVERY_S
                next_usd = t + USD_EVERY_S
            hot = max(((v, c) for c, v in latest.items()
                       if twin.sensors[c].quantity == "temperature"), default=(math.nan, "-"))
            bar.update(task, status=f"{result.published} values, hottest {hot[1]} "
                                    f"{hot[0]:.1f} °C, {len(result.alarms)} alerts")
            await asyncio.sleep(max(0.0, result.frames / fps - (time.monotonic() - t0)))
        view.render()
        result.snapshots.append(_snapshot(view, result.folder / "snapshot_end.png"))


def _snapshot(view: Any, path: Path) -> Path:
    view.screenshot(path)
    return path


def _is_tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _validate(result: DemoResult) -> None:
    from twin3d.usd.validate import validate_stage

    for path in (result.stage, result.recording_usd):
        report = validate_stage(path)
        ran = ", ".join(r.split(" (")[0] for r in report.ran)
        line = f"{path.name}: {len(report.failures)} failure(s) [{ran}]"
        result.validation.append(line)
        for f in report.failures[:5]:
            result.validation.append(f"  {f}")


def summary(result: DemoResult) -> str:
    """The closing text: what was produced and the commands to use it."""
    folder = result.folder
    pub = PUBLISHER if PUBLISHER.is_file() else "publisher.py"
    lines = [
        "",
        f"{'Stopped early (Ctrl-C)' if result.interrupted else 'Done'} after "
        f"{result.seconds:.0f} s: {result.published} values published, "
        f"{result.acknowledged} acknowledged by the recorder, {result.frames} frames, "
        f"{sum('ALARM' in a for a in result.alarms)} alarm(s).",
        "",
        "Produced:",
        f"  {result.stage}  (the twin: geometry + bound sensors)",
        f"  {result.live}  (open this one: the stage with its live layer on top)",
        f"  {result.recording_usd}  (USD time samples: values, temperature, von Mises)",
        f"  {result.recording_db}  (every sample, SQLite)",
    ]
    if result.movie is not None:
        lines.append(f"  {result.movie}")
    lines += [f"  {p}" for p in result.snapshots]
    lines += ["", "Validation:"] + [f"  {v}" for v in result.validation]
    lines += [
        "",
        "Next:",
        f"  usdview {result.live}    # the live state",
        f"  usdview {result.recording_usd}    # press play: the recorded run",
        "  (Omniverse: open the same files; the recording plays on the timeline)",
        f"  twin3d view {result.stage} --recording {result.recording_db} --field temperature",
        f"  twin3d export {result.recording_db} -o {folder / 'run.csv'}",
        "  twin3d serve --record run.sqlite      # then connect your own sensors:",
        f"  python {pub} ws://127.0.0.1:8765 plate/tc1 42.0"
        + ("" if PUBLISHER.is_file() else "    # streaming/publisher.py of the twin3d repository"),
    ]
    return "\n".join(lines)

