"""The engine tests' twin and plant: the demo plate (real CAD, the demo's sensor map) with a
virtual sensor and the engine's settings, driven by its own forward models plus sensor noise."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from plate_stage import MESH, SENSORS, STL

from twin3d.engine.core import AlarmChange, Engine
from twin3d.engine.plant import Fault, SimulatedPlant
from twin3d.model import Sample

__all__ = ["ENGINE_TABLES", "MESH", "NOISE", "RATE", "T0", "copy_stage", "drive", "make_stage",
           "plant_for", "steady"]

T0 = 1.7e9            # source time of plant time 0
RATE = 10.0           # readings per second per sensor, as the demo publishes

#: appended to the demo's sensor map: a virtual sensor under the heater, the stress sensors' noise
ENGINE_TABLES = """
[[virtual]]
name = "under_heater"
position = [0.1016, 0.115, 0.0]
quantity = "temperature"
limits = { alarm_high = 150 }

[engine]
noise = { strain = 1.5, force = 4.0 }
"""

#: sensor noise of the plant (the models' 0.2 K; strain and force as the demo's)
NOISE = {"temperature": 0.2, "strain": 1.5, "force": 4.0}


def make_stage(folder: Path, extra: str = ENGINE_TABLES, drop: Sequence[str] = ()) -> Path:
    """Convert the plate into ``folder`` and bind the demo map plus ``extra`` tables."""
    from dataclasses import replace

    from twin3d.cad.convert import convert
    from twin3d.sensors import parse_sensor_map
    from twin3d.usd.bind import bind_sensors

    stage = folder / "plate.usda"
    convert([STL], stage, units="mm", name="Plate", progress=False)
    smap = parse_sensor_map(SENSORS.read_text() + extra)
    if drop:
        smap = replace(smap, sensors=[s for s in smap.sensors if s.channel not in drop])
    bind_sensors(stage, smap)
    return stage


def copy_stage(stage: Path, folder: Path) -> Path:
    """A fresh copy of a stage's files (its live layer included) in ``folder``."""
    for f in stage.parent.glob("plate.*"):
        shutil.copy(f, folder / f.name)
    return folder / stage.name


def steady(t: float) -> dict[str, float]:
    """The plant's inputs: a heater and a frame that wander a little, loads that cycle."""
    return {"source:heater": 20.0 + 4.0 * math.sin(t / 40.0),
            "fixed:back_bolts": 25.0 + 0.5 * math.sin(t / 60.0),
            "fixed:back_bolts_right": 25.0, "ambient": 22.0 + 0.5 * math.sin(t / 7.0),
            "bolt_pull": 400.0 + 150.0 * math.sin(2 * math.pi * t / 6.0),
            "press": 0.2 + 0.05 * math.sin(2 * math.pi * t / 9.0 + 1.0)}


def plant_for(engine: Engine, inputs: Callable[[float], Mapping[str, float]] = steady, *,
              faults: Sequence[Fault] = (), seed: int = 0, models: Sequence[Any] | None = None) -> SimulatedPlant:
    """The plate's plant: the engine's own models (or ``models``) with the demo's noise."""
    found = list(models) if models is not None else list(engine.models[MESH].values())
    sensors = engine.twin.sensors
    noise = {c: NOISE[sensors[c].quantity] if c in sensors else NOISE["temperature"]
             for m in found for c in m.channels}
    return SimulatedPlant(found, inputs, noise, faults=faults, seed=seed, t0=T0)


def drive(engine: Engine, plant: SimulatedPlant, start: float, stop: float,
          keep: Callable[[Sample], bool] = lambda s: False,
          drop: Iterable[str] = ()) -> tuple[list[tuple[float, AlarmChange]], list[Sample]]:
    """Feed the engine the plant's readings from ``start`` to ``stop`` s of plant time.

    Returns:
        (plant time, alarm change) of every change, and the derived samples ``keep`` keeps.
    """
    dropped = set(drop)
    alarms: list[tuple[float, AlarmChange]] = []
    kept: list[Sample] = []
    for k in range(round(start * RATE), round(stop * RATE)):
        t = k / RATE
        step = engine.feed([s for s in plant.samples(t) if s.channel not in dropped])
        alarms += [(t, a) for a in step.alarms]
        kept += [s for s in step.samples if keep(s)]
    return alarms, kept
