"""Kriging on the surface mesh: a Matérn field from the cotangent Laplacian, with sigma.

The prior is the SPDE form of a Matérn field with smoothness ν = 1 on the surface
(Lindgren, Rue & Lindström 2011): precision ``Q = K C⁻¹ K`` with ``K = κ² C + G``, ``C`` the
lumped mass and ``G`` the cotangent stiffness matrix of the triangles, and range
``ρ = √8 / κ``. Distances follow the surface, so a field does not leak across a thin wall.
Ordinary kriging (constant unknown mean) gives weights linear in the readings, folded into
``W``; the posterior variance per vertex is precomputed for unit prior variance and scaled on
each update by the variance estimated from the readings. :meth:`Kriging.fit` picks the range
and the nugget by maximum (profile) likelihood from one or more snapshots of readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from twin3d.errors import FieldError
from twin3d.fields.base import LinearFieldModel

__all__ = ["MAX_WORK_BYTES", "Kriging", "KrigingSolution", "cotangent_matrices", "fit_range",
           "krige"]

FloatArray = npt.NDArray[np.float64]

#: Largest working memory kriging may take (bytes); above it, :func:`krige` refuses.
MAX_WORK_BYTES = 6 * 2**30


def cotangent_matrices(points: npt.ArrayLike, faces: npt.ArrayLike
                       ) -> tuple[sp.csr_matrix, FloatArray]:
    """P1 finite-element stiffness (cotangent Laplacian) and lumped mass of a triangle mesh.

    Args:
        points: (n, 3) float vertices.
        faces: (m, 3) int triangles.

    Returns:
        ``G`` (n, n) CSR, symmetric positive semi-definite, rows summing to 0, and the lumped
        mass ``c`` (n,) (a third of the area of the triangles around each vertex).
    """
    p = np.asarray(points, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(p)
    area2 = np.linalg.norm(np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]]), axis=1)
    area2 = np.maximum(area2, 1e-300)
    rows, cols, vals = [], [], []
    for k in range(3):  # the angle at corner k faces edge (i, j)
        i, j, o = f[:, (k + 1) % 3], f[:, (k + 2) % 3], f[:, k]
        u, v = p[i] - p[o], p[j] - p[o]
        half_cot = 0.5 * np.einsum("ij,ij->i", u, v) / area2
        rows += [i, j, i, j]
        cols += [j, i, i, j]
        vals += [-half_cot, -half_cot, half_cot, half_cot]
    G = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n))
    c = np.bincount(f.ravel(), weights=np.repeat(area2 / 6.0, 3), minlength=n)
    return G, np.maximum(c, 1e-300)


class _Prior:
    """Factorised Matérn prior on one mesh for one range; prior covariances on demand."""

    def __init__(self, G: sp.csr_matrix, c: FloatArray, range_m: float) -> None:
        kappa2 = 8.0 / range_m**2
        self.c = c
        self.lu = splu((G + sp.diags(kappa2 * c)).tocsc())

    def cov_columns(self, obs: npt.NDArray[np.int64]) -> FloatArray:
        """(n, m) prior covariance between every vertex and the observed ones (unscaled)."""
        rhs = np.zeros((len(self.c), len(obs)))
        rhs[obs, np.arange(len(obs))] = 1.0
        x = self.lu.solve(rhs)
        return np.asarray(self.lu.solve(self.c[:, None] * x))


@dataclass(frozen=True, eq=False)
class KrigingSolution:
    """Ordinary-kriging weights and unit posterior variance on one mesh.

    Attributes:
        W: (n, m) float64 weights (rows sum to 1).
        var: (n,) float64 posterior variance for unit prior variance (nugget-free field).
        Rinv: (m, m) inverse correlation matrix of the observations (nugget included).
        beta: ``1ᵀ R⁻¹ 1``.
        range_m: the Matérn range used, metres.
        nugget: the nugget as a share of the prior variance.
    """

    W: FloatArray
    var: FloatArray
    Rinv: FloatArray
    beta: float
    range_m: float
    nugget: float

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The solution as plain arrays (``W``, ``var``, ``Rinv``, ``meta``)."""
        return {"W": self.W, "var": self.var, "Rinv": self.Rinv,
                "meta": np.asarray([self.beta, self.range_m, self.nugget])}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> Self:
        """The inverse of :meth:`to_arrays`.

        Raises:
            KeyError: an array is missing.
        """
        beta, range_m, nugget = (float(x) for x in arrays["meta"])
        return cls(W=np.asarray(arrays["W"]), var=np.asarray(arrays["var"]),
                   Rinv=np.asarray(arrays["Rinv"]), beta=beta, range_m=range_m, nugget=nugget)

    def scale2(self, v: FloatArray) -> float:
        """Prior variance estimated from readings ``v`` (m,) (generalised least squares)."""
        a = self.Rinv.sum(axis=0)
        r = v - (a @ v) / self.beta
        return float(max(r @ self.Rinv @ r, 0.0) / max(len(v) - 1, 1))


