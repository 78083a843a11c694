"""The example plate twin the tests use: the real CAD file ``twin3d/data/plate_holes.stl`` (mm)
and the demo's sensor map ``twin3d/data/plate_sensors.toml``. The fixtures ``plate``, ``bound_plate``
and ``plate_templates`` (conversion and binding once per session, a fresh copy per test) are in
``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STL = REPO / "twin3d" / "data" / "plate_holes.stl"
SENSORS = REPO / "twin3d" / "data" / "plate_sensors.toml"
MESH = "/Plate/Geom/plate_holes_stl"
SURFACE = MESH + "_display"  # its display surface (twin3d.usd.surface), which carries the fields
