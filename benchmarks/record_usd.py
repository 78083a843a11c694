"""Benchmark: writing USD recordings (throughput), and keeping an hour-long one in bounded memory.

    python benchmarks/record_usd.py [--channels 100] [--samples 10000]
    python benchmarks/record_usd.py --hour [--minutes 60] [--clip-seconds 30] [--deform-rate 2]

Throughput (the default) prints samples/s for each way of writing the same numbers, in the
same run:

* ``numpy .npy``                 np.save of the (samples, channels) float64 array: the floor
* ``Usd attr.Set(v, t)``         the naive way, one Usd call per sample (on a 10% subset)
* ``Sdf layer.SetTimeSample``    one Sdf call per sample inside an Sdf.ChangeBlock, then Save
* ``twin3d Recording``           the API (``rec.write(t, {channel: v})`` per time step, then
                                 close): channels only, and bound to a stage with 100 sensors
                                 (adds twin:state and the marker colour at state changes)

then reopens the twin3d recordings with pxr and checks the count and values of the samples.

``--hour`` records the SO-101 arm (converted from its URDF) for ``--minutes`` of session time
at 10 Hz: its 6 joints every step, and its upper arm (12,976 points) deforming, the
displacement given every step and recorded at ``--deform-rate``. Each writer runs in a fresh
process, whose peak RSS while recording (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs`` once the twin is open) is the figure:

* ``value clips``   ``twin.recording(...)``: one clip per ``--clip-seconds``, written as the
                    session goes (the twin3d default)
* ``one layer``     ``twin.recording(..., clip_seconds=math.inf)``: the old writer's way, every
                    sample buffered and written as one time-sampled layer when it closes

then opens the clips' result with pxr (time codes, joint values and deformed points at sample
codes across clip boundaries equal what was written) and runs every validator on it.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import twin3d
from twin3d.usd.timesamples import Recording

REPO = Path(__file__).resolve().parents[1]


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _machine() -> str:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines()
                      if ln.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    import os

    return f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, {model}"


def _bound_stage(folder: Path, channels: int) -> Path:
    """The example plate with ``channels`` thermocouples bound at mesh vertices."""
    stage = folder / "plate.usda"
    twin3d.convert([REPO / "twin3d" / "data" / "plate_holes.stl"], stage, units="mm",
                   name="Plate", progress=False)
    tables = "".join(
        f'[[sensor]]\nchannel = "bench/tc{i}"\nquantity = "temperature"\nunit = "degC"\n'
        f'target = "/Plate/Geom/plate_holes_stl"\nvertex = {i * 5}\n'
        "limits = { warn_high = 80, alarm_high = 95 }\n\n" for i in range(channels))
    smap_path = folder / "bench.toml"
    smap_path.write_text(tables)
    twin3d.bind_sensors(stage, twin3d.load_sensor_map(smap_path))
    return stage


def _recording_size(path: Path) -> int:
    """Bytes of a recording: the file and its clips folder."""
    clips = path.with_name(f"{path.stem}.clips")
    return path.stat().st_size + sum(p.stat().st_size for p in clips.glob("*"))


def throughput(args: argparse.Namespace) -> int:
    """Samples/s of each way of writing the same values (see the module docstring)."""
    C, T = args.channels, args.samples
    n = C * T
    rng = np.random.default_rng(0)
    values = 60.0 + np.cumsum(rng.normal(0.0, 0.5, (T, C)), axis=0)  # random walks, some alarms
    times = 1.7e9 + np.arange(T) * 0.1
    from pxr import Sdf, Usd

    print(f"machine: {_machine()}")
    print(f"{C} channels x {T} samples = {n:,} samples\n")
    rows: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)

        npy = tmp / "values.npy"
        rows.append(("numpy .npy (floor)", _timed(lambda: np.save(npy, values)), n))

        # naive: Usd attribute Set per sample, on a 10% subset of the time steps
        sub = max(1, T // 10)

        def naive() -> None:
            stage = Usd.Stage.CreateNew(str(tmp / "naive.usdc"))
            attrs = [stage.DefinePrim(f"/R/c{c}", "Scope").CreateAttribute(
                "twin:value", Sdf.ValueTypeNames.Double) for c in range(C)]
            for i in range(sub):
                for c, attr in enumerate(attrs):
                    attr.Set(float(values[i, c]), float(i))
            stage.GetRootLayer().Save()
        rows.append(("Usd attr.Set(v, t) per sample", _timed(naive), sub * C))

        def sdf() -> None:
            layer = Sdf.Layer.CreateNew(str(tmp / "sdf.usdc"))
            with Sdf.ChangeBlock():
                paths = []
                for c in range(C):
                    prim = Sdf.CreatePrimInLayer(layer, f"/R/c{c}")
                    prim.specifier, prim.typeName = Sdf.SpecifierDef, "Scope"
                    paths.append(Sdf.AttributeSpec(prim, "twin:value", Sdf.ValueTypeNames.Double).path)
                codes = np.arange(T, dtype=np.float64).tolist()
                for c, path in enumerate(paths):
                    for t, v in zip(codes, values[:, c].tolist(), strict=True):
                        layer.SetTimeSample(path, t, v)
            layer.Save()
        rows.append(("Sdf layer.SetTimeSample + ChangeBlock", _timed(sdf), n))

        channels = [f"bench/tc{i}" for i in range(C)]
        plain = tmp / "plain.usdc"

        def api_plain() -> None:
            with Recording(plain, fps=10.0) as rec:
                for i in range(T):
                    rec.write(float(times[i]), dict(zip(channels, values[i].tolist(), strict=True)))
        rows.append(("twin3d Recording (channels only)", _timed(api_plain), n))

        stage_path = _bound_stage(tmp, C)
        twin = twin3d.Twin.open(stage_path)
        bound = tmp / "bound.usdc"

        def api_bound() -> None:
            with twin.recording(bound, fps=10.0) as rec:
                for i in range(T):
                    rec.write(float(times[i]), dict(zip(channels, values[i].tolist(), strict=True)))
        rows.append(("twin3d Recording (bound: value+state+colour)", _timed(api_bound), n))

        # reopen and check
        def reopen(path: Path, prim: str) -> tuple[int, np.ndarray]:
            stage = Usd.Stage.Open(str(path))
            attr = stage.GetAttributeAtPath(f"{prim}.twin:value")
            samples = attr.GetTimeSamples()
            return len(samples), np.array([attr.Get(t) for t in samples])
        t_open = time.perf_counter()
        count, got = reopen(plain, "/Recording/bench_tc42")
        t_open = time.perf_counter() - t_open
        assert count == T and np.array_equal(got, values[:, 42]), "plain recording differs"
        count_b, got_b = reopen(bound, "/Plate/Sensors/bench_tc7")
        assert count_b == T and np.array_equal(got_b, values[:, 7]), "bound recording differs"
        sizes = {p.name: _recording_size(p) for p in (npy, tmp / "sdf.usdc", plain, bound)}

    floor = rows[0][1] / rows[0][2]
    print(f"{'writer':<46} {'samples':>10} {'seconds':>8} {'samples/s':>12} {'x floor':>8}")
    for name, secs, count in rows:
        rate = count / secs
        print(f"{name:<46} {count:>10,} {secs:>8.3f} {rate:>12,.0f} {secs / count / floor:>8.0f}")
    print(f"\nreopen plain recording + read one channel's {T:,} samples: {t_open:.3f} s "
          "(values identical)")
    print("sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    return 0


# --- an hour of a moving, deforming robot, in bounded memory --------------------------------

ARM_URDF = REPO / "tests" / "data" / "robots" / "so101" / "so101.urdf"
PART = "upper_arm_so101_v1"  # the deforming part's mesh
FPS = 10.0


def _status(key: str) -> float:
    """``key`` (VmRSS, VmHWM) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _joints(stage: Any) -> dict[str, tuple[float, float]]:
    """The joint channels of the arm and their limits (radians), from its bindings."""
    from twin3d.usd.bindings import read_property_bindings

    out = {}
    for b in read_property_bindings(stage):
        assert b.lower is not None and b.upper is not None
        out[b.channel] = (b.lower / b.scale, b.upper / b.scale)
    return out


