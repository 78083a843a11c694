"""Fields from sparse sensors: physics-based, with uncertainty, updated as ``W @ values``.

Every estimator here is linear in the readings, so a model is one precomputed influence
matrix ``W`` (vertices × channels, float32, column-major) and an update is ``W @ values``:

* :class:`HeatModel`: steady conduction (scikit-fem, P1 tets) with unknown inputs declared in
  ``[model.thermal]``, least-squares fitted to the thermocouples, plus kriging of the residual
  (sigma widens where the physics misfits);
* :class:`Kriging`: data only, a Matérn field on the surface mesh, with sigma per vertex;
* :class:`StressModel`: linear elasticity with P2 tets; load cells scale load cases, strain
  gauges identify the others; von Mises per vertex from the six linear tensor fields, and the
  displacement (``StressModel.displacement``, stage units) for the deformed shape.

The physics runs at real-part scale: the mesh follows a size field (fine at holes, fillets,
sensors and the borders of loaded and fixed regions; the surface is refined onto its smooth
shape, so ``tets`` is the element count and a coarse CAD hole still meshes round:
:mod:`~twin3d.fields.sizing`), the solver is chosen by size (CHOLMOD, AMG-CG or SuperLU:
:mod:`~twin3d.fields.fem`), surface stresses come from superconvergent patch recovery held
traction-free on free surfaces (:mod:`~twin3d.fields.recovery`), builds longer than a second
show progress on a terminal and a Ctrl-C leaves no cache entry behind. A model says which mesh
it was solved on (``model.mesh``: :class:`MeshReport`).

The ``[model]`` section of the sensor map (all lengths in stage units; every key is checked
by :func:`twin3d.fields.config.check_model` when the map is parsed and when a model is built)::

    [model.regions.heater]        # named regions select boundary facets of the part
    box = [[0.08, 0.10, 0.0126], [0.12, 0.14, 0.0128]]   # [[min], [max]] corners
    # sphere = { center = [x, y, z], radius = r }
    # cylinder = { center = [x, y, z], axis = [0, 0, 1], radius = r, wall = true }
    #   (wall = true: only the wall of a hole or shaft; outside = true: beyond the radius)
    # normal = [0, 0, -1]   angle = 10          # outward normal within 10° (alone or with a shape)
    # all = true                               # the whole boundary

    [model.thermal]               # -> HeatModel over the temperature sensors
    conductivity = 16.0           # W/(m K)
    sources = ["heater"]          # unknown heat input (W) per region; a source only heats
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
    nugget = 0.001                # noise variance as a share of the field's variance
    noise = 0.2                   # sensor standard deviation: widens sigma (see Kriging)

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

A built physics model says what each region selected (``model.regions``: facets, connected
patches, area) and warns (:class:`RegionWarning`) when a region spans several surface patches;
:meth:`HeatModel.fitted_inputs` flags fitted inputs that are physically impossible, and an
update that produces one warns (:class:`ImplausibleInputWarning`).

Examples:
    >>> from twin3d.fields import build_models                       # doctest: +SKIP
    >>> models = build_models(points, faces, 1.0, sensors, config)   # doctest: +SKIP
    >>> temps = models["temperature"].update({"plate/tc1": 41.5})    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from twin3d.fields.base import (
    FieldWarning,
    ImplausibleInputWarning,
    LinearFieldModel,
    MeshReport,
    RegionReport,
    RegionWarning,
    matvec,
    reports_from_arrays,
    reports_to_arrays,
    sensor_locations,
    warn_regions,
)
from twin3d.fields.cache import cache_dir, cached, model_key
from twin3d.fields.config import (
    DEFAULT_MESH_QUALITY,
    STRESS_UNITS,
    check_model,
    check_region,
    mesh_quality,
)
from twin3d.fields.fem import SOLVERS, available_solvers, solve_spd
from twin3d.fields.heat import FittedInputs, HeatModel, solve_unit_responses
from twin3d.fields.kriging import (
    MAX_WORK_BYTES,
    Kriging,
    KrigingSolution,
    cotangent_matrices,
    fit_range,
    krige,
)
from twin3d.fields.mesh import (
    TetMesh,
    facet_geometry,
    probe_matrix,
    report_region,
    select_facets,
    surface_patches,
    tetrahedralize,
)
from twin3d.fields.stress import (
    COMPONENTS,
    FORCE_UNITS,
    STRAIN_UNITS,
    StressModel,
    solve_load_cases,
    stiffness_matrix,
    strain_from_stress,
    von_mises,
)

__all__ = [
    "COMPONENTS",
    "DEFAULT_MESH_QUALITY",
    "FORCE_UNITS",
    "MAX_WORK_BYTES",
    "SOLVERS",
    "STRAIN_UNITS",
    "STRESS_UNITS",
    "FieldWarning",
    "FittedInputs",
    "HeatModel",
    "ImplausibleInputWarning",
    "Kriging",
    "KrigingSolution",
    "LinearFieldModel",
    "MeshReport",
    "RegionReport",
    "RegionWarning",
    "StressModel",
    "TetMesh",
    "available_solvers",
    "build_field_models",
    "build_models",
    "cache_dir",
    "cached",
    "check_model",
    "check_region",
    "cotangent_matrices",
    "facet_geometry",
    "fit_range",
    "krige",
    "matvec",
    "mesh_quality",
    "model_key",
    "probe_matrix",
    "report_region",
    "reports_from_arrays",
    "reports_to_arrays",
    "select_facets",
    "sensor_locations",
    "solve_load_cases",
    "solve_spd",
    "solve_unit_responses",
    "stiffness_matrix",
    "strain_from_stress",
    "surface_patches",
    "tetrahedralize",
    "von_mises",
    "warn_regions",
]


_M = TypeVar("_M", bound=LinearFieldModel)


def _warned(model: _M) -> _M:
    """A model loaded from the cache warns about its regions as a freshly built one does."""
    warn_regions(model.regions, stacklevel=5)  # the caller of build_models
    return model


def build_models(points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
                 sensors: Sequence[Any], config: Mapping[str, Any] | None = None, *,
                 cache: bool = True, cache_dir: Path | None = None,
                 snap_tolerance: float | None = None, other_channels: Iterable[str] = (),
                 solid: tuple[npt.ArrayLike, npt.ArrayLike] | None = None
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
        snap_tolerance: largest distance (metres) from a sensor position to the surface
            (default: 5 mm, as ``twin3d bind``; bound sensors sit on it).
        other_channels: more channels updates may carry (e.g. the twin's sensors on other
            meshes); each model's ``ignored_channels`` gets these and every sensor's channel
            that is not its own.
        solid: ``(points, faces)`` of the closed surface the physics models mesh, when
            ``points`` and ``faces`` are a finer display surface of it (a twin's meshes with
            sensors are: :mod:`twin3d.display`); fields are then given at the display points.

    Returns:
        ``{quantity: model}``: ``"temperature"`` (HeatModel or Kriging), ``"von_mises"``
        (StressModel), and a Kriging per other quantity listed in ``[model.kriging]``.

    Raises:
        FieldError: a model that cannot be built (the message names the key to fix), or a
            sensor farther than ``snap_tolerance`` from the part.

    Warns:
        RegionWarning: a region that selects facets on several surface patches.
    """
    config = dict(config or {})
    check_model(config)
    pts = np.asarray(points, dtype=np.float64)
    tri = np.asarray(faces, dtype=np.int64)
    sensor_locations(sensors, pts * meters_per_unit, meters_per_unit, tri,
                     tolerance_m=snap_tolerance)  # before the cache, so it is never skipped
    by_q: dict[str, list[Any]] = {}
    for s in sensors:
        by_q.setdefault(s.quantity, []).append(s)
    models: dict[str, LinearFieldModel] = {}
    if "thermal" in config and by_q.get("temperature"):
        temps = by_q["temperature"]
        key = model_key("heat", pts, tri, meters_per_unit, temps, config, solid)
        models["temperature"] = cached(
            key, lambda: HeatModel.build(pts, tri, meters_per_unit, temps, config, solid=solid),
            HeatModel.to_arrays, lambda d: _warned(HeatModel.from_arrays(d)),
            directory=cache_dir, enabled=cache)
    if "stress" in config:
        loads = by_q.get("force", []) + by_q.get("strain", [])
        key = model_key("stress", pts, tri, meters_per_unit, loads, config, solid)
        models["von_mises"] = cached(
            key, lambda: StressModel.build(pts, tri, meters_per_unit, loads, config, solid=solid),
            StressModel.to_arrays, lambda d: _warned(StressModel.from_arrays(d)),
            directory=cache_dir, enabled=cache)
    kcfg = config.get("kriging", {})
    default_q = [] if "temperature" in models else ["temperature"]
    for q in kcfg.get("quantities", default_q):
        group = by_q.get(q, [])
        if len(group) < 2 or q in models:
            continue
        _, vert = sensor_locations(group, pts * meters_per_unit, meters_per_unit, tri,
                                   tolerance_m=snap_tolerance)
        models[q] = Kriging(pts, tri, meters_per_unit, [s.channel for s in group], vert, q,
                            group[0].unit, range=kcfg.get("range"),
                            nugget=kcfg.get("nugget", 1e-3), noise=kcfg.get("noise"))
    everyone = {s.channel for s in sensors} | set(other_channels)
    for model in models.values():
        model.ignored_channels = frozenset(everyone - set(model.channels))
    return models


