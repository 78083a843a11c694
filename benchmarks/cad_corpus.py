"""Benchmark: ``twin3d convert`` on folders of real CAD and mesh files: crashes, hangs, winding.

For every STL, OBJ, PLY, OFF, glTF/GLB, 3MF and STEP file under the folders given, in a fresh
process each, ``twin3d convert FILE -o OUT.usda`` is classed as

* **converted** (exit 0), **clean error** (exit 1 or 2 with one ``twin3d convert: error:``
  line and no traceback), **traceback** (anything else on stderr: a traceback, an internal
  error, more than the error line), or **hang** (past ``--timeout``, killed);

and, in process, every source mesh (welded as the converter welds it) is wound by
:func:`twin3d.cad.orient.orient_faces` and by ``trimesh.repair.fix_winding`` (what the
converter used before), counting the faces each reverses against the source, split by
whether the source mesh was consistently wound (no directed edge used twice) or not.

The sample sets used for ``benchmarks/RESULTS.md`` ("CAD robustness") are public
repositories, not shipped here: trimesh's ``models/`` (mikedh/trimesh, MIT; Khronos glTF
samples among them), pythonocc-demos' ``assets/models`` (tpaviot/pythonocc-demos: STEP from
OpenCASCADE's and others' tests) and OpenCASCADE's ``data/step`` and ``data/stl``
(Open-Cascade-SAS/OCCT, LGPL 2.1), files under 4 MiB; plus files this script writes itself
with ``--generated DIR`` (glTF strips, fans, points and lines, Draco, meshopt, a truncated
GLB, STEP cubes with coloured faces).

Usage: ``python benchmarks/cad_corpus.py DIR [DIR ...] [--timeout 300] [--generated DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

SUFFIXES = {".stl", ".obj", ".ply", ".off", ".gltf", ".glb", ".3mf", ".step", ".stp"}


def convert_outcome(path: Path, out: Path, timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, last stderr line) of ``twin3d convert path -o out``."""
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "twin3d", "convert", str(path), "-o", str(out)],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "hang", time.perf_counter() - started, ""
    took = time.perf_counter() - started
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    noise = [line for line in lines if not line.startswith("twin3d convert: ")]
    last = lines[-1] if lines else ""
    if noise or "internal error" in proc.stderr:
        return "traceback", took, (noise or [last])[-1]
    if proc.returncode == 0:
        return "converted", took, last
    return "clean error", took, last


def winding(path: Path) -> list[dict[str, object]]:
    """Per source mesh: faces, whether consistently wound, faces reversed by each repair."""
    import trimesh

    from twin3d.cad.orient import orient_faces
    from twin3d.cad.part import FORMATS
    from twin3d.cad.read import read_scene
    from twin3d.cad.weld import weld

    scene = read_scene(path, FORMATS[path.suffix.lower()][0])
    rows = []
    for mesh in scene.meshes.take_all():
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        if mesh.faces is not None and mesh.welded:
            points, tri = vertices, np.asarray(mesh.faces, dtype=np.int64)
        else:
            points, tri = weld(vertices, None if mesh.faces is None else np.asarray(mesh.faces))
            tri = np.asarray(tri, dtype=np.int64)
        tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
        if len(tri) == 0:
            continue
        directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
        key = np.sort(directed[:, 0] * len(points) + directed[:, 1])
        consistent = not np.any(key[1:] == key[:-1])
        new = orient_faces(points, tri)
        old = trimesh.Trimesh(points, tri.copy(), process=False, validate=False)
        if not consistent:
            trimesh.repair.fix_winding(old)
        rows.append({"mesh": mesh.name, "faces": len(tri), "consistent": consistent,
                     "reversed_new": int((new != tri).any(axis=1).sum()),
                     "reversed_old": int((np.asarray(old.faces) != tri).any(axis=1).sum())})
    return rows


def generate(folder: Path) -> None:
    """Write the generated sample files into ``folder``."""
    import trimesh

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gltf_samples import gltf_file  # the tests' writer of small glTF files
    from step_samples import cube_step

    folder.mkdir(parents=True, exist_ok=True)
    quad = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    gltf_file(folder / "fan.gltf", quad, mode=6)
    gltf_file(folder / "fan_indexed.gltf", quad, mode=6, indices=[0, 1, 2, 3])
    gltf_file(folder / "strip.gltf", quad[[0, 1, 3, 2]], mode=5)
    gltf_file(folder / "lines.gltf", quad, mode=1)
    gltf_file(folder / "points.gltf", quad, mode=0)
    gltf_file(folder / "meshopt.gltf", quad, mode=4, indices=[0, 1, 2, 0, 2, 3],
              required=["EXT_meshopt_compression"])
    sphere = trimesh.creation.icosphere(3)
    sphere.export(str(folder / "draco.glb"), extension_draco=True)
    whole = trimesh.exchange.gltf.export_glb(trimesh.Scene(sphere))
    (folder / "truncated.glb").write_bytes(whole[: len(whole) // 2])
    cube_step(folder / "colored_cube.step", [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
    cube_step(folder / "big_cube.step", [(0.5, 0.5, 0.5)], size_mm=63_000.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a hang")
    parser.add_argument("--generated", type=Path, help="write the generated samples here too")
    parser.add_argument("--json", type=Path, help="write every file's result here")
    args = parser.parse_args()
    folders = list(args.folders)
    if args.generated:
        generate(args.generated)
        folders.append(args.generated)
    files = sorted(f for d in folders for f in d.rglob("*") if f.suffix.lower() in SUFFIXES)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            outcome, took, last = convert_outcome(f, Path(tmp) / "out.usda", args.timeout)
            meshes = []
            if outcome == "converted":
                meshes = winding(f)
            results.append({"file": str(f), "outcome": outcome, "seconds": round(took, 2),
                            "stderr": last, "meshes": meshes})
            flips = sum(int(m["reversed_new"]) for m in meshes)  # type: ignore[call-overload]
            print(f"{outcome:12s} {took:6.1f}s {f}  {last[:120]}"
                  + (f"  [reversed {flips}]" if flips else ""), flush=True)
    counts = Counter(r["outcome"] for r in results)
    meshes = [m for r in results for m in r["meshes"]]  # type: ignore[attr-defined]
    consistent = [m for m in meshes if m["consistent"]]
    inconsistent = [m for m in meshes if not m["consistent"]]
    print(f"\n{len(files)} files: " + ", ".join(f"{n} {k}" for k, n in counts.most_common()))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"{len(consistent)} consistently wound source meshes "
          f"({sum(m['faces'] for m in consistent)} faces): reversed by twin3d "
          f"{sum(m['reversed_new'] for m in consistent)}, by fix_winding "
          f"{sum(m['reversed_old'] for m in consistent)}")
    print(f"{len(inconsistent)} inconsistently wound source meshes:")
    for r in results:
        for m in r["meshes"]:
            if not m["consistent"]:
                print(f"  {Path(r['file']).name} / {m['mesh']}: {m['faces']} faces, reversed by "
                      f"twin3d {m['reversed_new']}, by fix_winding {m['reversed_old']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if not counts["traceback"] and not counts["hang"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