def _pose(joints: dict[str, tuple[float, float]], t: float) -> dict[str, float]:
    """A smooth pick-and-place-like trajectory inside the limits: each joint a sine wave."""
    return {c: (lo + hi) / 2 + 0.4 * (hi - lo) / 2 * np.sin(2 * np.pi * t / (7.0 + 1.3 * k) + k)
            for k, (c, (lo, hi)) in enumerate(joints.items())}


def _load(t: float) -> float:
    """The part's load, 0..1: two sines of incommensurate periods, so no shape repeats (the
    crate writer stores a repeated array once)."""
    return 0.5 + 0.3 * float(np.sin(2 * np.pi * t / 20.0)) + 0.2 * float(np.sin(t / np.sqrt(2)))


def _bending(points: np.ndarray) -> np.ndarray:
    """(n, 3) a bending mode of a part: up to 2 mm across its long axis, growing along it."""
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    along = centred @ axes[0]
    s = (along - along.min()) / np.ptp(along)
    return np.outer(s ** 2 * 2e-3, axes[1])


def _record_child(stage: Path, out: Path, minutes: float, clip_seconds: float,
                  deform_rate: float) -> int:
    """Record the session in this (fresh) process; print its figures as JSON."""
    import json

    twin = twin3d.Twin.open(stage, reset=True)
    joints = _joints(twin.stage)
    part = next(m for m in twin.meshes if m.path.endswith(PART))
    mode = _bending(part.points)
    steps = round(minutes * 60 * FPS)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
    timeline = []
    t0 = time.perf_counter()
    with twin.recording(out, fps=FPS, origin=0.0, clip_seconds=clip_seconds,
                        deform_rate=deform_rate) as rec:
        for i in range(steps):
            t = i / FPS
            rec.write(t, _pose(joints, t), displacement={part.path: mode * _load(t)})
            if i % round(600 * FPS) == 0:
                timeline.append((round(t / 60), round(_status("VmRSS"), 1)))
    wall = time.perf_counter() - t0
    print(json.dumps({"before": before, "peak": _status("VmHWM"), "after": _status("VmRSS"),
                      "timeline": timeline, "seconds": wall, "bytes": _recording_size(out),
                      "files": 1 + len(list(out.with_name(f"{out.stem}.clips").glob("*")))}))
    return 0