def _correlation(prior: _Prior, obs: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    cov = prior.cov_columns(obs)
    scale = float(np.mean(cov[obs, np.arange(len(obs))]))
    return cov / scale, cov[obs] / scale


def krige(points_m: npt.ArrayLike, faces: npt.ArrayLike, obs: npt.ArrayLike, range_m: float,
          nugget: float = 1e-3, *, matrices: tuple[sp.csr_matrix, FloatArray] | None = None
          ) -> KrigingSolution:
    """Ordinary-kriging weights on a surface mesh.

    Args:
        points_m: (n, 3) vertices, metres.
        faces: (f, 3) triangles.
        obs: (m,) int vertex index of each observation (sensor).
        range_m: Matérn range (distance of ~0.1 correlation), metres.
        nugget: observation noise variance as a share of the prior variance.
        matrices: ``cotangent_matrices(points_m, faces)`` when already computed.

    Returns:
        The weights and unit posterior variance.
    """
    obs = np.asarray(obs, dtype=np.int64)
    n = len(np.asarray(points_m))
    if 4 * 8 * n * len(obs) > MAX_WORK_BYTES:  # ~4 float64 (n, m) arrays live at once
        raise FieldError(f"kriging {n:,} vertices × {len(obs)} sensors needs about "
                         f"{4 * 8 * n * len(obs) / 2**30:.0f} GiB; krige on a coarser mesh or "
                         "use the physics model ([model.thermal]) for this display mesh")
    G, c = matrices if matrices is not None else cotangent_matrices(points_m, faces)
    cx, r = _correlation(_Prior(G, c, range_m), obs)
    m = len(obs)
    R = r + nugget * np.eye(m)
    Rinv = np.linalg.inv(R)
    Rinv = 0.5 * (Rinv + Rinv.T)
    a = Rinv.sum(axis=0)
    beta = float(a.sum())
    # f = mean + cx Rinv (v - mean 1), mean = a.v / beta
    B = cx @ Rinv  # (n, m)
    W = B + np.outer(1.0 - B.sum(axis=1), a / beta)
    var = 1.0 - np.einsum("ij,ij->i", B, cx) + (1.0 - B.sum(axis=1)) ** 2 / beta
    return KrigingSolution(W=W, var=np.maximum(var, 0.0), Rinv=Rinv, beta=beta,
                           range_m=float(range_m), nugget=float(nugget))


def fit_range(points_m: npt.ArrayLike, faces: npt.ArrayLike, obs: npt.ArrayLike,
              values: npt.ArrayLike, *, noise: float | None = None,
              ranges: Sequence[float] | None = None) -> tuple[float, float]:
    """Range and nugget that maximise the profile likelihood of the readings.

    Args:
        points_m: (n, 3) vertices, metres.
        faces: (f, 3) triangles.
        obs: (m,) observed vertex indices.
        values: (m,) or (t, m) readings (several snapshots are pooled).
        noise: sensor standard deviation (readings' unit); it bounds the nugget from below.
        ranges: candidate ranges in metres; by default 10 from the sensor spacing to the size.

    Returns:
        ``(range_m, nugget)``.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points_m, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.int64)
    vals = np.atleast_2d(np.asarray(values, dtype=np.float64))
    m = len(obs)
    if m < 3:
        raise FieldError("kriging needs at least 3 sensors to fit a range")
    if ranges is None:
        spacing = float(np.median(cKDTree(pts[obs]).query(pts[obs], k=2)[0][:, 1]))
        size = float(np.linalg.norm(np.ptp(pts, axis=0)))
        ranges = [float(r) for r in np.geomspace(max(spacing, size / 200), 2 * size, 10)]
    G, c = cotangent_matrices(pts, faces)
    best = (-np.inf, float(ranges[0]), 1e-3)
    for rng in ranges:
        _, r = _correlation(_Prior(G, c, float(rng)), obs)
        for nug in (1e-4, 1e-3, 1e-2, 0.05, 0.2):
            R = r + nug * np.eye(m)
            try:
                L = np.linalg.cholesky(R)
            except np.linalg.LinAlgError:
                continue
            logdet = 2.0 * np.log(np.diag(L)).sum()
            ll = 0.0
            ok = True
            for v in vals:
                Rinv1 = np.linalg.solve(R, np.ones(m))
                mu = (Rinv1 @ v) / Rinv1.sum()
                res = v - mu
                s2 = float(res @ np.linalg.solve(R, res)) / m
                if noise is not None and nug * s2 < 0.5 * noise**2:
                    ok = False
                ll += -0.5 * m * np.log(max(s2, 1e-300)) - 0.5 * logdet
            if ok and ll > best[0]:
                best = (ll, float(rng), nug)
    return best[1], best[2]


class Kriging(LinearFieldModel):
    """Data-only field: kriging of the sensor readings on the surface, with sigma.

    Args:
        points: (n, 3) surface vertices, stage units.
        faces: (f, 3) triangles.
        meters_per_unit: the stage's metres per unit.
        channels: the sensors' channels.
        sensor_vertices: (m,) int the vertex each sensor sits on.
        quantity: the sensors' quantity.
        unit: the sensors' unit.
        range: Matérn range, stage units (default: a fifth of the part's diagonal).
        nugget: noise variance as a share of the field's variance.
        noise: sensor standard deviation in ``unit``. The part of its variance the nugget
            does not already hold is carried through the weights into sigma
            (``noise² Σⱼ Wᵢⱼ²``), and :meth:`fit` keeps the nugget from going below it.
        solution: a solution already computed for these points and sensors (as
            :meth:`from_arrays` passes); ``range`` and ``nugget`` are then not used.

    Examples:
        >>> import trimesh
        >>> s = trimesh.creation.icosphere(subdivisions=2)
        >>> k = Kriging(s.vertices, s.faces, 1.0, ["a", "b", "c"], [0, 40, 80], "temperature",
        ...             "degC")
        >>> k.update({"a": 20.0, "b": 21.0, "c": 22.0}).shape
        (162,)
    """

    def __init__(self, points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
                 channels: Sequence[str], sensor_vertices: npt.ArrayLike, quantity: str,
                 unit: str, *, range: float | None = None, nugget: float = 1e-3,
                 noise: float | None = None, solution: KrigingSolution | None = None) -> None:
        self._points_m = np.asarray(points, dtype=np.float64) * meters_per_unit
        self._faces = np.asarray(faces, dtype=np.int64)
        self._obs = np.asarray(sensor_vertices, dtype=np.int64)
        self.noise = noise
        self.meters_per_unit = meters_per_unit
        self.quantity = quantity
        if len(self._obs) != len(channels) or len(channels) < 2:
            raise FieldError("kriging needs at least 2 sensors, one vertex per channel")
        if solution is None:
            size = float(np.linalg.norm(np.ptp(self._points_m, axis=0)))
            range_m = size / 5 if range is None else float(range) * meters_per_unit
            solution = krige(self._points_m, self._faces, self._obs, range_m, nugget)
        self._solution = solution
        super().__init__(channels, self._solution.W, unit)
        self._w2 = np.einsum("ij,ij->i", self._solution.W, self._solution.W)  # (n,) Σ W²

    @property
    def range(self) -> float:
        """The Matérn range in use, stage units."""
        return self._solution.range_m / self.meters_per_unit

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays that define the model, mesh included; see :meth:`from_arrays`."""
        return super().to_arrays() | {
            "points": self._points_m / self.meters_per_unit, "faces": self._faces,
            "sensor_vertices": self._obs, "meters_per_unit": np.asarray(self.meters_per_unit),
            "quantity": np.asarray(self.quantity),
            "noise": np.asarray(np.nan if self.noise is None else self.noise),
        } | {f"kriging_{k}": v for k, v in self._solution.to_arrays().items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_arrays`' output (no kriging solve).

        Raises:
            KeyError: an array is missing (a file written by another version).
        """
        noise = float(arrays["noise"])
        solution = KrigingSolution.from_arrays(
            {k.removeprefix("kriging_"): v for k, v in arrays.items() if k.startswith("kriging_")})
        return cls(arrays["points"], arrays["faces"], float(arrays["meters_per_unit"]),
                   [str(c) for c in arrays["channels"]], arrays["sensor_vertices"],
                   str(arrays["quantity"]), str(arrays["unit"]),
                   noise=None if np.isnan(noise) else noise, solution=solution)

    def fit(self, values: npt.ArrayLike) -> Kriging:
        """Re-fit range and nugget to readings (m,) or snapshots (t, m); rebuilds ``W``."""
        rng, nug = fit_range(self._points_m, self._faces, self._obs, values, noise=self.noise)
        self._solution = krige(self._points_m, self._faces, self._obs, rng, nug)
        self.W = np.asfortranarray(self._solution.W.astype(np.float32))
        self._w2 = np.einsum("ij,ij->i", self._solution.W, self._solution.W)
        return self

    def _after_update(self, v: FloatArray, field: npt.NDArray[np.float32]) -> None:
        s2 = self._solution.scale2(v)
        var = s2 * self._solution.var
        if self.noise:  # sensor noise the nugget does not cover, through the weights
            var = var + max(self.noise**2 - self._solution.nugget * s2, 0.0) * self._w2
        self._sigma = np.sqrt(var).astype(np.float32)
