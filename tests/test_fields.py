"""Heat and kriging field models: analytic checks, coverage of sigma, cache, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh

from twin3d.errors import FieldError, SensorMapError
from twin3d.fields import (
    HeatModel,
    ImplausibleInputWarning,
    Kriging,
    RegionWarning,
    build_models,
    check_model,
)
from twin3d.fields.heat import solve_unit_responses
from twin3d.fields.kriging import cotangent_matrices
from twin3d.fields.mesh import probe_matrix, tetrahedralize
from twin3d.model import Sensor
from twin3d.sensors import parse_sensor_map

SCENE_MAP = Path(__file__).resolve().parents[1] / "twin3d" / "data" / "plate_sensors.toml"


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
    models = build_models(sphere.vertices, sphere.faces, 1.0, sensors, {}, cache=False,
                          other_channels=["other/channel"])  # e.g. the twin's other sensors
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
    _, U = solve_unit_responses(mesh, PLATE_MODEL["thermal"], PLATE_MODEL["regions"], 1.0)
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


# --- the [model] table: one schema, checked at parse and at build ----------------------------

@pytest.mark.parametrize(("config", "table", "key", "hint"), [
    ({"thermal": {"conductivty": 50.0, "convection": {"h": 5.0}}}, "[model.thermal]",
     "conductivty", "did you mean 'conductivity'?"),
    ({"thermal": {"fixed": ["r"], "h": 25.0}}, "[model.thermal]", "h",
     "'h' belongs in [model.thermal.convection]"),
    ({"kriging": {"rangee": 0.05}}, "[model.kriging]", "rangee", "did you mean 'range'?"),
    ({"stress": {"E": 1e9, "poisson": 0.3, "fixed": ["r"], "load": []}}, "[model.stress]",
     "poisson", "did you mean 'nu'?"),
    ({"regions": {"r": {"all": True, "radius": 1.0}}}, "[model.regions.r]", "radius",
     "'radius' belongs in [model.regions.NAME.sphere]"),
    ({"stress": {"E": 1e9, "fixed": ["r"], "load": [{"name": "p", "region": "r", "forse": 1}]}},
     "[[model.stress.load]] #1 'p'", "forse", "did you mean 'force'?"),
])
def test_unknown_and_misplaced_model_keys_name_the_table_and_the_allowed_keys(
        config: dict, table: str, key: str, hint: str) -> None:
    v, f = _plate()
    config = {"regions": {"r": {"all": True}}} | config
    with pytest.raises(FieldError) as info:  # at build time, before any meshing
        build_models(v, f, 1.0, _plate_sensors(v, 4, seed=1), config, cache=False)
    text = str(info.value)
    assert text.startswith(f"{table}: unknown key {key!r} (allowed: ") and text.endswith(hint)
    assert "\n" not in text
    with pytest.raises(SensorMapError) as parsed:  # and when the sensor map is parsed
        parse_sensor_map(_one_sensor() + _toml_model(config), source="m.toml")
    assert str(parsed.value) == f"m.toml: {text}"


@pytest.mark.parametrize(("config", "message"), [
    ({"thermal": {"conductivity": "fifty", "fixed": ["r"]}},
     "[model.thermal]: conductivity must be a number > 0 (got 'fifty')"),
    ({"thermal": {"fixed": "r"}},
     "[model.thermal]: fixed must be a list of region names, e.g. [\"heater\"] (got 'r')"),
    ({"thermal": {"fixed": ["r"], "tets": 2.5}}, "[model.thermal]: tets must be a whole number"),
    ({"thermal": {"fixed": ["r"], "convection": 10.0}},
     "[model.thermal]: convection must be a table: write [model.thermal.convection]"),
    ({"stress": {"E": 1e9, "fixed": ["r"],
                 "load": {"name": "p", "region": "r", "force": [0, 0, 1]}}},
     "[model.stress]: load must be an array of tables: write [[model.stress.load]]"),
    ({"stress": {"E": 1e9, "nu": 0.7, "fixed": ["r"], "load": []}},
     "[model.stress]: nu must be a number > -1 and < 0.5 (got 0.7)"),
    ({"stress": {"E": 1e9, "fixed": ["r"], "load": [{"name": "p", "region": "r"}]}},
     "[[model.stress.load]] #1 'p': give one of force = [fx, fy, fz] (N) or pressure"),
    ({"kriging": {"quantities": "temperature"}}, "[model.kriging]: quantities must be a list"),
    ({"regions": {"r": {"box": [[0, 0, 0], [1, 1]]}}},
     "[model.regions.r]: box must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]"),
    ({"regions": {"r": {"angle": 20}}}, "[model.regions.r]: region 'r' selects nothing"),
    ({"thermal": {"fixed": ["r"], "convection": {"h": 10.0, "region": "nope"}}},
     "[model.thermal.convection] region: region 'nope' is not defined; add [model.regions.nope]"),
])
def test_model_values_of_the_wrong_type_are_one_line_errors(config: dict, message: str) -> None:
    config = {"regions": {"r": {"all": True}}} | config
    with pytest.raises(FieldError) as info:
        check_model(config)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    v, f = _plate()
    with pytest.raises(FieldError) as built:
        build_models(v, f, 1.0, _plate_sensors(v, 4, seed=1), config, cache=False)
    assert str(built.value) == str(info.value)


def _one_sensor() -> str:
    return ('[[sensor]]\nchannel = "p/t0"\nquantity = "temperature"\nunit = "degC"\n'
            'target = "/Plate"\nvertex = 0\n')


def _toml_model(config: dict) -> str:
    """``config`` as the TOML a user writes (tables, inline tables, arrays of tables)."""
    import json

    lines: list[str] = []

    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    def table(name: str, t: dict) -> None:
        subs = {k: x for k, x in t.items() if isinstance(x, dict) and k != "sphere"}
        arrays = {k: x for k, x in t.items()
                  if isinstance(x, list) and x and all(isinstance(i, dict) for i in x)}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {value(x)}" for k, x in t.items() if k not in subs | arrays)
        for k, x in subs.items():
            table(f"{name}.{k}", x)
        for k, items in arrays.items():
            for item in items:
                lines.append(f"[[{name}.{k}]]")
                lines.extend(f"{ik} = {value(ix)}" for ik, ix in item.items())

    table("model", config)
    return "\n".join(lines) + "\n"


def test_bind_refuses_a_map_with_a_model_typo(plate: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from twin3d.cli import main

    text = SCENE_MAP.read_text(encoding="utf-8").replace("conductivity = 167.0",
                                                         "conductivty = 167.0")
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    before = plate.read_bytes()
    assert main(["bind", str(plate), "--sensors", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("twin3d bind: error: ") and err.count("\n") == 1
    assert "[model.thermal]: unknown key 'conductivty' (allowed: conductivity," in err
    assert plate.read_bytes() == before


# --- regions: what each selected ---------------------------------------------------------------

def test_a_region_that_swallows_every_face_leaves_no_convection_and_says_so() -> None:
    v, f = _plate()
    config = {"regions": {"everything": {"all": True}},
              "thermal": {"sources": ["everything"], "convection": {"h": 10.0}, "tets": 2000}}
    with pytest.raises(FieldError, match=r"^\[model.thermal.convection\]: no facet is left for "
                                         "convection: the sources and fixed regions cover"):
        HeatModel.build(v, f, 1.0, _plate_sensors(v, 4, seed=1), config)


def test_regions_report_facets_and_patches_and_warn_when_a_normal_catches_hole_walls(
        tmp_path: Path) -> None:
    a, b = 0.05, 0.1
    ring = trimesh.creation.annulus(r_min=a, r_max=b, height=0.02, sections=48)
    config = {"regions": {"bore": {"cylinder": {"center": [0, 0, 0], "radius": a * 1.01,
                                                "wall": True}},
                          "minus_x": {"normal": [-1, 0, 0], "angle": 10}},
              "thermal": {"sources": ["minus_x"], "fixed": ["bore"], "convection": {"h": 10.0},
                          "tets": 3000, "residual_kriging": False}}
    sensors = [Sensor(f"r/t{i}", "temperature", "degC", "/Ring",
                      position=(b * np.cos(t), b * np.sin(t), 0.0))
               for i, t in enumerate(np.linspace(0.3, 5.9, 5))]
    with pytest.warns(RegionWarning, match=r"region 'minus_x' \(source\) selects \d+ facets on 2 "
                                           "separate surface patches") as caught:
        model = build_models(ring.vertices, ring.faces, 1.0, sensors, config,
                             cache_dir=tmp_path)["temperature"]
    assert len(caught) == 1  # the bore is one patch: no warning for it
    report = {r.name: r for r in model.regions}
    assert [(r.name, r.role) for r in model.regions] == [
        ("minus_x", "source"), ("bore", "fixed"), ("rest", "convection")]
    # independent count: the ring's own triangles facing -x, grouped by trimesh's adjacency
    facing = np.flatnonzero(ring.face_normals @ [-1.0, 0, 0] >= np.cos(np.radians(10)))
    groups = trimesh.graph.connected_components(ring.face_adjacency, nodes=facing)
    assert report["minus_x"].patches == len(groups) == 2
    # the FEM surface is the input refined onto the round shape: areas against the exact ring
    h = 0.02
    assert report["bore"].patches == 1
    assert report["bore"].area == pytest.approx(2 * np.pi * a * h, rel=0.01)
    # facets facing -x within 10°: a 20° strip of the outer wall and one of the bore
    assert report["minus_x"].area == pytest.approx(np.radians(20) * (a + b) * h, rel=0.2)
    total = 2 * np.pi * (a + b) * h + 2 * np.pi * (b * b - a * a)
    outer_strip = np.radians(20) * b * h
    assert report["rest"].area == pytest.approx(total - report["bore"].area - outer_strip,
                                                rel=0.01)
    assert sum(r.facets for r in model.regions) > report["rest"].facets > 0
    with pytest.warns(RegionWarning, match="'minus_x'"):  # a cached model warns the same
        again = build_models(ring.vertices, ring.faces, 1.0, sensors, config,
                             cache_dir=tmp_path)["temperature"]
    assert again.regions == model.regions and again is not model


# --- updates: channels, values, sensors off the part -----------------------------------------

def test_update_refuses_unknown_channels_and_values_that_are_not_finite_numbers() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sensors = [Sensor(f"s/t{i}", "temperature", "degC", "/S", vertex=i * 30) for i in range(5)]
    k = build_models(sphere.vertices, sphere.faces, 1.0, sensors, {}, cache=False)["temperature"]
    k.update({"s/t0": 30.0})
    before = k.values.copy()
    with pytest.raises(FieldError) as info:
        k.update({"s/t99": 50.0})
    assert str(info.value) == ("Kriging has no channel 's/t99' (its channels: s/t0, s/t1, s/t2, "
                               "s/t3, ... 5 in all); check the channel name")
    for bad in ("50", float("nan"), float("inf"), None, True):
        with pytest.raises(FieldError, match=r"^channel 's/t2': value .* is not a finite number"):
            k.update({"s/t1": 40.0, "s/t2": bad})  # type: ignore[dict-item]
    with pytest.raises(FieldError, match="channel 's/t3': value nan is not a finite number"):
        k.update([1.0, 2.0, 3.0, np.nan, 5.0])
    with pytest.raises(FieldError, match="values must be numbers"):
        k.update(["1", "2", "3", "4", "5"])
    np.testing.assert_array_equal(k.values, before)  # a refused update changes nothing
    k.update({"s/t1": np.float32(40.0), "s/t2": np.int64(41)})  # numpy numbers are numbers
    assert k.values[1:3].tolist() == [40.0, 41.0]


def test_channels_of_the_twin_are_ignored_by_the_models_they_do_not_drive() -> None:
    v, f = _beam_like()
    sensors = [Sensor("b/t0", "temperature", "degC", "/B", vertex=0),
               Sensor("b/t1", "temperature", "degC", "/B", vertex=5),
               Sensor("b/sg", "strain", "ustrain", "/B", vertex=9)]
    models = build_models(v, f, 1.0, sensors, {}, cache=False, other_channels=["other/tc"])
    k = models["temperature"]
    assert k.ignored_channels == {"b/sg", "other/tc"}
    k.update({"b/t0": 20.0, "b/t1": 30.0, "b/sg": 400.0, "other/tc": 1.0})
    assert k.values.tolist() == [20.0, 30.0]
    with pytest.raises(FieldError, match="no channel 'b/tc1'"):
        k.update({"b/tc1": 20.0})


def _beam_like() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box((0.4, 0.1, 0.1))
    return trimesh.remesh.subdivide(box.vertices, box.faces)


def test_build_models_refuses_a_sensor_off_the_part_and_keeps_one_on_a_coarse_face() -> None:
    box = trimesh.creation.box((1.0, 1.0, 1.0))  # 8 vertices: face centres are far from them
    on_face = [Sensor(f"b/t{i}", "temperature", "degC", "/B", position=p) for i, p in
               enumerate([(0.0, 0.0, 0.5), (0.5, 0.1, 0.0), (0.1, -0.5, 0.2)])]
    models = build_models(box.vertices, box.faces, 1.0, on_face, {}, cache=False)
    assert models["temperature"].channels == ["b/t0", "b/t1", "b/t2"]
    near = [*on_face, Sensor("b/near", "temperature", "degC", "/B", position=(0.0, 0.0, 0.502))]
    build_models(box.vertices, box.faces, 1.0, near, {}, cache=False)  # 2 mm: within 5 mm
    with pytest.raises(FieldError, match=r"^sensor 'b/near': position \(0, 0, 0.502\) is 2.0 mm "
                                         r"from the surface of its mesh \(tolerance 1.0 mm\)"):
        build_models(box.vertices, box.faces, 1.0, near, {}, cache=False, snap_tolerance=0.001)
    far = [*on_face, Sensor("b/far", "temperature", "degC", "/B", position=(0.0, 0.99, 0.0))]
    with pytest.raises(FieldError, match=r"'b/far': position .* is 490\.0 mm from the surface"):
        build_models(box.vertices, box.faces, 1.0, far, {}, cache=False)
    in_mm = [Sensor(s.channel, s.quantity, s.unit, s.target,
                    position=tuple(1000.0 * x for x in s.position or ())) for s in on_face]
    in_mm.append(Sensor("b/mm", "temperature", "degC", "/B", position=(0.0, 0.0, 503.0)))
    build_models(box.vertices * 1000.0, box.faces, 0.001, in_mm, {}, cache=False)  # 3 mm
    in_mm[-1] = Sensor("b/mm", "temperature", "degC", "/B", position=(0.0, 0.0, 508.0))
    with pytest.raises(FieldError, match=r"'b/mm': .* is 8\.0 mm from the surface"):
        build_models(box.vertices * 1000.0, box.faces, 0.001, in_mm, {}, cache=False)


# --- the heat model's fitted inputs ---------------------------------------------------------

def test_fitted_inputs_flag_impossible_values_and_an_update_warns_once() -> None:
    v, f = _plate()
    mesh = tetrahedralize(v, f, 1.0, target_tets=3000)
    sensors = _plate_sensors(v, 8, seed=4)
    model = HeatModel.build(v, f, 1.0, sensors, PLATE_MODEL, mesh=mesh)
    good = model.readings({"source:heater": 25.0, "ambient": 21.0})
    check = model.fitted_inputs(good)
    assert check.plausible and check.problems == ()
    assert check.values == pytest.approx({"source:heater": 25.0, "ambient": 21.0}, rel=1e-6)
    assert check.units == {"source:heater": "W", "ambient": "degC"}
    assert np.isnan(model.values).all()  # asking changed nothing
    cold = model.readings({"source:heater": 25.0, "ambient": -300.0})
    assert model.fitted_inputs(cold).problems == (
        ("ambient fitted at -300.0 degC, below absolute zero (-273.15 degC): check the sensors' "
         "readings and units, and the [model.thermal] regions"),)
    sink = model.readings({"source:heater": -10.0, "ambient": 21.0})
    (problem,) = model.fitted_inputs(sink).problems
    assert problem.startswith("heat source 'heater' fitted at -10 W, below zero beyond the noise")
    sigma = model.fitted_inputs(sink).sigma["source:heater"]
    assert 0 < sigma < 5.0  # 0.05 K sensor noise: the -10 W is far outside it
    slightly = model.readings({"source:heater": -sigma, "ambient": 21.0})
    assert model.fitted_inputs(slightly).plausible  # within 2 sigma of zero: noise, not a sink
    with pytest.warns(ImplausibleInputWarning, match="ambient fitted at -300.0 degC"):
        model.update(cold)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.update(cold)  # still the same problem: no second warning
        model.update(good)
        assert model.fitted_inputs().plausible  # default: the latest values
    with pytest.warns(ImplausibleInputWarning, match="ambient"):
        model.update(cold)  # implausible again after a plausible update: warns again


# --- kriging keys that used to change nothing ----------------------------------------------

def test_kriging_noise_and_nugget_keys_change_the_model() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    obs = [20, 60, 120, 200, 300, 400, 500, 600]
    sensors = [Sensor(f"s/t{i}", "temperature", "degC", "/S", vertex=j)
               for i, j in enumerate(obs)]
    values = 20.0 + 5.0 * sphere.vertices[obs, 0] + 2.0 * sphere.vertices[obs, 2]

    def build(**kriging: float) -> Kriging:
        model = build_models(sphere.vertices, sphere.faces, 1.0, sensors,
                             {"kriging": {"range": 1.0} | kriging}, cache=False)["temperature"]
        assert isinstance(model, Kriging)
        model.update(values)
        return model

    plain, noisy = build(), build(noise=0.5)
    assert plain.sigma is not None and noisy.sigma is not None
    assert plain.sigma[obs].mean() < 0.25  # tiny nugget: the field is pinned to the readings
    # noise 0.5 K: at a sensor the field is known to about the sensor's own noise
    np.testing.assert_allclose(noisy.sigma[obs], 0.5, rtol=0.1)
    assert np.all(noisy.sigma >= plain.sigma - 1e-6)
    np.testing.assert_array_equal(noisy.W, plain.W)  # noise widens sigma; weights unchanged
    smooth = build(nugget=0.5)  # a large nugget smooths: the field no longer hits each reading
    assert np.abs(smooth.update(values)[obs] - values).max() > 0.05
    assert np.abs(plain.update(values)[obs] - values).max() < 0.05


def test_models_save_and_load_themselves_through_plain_arrays(tmp_path: Path) -> None:
    v, f = _plate()
    sensors = _plate_sensors(v, 6, seed=7)
    model = HeatModel.build(v, f, 1.0, sensors, PLATE_MODEL)
    arrays = model.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    np.savez(tmp_path / "m.npz", **arrays)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        back = HeatModel.from_arrays({k: data[k] for k in data.files})
    assert back.inputs == model.inputs and back.regions == model.regions
    assert back.channels == model.channels and back.noise == model.noise
    values = np.linspace(30.0, 40.0, 6)
    np.testing.assert_allclose(back.update(values), model.update(values), rtol=1e-6)
    np.testing.assert_allclose(back.sigma, model.sigma, rtol=1e-5)
    assert back.fitted_inputs() == model.fitted_inputs()
    assert back.readings({"ambient": 20.0}) == model.readings({"ambient": 20.0})
    sphere = trimesh.creation.icosphere(subdivisions=2)
    kriged = Kriging(sphere.vertices * 1000.0, sphere.faces, 0.001, ["a", "b", "c", "d"],
                     [0, 40, 80, 120], "temperature", "degC", noise=0.3).fit([20.0, 25, 21, 23])
    again = Kriging.from_arrays(kriged.to_arrays())
    assert again.range == pytest.approx(kriged.range) and again.noise == 0.3
    readings = [22.0, 24.0, 20.0, 21.0]
    np.testing.assert_array_equal(again.update(readings), kriged.update(readings))
    np.testing.assert_allclose(again.sigma, kriged.sigma, rtol=1e-6)
