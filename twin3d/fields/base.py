"""The one shape every field model has: ``field = W @ values`` plus an optional sigma."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.errors import FieldError

__all__ = ["LinearFieldModel", "matvec", "sensor_locations"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


class LinearFieldModel:
    """A field that is linear in the sensor readings: ``field = W @ values``.

    Attributes:
        channels: the channel of each column of ``W``, in order.
        W: (n_vertices, n_channels) float32, column-major (Fortran order).
        quantity: what the field is, e.g. ``"temperature"``.
        unit: unit of the field, e.g. ``"degC"``.
        values: (n_channels,) float64, the latest value of each channel (NaN until received).

    A channel that has never been received takes ``fill`` (the mean of the received ones for
    temperature-like fields; 0 for load-like inputs); unknown channel names are ignored, so a
    view may push every channel of the twin.
    """

    quantity: str = "generic"
    fill_mean: bool = True

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

    @property
    def n_vertices(self) -> int:
        """Number of vertices of the field."""
        return int(self.W.shape[0])

    @property
    def sigma(self) -> F32 | None:
        """(n_vertices,) float32 standard deviation after the last update, or None.

        Like the field, it may be a buffer that the next update overwrites."""
        return self._sigma

    def _set_values(self, values: Mapping[str, float] | npt.ArrayLike) -> FloatArray:
        if isinstance(values, Mapping):
            for channel, value in values.items():
                i = self._index.get(channel)
                if i is not None:
                    self.values[i] = float(value)
        else:
            arr = np.asarray(values, dtype=np.float64).ravel()
            if arr.shape != self.values.shape:
                raise FieldError(f"got {arr.size} values for {len(self.channels)} channels "
                                 f"({', '.join(self.channels[:4])}...); pass one per channel")
            self.values[:] = arr
        v = self.values.copy()
        missing = np.isnan(v)
        if missing.any():
            known = v[~missing]
            v[missing] = known.mean() if (self.fill_mean and known.size) else 0.0
        return v

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

    def arrays(self) -> dict[str, Any]:
        """The arrays that define the model (for the on-disk cache)."""
        return {"W": self.W, "channels": np.asarray(self.channels), "unit": np.asarray(self.unit)}

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
        for lib, n in zip(_blas, previous):
            lib.set_num_threads(n)


def sensor_locations(sensors: Sequence[Any], points_m: FloatArray,
                     meters_per_unit: float) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Positions (metres) and nearest surface vertex of each sensor.

    Args:
        sensors: :class:`twin3d.model.Sensor` objects (``vertex`` or ``position`` set).
        points_m: (n, 3) surface points, metres.
        meters_per_unit: the stage's metres per unit.

    Returns:
        (k, 3) float64 positions in metres and (k,) int64 nearest vertex indices.

    Raises:
        FieldError: a sensor with neither a vertex nor a position, or a vertex out of range.
    """
    from scipy.spatial import cKDTree

    pos = np.empty((len(sensors), 3))
    vert = np.empty(len(sensors), dtype=np.int64)
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
            vert[i] = int(tree.query(pos[i])[1])
        else:
            raise FieldError(f"sensor {s.channel!r} has neither a position nor a vertex; "
                             "give one in the sensor map")
    return pos, vert
