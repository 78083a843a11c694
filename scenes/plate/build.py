"""Build the example twin: convert the plate's CAD file, then bind its sensor map.

    python scenes/plate/build.py [--out DIR]

writes ``plate.usda`` (interface layer, defaultPrim /Plate, with the /Plate/Sensors scope)
and ``plate.geom.usdc`` (geometry) into DIR (default: a new temporary folder; the copy in
this folder was made with ``--out scenes/plate``). The inputs are the demo's, shipped in the
package (``twin3d/data/``). The same as::

    twin3d convert twin3d/data/plate_holes.stl -o DIR/plate.usda --units mm --name Plate
    twin3d bind DIR/plate.usda --sensors twin3d/data/plate_sensors.toml
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import twin3d
from twin3d.demos.plate import PLATE_CAD, SENSOR_MAP


def build(out_dir: Path) -> Path:
    """Convert and bind; return the bound stage's path."""
    stage = out_dir / "plate.usda"
    twin3d.convert([PLATE_CAD], stage, units="mm", name="Plate", progress=False)
    sensors = twin3d.bind_sensors(stage, twin3d.load_sensor_map(SENSOR_MAP))
    mpu = twin3d.Twin.open(stage).meters_per_unit
    for s in sensors:
        print(f"{s.channel:<12} {s.quantity:<12} snapped {s.snap_distance * mpu * 1000:5.2f} mm"
              f"  triangle {s.triangle}")
    print(f"wrote {stage} ({len(sensors)} sensors)")
    return stage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="twin3d-plate-"))
    out.mkdir(parents=True, exist_ok=True)
    build(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
