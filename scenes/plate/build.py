"""Build the example twin: convert the plate's CAD file, then bind its sensor map.

    python scenes/plate/build.py [--out DIR]

writes ``plate.usda`` (interface layer, defaultPrim /Plate, with the /Plate/Sensors scope)
and ``plate.geom.usdc`` (geometry) into DIR (default: this folder). The same as::

    twin3d convert assets/plate/plate_holes.stl -o scenes/plate/plate.usda --units mm --name Plate
    twin3d bind scenes/plate/plate.usda --sensors scenes/plate/sensors.toml
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import twin3d

HERE = Path(__file__).resolve().parent
STL = HERE.parents[1] / "assets" / "plate" / "plate_holes.stl"


def build(out_dir: Path) -> Path:
    """Convert and bind; return the bound stage's path."""
    stage = out_dir / "plate.usda"
    twin3d.convert([STL], stage, units="mm", name="Plate", progress=False)
    sensors = twin3d.bind_sensors(stage, twin3d.load_sensor_map(HERE / "sensors.toml"))
    mpu = twin3d.Twin.open(stage).meters_per_unit
    for s in sensors:
        print(f"{s.channel:<12} {s.quantity:<12} snapped {s.snap_distance * mpu * 1000:5.2f} mm"
              f"  vertex {s.vertex}")
    print(f"wrote {stage} ({len(sensors)} sensors)")
    return stage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    build(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
