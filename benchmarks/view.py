"""View update cost: in-place GPU attribute vs in-place CPU colour map vs naive re-add.

One process, round-robin. For each mesh size every variant gets its own off-screen plotter;
per round each renders a few static frames (nothing changed) and a few frames with a new
field. CPU time is ``time.process_time`` (all threads: on llvmpipe the rasteriser's too);
the *update overhead* of a variant is the median, over frames, of a changed frame's CPU
minus that of the static frame rendered just before it on the same plotter.

Variants:
  gpu    ``twin3d.View``: the raw float32 field written into the bound vertex attribute
         in place; colour mapping in the fragment shader (one float per vertex uploaded)
  cpu    ``twin3d.View(gpu=False)``: same array in place, VTK maps colours on the CPU
  re-add  ``add_mesh(mesh, scalars=new, name="part")`` per frame (pyvista swaps the actor)
  rebuild  the same, with the PolyData rebuilt from the stage arrays every frame

Run:  python benchmarks/view.py [--sizes 100000 1000000] [--rounds 3] [--frames 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import pyvista as pv  # noqa: E402

from twin3d.usd.geometry import MeshData  # noqa: E402
from twin3d.view import View  # noqa: E402

SIZE = (800, 600)


def grid(n_vertices: int) -> MeshData:
    """A wavy square plate of about ``n_vertices`` welded vertices, triangulated."""
    k = int(round(np.sqrt(n_vertices)))
    x, y = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    z = 0.03 * np.sin(6 * x) * np.cos(5 * y)
    pts = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    i, j = np.meshgrid(np.arange(k - 1), np.arange(k - 1))
    a = (j * k + i).ravel()
    faces = np.concatenate([np.stack([a, a + 1, a + k + 1], 1), np.stack([a, a + k + 1, a + k], 1)])
    return MeshData("/Bench/Geom/Plate", pts, faces.astype(np.int64), (0.7, 0.7, 0.7))


@dataclass
class Scene:
    meshes: list[MeshData]
    sensors: dict[str, Any] = field(default_factory=dict)
    meters_per_unit: float = 1.0


class Precomputed:
    """A field model whose update returns the next of a few precomputed fields (no W @ v cost)."""

    quantity, unit, channels = "temperature", "degC", ["c"]

    def __init__(self, fields: list[np.ndarray]) -> None:
        self.fields, self.i = fields, 0
        self.n_vertices = fields[0].size

    def update(self, values: Any) -> np.ndarray:
        self.i += 1
        return self.fields[self.i % len(self.fields)]


def make_fields(mesh: MeshData, n: int = 4) -> list[np.ndarray]:
    x, y = mesh.points[:, 0], mesh.points[:, 1]
    return [(50 + 40 * np.sin(6 * x + p) * np.cos(4 * y - p)).astype(np.float32)
            for p in np.linspace(0, 3, n)]


class ViewVariant:
    def __init__(self, mesh: MeshData, fields: list[np.ndarray], gpu: bool) -> None:
        self.view = View(Scene([mesh]), Precomputed(fields), off_screen=True, window_size=SIZE,
                         field_range=(10.0, 90.0), gpu=gpu, show_sensors=False)
        self.view.push({"c": 0.0})
        self.view.render()
        self.k = 0

    def static(self) -> None:
        self.view.render()

    def change(self) -> None:
        self.k += 1
        self.view.push({"c": float(self.k)})
        self.view.render()

    def close(self) -> None:
        self.view.close()


class NaiveVariant:
    """``add_mesh(..., name="part")`` per frame: pyvista removes the old actor, adds a new one.

    ``rebuild`` also makes the PolyData again from the stage arrays each frame, as a script
    that keeps no VTK objects between frames does.
    """

    def __init__(self, mesh: MeshData, fields: list[np.ndarray], rebuild: bool) -> None:
        self.mesh, self.rebuild = mesh, rebuild
        self.poly = self._poly()
        self.fields, self.k = fields, 0
        theme = pv.themes.DocumentTheme()
        theme.anti_aliasing = None
        theme.multi_samples = 0
        self.pl = pv.Plotter(off_screen=True, window_size=list(SIZE), theme=theme)
        self._add(fields[0])
        self.pl.camera_position = "iso"
        self.pl.ren_win.Render()

    def _poly(self) -> pv.PolyData:
        faces = np.hstack([np.full((len(self.mesh.faces), 1), 3), self.mesh.faces]).ravel()
        return pv.PolyData(self.mesh.points.astype(np.float32), faces)

    def _add(self, values: np.ndarray) -> None:
        poly = self._poly() if self.rebuild else self.poly
        self.pl.add_mesh(poly, scalars=values, clim=(10, 90), cmap="inferno", name="part",
                         reset_camera=False, render=False, show_scalar_bar=False)

    def static(self) -> None:
        self.pl.ren_win.Render()

    def change(self) -> None:
        self.k += 1
        self._add(self.fields[self.k % len(self.fields)])
        self.pl.ren_win.Render()

    def close(self) -> None:
        self.pl.close()


def timed(fn: Any) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return (time.process_time() - c) * 1e3, (time.perf_counter() - w) * 1e3


def bench(n: int, rounds: int, frames: int) -> dict[str, dict[str, float]]:
    mesh = grid(n)
    fields = make_fields(mesh)
    variants: dict[str, Any] = {"gpu": ViewVariant(mesh, fields, True),
                                "cpu": ViewVariant(mesh, fields, False),
                                "re-add": NaiveVariant(mesh, fields, rebuild=False),
                                "rebuild": NaiveVariant(mesh, fields, rebuild=True)}
    for v in variants.values():  # warm up: shaders compiled, buffers uploaded
        v.change()
        v.static()
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        k: {"static": [], "change": []} for k in variants}
    for _ in range(rounds):
        for name, v in variants.items():
            for _ in range(frames):
                samples[name]["static"].append(timed(v.static))
                samples[name]["change"].append(timed(v.change))
    out = {}
    for name, s in samples.items():
        st_cpu = statistics.median(c for c, _ in s["static"])
        ch_cpu = statistics.median(c for c, _ in s["change"])
        # paired: each changed frame minus the static frame rendered just before it, so
        # slow drifts of a shared machine cancel
        pairs = [c[0] - st[0] for st, c in zip(s["static"], s["change"])]
        out[name] = {"static_cpu": st_cpu, "frame_cpu": ch_cpu,
                     "frame_wall": statistics.median(w for _, w in s["change"]),
                     "overhead": statistics.median(pairs)}
        variants[name].close()
    return out


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return (f"{os.cpu_count()}-core {platform.machine()}, {model}, Python "
            f"{platform.python_version()}, VTK {pv.vtk_version_info}, "
            f"{'software GL' if _software() else 'hardware GL'}")


def _software() -> bool:
    from twin3d.view.renderer import software_gl

    return software_gl()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=5, help="frames per variant per round")
    args = ap.parse_args(argv)
    print(machine())
    print(f"window {SIZE[0]}x{SIZE[1]} off-screen, anti-aliasing off; medians of "
          f"{args.rounds}x{args.frames} frames per variant; ms")
    print(f"{'vertices':>9} {'variant':>7} {'static CPU':>11} {'frame CPU':>10} "
          f"{'frame wall':>11} {'overhead':>9} {'re-add/this':>13}")
    for n in args.sizes:
        res = bench(n, args.rounds, args.frames)
        naive = res["re-add"]["overhead"]
        for name in ("gpu", "cpu", "re-add", "rebuild"):
            r = res[name]
            ratio = naive / max(r["overhead"], 0.5)  # floor: below 0.5 ms is timer noise
            print(f"{n:>9,} {name:>7} {r['static_cpu']:>11.1f} {r['frame_cpu']:>10.1f} "
                  f"{r['frame_wall']:>11.1f} {r['overhead']:>+9.1f} "
                  f"{f'{ratio:>8.1f}x' if name in ('gpu', 'cpu') else '':>13}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
