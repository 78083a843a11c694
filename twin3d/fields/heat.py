"""Steady heat conduction fitted to thermocouples: the physics basis of a temperature field.

The part's steady temperature is linear in its unknown inputs: the power of each heat source,
the temperature of each fixed-temperature face, the ambient temperature of the convection.
One P1 finite-element solve (scikit-fem) per unknown gives a unit response; each update
least-squares fits the amplitudes to the readings, and since that fit is linear too, the
whole chain is folded into ``W = B (AᵀA)⁻¹Aᵀ`` (``B`` the responses at the vertices, ``A`` at
the sensors). With ``residual_kriging`` the misfit the physics cannot explain is kriged on the
surface and added, and sigma widens where the model misfits.

``[model.thermal]`` keys (see :mod:`twin3d.fields` for the whole schema)::

    conductivity = 16.0        # W/(m K)
    noise = 0.2                # sensor standard deviation, sensors' unit
    tets = 20000               # rough tetrahedron count of the FEM mesh
    mesh_quality = [2.0, 10.0] # TetGen radius-edge ratio, min dihedral angle (looser: fewer tets)
    residual_kriging = true    # physics + kriged residual (widens sigma where it misfits)
    kriging_range = 80.0       # stage units; default: a fifth of the part's diagonal
    sources = ["heater"]       # regions with an unknown heat input (W, spread over the area)
    fixed = ["clamp"]          # regions at an unknown uniform temperature
    [model.thermal.convection] # to an unknown ambient temperature
    h = 10.0                   # W/(m² K)
    region = "rest"            # "rest" = every boundary facet not in sources/fixed (default)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from twin3d.errors import FieldError
from twin3d.fields.base import LinearFieldModel, sensor_locations
from twin3d.fields.kriging import KrigingSolution, krige
from twin3d.fields.mesh import TetMesh, facet_geometry, probe_matrix, select_facets

__all__ = ["HeatModel", "solve_unit_responses"]

FloatArray = npt.NDArray[np.float64]


def _regions(config: Mapping[str, Any]) -> Mapping[str, Any]:
    regions = config.get("regions", {})
    if not isinstance(regions, Mapping):
        raise FieldError("[model.regions] must be a table of named regions")
    return regions


def _region(regions: Mapping[str, Any], name: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(name, str) or name not in regions:
        raise FieldError(f"{where}: region {name!r} is not defined; add [model.regions.{name}] "
                         f"(defined: {', '.join(sorted(regions)) or 'none'})")
    region = regions[name]
    if not isinstance(region, Mapping):
        raise FieldError(f"[model.regions.{name}] must be a table")
    return region


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
        FieldError: a missing region, bad numbers, or a problem with no reference temperature.
    """
    from skfem import Basis, ElementTetP1, FacetBasis, asm
    from skfem.models.poisson import laplace, mass, unit_load

    m = mesh.to_skfem()
    elem = ElementTetP1()
    basis = Basis(m, elem)
    try:
        k = float(thermal.get("conductivity", 1.0))
    except (TypeError, ValueError):
        raise FieldError("[model.thermal] conductivity must be a number, W/(m K)") from None
    if not k > 0:
        raise FieldError("[model.thermal] conductivity must be > 0, W/(m K)")
    A = k * asm(laplace, basis)
    n = A.shape[0]
    names: list[str] = []
    rhs: list[FloatArray] = []
    dirichlet: list[npt.NDArray[np.int64]] = []
    used = np.zeros(m.facets.shape[1], dtype=bool)
    for name in thermal.get("sources", []):
        facets = select_facets(m, name, _region(regions, name, "[model.thermal] sources"),
                               meters_per_unit)
        used[facets] = True
        area = float(facet_geometry(m, facets)[2].sum())
        fb = FacetBasis(m, elem, facets=facets)
        names.append(f"source:{name}")
        rhs.append(np.asarray(asm(unit_load, fb)) / area)  # 1 W spread over the region
        dirichlet.append(np.empty(0, dtype=np.int64))
    fixed_nodes: list[npt.NDArray[np.int64]] = []
    for name in thermal.get("fixed", []):
        facets = select_facets(m, name, _region(regions, name, "[model.thermal] fixed"),
                               meters_per_unit)
        used[facets] = True
        fixed_nodes.append(np.unique(m.facets[:, facets]).astype(np.int64))
    conv = thermal.get("convection")
    ambient_rhs = None
    if conv is not None:
        if not isinstance(conv, Mapping) or "h" not in conv:
            raise FieldError("[model.thermal.convection] needs h = <W/(m² K)>")
        h = float(conv["h"])
        if not h > 0:
            raise FieldError("[model.thermal.convection] h must be > 0, W/(m² K)")
        where = conv.get("region", "rest")
        if where == "rest":
            facets = np.asarray(m.boundary_facets())
            facets = facets[~used[facets]]
        else:
            facets = select_facets(m, where, _region(regions, where, "convection"),
                                   meters_per_unit)
        fb = FacetBasis(m, elem, facets=facets)
        A = A + h * asm(mass, fb)
        ambient_rhs = h * np.asarray(asm(unit_load, fb))
    if not fixed_nodes and ambient_rhs is None:
        raise FieldError("[model.thermal] has no reference temperature: add fixed regions or "
                         "[model.thermal.convection]")
    D = np.unique(np.concatenate(fixed_nodes)) if fixed_nodes else np.empty(0, dtype=np.int64)
    inner = np.setdiff1d(np.arange(n), D)
    A = sp.csr_matrix(A)
    lu = splu(A[inner][:, inner].tocsc())
    A_id = A[inner][:, D]
    columns: list[FloatArray] = []

    def solve(f: FloatArray, xd: FloatArray) -> FloatArray:
        x = np.zeros(n)
        x[D] = xd
        x[inner] = lu.solve(f[inner] - (A_id @ xd if len(D) else 0.0))
        return x

    for f in rhs:
        columns.append(solve(f, np.zeros(len(D))))
    for j, nodes in enumerate(fixed_nodes):
        xd = np.zeros(n)
        xd[nodes] = 1.0
        names.append(f"fixed:{thermal['fixed'][j]}")
        columns.append(solve(np.zeros(n), xd[D]))
    if ambient_rhs is not None:
        names.append("ambient")
        columns.append(solve(ambient_rhs, np.zeros(len(D))))
    return names, np.stack(columns, axis=1)


