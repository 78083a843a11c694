"""What the demos share: the run through a real bridge, the frame loop, the result, the closing text.

A demo (:mod:`twin3d.demos.plate`, :mod:`twin3d.demos.robot`) builds its twin and its view,
then hands :func:`stream` a :class:`Plant` (what the simulated devices publish, how often) and
a :class:`Scene` (what each frame does with the latest values). :func:`stream` starts the
bridge in-process on 127.0.0.1 with recording on (SQLite, acks after commit), publishes the
plant's readings and subscribes like any viewer over real WebSocket connections, records
every value it receives in USD, and renders: a window with a display, else off-screen into a
movie and PNG snapshots. Ctrl-C (SIGINT/SIGTERM) stops early and still leaves a valid
recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from twin3d._types import PathLike
from twin3d.model import Sample

__all__ = ["DemoResult", "Moves", "Plant", "Scene", "fresh", "in_folder", "say", "stream",
           "summary", "validate"]

#: Seconds of every frame left to the bridge and the clients (the loop is shared).
MIN_IDLE_S = 0.02
#: The device-side publisher of a clone of the repository (not installed with the package).
PUBLISHER = Path(__file__).resolve().parents[2] / "streaming" / "publisher.py"


@dataclass
class DemoResult:
    """What a demo run produced.

    Attributes:
        scene: the demo (``"plate"`` or ``"robot"``).
        recorded: what the USD recording holds, for the closing text.
        example: a channel and a value for the closing text's publisher example.
        view_args: extra arguments of the closing text's ``twin3d view`` command.
    """

    folder: Path
    stage: Path
    live: Path
    recording_db: Path
    recording_usd: Path
    scene: str = "plate"
    recorded: str = ""
    example: str = ""
    view_args: str = ""
    movie: Path | None = None
    snapshots: list[Path] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    published: int = 0
    acknowledged: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    validation: list[str] = field(default_factory=list)


class Plant(Protocol):
    """The simulated devices: what they read at a time, how often they publish."""

    @property
    def duration(self) -> float: ...  # seconds the plant runs

    @property
    def rate_hz(self) -> float: ...  # publications a second

    def readings(self, t: float) -> dict[str, float]: ...  # {channel: value} at t (s)


class Scene(Protocol):
    """What the frame loop does with the latest values, ``fps`` times a second."""

    @property
    def fps(self) -> float: ...

    def frame(self, t: float, latest: Mapping[str, float], rec: Any) -> str:
        """Place the camera, move the parts, write USD (``rec``: the recording); return the
        progress bar's status text."""
        ...

    def finish(self, latest: Mapping[str, float], rec: Any) -> None:
        """The last writes: the live layer at the final values."""
        ...


class Moves:
    """The rigid motion of each mesh that property bindings move, as a view draws meshes.

    A view draws every mesh where the twin's stage puts it; for a twin opened at rest
    (``Twin.open(path, reset=True)``: no joint values in its live layer) a bound channel's
    value moves a mesh by ``world(values) @ inverse(world at rest)``
    (:meth:`twin3d.usd.motion.Motion.world_matrices`).

    Args:
        stage: the twin's composed stage (``Twin.stage``).
    """

    def __init__(self, stage: Any) -> None:
        from twin3d.usd.motion import Motion

        self.motion = Motion.from_stage(stage)
        self._unrest = {p: np.linalg.inv(m) for p, m in self.motion.world_matrices({}).items()}

    def world(self, values: Mapping[str, float]) -> dict[str, npt.NDArray[np.float64]]:
        """World (4, 4) matrices of the moving prims and meshes at ``values``."""
        return self.motion.world_matrices(values)

    def __call__(self, values: Mapping[str, float]) -> dict[str, npt.NDArray[np.float64]]:
        """``{prim path: (4, 4)}`` taking each moving prim's points at rest to where ``values``
        put them (world space, column vectors)."""
        return {p: m @ self._unrest[p] for p, m in self.world(values).items()}


def say(message: str) -> None:
    """Print a line of the demo's story now."""
    print(message, flush=True)


def in_folder(output: PathLike, run: Callable[[Path], DemoResult]) -> DemoResult:
    """Run a demo in ``output``; a demo that fails leaves nothing behind in a folder it created."""
    folder = Path(output)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return run(folder)
    except BaseException:
        if created:  # nothing left behind: the folder was ours
            shutil.rmtree(folder, ignore_errors=True)
        raise


def fresh(*paths: Path) -> None:
    """Remove an earlier run's recordings (and SQLite's side files)."""
    for stale in paths:
        for p in (stale, Path(f"{stale}-wal"), Path(f"{stale}-shm")):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)


