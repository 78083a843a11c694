"""Regenerate the robot demo's packaged SO-101 (``twin3d/data/so101/``) from the full copy.

    python scenes/robot/make_so101_data.py

The full meshes (``tests/data/robots/so101/assets``, 16 MB of binary STL) are too big to ship
inside the package, so each one is decimated with VTK's quadric decimation
(``pyvista.PolyData.decimate``, volume preserving) as far as it stays within
:data:`TOLERANCE_M` of the original both ways (every original vertex near the decimated
surface and every decimated vertex near the original one) and no edge of it joins more
than two triangles (NVIDIA's ManifoldChecker fails those). The URDF and the licence are
copied unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyvista as pv

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "data" / "robots" / "so101"
TARGET = REPO / "twin3d" / "data" / "so101"
TOLERANCE_M = 0.15e-3
REDUCTIONS = (0.97, 0.95, 0.93, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0)


def deviation(a: pv.PolyData, b: pv.PolyData) -> float:
    """The largest distance (metres) of a vertex of either mesh from the other's surface."""
    ab = np.abs(a.compute_implicit_distance(b)["implicit_distance"]).max()
    ba = np.abs(b.compute_implicit_distance(a)["implicit_distance"]).max()
    return float(max(ab, ba))


def non_manifold_edges(mesh: pv.PolyData) -> int:
    """How many edges join more than two triangles."""
    return int(mesh.extract_feature_edges(boundary_edges=False, feature_edges=False,
                                          manifold_edges=False, non_manifold_edges=True).n_cells)


def decimate(path: Path) -> tuple[pv.PolyData, float, float]:
    """The most decimated mesh within the tolerance and as manifold as the original; its
    reduction and deviation."""
    original = pv.read(path).clean()
    for reduction in REDUCTIONS:
        mesh = original.decimate(reduction, volume_preservation=True) if reduction else original
        error = deviation(original, mesh)
        if error <= TOLERANCE_M and non_manifold_edges(mesh) <= non_manifold_edges(original):
            return mesh, reduction, error
    raise AssertionError("unreachable: reduction 0 keeps the mesh")


if __name__ == "__main__":
    (TARGET / "assets").mkdir(parents=True, exist_ok=True)
    for name in ("so101.urdf", "LICENSE"):
        shutil.copyfile(SOURCE / name, TARGET / name)
    before = after = 0
    for stl in sorted((SOURCE / "assets").glob("*.stl")):
        mesh, reduction, error = decimate(stl)
        out = TARGET / "assets" / stl.name
        mesh.save(out, binary=True)
        before, after = before + stl.stat().st_size, after + out.stat().st_size
        print(f"{stl.name:40} {pv.read(stl).n_cells:6} -> {mesh.n_cells:6} triangles "
              f"(-{reduction:.0%}), within {error * 1e3:.3f} mm")
    print(f"{before / 1e6:.1f} MB -> {after / 1e6:.2f} MB in {TARGET}")
