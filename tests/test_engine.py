"""The twin engine in simulated time: the plate's own forward models as the plant (readings from
known inputs + noise 0.2 K), fed faster than real time. Health, faults, forecasts, virtual
sensors; the closed forms are checked against brute force."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from engine_plate import MESH, T0, drive, make_stage, plant_for, steady

from twin3d.engine.config import EngineSettings, parse_engine_tables
from twin3d.engine.core import Engine
from twin3d.engine.forecast import Trend
from twin3d.engine.health import LeaveOneOut
from twin3d.engine.plant import Fault
from twin3d.errors import EngineError
from twin3d.model import Sample

THERMOCOUPLES = [f"plate/tc{i}" for i in range(1, 12)]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_stage(tmp_path_factory.mktemp("engine_plate"))


# --- the closed forms -------------------------------------------------------------------------

def test_leave_one_out_closed_form_equals_refitting_without_each_sensor() -> None:
    rng = np.random.default_rng(7)
    A = rng.normal(size=(9, 3))
    noise = rng.uniform(0.1, 0.5, size=9)
    counts = rng.integers(1, 6, size=9).astype(float)
    y = A @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=9) * noise / np.sqrt(counts)
    active = np.ones(9, dtype=bool)
    active[4] = False                      # a suspect: judged against all the others
    r = LeaveOneOut(A, noise).residuals(y, counts, active)
    var = noise**2 / counts
    for i in range(9):
        others = active.copy()
        others[i] = False                  # refit without sensor i, weighted
        w = 1.0 / var[others]
        Ai = A[others]
        G = Ai.T @ (Ai * w[:, None])
        a = np.linalg.solve(G, Ai.T @ (w * y[others]))
        pred = A[i] @ a
        sd = math.sqrt(var[i] + A[i] @ np.linalg.solve(G, A[i]))
        assert r.predicted[i] == pytest.approx(pred, rel=1e-9, abs=1e-9)
        assert r.z[i] == pytest.approx((y[i] - pred) / sd, rel=1e-9, abs=1e-9)


def test_trend_crossing_of_a_straight_line_and_of_a_bent_one() -> None:
    trend = Trend(60.0)
    for t in range(40):
        trend.add(float(t), 20.0 + 0.5 * t)
    cross = trend.crossing(50.0, rising=True, horizon=600.0, now=40.0)
    assert cross is not None and cross.eta == pytest.approx(20.0, abs=1e-9)   # 40 at t = 40
    assert trend.crossing(10.0, rising=False, horizon=600.0) is None      # heading away
    assert trend.crossing(50.0, rising=True, horizon=5.0) is None         # beyond the horizon
    bent = Trend(60.0)
    for t in range(60):                       # flat for 40 s, then rising 1 per second
        bent.add(float(t), 20.0 + max(t - 40, 0))
    cross = bent.crossing(59.0, rising=True, horizon=600.0)
    assert cross is not None and cross.eta == pytest.approx(20.0, rel=0.05)  # the recent part


# --- health -----------------------------------------------------------------------------------

def test_ten_minutes_of_healthy_data_flag_nothing(stage: Path) -> None:
    engine = Engine(stage)
    alarms, health = drive(engine, plant_for(engine, seed=1), 0.0, 600.0,
                           keep=lambda s: s.channel.startswith("twin/health/plate/tc"))
    assert [a for _, a in alarms if a.kind in ("suspect", "stale")] == []
    assert engine.suspects == {}
    z = np.array([s.value for s in health])
    assert len(z) > 11 * 590 and 0.9 < z.std() < 1.1 and abs(z.mean()) < 0.1   # N(0, 1) when healthy


@pytest.mark.parametrize("channel", ["plate/tc7", "plate/tc5", "plate/tc10"])
def test_a_drifting_thermocouple_is_flagged_within_30_s(stage: Path, channel: str) -> None:
    engine = Engine(stage)
    plant = plant_for(engine, faults=[Fault(channel, "drift", start=60.0, size=0.05)], seed=2)
    alarms, _ = drive(engine, plant, 0.0, 100.0)
    raised = [(t, a) for t, a in alarms if a.kind == "suspect" and a.active]
    assert raised and raised[0][1].channel == channel, raised
    assert raised[0][0] - 60.0 <= 30.0
    assert "drifting above" in raised[0][1].message
    assert {a.channel for _, a in raised} == {channel}        # its neighbours are not blamed


def test_a_stuck_thermocouple_is_flagged_within_60_s_and_a_dead_one_as_stale(stage: Path) -> None:
    engine = Engine(stage)
    plant = plant_for(engine, faults=[Fault("plate/tc4", "stuck", start=60.0),
                                      Fault("plate/tc9", "dead", start=60.0)], seed=3)
    alarms, suspect = drive(engine, plant, 0.0, 130.0,
                            keep=lambda s: s.channel == "twin/suspect/plate/tc9")
    stuck = [t for t, a in alarms if a.channel == "plate/tc4" and a.kind == "suspect" and a.active]
    stale = [t for t, a in alarms if a.channel == "plate/tc9" and a.kind == "stale" and a.active]
    assert stuck and stuck[0] - 60.0 <= 60.0
    assert stale and stale[0] - 60.0 <= engine.settings.stale_after + 2 * engine.settings.period
    assert engine.suspects == {"plate/tc4": "stuck", "plate/tc9": "dead"}
    assert suspect[-1].value == 1.0 and suspect[0].value == 0.0
    assert not [a for _, a in alarms if a.kind in ("suspect", "stale") and a.channel not in
                ("plate/tc4", "plate/tc9")]


def test_a_sensor_that_comes_back_is_cleared(stage: Path) -> None:
    engine = Engine(stage)
    plant = plant_for(engine, faults=[Fault("plate/tc9", "dead", start=30.0)], seed=4)
    drive(engine, plant, 0.0, 60.0)
    assert engine.suspects == {"plate/tc9": "dead"}
    alarms, _ = drive(engine, plant_for(engine, seed=5), 60.0, 70.0)
    assert [(a.channel, a.kind, a.active) for _, a in alarms] == [("plate/tc9", "stale", False)]
    assert engine.suspects == {}


def _heater_sigma(engine: Engine, drop: str | None = None) -> float:
    """The closed-form standard deviation of one heater fit (one reading of each sensor, least
    squares on the model's response; ``drop`` left out)."""
    heat = engine.models[MESH]["temperature"]
    keep = [i for i, c in enumerate(heat.channels) if c != drop]
    A = heat.response[keep]
    return float(heat.noise * math.sqrt(np.linalg.inv(A.T @ A)[0, 0]))


def _heater_errors(inputs: list[Sample], truth: Callable[[float], Mapping[str, float]]) -> np.ndarray:
    return np.array([s.value - truth(s.time - T0)["source:heater"] for s in inputs])


def test_suspect_sensors_leave_the_fields_when_the_bindings_say_so(stage: Path) -> None:
    """tc5 (above the heater) jumps by 8 K: once it is suspect, the virtual sensor under the heater
    follows the others when told to exclude suspects, and the offset when not; the heater is
    fitted without it, unbiased, with the noise the closed form gives without tc5 (8.2 W a fit
    here, against 2.2 W with it: tc5 is what tells the heater from the ambient)."""
    virtual = {}
    for exclude, faults in ((None, []), (False, [Fault("plate/tc5", "offset", start=30.0, size=8.0)]),
                            (True, [Fault("plate/tc5", "offset", start=30.0, size=8.0)])):
        engine = Engine(stage, exclude_suspect=bool(exclude))
        plant = plant_for(engine, faults=faults, seed=6)     # same noise each time
        drive(engine, plant, 0.0, 60.0)
        assert engine.suspects == ({} if exclude is None else {"plate/tc5": "drift"})
        _, inputs = drive(engine, plant, 60.0, 90.0, keep=lambda s: s.channel == "twin/input/heater")
        assert engine.suspects == ({} if exclude is None else {"plate/tc5": "drift"})
        virtual[exclude] = engine.virtual_values["under_heater"]
        errors = _heater_errors(inputs, steady)
        sigma = _heater_sigma(engine, drop=None if exclude is None else "plate/tc5")
        assert len(errors) == 300 and abs(errors.mean()) <= 3 * sigma / math.sqrt(len(errors))
        assert 0.8 < errors.std() / sigma < 1.2
    healthy, kept, excluded = virtual[None], virtual[False], virtual[True]
    assert kept[0] - healthy[0] > 2.0                          # the offset pulled the field up
    assert abs(excluded[0] - healthy[0]) < 2 * excluded[1]     # the others' field, within its sigma


# --- forecasts --------------------------------------------------------------------------------

def test_heater_ramp_eta_is_early_and_within_20_percent(stage: Path) -> None:
    engine = Engine(stage)

    def ramp(t: float) -> dict[str, float]:
        return steady(0.0) | {"source:heater": 20.0 + 0.8 * max(t - 60.0, 0.0), "ambient": 22.0}

    plant = plant_for(engine, ramp, seed=8)
    truth = [plant.truth(k / 10)["plate/tc5"] for k in range(6000)]
    crossing = next(k for k, v in enumerate(truth) if v >= 95.0) / 10   # to 0.1 s
    alarms, etas = drive(engine, plant, 0.0, crossing + 5.0,
                         keep=lambda s: s.channel == "twin/eta/plate/tc5/alarm_high")
    assert etas, "no ETA published"
    first = etas[0].time - T0
    assert crossing - first >= 60.0
    for s in etas:
        remaining = crossing - (s.time - T0)
        assert abs(s.value - remaining) <= 0.2 * remaining, (s.time - T0, s.value, remaining)
    kinds = [(a.kind, a.active) for _, a in alarms if a.channel == "plate/tc5"]
    assert kinds[0] == ("predicted", True) and ("alarm_high", True) in kinds
    predicted = next(t for t, a in alarms if a.channel == "plate/tc5" and a.kind == "predicted")
    assert predicted < crossing - 60.0


# --- virtual sensors --------------------------------------------------------------------------

@pytest.mark.parametrize("withheld", ["plate/tc5", "plate/tc8"])
def test_a_withheld_thermocouple_as_a_virtual_sensor_is_within_2_sigma(tmp_path: Path, withheld: str) -> None:
    from plate_stage import SENSORS

    from twin3d.fields import build_models
    from twin3d.sensors import parse_sensor_map

    pos = parse_sensor_map(SENSORS.read_text())[withheld].position
    extra = (f'[[virtual]]\nname = "withheld"\nposition = [{pos[0]}, {pos[1]}, {pos[2]}]\n'
             'quantity = "temperature"\n')
    engine = Engine(make_stage(tmp_path, extra, drop=[withheld]))
    # the plant has the thermocouple the engine does not: the twin's thermocouples, plus one
    # at the withheld position (where its reading is the forward model's)
    twin, mesh = engine.twin, engine.twin.meshes[0]
    temps = [s for s in twin.sensors.values() if s.quantity == "temperature"]
    tc = replace(temps[0], channel=withheld, position=pos, vertex=None)
    physics = {k: v for k, v in twin.model.items() if k in ("regions", "thermal")}
    heat = build_models(mesh.points, mesh.faces, twin.meters_per_unit, [*temps, tc], physics,
                        solid=(mesh.source.points, mesh.source.faces))["temperature"]  # as the engine's
    plant = plant_for(engine, steady, models=[heat], seed=9)
    inside = total = 0
    for k in range(3000):
        t = k / 10
        engine.feed([s for s in plant.samples(t) if s.channel != withheld])
        value, sigma = engine.virtual_values["withheld"]
        inside += abs(value - plant.truth(t)[withheld]) <= 2 * sigma
        total += 1
    assert inside / total >= 0.9


def test_virtual_sensor_channels_and_their_sigma(stage: Path) -> None:
    engine = Engine(stage)
    _, samples = drive(engine, plant_for(engine), 0.0, 2.0, keep=lambda s: "virtual" in s.channel)
    names = {s.channel for s in samples}
    assert names == {"twin/virtual/under_heater", "twin/virtual/under_heater/sigma"}
    value, sigma = engine.virtual_values["under_heater"]
    assert 0.0 < sigma < 2.0 and 20.0 < value < 60.0


# --- the fitted inputs ------------------------------------------------------------------------

def test_fitted_inputs_and_an_impossible_heater(stage: Path) -> None:
    """Each reading's heater fit is unbiased with the closed form's noise (2.2 W: on this plate
    the heater and the ambient warm the thermocouples alike but for tc5, above the heater)."""
    engine = Engine(stage)
    heat = engine.models[MESH]["temperature"]
    good = steady(0.0)
    alarms, inputs = drive(engine, plant_for(engine, lambda t: good, seed=10), 0.0, 5.0,
                           keep=lambda s: s.channel == "twin/input/heater")
    errors = _heater_errors(inputs, lambda t: good)
    sigma = _heater_sigma(engine)
    assert len(errors) == 50 and abs(errors.mean()) <= 3 * sigma / math.sqrt(len(errors))
    assert 0.7 < errors.std() / sigma < 1.3 and np.abs(errors).max() < 4 * sigma
    assert not [a for _, a in alarms if a.channel.startswith("twin/input/")]
    cooling = good | {"source:heater": -60.0}
    alarms, _ = drive(engine, plant_for(engine, lambda t: cooling, seed=11), 5.0, 8.0)
    flagged = [a for _, a in alarms if a.channel == "twin/input/heater"]
    assert flagged and flagged[0].kind == "warn_low" and "only heats" in flagged[0].message
    assert set(heat.inputs) == {"source:heater", "fixed:back_bolts", "fixed:back_bolts_right", "ambient"}


# --- settings and bad input -------------------------------------------------------------------

def test_engine_tables_are_checked_one_line_each() -> None:
    good = {"virtual": [{"name": "a", "position": [0, 0, 0], "quantity": "temperature"}],
            "engine": {"horizon": 300, "exclude_suspect": True}}
    spec = parse_engine_tables(good)
    assert spec.settings.horizon == 300 and spec.settings.exclude_suspect
    bad = [({"engine": {"horizon": -5}}, "horizon must be a positive number of seconds, got -5"),
           ({"engine": {"horizonn": 5}}, "[engine] has no key 'horizonn'"),
           ({"engine": {"noise": {"strain": 0}}}, "noise: strain = 0 must be a positive number"),
           ({"virtual": [{"name": "a b", "position": [0, 0, 0], "quantity": "temperature"}]}, "name must be"),
           ({"virtual": [{"name": "a", "position": [0, 0], "quantity": "temperature"}]}, "three finite numbers"),
           ({"virtual": [{"name": "a", "position": [0, 0, 0], "quantity": "temperature",
                          "limits": {"warn_high": 5, "alarm_high": 1}}]}, "limits out of order"),
           ({"virtual": [{"name": "a", "position": [0, 0, 0], "quantity": "t", "colour": 1}]}, "unknown key 'colour'")]
    for tables, message in bad:
        with pytest.raises(EngineError) as err:
            parse_engine_tables(tables, source="map.toml")
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(EngineError, match="must be a positive number of seconds"):
        EngineSettings().with_overrides(horizon=-1.0)


def test_a_virtual_sensor_off_the_part_is_one_line(tmp_path: Path) -> None:
    extra = '[[virtual]]\nname = "floating"\nposition = [0.1, 0.15, 0.05]\nquantity = "temperature"\n'
    stage = make_stage(tmp_path, extra)
    with pytest.raises(EngineError) as err:
        Engine(stage)
    message = str(err.value)
    assert "virtual sensor 'floating'" in message and "mm from the part" in message and "\n" not in message
    from twin3d.engine.config import VirtualSensor

    with pytest.raises(EngineError, match="no mesh has a pressure model"):
        Engine(stage, virtual=[VirtualSensor("p", (0.1, 0.15, 0.0127), "pressure")])
