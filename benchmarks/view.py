"""View update cost: fields, moving parts and deformation, in place vs naive re-add.

One process, round-robin. For each mesh size every variant gets its own off-screen plotter;
per round each renders a few static frames (nothing changed) and a few frames with a new
field. CPU time is ``time.process_time`` (all threads: on llvmpipe the rasteriser's too);
the *update overhead* of a variant is the median, over frames, of a changed frame's CPU
minus that of the static frame rendered just before it on the same plotter.

Field variants (``--sizes``):
  gpu    ``twin3d.View``: the raw float32 field written into the bound vertex attribute
         in place; colour mapping in the fragment shader (one float per vertex uploaded)
  cpu    ``twin3d.View(gpu=False)``: same array in place, VTK maps colours on the CPU
  re-add  ``add_mesh(mesh, scalars=new, name="part")`` per frame (pyvista swaps the actor)
  rebuild  the same, with the PolyData rebuilt from the stage arrays every frame

Moving parts (``--parts``, 50 parts of 2,000 vertices) and deformation (``--deform``, one
mesh of 1M vertices), each frame with a new pose or shape:
  matrix   ``View.set_transforms``: one 4x4 matrix per part, no buffer touched
  shader   ``View.set_displacement`` on a big mesh: a displacement vertex attribute written in
           place, added in the vertex shader (points untouched, no bounds pass)
  points   ``View.set_displacement`` forced to rewrite the float32 points buffer in place
  modes    ``View.set_displacement_modes`` once (4 modes, as a stress model's ``U``), then
           ``View.set_displacement_weights`` per frame: 4 uniforms, nothing uploaded
  re-add   the moved/deformed points as new meshes, ``add_mesh(..., name=)`` per part
The update call alone (``set_transforms`` of 50 parts, ``set_displacement`` at 1M) is timed too.

Run:  python benchmarks/view.py [--only fields parts deform] [--sizes 100000 1000000]
      [--parts 50] [--deform 1000000] [--rounds 3] [--frames 5]
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

import pyvista as pv

from twin3d.usd.meshes import MeshData
from twin3d.view import View

SIZE = (800, 600)


def grid(n_vertices: int) -> MeshData:
    """A wavy square plate of about ``n_vertices`` welded vertices, triangulated."""
    k = round(float(np.sqrt(n_vertices)))
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
        self.pl = pv.Plotter(off_screen=True, window_size=list(SIZE), theme=_theme())
        self._add(fields[0])
        self.pl.camera_position = "iso"
        self.pl.ren_win.Render()

    def _poly(self) -> pv.PolyData:
        return pv.PolyData(self.mesh.points.astype(np.float32), _faces(self.mesh))

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


def _theme() -> Any:
    theme = pv.themes.DocumentTheme()
    theme.anti_aliasing = None
    theme.multi_samples = 0
    return theme


def _faces(mesh: MeshData) -> np.ndarray:
    return np.hstack([np.full((len(mesh.faces), 1), 3), mesh.faces]).ravel()


def parts(n_parts: int, per_part: int = 2000) -> list[MeshData]:
    """``n_parts`` small wavy plates on a grid, each its own mesh (a robot's links, say)."""
    base = grid(per_part)
    side = int(np.ceil(np.sqrt(n_parts)))
    out = []
    for i in range(n_parts):
        shift = np.array([1.3 * (i % side), 1.3 * (i // side), 0.0])
        out.append(MeshData(f"/Bench/Geom/Part{i}", base.points + shift, base.faces,
                            (0.7, 0.7, 0.7), world=np.eye(4)))
    return out


def poses(meshes: list[MeshData], k: int) -> dict[str, np.ndarray]:
    """Frame ``k``'s pose of every part: a turn about its own centre and a small lift."""
    out = {}
    for i, m in enumerate(meshes):
        a = 0.2 * np.sin(0.7 * k + i)
        c = m.points.mean(axis=0)
        rot = np.eye(4)
        rot[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        to, back = np.eye(4), np.eye(4)
        to[:3, 3], back[:3, 3] = c + np.array([0.0, 0.0, 0.1 * np.cos(0.5 * k + i)]), -c
        out[m.path] = to @ rot @ back
    return out


class MatrixVariant:
    """50 parts in a ``View``; each frame ``set_transforms`` moves all of them."""

    def __init__(self, meshes: list[MeshData]) -> None:
        self.meshes = meshes
        self.poses = [poses(meshes, k) for k in range(8)]  # made before: not the view's cost
        self.view = View(Scene(meshes), off_screen=True, window_size=SIZE, show_sensors=False)
        self.view.render()
        self.k = 0
        self.update_ms: list[float] = []

    def static(self) -> None:
        self.view.render()

    def change(self) -> None:
        self.k += 1
        pose = self.poses[self.k % len(self.poses)]
        t = time.perf_counter()
        self.view.set_transforms(pose)
        self.update_ms.append((time.perf_counter() - t) * 1e3)
        self.view.render()

    def close(self) -> None:
        self.view.close()


class ReaddPartsVariant:
    """Each frame the moved points of every part become a new mesh, ``add_mesh(name=)``."""

    def __init__(self, meshes: list[MeshData]) -> None:
        self.meshes, self.k = meshes, 0
        self.faces = [_faces(m) for m in meshes]
        self.pl = pv.Plotter(off_screen=True, window_size=list(SIZE), theme=_theme())
        self._add(poses(meshes, 0))
        self.pl.camera_position = "iso"
        self.pl.ren_win.Render()

    def _add(self, pose: dict[str, np.ndarray]) -> None:
        for i, (m, f) in enumerate(zip(self.meshes, self.faces, strict=True)):
            mat = pose[m.path]
            pts = (m.points @ mat[:3, :3].T + mat[:3, 3]).astype(np.float32)
            self.pl.add_mesh(pv.PolyData(pts, f), color="lightgrey", name=f"part{i}",
                             reset_camera=False, render=False)

    def static(self) -> None:
        self.pl.ren_win.Render()

    def change(self) -> None:
        self.k += 1
        self._add(poses(self.meshes, self.k))
        self.pl.ren_win.Render()

    def close(self) -> None:
        self.pl.close()


def bends(mesh: MeshData, n: int = 4) -> list[np.ndarray]:
    """A few (n_vertices, 3) float32 displacements: bending waves of 1 mm."""
    x, y = mesh.points[:, 0], mesh.points[:, 1]
    out = []
    for p in np.linspace(0, 3, n):
        d = np.zeros((len(x), 3), dtype=np.float32)
        d[:, 2] = 0.001 * np.sin(3 * x + p) * x * x
        d[:, 0] = 0.0002 * np.cos(2 * y - p)
        out.append(d)
    return out


class InPlaceVariant:
    """One big mesh in a ``View``; each frame ``set_displacement`` with a new shape (×50).

    ``shader``: the displacement attribute added in the vertex shader (what the view does from
    ``SHADER_DISPLACEMENT_POINTS`` up); else the points buffer rewritten.
    """

    def __init__(self, mesh: MeshData, shader: bool) -> None:
        self.mesh, self.shapes, self.k = mesh, bends(mesh), 0
        self.view = View(Scene([mesh]), off_screen=True, window_size=SIZE, show_sensors=False)
        self.view.mesh_actors[0].shader_displacement = shader
        self.view.render()
        self.update_ms: list[float] = []

    def static(self) -> None:
        self.view.render()

    def change(self) -> None:
        self.k += 1
        t = time.perf_counter()
        self.view.set_displacement(self.mesh.path, self.shapes[self.k % len(self.shapes)], 50.0)
        self.update_ms.append((time.perf_counter() - t) * 1e3)
        self.view.render()

    def close(self) -> None:
        self.view.close()


class ModesVariant:
    """One big mesh in a ``View`` with 4 displacement modes; each frame new weights."""

    def __init__(self, mesh: MeshData) -> None:
        self.mesh, self.k = mesh, 0
        self.view = View(Scene([mesh]), off_screen=True, window_size=SIZE, show_sensors=False)
        self.view.set_displacement_modes(mesh.path, np.stack(bends(mesh), axis=2))
        self.weights = [np.array([np.sin(0.7 * j + i) for i in range(4)]) for j in range(4)]
        self.view.render()
        self.update_ms: list[float] = []

    def static(self) -> None:
        self.view.render()

    def change(self) -> None:
        self.k += 1
        t = time.perf_counter()
        self.view.set_displacement_weights(self.mesh.path, self.weights[self.k % 4], 50.0)
        self.update_ms.append((time.perf_counter() - t) * 1e3)
        self.view.render()

    def close(self) -> None:
        self.view.close()


class ReaddDeformVariant:
    """Each frame the deformed points become a new mesh, ``add_mesh(name=)``."""

    def __init__(self, mesh: MeshData) -> None:
        self.mesh, self.shapes, self.k = mesh, bends(mesh), 0
        self.faces = _faces(mesh)
        self.pl = pv.Plotter(off_screen=True, window_size=list(SIZE), theme=_theme())
        self._add(self.shapes[0])
        self.pl.camera_position = "iso"
        self.pl.ren_win.Render()

    def _add(self, d: np.ndarray) -> None:
        pts = (self.mesh.points + 50.0 * d).astype(np.float32)
        self.pl.add_mesh(pv.PolyData(pts, self.faces), color="lightgrey", name="part",
                         reset_camera=False, render=False)

    def static(self) -> None:
        self.pl.ren_win.Render()

    def change(self) -> None:
        self.k += 1
        self._add(self.shapes[self.k % len(self.shapes)])
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
    return run({"gpu": ViewVariant(mesh, fields, True), "cpu": ViewVariant(mesh, fields, False),
                "re-add": NaiveVariant(mesh, fields, rebuild=False),
                "rebuild": NaiveVariant(mesh, fields, rebuild=True)}, rounds, frames)


def run(variants: dict[str, Any], rounds: int, frames: int) -> dict[str, dict[str, float]]:
    """Round-robin static/changed frames of each variant; medians (ms) per variant."""
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
        pairs = [c[0] - st[0] for st, c in zip(s["static"], s["change"], strict=True)]
        out[name] = {"static_cpu": st_cpu, "frame_cpu": ch_cpu,
                     "frame_wall": statistics.median(w for _, w in s["change"]),
                     "overhead": statistics.median(pairs)}
        calls = getattr(variants[name], "update_ms", None)
        if calls:
            out[name]["call"] = statistics.median(calls)
        variants[name].close()
    return out


def report(title: str, res: dict[str, dict[str, float]], naive: str) -> None:
    """Print one table: per variant the frame costs, the overhead and naive ÷ this."""
    print(title)
    print(f"{'variant':>9} {'static CPU':>11} {'frame CPU':>10} {'frame wall':>11} "
          f"{'overhead':>9} {'update call':>12} {'naive/this':>11}")
    for name, r in res.items():
        ratio = res[naive]["overhead"] / max(r["overhead"], 0.5)  # below 0.5 ms: noise
        call = f"{r['call']:.3f}" if "call" in r else ""
        print(f"{name:>9} {r['static_cpu']:>11.1f} {r['frame_cpu']:>10.1f} {r['frame_wall']:>11.1f} "
              f"{r['overhead']:>+9.1f} {call:>12} {f'{ratio:.1f}x' if name != naive else '':>11}")
    sys.stdout.flush()


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
    ap.add_argument("--only", nargs="+", choices=("fields", "parts", "deform"),
                    default=["fields", "parts", "deform"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--parts", type=int, default=50, help="moving parts (2,000 vertices each)")
    ap.add_argument("--deform", type=int, default=1_000_000, help="vertices of the deformed mesh")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=5, help="frames per variant per round")
    args = ap.parse_args(argv)
    print(machine())
    print(f"window {SIZE[0]}x{SIZE[1]} off-screen, anti-aliasing off; medians of "
          f"{args.rounds}x{args.frames} frames per variant; ms; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "parts" in args.only:
        meshes = parts(args.parts)
        report(f"{args.parts} moving parts ({sum(len(m.points) for m in meshes):,} vertices)",
               run({"matrix": MatrixVariant(meshes), "re-add": ReaddPartsVariant(meshes)},
                   args.rounds, args.frames), "re-add")
    if "deform" in args.only:
        big = grid(args.deform)
        report(f"deformation of {len(big.points):,} vertices",
               run({"shader": InPlaceVariant(big, True), "points": InPlaceVariant(big, False),
                    "modes": ModesVariant(big), "re-add": ReaddDeformVariant(big)},
                   args.rounds, args.frames), "re-add")
    if "fields" not in args.only:
        return 0
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
