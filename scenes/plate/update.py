"""Drive the example twin from Python: live values, a field overlay and a recording.

    python scenes/plate/update.py [--stage STAGE] [--out DIR] [--frames 40]

writes ``plate.live.usdc`` + ``plate.twin.usda`` (open the latter in usdview or Omniverse to
see the live state) and ``run1.usdc`` (a recording: press play on the timeline) beside the
stage: by default a copy of this folder's ``plate.usda`` in a new temporary folder (the script
prints where), so the repository stays as it is; ``--stage`` a stage of your own (e.g. from
``scenes/plate/build.py --out DIR``), written beside it; ``--out DIR`` a copy in DIR.

The readings come from a toy heat-up (a hot spot over the heater that grows with time), so
the script runs anywhere; a real script gets them from the bridge
(``twin3d.bridge.SyncClient``) and the field from ``twin3d.fields``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

import twin3d

HERE = Path(__file__).resolve().parent
HEATER = np.array([0.1016, 0.15, 0.0])  # under the middle of the plate, metres


def plate_state(t: float, points: np.ndarray, sensors: Mapping[str, twin3d.Sensor]
                ) -> tuple[np.ndarray, dict[str, float]]:
    """Toy physics at time ``t`` (s): per-point temperature and every sensor's reading."""
    heat = 1.0 - np.exp(-t / 8.0)  # heats up over ~8 s

    def temperature_at(p: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(p[..., :2] - HEATER[:2], axis=-1)
        return np.asarray(22.0 + 85.0 * heat * np.exp(-((r / 0.07) ** 2)))

    temperature = temperature_at(points)
    readings: dict[str, float] = {}
    for channel, s in sensors.items():
        if s.quantity == "temperature" and s.position is not None:
            readings[channel] = float(temperature_at(np.asarray(s.position)))
        elif s.quantity == "strain":
            readings[channel] = float(-350.0 * heat * (1 if s.position and s.position[2] > 0 else -1))
        elif s.quantity == "force":
            readings[channel] = 1200.0 + 3200.0 * heat
    return temperature, readings


def workspace(stage: Path, out: Path | None, prefix: str) -> Path:
    """The stage to drive: ``stage`` where it is, or its copy (with its geometry) in ``out``.

    The example stage committed in this folder is copied to a new temporary folder unless
    ``out`` says otherwise, so running the example leaves the repository as it was.
    """
    if out is None and stage.resolve().parent != HERE:
        return stage
    folder = out or Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    geometry = stage.with_name(f"{stage.name.split('.')[0]}.geom.usdc")
    for f in (stage, geometry):
        if f.resolve().parent != folder.resolve():
            shutil.copy(f, folder / f.name)
    return folder / stage.name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=Path, default=HERE / "plate.usda")
    parser.add_argument("--out", type=Path, help="work on a copy of the stage in this folder")
    parser.add_argument("--frames", type=int, default=40, help="recorded frames (0.5 s apart)")
    args = parser.parse_args(argv)

    stage = workspace(args.stage, args.out, "twin3d-plate-")
    print(f"writing beside {stage}")
    twin = twin3d.Twin.open(stage)
    print(twin)
    print(twin.sensors["plate/tc5"])  # Sensor(channel, quantity, unit, target, position, ...)
    mesh = twin.meshes[0]             # world space, stage units (metres here)

    # live state: sensor values + the temperature field, then save for viewers to reload
    temperature, readings = plate_state(30.0, mesh.points, twin.sensors)
    twin.update(readings)
    twin.set_field("Plate", "temperature", temperature, vmin=20.0, vmax=110.0)
    twin.save()
    alarms = {c: round(v, 1) for c, v in twin.values.items()
              if twin.sensors[c].limits.state(v) != "ok"}
    print(f"live: {len(readings)} values -> {twin.live_path.name}; beyond limits: {alarms}")

    # a recording: time samples in .usdc that play back on usdview's timeline
    out = stage.with_name("run1.usdc")
    with twin.recording(out, fps=2.0) as rec:
        for i in range(args.frames):
            t = 0.5 * i
            temperature, readings = plate_state(t, mesh.points, twin.sensors)
            rec.write(t, values=readings, fields={"Plate": {"temperature": temperature}})
    print(f"recorded {args.frames} frames -> {out.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
