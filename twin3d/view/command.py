"""``twin3d view``: the live window, a replayed recording, a screenshot or a walk-through movie."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin3d.errors import RenderError, UsageError
from twin3d.model import Sample

__all__ = ["SUBSCRIBE_TIMEOUT_S", "run_view"]

#: Seconds ``twin3d view --bridge ... -o OUT`` waits for its subscription before giving up.
SUBSCRIBE_TIMEOUT_S = 5.0


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


def run_view(args: argparse.Namespace) -> int:
    """Run ``twin3d view`` from parsed arguments; return the exit code."""
    from twin3d.twin import Twin
    from twin3d.view.camerapath import load_path, orbit_path
    from twin3d.view.feed import feed_bridge, feed_recording, spread_recording
    from twin3d.view.movie import MOVIE_SUFFIXES, export_movie
    from twin3d.view.renderer import View

    out = Path(args.output) if args.output else None
    movie = out is not None and out.suffix.lower() in MOVIE_SUFFIXES
    if out is not None and not movie and out.suffix.lower() != ".png":
        raise UsageError(f"-o {out}: use .mp4 or .gif for a walk-through, .png for a screenshot")
    if args.bridge and args.recording:
        raise UsageError("--bridge and --recording both given; pick one source of values")
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    twin = Twin.open(args.stage)
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
                asyncio.run(feed_bridge(view, args.bridge, args.token))
            elif samples is not None:
                asyncio.run(feed_recording(view, samples, speed=args.speed))
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
            before: Callable[[int], None] | None = spread_recording(
                samples, args.frames if movie else 1, view.push)
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
    from twin3d.view.feed import background, feed_bridge
    from twin3d.view.movie import export_movie_live

    async def main() -> None:
        subscribed = asyncio.Event()
        # the render loop of feed_bridge idles (1 fps); the movie renders its own frames
        async with background(feed_bridge(view, args.bridge, args.token, fps=1.0,
                                          subscribed=subscribed)) as task:
            await _until_subscribed(subscribed, task, args.bridge)
            if movie:
                await export_movie_live(view, cam_path, out, frames=args.frames, fps=args.fps,
                                        progress=sys.stderr.isatty())
            else:
                await asyncio.sleep(1.0)
                p, f = cam_path.sample(1)
                view.set_camera(p[0], f[0], cam_path.up, cam_path.fov)
                view.screenshot(out)

    asyncio.run(main())
    print(f"wrote {out}")
    return 0


async def _until_subscribed(subscribed: asyncio.Event, task: asyncio.Task[None],
                            url: str) -> None:
    """Wait until ``subscribed`` is set, or fail when ``task`` ends or the timeout passes."""
    waiter = asyncio.ensure_future(subscribed.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=SUBSCRIBE_TIMEOUT_S,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if subscribed.is_set():
        return
    if task.done():
        task.result()
        raise RenderError(f"{url}: the subscription ended at once")
    raise RenderError(f"{url}: no subscription after {SUBSCRIBE_TIMEOUT_S:g} s; "
                      "is the bridge up?")