def _check(stage: Path, out: Path, minutes: float, clip_seconds: float) -> list[str]:
    """Reopen the recording with pxr: time codes, joint values and deformed points at sample
    codes around clip boundaries equal what was written; return what differs."""
    from pxr import Usd, UsdGeom

    from twin3d.usd.bindings import binding_attr, read_property_bindings

    problems = []
    rec = Usd.Stage.Open(str(out))
    steps = round(minutes * 60 * FPS)
    if (rec.GetStartTimeCode(), rec.GetEndTimeCode(), rec.GetTimeCodesPerSecond()) != (
            0.0, steps - 1.0, FPS):
        problems.append("time codes")
    base = Usd.Stage.Open(str(stage))
    joints = _joints(base)
    per_clip = round(clip_seconds * FPS) if np.isfinite(clip_seconds) else steps
    codes = sorted({c for k in range(0, steps, per_clip) for c in (k - 1, k, k + 1, k + 7)
                    if 0 <= c < steps})
    for b in read_property_bindings(base):
        attr = rec.GetPrimAtPath(b.prim).GetAttribute(binding_attr(b.name, "value"))
        if any(attr.Get(float(c)) != _pose(joints, c / FPS)[b.channel] for c in codes):
            problems.append(f"values of {b.channel}")
    mesh = next(p for p in Usd.PrimRange(base.GetPseudoRoot()) if p.GetName() == PART)
    rest = np.asarray(UsdGeom.Mesh(mesh).GetPointsAttr().Get(), dtype=np.float64)
    part = next(m for m in twin3d.Twin.open(stage, reset=True).meshes if m.path.endswith(PART))
    mode = np.linalg.norm(_bending(part.points), axis=1)  # a displacement's length is frame-free
    points = UsdGeom.Mesh(rec.GetPrimAtPath(mesh.GetPath())).GetPointsAttr()
    for c in [c for c in codes if c % 5 == 0]:  # the shapes recorded at 2 Hz
        moved = np.linalg.norm(np.asarray(points.Get(float(c)), dtype=np.float64) - rest, axis=1)
        if not np.allclose(moved, mode * _load(c / FPS), atol=1e-7):
            problems.append(f"points at {c}")
    return problems


def hour(args: argparse.Namespace) -> int:
    """Record ``args.minutes`` with each writer in a fresh process; check and validate."""
    import json
    import sys

    from twin3d.cad.convert import convert
    from twin3d.usd.validate import validate_stage

    print(f"machine: {_machine()}")
    steps = round(args.minutes * 60 * FPS)
    print(f"SO-101: 6 joints at {FPS:g} Hz and {PART} deforming at {args.deform_rate:g} Hz, "
          f"{args.minutes:g} min = {steps:,} steps\n")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stage = convert(ARM_URDF, tmp / "so101.usda", progress=False)
        results = {}
        for name, clip in (("value clips", args.clip_seconds), ("one layer", float("inf"))):
            out = tmp / f"{name.replace(' ', '_')}.usdc"
            run = subprocess.run(
                [sys.executable, __file__, "--child", str(stage), str(out), "--minutes",
                 str(args.minutes), "--clip-seconds", str(clip), "--deform-rate",
                 str(args.deform_rate)], capture_output=True, text=True, check=True)
            results[name] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{name}: {results[name]}", flush=True)
            if name == "value clips":
                t0 = time.perf_counter()
                problems = _check(stage, out, args.minutes, clip)
                print(f"  reopened with pxr: {'; '.join(problems) or 'time codes and values as written'}"
                      f" ({time.perf_counter() - t0:.1f} s)")
                t0 = time.perf_counter()
                report = validate_stage(out)
                print(f"  validators ({', '.join(report.ran)}): {len(report.failures)} failures "
                      f"in {time.perf_counter() - t0:.0f} s", flush=True)
                for f in report.failures[:10]:
                    print(f"    {f}")
            for p in tmp.glob(f"{out.stem}*"):  # keep the disk free for the next writer
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    print(f"\n{'writer':<14} {'RSS before':>10} {'peak RSS':>9} {'growth':>7} {'seconds':>8} "
          f"{'files':>6} {'MB':>8}")
    for name, r in results.items():
        print(f"{name:<14} {r['before']:>10.0f} {r['peak']:>9.0f} {r['peak'] - r['before']:>7.0f} "
              f"{r['seconds']:>8.0f} {r['files']:>6} {r['bytes'] / 1e6:>8.0f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--hour", action="store_true",
                        help="record the SO-101 moving and deforming; measure peak RSS")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--deform-rate", type=float, default=2.0)
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        stage, out = args.child
        return _record_child(stage, out, args.minutes, args.clip_seconds, args.deform_rate)
    return hour(args) if args.hour else throughput(args)


if __name__ == "__main__":
    raise SystemExit(main())
