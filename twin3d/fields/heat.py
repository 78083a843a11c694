"""Steady heat conduction fitted to thermocouples: the physics basis of a temperature field.

The part's steady temperature is linear in its unknown inputs: the power of each heat source,
the temperature of each fixed-temperature face, the ambient temperature of the convection.
One P1 finite-element solve (scikit-fem) per unknown gives a unit response; each update
least-squares fits the amplitudes to the readings, and since that fit is linear too, the
whole chain is folded into ``W = B (AᵀA)⁻¹Aᵀ`` (``B`` the responses at the vertices, ``A`` at
the sensors). With ``residual_kriging`` the misfit the physics cannot explain is kriged on the
surface and added, and sigma widens where the model misfits. :meth:`HeatModel.fitted_inputs`
returns the fitted inputs and flags the physically impossible ones (a temperature below
absolute zero, a heat source that takes heat out).

``[model.thermal]`` keys (see :mod:`twin3d.fields` for the whole schema)::

    conductivity = 16.0        # W/(m K)
    noise = 0.2                # sensor standard deviation, sensors' unit
    tets = 20000               # rough tetrahedron count of the FEM mesh
    mesh_quality = [2.0, 10.0] # TetGen radius-edge ratio, min dihedral angle (looser: fewer tets)
    residual_kriging = true    # physics + kriged residual (widens sigma where it misfits)
    kriging_range = 80.0       # stage units; default: a fifth of the part's diagonal
    nugget = 0.01              # residual noise as a share of its variance
    sources = ["heater"]       # regions with an unknown heat input (W, spread over the area;
                               # a source only heats: a fit below zero is flagged)
    fixed = ["clamp"]          # regions at an unknown uniform temperature
    [model.thermal.convection] # to an unknown ambient temperature
    h = 10.0                   # W/(m² K)
    region = "rest"            # "rest" = every boundary facet not in sources/fixed (default)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from twin3d.errors import FieldError
from twin3d.fields.base import (
    ImplausibleInputWarning,
    LinearFieldModel,
    MeshReport,
    RegionReport,
    reports_from_arrays,
    sensor_locations,
    warn_regions,
)
from twin3d.fields.config import check_model, mesh_quality
from twin3d.fields.fem import assemble, solve_spd
from twin3d.fields.kriging import KrigingSolution, krige
from twin3d.fields.mesh import (
    TetMesh,
    probe_matrix,
    region_borders,
    report_region,
    select_facets,
    tetrahedralize,
)
from twin3d.fields.progress import build_progress, step

__all__ = ["FittedInputs", "HeatModel", "solve_unit_responses"]

FloatArray = npt.NDArray[np.float64]

#: Absolute zero in each temperature unit a sensor map may use (lower case).
_ABSOLUTE_ZERO = {"degc": -273.15, "°c": -273.15, "c": -273.15, "celsius": -273.15,
                  "k": 0.0, "kelvin": 0.0, "degf": -459.67, "°f": -459.67, "f": -459.67,
                  "fahrenheit": -459.67}


def solve_unit_responses(mesh: TetMesh, thermal: Mapping[str, Any],
                         regions: Mapping[str, Any], meters_per_unit: float
                         ) -> tuple[list[str], FloatArray]:
    """Steady temperature for a unit value of each unknown input.

    Args:
        mesh: the tetrahedral mesh, metres.
        thermal: the ``[model.thermal]`` table.
        regions: the ``[model.regions]`` tables.
        meters_per_unit: the stage's metres per unit (regions are in stage units).

    Returns:
        The input names (``source:NAME`` in W, ``fixed:NAME`` and ``ambient`` in degrees) and
        their responses, (n_nodes, k) float64.

    Raises:
        FieldError: a bad key or number (see :func:`~twin3d.fields.config.check_model`), a
            region that selects no facet, or convection left with no facet.
    """
    names, responses, _ = _solve(mesh, thermal, regions, meters_per_unit)
    return names, responses


def _solve(mesh: TetMesh, thermal: Mapping[str, Any], regions: Mapping[str, Any],
           meters_per_unit: float) -> tuple[list[str], FloatArray, tuple[RegionReport, ...]]:
    """:func:`solve_unit_responses` plus what each region selected."""
    from skfem import ElementTetP1, FacetBasis, asm
    from skfem.models.poisson import laplace, mass, unit_load

    check_model({"regions": regions, "thermal": thermal})
    m = mesh.to_skfem()
    elem = ElementTetP1()
    A = float(thermal.get("conductivity", 1.0)) * assemble(
        laplace, m, elem, intorder=0, chunk=200_000,
        progress=lambda done: step("assembling", done, m.nelements))
    n = A.shape[0]
    names: list[str] = []
    rhs: list[FloatArray] = []
    reports: list[RegionReport] = []
    used = np.zeros(m.facets.shape[1], dtype=bool)
    for name in thermal.get("sources", []):
        facets = select_facets(m, name, regions[name], meters_per_unit)
        reports.append(report_region(m, name, "source", facets))
        used[facets] = True
        fb = FacetBasis(m, elem, facets=facets)
        names.append(f"source:{name}")
        rhs.append(np.asarray(asm(unit_load, fb)) / reports[-1].area)  # 1 W over the region
    fixed_nodes: list[npt.NDArray[np.int64]] = []
    for name in thermal.get("fixed", []):
        facets = select_facets(m, name, regions[name], meters_per_unit)
        reports.append(report_region(m, name, "fixed", facets))
        used[facets] = True
        fixed_nodes.append(np.unique(m.facets[:, facets]).astype(np.int64))
    conv = thermal.get("convection")
    ambient_rhs = None
    if conv is not None:
        h = float(conv["h"])
        where = conv.get("region", "rest")
        if where == "rest":
            facets = np.asarray(m.boundary_facets(), dtype=np.int64)
            facets = facets[~used[facets]]
            if not len(facets):
                raise FieldError("[model.thermal.convection]: no facet is left for convection: "
                                 "the sources and fixed regions cover the whole boundary; "
                                 "narrow them, or give convection a region")
        else:
            facets = select_facets(m, where, regions[where], meters_per_unit)
        reports.append(report_region(m, where, "convection", facets))
        fb = FacetBasis(m, elem, facets=facets)
        A = A + h * asm(mass, fb)
        ambient_rhs = h * np.asarray(asm(unit_load, fb))
    D = np.unique(np.concatenate(fixed_nodes)) if fixed_nodes else np.empty(0, dtype=np.int64)
    inner = np.setdiff1d(np.arange(n), D)
    A = sp.csr_matrix(A)
    # one right-hand side per input; a fixed region's unit temperature is lifted to the rhs
    lifts = np.zeros((n, len(rhs) + len(fixed_nodes) + (ambient_rhs is not None)))
    for j, f in enumerate(rhs):
        lifts[:, j] = f
    X = np.zeros_like(lifts)
    for j, nodes in enumerate(fixed_nodes):
        col = len(rhs) + j
        X[nodes, col] = 1.0
        lifts[:, col] = -(A[:, D] @ X[D, col])
        names.append(f"fixed:{thermal['fixed'][j]}")
    if ambient_rhs is not None:
        names.append("ambient")
        lifts[:, -1] = ambient_rhs
    step("solving", 0, lifts.shape[1])
    X[inner] = solve_spd(A[inner][:, inner], lifts[inner],
                         progress=lambda done: step("solving", done, lifts.shape[1]))
    return names, X, tuple(reports)


@dataclass(frozen=True)
class FittedInputs:
    """The physical inputs a heat model fits to a set of readings, and what is wrong with them.

    Attributes:
        values: ``{input name: fitted value}`` (``source:NAME`` in W, ``fixed:NAME`` and
            ``ambient`` in the sensors' unit), in :attr:`HeatModel.inputs` order.
        units: ``{input name: unit}``.
        sigma: ``{input name: standard deviation}`` of each fit from the sensor noise alone.
        problems: one line per physically impossible value (empty when all are plausible):
            a temperature below absolute zero, or a heat source that takes heat out (fitted
            below zero by more than two sigma).
        flagged: the same lines by the input they are about, ``{input name: problem}``.
    """

    values: dict[str, float]
    units: dict[str, str]
    sigma: dict[str, float]
    problems: tuple[str, ...]
    flagged: dict[str, str] = field(default_factory=dict)

    @property
    def plausible(self) -> bool:
        """True when there is no problem."""
        return not self.problems


class HeatModel(LinearFieldModel):
    """Temperature field from a steady-conduction model fitted to temperature sensors.

    Build it with :meth:`build` (or :func:`twin3d.fields.build_models`).

    Attributes:
        inputs: the fitted unknowns (``source:heater`` W, ``fixed:clamp``, ``ambient`` degrees).
        amplitudes: (k,) the inputs' values fitted at the last update.
        noise: the sensors' standard deviation (their unit) the sigma assumes.
        regions: what each region selected on the FEM mesh (:class:`RegionReport`).

    An update whose fitted inputs are physically impossible (see :meth:`fitted_inputs`)
    issues an :class:`~twin3d.fields.base.ImplausibleInputWarning`, once until they are
    plausible again.
    """

    quantity = "temperature"

    def __init__(self, channels: Sequence[str], W: npt.ArrayLike, unit: str, *,
                 inputs: Sequence[str], fit: FloatArray, var_physics: FloatArray,
                 residual: FloatArray | None = None, kriging: KrigingSolution | None = None,
                 noise: float = 0.0, response: FloatArray | None = None,
                 regions: Sequence[RegionReport] = ()) -> None:
        super().__init__(channels, W, unit)
        self.inputs = list(inputs)
        self.response = None if response is None else np.asarray(response)  # (m, k): A
        self.regions = tuple(regions)
        self.noise = float(noise)
        self._fit = np.asarray(fit)            # (k, m): amplitudes = fit @ values
        self._fit_sigma = self.noise * np.linalg.norm(self._fit, axis=1)  # (k,) from noise
        self._var_physics = np.asarray(var_physics)  # (n,) noise-driven, for unit noise
        self._residual = residual              # (m, m): residual = residual @ values
        self._kriging = kriging
        self.amplitudes = np.full(len(self.inputs), np.nan)
        self._flagged: set[str] = set()
        self._sig_physics: npt.NDArray[np.float32] | None = None
        self._sig_buffer = np.empty(0, dtype=np.float32)
        self._k_var = np.empty(0, dtype=np.float32)

    @classmethod
    def build(cls, points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
              sensors: Sequence[Any], config: Mapping[str, Any], *,
              mesh: TetMesh | None = None, snap_tolerance: float | None = None) -> HeatModel:
        """Mesh the part, solve the unit responses and fold the fit into ``W``.

        Args:
            points: (n, 3) surface vertices, stage units (closed surface).
            faces: (f, 3) triangles.
            meters_per_unit: the stage's metres per unit.
            sensors: the temperature :class:`~twin3d.model.Sensor` objects on this mesh.
            config: the whole ``[model]`` table (``thermal`` and ``regions`` are read).
            mesh: a ready tetrahedral mesh of the part (metres); by default TetGen makes one.
            snap_tolerance: largest distance (metres) from a sensor position to the surface
                (default: 5 mm, as ``twin3d bind``).

        Raises:
            FieldError: no ``[model.thermal]``, a bad key, fewer sensors than unknowns, a
                sensor off the part, bad regions.

        Warns:
            RegionWarning: a region that selects facets on several surface patches.
        """
        check_model(config)
        thermal = config.get("thermal")
        if not isinstance(thermal, Mapping):
            raise FieldError("the [model] section has no [model.thermal] table")
        if not sensors:
            raise FieldError("a heat model needs temperature sensors on the mesh")
        units = {s.unit for s in sensors}
        if len(units) != 1:
            raise FieldError(f"temperature sensors mix units {sorted(units)}; use one unit")
        pts = np.asarray(points, dtype=np.float64)
        pts_m = pts * meters_per_unit
        pos, vert = sensor_locations(sensors, pts_m, meters_per_unit, faces,
                                     tolerance_m=snap_tolerance)
        with build_progress("heat model"):
            if mesh is None:
                step("meshing")
                regions = config.get("regions", {})
                used = set(thermal.get("sources", [])) | set(thermal.get("fixed", []))
                borders = region_borders(pts_m, faces, {r: regions[r] for r in used},
                                         meters_per_unit)
                mesh = tetrahedralize(pts, faces, meters_per_unit,
                                      target_tets=int(thermal.get("tets", 20000)),
                                      quality=mesh_quality(thermal),
                                      spots=np.concatenate([pos, borders]))
            names, U, reports = _solve(mesh, thermal, config.get("regions", {}),
                                       meters_per_unit)
        warn_regions(reports, stacklevel=2)
        if mesh.n_surface == len(pts) and np.allclose(mesh.nodes[: len(pts)], pts_m):
            B = U[: len(pts)]
        else:
            B = probe_matrix(mesh.nodes, mesh.tets, pts_m) @ U
        A = probe_matrix(mesh.nodes, mesh.tets, pos) @ U  # (m, k)
        m, k = A.shape
        if m < k:
            raise FieldError(f"the thermal model has {k} unknown inputs ({', '.join(names)}) but "
                             f"only {m} temperature sensors: add sensors or drop inputs")
        G = A.T @ A
        G += 1e-12 * np.trace(G) / k * np.eye(k)
        Ginv = np.linalg.inv(G)
        fit = Ginv @ A.T  # (k, m)
        W = _rows_times(B, fit)
        var_physics = np.einsum("ij,jk,ik->i", B, Ginv, B)
        noise = float(thermal.get("noise", 0.1))
        residual = kriging = None
        if thermal.get("residual_kriging", True) and m > k:
            residual = np.eye(m) - A @ fit
            size = float(np.linalg.norm(np.ptp(pts_m, axis=0)))
            rng = thermal.get("kriging_range")
            range_m = size / 5 if rng is None else float(rng) * meters_per_unit
            kriging = krige(pts_m, faces, vert, range_m, float(thermal.get("nugget", 1e-2)))
            W += _rows_times(kriging.W, residual)
        model = cls([s.channel for s in sensors], W, next(iter(units)), inputs=names, fit=fit,
                    var_physics=var_physics, residual=residual, kriging=kriging, noise=noise,
                    response=A, regions=reports)
        model.mesh = MeshReport(len(mesh.tets), len(mesh.nodes), mesh.smallest_feature)
        return model

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays that define the model (for the on-disk cache); see :meth:`from_arrays`."""
        out = super().to_arrays() | {
            "inputs": np.asarray(self.inputs, dtype=str), "fit": self._fit,
            "var_physics": self._var_physics, "noise": np.asarray(self.noise)}
        if self.response is not None:
            out["response"] = self.response
        if self._kriging is not None and self._residual is not None:
            out["residual"] = self._residual
            out |= {f"kriging_{k}": v for k, v in self._kriging.to_arrays().items()}
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_arrays`' output.

        Raises:
            KeyError: an array is missing (a file written by another version).
        """
        kriging = None
        if "residual" in arrays:
            kriging = KrigingSolution.from_arrays(
                {k.removeprefix("kriging_"): v for k, v in arrays.items()
                 if k.startswith("kriging_")})
        model = cls([str(c) for c in arrays["channels"]], arrays["W"], str(arrays["unit"]),
                    inputs=[str(i) for i in arrays["inputs"]], fit=arrays["fit"],
                    var_physics=arrays["var_physics"], residual=arrays.get("residual"),
                    kriging=kriging, noise=float(arrays["noise"]),
                    response=arrays.get("response"))
        model.regions = reports_from_arrays(arrays)
        model.mesh = MeshReport.from_arrays(arrays)
        return model

    def input_unit(self, name: str) -> str:
        """Unit of an input: ``"W"`` for a source, the sensors' unit for a temperature."""
        return "W" if name.startswith("source:") else self.unit

    def fitted_inputs(self, values: Mapping[str, float] | npt.ArrayLike | None = None
                      ) -> FittedInputs:
        """The inputs fitted to readings, and the physically impossible ones.

        Nothing is stored: the model's values, field and warnings are left as they are.

        Args:
            values: readings as :meth:`update` takes them (a partial mapping is applied on
                top of the latest values); by default the latest values.

        Returns:
            The fitted values, their units and noise sigma, and one line per problem.

        Raises:
            FieldError: as :meth:`update` (unknown channel, value not a finite number).

        Examples:
            >>> check = heat.fitted_inputs({"plate/tc1": 41.5})   # doctest: +SKIP
            >>> check.values["ambient"], check.problems           # doctest: +SKIP
            (21.3, ())
        """
        raw = self.values if values is None else self._merge(values)
        amps = self._fit @ self._filled(raw)
        found = self._problems(amps)
        return FittedInputs(values=dict(zip(self.inputs, amps.tolist(), strict=True)),
                            units={n: self.input_unit(n) for n in self.inputs},
                            sigma=dict(zip(self.inputs, self._fit_sigma.tolist(), strict=True)),
                            problems=tuple(text for _, text in found), flagged=dict(found))

    def _problems(self, amps: FloatArray) -> list[tuple[str, str]]:
        """``(input, one-line problem)`` for each implausible fitted input."""
        zero = _ABSOLUTE_ZERO.get(self.unit.strip().lower())
        out = []
        for name, a, s in zip(self.inputs, amps, self._fit_sigma, strict=True):
            if name.startswith("source:"):
                if a < -max(2.0 * s, 1e-9):
                    text = (f"heat source {name[7:]!r} fitted at {a:.3g} W, below zero beyond "
                            f"the noise (2 sigma = {2 * s:.2g} W): a source only heats; check "
                            "the sensors near it or the region")
                    out.append((name, text))
            elif zero is not None and a < zero:
                what = "ambient" if name == "ambient" else f"fixed region {name[6:]!r}"
                text = (f"{what} fitted at {a:.1f} {self.unit}, below absolute zero ({zero:g} "
                        f"{self.unit}): check the sensors' readings and units, and the "
                        "[model.thermal] regions")
                out.append((name, text))
        return out

    def _after_update(self, v: FloatArray, field: npt.NDArray[np.float32]) -> None:
        self.amplitudes = self._fit @ v
        if self._sig_physics is None:  # float32 copies made once; sigma reuses one buffer
            self._sig_physics = (self.noise**2 * self._var_physics).astype(np.float32)
            self._sig_buffer = np.sqrt(self._sig_physics)
            if self._kriging is not None:
                self._k_var = self._kriging.var.astype(np.float32)
        self._warn_implausible()
        if self._kriging is None or self._residual is None:
            self._sigma = self._sig_buffer  # noise-driven only: the same for every update
            return
        r = self._residual @ v
        dof = max(len(v) - len(self.inputs), 1)
        s2 = np.float32(float(r @ self._kriging.Rinv @ r) / dof)
        buf = self._sig_buffer
        np.multiply(self._k_var, s2, out=buf)
        buf += self._sig_physics
        np.sqrt(buf, out=buf)
        self._sigma = buf

    def _warn_implausible(self) -> None:
        """Warn once per input that turns implausible (called by :meth:`update`)."""
        found = self._problems(self.amplitudes)
        new = [text for name, text in found if name not in self._flagged]
        self._flagged = {name for name, _ in found}
        if new:  # user -> update -> _after_update -> here
            warnings.warn(ImplausibleInputWarning("; ".join(new)), stacklevel=4)


def _rows_times(X: FloatArray, Y: FloatArray, rows: int = 65536) -> npt.NDArray[np.float32]:
    """``X @ Y`` as float32 Fortran order, a block of rows at a time (no float64 n × m temp)."""
    out = np.empty((X.shape[0], Y.shape[1]), dtype=np.float32, order="F")
    for i in range(0, X.shape[0], rows):
        out[i:i + rows] = X[i:i + rows] @ Y
    return out

