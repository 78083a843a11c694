"""Stress model: P2 cantilever against beam theory, load recovery from strain gauges."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from twin3d.errors import FieldError
from twin3d.fields import StressModel, build_models, von_mises
from twin3d.fields.mesh import probe_matrix, tetrahedralize
from twin3d.fields.stress import solve_load_cases, strain_from_stress
from twin3d.model import Sensor

E, NU, P, L, H = 200e9, 0.3, 1000.0, 1.0, 0.1
I = H**4 / 12.0  # noqa: E741 (the second moment of area, as in the beam formulas)
REGIONS = {"root": {"normal": [-1, 0, 0]}, "tip": {"normal": [1, 0, 0]}}


def _beam(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box((L, H, H))
    box.apply_translation([L / 2, 0.0, 0.0])
    v, f = box.vertices, box.faces
    for _ in range(subdivisions):  # vertices every L/4 along the beam (mid-span included)
        v, f = trimesh.remesh.subdivide(v, f)
    return v, f


def _config(**load: object) -> dict:
    case = {"name": "tip", "region": "tip", "force": [0.0, 0.0, -P]} | load
    return {"regions": REGIONS,
            "stress": {"E": E, "nu": NU, "fixed": ["root"], "load": [case], "tets": 2000}}


@pytest.mark.slow
def test_cantilever_p2_matches_beam_theory() -> None:
    v, f = _beam()
    mesh = tetrahedralize(v, f, 1.0, target_tets=2000)
    names, disp, sig = solve_load_cases(mesh, _config()["stress"], REGIONS, 1.0)
    assert names == ["tip"]
    tip = np.isclose(mesh.nodes[:, 0], L)
    deflection = -disp[tip, 2, 0].mean()
    expected = P * L**3 / (3 * E * I)
    mid_top = np.isclose(mesh.nodes[:, 0], L / 2) & np.isclose(mesh.nodes[:, 2], H / 2)
    stress = sig[mid_top, 0, 0].mean()
    mc_i = P * (L / 2) * (H / 2) / I  # tension on top
    print(f"cantilever P2 ({len(mesh.tets)} tets): tip {deflection:.4e} m vs PL³/3EI "
          f"{expected:.4e} ({deflection / expected - 1:+.2%}); mid-span σxx {stress / 1e6:.3f} "
          f"MPa vs Mc/I {mc_i / 1e6:.3f} ({stress / mc_i - 1:+.2%})")
    assert deflection == pytest.approx(expected, rel=0.01)
    assert stress == pytest.approx(mc_i, rel=0.02)
    assert mid_top.sum() >= 3 and np.all(np.abs(sig[mid_top, 0, 0] / mc_i - 1) < 0.02)


def test_load_cell_scales_the_unit_case_and_von_mises_is_per_vertex() -> None:
    v, f = _beam()
    cell = Sensor("beam/load", "force", "kN", "/Beam", position=(L, 0.0, 0.0))
    cfg = _config(force=[0.0, 0.0, -1.0], channel="beam/load")
    model = build_models(v, f, 1.0, [cell], cfg, cache=False)["von_mises"]
    assert isinstance(model, StressModel) and model.channels == ["beam/load"]
    assert model.W.shape == (6 * len(v), 1) and model.W.dtype == np.float32
    vm = model.update({"beam/load": 1.0})  # 1 kN
    mid_top = np.flatnonzero(np.isclose(v[:, 0], L / 2) & np.isclose(v[:, 2], H / 2))
    mc_i_mpa = P * (L / 2) * (H / 2) / I / 1e6
    np.testing.assert_allclose(model.tensor[0, mid_top], mc_i_mpa, rtol=0.02)
    np.testing.assert_allclose(vm, von_mises(model.tensor), rtol=1e-6)
    doubled = model.update({"beam/load": 2.0}).copy()
    np.testing.assert_allclose(doubled, 2 * vm_at(model, 1.0), rtol=1e-5, atol=1e-6)
    assert model.amplitudes == pytest.approx([2000.0])


def vm_at(model: StressModel, kn: float) -> np.ndarray:
    return von_mises(model.W.reshape(6, -1, 1)[:, :, 0] * kn)


@pytest.mark.slow
def test_strain_gauges_recover_two_tip_loads() -> None:
    v, f = _beam()
    cases = {"stress": {"E": E, "nu": NU, "fixed": ["root"], "load": [
        {"name": "down", "region": "tip", "force": [0.0, 0.0, -1000.0]},
        {"name": "side", "region": "tip", "force": [0.0, 1000.0, 0.0]}]}}
    # truth: a finer, different mesh; 1.0 kN down and 0.3 kN sideways
    fine = tetrahedralize(v, f, 1.0, target_tets=3000)
    _, _, sig = solve_load_cases(fine, cases["stress"], REGIONS, 1.0)
    gauge_pos = np.array([[x, y, z] for x in (0.25, 0.5) for y, z in
                          ((0.0, H / 2), (0.0, -H / 2), (H / 2, 0.0))])
    true_sig = probe_matrix(fine.nodes, fine.tets, gauge_pos) @ (sig @ [1.0, 0.3])
    eps_xx = strain_from_stress(true_sig.T, E, NU)[0, 0]  # gauges along the beam axis
    rng = np.random.default_rng(0)
    readings = eps_xx / 1e-6 + rng.normal(0.0, 0.1, len(eps_xx))  # microstrain, 0.1 µε noise
    gauges = [Sensor(f"beam/sg{i}", "strain", "ustrain", "/Beam", position=tuple(p))
              for i, p in enumerate(gauge_pos)]
    model = StressModel.build(v, f, 1.0, gauges, {"regions": REGIONS, **cases} | {
        "stress": cases["stress"] | {"tets": 1200}})
    model.update(readings)
    print(f"recovered amplitudes {model.amplitudes} (true [1.0, 0.3]) from "
          f"{len(gauges)} gauges reading {np.round(readings, 1)} µε")
    assert model.amplitudes[0] == pytest.approx(1.0, rel=0.01)
    assert model.amplitudes[1] == pytest.approx(0.3, rel=0.02)


def test_too_few_gauges_and_bad_channels_are_refused() -> None:
    v, f = _beam()
    with pytest.raises(FieldError, match="need at least as many strain gauges"):
        StressModel.build(v, f, 1.0, [], _config())
    with pytest.raises(FieldError, match="not a force sensor"):
        StressModel.build(v, f, 1.0, [], _config(channel="beam/none"))
    cell = Sensor("beam/load", "force", "N", "/Beam", position=(L, 0.0, 0.0))
    with pytest.raises(FieldError, match="needs fixed"):
        StressModel.build(v, f, 1.0, [cell], {"stress": {"E": E, "load": [
            {"region": "tip", "force": [0, 0, 1], "channel": "beam/load"}]}})
    with pytest.raises(FieldError, match="unit 'lb' is not one of"):
        StressModel.build(v, f, 1.0, [Sensor("beam/load", "force", "lb", "/Beam", vertex=0)],
                          _config(channel="beam/load"))


@pytest.mark.slow
def test_plate_scene_models_build_from_the_twin_and_respond(tmp_path) -> None:
    import shutil
    from pathlib import Path

    from twin3d import Twin
    from twin3d.fields import build_field_models
    from twin3d.sensors import load_sensor_map

    scene = Path(__file__).resolve().parents[1] / "scenes/plate"
    for name in ("plate.usda", "plate.geom.usdc"):
        shutil.copy(scene / name, tmp_path)
    twin = Twin.open(tmp_path / "plate.usda", reset=True)
    smap = load_sensor_map(scene.parents[1] / "twin3d" / "data" / "plate_sensors.toml")
    (path, models), = build_field_models(twin, smap.model, cache_dir=tmp_path / "cache").items()
    mesh = next(m for m in twin.meshes if m.path == path)  # its display surface
    points = mesh.points
    heat, stress = models["temperature"], models["von_mises"]
    assert heat.inputs == ["source:heater", "fixed:back_bolts", "fixed:back_bolts_right",
                           "ambient"]
    assert stress.channels == ["plate/load", "plate/sg1", "plate/sg2", "plate/sg3"]
    temps = {c: 22.0 for c in heat.channels} | {"plate/tc5": 40.0, "plate/tc10": 45.0}
    field = heat.update(temps)
    assert heat.amplitudes[0] > 0  # a hot spot over the heater means positive heater power
    near = np.argmin(np.linalg.norm(points - [0.1016, 0.115, 0.0], axis=1))
    assert field[near] > np.median(field) + 5.0
    vm = stress.update({"plate/load": 1000.0, "plate/sg1": 0.0, "plate/sg2": 0.0,
                        "plate/sg3": 0.0}).copy()
    bolt = np.linalg.norm(points[:, :2] - [0.0399, 0.0478], axis=1) < 0.012
    cad = np.arange(len(mesh.source.points))  # the part's own vertices come first, in order
    assert vm.max() > 0 and vm[bolt].max() > np.median(vm[cad])
    np.testing.assert_allclose(stress.update({"plate/load": 2000.0}), 2 * vm, rtol=1e-4,
                               atol=1e-5)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_forward_readings_of_gauges_round_trip_to_the_amplitudes() -> None:
    v, f = _beam()
    cases = {"stress": {"E": E, "nu": NU, "fixed": ["root"], "tets": 1200, "load": [
        {"name": "down", "region": "tip", "force": [0.0, 0.0, -1000.0]},
        {"name": "side", "region": "tip", "force": [0.0, 1000.0, 0.0]}]}}
    gauge_pos = [(x, 0.0, z) for x in (0.25, 0.5) for z in (H / 2, -H / 2)]
    gauges = [Sensor(f"beam/sg{i}", "strain", "ustrain", "/Beam", position=p)
              for i, p in enumerate(gauge_pos)] + [
        Sensor("beam/sg_side", "strain", "ustrain", "/Beam", position=(0.25, H / 2, 0.0))]
    model = StressModel.build(v, f, 1.0, gauges, {"regions": REGIONS, **cases})
    readings = model.readings({"down": 0.8, "side": -0.2})
    assert abs(readings["beam/sg0"]) > 1.0  # microstrain of a real bending beam, not zeros
    model.update(readings)
    np.testing.assert_allclose(model.amplitudes, [0.8, -0.2], atol=1e-9)


def test_stress_model_counts_vertices_not_rows_and_saves_itself() -> None:
    v, f = _beam()
    cell = Sensor("beam/load", "force", "kN", "/Beam", position=(L, 0.0, 0.0))
    model = StressModel.build(v, f, 1.0, [cell], _config(force=[0.0, 0.0, -1.0],
                                                          channel="beam/load"))
    assert model.W.shape[0] == 6 * len(v) and model.n_vertices == len(v)  # a view sizes by this
    assert [(r.name, r.role, r.patches) for r in model.regions] == [
        ("root", "fixed", 1), ("tip", "load tip", 1)]
    assert model.regions[0].area == pytest.approx(H * H) == model.regions[1].area
    back = StressModel.from_arrays(model.to_arrays())
    assert back.n_vertices == len(v) and back.regions == model.regions
    assert back.cases == model.cases and back.channels == model.channels
    np.testing.assert_array_equal(back.update({"beam/load": 1.5}),
                                  model.update({"beam/load": 1.5}))
    np.testing.assert_array_equal(back.amplitudes, model.amplitudes)
    assert back.readings({"tip": 2.0}) == model.readings({"tip": 2.0})
    assert model.readings({"tip": 2.0})["beam/load"] == pytest.approx(0.002)  # 2 N in kN
    with pytest.raises(FieldError, match="StressModel has no channel 'beam/lod'"):
        model.update({"beam/lod": 1.0})


def test_a_load_given_as_one_table_is_a_one_line_error() -> None:
    v, f = _beam()
    cfg = _config()
    cfg["stress"]["load"] = cfg["stress"]["load"][0]  # [model.stress.load] instead of [[...]]
    with pytest.raises(FieldError, match=r"^\[model.stress\]: load must be an array of tables: "
                                         r"write \[\[model.stress.load\]\] once per entry$"):
        build_models(v, f, 1.0, [], cfg, cache=False)


def test_tip_displacement_matches_timoshenko_beam_theory() -> None:
    """Cantilever 0.5 x 0.03 x 0.06 m steel, 500 N down on the tip face.

    Mesh: the box's surface subdivided three times (386 vertices), P2 tets, ``tets = 1000``.
    Timoshenko: tip deflection = P L³ / (3 E I) + P L / (κ G A), with I = b h³ / 12,
    A = b h, G = E / (2 (1 + ν)) and Cowper's shear coefficient κ = 10 (1 + ν) / (12 + 11 ν)
    for a rectangle; the shear term is 1.1% of the bending term here.
    """
    length, b, h, e, nu, p = 0.5, 0.03, 0.06, 200e9, 0.3, 500.0
    box = trimesh.creation.box((length, b, h))
    box.apply_translation([length / 2, 0.0, 0.0])
    v, f = box.vertices, box.faces
    for _ in range(3):
        v, f = trimesh.remesh.subdivide(v, f)
    mm = 1000.0  # a stage in millimetres: displacement comes back in stage units
    cfg = {"regions": {"root": {"normal": [-1, 0, 0]}, "tip": {"normal": [1, 0, 0]}},
           "stress": {"E": e, "nu": nu, "fixed": ["root"], "tets": 1000, "load": [
               {"name": "tip", "region": "tip", "force": [0.0, 0.0, -1.0],
                "channel": "beam/load"}]}}
    model = StressModel.build(v * mm, f, 1 / mm, [
        Sensor("beam/load", "force", "kN", "/Beam", position=(length * mm, 0.0, 0.0))], cfg)
    d = model.displacement({"beam/load": p / 1000.0})  # kN
    assert d.shape == (len(v), 3) and d.dtype == np.float32
    i_area, area, g = b * h**3 / 12, b * h, e / (2 * (1 + nu))
    kappa = 10 * (1 + nu) / (12 + 11 * nu)
    expected = p * length**3 / (3 * e * i_area) + p * length / (kappa * g * area)
    tip = np.isclose(v[:, 0], length)
    deflection = -float(d[tip, 2].mean()) / mm  # stage units (mm) -> m
    print(f"tip deflection {deflection:.4e} m vs Timoshenko {expected:.4e} m "
          f"({deflection / expected - 1:+.2%})")
    assert deflection == pytest.approx(expected, rel=0.02)
    root = np.isclose(v[:, 0], 0.0)
    assert np.abs(d[root]).max() == 0.0  # clamped
    # linear in the readings, the model's values untouched, a caller's buffer filled in place
    assert np.isnan(model.values).all()
    buf = np.zeros((len(v), 3), dtype=np.float32)
    assert model.displacement([2 * p / 1000.0], out=buf) is buf
    np.testing.assert_allclose(buf, 2 * d, rtol=1e-6, atol=1e-12)
    model.update({"beam/load": p / 1000.0})
    np.testing.assert_array_equal(model.displacement(), d)
    back = StressModel.from_arrays(model.to_arrays())
    np.testing.assert_array_equal(back.displacement({"beam/load": 0.5}), d)
    with pytest.raises(FieldError, match=r"out must be a C-contiguous"):
        model.displacement(out=np.zeros((len(v), 3)))
    bare = StressModel(model.channels, model.W, "MPa", cases=["tip"],
                       amplitude_map=np.ones((1, 1)))
    with pytest.raises(FieldError, match="no displacement map"):
        bare.displacement([1.0])
