"""The assembly example twin (scenes/assembly): a real 10-part STEP assembly, built and driven."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pxr import Usd

import twin3d
from twin3d.display import interpolate, locate
from twin3d.usd.validate import validate_stage

SCENE = Path(__file__).resolve().parents[1] / "scenes" / "assembly"


@pytest.mark.slow
def test_assembly_scene_builds_updates_records_and_validates(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, str(SCENE / "build.py"), "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    assert "8 sensors on 3 parts" in build.stdout
    stage = tmp_path / "enclosure.usda"
    update = subprocess.run([sys.executable, str(SCENE / "update.py"), "--stage", str(stage),
                             "--frames", "5"], capture_output=True, text=True, timeout=300)
    assert update.returncode == 0, update.stderr
    assert "3 parts with a kriged temperature field" in update.stdout

    twin = twin3d.Twin.open(stage)
    parts = {m.path for m in twin.meshes}
    assert len(parts) == 10  # every part of the STEP assembly, the four gussets instanced
    assert {s.target for s in twin.sensors.values()} == {
        "/Enclosure/Geom/box_base", "/Enclosure/Geom/box_top", "/Enclosure/Geom/side_short_B"}
    # the live field on the base plate agrees with its thermocouples (kriging, small noise),
    # read in the triangle of its display surface each one sits on
    composed = Usd.Stage.Open(str(twin.root_path))
    base = composed.GetPrimAtPath("/Enclosure/Geom/box_base_display")
    field = np.asarray(base.GetAttribute("primvars:temperature").Get())
    indices = base.GetAttribute("primvars:temperature:indices").Get()
    field = field[np.asarray(indices)] if indices else field
    surface = next(m for m in twin.meshes if m.path == "/Enclosure/Geom/box_base")
    for channel in ("enclosure/base1", "enclosure/base2", "enclosure/base3"):
        tri, bary, dist = locate(surface.points, surface.faces, [twin.sensors[channel].position])
        assert dist[0] < 1e-9
        assert abs(interpolate(field, surface.faces, tri, bary)[0] - twin.values[channel]) < 1.0
    assert base.GetAttribute("primvars:temperature_sigma").Get() is not None
    for name in ("enclosure.twin.usda", "warmup.usdc"):
        report = validate_stage(tmp_path / name, profile="placeable")
        assert report.failures == [], f"{name}: {[str(f) for f in report.failures]}"
