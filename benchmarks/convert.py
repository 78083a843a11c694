"""Benchmark: CAD -> USD conversion of a 1.3M-triangle mesh, end to end, three ways.

The mesh is an icosphere subdivided 8 times (1,310,720 triangles, 655,362 vertices), written
as STL, OBJ and glTF (GLB). Each conversion runs in a fresh process (process start to output
file closed, wall clock, best of N):

* ``twin3d convert`` (this project);
* NVIDIA's ``usd-convert-asset`` (needs Python 3.12: give it its own venv, e.g.
  ``python3.12 -m venv ~/.venvs/uca && ~/.venvs/uca/bin/pip install usd-convert-asset``,
  then pass ``--uca PATH`` or set ``USD_CONVERT_ASSET``; the column is skipped, with the
  reason printed, when it is not installed);
* trimesh's own load + GLB export (a floor for "read the file, write a mesh file").

Peak memory is the child's peak RSS (``ru_maxrss``), reported beside the mesh's array size
(float32 points + int32 faces) and the RSS of a process that only imports numpy and pxr (what
every conversion imports; these binary STL, OBJ and GLB files take twin3d's fast readers, which
import no trimesh). The target: twin3d's peak minus that RSS under 4x the arrays.

Usage: ``python benchmarks/convert.py [--repeat 3] [--uca /path/to/usd-convert-asset]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = {"STL": "sphere.stl", "OBJ": "sphere.obj", "glTF": "sphere.glb"}

_CHILD = r"""
import resource, sys, time
t0 = float(sys.argv[1])
kind, src, out = sys.argv[2:5]
if kind == "imports":
    import numpy, pxr.Usd, pxr.UsdGeom, pxr.UsdShade  # what twin3d convert always imports
elif kind == "trimesh":
    import trimesh
    trimesh.load_scene(src).export(out)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _run(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd``; return (wall seconds, peak RSS of the child in MiB)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children so far
    return wall, rss // 1024


def _peak_rss(cmd: list[str]) -> tuple[float, int]:
    """Wall time and this child's own peak RSS (MiB), via /usr/bin/time if present."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if gnu_time is None:
        return _run(cmd)
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
        t = time.perf_counter()
        proc = subprocess.run([gnu_time, "-f", "%M", "-o", f.name, *cmd], capture_output=True,
                              text=True, check=False)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
        return wall, int(f.read().strip().splitlines()[-1]) // 1024


def make_inputs(folder: Path) -> tuple[int, int]:
    """Write the icosphere in each format; return (triangles, vertices)."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=8, radius=0.1)
    for name in FORMATS.values():
        mesh.export(str(folder / name))
    return len(mesh.faces), len(mesh.vertices)


def find_uca(arg: str | None) -> tuple[str | None, str]:
    """Path of usd-convert-asset, or None and why not."""
    for cand in (arg, os.environ.get("USD_CONVERT_ASSET"), shutil.which("usd-convert-asset"),
                 str(Path.home() / ".venvs/uca/bin/usd-convert-asset"),
                 "/work/venv-uca/bin/usd-convert-asset"):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand, ""
    return None, ("usd-convert-asset not installed (it needs Python 3.12: python3.12 -m venv "
                  "~/.venvs/uca && ~/.venvs/uca/bin/pip install usd-convert-asset)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell (best is reported)")
    ap.add_argument("--uca", help="path of the usd-convert-asset executable")
    args = ap.parse_args()

    twin3d_cli = [sys.executable, "-m", "twin3d"]
    uca, why = find_uca(args.uca)
    with tempfile.TemporaryDirectory(prefix="twin3d-bench-") as tmp:
        folder = Path(tmp)
        ntri, nvert = make_inputs(folder)
        array_mib = (nvert * 3 * 4 + ntri * 3 * 4) / 2**20
        _, base_rss = _peak_rss([sys.executable, "-c", _CHILD, "0", "imports", "", ""])
        print(f"mesh: icosphere(8): {ntri:,} triangles, {nvert:,} vertices; arrays "
              f"(float32 points + int32 faces) {array_mib:.1f} MiB; python+numpy+pxr RSS {base_rss} MiB")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}")
        if uca is None:
            print(f"usd-convert-asset column skipped: {why}")
        header = f"{'format':6} {'input MiB':>9} | {'twin3d s':>9} {'peak MiB':>8} " \
                 f"{'above imports':>13} | " \
                 f"{'usd-convert-asset s':>19} {'peak MiB':>8} {'speed-up':>8} | " \
                 f"{'trimesh load+GLB s':>18} {'peak MiB':>8}"
        print(header)
        print("-" * len(header))
        for fmt, name in FORMATS.items():
            src = folder / name
            cells: dict[str, tuple[float, int]] = {}
            runs = {
                "twin3d": lambda s=src: [*twin3d_cli, "convert", str(s), "-o",
                                                      str(folder / "t.usda"), "--units", "m"],
                "trimesh": lambda s=src: [sys.executable, "-c", _CHILD, "0", "trimesh", str(s),
                                          str(folder / "t.glb")],
            }
            if uca:
                runs["uca"] = lambda s=src: [uca, "-i", str(s), "-o", str(folder / "u.usd")]
            for key, cmd in runs.items():
                best: tuple[float, int] | None = None
                for _ in range(args.repeat):
                    wall, rss = _peak_rss(cmd())
                    if best is None or wall < best[0]:
                        best = (wall, rss)
                assert best is not None
                cells[key] = best
            t = cells["twin3d"]
            u = cells.get("uca")
            m = cells["trimesh"]
            ucol = (f"{u[0]:19.2f} {u[1]:8d} {u[0] / t[0]:7.1f}x" if u else
                    f"{'skipped':>19} {'':8} {'':8}")
            above = t[1] - base_rss
            verdict = "ok" if above < 4 * array_mib else "OVER"
            print(f"{fmt:6} {src.stat().st_size / 2**20:9.1f} | {t[0]:9.2f} {t[1]:8d} "
                  f"{above:8d} {verdict:>4} | {ucol} | "
                  f"{m[0]:18.2f} {m[1]:8d}")
        print(f"peak memory target: twin3d peak - imports RSS ({base_rss} MiB) < 4 x arrays "
              f"({4 * array_mib:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
