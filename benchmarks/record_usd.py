"""Benchmark: writing a USD recording of 100 channels x 10,000 time samples, and reopening it.

    python benchmarks/record_usd.py [--channels 100] [--samples 10000]

Prints samples/s for each way of writing the same numbers, in the same run:

* ``numpy .npy``                 np.save of the (samples, channels) float64 array: the floor
* ``Usd attr.Set(v, t)``         the naive way, one Usd call per sample (on a 10% subset)
* ``Sdf layer.SetTimeSample``    one Sdf call per sample inside an Sdf.ChangeBlock, then Save
* ``twin3d Recording``           the API (``rec.write(t, {channel: v})`` per time step, then
                                 close): channels only, and bound to a stage with 100 sensors
                                 (adds twin:state and the marker colour at state changes)

then reopens the twin3d recordings with pxr and checks the count and values of the samples.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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
    twin3d.convert([REPO / "assets" / "plate" / "plate_holes.stl"], stage, units="mm",
                   name="Plate", progress=False)
    tables = "".join(
        f'[[sensor]]\nchannel = "bench/tc{i}"\nquantity = "temperature"\nunit = "degC"\n'
        f'target = "/Plate/Geom/plate_holes_stl"\nvertex = {i * 5}\n'
        "limits = { warn_high = 80, alarm_high = 95 }\n\n" for i in range(channels))
    smap_path = folder / "bench.toml"
    smap_path.write_text(tables)
    twin3d.bind_sensors(stage, twin3d.load_sensor_map(smap_path))
    return stage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10_000)
    args = parser.parse_args(argv)
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
                    for t, v in zip(codes, values[:, c].tolist()):
                        layer.SetTimeSample(path, t, v)
            layer.Save()
        rows.append(("Sdf layer.SetTimeSample + ChangeBlock", _timed(sdf), n))

        channels = [f"bench/tc{i}" for i in range(C)]
        plain = tmp / "plain.usdc"

        def api_plain() -> None:
            with Recording(plain, fps=10.0) as rec:
                for i in range(T):
                    rec.write(float(times[i]), dict(zip(channels, values[i].tolist())))
        rows.append(("twin3d Recording (channels only)", _timed(api_plain), n))

        stage_path = _bound_stage(tmp, C)
        twin = twin3d.Twin.open(stage_path)
        bound = tmp / "bound.usdc"

        def api_bound() -> None:
            with twin.recording(bound, fps=10.0) as rec:
                for i in range(T):
                    rec.write(float(times[i]), dict(zip(channels, values[i].tolist())))
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
        sizes = {p.name: p.stat().st_size for p in (npy, tmp / "sdf.usdc", plain, bound)}

    floor = rows[0][1] / rows[0][2]
    print(f"{'writer':<46} {'samples':>10} {'seconds':>8} {'samples/s':>12} {'x floor':>8}")
    for name, secs, count in rows:
        rate = count / secs
        print(f"{name:<46} {count:>10,} {secs:>8.3f} {rate:>12,.0f} {secs / count / floor:>8.0f}")
    print(f"\nreopen plain recording + read one channel's {T:,} samples: {t_open:.3f} s "
          "(values identical)")
    print("sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
