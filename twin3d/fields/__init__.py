"""Fields from sparse sensors: physics-based, with uncertainty, updated as ``W @ values``.

Every estimator here is linear in the readings, so a model is one precomputed influence
matrix ``W`` (vertices × channels, float32, column-major) and an update is ``W @ values``:

* :class:`HeatModel`: steady conduction (scikit-fem, P1 tets) with unknown inputs declared in
  ``[model.thermal]``, least-squares fitted to the thermocouples, plus kriging of the residual
  (sigma widens where the physics misfits);
* :class:`Kriging`: data only, a Matérn field on the surface mesh, with sigma per vertex;
* :class:`StressModel`: linear elasticity with P2 tets; load cells scale load cases, strain
  gauges identify the others; von Mises per vertex from the six linear tensor fields.

The ``[model]`` section of the sensor map (all lengths in stage units)::

    [model.regions.heater]        # named regions select boundary facets of the part
    box = [[0.08, 0.10, 0.0126], [0.12, 0.14, 0.0128]]   # [[min], [max]] corners
    # sphere = { center = [x, y, z], radius = r }
    # cylinder = { center = [x, y, z], axis = [0, 0, 1], radius = r, outside = false }
    # normal = [0, 0, -1]   angle = 10          # outward normal within 10° (alone or with a shape)
    # all = true                               # the whole boundary

    [model.thermal]               # -> HeatModel over the temperature sensors
    conductivity = 16.0           # W/(m K)
    sources = ["heater"]          # unknown heat input (W) per region
    fixed = []                    # regions at an unknown uniform temperature
    noise = 0.2                   # sensor standard deviation (sensors' unit)
    residual_kriging = true       # physics + kriged residual
    kriging_range = 0.08          # stage units (default: a fifth of the diagonal)
    nugget = 0.01                 # residual noise as a share of its variance
    tets = 20000                  # rough FEM mesh size
    mesh_quality = [2.0, 10.0]    # TetGen radius-edge ratio, min dihedral (looser: fewer tets)
    [model.thermal.convection]    # to an unknown ambient temperature
    h = 10.0                      # W/(m² K)
    region = "rest"               # every facet not in sources/fixed (default), or a region

    [model.kriging]               # -> Kriging, for sensors of quantities with no physics model
    quantities = ["temperature"]  # which quantities (default: temperature when no thermal)
    range = 0.08                  # stage units (default: a fifth of the diagonal)
    noise = 0.2

    [model.stress]                # -> StressModel over the force and strain sensors
    E = 200e9                     # Pa
    nu = 0.3
    unit = "MPa"                  # Pa | kPa | MPa | GPa | psi
    fixed = ["holes"]             # regions held fixed
    gauge_direction = [1, 0, 0]   # strain-gauge measuring direction (default for all)
    gauge_directions = { "plate/sg2" = [0, 1, 0] }
    tets = 4000
    [[model.stress.load]]
    name = "press"
    region = "pad"
    force = [0, 0, -1]            # N per channel unit (or pressure = Pa per channel unit)
    channel = "plate/load"        # a load cell drives it; omit to identify it from the gauges

Examples:
    >>> from twin3d.fields import build_models                       # doctest: +SKIP
    >>> models = build_models(points, faces, 1.0, sensors, config)   # doctest: +SKIP
    >>> temps = models["temperature"].update({"plate/tc1": 41.5})    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.errors import FieldError
from twin3d.fields.base import LinearFieldModel, sensor_locations
from twin3d.fields.cache import cached, model_key
from twin3d.fields.heat import HeatModel
from twin3d.fields.kriging import Kriging
from twin3d.fields.stress import StressModel, von_mises

__all__ = ["HeatModel", "Kriging", "LinearFieldModel", "StressModel", "build_field_models",
           "build_models", "von_mises"]


def _save_heat(m: HeatModel) -> dict[str, Any]:
    out = m.arrays() | {"inputs": np.asarray(m.inputs), "fit": m._fit,
                        "var_physics": m._var_physics, "noise": np.asarray(m._noise),
                        "response": m.response}
    if m._kriging is not None and m._residual is not None:
        k = m._kriging
        out |= {"residual": m._residual, "k_W": k.W, "k_var": k.var, "k_Rinv": k.Rinv,
                "k_meta": np.asarray([k.beta, k.range_m, k.nugget])}
    return out


def _load_heat(d: dict[str, Any]) -> HeatModel:
    from twin3d.fields.kriging import KrigingSolution

    kriging = None
    if "residual" in d:
        beta, rng, nug = d["k_meta"]
        kriging = KrigingSolution(W=d["k_W"], var=d["k_var"], Rinv=d["k_Rinv"], beta=float(beta),
                                  range_m=float(rng), nugget=float(nug))
    return HeatModel(list(d["channels"]), d["W"], str(d["unit"]), inputs=list(d["inputs"]),
                     fit=d["fit"], var_physics=d["var_physics"], residual=d.get("residual"),
                     kriging=kriging, noise=float(d["noise"]), response=d["response"])


def _save_stress(m: StressModel) -> dict[str, Any]:
    return m.arrays() | {"cases": np.asarray(m.cases), "amp": m._amp, "response": m.response}


def _load_stress(d: dict[str, Any]) -> StressModel:
    return StressModel(list(d["channels"]), d["W"], str(d["unit"]), cases=list(d["cases"]),
                       amplitude_map=d["amp"], response=d["response"])


def build_models(points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
                 sensors: Sequence[Any], config: Mapping[str, Any] | None = None, *,
                 cache: bool = True, cache_dir: Path | None = None
                 ) -> dict[str, LinearFieldModel]:
    """Build every field model the sensors and the ``[model]`` section call for, on one mesh.

    Args:
        points: (n, 3) float surface vertices of the mesh, stage units, world space.
        faces: (f, 3) int triangles (a closed surface for the physics models).
        meters_per_unit: the stage's metres per unit.
        sensors: the :class:`~twin3d.model.Sensor` objects that sit on this mesh.
        config: the ``[model]`` table of the sensor map (``{}`` or None: kriging only).
        cache: reuse models built before from the same inputs (see :mod:`twin3d.fields.cache`).
        cache_dir: the cache folder, when not the default.

    Returns:
        ``{quantity: model}``: ``"temperature"`` (HeatModel or Kriging), ``"von_mises"``
        (StressModel), and a Kriging per other quantity listed in ``[model.kriging]``.

    Raises:
        FieldError: a model that cannot be built (the message names the key to fix).
    """
    config = dict(config or {})
    pts = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    by_q: dict[str, list[Any]] = {}
    for s in sensors:
        by_q.setdefault(s.quantity, []).append(s)
    models: dict[str, LinearFieldModel] = {}
    thermal = config.get("thermal")
    if thermal is not None and by_q.get("temperature"):
        temps = by_q["temperature"]
        key = model_key("heat", pts, tri, meters_per_unit, temps, config)
        models["temperature"] = cached(
            key, lambda: HeatModel.build(pts, tri, meters_per_unit, temps, config),
            _save_heat, _load_heat, directory=cache_dir, enabled=cache)
    stress = config.get("stress")
    if stress is not None:
        loads = by_q.get("force", []) + by_q.get("strain", [])
        key = model_key("stress", pts, tri, meters_per_unit, loads, config)
        models["von_mises"] = cached(
            key, lambda: StressModel.build(pts, tri, meters_per_unit, loads, config),
            _save_stress, _load_stress, directory=cache_dir, enabled=cache)
    kcfg = config.get("kriging", {})
    if not isinstance(kcfg, Mapping):
        raise FieldError("[model.kriging] must be a table")
    default_q = [] if "temperature" in models else ["temperature"]
    for q in kcfg.get("quantities", default_q):
        group = by_q.get(q, [])
        if len(group) < 2 or q in models:
            continue
        _, vert = sensor_locations(group, pts * meters_per_unit, meters_per_unit)
        k = Kriging(pts, tri, meters_per_unit, [s.channel for s in group], vert, q,
                    group[0].unit, range=kcfg.get("range"), noise=kcfg.get("noise"))
        models[q] = k
    return models


def build_field_models(twin: Any, model: Mapping[str, Any] | None = None, *,
                       cache: bool = True, cache_dir: Path | None = None
                       ) -> dict[str, dict[str, LinearFieldModel]]:
    """Field models for every mesh of a :class:`twin3d.Twin` that has sensors on it.

    Args:
        twin: an open Twin (``.meshes``, ``.sensors``, ``.meters_per_unit``).
        model: the sensor map's ``[model]`` table, e.g.
            ``twin3d.sensors.load_sensor_map("sensors.toml").model``; by default the Twin's
            ``.model`` attribute if it has one, else none (kriging only).
        cache: reuse models built before from the same inputs.
        cache_dir: the cache folder, when not the default.

    Returns:
        ``{mesh prim path: {quantity: model}}``.

    Examples:
        >>> twin = twin3d.Twin.open("scenes/plate/plate.usda")               # doctest: +SKIP
        >>> smap = twin3d.sensors.load_sensor_map("scenes/plate/sensors.toml")  # doctest: +SKIP
        >>> models = build_field_models(twin, smap.model)                    # doctest: +SKIP
    """
    config = model if model is not None else (getattr(twin, "model", None) or {})
    sensors = list(twin.sensors.values()) if isinstance(twin.sensors, Mapping) else list(
        twin.sensors)
    out: dict[str, dict[str, LinearFieldModel]] = {}
    for mesh in twin.meshes:
        mine = [s for s in sensors if s.target == mesh.path]
        if mine:
            out[mesh.path] = build_models(mesh.points, mesh.faces, twin.meters_per_unit, mine,
                                          config, cache=cache, cache_dir=cache_dir)
    return out
