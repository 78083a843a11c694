"""Test fixtures: the example plate twin, converted with the real converter and bound.

The geometry is the real CAD file ``twin3d/data/plate_holes.stl`` (mm); the sensor map is
the demo's ``twin3d/data/plate_sensors.toml``. Conversion and binding run once per
session; each test gets its own copy of the files. Import the fixtures into a test module
with ``from plate_stage import plate, bound_plate, plate_templates``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STL = REPO / "twin3d" / "data" / "plate_holes.stl"
SENSORS = REPO / "twin3d" / "data" / "plate_sensors.toml"
MESH = "/Plate/Geom/plate_holes_stl"


@pytest.fixture(scope="session")
def plate_templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(converted plate.usda, the same bound to the example sensor map), made once."""
    from twin3d.convert import convert
    from twin3d.sensors import load_sensor_map
    from twin3d.usd.bind import bind_sensors

    raw = tmp_path_factory.mktemp("plate_raw") / "plate.usda"
    convert([STL], raw, units="mm", name="Plate", progress=False)
    bound_dir = tmp_path_factory.mktemp("plate_bound")
    for f in raw.parent.glob("plate.*"):
        shutil.copy(f, bound_dir / f.name)
    bound = bound_dir / "plate.usda"
    bind_sensors(bound, load_sensor_map(SENSORS))
    return raw, bound


def _copy(src: Path, folder: Path) -> Path:
    for f in src.parent.glob("plate.*"):
        shutil.copy(f, folder / f.name)
    return folder / src.name


@pytest.fixture
def plate(tmp_path: Path, plate_templates: tuple[Path, Path]) -> Path:
    """A fresh copy of the converted, unbound plate stage."""
    return _copy(plate_templates[0], tmp_path)


@pytest.fixture
def bound_plate(tmp_path: Path, plate_templates: tuple[Path, Path]) -> Path:
    """A fresh copy of the plate stage bound to ``twin3d/data/plate_sensors.toml``."""
    return _copy(plate_templates[1], tmp_path)
