"""The one shape every field model has: ``field = W @ values`` plus an optional sigma."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from twin3d.errors import FieldError

__all__ = ["FieldWarning", "ImplausibleInputWarning", "LinearFieldModel", "MeshReport",
           "RegionReport",
           "RegionWarning", "matvec", "reports_from_arrays", "reports_to_arrays",
           "sensor_locations", "warn_regions"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


class FieldWarning(UserWarning):
    """Something about a field model that is allowed but probably not what was meant."""


class RegionWarning(FieldWarning):
    """A region selects facets on more than one connected surface patch."""


class ImplausibleInputWarning(FieldWarning):
    """An update fitted physically impossible inputs (see :meth:`HeatModel.fitted_inputs`)."""


@dataclass(frozen=True)
class MeshReport:
    """The finite-element mesh a physics model was solved on.

    Attributes:
        elements: number of tetrahedra.
        nodes: number of mesh vertices.
        smallest_feature: the smallest radius of curvature (hole, fillet) the mesh resolves,
            metres; None when the part has no curved feature or the mesh was uniform.
    """

    elements: int
    nodes: int
    smallest_feature: float | None = None

    def __str__(self) -> str:
        text = f"{self.elements:,} tetrahedra, {self.nodes:,} vertices"
        if self.smallest_feature is not None:
            text += f"; smallest feature resolved: radius {self.smallest_feature * 1e3:.3g} mm"
        return text

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The report as plain arrays (``mesh_*`` keys), for a model's ``to_arrays``."""
        small = np.nan if self.smallest_feature is None else self.smallest_feature
        return {"mesh_counts": np.asarray([self.elements, self.nodes], dtype=np.int64),
                "mesh_smallest_feature": np.asarray(small, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> MeshReport | None:
        """The inverse of :meth:`to_arrays` (no ``mesh_*`` keys: None)."""
        if "mesh_counts" not in arrays:
            return None
        small = float(arrays["mesh_smallest_feature"])
        return cls(int(arrays["mesh_counts"][0]), int(arrays["mesh_counts"][1]),
                   None if np.isnan(small) else small)


@dataclass(frozen=True)
class RegionReport:
    """What one region of the ``[model]`` table selected on the model's FEM mesh.

    Attributes:
        name: the region's name (``"rest"`` for convection from every other facet).
        role: what the model does there: ``"source"``, ``"fixed"``, ``"convection"`` or
            ``"load NAME"``.
        facets: number of boundary facets (triangles of the FEM mesh) selected, > 0.
        patches: number of edge-connected surface patches among them (1 = one face).
        area: total area of the facets, m².
    """

    name: str
    role: str
    facets: int
    patches: int
    area: float

    def __str__(self) -> str:
        return (f"{self.name} ({self.role}): {self.facets} facets, {self.patches} "
                f"patch{'es' if self.patches != 1 else ''}, {self.area * 1e4:.3g} cm²")


def reports_to_arrays(reports: Sequence[RegionReport]) -> dict[str, npt.NDArray[Any]]:
    """Region reports as plain arrays (``region_*`` keys), for a model's ``to_arrays``."""
    return {"region_names": np.asarray([r.name for r in reports], dtype=str),
            "region_roles": np.asarray([r.role for r in reports], dtype=str),
            "region_counts": np.asarray([(r.facets, r.patches) for r in reports],
                                        dtype=np.int64).reshape(-1, 2),
            "region_areas": np.asarray([r.area for r in reports], dtype=np.float64)}


def reports_from_arrays(arrays: Mapping[str, Any]) -> tuple[RegionReport, ...]:
    """The inverse of :func:`reports_to_arrays` (no ``region_*`` keys: no reports)."""
    if "region_names" not in arrays:
        return ()
    return tuple(RegionReport(str(n), str(r), int(c[0]), int(c[1]), float(a)) for n, r, c, a in
                 zip(arrays["region_names"], arrays["region_roles"], arrays["region_counts"],
                     arrays["region_areas"], strict=True))


def warn_regions(reports: Sequence[RegionReport], stacklevel: int = 2) -> None:
    """Warn (:class:`RegionWarning`) about each region that spans several surface patches.

    ``"rest"`` (convection from every other facet) is exempt: it is patchy by nature.
    """
    for r in reports:
        if r.patches > 1 and r.name != "rest":
            warnings.warn(RegionWarning(
                f"region {r.name!r} ({r.role}) selects {r.facets} facets on {r.patches} separate "
                "surface patches: it may catch faces you did not mean (e.g. hole walls with the "
                "same normal); narrow it with a box, sphere or cylinder"),
                stacklevel=stacklevel + 1)


def _shortened(names: Sequence[str], n: int = 4) -> str:
    head = ", ".join(names[:n])
    return head if len(names) <= n else f"{head}, ... {len(names)} in all"


class LinearFieldModel:
    """A field that is linear in the sensor readings: ``field = W @ values``.

    Attributes:
        channels: the channel of each column of ``W``, in order.
        W: (n_vertices, n_channels) float32, column-major (Fortran order).
        quantity: what the field is, e.g. ``"temperature"``.
        unit: unit of the field, e.g. ``"degC"``.
        values: (n_channels,) float64, the latest value of each channel (NaN until received).
        ignored_channels: channels an update may carry that are not this model's (the twin's
            other sensors, so a view may push every channel); they are skipped. Any other
            channel in an update is a mistake and raises.
        regions: what each region of the ``[model]`` table selected (physics models).
        mesh: the finite-element mesh the model was solved on (physics models), else None.

    A channel that has never been received takes ``fill`` (the mean of the received ones for
    temperature-like fields; 0 for load-like inputs).
    """

    quantity: str = "generic"
    fill_mean: bool = True
    regions: tuple[RegionReport, ...] = ()
    mesh: MeshReport | None = None

    def __init__(self, channels: Sequence[str], W: npt.ArrayLike, unit: str) -> None:
        self.channels = list(channels)
        self.W: F32 = np.asfortranarray(np.asarray(W, dtype=np.float32))
        if self.W.ndim != 2 or self.W.shape[1] != len(self.channels):
            raise FieldError(f"W has shape {self.W.shape}, expected (n, {len(self.channels)})")
        self.unit = unit
        self._index = {c: i for i, c in enumerate(self.channels)}
        self.values = np.full(len(self.channels), np.nan)
        self._v32 = np.zeros(len(self.channels), dtype=np.float32)
        self._out = np.empty(self.W.shape[0], dtype=np.float32)
        self._sigma: F32 | None = None
        self.ignored_channels: frozenset[str] = frozenset()

    @property
    def n_vertices(self) -> int:
        """Number of mesh vertices the field has (not always the rows of ``W``)."""
        return int(self.W.shape[0])

    @property
    def sigma(self) -> F32 | None:
        """(n_vertices,) float32 standard deviation after the last update, or None.

        Like the field, it may be a buffer that the next update overwrites."""
        return self._sigma

    def _merge(self, values: Mapping[str, float] | npt.ArrayLike) -> FloatArray:
        """The latest raw values (NaN: never received) with ``values`` applied; checks all."""
        merged = self.values.copy()
        if isinstance(values, Mapping):
            unknown = [c for c in values if c not in self._index
                       and c not in self.ignored_channels]
            if unknown:
                listed = ", ".join(repr(str(c)) for c in unknown[:3])
                raise FieldError(f"{type(self).__name__} has no channel {listed} (its channels: "
                                 f"{_shortened(self.channels)}); check the channel name")
            for channel, value in values.items():
                i = self._index.get(channel)
                if i is None:
                    continue
                if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                        or not math.isfinite(value)):
                    raise FieldError(f"channel {channel!r}: value {value!r} is not a finite "
                                     "number")
                merged[i] = float(value)
            return merged
        arr = np.asarray(values)
        if arr.dtype.kind not in "iuf":
            raise FieldError(f"values must be numbers, got an array of {arr.dtype}")
        arr = arr.astype(np.float64).ravel()
        if arr.shape != self.values.shape:
            raise FieldError(f"got {arr.size} values for {len(self.channels)} channels "
                             f"({_shortened(self.channels)}); pass one per channel")
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise FieldError(f"channel {self.channels[bad[0]]!r}: value {arr[bad[0]]} is not a "
                             "finite number")
        merged[:] = arr
        return merged

    def _filled(self, raw: FloatArray) -> FloatArray:
        """``raw`` with the never-received channels filled (mean of the others, or 0)."""
        v = raw.copy()
        missing = np.isnan(v)
        if missing.any():
            known = v[~missing]
            v[missing] = known.mean() if (self.fill_mean and known.size) else 0.0
        return v

    def _set_values(self, values: Mapping[str, float] | npt.ArrayLike) -> FloatArray:
        """Check and store ``values``; return all channels' values, filled."""
        self.values[:] = self._merge(values)
        return self._filled(self.values)

    def update(self, values: Mapping[str, float] | npt.ArrayLike,
               out: F32 | None = None) -> F32:
        """Reconstruct the field from the latest readings.

        Args:
            values: ``{channel: value}`` (partial updates keep the other channels' last
                values) or an (n_channels,) array in ``channels`` order.
            out: (n_vertices,) float32 array to write into; by default an internal buffer
                that the next update overwrites (copy it to keep it).

        Returns:
            (n_vertices,) float32 field in ``unit``.

        Raises:
            FieldError: a channel that is neither this model's nor in ``ignored_channels``,
                a value that is not a finite number, or an array of the wrong length (the
                model is left as it was).
        """
        v = self._set_values(values)
        self._v32[:] = v
        target = self._out if out is None else out
        matvec(self.W, self._v32, target)
        self._after_update(v, target)
        return target

    #: Names of the physical inputs (heat sources, load cases) and, when the model knows it,
    #: ``response``: (n_channels, n_inputs) float64, the readings each input gives per unit.
    inputs: Sequence[str] = ()
    response: FloatArray | None = None

    def readings(self, inputs: Mapping[str, float]) -> dict[str, float]:
        """What the sensors would read for the given physical inputs (the forward model).

        A simulated plant (``twin3d demo``, tests) uses it to make readings that obey the same
        physics the model fits.

        Args:
            inputs: ``{input name: amplitude}``, names from :attr:`inputs` (missing ones are 0).

        Returns:
            ``{channel: reading}`` in each sensor's unit, noise-free.

        Raises:
            FieldError: the model has no forward response, or an input name is unknown.
        """
        if self.response is None:
            raise FieldError(f"{type(self).__name__} has no forward model (data-only)")
        unknown = set(inputs) - set(self.inputs)
        if unknown:
            raise FieldError(f"unknown inputs {sorted(unknown)}; this model has {self.inputs}")
        a = np.array([float(inputs.get(name, 0.0)) for name in self.inputs])
        return dict(zip(self.channels, (self.response @ a).tolist(), strict=True))

    def _after_update(self, v: FloatArray, field: F32) -> None:
        """Hook: compute ``self._sigma`` (or post-process the field) from the values."""

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays that define the model (for the on-disk cache): the inverse of
        :meth:`from_arrays`. Names are plain identifiers; no array holds Python objects."""
        return {"W": self.W, "channels": np.asarray(self.channels, dtype=str),
                "unit": np.asarray(self.unit)} | reports_to_arrays(self.regions) | (
                    {} if self.mesh is None else self.mesh.to_arrays())

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_arrays`' output (e.g. an ``np.load`` of it).

        Raises:
            KeyError: an array is missing (a file written by another version).
        """
        model = cls([str(c) for c in arrays["channels"]], arrays["W"], str(arrays["unit"]))
        model.regions = reports_from_arrays(arrays)
        model.mesh = MeshReport.from_arrays(arrays)
        return model

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.quantity!r}, {self.n_vertices} vertices, "
                f"{len(self.channels)} channels, unit={self.unit!r})")