class HeatModel(LinearFieldModel):
    """Temperature field from a steady-conduction model fitted to temperature sensors.

    Build it with :meth:`build` (or :func:`twin3d.fields.build_models`).

    Attributes:
        inputs: the fitted unknowns (``source:heater`` W, ``fixed:clamp``, ``ambient`` degrees).
        amplitudes: (k,) the inputs' values fitted at the last update.
    """

    quantity = "temperature"

    def __init__(self, channels: Sequence[str], W: npt.ArrayLike, unit: str, *,
                 inputs: Sequence[str], fit: FloatArray, var_physics: FloatArray,
                 residual: FloatArray | None = None, kriging: KrigingSolution | None = None,
                 noise: float = 0.0, response: FloatArray | None = None) -> None:
        super().__init__(channels, W, unit)
        self.inputs = list(inputs)
        self.response = None if response is None else np.asarray(response)  # (m, k): A
        self._fit = np.asarray(fit)            # (k, m): amplitudes = fit @ values
        self._var_physics = np.asarray(var_physics)  # (n,) noise-driven, for unit noise
        self._residual = residual              # (m, m): residual = residual @ values
        self._kriging = kriging
        self._noise = float(noise)
        self.amplitudes = np.full(len(self.inputs), np.nan)
        self._sig_physics: npt.NDArray[np.float32] | None = None
        self._sig_buffer = np.empty(0, dtype=np.float32)
        self._k_var = np.empty(0, dtype=np.float32)

    @classmethod
    def build(cls, points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
              sensors: Sequence[Any], config: Mapping[str, Any], *,
              mesh: TetMesh | None = None) -> HeatModel:
        """Mesh the part, solve the unit responses and fold the fit into ``W``.

        Args:
            points: (n, 3) surface vertices, stage units (closed surface).
            faces: (f, 3) triangles.
            meters_per_unit: the stage's metres per unit.
            sensors: the temperature :class:`~twin3d.model.Sensor` objects on this mesh.
            config: the whole ``[model]`` table (``thermal`` and ``regions`` are read).
            mesh: a ready tetrahedral mesh of the part (metres); by default TetGen makes one.

        Raises:
            FieldError: no ``[model.thermal]``, fewer sensors than unknowns, bad regions.
        """
        thermal = config.get("thermal")
        if not isinstance(thermal, Mapping):
            raise FieldError("the [model] section has no [model.thermal] table")
        if not sensors:
            raise FieldError("a heat model needs temperature sensors on the mesh")
        units = {s.unit for s in sensors}
        if len(units) != 1:
            raise FieldError(f"temperature sensors mix units {sorted(units)}; use one unit")
        pts = np.asarray(points, dtype=np.float64)
        if mesh is None:
            mesh = _tetrahedralize(pts, faces, meters_per_unit, int(thermal.get("tets", 20000)),
                                   _quality(thermal, "[model.thermal]"))
        names, U = solve_unit_responses(mesh, thermal, _regions(config), meters_per_unit)
        pts_m = pts * meters_per_unit
        if mesh.n_surface == len(pts) and np.allclose(mesh.nodes[: len(pts)], pts_m):
            B = U[: len(pts)]
        else:
            B = probe_matrix(mesh.nodes, mesh.tets, pts_m) @ U
        pos, vert = sensor_locations(sensors, pts_m, meters_per_unit)
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
        return cls([s.channel for s in sensors], W, next(iter(units)), inputs=names, fit=fit,
                   var_physics=var_physics, residual=residual, kriging=kriging, noise=noise,
                   response=A)

    def _after_update(self, v: FloatArray, field: npt.NDArray[np.float32]) -> None:
        self.amplitudes = self._fit @ v
        if self._sig_physics is None:  # float32 copies made once; sigma reuses one buffer
            self._sig_physics = (self._noise**2 * self._var_physics).astype(np.float32)
            self._sig_buffer = np.sqrt(self._sig_physics)
            if self._kriging is not None:
                self._k_var = self._kriging.var.astype(np.float32)
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


def _rows_times(X: FloatArray, Y: FloatArray, rows: int = 65536) -> npt.NDArray[np.float32]:
    """``X @ Y`` as float32 Fortran order, a block of rows at a time (no float64 n × m temp)."""
    out = np.empty((X.shape[0], Y.shape[1]), dtype=np.float32, order="F")
    for i in range(0, X.shape[0], rows):
        out[i:i + rows] = X[i:i + rows] @ Y
    return out


def _quality(table: Mapping[str, Any], where: str) -> tuple[float, float]:
    try:
        ratio, angle = (float(x) for x in table.get("mesh_quality", (2.0, 10.0)))
    except (TypeError, ValueError):
        raise FieldError(f"{where} mesh_quality must be [radius_edge_ratio, min_angle_deg], "
                         "e.g. [2.0, 10.0]") from None
    return ratio, angle


def _tetrahedralize(points: FloatArray, faces: npt.ArrayLike, meters_per_unit: float,
                    tets: int, quality: tuple[float, float]) -> TetMesh:
    from twin3d.fields.mesh import tetrahedralize

    return tetrahedralize(points, faces, meters_per_unit, target_tets=tets, quality=quality)
