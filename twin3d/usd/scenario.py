"""What-if scenarios in USD: the ``scenario`` variant set of a twin's live layer.

The default prim gets a ``scenario`` variant set: ``live`` (reality, as the live layer shows
it) and one variant per what-if. Switch it in usdview (the root prim's Metadata tab) or
Omniverse to see the scenario on the part.

Why two levels: the live layer's own opinions (sensor values, the mesh's field colours in its
``displayField`` variants) are stronger than anything an ancestor's variant says (USD's LIVRPS
order), so the root's variant cannot recolour a mesh itself. Each mesh therefore gets its own
``scenario`` variant set, placed before ``displayField`` so that it is the stronger of the two;
its variant of a what-if holds the scenario's colours (``primvars:displayColor``, in the
field's fixed colour range), ``primvars:<quantity>_scenario`` and
``primvars:<quantity>_difference`` (scenario minus live). The root's variant of a what-if only
selects the meshes' variants (``live`` selects nothing: the meshes show reality). The predicted
readings go on the sensor prims inside the root's variant as ``twin:scenarioValue`` and
``twin:scenarioState`` (their live ``twin:value`` stays: it is the live layer's own opinion).
:func:`scenario_fields` reads a scenario's predicted fields back (``twin3d view --difference``
shows one minus the live field).

Examples:
    >>> author_scenario(twin.stage, "heater_x2", fields, differences, readings,  # doctest: +SKIP
    ...                 states=states, ranges=twin.field_ranges, shown=twin.displayed_fields)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from pxr import Sdf, Usd, UsdGeom

from twin3d.colormap import linear_colorize
from twin3d.errors import StageError
from twin3d.usd.bindings import sensor_prims
from twin3d.usd.spec import author_primvar, ensure_attr

__all__ = ["LIVE_VARIANT", "SCENARIO_SET", "author_scenario", "scenario_fields", "scenario_names",
           "select_scenario"]

#: The variant set of the default prim (and of each mesh a scenario recolours).
SCENARIO_SET = "scenario"
#: The variant that shows reality.
LIVE_VARIANT = "live"

_T = Sdf.ValueTypeNames


def _variant(spec: Sdf.PrimSpec, name: str, *, first: bool) -> Sdf.PrimSpec:
    """The (emptied) variant ``name`` of ``spec``'s scenario set; the set made if missing."""
    vset = spec.variantSets.get(SCENARIO_SET)
    if vset is None:
        vset = Sdf.VariantSetSpec(spec, SCENARIO_SET)
    names = spec.variantSetNameList
    others = [n for n in names.prependedItems if n != SCENARIO_SET]
    wanted = [SCENARIO_SET, *others] if first else [*others, SCENARIO_SET]
    if list(names.prependedItems) != wanted:
        names.prependedItems = wanted
    old = vset.variants.get(name)
    if old is not None:
        vset.RemoveVariant(old)
    return Sdf.VariantSpec(vset, name).primSpec


