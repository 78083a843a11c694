"""Drive the example twin from Python: live values, a field overlay and a recording.

    python scenes/plate/update.py [--stage STAGE] [--out DIR] [--frames 40]

writes ``plate.live.usdc`` + ``plate.twin.usda`` (open the latter in usdview or Omniverse to
see the live state) and ``run1.usdc`` (a recording: press play on the timeline) beside the
stage: by default a copy of this folder's ``plate.usda`` in a new temporary folder (the script
prints where), so the repository stays as it is; ``--stage`` a stage of your own (e.g. from
``scenes/plate/build.py --out DIR``), written beside it; ``--out DIR`` a copy in DIR. The
outputs committed in this folder were made with ``--out scenes/plate``.

The readings come from the plate's own physics, so the script runs anywhere: the forward
models of its field models (:func:`twin3d.fields.build_field_models`: steady conduction,
linear elasticity) give what the sensors read for known inputs, plus sensor noise with a
fixed seed (:class:`twin3d.engine.SimulatedPlant`, as the engine's trials do). The patch
heater under the plate ramps up to :data:`HEATER_W` over :data:`RAMP_S` seconds, in air and
a frame at :data:`AMBIENT_C`; each frame is the plate's steady state at that power (the model
is steady conduction: a real plate takes minutes to follow), and the field shown is the heat
model's fit to that frame's readings. A real script gets the readings from the bridge
(``twin3d.bridge.SyncClient``) and the field from the same models.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import twin3d
from twin3d.engine import SimulatedPlant
from twin3d.fields import HeatModel, build_field_models

HERE = Path(__file__).resolve().parent
HEATER_W = 180.0      # the patch heater's full power, W
RAMP_S = 15.0         # seconds from off to full power
AMBIENT_C = 22.0      # the air, and the frame that holds the rear bolts, degC
BOLT_PULL_N = 1200.0  # the front left bolt's pull, read by the load cell
PRESS_KN = 0.5        # the press on the pad
LIVE_T = 30.0         # the live state: the heater on at full power
#: sensor noise (standard deviation) by quantity, in the sensors' units, as the demo's
NOISE = {"temperature": 0.2, "strain": 1.5, "force": 4.0}
TEMP_RANGE = (20.0, 110.0)  # degC of the colour map (the tests' web baseline uses it)


def plate_inputs(t: float) -> dict[str, float]:
    """The plate's physical inputs at time ``t`` (s): heater W, frame and air degC, loads."""
    return {"source:heater": HEATER_W * min(max(t / RAMP_S, 0.0), 1.0),
            "fixed:back_bolts": AMBIENT_C, "fixed:back_bolts_right": AMBIENT_C,
            "ambient": AMBIENT_C, "bolt_pull": BOLT_PULL_N, "press": PRESS_KN}


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
    twin = twin3d.Twin.open(stage, reset=True)
    print(twin)
    print(twin.sensors["plate/tc5"])  # Sensor(channel, quantity, unit, target, position, ...)
    # the plate's field models (built once, then cached on disk): {mesh path: {quantity: model}}
    (mesh, models), = build_field_models(twin).items()
    heat = models["temperature"]
    assert isinstance(heat, HeatModel)  # the stage's [model.thermal] table makes one
    plant = SimulatedPlant(list(models.values()), plate_inputs,
                           {c: NOISE[s.quantity] for c, s in twin.sensors.items()}, seed=0)

    # live state: sensor values + the heat model's field for them, then save for viewers
    readings = plant.readings(LIVE_T)
    twin.update(readings)
    twin.set_field(mesh, "temperature", heat.update(readings), vmin=TEMP_RANGE[0],
                   vmax=TEMP_RANGE[1], sigma=heat.sigma)
    twin.save()
    alarms = {c: round(v, 1) for c, v in twin.values.items()
              if twin.sensors[c].limits.state(v) != "ok"}
    print(f"live: {len(readings)} values -> {twin.live_path.name}; beyond limits: {alarms}")
    fit = heat.fitted_inputs()
    print("the heat model fits " + ", ".join(
        f"{n} {v:.1f} ± {fit.sigma[n]:.1f} {fit.units[n]}" for n, v in fit.values.items())
        + f" (given: heater {plate_inputs(LIVE_T)['source:heater']:g} W, {AMBIENT_C:g} degC)")

    # a recording: time samples in .usdc that play back on usdview's timeline
    out = stage.with_name("run1.usdc")
    with twin.recording(out, fps=2.0) as rec:
        for i in range(args.frames):
            t = 0.5 * i
            readings = plant.readings(t)
            rec.write(t, values=readings,
                      fields={mesh: {"temperature": heat.update(readings).copy()}})
    print(f"recorded {args.frames} frames -> {out.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