async def stream(twin: Any, view: Any, plant: Plant, scene: Scene, result: DemoResult, *,
                 patterns: Sequence[str], headless: bool, record_fps: float, step: str,
                 intro: str, ranges: Mapping[str, tuple[float, float]] | None = None,
                 deform_scale: float = 1.0) -> None:
    """Run the plant through a recording bridge into the view and the USD recording.

    Args:
        twin: the demo's :class:`~twin3d.twin.Twin`.
        view: its :class:`~twin3d.view.View`.
        plant: publishes its readings at ``plant.rate_hz`` for ``plant.duration`` seconds.
        scene: called every frame with the latest values.
        result: filled in as the run goes.
        patterns: the channel globs the viewer subscribes to.
        headless: render off-screen into ``result.movie`` (else a window).
        record_fps: time codes a second of the USD recording.
        step: the story's step number shown when the bridge starts, e.g. ``"4/5"``.
        intro: the next line of the story, said once the bridge runs.
        ranges: fixed colour ranges of recorded fields.
        deform_scale: the exaggeration of the deformed shapes the scene records.
    """
    from twin3d.bridge import Bridge, Client
    from twin3d.view.feed import background

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    bridge = Bridge(record=result.recording_db)
    await bridge.start("127.0.0.1", 0)
    say(f"[{step}] bridge on {bridge.url}, recording every sample to {result.recording_db}")
    say(intro)
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
                say(f"      {msg}")
            states[s.channel] = state

    async def publish(client: Any) -> None:
        # a device with a clock: every tick is read and stamped at its own time, and ticks
        # that fell due while the loop was busy (rendering) go out together
        t0, wall0 = time.monotonic(), time.time()
        ticks = math.ceil(plant.duration * plant.rate_hz)
        n = 0
        first = client.seq + 1
        while n < ticks and not stop.is_set():
            due = min(ticks, int((time.monotonic() - t0) * plant.rate_hz) + 1)
            batch: list[tuple[str, float, float]] = []
            while n < due:
                t = n / plant.rate_hz
                batch += [(ch, v, wall0 + t) for ch, v in plant.readings(t).items()]
                n += 1
            await client.publish_many(batch)
            result.published += len(batch)
            await asyncio.sleep(max(0.0, n / plant.rate_hz - (time.monotonic() - t0)))
        await client.flush(timeout=30)
        result.acknowledged = client.acked - first + 1

    async def subscribe(client: Any, rec: Any) -> None:
        sub = await client.subscribe(list(patterns))
        view.connection = f"connected {bridge.url}"
        async for batch in sub:
            view.push(batch)
            note(batch)
            rec.write_samples(batch)

    with twin.recording(result.recording_usd, fps=record_fps, ranges=ranges,
                        deform_scale=deform_scale) as rec:
        async with Client(bridge.url, client_id="demo-sensors") as pub, \
                Client(bridge.url, client_id="demo-viewer") as sub:
            async with background(subscribe(sub, rec)):
                await asyncio.sleep(0.2)  # let the subscription start before the first sample
                sensors = asyncio.create_task(publish(pub))
                await _frames(view, scene, rec, latest, result, sensors, stop, headless,
                              plant.duration)
                if stop.is_set():
                    result.interrupted = True
                    sensors.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sensors
                await asyncio.sleep(0.3)  # the last values reach the viewer
        scene.finish(latest, rec)
    view.close()
    await bridge.stop()
    result.seconds = time.time() - t_start


async def _frames(view: Any, scene: Scene, rec: Any, latest: Mapping[str, float],
                  result: DemoResult, sensors: asyncio.Task[None], stop: asyncio.Event,
                  headless: bool, duration: float) -> None:
    """The frame loop: the scene's frame, render, movie frames and snapshots."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from twin3d.view.movie import movie_writer

    shots = {"start": result.folder / "snapshot_start.png",
             "alarm": result.folder / "snapshot_alarm.png"}
    writer = movie_writer(result.movie, scene.fps) if headless and result.movie else \
        contextlib.nullcontext(None)
    t0 = time.monotonic()
    written = 0
    with writer as append, Progress(TextColumn("      streaming"), BarColumn(),
                                    TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                    transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("stream", total=None, status="")
        if not headless:
            view.plotter.show(interactive_update=True, auto_close=False)
        while not sensors.done() and not stop.is_set():
            t = time.monotonic() - t0
            status = scene.frame(min(t, duration), latest, rec)
            view.render()
            if append is not None:  # the movie keeps wall-clock time: a late frame is held
                image = view.screenshot()
                for _ in range(max(1, math.floor(t * scene.fps) + 1 - written)):
                    append(image)
                    written += 1
            else:
                view.plotter.update(1)
                if view.window_closed():
                    stop.set()
            result.frames += 1
            if t >= 2.0 and "start" in shots:
                result.snapshots.append(_snapshot(view, shots.pop("start")))
            if "alarm" in shots and any("ALARM" in a for a in result.alarms):
                result.snapshots.append(_snapshot(view, shots.pop("alarm")))  # the first alarm
            bar.update(task, status=status)
            # even when late, leave the bridge and the clients some of every frame
            await asyncio.sleep(max(MIN_IDLE_S, result.frames / scene.fps - (time.monotonic() - t0)))
        view.render()
        result.snapshots.append(_snapshot(view, result.folder / "snapshot_end.png"))


def _snapshot(view: Any, path: Path) -> Path:
    view.screenshot(path)
    return path


def validate(result: DemoResult) -> None:
    """Run the installed validators on the stage and the USD recording; note the outcome."""
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
        f"  {result.recording_usd}  (USD time samples: {result.recorded})",
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
        f"  twin3d view {result.stage} --recording {result.recording_db}{result.view_args}",
        f"  twin3d export {result.recording_db} -o {folder / 'run.csv'}",
        "  twin3d serve --record run.sqlite      # then connect your own sensors:",
        f"  python {pub} ws://127.0.0.1:8765 {result.example}"
        + ("" if PUBLISHER.is_file() else "    # streaming/publisher.py of the twin3d repository"),
    ]
    return "\n".join(lines)
