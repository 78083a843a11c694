"""``twin3d view``: the live window, a replayed recording, a screenshot or a walk-through movie.

Without a display (no ``DISPLAY``/``WAYLAND_DISPLAY``) and without ``-o``, the view renders
off-screen by itself and writes a picture (``STAGE-view.png``), or a movie of the replay
(``REC-replay.mp4``) with ``--recording``, into the current folder, and says so.

The field shown is ``--field``, else the one the stage shows (``twin:displayField``, set by
the live layer); its colour range is ``--range``, else the one stored in the stage, else the
data's. ``--difference SCENARIO`` shows that what-if's field (``twin3d whatif``) minus the live
field instead (:mod:`twin3d.view.difference`), over ``--range`` or a range symmetric about 0.
``--deform-scale X`` bends the parts that have a stress model by its displacement, X times (the
status line says ``deformation ×X``), whichever field is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin3d.errors import RenderError, UsageError
from twin3d.model import Sample

__all__ = ["SUBSCRIBE_TIMEOUT_S", "deforming_models", "difference_models", "run_view",
           "shown_field_models"]

#: Seconds ``twin3d view --bridge ... -o OUT`` waits for its subscription before giving up.
SUBSCRIBE_TIMEOUT_S = 5.0


def shown_field_models(twin: Any, name: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """The field to show and its models per mesh (``twin3d.fields``, cached on disk).

    ``name`` None: the field the stage shows, when the twin's models make it; else none.
    """
    shown = sorted(set(twin.displayed_fields.values()))
    if name is None and not shown:
        return None, None
    from twin3d.fields import build_field_models

    per_mesh = build_field_models(twin)
    have = sorted({q for qs in per_mesh.values() for q in qs})
    if name is None:
        name = next((q for q in ("temperature", *shown) if q in shown and q in have), None)
        if name is None:
            return None, None
    models = {path: qs[name] for path, qs in per_mesh.items() if name in qs}
    if not models:
        raise UsageError(f"--field {name}: no mesh of the stage has that field "
                         f"(fields: {', '.join(have) or 'none; bind sensors first'})")
    return name, models


def difference_models(twin: Any, field: str | None, models: dict[str, Any] | None,
                      scenario: str) -> dict[str, Any]:
    """The models that show what-if ``scenario``'s ``field`` minus the live one, per mesh.

    Raises:
        UsageError: no field to compare (the stage shows none and ``--field`` is not given).
        StageError: no such scenario (the message lists those there are), or one without
            that field on a mesh.
    """
    from twin3d.errors import StageError
    from twin3d.usd.scenario import scenario_fields
    from twin3d.view.difference import ScenarioDifference

    if field is None or not models:
        raise UsageError(f"--difference {scenario}: name the field to compare, e.g. "
                         "--field temperature")
    predicted = scenario_fields(twin.stage, scenario)
    prim = {m.path: m.prim for m in twin.meshes}   # a display surface carries the fields
    out = {}
    for path, model in models.items():
        values = predicted.get(prim.get(path, path), {}).get(field)
        if values is None:
            have = sorted({q for qs in predicted.values() for q in qs})
            raise StageError(f"scenario {scenario!r} has no {field} field on {path} (its "
                             f"fields: {', '.join(have) or 'none'}); run twin3d whatif again")
        out[path] = ScenarioDifference(model, values, scenario)
    return out


def deforming_models(twin: Any) -> dict[str, Any]:
    """The field models that give displacements (stress models), by mesh path.

    Raises:
        UsageError: no mesh of the twin has one.
    """
    from twin3d.fields import build_field_models

    out = {path: model for path, qs in build_field_models(twin).items()
           for model in qs.values() if getattr(model, "U", None) is not None}
    if not out:
        raise UsageError("--deform-scale: no mesh of the stage has a stress model to bend it "
                         "(bind strain gauges or a load cell with a [model.stress] table)")
    return out


def _recording(path: str) -> list[Sample]:
    from twin3d.bridge import read_recording

    samples = list(read_recording(path))
    if not samples:
        raise RenderError(f"{path}: the recording holds no samples")
    return samples


def _check_args(args: argparse.Namespace) -> tuple[tuple[int, int], tuple[float, float] | None,
                                                   str | list[str]]:
    """Usage errors before anything is opened: (window size, colour range, labels)."""
    from twin3d.usd.camera import CAMERA_SUFFIXES
    from twin3d.view.movie import MOVIE_SUFFIXES

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (*MOVIE_SUFFIXES, ".png"):
        raise UsageError(f"-o {out}: use .mp4 or .gif for a walk-through, .png for a screenshot")
    if args.bridge and args.recording:
        raise UsageError("--bridge and --recording both given; pick one source of values")
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if args.usd_camera and Path(args.usd_camera).suffix not in CAMERA_SUFFIXES:
        raise UsageError(f"--usd-camera {args.usd_camera}: write the camera as .usdc (its time "
                         "samples in .usda trip the ASCII-performance rule)")
    try:
        w, h = (int(x) for x in args.size.lower().split("x")) if args.size else (1024, 768)
    except ValueError:
        raise UsageError(f"--size {args.size}: give WIDTHxHEIGHT, e.g. 1280x720") from None
    rng = None
    if args.range is not None:
        lo, hi = args.range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise UsageError(f"--range {lo:g} {hi:g}: give two finite numbers, VMIN < VMAX")
        rng = (lo, hi)
    labels: str | list[str] = args.labels
    if args.labels not in ("field", "all", "none"):
        from twin3d.model import QUANTITIES

        labels = [q.strip() for q in args.labels.split(",") if q.strip()]
        bad = [q for q in labels if q not in QUANTITIES]
        if bad or not labels:
            raise UsageError(f"--labels {args.labels}: use field, all, none or quantities "
                             f"({', '.join(QUANTITIES)}), comma-separated")
    return (w, h), rng, labels


def _default_output(args: argparse.Namespace) -> Path:
    """Where a view without a display writes: the current folder, named after the input."""
    if args.recording:
        return Path(f"{Path(args.recording).name.split('.')[0]}-replay.mp4")
    return Path(f"{Path(args.stage).name.split('.')[0]}-view.png")


def run_view(args: argparse.Namespace) -> int:
    """Run ``twin3d view`` from parsed arguments; return the exit code."""
    from twin3d.twin import Twin
    from twin3d.view.camerapath import load_path, orbit_path
    from twin3d.view.difference import DIFFERENCE_CMAP
    from twin3d.view.feed import feed_bridge, feed_recording
    from twin3d.view.movie import MOVIE_SUFFIXES
    from twin3d.view.renderer import View, has_display

    size, rng, labels = _check_args(args)
    twin = Twin.open(args.stage)
    field, models = shown_field_models(twin, args.field)
    deformers = deforming_models(twin) if args.deform_scale is not None else None
    look: dict[str, Any] = {}
    if args.difference is not None:
        models = difference_models(twin, field, models, args.difference)
        look = {"cmap": DIFFERENCE_CMAP, "title": next(iter(models.values())).title,
                "symmetric": True}
    elif rng is None and field is not None:
        rng = twin.field_ranges.get(field)
    out = Path(args.output) if args.output else None
    off = bool(args.off_screen or out is not None)
    if not off and not has_display():
        out, off = _default_output(args), True
        print(f"twin3d view: no display (DISPLAY is not set): rendering off-screen to {out}",
              file=sys.stderr)
    samples = _recording(args.recording) if args.recording else None
    with View(twin, models, off_screen=off, window_size=size, field_range=rng,
              labels=labels, deform_scale=args.deform_scale, deform_models=deformers,
              **look) as view:
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
        movie = out.suffix.lower() in MOVIE_SUFFIXES
        if args.bridge:
            _bridge_offscreen(view, cam_path, out, args, movie)
        else:
            _offscreen(view, cam_path, out, args, movie, samples)
        print(f"wrote {out}")
    return 0


def _offscreen(view: Any, cam_path: Any, out: Path, args: argparse.Namespace, movie: bool,
               samples: list[Sample] | None) -> None:
    """Write a walk-through (or one screenshot), replaying ``samples`` over it if given."""
    from twin3d.view.feed import spread_recording
    from twin3d.view.movie import export_movie

    frames = args.frames if movie else 1
    before: Callable[[int], None] | None = None
    if samples is not None:
        before = spread_recording(samples, frames, view.push)
        span = samples[-1].time - samples[0].time
        pace = (f", {span:.4g} s in {frames / args.fps:.3g} s "
                f"({span * args.fps / frames:.3g}x)" if movie and span > 0 else "")
        view.connection = f"replay {Path(args.recording).name}{pace}"
    if movie:
        export_movie(view, cam_path, out, frames=frames, fps=args.fps, before_frame=before,
                     progress=sys.stderr.isatty())
        return
    if before is not None:
        before(0)
    p, f = cam_path.sample(1)
    view.set_camera(p[0], f[0], cam_path.up, cam_path.fov)
    view.screenshot(out)


def _bridge_offscreen(view: Any, cam_path: Any, out: Path, args: argparse.Namespace,
                      movie: bool) -> None:
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
