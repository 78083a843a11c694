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

``--scale`` (the physics at real-part scale, about 10 minutes): the cantilever
0.5 × 0.03 × 0.06 m steel with 500 N on its tip face, ``StressModel.build`` at ``tets`` =
10k, 30k and 100k P2 tetrahedra (time, peak RSS, element count, mid-span top-fibre stress
against Mc/I, tip deflection against Timoshenko), then each SPD solver (CHOLMOD, AMG-CG,
SuperLU) on the same assembled system, and the heat model at 500k P1 tetrahedra. Each case
runs in its own process so its peak RSS is its own; SuperLU runs under an 8 GB address-space
limit (it runs out of memory beyond it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from functools import partial

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
    k = max(round(float(np.sqrt(n_vertices / 2))), 8)
    return trimesh.creation.uv_sphere(radius=1.0, count=[k, k])


BEAM = (0.5, 0.03, 0.06)  # L, b, h in metres
BEAM_E, BEAM_NU, BEAM_P = 200e9, 0.3, 500.0


def beam_surface() -> tuple[np.ndarray, np.ndarray]:
    """The cantilever's surface: a box subdivided 3 times (vertices every L/8, mid-span too)."""
    length, b, h = BEAM
    box = trimesh.creation.box((length, b, h))
    box.apply_translation([length / 2, 0.0, 0.0])
    v, f = box.vertices, box.faces
    for _ in range(3):
        v, f = trimesh.remesh.subdivide(v, f)
    return np.asarray(v), np.asarray(f)


def beam_config(tets: int) -> dict:
    return {"regions": {"root": {"normal": [-1, 0, 0]}, "tip": {"normal": [1, 0, 0]}},
            "stress": {"E": BEAM_E, "nu": BEAM_NU, "fixed": ["root"], "tets": tets, "load": [
                {"name": "tip", "region": "tip", "force": [0, 0, -1], "channel": "b/load"}]}}


def peak_rss_mb() -> float:
    """Peak resident memory of this process since start or the last :func:`reset_peak`."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024


def reset_peak() -> None:
    """Reset the peak RSS to the current RSS (Linux: writing 5 to clear_refs)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(task: dict) -> dict:
    """One measurement in this (fresh) process; returns what it measured."""
    from twin3d.fields import HeatModel, StressModel

    if task["kind"] == "build":
        v, f = beam_surface()
        cell = Sensor("b/load", "force", "N", "/B", position=(BEAM[0], 0.0, 0.0))
        t = time.perf_counter()
        model = StressModel.build(v, f, 1.0, [cell], beam_config(task["tets"]))
        seconds = time.perf_counter() - t
        length, b, h = BEAM
        model.update({"b/load": BEAM_P})
        mid = np.isclose(v[:, 0], length / 2) & np.isclose(v[:, 2], h / 2)
        mc_i = BEAM_P * (length / 2) * (h / 2) / (b * h**3 / 12) / 1e6
        tip = np.isclose(v[:, 0], length)
        g, kappa = BEAM_E / (2 * (1 + BEAM_NU)), 10 * (1 + BEAM_NU) / (12 + 11 * BEAM_NU)
        timoshenko = (BEAM_P * length**3 / (3 * BEAM_E * b * h**3 / 12)
                      + BEAM_P * length / (kappa * g * b * h))
        deflection = -float(model.displacement({"b/load": BEAM_P})[tip, 2].mean())
        assert model.mesh is not None
        return {"s": seconds, "rss": peak_rss_mb(), "tets": model.mesh.elements,
                "stress": float(model.tensor[0, mid].mean() / mc_i - 1),
                "tip": deflection / timoshenko - 1}
    if task["kind"] == "solver":
        from twin3d.fields import fem
        from twin3d.fields.mesh import region_borders, tetrahedralize

        v, f = beam_surface()
        cfg = beam_config(task["tets"])  # the build's mesh: spots at the sensor, region borders
        spots = np.concatenate([[[BEAM[0], 0.0, 0.0]],
                                region_borders(v, f, cfg["regions"], 1.0)])
        mesh = tetrahedralize(v, f, 1.0, target_tets=task["tets"], spots=spots)
        A, b, modes = _system(mesh)
        reset_peak()
        before = peak_rss_mb()
        if task["method"] == "superlu":  # let it fail on memory instead of taking the box
            resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, resource.RLIM_INFINITY))
        t = time.perf_counter()
        try:
            fem.solve_spd(A, b, method=task["method"], near_nullspace=modes, block_size=3)
        except MemoryError:
            return {"s": None, "rss": peak_rss_mb(), "base": before, "dofs": A.shape[0],
                    "nnz": A.nnz, "oom": True}
        return {"s": time.perf_counter() - t, "rss": peak_rss_mb(), "base": before,
                "dofs": A.shape[0], "nnz": A.nnz, "tets": len(mesh.tets)}
    if task["kind"] == "heat":
        v, f = beam_surface()
        cfg = {"regions": {"root": {"normal": [-1, 0, 0]}, "tip": {"normal": [1, 0, 0]}},
               "thermal": {"conductivity": 50.0, "sources": ["tip"], "fixed": ["root"],
                           "convection": {"h": 10.0}, "tets": task["tets"],
                           "residual_kriging": False}}
        sensors = [Sensor(f"b/t{i}", "temperature", "degC", "/B", position=(x, 0.0, BEAM[2] / 2))
                   for i, x in enumerate(np.linspace(0.05, 0.45, 6))]
        t = time.perf_counter()
        model = HeatModel.build(v, f, 1.0, sensors, cfg)
        assert model.mesh is not None
        return {"s": time.perf_counter() - t, "rss": peak_rss_mb(), "tets": model.mesh.elements}
    raise ValueError(task)