#: Below this size of W a single BLAS thread does the update (see :func:`matvec`).
SINGLE_THREAD_BYTES = 64 * 2**20
_blas: list[Any] | None = None


def matvec(W: F32, v: F32, out: F32) -> F32:
    """``out[:] = W @ v``, with one BLAS thread when ``W`` is small.

    On a busy machine, OpenBLAS's second thread can be descheduled and a 4 MB product then
    waits a whole scheduler slice (measured: 0.1 ms single-threaded vs 8 ms median with two
    threads at 100k × 10 on 2 loaded cores); large products keep all threads (memory-bound,
    they gain from both). Uses threadpoolctl; switching costs a few microseconds.
    """
    global _blas
    if W.nbytes >= SINGLE_THREAD_BYTES:
        return np.dot(W, v, out=out)
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # threadpoolctl missing or unable to inspect: keep BLAS's default
            _blas = []
    previous = [lib.get_num_threads() for lib in _blas]
    for lib in _blas:
        lib.set_num_threads(1)
    try:
        return np.dot(W, v, out=out)
    finally:
        for lib, n in zip(_blas, previous, strict=True):
            lib.set_num_threads(n)


def sensor_locations(sensors: Sequence[Any], points_m: FloatArray, meters_per_unit: float,
                     faces: npt.ArrayLike, *, tolerance_m: float | None = None
                     ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Positions (metres) and nearest surface vertex of each sensor, checked against the part.

    Args:
        sensors: :class:`twin3d.model.Sensor` objects (``vertex`` or ``position`` set).
        points_m: (n, 3) surface points, metres.
        meters_per_unit: the stage's metres per unit.
        faces: (f, 3) int triangles of the surface.
        tolerance_m: largest distance (metres) from a position to the surface; default
            :data:`twin3d.sensors.DEFAULT_SNAP_TOLERANCE_M`, as ``twin3d bind`` uses.

    Returns:
        (k, 3) float64 positions in metres and (k,) int64 nearest vertex indices.

    Raises:
        FieldError: a sensor with neither a vertex nor a position, a vertex out of range, or
            a position farther than the tolerance from the surface.
    """
    from scipy.spatial import cKDTree

    from twin3d.sensors import DEFAULT_SNAP_TOLERANCE_M

    tol = DEFAULT_SNAP_TOLERANCE_M if tolerance_m is None else float(tolerance_m)
    pos = np.empty((len(sensors), 3))
    vert = np.empty(len(sensors), dtype=np.int64)
    gap = np.zeros(len(sensors))
    tree = cKDTree(points_m)
    for i, s in enumerate(sensors):
        if s.vertex is not None:
            if not 0 <= int(s.vertex) < len(points_m):
                raise FieldError(f"sensor {s.channel!r}: vertex {s.vertex} is not on its mesh "
                                 f"({len(points_m)} vertices)")
            vert[i] = int(s.vertex)
            pos[i] = points_m[vert[i]]
        elif s.position is not None:
            pos[i] = np.asarray(s.position, dtype=np.float64) * meters_per_unit
            gap[i], vert[i] = tree.query(pos[i])
        else:
            raise FieldError(f"sensor {s.channel!r} has neither a position nor a vertex; "
                             "give one in the sensor map")
    far = np.flatnonzero(gap > tol)  # the nearest vertex bounds the distance to the surface
    if len(far):
        import trimesh

        surface = trimesh.Trimesh(points_m, np.asarray(faces, dtype=np.int64), process=False)
        _, dist, _ = trimesh.proximity.closest_point(  # type: ignore[no-untyped-call]
            surface, pos[far])
        for j, d in zip(far.tolist(), np.asarray(dist, dtype=np.float64).tolist(), strict=True):
            if d > tol:
                raise FieldError(
                    f"sensor {sensors[j].channel!r}: position "
                    f"({', '.join(f'{x:g}' for x in sensors[j].position)}) is "
                    f"{d * 1000:.1f} mm from the surface of its mesh (tolerance "
                    f"{tol * 1000:.1f} mm): fix the position, or bind the map with 'twin3d "
                    "bind', which snaps it")
    return pos, vert
