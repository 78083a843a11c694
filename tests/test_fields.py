"""Heat and kriging field models: analytic checks, coverage of sigma, cache, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from twin3d.errors import FieldError
from twin3d.fields import HeatModel, Kriging, build_models
from twin3d.fields.heat import solve_unit_responses
from twin3d.fields.kriging import cotangent_matrices
from twin3d.fields.mesh import probe_matrix, tetrahedralize
from twin3d.model import Sensor


def _bar() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box((1.0, 0.1, 0.1))
    box.apply_translation([0.5, 0.0, 0.0])
    v, f = box.vertices, box.faces
    for _ in range(3):  # vertices every 1/8 along the bar, so the profile is sampled
        v, f = trimesh.remesh.subdivide(v, f)
    return v, f


def _temp(channel: str, position: tuple[float, float, float]) -> Sensor:
    return Sensor(channel, "temperature", "degC", "/Part", position=position)


def test_bar_with_fixed_end_temperatures_is_linear() -> None:
    v, f = _bar()
    cfg = {"regions": {"left": {"normal": [-1, 0, 0]}, "right": {"normal": [1, 0, 0]}},
           "thermal": {"conductivity": 50.0, "fixed": ["left", "right"], "tets": 3000}}
    sensors = [_temp("t0", (0.0, 0.0, 0.0)), _temp("t1", (1.0, 0.0, 0.0)),
               _temp("t2", (0.5, 0.05, 0.0))]
    model = HeatModel.build(v, f, 1.0, sensors, cfg)
    assert model.inputs == ["fixed:left", "fixed:right"]
    field = model.update({"t0": 100.0, "t1": 20.0, "t2": 60.0})
    assert field.dtype == np.float32 and model.W.flags.f_contiguous
    exact = 100.0 - 80.0 * v[:, 0]
    assert np.abs(field - exact).max() < 1e-3 * 80.0  # < 0.1% of the range
    np.testing.assert_allclose(model.amplitudes, [100.0, 20.0], atol=1e-6)


def test_coarse_fem_mesh_probed_onto_a_finer_display_surface() -> None:
    box = trimesh.creation.box((1.0, 0.1, 0.1))
    box.apply_translation([0.5, 0.0, 0.0])
    mesh = tetrahedralize(box.vertices, box.faces, 1.0, target_tets=300)  # FEM: 8 corners
    v, f = _bar()  # display: 4 subdivision levels finer, vertices the FEM mesh does not have
    cfg = {"regions": {"left": {"normal": [-1, 0, 0]}, "right": {"normal": [1, 0, 0]}},
           "thermal": {"fixed": ["left", "right"], "residual_kriging": False}}
    sensors = [_temp("t0", (0.0, 0.0, 0.0)), _temp("t1", (1.0, 0.0, 0.0))]
    model = HeatModel.build(v, f, 1.0, sensors, cfg, mesh=mesh)
    assert model.n_vertices == len(v) > mesh.n_surface
    field = model.update([10.0, 50.0])
    assert np.abs(field - (10.0 + 40.0 * v[:, 0])).max() < 1e-3 * 40.0


def test_hollow_cylinder_log_profile_converges() -> None:
    a, b = 0.05, 0.1
    regions = {"in": {"cylinder": {"center": [0, 0, 0], "radius": a * 1.01, "wall": True}},
               "out": {"cylinder": {"center": [0, 0, 0], "radius": b * 0.97, "outside": True,
                                    "wall": True}}}
    errors = []
    for h in (0.02, 0.01, 0.005):
        ring = trimesh.creation.annulus(r_min=a, r_max=b, height=0.02,
                                        sections=int(np.ceil(2 * np.pi * b / h)))
        mesh = tetrahedralize(ring.vertices, ring.faces, 1.0, max_volume=h**3 / 6)
        names, U = solve_unit_responses(mesh, {"fixed": ["in", "out"]}, regions, 1.0)
        assert names == ["fixed:in", "fixed:out"]
        T = 100.0 * U[:, 0] + 20.0 * U[:, 1]
        r = np.linalg.norm(mesh.nodes[:, :2], axis=1)
        exact = 100.0 - 80.0 * np.log(r / a) / np.log(b / a)
        errors.append(float(np.sqrt(np.mean((T - exact) ** 2))) / 80.0)
    print("hollow cylinder RMS error / range:", [f"{e:.2e}" for e in errors])
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_probe_matrix_interpolates_linear_fields_exactly() -> None:
    box = trimesh.creation.box((1.0, 0.5, 0.2))
    mesh = tetrahedralize(box.vertices, box.faces, 1.0, target_tets=400)
    rng = np.random.default_rng(1)
    query = rng.uniform(-0.5, 0.5, (200, 3)) * [1.0, 0.5, 0.2]
    P = probe_matrix(mesh.nodes, mesh.tets, query)
    lin = mesh.nodes @ [1.0, -2.0, 3.0] + 4.0
    np.testing.assert_allclose(P @ lin, query @ [1.0, -2.0, 3.0] + 4.0, atol=1e-9)


def test_cotangent_laplacian_annihilates_constants_and_mass_is_area() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    G, c = cotangent_matrices(sphere.vertices, sphere.faces)
    np.testing.assert_allclose(G @ np.ones(len(c)), 0.0, atol=1e-9)
    assert c.sum() == pytest.approx(sphere.area)
    x = sphere.vertices[:, 0]  # a linear function is an l=1 eigenfunction: -Δx = 2x on S²
    ratio = (x @ G @ x) / (x @ (c * x))
    assert ratio == pytest.approx(2.0, rel=0.02)


def _smooth_truth(p: np.ndarray) -> np.ndarray:
    return (20.0 + 5.0 * np.exp(-np.sum((p - [0.6, 0.5, 0.6]) ** 2, axis=1) / 0.3)
            + 3.0 * p[:, 2] + 2.0 * np.sin(3.0 * p[:, 0]))


def test_kriging_coverage_of_two_sigma() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    p = sphere.vertices
    truth = _smooth_truth(p)
    rng = np.random.default_rng(0)
    shares, rms = [], []
    for _ in range(3):
        obs = rng.choice(len(p), 40, replace=False)
        noise = 0.05
        values = truth[obs] + rng.normal(0.0, noise, len(obs))
        model = Kriging(p, sphere.faces, 1.0, [f"c{i}" for i in range(40)], obs,
                        "temperature", "degC", noise=noise).fit(values)
        field = model.update(values)
        assert model.sigma is not None
        shares.append(float(np.mean(np.abs(field - truth) <= 2.0 * model.sigma)))
        rms.append(float(np.sqrt(np.mean((field - truth) ** 2))))
    print(f"kriging: share inside ±2σ {np.round(shares, 3)}, RMS {np.round(rms, 3)} K "
          f"(truth range {np.ptp(truth):.1f} K)")
    assert min(shares) >= 0.90
    assert max(rms) < 0.1 * np.ptp(truth)


def _plate() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box((0.2, 0.3, 0.0127))
    box.apply_translation([0.1, 0.15, 0.00635])
    v, f = box.vertices, box.faces
    for _ in range(4):
        v, f = trimesh.remesh.subdivide(v, f)
    return v, f


PLATE_MODEL = {
    "regions": {"heater": {"box": [[0.08, 0.10, 0.0], [0.12, 0.14, 0.0]]}},
    "thermal": {"conductivity": 16.0, "sources": ["heater"], "tets": 3000, "noise": 0.05,
                "convection": {"h": 15.0}},
}


def _plate_sensors(v: np.ndarray, n: int, seed: int) -> list[Sensor]:
    top = np.flatnonzero(np.isclose(v[:, 2], 0.0127))
    pick = np.random.default_rng(seed).choice(top, n, replace=False)
    return [Sensor(f"p/t{i}", "temperature", "degC", "/Plate", vertex=int(j))
            for i, j in enumerate(pick)]


def test_heat_model_recovers_heater_power_and_ambient() -> None:
    v, f = _plate()
    mesh = tetrahedralize(v, f, 1.0, target_tets=3000)
    names, U = solve_unit_responses(mesh, PLATE_MODEL["thermal"], PLATE_MODEL["regions"], 1.0)
    assert names == ["source:heater", "ambient"]
    truth = (U @ [25.0, 21.0])[: len(v)]  # 25 W heater, 21 °C ambient
    sensors = _plate_sensors(v, 8, seed=2)
    model = HeatModel.build(v, f, 1.0, sensors, PLATE_MODEL, mesh=mesh)
    rng = np.random.default_rng(3)
    values = truth[[s.vertex for s in sensors]] + rng.normal(0.0, 0.05, len(sensors))
    field = model.update(values)
    power, ambient = model.amplitudes
    assert power == pytest.approx(25.0, rel=0.05)
    assert ambient == pytest.approx(21.0, abs=0.2)
    err = np.abs(field - truth)
    print(f"heat physics: RMS {np.sqrt(np.mean(err**2)):.3f} K, max {err.max():.3f} K "
          f"over a {np.ptp(truth):.1f} K range")
    assert err.max() < 0.02 * np.ptp(truth)
    assert model.sigma is not None and np.mean(err <= 2 * model.sigma + 1e-6) >= 0.9


def test_residual_kriging_widens_sigma_where_the_model_misfits() -> None:
    v, f = _plate()
    mesh = tetrahedralize(v, f, 1.0, target_tets=3000)
    # truth has a second heat source the model does not know about
    regions = dict(PLATE_MODEL["regions"], hidden={"box": [[0.0, 0.25, 0.0], [0.06, 0.3, 0.013]]})
    thermal = dict(PLATE_MODEL["thermal"], sources=["heater", "hidden"])
    _, U = solve_unit_responses(mesh, thermal, regions, 1.0)
    truth = (U @ [25.0, 6.0, 21.0])[: len(v)]
    sensors = _plate_sensors(v, 30, seed=4)
    rng = np.random.default_rng(5)
    values = truth[[s.vertex for s in sensors]] + rng.normal(0.0, 0.05, len(sensors))
    plain = HeatModel.build(v, f, 1.0, sensors,
                            dict(PLATE_MODEL, thermal=dict(PLATE_MODEL["thermal"],
                                                           residual_kriging=False)), mesh=mesh)
    both = HeatModel.build(v, f, 1.0, sensors, PLATE_MODEL, mesh=mesh)
    shares = {}
    for name, model in (("physics", plain), ("physics+residual", both)):
        field = model.update(values)
        assert model.sigma is not None
        shares[name] = float(np.mean(np.abs(field - truth) <= 2 * model.sigma))
    print(f"misfitting model: share inside ±2σ {shares}")
    assert shares["physics"] < 0.9 <= shares["physics+residual"]


def test_build_models_caches_on_disk(tmp_path: Path) -> None:
    v, f = _plate()
    sensors = _plate_sensors(v, 6, seed=7)
    first = build_models(v, f, 1.0, sensors, PLATE_MODEL, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = build_models(v, f, 1.0, sensors, PLATE_MODEL, cache_dir=tmp_path)
    a, b = first["temperature"], again["temperature"]
    assert isinstance(b, HeatModel) and b is not a
    np.testing.assert_array_equal(a.W, b.W)
    values = np.linspace(30.0, 40.0, 6)
    np.testing.assert_allclose(a.update(values), b.update(values), rtol=1e-6)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-5)
    changed = dict(PLATE_MODEL, thermal=dict(PLATE_MODEL["thermal"], conductivity=32.0))
    other = build_models(v, f, 1.0, sensors, changed, cache_dir=tmp_path)["temperature"]
    assert len(list(tmp_path.glob("*.npz"))) == 2  # a new model hash, a new entry
    assert not np.allclose(other.update(values), a.update(values))


def test_kriging_only_without_a_model_and_partial_updates() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sensors = [Sensor(f"s/t{i}", "temperature", "degC", "/S", vertex=i * 30) for i in range(5)]
    models = build_models(sphere.vertices, sphere.faces, 1.0, sensors, {}, cache=False)
    k = models["temperature"]
    assert isinstance(k, Kriging) and k.channels == [s.channel for s in sensors]
    first = k.update({"s/t0": 30.0}).copy()  # unknown channels take the mean of known ones
    np.testing.assert_allclose(first, 30.0, atol=1e-4)
    field = k.update({"s/t1": 40.0, "other/channel": 1.0})
    assert field[30] == pytest.approx(40.0, abs=0.5)


@pytest.mark.parametrize(("config", "message"), [
    ({"thermal": {"sources": ["nope"], "convection": {"h": 5}}}, "region 'nope' is not defined"),
    ({"regions": {"r": {"box": [[9, 9, 9], [10, 10, 10]]}},
      "thermal": {"sources": ["r"], "convection": {"h": 5}}}, "contains no boundary facet"),
    ({"regions": {"r": {"all": True}}, "thermal": {"sources": ["r"]}},
     "no reference temperature"),
    ({"regions": {"r": {"cube": 1}}, "thermal": {"sources": ["r"]}}, "unknown key"),
])
def test_bad_model_sections_raise_one_line_errors(config: dict, message: str) -> None:
    v, f = _plate()
    with pytest.raises(FieldError, match=message) as info:
        HeatModel.build(v, f, 1.0, _plate_sensors(v, 4, seed=1), config)
    assert "\n" not in str(info.value)


def test_too_few_sensors_and_open_surfaces_are_refused() -> None:
    v, f = _plate()
    with pytest.raises(FieldError, match="only 1 temperature sensors"):
        HeatModel.build(v, f, 1.0, _plate_sensors(v, 1, seed=1), PLATE_MODEL)
    with pytest.raises(FieldError, match="not closed"):
        tetrahedralize(v, f[:-4], 1.0)


def test_forward_readings_match_the_physics_and_round_trip() -> None:
    v, f = _plate()
    mesh = tetrahedralize(v, f, 1.0, target_tets=3000)
    names, U = solve_unit_responses(mesh, PLATE_MODEL["thermal"], PLATE_MODEL["regions"], 1.0)
    sensors = _plate_sensors(v, 8, seed=4)
    model = HeatModel.build(v, f, 1.0, sensors, PLATE_MODEL, mesh=mesh)
    inputs = {"source:heater": 30.0, "ambient": 18.0}
    readings = model.readings(inputs)
    truth = (U @ [30.0, 18.0])[[s.vertex for s in sensors]]  # sensors sit on FEM surface nodes
    np.testing.assert_allclose([readings[s.channel] for s in sensors], truth, rtol=1e-6)
    model.update(readings)
    np.testing.assert_allclose(model.amplitudes, [30.0, 18.0], rtol=1e-6)
    with pytest.raises(FieldError, match="unknown inputs"):
        model.readings({"source:nope": 1.0})
