"""What-if: the forward model with changed inputs, as a USD ``scenario`` variant reopened with pxr;
and the engine's command line, bad input included (one line each, exit 1 or 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_plate import MESH, copy_stage, make_stage, steady
from plate_stage import SURFACE
from pxr import Usd

from twin3d.cli import main
from twin3d.colormap import linear_colorize
from twin3d.engine.core import Engine
from twin3d.model import Sample


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_stage(tmp_path_factory.mktemp("whatif_plate"))


def _noise_free(engine: Engine, inputs: dict[str, float]) -> dict[str, float]:
    readings: dict[str, float] = {}
    for model in engine.models[MESH].values():
        readings |= model.readings({n: inputs[n] for n in model.inputs})
    return readings


def test_doubling_the_heater_gives_the_forward_models_readings_as_a_variant(tmp_path: Path,
                                                                              template: Path) -> None:
    stage = copy_stage(template, tmp_path)
    engine = Engine(stage)
    inputs = steady(0.0)
    now = _noise_free(engine, inputs)
    engine.feed([Sample(c, v, 1.7e9) for c, v in now.items()])
    heat = engine.models[MESH]["temperature"]
    live_field = heat.update({c: now[c] for c in heat.channels}).copy()
    engine.twin.set_field(MESH, "temperature", live_field, vmin=20.0, vmax=120.0)

    result = engine.what_if({"heater": "x2"})

    doubled = inputs | {"source:heater": 2 * inputs["source:heater"]}
    expected = heat.readings({n: doubled[n] for n in heat.inputs})
    span = max(expected.values()) - min(expected.values())
    assert result.name == "heater_x2"
    assert result.inputs["heater"] == pytest.approx(2 * inputs["source:heater"], rel=1e-9)
    for channel, value in expected.items():
        assert abs(result.readings[channel] - value) <= 1e-6 * span, channel
    assert result.readings["plate/tc5"] - now["plate/tc5"] > 1.0        # the heater matters there
    field = result.fields[MESH]["temperature"]
    # the display surface has a vertex at each sensor (its triangle's point, not a CAD vertex)
    gaps = np.linalg.norm(engine.twin.meshes[0].points - engine.twin.sensors["plate/tc5"].position, axis=1)
    assert gaps.min() < 1e-6
    assert field[gaps.argmin()] == pytest.approx(expected["plate/tc5"], abs=1e-3)   # W @ readings = physics
    np.testing.assert_allclose(result.differences[MESH]["temperature"], field - live_field, atol=1e-4)

    # reopened from disk with pxr: the scenario variant set switches reality and the what-if
    stage_usd = Usd.Stage.Open(str(engine.twin.root_path))
    root = stage_usd.GetDefaultPrim()
    vset = root.GetVariantSets().GetVariantSet("scenario")
    assert sorted(vset.GetVariantNames()) == ["heater_x2", "live"]
    assert vset.GetVariantSelection() == "live"
    mesh = stage_usd.GetPrimAtPath(SURFACE)      # the display surface shows the fields

    def colours() -> np.ndarray:
        pv = mesh.GetAttribute("primvars:displayColor")
        idx = np.asarray(mesh.GetAttribute("primvars:displayColor:indices").Get())
        return np.asarray(pv.Get())[idx]

    np.testing.assert_allclose(colours(), linear_colorize(live_field, 20.0, 120.0), atol=1e-6)
    assert not mesh.GetAttribute("primvars:temperature_scenario").HasValue()
    vset.SetVariantSelection("heater_x2")
    np.testing.assert_allclose(colours(), linear_colorize(field, 20.0, 120.0), atol=1e-6)
    scenario = mesh.GetAttribute("primvars:temperature_scenario")
    idx = np.asarray(mesh.GetAttribute("primvars:temperature_scenario:indices").Get())
    np.testing.assert_allclose(np.asarray(scenario.Get())[idx], field, rtol=1e-6)
    tc5 = stage_usd.GetPrimAtPath("/Plate/Sensors/plate_tc5")
    assert tc5.GetAttribute("twin:scenarioValue").Get() == pytest.approx(expected["plate/tc5"], abs=1e-9)
    # a field written later (the live layer goes on) does not hide the scenario
    engine.twin.set_field(MESH, "temperature", live_field + 1.0)
    engine.twin.save()
    again = Usd.Stage.Open(str(engine.twin.root_path))
    again.GetDefaultPrim().GetVariantSets().GetVariantSet("scenario").SetVariantSelection("heater_x2")
    mesh = again.GetPrimAtPath(SURFACE)
    np.testing.assert_allclose(colours(), linear_colorize(field, 20.0, 120.0), atol=1e-6)


def test_whatif_command_from_the_live_layer(tmp_path: Path, template: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    stage = copy_stage(template, tmp_path)
    engine = Engine(stage)
    engine.twin.update(_noise_free(engine, steady(0.0)))
    engine.twin.save()
    assert main(["whatif", str(stage), "--set", "heater=x1.5", "--set", "ambient=30",
                 "--name", "hotter"]) == 0
    out = capsys.readouterr().out
    assert "wrote scenario 'hotter'" in out and "plate/tc5" in out
    composed = Usd.Stage.Open(str(engine.twin.root_path))
    names = composed.GetDefaultPrim().GetVariantSets().GetVariantSet("scenario").GetVariantNames()
    assert sorted(names) == ["hotter", "live"]


def test_bad_input_is_one_line_each(tmp_path: Path, template: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    stage = copy_stage(template, tmp_path)
    engine = Engine(stage)
    engine.twin.update(_noise_free(engine, steady(0.0)))
    engine.twin.save()
    cases = [
        (["whatif", str(stage), "--set", "heatr=x2"], 1, "unknown input 'heatr' (inputs: heater,"),
        (["whatif", str(stage), "--set", "heater=lots"], 1, "heater=lots: give a value"),
        (["whatif", str(stage), "--set", "heater"], 2, "write NAME=VALUE"),
        (["whatif", str(stage), "--set", "heater=x2", "--name", "live"], 1, "not 'live'"),
        (["engine", str(stage), "--bridge", "ws://127.0.0.1:9", "--horizon", "-5"], 2,
         "--horizon must be a positive number of seconds, got -5"),
    ]
    for argv, code, message in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    (tmp_path / "off").mkdir()
    off = make_stage(tmp_path / "off", '[[virtual]]\nname = "floating"\nposition = [0.1, 0.15, 0.05]\n'
                     'quantity = "temperature"\n')
    assert main(["engine", str(off), "--bridge", "ws://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "virtual sensor 'floating'" in err and "from the part" in err and err.count("\n") == 1
    bad_map = tmp_path / "map.toml"
    from plate_stage import SENSORS

    bad_map.write_text(SENSORS.read_text() + "\n[engine]\nhorizon = -5\n")
    assert main(["bind", str(stage), "--sensors", str(bad_map)]) == 1
    err = capsys.readouterr().err
    assert "[engine] horizon must be a positive number of seconds, got -5" in err and err.count("\n") == 1


def test_the_live_layer_shows_a_suspect_sensor(tmp_path: Path, template: Path) -> None:
    from engine_plate import drive, plant_for

    from twin3d.engine.plant import Fault

    engine = Engine(copy_stage(template, tmp_path), live_every=1.0)
    drive(engine, plant_for(engine, faults=[Fault("plate/tc4", "stuck", start=10.0)], seed=30), 0.0, 20.0)
    assert engine.suspects == {"plate/tc4": "stuck"}
    composed = Usd.Stage.Open(str(engine.twin.root_path))      # as saved on disk
    state = {c: composed.GetPrimAtPath(f"/Plate/Sensors/{c.replace('/', '_')}").GetAttribute("twin:state").Get()
             for c in ("plate/tc4", "plate/tc1")}
    assert state == {"plate/tc4": "suspect", "plate/tc1": "ok"}
    assert composed.GetPrimAtPath(SURFACE).GetAttribute("primvars:temperature").HasValue()
