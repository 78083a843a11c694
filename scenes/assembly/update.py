"""Drive the assembly example from Python: per-part kriged temperature fields, live and recorded.

    python scenes/assembly/update.py [--stage STAGE] [--out DIR] [--frames 30]

writes ``enclosure.live.usdc`` + ``enclosure.twin.usda`` (open the latter in usdview or
Omniverse) and ``warmup.usdc`` (a recording: press play) beside the stage: by default a copy
of this folder's ``enclosure.usda`` in a new temporary folder (printed), so the repository
stays as it is; ``--stage`` a stage of your own, written beside it; ``--out DIR`` a copy in
DIR. The readings come from a toy warm-up
(a power module on the base plate); a real script gets them from the bridge
(``twin3d.bridge.SyncClient(url).subscribe(["enclosure/*"])``).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

import twin3d
from twin3d.fields import build_field_models

HERE = Path(__file__).resolve().parent
MODULE = np.array([0.030, 0.070, 0.1156])  # the power module on the base plate, metres


def readings(t: float, sensors: Mapping[str, twin3d.Sensor]) -> dict[str, float]:
    """Toy physics at time ``t`` (s): warmer near the module, warming up over ~60 s."""
    warm = 1.0 - np.exp(-t / 60.0)
    out = {}
    for channel, s in sensors.items():
        r = float(np.linalg.norm(np.asarray(s.position) - MODULE))
        out[channel] = round(24.0 + 48.0 * warm * np.exp(-r / 0.08), 2)
    return out


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
    parser.add_argument("--stage", type=Path, default=HERE / "enclosure.usda")
    parser.add_argument("--out", type=Path, help="work on a copy of the stage in this folder")
    parser.add_argument("--frames", type=int, default=30, help="recorded frames (5 s apart)")
    args = parser.parse_args(argv)

    stage = workspace(args.stage, args.out, "twin3d-enclosure-")
    print(f"writing beside {stage}")
    twin = twin3d.Twin.open(stage)
    models = {path: qs["temperature"] for path, qs in build_field_models(twin).items()}
    print(f"{twin}: {len(models)} parts with a kriged temperature field")

    with twin.recording(stage.with_name("warmup.usdc"), fps=1.0,
                        ranges={"temperature": (20.0, 70.0)}) as rec:
        for i in range(args.frames):
            t = 5.0 * i
            values = readings(t, twin.sensors)
            fields = {path: {"temperature": m.update(values).copy()} for path, m in models.items()}
            rec.write(t, values=values, fields=fields)
    print(f"recorded {args.frames} frames -> warmup.usdc")

    twin.update(values)  # the last state goes live, with each part's field and sigma
    for path, model in models.items():
        twin.set_field(path, "temperature", model.update(values), vmin=20.0, vmax=70.0,
                       sigma=model.sigma)
    twin.save()
    hot = max(values, key=values.__getitem__)
    print(f"live: hottest {hot} {values[hot]} degC ({twin.sensors[hot].limits.state(values[hot])})"
          f" -> {twin.live_path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