def build_field_models(twin: Any, model: Mapping[str, Any] | None = None, *,
                       cache: bool = True, cache_dir: Path | None = None
                       ) -> dict[str, dict[str, LinearFieldModel]]:
    """Field models for every mesh of a :class:`twin3d.Twin` that has sensors on it.

    Models are built on each mesh as the twin gives it: the display surface of a mesh with
    sensors (:meth:`twin3d.Twin.meshes`), the physics meshing the mesh itself (its ``source``).

    Args:
        twin: an open Twin (``.meshes``, ``.sensors``, ``.meters_per_unit``).
        model: the sensor map's ``[model]`` table, e.g.
            ``twin3d.sensors.load_sensor_map("sensors.toml").model``; by default the Twin's
            ``.model`` attribute if it has one, else none (kriging only).
        cache: reuse models built before from the same inputs.
        cache_dir: the cache folder, when not the default.

    Returns:
        ``{mesh prim path: {quantity: model}}``; each model ignores the twin's other channels
        in an update (so a view may push them all) and raises on any other.

    Examples:
        >>> twin = twin3d.Twin.open("scenes/plate/plate.usda")               # doctest: +SKIP
        >>> smap = twin3d.sensors.load_sensor_map("twin3d/data/plate_sensors.toml")  # doctest: +SKIP
        >>> models = build_field_models(twin, smap.model)                    # doctest: +SKIP
    """
    config = model if model is not None else (getattr(twin, "model", None) or {})
    sensors = list(twin.sensors.values()) if isinstance(twin.sensors, Mapping) else list(
        twin.sensors)
    channels = [s.channel for s in sensors]
    out: dict[str, dict[str, LinearFieldModel]] = {}
    for mesh in twin.meshes:
        mine = [s for s in sensors if s.target == mesh.path]
        source = getattr(mesh, "source", None)  # a display surface: physics on the part itself
        if mine:
            out[mesh.path] = build_models(mesh.points, mesh.faces, twin.meters_per_unit, mine,
                                          config, cache=cache, cache_dir=cache_dir,
                                          other_channels=channels, solid=None if source is None
                                          else (source.points, source.faces))
    return out