def _system(mesh):  # type: ignore[no-untyped-def]
    """The beam's stiffness system (interior unknowns), assembled as the stress model does."""
    from skfem import Basis, ElementTetP2, ElementVector, FacetBasis, LinearForm, asm

    from twin3d.fields import fem
    from twin3d.fields.stress import stiffness_matrix

    m = mesh.to_skfem()
    elem = ElementVector(ElementTetP2())
    K = stiffness_matrix(m, BEAM_E, BEAM_NU)
    root = m.facets_satisfying(lambda x: x[0] < 1e-9, boundaries_only=True)
    tip = m.facets_satisfying(lambda x: x[0] > BEAM[0] - 1e-9, boundaries_only=True)
    D = Basis(m, elem, elements=np.arange(1)).get_dofs(facets=root).all()
    area = BEAM[1] * BEAM[2]

    @LinearForm
    def load(v, w):  # type: ignore[no-untyped-def]
        return -BEAM_P / area * v[2]

    F = np.asarray(asm(load, FacetBasis(m, elem, facets=tip)))
    inner = np.setdiff1d(np.arange(K.shape[0]), D)
    modes = fem.rigid_body_modes(m, K.shape[0])[inner]
    return K[inner][:, inner].tocsr(), F[inner], modes


def run_child(task: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)],
                         capture_output=True, text=True, check=False,
                         env=os.environ | {"PYTHONWARNINGS": "ignore"})
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def scale(quick: bool) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    sizes = (10_000, 30_000) if quick else (10_000, 30_000, 100_000)
    print("\nCantilever 0.5 x 0.03 x 0.06 m steel, 500 N on the tip face, StressModel.build:")
    print("| tets asked | tets made | build s | peak RSS MB | mid-span top fibre vs Mc/I "
          "| tip vs Timoshenko | load avg |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = run_child({"kind": "build", "tets": n})
        if "error" in r:
            print(f"| {n:,} | failed: {r['error']} |||||")
            continue
        print(f"| {n:,} | {r['tets']:,} | {r['s']:.1f} | {r['rss']:.0f} | {r['stress']:+.2%} "
              f"| {r['tip']:+.2%} | {os.getloadavg()[0]:.2f} |", flush=True)
    print("\nThe same systems, each solver alone (factor or set-up + one solve; the peak RSS "
          "while solving, and its rise above the assembled system):")
    print("| tets | unknowns | nnz(A) | solver | solve s | peak RSS MB | above system MB |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for n in sizes:
        for method in ("cholmod", "amg", "superlu"):
            r = run_child({"kind": "solver", "tets": n, "method": method})
            if "error" in r:
                print(f"| {n:,} | | | {method} | failed: {r['error']} | | |", flush=True)
                continue
            solve = "out of memory (8 GB limit)" if r.get("oom") else f"{r['s']:.1f}"
            print(f"| {r.get('tets', n):,} | {r['dofs']:,} | {r['nnz'] / 1e6:.1f}M | {method} "
                  f"| {solve} | {r['rss']:.0f} | {r['rss'] - r['base']:.0f} |", flush=True)
    r = run_child({"kind": "heat", "tets": 500_000})
    if "error" in r:
        print(f"\nHeat model at 500k P1 tets: failed: {r['error']}")
    else:
        print(f"\nHeat model (P1), tets = 500,000: {r['tets']:,} made, build {r['s']:.1f} s, "
              f"peak RSS {r['rss']:.0f} MB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100k vertices / 30k tets")
    parser.add_argument("--scale", action="store_true",
                        help="only the physics at real-part scale (solvers, 10k-100k tets)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    # the readings are random numbers, not physics: their fitted heat inputs may be impossible
    warnings.simplefilter("ignore", ImplausibleInputWarning)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines()
                       if ln.startswith("Model name")), platform.processor())
    print(f"machine: {model_name}; Python {sys.version.split()[0]}; numpy {np.__version__}")
    if args.scale:
        scale(args.quick)
        return 0
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
            upd = median_time(partial(model.update, values), repeats)
            v32 = values.astype(np.float32)
            out = np.empty(model.n_vertices, dtype=np.float32)
            gemv = median_time(partial(matvec, model.W, v32, out), repeats)
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
            total = median_time(partial(model_s.update, v), 10)
            tens = median_time(partial(matvec, model_s.W, v32, model_s.tensor.reshape(-1)), 10)
            vm = median_time(partial(von_mises, model_s.tensor, out=vm_out), 10)
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
