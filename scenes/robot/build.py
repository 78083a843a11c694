"""Build the robot example twin: convert the SO-101's URDF, then bind its servo sensors.

    python scenes/robot/build.py [--out DIR]

writes ``so101.usda`` (interface layer, defaultPrim /so101_new_calib: one Xform per link,
UsdPhysics joints, each joint bound to the channel ``so101_new_calib/<joint>``, the servo
temperature sensors under /so101_new_calib/Sensors) and ``so101.geom.usdc`` into DIR
(default: a new temporary folder). The inputs are the robot demo's, shipped in the package
(``twin3d/data/so101/``, made by ``make_so101_data.py`` here). The same as::

    twin3d convert twin3d/data/so101/so101.urdf -o DIR/so101.usda
    twin3d bind DIR/so101.usda --sensors twin3d/data/so101_sensors.toml
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import twin3d
from twin3d.demos.robot import SENSOR_MAP, URDF
from twin3d.usd.bindings import read_property_bindings


def build(out_dir: Path) -> Path:
    """Convert and bind; return the bound stage's path."""
    stage = out_dir / "so101.usda"
    twin3d.convert([URDF], stage, progress=False)
    sensors = twin3d.bind_sensors(stage, twin3d.load_sensor_map(SENSOR_MAP))
    twin = twin3d.Twin.open(stage)
    for b in read_property_bindings(twin.stage):
        print(f"{b.channel:<48} {b.kind} {b.prim.rsplit('/', 1)[-1]}, limits "
              f"{b.lower:.1f}..{b.upper:.1f} deg")
    for s in sensors:
        link = next(p for p in reversed(s.target.split("/")) if p.endswith("_link"))
        print(f"{s.channel:<48} {s.quantity} on a servo in {link}")
    print(f"wrote {stage} ({len(sensors)} sensors)")
    return stage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="twin3d-robot-"))
    out.mkdir(parents=True, exist_ok=True)
    build(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
