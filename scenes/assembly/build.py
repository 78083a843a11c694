"""Build the assembly example: convert the 10-part STEP enclosure, then bind its sensor map.

    python scenes/assembly/build.py [--out DIR]

writes ``enclosure.usda`` (interface layer, defaultPrim /Enclosure, with /Enclosure/Sensors)
and ``enclosure.geom.usdc`` into DIR (default: a new temporary folder; the copy in this folder
was made with ``--out scenes/assembly``). The same as::

    twin3d convert assets/assembly/box_sides.STEP -o DIR/enclosure.usda --name Enclosure
    twin3d bind DIR/enclosure.usda --sensors scenes/assembly/sensors.toml
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import twin3d

HERE = Path(__file__).resolve().parent
STEP = HERE.parents[1] / "assets" / "assembly" / "box_sides.STEP"


def build(out_dir: Path) -> Path:
    """Convert and bind; return the bound stage's path."""
    stage = out_dir / "enclosure.usda"
    twin3d.convert([STEP], stage, name="Enclosure", progress=False)  # STEP declares metres
    sensors = twin3d.bind_sensors(stage, twin3d.load_sensor_map(HERE / "sensors.toml"))
    for s in sensors:
        print(f"{s.channel:<18} on {s.target:<28} snapped {s.snap_distance * 1000:5.2f} mm")
    print(f"wrote {stage} ({len(sensors)} sensors on {len({s.target for s in sensors})} parts)")
    return stage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="twin3d-enclosure-"))
    out.mkdir(parents=True, exist_ok=True)
    build(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
