"""Virtual sensors: where a declared point sits on the part, and the field's value and sigma there.

A point is placed on the nearest surface point of its mesh (within the snap tolerance). A
field ``f`` over the mesh's vertices is read there by barycentric interpolation of the three
vertices of the triangle the point falls in: ``sum(b_j f[v_j])``.

CAD triangles are long and thin (100 mm on the demo plate), and a physics field is not linear
across them: interpolating the temperature between vertices was off by up to 1.9 K there. So
where the model is physics with a forward response (a heat model), the point gets its own
response row (:func:`point_response`: the model built once more with the point as an extra,
phantom sensor, cached like any model), and its value is that row times the fitted inputs,
plus the kriged residual interpolated from the vertices (see :class:`~twin3d.engine.core.Engine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.engine.config import VirtualSensor
from twin3d.errors import EngineError

__all__ = ["PHYSICS_SECTIONS", "PlacedPoint", "place_virtual", "point_response"]

#: The ``[model]`` section of each physics quantity whose response a point can get.
PHYSICS_SECTIONS = {"temperature": "thermal"}


@dataclass(frozen=True, eq=False)
class PlacedPoint:
    """A virtual sensor placed on a mesh.

    Attributes:
        sensor: the declaration.
        mesh: the mesh prim path it sits on.
        position: (3,) float64 the surface point, stage units, world space.
        vertices: (3,) int64 the triangle's vertices.
        weights: (3,) float64 their barycentric weights (sum 1).
        distance: metres from the declared position to the surface.
    """

    sensor: VirtualSensor
    mesh: str
    position: npt.NDArray[np.float64]
    vertices: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    distance: float

    def sample(self, field: npt.NDArray[Any]) -> float:
        """The value of a per-vertex ``field`` (n_vertices,) at the point."""
        return float(self.weights @ np.asarray(field, dtype=np.float64)[self.vertices])


def place_virtual(sensor: VirtualSensor, meshes: Sequence[Any], modelled: Mapping[str, Any],
                  meters_per_unit: float, tolerance_m: float) -> PlacedPoint:
    """Place a virtual sensor on its mesh.

    Args:
        sensor: the declaration.
        meshes: the stage's meshes (``.path``, ``.points`` (n, 3) stage units, ``.faces``).
        modelled: ``{mesh path: {quantity: model}}``: the meshes that have field models.
        meters_per_unit: the stage's metres per unit.
        tolerance_m: largest distance (metres) from the position to the surface.

    Returns:
        The placed point.

    Raises:
        EngineError: no mesh has a model of the quantity, an unknown target, or a position
            farther than the tolerance from the surface (the part).
    """
    import trimesh

    where = f"virtual sensor {sensor.name!r}"
    candidates = [m for m in meshes if sensor.quantity in modelled.get(m.path, {})]
    if not candidates:
        have = sorted({q for models in modelled.values() for q in models})
        raise EngineError(f"{where}: no mesh has a {sensor.quantity} model (modelled: "
                          f"{', '.join(have) or 'nothing'}); use one of those quantities")
    if sensor.target is not None:
        candidates = [m for m in candidates if m.path == sensor.target]
        if not candidates:
            raise EngineError(f"{where}: target {sensor.target} is not a mesh with a "
                              f"{sensor.quantity} model; drop the target or name one of "
                              f"{', '.join(m.path for m in meshes if sensor.quantity in modelled.get(m.path, {}))}")
    point = np.asarray([sensor.position], dtype=np.float64)
    best: tuple[float, Any, np.ndarray, int] | None = None
    for mesh in candidates:
        surface = trimesh.Trimesh(np.asarray(mesh.points), np.asarray(mesh.faces), process=False)
        closest, dist, tri = trimesh.proximity.closest_point(surface, point)  # type: ignore[no-untyped-call]
        d = float(dist[0])
        if best is None or d < best[0]:
            best = (d, mesh, np.asarray(closest[0]), int(tri[0]))
    assert best is not None
    dist, mesh, closest, tri = best
    dist_m = dist * meters_per_unit
    if dist_m > tolerance_m:
        pos = ", ".join(f"{v:g}" for v in sensor.position)
        raise EngineError(f"{where}: position ({pos}) is {dist_m * 1000:.1f} mm from the part "
                          f"({mesh.path}; tolerance {tolerance_m * 1000:.1f} mm): put it on the "
                          "surface (see 'twin3d info' for the part's size)")
    verts = np.asarray(mesh.faces[tri], dtype=np.int64)
    corners = np.asarray(mesh.points, dtype=np.float64)[verts]
    weights = _barycentric(corners, closest)
    return PlacedPoint(sensor, mesh.path, np.asarray(closest, dtype=np.float64), verts, weights, dist_m)


def _barycentric(corners: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentric weights of ``p`` (on the triangle's plane) in the triangle ``corners``."""
    a, b, c = corners
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = v0 @ v0, v0 @ v1, v1 @ v1
    d20, d21 = v2 @ v0, v2 @ v1
    den = d00 * d11 - d01 * d01
    if abs(den) < 1e-300:  # a degenerate sliver: the nearest corner
        w = np.zeros(3)
        w[int(np.argmin(np.linalg.norm(corners - p, axis=1)))] = 1.0
        return w
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    out = np.clip(np.array([1.0 - v - w, v, w]), 0.0, 1.0)
    return np.asarray(out / out.sum(), dtype=np.float64)


def point_response(mesh: Any, meters_per_unit: float, model: Any, sensors: Sequence[Any],
                   points: Sequence[PlacedPoint], config: Mapping[str, Any]) -> np.ndarray | None:
    """The forward response of a physics model at each point: (p, k) float64, or None.

    The model is built again (:func:`twin3d.fields.build_models`, cached on disk) with the
    points as extra sensors; their rows of its ``response`` are the readings each input would
    give there. None when the quantity has no physics section in ``config`` or the rebuilt
    model's inputs differ.

    Args:
        mesh: the mesh (``.path``, ``.points``, ``.faces``).
        meters_per_unit: the stage's metres per unit.
        model: the model the points read (its ``quantity``, ``inputs``, ``channels``).
        sensors: the twin's sensors (those of the model's channels are kept).
        points: the placed points.
        config: the twin's ``[model]`` table.
    """
    import warnings
    from dataclasses import replace

    from twin3d.fields import build_models

    section = PHYSICS_SECTIONS.get(getattr(model, "quantity", ""))
    if section is None or section not in config or getattr(model, "response", None) is None:
        return None
    mine = [s for s in sensors if s.channel in set(model.channels)]
    if not mine:
        return None
    phantoms = [replace(mine[0], channel=p.sensor.channel, position=tuple(map(float, p.position)),
                        vertex=None, description="") for p in points]
    physics = {k: v for k, v in config.items() if k in ("regions", section)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its regions were reported when the model was built
        built = build_models(mesh.points, mesh.faces, meters_per_unit, mine + phantoms, physics)
    other = built.get(model.quantity)
    if other is None or list(getattr(other, "inputs", ())) != list(model.inputs):
        return None
    rows = [other.channels.index(p.sensor.channel) for p in points]
    return np.asarray(other.response, dtype=np.float64)[rows]
