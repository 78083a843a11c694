"""The ``twin3d`` command line: ``main(argv) -> int``.

Exit codes: 0 success, 1 a :class:`~twin3d.errors.Twin3DError` (one line on stderr,
``twin3d CMD: error: ...``), 2 bad usage, 130 interrupted.

Each subcommand is a ``_add_<name>(sub)`` that declares its flags and a
``_run_<name>(args) -> int`` that calls the Python API; the heavy modules are
imported inside the runner so ``twin3d --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from twin3d import __version__
from twin3d.errors import Twin3DError, UsageError, reason

__all__ = ["build_parser", "main"]

Runner = Callable[[argparse.Namespace], int]


class _Commands(Protocol):
    """What ``add_subparsers()`` returns, as the ``_add_*`` functions use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` owns every exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# --- convert -------------------------------------------------------------------------------


def _add_convert(sub: _Commands) -> None:
    p = sub.add_parser(
        "convert",
        help="convert CAD/mesh files to a USD stage",
        description="Convert STL, OBJ, PLY, OFF, glTF/GLB, 3MF or STEP files into one OpenUSD "
        "stage (Z-up, metres by default). Several inputs make one assembly with a component each. "
        "A URDF robot becomes nested link Xforms with UsdPhysics joints, each movable joint "
        "bound to the channel <robot name>/<joint name>.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="CAD or mesh files")
    p.add_argument("-o", "--output", required=True, help="OUTPUT.usda|.usdc|.usd|.usdz")
    p.add_argument("--units", choices=["m", "cm", "mm", "in", "ft"],
                   help="units of unitless sources (STL, OBJ, PLY, OFF); default: mm, with a warning")
    p.add_argument("--up", choices=["Y", "Z"], help="keep/force this up axis instead of converting to Z-up")
    p.add_argument("--keep-units", action="store_true",
                   help="keep the source's units (metersPerUnit) instead of scaling points to metres")
    p.add_argument("--name", help="name of the root prim (default: the input's name; for "
                   "several inputs, the output's; for a URDF, the robot's)")
    p.add_argument("--package-path", action="append", default=[], metavar="DIR",
                   help="URDF: where package://NAME/... meshes are: a package folder, or a "
                   "folder holding NAME/ (repeatable; the ROS layout around the file is searched "
                   "too)")
    p.add_argument("--tolerance", metavar="LINEAR[,ANGLE]",
                   help="STEP tessellation: the largest distance from the surface (0.1mm, 0.0001m, "
                   "or 0.1%% of the model's size) and angle between facets in degrees "
                   "(default: 0.1%%,30)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up on an input whose reading takes longer (default: no limit)")
    p.add_argument("--skip-bad-parts", action="store_true",
                   help="leave out the inputs and meshes that cannot be converted (a warning "
                   "names each) and convert the rest")
    p.set_defaults(run=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    import warnings

    from twin3d.cad.convert import convert, geometry_path, texture_folder
    from twin3d.cad.step import Tolerance

    tolerance = None if args.tolerance is None else Tolerance.parse(args.tolerance)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        out = convert(args.inputs, args.output, units=args.units, up_axis=args.up,
                      name=args.name, keep_units=args.keep_units,
                      package_path=args.package_path, tolerance=tolerance,
                      timeout=args.timeout, skip_bad_parts=args.skip_bad_parts)
    for w in caught:
        print(f"twin3d convert: warning: {w.message}", file=sys.stderr)
    geom = ""
    if out.suffix.lower() != ".usdz":
        textures = texture_folder(out)
        geom = f" (geometry in {geometry_path(out).name}" + (
            f", textures in {textures.name}/)" if textures.is_dir() else ")")
    print(f"wrote {out}{geom}")
    return 0


# --- validate ------------------------------------------------------------------------------


def _add_validate(sub: _Commands) -> None:
    p = sub.add_parser("validate", help="run the USD validators on a file",
                       description="Run every validator of pxr.UsdValidation and, when installed, "
                       "NVIDIA's validators. Exits 1 if anything fails.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--profile", choices=["placeable"],
                   help="add NVIDIA's minimal_placeable_visual feature rules")
    p.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from twin3d.usd.validate import validate_stage

    report = validate_stage(args.file, profile=args.profile)
    for note in report.skipped:
        print(f"twin3d validate: skipped {note}", file=sys.stderr)
    for failure in report.failures:
        print(failure)
    ran = "; ".join(report.ran)
    print(f"{args.file}: {len(report.failures)} failure(s) [{ran}]")
    return 0 if report.ok else 1


# --- bind / info ---------------------------------------------------------------------------


def _add_bind(sub: _Commands) -> None:
    p = sub.add_parser("bind", help="bind sensors and property bindings from a TOML file to a stage",
                       description="Author the [[sensor]] and [[binding]] tables of a bindings "
                       "file (docs/bindings.md) into a stage's root layer.")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--sensors", required=True, help="bindings file (TOML): [[sensor]] and "
                   "[[binding]] tables")
    p.add_argument("-o", "--output", help="write the bound stage here (default: in place)")
    p.add_argument("--tolerance", type=float, metavar="METRES",
                   help="largest distance from a sensor position to its target's surface "
                   "(default: the map's snap_tolerance, else 0.005)")
    p.set_defaults(run=_run_bind)


def _run_bind(args: argparse.Namespace) -> int:
    from twin3d.sensors import load_sensor_map
    from twin3d.usd.bind import bind_sensors
    from twin3d.usd.info import stage_meters_per_unit, where_on_mesh

    smap = load_sensor_map(args.sensors)
    bound = bind_sensors(args.stage, smap, args.output, tolerance_m=args.tolerance)
    mm = stage_meters_per_unit(args.output or args.stage) * 1000.0
    for s in bound:
        pos = ", ".join(f"{v:.4g}" for v in (s.position or ()))
        print(f"{s.channel:<16} -> {s.target} at ({pos}), snapped {s.snap_distance * mm:.2f} mm, "
              f"{where_on_mesh(s)}")
    for b in smap.bindings:
        print(f"{b.channel:<16} -> {b.kind} {b.prim} (Twin3DBindingAPI:{b.name})")
    extra = f" and {len(smap.bindings)} property bindings" if smap.bindings else ""
    print(f"bound {len(bound)} sensors{extra} in {args.output or args.stage}")
    return 0


def _add_info(sub: _Commands) -> None:
    p = sub.add_parser(
        "info", help="print a stage's hierarchy, sizes, units and sensors",
        description="Print a stage's units, size (to place sensors by), layers, hierarchy "
        "(meshes inside instances too) and bound sensors. For a twin with current values and "
        "a thermal model, also the heat inputs fitted to those values, with any that are "
        "physically impossible flagged (builds the field models once; they are cached).")
    p.add_argument("stage", metavar="STAGE")
    p.set_defaults(run=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from twin3d.usd.info import stage_info

    print(stage_info(args.stage))
    for line in _fitted_inputs(args.stage):
        print(line)
    return 0


def _fitted_inputs(stage: str) -> list[str]:
    """The heat inputs fitted to a twin's current values, impossible ones flagged."""
    from twin3d.fields import HeatModel, build_field_models
    from twin3d.twin import Twin

    twin = Twin.open(stage)
    values = twin.values
    if not values or "thermal" not in twin.model:
        return []
    lines = []
    for mesh, models in build_field_models(twin).items():
        heat = models.get("temperature")
        if not isinstance(heat, HeatModel):
            continue
        fit = heat.fitted_inputs({c: v for c, v in values.items() if c in heat.channels})
        lines.append(f"fitted inputs on {mesh} (from the current values):")
        lines += [f"  {name:<24} {v:10.4g} {fit.units[name]:<6} (noise sigma "
                  f"{fit.sigma[name]:.2g})" for name, v in fit.values.items()]
        lines += [f"  IMPOSSIBLE: {problem}" for problem in fit.problems]
    return lines


# --- serve / export / replay / ingest ------------------------------------------------------


def _add_serve(sub: _Commands) -> None:
    p = sub.add_parser(
        "serve", help="run the WebSocket bridge",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the live bridge: sensors publish JSON (or binary batch) frames over "
        "WebSocket, viewers and scripts subscribe, and with --record every accepted sample is "
        "committed to SQLite before it is acknowledged. Protocol: streaming/PROTOCOL.md.",
        epilog="""security:
  bridge.toml [[token]] tables map tokens to channel globs they may publish/subscribe;
  with tokens configured, clients must send {"type":"auth","token":...} first or an
  'Authorization: Bearer TOKEN' header. [server] origins is an Origin allowlist; [limits]
  caps frame size, messages/s per connection and channel-name length. --cert/--key serve wss://.
backpressure:
  slow viewers skip to the latest value per channel and get a "gap" notice; the
  recording never skips: publishers wait for it. Ctrl-C / SIGTERM commits and exits cleanly.
examples:
  twin3d serve --config bridge.toml --record run.db
  twin3d serve --host 0.0.0.0 --config bridge.toml --cert cert.pem --key key.pem""")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 = any free port)")
    p.add_argument("--config", help="bridge.toml: tokens, limits, origins, [[mqtt]]/[[opcua]]/[[csv]] adapters")
    p.add_argument("--record", help="record every accepted sample into this SQLite file (appends)")
    p.add_argument("--cert", help="TLS certificate (PEM) for wss://")
    p.add_argument("--key", help="TLS private key (PEM)")
    p.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL",
                   help="SQLite durability: FULL (default) acks survive power loss, NORMAL only a process kill")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from twin3d.bridge.config import BridgeConfig, load_config
    from twin3d.bridge.server import serve

    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together (PEM certificate and its private key)")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0-65535)")
    config = load_config(args.config) if args.config else BridgeConfig()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config, args.host, args.port, record=args.record, certfile=args.cert,
                      keyfile=args.key, synchronous=args.synchronous))
    return 0


def _add_export(sub: _Commands) -> None:
    p = sub.add_parser("export", help="export a recording to CSV, USD time samples or MCAP (Foxglove)")
    p.add_argument("recording", metavar="REC")
    p.add_argument("-o", "--output", required=True, help="out.csv, out.usdc or out.mcap")
    p.add_argument("--stage", help="USD output: the bound stage whose sensor prims get the time "
                   "samples (default: one prim per channel under /Recording); MCAP output: the "
                   "bound stage, its .twin.usda or the run's USD recording, whose sensors describe "
                   "the channels and whose meshes (with their recorded field colours) and moving "
                   "parts go along as Foxglove scene messages")
    p.add_argument("--fps", type=float, default=10.0, help="USD output: timeCodesPerSecond (default 10)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="USD output: drop channels that are not bound on --stage instead of failing")
    p.add_argument("--alarms", action="store_true",
                   help="write the recording's alarms (one row each, latest state) as CSV instead")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from twin3d.bridge.export import check_output_suffix, export_alarms, export_csv, export_usd

    if args.alarms:
        if check_output_suffix(args.output) != "csv":
            raise UsageError("--alarms writes CSV: give -o alarms.csv")
        print(f"wrote {args.output}: {export_alarms(args.recording, args.output)} alarms")
        return 0
    kind = check_output_suffix(args.output)
    if kind == "csv" and args.stage:
        raise UsageError(f"--stage {args.stage}: CSV output takes no stage (it is for USD and "
                         "MCAP output: -o out.usdc or -o out.mcap)")
    if kind == "csv":
        n = export_csv(args.recording, args.output)
        print(f"wrote {args.output}: {n} samples")
        return 0
    if kind == "mcap":
        from twin3d.bridge.mcap import export_mcap

        done = export_mcap(args.recording, args.output, stage=args.stage)
        scene = (f", {done.meshes} meshes in {done.scene_updates} scene updates, "
                 f"{done.transforms} frame transforms" if args.stage else "")
        print(f"wrote {args.output}: {done.samples} samples, {done.alarm_events} alarm events"
              f"{scene} (open it in Foxglove)")
        return 0
    n = export_usd(args.recording, args.output, args.stage, fps=args.fps,
                   skip_unknown=args.skip_unknown)
    print(f"wrote {args.output}: {n} samples as time samples")
    return 0


def _add_recover(sub: _Commands) -> None:
    p = sub.add_parser("recover", help="copy the intact part of a damaged recording into a new one")
    p.add_argument("recording", metavar="REC")
    p.add_argument("-o", "--output", required=True, help="the new recording (.sqlite)")
    p.set_defaults(run=_run_recover)


def _run_recover(args: argparse.Namespace) -> int:
    from twin3d.bridge.recorder import recover_recording

    if Path(args.output).resolve() == Path(args.recording).resolve():
        raise UsageError("write the recovered recording to a new file (-o), not over the damaged one")
    r = recover_recording(args.recording, args.output)
    state = f"the rest is unreadable ({r.damage})" if r.damage else "the whole file was readable"
    print(f"wrote {args.output}: {r.samples} samples of {r.channels} channels; {state}")
    return 0


def _add_replay(sub: _Commands) -> None:
    p = sub.add_parser("replay", help="replay a recording into a bridge")
    p.add_argument("recording", metavar="REC")
    p.add_argument("--to", required=True, help="ws://HOST:PORT of the bridge")
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible")
    p.add_argument("--token", help="publish token")
    p.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    import asyncio

    from twin3d.bridge.export import replay

    n = asyncio.run(replay(args.recording, args.to, speed=args.speed, token=args.token))
    print(f"replayed {n} samples into {args.to}")
    return 0


# --- view / demo ---------------------------------------------------------------------------


def _add_view(sub: _Commands) -> None:
    p = sub.add_parser(
        "view", help="open the live PyVista view, or export a screenshot or walk-through movie",
        description="Show a twin: its meshes, a field and its sensors, live from a bridge, "
        "replayed from a recording, or as they are in the stage. Without a display it renders "
        "off-screen by itself (to STAGE-view.png, or REC-replay.mp4 with --recording, in the "
        "current folder) unless -o says where. Camera path TOML: see README, 'Walk-throughs'.")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--bridge", help="ws://HOST:PORT to subscribe to")
    p.add_argument("--field", help="field to overlay: temperature, von_mises, ... (default: the "
                   "field the stage shows, twin:displayField)")
    p.add_argument("--range", nargs=2, type=float, metavar=("VMIN", "VMAX"),
                   help="colour range of the field (default: the range stored in the stage, "
                   "else the data's)")
    p.add_argument("--difference", metavar="SCENARIO",
                   help="show the field of what-if SCENARIO (twin3d whatif) minus the live field, "
                   "in a diverging colour map centred on 0")
    p.add_argument("--labels", default="field", metavar="WHICH",
                   help="sensor labels: field (the sensors of the shown field; default), all, "
                   "none, or quantities such as temperature,strain; warn and alarm always show")
    p.add_argument("--token", help="subscribe token")
    p.add_argument("--off-screen", action="store_true", help="render without a window")
    p.add_argument("--path", help="camera path (TOML); default: an orbit around the stage")
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("-o", "--output", help="walk.mp4 | walk.gif | shot.png")
    p.add_argument("--recording", metavar="REC",
                   help="replay a bridge recording into the view instead of a live bridge")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (x real time)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second of the movie")
    p.add_argument("--size", help="window/movie size WIDTHxHEIGHT (default 1024x768)")
    p.add_argument("--usd-camera", metavar="CAM.usdc",
                   help="also write the path as a time-sampled UsdGeom.Camera over the stage")
    p.add_argument("--deform-scale", type=_deform_scale, metavar="X",
                   help="show the parts a stress model bends deformed X times (stated on "
                   "screen; e.g. 20)")
    p.set_defaults(run=_run_view)


def _deform_scale(text: str) -> float:
    """``--deform-scale``: a positive, finite exaggeration factor."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"give a positive number (the exaggeration, e.g. 10), "
                                         f"got {text!r}")
    return value


def _run_view(args: argparse.Namespace) -> int:
    from twin3d.view.command import run_view

    return run_view(args)


def _add_web(sub: _Commands) -> None:
    p = sub.add_parser(
        "web", help="serve the live view to browsers (rendered in each browser)",
        description="Serve a twin's live view to browsers: its meshes, the field with its colour "
        "bar, the sensors with their labels and states, the status line, camera presets and "
        "paths. Each browser renders the scene itself (WebGL), so the server needs no GPU. "
        "With --token, browsers sign in with that token (a form, or an Authorization: Bearer "
        "header). Works behind a reverse proxy under a path prefix.")
    p.add_argument("stage", metavar="STAGE")
    p.add_argument("--bridge", help="ws://HOST:PORT of the bridge to show live values from "
                   "(default: the values saved in the stage's live layer)")
    p.add_argument("--token", help="bridge token: subscribes to the bridge, and browsers must "
                   "sign in with it")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default "
                   "127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free)")
    p.add_argument("--field", help="field to overlay (default: the field the stage shows)")
    p.add_argument("--path", action="append", metavar="PATH.toml",
                   help="a camera path the page can fly (repeatable; an orbit is always there)")
    p.set_defaults(run=_run_web)


def _run_web(args: argparse.Namespace) -> int:
    from twin3d.web.command import run_web

    return run_web(args)


def _add_demo(sub: _Commands) -> None:
    p = sub.add_parser(
        "demo", help="build and run a demo twin end to end",
        description="Build a demo twin, start a recording bridge on 127.0.0.1, stream "
        "simulated sensors through it and show them: in a window with a display, else "
        "off-screen to a movie and PNG snapshots. Scene 'plate' (default): a heated plate "
        "under a press, its temperature and stress fields reconstructed from its sensors. "
        "Scene 'robot': the SO-101 arm converted from its URDF, picking and placing through "
        "its joint channels while its servos warm up. Ctrl-C stops early and still leaves a "
        "valid recording.")
    p.add_argument("--scene", choices=["plate", "robot"], default="plate",
                   help="the demo twin (default: plate)")
    p.add_argument("--headless", action="store_true", help="render off-screen even with a display")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of simulated sensors")
    p.add_argument("--seed", type=int, default=0, help="seed of the sensor noise")
    p.add_argument("-o", "--output", help="working folder (default: twin3d-demo, "
                   "twin3d-demo-robot for the robot)")
    p.add_argument("--movie", help="movie to write when headless (.mp4 or .gif; "
                   "default OUTPUT/demo.mp4)")
    p.add_argument("--deform-scale", type=_deform_scale, metavar="X",
                   help="plate: show its deflection X times in the view, the live layer and "
                   "the recording (default 10)")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from twin3d.demos import run_demo, summary

    if args.duration <= 0:
        raise UsageError(f"--duration must be positive, got {args.duration}")
    if args.deform_scale is not None and args.scene != "plate":
        raise UsageError(f"--deform-scale: nothing deforms in the {args.scene} scene (the "
                         "plate scene shows its deflection)")
    result = run_demo(args.output, scene=args.scene, duration=args.duration, seed=args.seed,
                      headless=True if args.headless else None, movie=args.movie,
                      deform_scale=args.deform_scale)
    print(summary(result))
    return 0


# --- engine / whatif ------------------------------------------------------------------------


def _add_engine(sub: _Commands) -> None:
    p = sub.add_parser(
        "engine", help="run the twin engine on a bridge: virtual sensors, health, forecasts, alarms",
        description="Subscribe to the stage's channels, keep its field models up to date and publish "
        "what they say back through the bridge: twin/virtual/<name> (+/sigma), twin/health/<channel>, "
        "twin/suspect/<channel>, twin/eta/<channel>/<limit> (+/sigma), twin/input/<name>; raise and "
        "clear alarms (limits, predicted crossings, suspect and stale sensors). The token needs "
        "publish = [\"twin/*\"], subscribe on the stage's channels and alarms = [\"raise\"]. "
        "Virtual sensors and settings: the sensor map's [[virtual]] and [engine] tables (bound into "
        "the stage by twin3d bind). Ctrl-C stops it.")
    p.add_argument("stage", metavar="STAGE", help="the bound stage")
    p.add_argument("--bridge", required=True, help="ws://HOST:PORT of the bridge")
    p.add_argument("--token", help="the engine's token")
    p.add_argument("--horizon", type=float, metavar="SECONDS",
                   help="publish predicted crossings up to this far ahead (default: the stage's "
                   "[engine] horizon, else 600)")
    p.add_argument("--live-every", type=float, metavar="SECONDS",
                   help="also keep the twin's live layer current (values, suspect states, fields), "
                   "saved at most this often")
    p.add_argument("--deform-scale", type=_deform_scale, metavar="X",
                   help="with --live-every: also show the parts a stress model bends, deformed "
                   "X times, in the live layer (twin:deformScale says so)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.set_defaults(run=_run_engine)


def _positive(value: float | None, flag: str) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{flag} must be a positive number of seconds, got {value:g}")


def _run_engine(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from twin3d.engine.core import Engine
    from twin3d.engine.run import run_engine

    _positive(args.horizon, "--horizon")
    _positive(args.live_every, "--live-every")
    if args.deform_scale is not None and args.live_every is None:
        raise UsageError("--deform-scale needs --live-every: the deformed shape goes into the "
                         "live layer")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = Engine(args.stage, horizon=args.horizon, live_every=args.live_every,
                    deform_scale=args.deform_scale)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_engine(engine, args.bridge, args.token, stop=stop)

    asyncio.run(go())
    return 0


def _add_whatif(sub: _Commands) -> None:
    p = sub.add_parser(
        "whatif", help="predict the readings and fields for changed inputs, as a USD scenario",
        description="Fit the model's inputs to the twin's current values (its live layer), change "
        "some (heater=x1.2 scales the fitted value, ambient=35 sets it), run the forward model and "
        "print the predicted readings. The scenario is authored into the live layer as a variant "
        "of the 'scenario' variant set on the root prim ('live' is reality): switch it in usdview "
        "or Omniverse.")
    p.add_argument("stage", metavar="STAGE", help="the bound stage")
    p.add_argument("--set", dest="changes", action="append", required=True, metavar="NAME=VALUE",
                   help="an input and its new value (e.g. heater=x1.2, ambient=35); repeatable")
    p.add_argument("--name", help="the scenario's name (default: made from the changes)")
    p.set_defaults(run=_run_whatif)


def _run_whatif(args: argparse.Namespace) -> int:
    from twin3d.engine.core import Engine

    changes: dict[str, float | str] = {}
    for item in args.changes:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--set {item!r}: write NAME=VALUE, e.g. --set heater=x1.2")
        changes[key.strip()] = value.strip()
    engine = Engine(args.stage)
    result = engine.what_if(changes, name=args.name)
    now = engine.state_values()
    print(f"{'input':<24} {'fitted':>12} {'scenario':>12}")
    for name, value in result.inputs.items():
        print(f"{name:<24} {result.baseline[name]:12.4g} {value:12.4g}")
    print(f"{'channel':<24} {'now':>12} {'predicted':>12}")
    for channel, value in result.readings.items():
        current = f"{now[channel]:12.4g}" if channel in now else f"{'-':>12}"
        print(f"{channel:<24} {current} {value:12.4g}")
    print(f"wrote scenario {result.name!r} into {engine.twin.live_path} (variant set 'scenario' "
          f"of the root prim; open {engine.twin.root_path} and switch it)")
    return 0


# --- main ----------------------------------------------------------------------------------

_COMMANDS = [_add_convert, _add_validate, _add_bind, _add_info, _add_serve, _add_export,
             _add_recover, _add_replay, _add_view, _add_web, _add_demo, _add_engine, _add_whatif]


def build_parser() -> argparse.ArgumentParser:
    """Return the ``twin3d`` argument parser."""
    parser = _Parser(prog="twin3d", description="Live 3D visual twins on OpenUSD.")
    parser.add_argument("--version", action="version", version=f"twin3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twin3d`` command line and return its exit code."""
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        run: Runner = args.run
        return run(args)
    except UsageError as exc:
        print(f"{_prog(args)}: error: {exc}", file=sys.stderr)
        return 2
    except Twin3DError as exc:
        print(f"{_prog(args)}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the output's reader stopped (`twin3d info X | head`): not an error
        with contextlib.suppress(OSError):  # nothing more reaches it, not even at exit's flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a tool killed by the signal
    except OSError as exc:  # the machine said no: disk full, permission denied, port in use
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{_prog(args)}: error: {where}{reason(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_prog(args)}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except Exception as exc:  # a bug in twin3d: still one line, never a traceback
        if os.environ.get("TWIN3D_DEBUG"):
            raise
        print(f"{_prog(args)}: internal error: {type(exc).__name__}: {reason(exc)} (a bug in twin3d: "
              "please report it; TWIN3D_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _prog(args: argparse.Namespace | None) -> str:
    command = getattr(args, "command", None)
    return f"twin3d {command}" if command else "twin3d"


if __name__ == "__main__":
    raise SystemExit(main())
