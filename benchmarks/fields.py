"""Field models: setup time and per-update time beside the memory-bandwidth floor.

For 10k, 100k and 1M surface vertices × 10, 100 and 500 sensors:

* setup: a HeatModel (heater cap + convection on a sphere; the FEM runs on a fixed ~6k-tet
  mesh and is probed onto the display surface) with its fit folded into ``W``;
* update: ``model.update(values)`` = ``W @ values`` into a preallocated float32 buffer (plus
  the physics sigma), median of repeated runs; ``W@v`` is the product alone
  (:func:`twin3d.fields.base.matvec`: one BLAS thread below 64 MB of W, all above);
* floor: bytes of ``W`` ÷ the bandwidth of a large numpy copy measured in the same run
  (read + write bytes per second), the least time any CPU method can take to read ``W``.

Also: von Mises from the six linear stress fields at 1M vertices, and Kriging setup at
10k/100k. Run: ``python benchmarks/fields.py`` (about 2-3 minutes on 2 cores; W at 1M × 500
is 2 GB of float32). ``--quick`` stops at 100k.
"""

from __future__ import annotations

import argparse
import gc
import platform
import subprocess
import sys
import time
import warnings

import numpy as np
import trimesh

from twin3d.fields import HeatModel, ImplausibleInputWarning, Kriging, StressModel
from twin3d.fields.base import matvec
from twin3d.fields.mesh import tetrahedralize
from twin3d.model import Sensor

CONFIG = {"regions": {"cap": {"sphere": {"center": [0.0, 0.0, 1.0], "radius": 0.4}}},
          "thermal": {"conductivity": 20.0, "sources": ["cap"], "convection": {"h": 10.0},
                      "residual_kriging": False, "noise": 0.1}}


def copy_bandwidth(nbytes: int = 512 * 2**20) -> float:
    """Bytes per second (read + write) of ``np.copyto`` on a large float32 array, best of 5."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


def median_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def sphere(n_vertices: int) -> trimesh.Trimesh:
    k = max(int(round(np.sqrt(n_vertices / 2))), 8)
    return trimesh.creation.uv_sphere(radius=1.0, count=[k, k])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100k vertices")
    args = parser.parse_args(argv)
    # the readings are random numbers, not physics: their fitted heat inputs may be impossible
    warnings.simplefilter("ignore", ImplausibleInputWarning)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines()
                       if ln.startswith("Model name")), platform.processor())
    print(f"machine: {model_name}; Python {sys.version.split()[0]}; numpy {np.__version__}")
    bw = copy_bandwidth()
    print(f"copy bandwidth (read+write): {bw / 1e9:.1f} GB/s\n")
    coarse = trimesh.creation.icosphere(subdivisions=3)
    mesh = tetrahedralize(coarse.vertices, coarse.faces, 1.0, target_tets=6000)
    print(f"FEM mesh: {len(mesh.tets)} tets, {len(mesh.nodes)} nodes\n")
    sizes = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    print("| surface vertices | sensors | setup s | W MB | update ms | W@v ms | floor ms "
          "| W@v / floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for n in sizes:
        surf = sphere(n)
        pts, faces = np.asarray(surf.vertices), np.asarray(surf.faces)
        for m in (10, 100, 500):
            idx = rng.choice(len(pts), m, replace=False)
            sensors = [Sensor(f"b/t{i}", "temperature", "degC", "/S", vertex=int(j))
                       for i, j in enumerate(idx)]
            t = time.perf_counter()
            model = HeatModel.build(pts, faces, 1.0, sensors, CONFIG, mesh=mesh)
            setup = time.perf_counter() - t
            values = 20.0 + rng.random(m)
            repeats = 30 if n <= 100_000 else 10
            upd = median_time(lambda: model.update(values), repeats)
            v32 = values.astype(np.float32)
            out = np.empty(model.n_vertices, dtype=np.float32)
            gemv = median_time(lambda: matvec(model.W, v32, out), repeats)
            floor = model.W.nbytes / bw
            print(f"| {len(pts):,} | {m} | {setup:.2f} | {model.W.nbytes / 1e6:.0f} | "
                  f"{upd * 1e3:.2f} | {gemv * 1e3:.2f} | {floor * 1e3:.2f} | "
                  f"{gemv / floor:.2f} |", flush=True)
            del model
            gc.collect()
    # von Mises: six linear fields then the nonlinear combination, per vertex
    print("\nStress (6 tensor fields via W @ v, then von Mises per vertex):")
    print("| surface vertices | channels | tensor W@v ms | von Mises ms | total update ms |")
    print("|---:|---:|---:|---:|---:|")
    from twin3d.fields.stress import von_mises

    for n in sizes[-1:]:
        for c in (4, 10):
            W = np.asfortranarray(rng.standard_normal((6 * n, c)).astype(np.float32))
            model_s = StressModel([f"c{i}" for i in range(c)], W, "MPa", cases=["a"],
                                  amplitude_map=np.zeros((1, c)))
            v = rng.random(c)
            v32 = v.astype(np.float32)
            vm_out = np.empty(model_s.n_vertices, dtype=np.float32)
            total = median_time(lambda: model_s.update(v), 10)
            tens = median_time(lambda: matvec(model_s.W, v32, model_s.tensor.reshape(-1)), 10)
            vm = median_time(lambda: von_mises(model_s.tensor, out=vm_out), 10)
            print(f"| {n:,} | {c} | {tens * 1e3:.2f} | {vm * 1e3:.2f} | {total * 1e3:.2f} |")
            del model_s, W
            gc.collect()
    print("\nKriging setup (Matérn on the surface, ordinary kriging, posterior variance):")
    print("| surface vertices | sensors | setup s |")
    print("|---:|---:|---:|")
    for n in (10_000, 100_000):
        surf = sphere(n)
        for m in (10, 100):
            idx = rng.choice(len(surf.vertices), m, replace=False)
            t = time.perf_counter()
            Kriging(surf.vertices, surf.faces, 1.0, [f"k{i}" for i in range(m)], idx,
                    "temperature", "degC")
            print(f"| {len(surf.vertices):,} | {m} | {time.perf_counter() - t:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
