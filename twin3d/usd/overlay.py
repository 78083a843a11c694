"""Field overlays in USD: per-vertex values on meshes, their colours, the material showing them.

A field over a mesh is a vertex ``primvars:<quantity>`` (indexed, with its colour map and range
in ``customData``), optionally ``primvars:<quantity>_sigma``, plus a ``primvars:displayColor``
through :func:`twin3d.colormap.colorize` with a fixed range, shown through the overlay material
(:func:`twin3d.usd.material.define_display_color_material`) bound in the same layer. The live
layer writes them as defaults, recordings as time samples, both with :func:`author_field`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pxr import Sdf, Usd

from twin3d.colormap import DEFAULT_CMAP, colorize
from twin3d.errors import FieldError, StageError
from twin3d.usd.geometry import MeshData
from twin3d.usd.material import define_display_color_material
from twin3d.usd.spec import author_primvar, bind_material

__all__ = ["FIELD_MATERIAL", "FieldTarget", "author_field", "field_array", "prepare_overlay"]

#: Where (under the default prim) the overlay material that shows field colours is defined.
FIELD_MATERIAL = "Materials/Twin3DFieldOverlay"


@dataclass(frozen=True)
class FieldTarget:
    """The meshes one field covers.

    Attributes:
        key: the prim path the caller's name resolved to.
        meshes: the meshes under it, in stage order; the values cover their points in turn.
    """

    key: str
    meshes: tuple[MeshData, ...]

    @property
    def n_points(self) -> int:
        """The number of values a field over the target has."""
        return sum(len(m.points) for m in self.meshes)


def field_array(values: npt.ArrayLike, target: FieldTarget, what: str) -> np.ndarray:
    """Return ``values`` as (n_points,) contiguous float32, one per point of ``target``.

    Raises:
        FieldError: the number of values is not the target's number of points.
    """
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.shape[0] != target.n_points:
        raise FieldError(f"{what}: got {arr.shape[0]} values for {target.key}, which has "
                         f"{target.n_points} points (one value per point)")
    return np.ascontiguousarray(arr)


@lru_cache(maxsize=8)
def _template(root: str) -> Sdf.Layer:
    """An anonymous layer holding the overlay material (built once with the Usd API)."""
    layer = Sdf.Layer.CreateAnonymous(".usda")  # held by the cache: a strong reference
    define_display_color_material(Usd.Stage.Open(layer), Sdf.Path(root).AppendPath(FIELD_MATERIAL),
                                  roughness=0.5)
    return layer


def prepare_overlay(root: Sdf.Path) -> None:
    """Build the overlay material of a stage rooted at ``root`` once, with the Usd API.

    Call it before the ``Sdf.ChangeBlock`` in which :func:`author_field` runs: the Usd API
    must not run inside one.
    """
    _template(str(root))


def _author_material(layer: Sdf.Layer, root: Sdf.Path) -> Sdf.Path:
    """Copy the overlay material into ``layer`` (once); return its path."""
    path = root.AppendPath(FIELD_MATERIAL)
    if layer.GetPrimAtPath(path):
        return path
    parent = Sdf.CreatePrimInLayer(layer, path.GetParentPath())
    parent.specifier, parent.typeName = Sdf.SpecifierDef, "Scope"
    Sdf.CreatePrimInLayer(layer, path)
    if not Sdf.CopySpec(_template(str(root)), path, layer, path):
        raise StageError(f"cannot author the field material at {path}")
    return path


def author_field(layer: Sdf.Layer, root: Sdf.Path, target: FieldTarget, quantity: str,
                 values: np.ndarray, vmin: float, vmax: float, *, time: float | None = None,
                 sigma: np.ndarray | None = None) -> None:
    """Author a field over ``target``'s meshes in ``layer`` and bind the overlay material.

    Args:
        layer: the live layer or a recording.
        root: the stage's default prim (the material goes under it).
        target: the meshes the values cover.
        quantity: the primvar name, e.g. ``"temperature"``.
        values: (n_points,) float32 from :func:`field_array`.
        vmin: value of the colour map's first colour.
        vmax: value of its last colour.
        time: the time code, or ``None`` for the default value.
        sigma: optional (n_points,) float32 standard deviation.
    """
    colors = colorize(values, vmin, vmax)
    start = 0
    for mesh in target.meshes:
        n = len(mesh.points)
        path = Sdf.Path(mesh.path)
        spec = author_primvar(layer, path, quantity, values[start:start + n], time)
        spec.customData = {"twin3d": {"colormap": DEFAULT_CMAP, "vmin": vmin, "vmax": vmax}}
        author_primvar(layer, path, "displayColor", colors[start:start + n], time)
        if sigma is not None:
            author_primvar(layer, path, f"{quantity}_sigma", sigma[start:start + n], time)
        start += n
    material = _author_material(layer, root)
    for mesh in target.meshes:
        bind_material(layer, Sdf.Path(mesh.path), material)
