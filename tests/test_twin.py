"""The scripting API (``twin3d.Twin``) and the example scene's scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from plate_stage import MESH, SENSORS

import twin3d
from twin3d.errors import StageError
from twin3d.sensors import load_sensor_map

SCENE = Path(__file__).resolve().parents[1] / "scenes" / "plate"


def test_open_exposes_sensors_meshes_and_units(bound_plate: Path) -> None:
    twin = twin3d.Twin.open(bound_plate)
    assert twin.stage_path == bound_plate
    assert twin.root_path.name == "plate.twin.usda" and twin.live_path.name == "plate.live.usdc"
    assert twin.meters_per_unit == 1.0
    smap = load_sensor_map(SENSORS)
    assert list(twin.sensors) == smap.channels
    tc3 = twin.sensors["plate/tc3"]
    assert isinstance(tc3, twin3d.Sensor)
    assert (tc3.quantity, tc3.unit, tc3.target) == ("temperature", "degC", MESH)
    assert tc3.position == pytest.approx(smap["plate/tc3"].position, abs=1e-6)
    assert tc3.limits == smap["plate/tc3"].limits
    with pytest.raises(TypeError):
        twin.sensors["plate/x"] = tc3  # type: ignore[index]
    (mesh,) = twin.meshes  # the display surface of the mesh (it has sensors), the mesh its source
    assert mesh.path == MESH and mesh.source is not None and mesh.surface == MESH + "_display"
    assert mesh.source.points.shape == (618, 3) and mesh.source.faces.shape == (1252, 3)
    assert len(mesh.points) > 618 and np.array_equal(mesh.points[:618], mesh.source.points)
    assert mesh.points.max(axis=0) == pytest.approx([0.2032, 0.3048, 0.0127], abs=1e-6)
    assert "15 sensors" in repr(twin)
    assert twin.values == {}


def test_open_unbound_stage_has_no_sensors(plate: Path) -> None:
    twin = twin3d.Twin.open(plate)
    assert dict(twin.sensors) == {}
    assert len(twin.meshes) == 1


def test_open_missing_or_bad_stage(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="no such file"):
        twin3d.Twin.open(tmp_path / "nope.usda")
    bad = tmp_path / "bad.usda"
    bad.write_text("#usda 1.0\ndef Xform \"A\" {\n")
    with pytest.raises(StageError, match="cannot open"):
        twin3d.Twin.open(bad)
    no_default = tmp_path / "nodefault.usda"
    no_default.write_text("#usda 1.0\ndef Xform \"A\" {\n}\n")
    with pytest.raises(StageError, match="no defaultPrim"):
        twin3d.Twin.open(no_default)


def test_issue_example_round_trip(bound_plate: Path, tmp_path: Path) -> None:
    """The example from the issue, end to end, read back through a second Twin."""
    twin = twin3d.Twin.open(bound_plate)
    twin.update({"plate/tc3": 81.5})
    n = len(twin.meshes[0].points)
    twin.set_field("Plate", "temperature", np.linspace(20.0, 90.0, n))
    with twin.recording(tmp_path / "run1.usdc") as rec:
        rec.write(time=0.0, values={"plate/tc3": 60.0})
        rec.write(time=1.0, values={"plate/tc3": 61.0})
    twin.save()
    again = twin3d.Twin.open(twin.root_path)
    assert again.values == {"plate/tc3": 81.5}
    assert (tmp_path / "run1.usdc").stat().st_size > 0


def test_scene_scripts_build_update_and_record(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, str(SCENE / "build.py"), "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert "plate/tc5    temperature  snapped  0.80 mm" in build.stdout
    stage = tmp_path / "plate.usda"
    update = subprocess.run([sys.executable, str(SCENE / "update.py"), "--stage", str(stage),
                             "--frames", "6"], capture_output=True, text=True, timeout=120)
    assert update.returncode == 0, update.stderr
    assert "recorded 6 frames -> run1.usdc" in update.stdout
    twin = twin3d.Twin.open(stage)
    values = twin.values
    assert len(values) == 15
    # the readings are the plate's own physics (its models' forward response to a 180 W
    # heater): tc5, above the heater, is the hottest, and the heat model fits them with the
    # inputs that made them, none impossible (no ambient below absolute zero)
    temps = {c: v for c, v in values.items() if twin.sensors[c].quantity == "temperature"}
    assert max(temps, key=temps.__getitem__) == "plate/tc5"
    assert "given: heater 180 W, 22 degC" in update.stdout
    from twin3d.fields import build_field_models

    (_, models), = build_field_models(twin).items()
    fit = models["temperature"].fitted_inputs(temps)
    assert fit.plausible, fit.problems
    assert fit.values["source:heater"] == pytest.approx(180.0, abs=3 * fit.sigma["source:heater"])
    assert fit.values["ambient"] == pytest.approx(22.0, abs=3 * fit.sigma["ambient"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plate.geom.usdc", "plate.live.usdc", "plate.twin.usda", "plate.usda", "run1.clips",
        "run1.usdc"]
    # the example twin's stage, live state and recording pass every validator we have
    from twin3d.usd.validate import validate_stage

    for name in ("plate.usda", "plate.twin.usda", "plate.live.usdc", "run1.usdc"):
        report = validate_stage(tmp_path / name, profile="placeable")
        assert report.failures == [], f"{name}: {[str(f) for f in report.failures]}"


def _tree(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_example_scripts_leave_the_repository_as_it_was() -> None:
    """Run as a newcomer would, with no arguments: outputs go to a new temporary folder."""
    import re
    import shutil
    import tempfile

    scenes = SCENE.parent
    before = _tree(scenes)
    temp = Path(tempfile.gettempdir()).resolve()
    made: list[Path] = []
    try:
        for script, args, output in (("plate/build.py", [], "plate.usda"),
                                     ("plate/update.py", ["--frames", "2"], "run1.usdc"),
                                     ("assembly/update.py", ["--frames", "2"], "warmup.usdc")):
            run = subprocess.run([sys.executable, str(scenes / script), *args],
                                 capture_output=True, text=True, timeout=300)
            assert run.returncode == 0, run.stderr
            found = re.search(r"^(?:wrote (\S+) \(\d+ sensors\)|writing beside (\S+))$",
                              run.stdout, re.MULTILINE)
            assert found, run.stdout
            folder = Path(found.group(1) or found.group(2)).resolve().parent
            assert folder.parent == temp and folder.name.startswith("twin3d-"), folder
            made.append(folder)
            assert (folder / output).is_file(), (script, sorted(folder.iterdir()))
        assert _tree(scenes) == before
    finally:
        for folder in made:  # only the script's own temporary folders
            if folder.parent == temp and folder.name.startswith("twin3d-"):
                shutil.rmtree(folder)