def author_scenario(stage: Usd.Stage, name: str, fields: Mapping[str, Mapping[str, npt.ArrayLike]],
                    differences: Mapping[str, Mapping[str, npt.ArrayLike]],
                    readings: Mapping[str, float], *, states: Mapping[str, str],
                    ranges: Mapping[str, tuple[float, float]], shown: Mapping[str, str]) -> None:
    """Author (or replace) the what-if ``name`` in the stage's edit target (the live layer).

    Args:
        stage: the twin's stage (``Twin.stage``: its edit target is the live layer).
        name: the variant's name (not ``live``).
        fields: ``{mesh path: {quantity: (n_points,) predicted field}}``.
        differences: the same shape: predicted minus live.
        readings: ``{channel: predicted reading}``.
        states: ``{channel: state}`` of the predicted readings (``ok``, ``warn``, ``alarm``).
        ranges: the colour range of each quantity.
        shown: the field each mesh shows (the scenario recolours that one, else its first).

    Raises:
        StageError: ``name`` is ``live``, or the stage has no default prim.
    """
    if name == LIVE_VARIANT:
        raise StageError(f"'{LIVE_VARIANT}' is reality's variant; name the scenario otherwise")
    root_prim = stage.GetDefaultPrim()
    if not root_prim:
        raise StageError("the stage has no defaultPrim to carry the scenario variant set")
    layer = stage.GetEditTarget().GetLayer()
    root = root_prim.GetPath()
    prims = {c: p.GetPath() for c, p in sensor_prims(stage).items()}
    with Sdf.ChangeBlock():
        root_spec = layer.GetPrimAtPath(root) or Sdf.CreatePrimInLayer(layer, root)
        if LIVE_VARIANT not in _names(root_spec):  # reality: no opinion at all
            _variant(root_spec, LIVE_VARIANT, first=True)
        scenario = _variant(root_spec, name, first=True)
        for mesh, by_q in fields.items():
            mesh_path = Sdf.Path(mesh)
            if not mesh_path.HasPrefix(root):
                raise StageError(f"mesh {mesh} is not under the default prim {root}")
            mesh_spec = layer.GetPrimAtPath(mesh_path) or Sdf.CreatePrimInLayer(layer, mesh_path)
            if LIVE_VARIANT not in _names(mesh_spec):
                _variant(mesh_spec, LIVE_VARIANT, first=True)
            variant = _variant(mesh_spec, name, first=True)
            vpath = variant.path
            for q, values in by_q.items():
                arr = np.asarray(values, dtype=np.float32).reshape(-1)
                author_primvar(layer, vpath, f"{q}_scenario", arr)
                diff = np.asarray(differences[mesh][q], dtype=np.float32).reshape(-1)
                author_primvar(layer, vpath, f"{q}_difference", diff)
            chosen = shown.get(mesh)
            q = chosen if chosen is not None and chosen in by_q else next(iter(by_q))
            lo, hi = ranges[q]
            colors = linear_colorize(np.asarray(by_q[q], dtype=np.float32).reshape(-1), lo, hi)
            author_primvar(layer, vpath, "displayColor", colors)
            ensure_attr(layer, vpath, "twin:scenario", _T.String).default = name
            over = Sdf.CreatePrimInLayer(layer, scenario.path.AppendPath(mesh_path.MakeRelativePath(root)))
            over.variantSelections[SCENARIO_SET] = name
        for channel, value in readings.items():
            path = prims.get(channel)
            if path is None:
                continue
            at = scenario.path.AppendPath(path.MakeRelativePath(root))
            ensure_attr(layer, at, "twin:scenarioValue", _T.Double).default = float(value)
            ensure_attr(layer, at, "twin:scenarioState", _T.Token).default = states.get(channel, "ok")
        if SCENARIO_SET not in root_spec.variantSelections:
            root_spec.variantSelections[SCENARIO_SET] = LIVE_VARIANT


def _names(spec: Sdf.PrimSpec) -> list[str]:
    vset = spec.variantSets.get(SCENARIO_SET)
    return list(vset.variants.keys()) if vset is not None else []


def scenario_names(stage: Usd.Stage) -> list[str]:
    """The variants of the default prim's ``scenario`` set (``live`` first), as composed."""
    root = stage.GetDefaultPrim()
    if not root or not root.GetVariantSets().HasVariantSet(SCENARIO_SET):
        return []
    names = list(root.GetVariantSets().GetVariantSet(SCENARIO_SET).GetVariantNames())
    return sorted(names, key=lambda n: (n != LIVE_VARIANT, n))


def select_scenario(stage: Usd.Stage, name: str) -> None:
    """Show scenario ``name`` (or ``live``): the default prim's selection, in the edit target.

    Raises:
        StageError: no such scenario.
    """
    names = scenario_names(stage)
    if name not in names:
        raise StageError(f"no scenario {name!r} (scenarios: {', '.join(names) or 'none'})")
    stage.GetDefaultPrim().GetVariantSets().GetVariantSet(SCENARIO_SET).SetVariantSelection(name)


def scenario_fields(stage: Usd.Stage, name: str) -> dict[str, dict[str, npt.NDArray[np.float32]]]:
    """The predicted fields of what-if ``name``, as authored (``primvars:<quantity>_scenario``).

    The scenario is selected in the stage's session layer while the fields are read, and
    deselected after: the stage's layers are not changed.

    Returns:
        ``{mesh path: {quantity: (n_points,) float32}}``.

    Raises:
        StageError: no what-if ``name`` (the message lists those there are), or ``live``.
    """
    whatifs = [n for n in scenario_names(stage) if n != LIVE_VARIANT]
    if name not in whatifs:
        there = ", ".join(whatifs) or "none: make one with twin3d whatif"
        raise StageError(f"no scenario {name!r} to compare with live (scenarios: {there})")
    root = stage.GetDefaultPrim()
    vset = root.GetVariantSets().GetVariantSet(SCENARIO_SET)
    out: dict[str, dict[str, npt.NDArray[np.float32]]] = {}
    with Usd.EditContext(stage, stage.GetSessionLayer()):
        vset.SetVariantSelection(name)
        try:
            for prim in Usd.PrimRange(root):
                for primvar in UsdGeom.PrimvarsAPI(prim).GetPrimvars():
                    quantity = primvar.GetPrimvarName().removesuffix("_scenario")
                    if quantity != primvar.GetPrimvarName():
                        values = primvar.ComputeFlattened()
                        out.setdefault(str(prim.GetPath()), {})[quantity] = np.asarray(
                            values, dtype=np.float32).reshape(-1)
        finally:
            vset.ClearVariantSelection()
    return out
