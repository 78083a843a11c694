"""``twin3d view``: the live window, a replayed recording, a screenshot or a walk-through movie."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from twin3d.errors import RenderError, UsageError
from twin3d.model import Sample, Sensor

__all__ = ["open_twin", "run_view"]


@dataclass
class _StageOnly:
    """A stage's meshes without sensors (used until ``twin3d.Twin`` can open the stage)."""

    stage_path: str
    meshes: list[Any]
    sensors: Mapping[str, Sensor] = field(default_factory=dict)
    meters_per_unit: float = 1.0


def open_twin(stage: str) -> Any:
    """Open ``stage`` as a ``twin3d.Twin``; without the bindings room, its meshes only."""
    try:
        from twin3d import Twin
    except (ImportError, AttributeError):
        Twin = None
    if Twin is not None:
        return Twin.open(stage)
    from twin3d.usd.camera import meters_per_unit
    from twin3d.usd.layer import open_stage
    from twin3d.usd.mesh import read_meshes

    st = open_stage(stage)
    return _StageOnly(stage, read_meshes(st), {}, meters_per_unit(st))


def _field_models(twin: Any, name: str) -> dict[str, Any]:
    """Models of field ``name`` per mesh, from ``twin3d.fields.build_field_models`` (cached)."""
    from twin3d.fields import build_field_models

    per_mesh = build_field_models(twin)
    models = {path: qs[name] for path, qs in per_mesh.items() if name in qs}
    if not models:
        have = sorted({q for qs in per_mesh.values() for q in qs})
        raise UsageError(f"--field {name}: no mesh of the stage has that field "
                         f"(fields: {', '.join(have) or 'none; bind sensors first'})")
    return models


def _recording(path: str) -> list[Sample]:
    from twin3d.bridge import read_recording

    samples = list(read_recording(path))
    if not samples:
        raise RenderError(f"{path}: the recording holds no samples")
    return samples


def _spread(samples: Sequence[Sample], frames: int, push: Callable[[list[Sample]], None]
            ) -> Callable[[int], None]:
    """Frame i shows the recording up to t0 + (i + 1) / frames of its duration."""
    times = [s.time for s in samples]
    t0, t1 = times[0], times[-1]
    done = [0]

    def before(i: int) -> None:
        t = t0 + (t1 - t0) * (i + 1) / frames
        k = bisect.bisect_right(times, t)
        if k > done[0]:
            push(list(samples[done[0]:k]))
            done[0] = k

    return before


def run_view(args: argparse.Namespace) -> int:
    """Run ``twin3d view`` from parsed arguments; return the exit code."""
    from twin3d.view.camera import load_path, orbit_path
    from twin3d.view.live import View
    from twin3d.view.movie import MOVIE_SUFFIXES, export_movie

    out = Path(args.output) if args.output else None
    movie = out is not None and out.suffix.lower() in MOVIE_SUFFIXES
    if out is not None and not movie and out.suffix.lower() != ".png":
        raise UsageError(f"-o {out}: use .mp4 or .gif for a walk-through, .png for a screenshot")
    if args.bridge and args.recording:
        raise UsageError("--bridge and --recording both given; pick one source of values")
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    twin = open_twin(args.stage)
    models = _field_models(twin, args.field) if args.field else None
    off = bool(args.off_screen or out is not None)
    size = tuple(int(x) for x in args.size.lower().split("x")) if args.size else (1024, 768)
    if len(size) != 2:
        raise UsageError(f"--size {args.size}: give WIDTHxHEIGHT, e.g. 1280x720")
    samples = _recording(args.recording) if args.recording else None
    with View(twin, models, off_screen=off, window_size=size) as view:
        cam_path = load_path(args.path, args.stage) if args.path else orbit_path(
            view.plotter.center, 1.6 * view.diagonal, elevation=30.0)
        if not off:
            if args.bridge:
                asyncio.run(view.run_bridge(args.bridge, args.token))
            elif samples is not None:
                asyncio.run(view.replay(samples, speed=args.speed))
            else:
                view.show()
            return 0
        if args.usd_camera:
            from twin3d.usd.camera import export_camera_path

            pos, foc = cam_path.sample(args.frames)
            export_camera_path(args.usd_camera, args.stage, pos, foc, up=cam_path.up,
                               fov=cam_path.fov, fps=args.fps)
            print(f"wrote {args.usd_camera}")
        if out is None:
            return 0
        if samples is not None:
            view.connection = f"replay {Path(args.recording).name}"
            before: Callable[[int], None] | None = _spread(samples, args.frames if movie else 1,
                                                           view.push)
        else:
            before = None
        if args.bridge:
            return _bridge_offscreen(view, cam_path, out, args, movie)
        if movie:
            export_movie(view, cam_path, out, frames=args.frames, fps=args.fps,
                         before_frame=before, progress=sys.stderr.isatty())
        else:
            if before is not None:
                before(0)
            p, f = cam_path.sample(1)
            view.set_camera(p[0], f[0], cam_path.up, cam_path.fov)
            view.screenshot(out)
        print(f"wrote {out}")
    return 0


def _bridge_offscreen(view: Any, cam_path: Any, out: Path, args: argparse.Namespace,
                      movie: bool) -> int:
    """Write a walk-through (or one screenshot) of live values from a bridge."""
    from twin3d.view.movie import export_movie_live

    async def main() -> None:
        # the render loop of run_bridge idles (1 fps); the movie renders its own frames
        task = asyncio.create_task(view.run_bridge(args.bridge, args.token, fps=1.0))
        try:
            for _ in range(100):
                if view.subscribed is not None and view.subscribed.is_set():
                    break
                if task.done():
                    task.result()
                    raise RenderError(f"{args.bridge}: the subscription ended at once")
                await asyncio.sleep(0.05)
            else:
                raise RenderError(f"{args.bridge}: no subscription after 5 s; is the bridge up?")
            if movie:
                await export_movie_live(view, cam_path, out, frames=args.frames, fps=args.fps,
                                        progress=sys.stderr.isatty())
            else:
                await asyncio.sleep(1.0)
                p, f = cam_path.sample(1)
                view.set_camera(p[0], f[0], cam_path.up, cam_path.fov)
                view.screenshot(out)
        finally:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    asyncio.run(main())
    print(f"wrote {out}")
    return 0
