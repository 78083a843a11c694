"""Field overlays in USD: per-vertex values on meshes, their colours, the material showing them.

A field over a mesh is a vertex ``primvars:<quantity>`` (indexed, with its colour map and range
in ``customData``), optionally ``primvars:<quantity>_sigma``, plus its colours. A mesh carries
several fields (temperature, von Mises...) but shows one: each field's colours are a
``primvars:displayColor`` (linear RGB, :func:`twin3d.colormap.linear_colorize`) inside the
variant of that name of the mesh's ``displayField`` variant set, beside a
``string twin:displayField`` naming it. The variant selection is the shown field: temperature
when the mesh has one, else the first field authored, unless a choice was made
(:meth:`twin3d.Twin.show_field`); usdview and Omniverse switch it without a script (usdview:
the prim's Metadata tab, "displayField" variant). The colours show through the overlay
material (:func:`twin3d.usd.material.define_display_color_material`) bound in the same layer.
The live layer writes all this as defaults, recordings as time samples, both with
:func:`author_field`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pxr import Sdf, Usd, UsdGeom

from twin3d.colormap import DEFAULT_CMAP, linear_colorize
from twin3d.errors import FieldError, StageError
from twin3d.usd.material import define_display_color_material
from twin3d.usd.meshes import MeshData
from twin3d.usd.spec import author_primvar, bind_material, ensure_attr

_T = Sdf.ValueTypeNames

__all__ = ["DISPLAY_ATTR", "DISPLAY_SET", "FIELD_MATERIAL", "FieldTarget", "author_field",
           "field_array", "prepare_overlay", "read_field_info", "select_display"]

#: Where (under the default prim) the overlay material that shows field colours is defined.
FIELD_MATERIAL = "Materials/Twin3DFieldOverlay"
#: The variant set of a mesh with one variant per field; its selection is the field shown.
DISPLAY_SET = "displayField"
#: The string attribute (inside each variant) naming the field the mesh shows.
DISPLAY_ATTR = "twin:displayField"
#: The field shown by default when a mesh has it.
DEFAULT_DISPLAY = "temperature"


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
                 sigma: np.ndarray | None = None, display: Mapping[str, str] | None = None) -> None:
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
        display: the field chosen for display by mesh path (others show the default:
            temperature when present, else the first field authored).
    """
    colors = linear_colorize(values, vmin, vmax)
    start = 0
    for mesh in target.meshes:
        n = len(mesh.points)
        path = Sdf.Path(mesh.prim)  # the mesh, or its display surface
        spec = author_primvar(layer, path, quantity, values[start:start + n], time)
        spec.customData = {"twin3d": {"colormap": DEFAULT_CMAP, "vmin": vmin, "vmax": vmax}}
        if sigma is not None:
            author_primvar(layer, path, f"{quantity}_sigma", sigma[start:start + n], time)
        _drop_direct_colors(layer, path)
        variant = path.AppendVariantSelection(DISPLAY_SET, quantity)
        if not layer.GetPrimAtPath(variant):
            Sdf.CreatePrimInLayer(layer, variant)
            ensure_attr(layer, variant, DISPLAY_ATTR, _T.String).default = quantity
        author_primvar(layer, variant, "displayColor", colors[start:start + n], time)
        choice = (display or {}).get(mesh.path)
        select_display(layer, [path], choice if choice in _fields(layer, path) else None)
        start += n
    material = _author_material(layer, root)
    for mesh in target.meshes:
        bind_material(layer, Sdf.Path(mesh.prim), material)


def _drop_direct_colors(layer: Sdf.Layer, mesh: Sdf.Path) -> None:
    """Remove colours authored on the mesh itself in ``layer`` (live layers written before the
    display variants): a direct opinion is stronger than any variant and would hide them all."""
    spec = layer.GetPrimAtPath(mesh)
    for name in ("primvars:displayColor", "primvars:displayColor:indices"):
        attr = spec.attributes.get(name) if spec else None
        if attr is not None:
            spec.RemoveProperty(attr)


def select_display(layer: Sdf.Layer, meshes: Sequence[Sdf.Path], quantity: str | None = None
                   ) -> None:
    """Select the field each of ``meshes`` shows in ``layer``: ``quantity``, else the default.

    The default is temperature when a mesh has that field in ``layer``, else its first.
    Every mesh is checked before any is changed.

    Raises:
        FieldError: ``quantity`` is not a field of a mesh in ``layer``.
    """
    fields = [_fields(layer, mesh) for mesh in meshes]
    for mesh, names in zip(meshes, fields, strict=True):
        if quantity is not None and quantity not in names:
            raise FieldError(f"{mesh} has no field {quantity!r} to show (fields: "
                             f"{', '.join(names) or 'none; set one first'})")
    for mesh, names in zip(meshes, fields, strict=True):
        chosen = quantity or (DEFAULT_DISPLAY if DEFAULT_DISPLAY in names else names[0])
        spec = layer.GetPrimAtPath(mesh)
        if spec.variantSelections.get(DISPLAY_SET) != chosen:
            spec.variantSelections[DISPLAY_SET] = chosen


def _fields(layer: Sdf.Layer, mesh: Sdf.Path) -> list[str]:
    """The fields authored on ``mesh`` in ``layer`` (its display variants), in authoring order."""
    spec = layer.GetPrimAtPath(mesh)
    vset = spec.variantSets.get(DISPLAY_SET) if spec else None
    return list(vset.variants.keys()) if vset else []


def read_field_info(stage: Usd.Stage, meshes: Iterable[str]
                    ) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """The colour range of every field authored on ``meshes`` and the field each one shows.

    Returns:
        ``({quantity: (vmin, vmax)}, {mesh path: shown quantity})`` as composed on ``stage``.
    """
    ranges: dict[str, tuple[float, float]] = {}
    shown: dict[str, str] = {}
    for path in meshes:
        prim = stage.GetPrimAtPath(path)
        if not prim:
            continue
        for pv in UsdGeom.PrimvarsAPI(prim).GetPrimvarsWithAuthoredValues():
            info = pv.GetAttr().GetCustomDataByKey("twin3d")
            if isinstance(info, dict) and "vmin" in info and "vmax" in info:
                ranges[pv.GetPrimvarName()] = (float(info["vmin"]), float(info["vmax"]))
        attr = prim.GetAttribute(DISPLAY_ATTR)
        value = attr.Get() if attr else None
        if value:
            shown[path] = str(value)
    return ranges, shown
