"""Writing values into a layer with ``Sdf`` specs: the hot path of the live layer and recordings.

The ``Usd`` API composes the stage after every edit; these helpers write attribute specs into
one layer directly, so a batch of values inside one ``Sdf.ChangeBlock`` costs one
recomposition. Defaults (the live state) and time samples (recordings) go through the same
functions, so both say the same thing in the same attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pxr import Gf, Sdf, Vt

from twin3d.colormap import linear_state_color

__all__ = ["author_primvar", "bind_material", "copy_metrics", "ensure_attr", "state_color"]

_T = Sdf.ValueTypeNames


def ensure_attr(layer: Sdf.Layer, prim_path: Sdf.Path, name: str,
                type_name: Sdf.ValueTypeName, **info: Any) -> Sdf.AttributeSpec:
    """Return the attribute spec ``name`` of ``prim_path`` in ``layer``, made if missing.

    Args:
        layer: the layer to author in.
        prim_path: the prim (an ``over`` is made in ``layer`` when it has no spec there).
        name: the attribute name, e.g. ``"twin:value"``.
        type_name: its value type, for a new spec.
        **info: metadata of a new spec, e.g. ``interpolation="vertex"``.
    """
    spec = layer.GetAttributeAtPath(prim_path.AppendProperty(name))
    if spec is None:
        prim = layer.GetPrimAtPath(prim_path) or Sdf.CreatePrimInLayer(layer, prim_path)
        spec = Sdf.AttributeSpec(prim, name, type_name, Sdf.VariabilityVarying, False)
        for key, value in info.items():
            spec.SetInfo(key, value)
    return spec


def _indexed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (n,) or (n, k) values into (unique values, (n,) int32 indices)."""
    if values.ndim == 1:
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq, inverse.astype(np.int32).reshape(-1)
    rows = np.ascontiguousarray(values)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], inverse.astype(np.int32).reshape(-1)


def author_primvar(layer: Sdf.Layer, prim: Sdf.Path, name: str, values: np.ndarray,
                   time: float | None = None) -> Sdf.AttributeSpec:
    """Author a vertex primvar as indexed values: the default, or a time sample at ``time``.

    NVIDIA's IndexedPrimvarChecker wants repeated values indexed. The first time sample is
    also written as the default, for readers of the default time.

    Args:
        layer: the layer to author in.
        prim: the mesh prim.
        name: the primvar name without ``primvars:``.
        values: (n,) float32 scalars, or (n, 3) float32 colours (``color3f[]``).
        time: the time code, or ``None`` for the default value.

    Returns:
        The primvar's attribute spec.
    """
    colour = values.ndim == 2
    type_name = _T.Color3fArray if colour else _T.FloatArray
    uniq, idx = _indexed(values)
    vt = Vt.Vec3fArray.FromNumpy(uniq) if colour else Vt.FloatArray.FromNumpy(uniq)
    spec = ensure_attr(layer, prim, f"primvars:{name}", type_name, interpolation="vertex")
    ispec = ensure_attr(layer, prim, f"primvars:{name}:indices", _T.IntArray)
    if time is None:
        spec.default, ispec.default = vt, Vt.IntArray.FromNumpy(idx)
    else:
        layer.SetTimeSample(spec.path, time, vt)
        layer.SetTimeSample(ispec.path, time, Vt.IntArray.FromNumpy(idx))
        if not spec.HasDefaultValue():  # the first frame, for readers of the default time
            spec.default, ispec.default = vt, Vt.IntArray.FromNumpy(idx)
    return spec


def bind_material(layer: Sdf.Layer, prim_path: Sdf.Path, material: Sdf.Path) -> None:
    """Bind ``material`` to a prim with opinions in ``layer`` (stronger than the layers below)."""
    prim = layer.GetPrimAtPath(prim_path) or Sdf.CreatePrimInLayer(layer, prim_path)
    schemas = prim.GetInfo("apiSchemas")
    if "MaterialBindingAPI" not in schemas.prependedItems:
        prim.SetInfo("apiSchemas", Sdf.TokenListOp.Create(
            prependedItems=[*schemas.prependedItems, "MaterialBindingAPI"]))
    rel = layer.GetRelationshipAtPath(prim_path.AppendProperty("material:binding"))
    if rel is None:
        rel = Sdf.RelationshipSpec(prim, "material:binding", False)
    if list(rel.targetPathList.explicitItems) != [material]:
        rel.targetPathList.explicitItems = [material]


def copy_metrics(src: Sdf.Layer, dst: Sdf.Layer) -> None:
    """Copy ``upAxis``, ``metersPerUnit`` and the defaultPrim of ``src`` to ``dst``."""
    for key in ("upAxis", "metersPerUnit"):
        if src.pseudoRoot.HasInfo(key):
            dst.pseudoRoot.SetInfo(key, src.pseudoRoot.GetInfo(key))
    if src.defaultPrim:
        dst.defaultPrim = src.defaultPrim


def state_color(state: str) -> Vt.Vec3fArray:
    """The constant ``displayColor`` (linear RGB) of a sensor marker in ``state``.

    Args:
        state: ``ok``, ``warn``, ``alarm``, ``stale`` or ``suspect``.
    """
    return Vt.Vec3fArray([Gf.Vec3f(*linear_state_color(state))])
