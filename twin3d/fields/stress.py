"""Linear-elastic stress from load cells and strain gauges, with quadratic (P2) tetrahedra.

Each load case declared in the scene (a force on a region, or a pressure) is solved once
(scikit-fem, ``ElementTetP2``: linear tets lock in bending), all cases sharing one
factorisation or multigrid hierarchy (:mod:`twin3d.fields.fem` picks the solver by size).
The nodal stress comes from superconvergent patch recovery on the surface, with free surfaces
held traction-free (:mod:`twin3d.fields.recovery`), and is read at the surface vertices: a
unit stress field per case.
Live inputs give the case amplitudes linearly: a load-cell channel scales its case directly,
and strain-gauge channels identify the cases that have no load cell by least squares (never by
interpolating stress between gauges). So the six stress-tensor components are ``W @ values``;
von Mises is computed per vertex from them on each update. The displacement is linear in the
readings too: :meth:`StressModel.displacement` is ``U @ values``, in stage units, for showing
the (exaggerated) deformed shape.

``[model.stress]`` keys (see :mod:`twin3d.fields` for the whole schema)::

    E = 200e9                 # Young's modulus, Pa
    nu = 0.3                  # Poisson's ratio
    unit = "MPa"              # output unit: Pa, kPa, MPa, GPa or psi
    tets = 4000               # rough tetrahedron count of the FEM mesh
    mesh_quality = [2.0, 10.0] # TetGen radius-edge ratio, min dihedral angle
    fixed = ["clamp"]         # regions held fixed (all displacement components zero)
    gauge_direction = [1, 0, 0]               # measuring direction of the strain gauges
    gauge_directions = { "plate/sg2" = [0, 1, 0] }   # per-gauge overrides
    [[model.stress.load]]
    name = "press"
    region = "pad"
    force = [0, 0, -1]        # N per channel unit, spread evenly over the region
    # pressure = 1.0          # or: Pa per channel unit, pushing into the surface
    channel = "plate/load"    # a load cell scales it; omit to identify it from the gauges
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from twin3d.errors import FieldError
from twin3d.fields.base import (
    LinearFieldModel,
    MeshReport,
    RegionReport,
    matvec,
    reports_from_arrays,
    sensor_locations,
    warn_regions,
)
from twin3d.fields.config import STRESS_UNITS, check_model, mesh_quality
from twin3d.fields.fem import assemble, rigid_body_modes, solve_spd
from twin3d.fields.mesh import (
    TetMesh,
    probe_matrix,
    region_borders,
    report_region,
    select_facets,
    tetrahedralize,
)
from twin3d.fields.progress import build_progress, step
from twin3d.fields.recovery import (
    nodal_stress,
    stress_samples,
    traction_free_projectors,
)

__all__ = ["COMPONENTS", "FORCE_UNITS", "STRAIN_UNITS", "StressModel", "solve_load_cases",
           "stiffness_matrix", "strain_from_stress", "von_mises"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: Order of the stress-tensor components in ``StressModel.W``'s row blocks.
COMPONENTS = ("xx", "yy", "zz", "xy", "yz", "zx")
#: Load-cell units and their size in N.
FORCE_UNITS = {"N": 1.0, "kN": 1e3, "lbf": 4.4482216152605}
#: Strain-gauge units and their size in m/m.
STRAIN_UNITS = {"strain": 1.0, "m/m": 1.0, "ustrain": 1e-6, "µε": 1e-6, "microstrain": 1e-6,
                "ue": 1e-6}


def von_mises(s: npt.ArrayLike, out: F32 | None = None) -> F32:
    """Von Mises stress from (6, n) components in :data:`COMPONENTS` order."""
    s = np.asarray(s)
    xx, yy, zz, xy, yz, zx = s
    t = (xx - yy) ** 2
    t += (yy - zz) ** 2
    t += (zz - xx) ** 2
    t *= 0.5
    t += 3.0 * (xy * xy + yz * yz + zx * zx)
    if out is not None:
        np.sqrt(t, out=out)
        return out
    return np.asarray(np.sqrt(t), dtype=np.float32)


def solve_load_cases(mesh: TetMesh, stress: Mapping[str, Any], regions: Mapping[str, Any],
                     meters_per_unit: float) -> tuple[list[str], FloatArray, FloatArray]:
    """Displacement and stress at the mesh nodes for each load case at unit amplitude.

    Args:
        mesh: the tetrahedral mesh, metres.
        stress: the ``[model.stress]`` table.
        regions: the ``[model.regions]`` tables.
        meters_per_unit: the stage's metres per unit.

    Returns:
        Case names, displacements (n_nodes, 3, k) in metres and stresses (n_nodes, 6, k) in Pa
        (components in :data:`COMPONENTS` order), at the vertices of the tetrahedra.

    Raises:
        FieldError: a bad key or number (see :func:`~twin3d.fields.config.check_model`), or a
            region that selects no facet.
    """
    names, disp, sig, _ = _solve(mesh, stress, regions, meters_per_unit)
    return names, disp, sig


def stiffness_matrix(mesh: Any, E: float, nu: float) -> sp.csr_matrix:
    """The P2 linear-elastic stiffness matrix of a ``skfem.MeshTet`` (metres, Pa).

    Args:
        mesh: the skfem mesh.
        E: Young's modulus, Pa.
        nu: Poisson's ratio.

    Returns:
        (n_dofs, n_dofs) CSR, unknowns numbered node by node (see
        :func:`~twin3d.fields.fem.rigid_body_modes`), no boundary conditions.
    """
    from skfem import BilinearForm, ElementTetP2, ElementVector
    from skfem.models.elasticity import lame_parameters

    lam, mu = lame_parameters(E, nu)

    @BilinearForm  # type: ignore[untyped-decorator]
    def elasticity(u: Any, v: Any, w: Any) -> Any:
        # A vector P2 basis function has one nonzero component: a for u, b for v. Then
        # eps(u):eps(v) = (delta_ab grad u_a . grad v_b + du_a/dx_b dv_b/dx_a) / 2, far cheaper
        # than skfem's full-tensor form (which dominated the setup time).
        a = int(np.argmax(np.abs(np.asarray(u)[:, 0, :]).sum(axis=1)))
        b = int(np.argmax(np.abs(np.asarray(v)[:, 0, :]).sum(axis=1)))
        g, h = u.grad, v.grad
        out = lam * g[a, a] * h[b, b] + mu * g[a, b] * h[b, a]
        if a == b:
            out += mu * (g[a, 0] * h[b, 0] + g[a, 1] * h[b, 1] + g[a, 2] * h[b, 2])
        return out

    # gradients of P2 are linear: their products need quadrature order 2, not skfem's 4
    return assemble(elasticity, mesh, ElementVector(ElementTetP2()), intorder=2,
                    progress=lambda done: step("assembling", done, mesh.nelements))


def _solve(mesh: TetMesh, stress: Mapping[str, Any], regions: Mapping[str, Any],
           meters_per_unit: float
           ) -> tuple[list[str], FloatArray, FloatArray, tuple[RegionReport, ...]]:
    """:func:`solve_load_cases` plus what each region selected."""
    from skfem import Basis, ElementTetP2, ElementVector, FacetBasis, LinearForm, asm
    from skfem.helpers import dot
    from skfem.models.elasticity import lame_parameters

    check_model({"regions": regions, "stress": stress})
    E, nu = float(stress["E"]), float(stress.get("nu", 0.3))
    loads = stress["load"]
    m = mesh.to_skfem()
    elem = ElementVector(ElementTetP2())
    lam, mu = lame_parameters(E, nu)
    K = stiffness_matrix(m, E, nu)
    reports: list[RegionReport] = []
    fixed = []
    for r in stress["fixed"]:
        fixed.append(select_facets(m, r, regions[r], meters_per_unit))
        reports.append(report_region(m, r, "fixed", fixed[-1]))
    dofs = Basis(m, elem, elements=np.arange(1))  # the global numbering, no element tables
    D = dofs.get_dofs(facets=np.concatenate(fixed)).all()
    inner = np.setdiff1d(np.arange(K.shape[0]), D)
    names, rhs, loaded = [], [], []
    for i, load in enumerate(loads):
        name = str(load.get("name", f"load{i + 1}"))
        facets = select_facets(m, load["region"], regions[load["region"]], meters_per_unit)
        loaded.append(facets)
        reports.append(report_region(m, load["region"], f"load {name}", facets))
        fb = FacetBasis(m, elem, facets=facets)
        if "force" in load:
            traction = np.asarray(load["force"], dtype=np.float64) / reports[-1].area

            @LinearForm  # type: ignore[untyped-decorator]
            def form(v: Any, w: Any, t: FloatArray = traction) -> Any:
                return t[0] * v[0] + t[1] * v[1] + t[2] * v[2]
        else:  # checked: exactly one of force and pressure
            p = float(load["pressure"])

            @LinearForm  # type: ignore[untyped-decorator]
            def form(v: Any, w: Any, p: float = p) -> Any:
                return -p * dot(w.n, v)
        names.append(name)
        rhs.append(np.asarray(asm(form, fb)))
    U = np.zeros((K.shape[0], len(rhs)))
    step("solving load cases", 0, len(rhs))
    A = K[inner][:, inner]
    del K
    U[inner] = solve_spd(A, np.stack(rhs, axis=1)[inner], block_size=3,
                         near_nullspace=rigid_body_modes(m, U.shape[0])[inner],
                         progress=lambda done: step("solving load cases", done, len(rhs)))
    del A
    step("recovering stresses")
    samples, where, weight = stress_samples(m, elem, U, lam, mu)
    free = traction_free_projectors(m, fixed + loaded)
    sig = nodal_stress(m, samples, where, weight, free)
    disp = np.ascontiguousarray(U[: 3 * m.p.shape[1]].reshape(-1, 3, len(rhs)))
    return names, disp, sig, tuple(reports)


def strain_from_stress(s: FloatArray, E: float, nu: float) -> FloatArray:
    """(6, ...) stress -> (3, 3, ...) strain tensor (isotropic, linear)."""
    xx, yy, zz, xy, yz, zx = s
    tr = xx + yy + zz
    full = np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])
    eye = np.eye(3).reshape((3, 3) + (1,) * (full.ndim - 2))
    return np.asarray(((1 + nu) * full - nu * tr * eye) / E, dtype=np.float64)


class StressModel(LinearFieldModel):
    """Von Mises stress from load cells and strain gauges (linear elasticity, P2 tets).

    ``W`` is (6 n, c) float32, column-major: row block ``i`` is stress component
    ``COMPONENTS[i]`` at the n vertices, in ``unit`` per channel unit, so :attr:`n_vertices`
    is ``W.shape[0] // 6``. :meth:`update` returns the von Mises stress (n,); :attr:`tensor`
    holds the (6, n) components of the last update.

    ``U`` is (3 n, c) float32, column-major, vertex-interleaved (row ``3 i + j`` is component
    ``j`` of vertex ``i``), in **stage units** per channel unit: :meth:`displacement` returns
    ``(U @ values).reshape(n, 3)``, so the deformed surface is ``points + scale *
    model.displacement(values)`` with the points in stage units as the stage stores them.

    Attributes:
        cases: load-case names; ``amplitudes`` their values at the last update.
        regions: what each region selected on the FEM mesh (:class:`RegionReport`).
        U: the displacement map (3 n, c) float32, or None for a model made without one.
    """

    quantity = "von_mises"
    fill_mean = False

    def __init__(self, channels: Sequence[str], W: npt.ArrayLike, unit: str, *,
                 cases: Sequence[str], amplitude_map: FloatArray,
                 response: FloatArray | None = None,
                 regions: Sequence[RegionReport] = (), U: npt.ArrayLike | None = None) -> None:
        W = np.asarray(W)
        super().__init__(channels, W, unit)
        if self.W.shape[0] % 6:
            raise FieldError("a stress W must have 6 row blocks (xx, yy, zz, xy, yz, zx)")
        self.U: F32 | None = None
        if U is not None:
            self.U = np.asfortranarray(np.asarray(U, dtype=np.float32))
            if self.U.shape != (3 * (self.W.shape[0] // 6), len(self.channels)):
                raise FieldError(f"U has shape {self.U.shape}, expected "
                                 f"({self.W.shape[0] // 2}, {len(self.channels)})")
        self.cases = list(cases)
        self.inputs = self.cases
        self.response = None if response is None else np.asarray(response)  # (c, k)
        self.regions = tuple(regions)
        self._amp = np.asarray(amplitude_map)
        self.amplitudes = np.zeros(len(self.cases))
        self.tensor = np.zeros((6, self.W.shape[0] // 6), dtype=np.float32)
        self._out = np.empty(self.W.shape[0] // 6, dtype=np.float32)

    @property
    def n_vertices(self) -> int:
        """Number of mesh vertices the field has: a sixth of the rows of ``W``."""
        return int(self.W.shape[0] // 6)

    def update(self, values: Mapping[str, float] | npt.ArrayLike,
               out: F32 | None = None) -> F32:
        """Von Mises stress (n,) float32 in ``unit`` from the latest readings.

        Raises:
            FieldError: as :meth:`LinearFieldModel.update`.
        """
        v = self._set_values(values)
        self._v32[:] = v
        matvec(self.W, self._v32, self.tensor.reshape(-1))
        self.amplitudes = self._amp @ v
        return von_mises(self.tensor, out=self._out if out is None else out)

    def displacement(self, values: Mapping[str, float] | npt.ArrayLike | None = None,
                     out: F32 | None = None) -> F32:
        """Displacement (n_vertices, 3) float32 of each surface vertex, in stage units.

        Linear in the readings (``U @ values``, as the stresses are ``W @ values``). The model's
        stored values are not changed: a partial ``{channel: value}`` mapping is applied on top
        of the last update's values, and channels never received count as 0.

        Args:
            values: readings as for :meth:`update`; None: the last update's values.
            out: (n_vertices, 3) float32 C-contiguous array to write into (e.g. a view's
                displacement buffer); by default a new array.

        Returns:
            (n_vertices, 3) float32, stage units: ``points + scale * displacement`` is the
            shape deformed ``scale`` times (a view states its exaggeration factor).

        Raises:
            FieldError: the model has no displacement map (made without ``U``), or bad
                values (as :meth:`update`).
        """
        if self.U is None:
            raise FieldError("this StressModel has no displacement map (U); rebuild it with "
                             "StressModel.build")
        raw = self.values if values is None else self._merge(values)
        v = self._filled(raw).astype(np.float32)
        target = np.empty((self.n_vertices, 3), dtype=np.float32) if out is None else out
        if target.shape != (self.n_vertices, 3) or target.dtype != np.float32 or not (
                target.flags.c_contiguous):
            raise FieldError(f"out must be a C-contiguous ({self.n_vertices}, 3) float32 array")
        matvec(self.U, v, target.reshape(-1))
        return target

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays that define the model (for the on-disk cache); see :meth:`from_arrays`."""
        out = super().to_arrays() | {"cases": np.asarray(self.cases, dtype=str),
                                     "amplitude_map": self._amp}
        if self.response is not None:
            out["response"] = self.response
        if self.U is not None:
            out["U"] = self.U
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_arrays`' output.

        Raises:
            KeyError: an array is missing (a file written by another version).
        """
        model = cls([str(c) for c in arrays["channels"]], arrays["W"], str(arrays["unit"]),
                    cases=[str(c) for c in arrays["cases"]],
                    amplitude_map=arrays["amplitude_map"], response=arrays.get("response"),
                    regions=reports_from_arrays(arrays), U=arrays.get("U"))
        model.mesh = MeshReport.from_arrays(arrays)
        return model

    @classmethod
    def build(cls, points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
              sensors: Sequence[Any], config: Mapping[str, Any], *,
              mesh: TetMesh | None = None, snap_tolerance: float | None = None) -> StressModel:
        """Mesh the part, solve each load case and fold the amplitudes into ``W``.

        Args:
            points: (n, 3) surface vertices, stage units (closed surface).
            faces: (f, 3) triangles.
            meters_per_unit: the stage's metres per unit.
            sensors: force (load-cell) and strain (gauge) sensors on this mesh.
            config: the whole ``[model]`` table (``stress`` and ``regions`` are read).
            mesh: a ready tetrahedral mesh (metres); by default TetGen makes one.
            snap_tolerance: largest distance (metres) from a sensor position to the surface
                (default: 5 mm, as ``twin3d bind``).

        Raises:
            FieldError: no ``[model.stress]``, a bad key, unknown units or channels, too few
                gauges, a sensor off the part.

        Warns:
            RegionWarning: a region that selects facets on several surface patches.
        """
        check_model(config)
        stress = config.get("stress")
        if not isinstance(stress, Mapping):
            raise FieldError("the [model] section has no [model.stress] table")
        unit = str(stress.get("unit", "MPa"))
        pts = np.asarray(points, dtype=np.float64)
        pts_m = pts * meters_per_unit
        spots, _ = sensor_locations(sensors, pts_m, meters_per_unit, faces,
                                    tolerance_m=snap_tolerance)
        by_channel = {s.channel: s for s in sensors}
        loads = stress["load"]
        driven: dict[int, str] = {}
        for i, load in enumerate(loads):
            ch = load.get("channel")
            if ch is not None:
                if ch not in by_channel or by_channel[ch].quantity != "force":
                    raise FieldError(f"load case {load.get('name', i + 1)!r}: channel {ch!r} is "
                                     "not a force sensor of this mesh in the sensor map")
                if by_channel[ch].unit not in FORCE_UNITS:
                    raise FieldError(f"load cell {ch!r}: unit {by_channel[ch].unit!r} is not "
                                     f"one of {sorted(FORCE_UNITS)}")
                driven[i] = ch
        ident = [i for i in range(len(loads)) if i not in driven]
        gauges = [s for s in sensors if s.quantity == "strain"] if ident else []
        if len(gauges) < len(ident):
            raise FieldError(f"{len(ident)} load case(s) without a load cell need at least as "
                             f"many strain gauges; found {len(gauges)}")
        bad = [g.channel for g in gauges if g.unit not in STRAIN_UNITS]
        if bad:
            raise FieldError(f"strain gauges {bad}: unit must be one of {sorted(STRAIN_UNITS)}")
        with build_progress("stress model"):
            if mesh is None:
                step("meshing")
                regions = config.get("regions", {})
                used = set(stress["fixed"]) | {load["region"] for load in loads}
                borders = region_borders(pts_m, faces, {r: regions[r] for r in used},
                                         meters_per_unit)
                mesh = tetrahedralize(pts, faces, meters_per_unit,
                                      target_tets=int(stress.get("tets", 4000)),
                                      quality=mesh_quality(stress),
                                      spots=np.concatenate([spots, borders]))
            names, disp, sig, reports = _solve(mesh, stress, config.get("regions", {}),
                                               meters_per_unit)
        warn_regions(reports, stacklevel=2)
        if mesh.n_surface == len(pts) and np.allclose(mesh.nodes[: len(pts)], pts_m):
            S, D = sig[: len(pts)], disp[: len(pts)]
        else:
            P = probe_matrix(mesh.nodes, mesh.tets, pts_m)
            S = np.stack([P @ sig[:, :, k] for k in range(sig.shape[2])], axis=2)
            D = np.stack([P @ disp[:, :, k] for k in range(disp.shape[2])], axis=2)
        channels = [driven[i] for i in sorted(driven)] + [g.channel for g in gauges]
        col = {c: j for j, c in enumerate(channels)}
        amp = np.zeros((len(names), len(channels)))
        for i, ch in driven.items():
            amp[i, col[ch]] = FORCE_UNITS[by_channel[ch].unit]
        response = np.zeros((len(channels), len(names)))  # reading per unit of each case
        for i, ch in driven.items():
            response[col[ch], i] = 1.0 / FORCE_UNITS[by_channel[ch].unit]
        if ident:
            E, nu = float(stress["E"]), float(stress.get("nu", 0.3))
            default_dir = stress.get("gauge_direction", (1.0, 0.0, 0.0))
            dirs = stress.get("gauge_directions", {})
            pos, _ = sensor_locations(gauges, pts_m, meters_per_unit, faces,
                                      tolerance_m=snap_tolerance)
            P = probe_matrix(mesh.nodes, mesh.tets, pos)
            Gm = np.zeros((len(gauges), len(names)))  # strain per unit amplitude
            for k in range(len(names)):
                eps = strain_from_stress((P @ sig[:, :, k]).T, E, nu)  # (3, 3, g)
                for g, gauge in enumerate(gauges):
                    d = np.asarray(dirs.get(gauge.channel, default_dir), dtype=np.float64)
                    d = d / np.linalg.norm(d)
                    Gm[g, k] = d @ eps[:, :, g] @ d
            scale = np.array([STRAIN_UNITS[g.unit] for g in gauges])
            fit = np.linalg.pinv(Gm[:, ident])  # (ident, g)
            gcols = [col[g.channel] for g in gauges]
            for a, i in enumerate(ident):
                amp[i, gcols] = fit[a] * scale
                for j in driven:
                    amp[i] -= (fit[a] @ Gm[:, j]) * amp[j]
            response[gcols] = Gm / scale[:, None]
        factor = 1.0 / STRESS_UNITS[unit]
        # (n, 6, k) @ (k, c) -> (6, n, c) -> (6 n, c)
        W = np.einsum("nsk,kc->snc", S, amp).reshape(6 * len(pts), len(channels)) * factor
        # (n, 3, k) @ (k, c) -> (n, 3, c) -> (3 n, c), metres -> stage units
        U = (D.reshape(3 * len(pts), -1) @ amp) / meters_per_unit
        model = cls(channels, W, unit, cases=names, amplitude_map=amp, response=response,
                    regions=reports, U=U)
        model.mesh = MeshReport(len(mesh.tets), len(mesh.nodes), mesh.smallest_feature)
        return model
