"""What-if: the forward model run with changed inputs from the current fitted state.

The inputs fitted to the current readings (``twin/input/<name>``) are changed as asked, the
model's forward response gives the readings every sensor would show
(:meth:`~twin3d.fields.base.LinearFieldModel.readings`), and the model's own ``W`` applied to
those readings gives the fields: readings that the physics explains exactly leave nothing for
the residual kriging, so the field is the physics' own for the new inputs. The difference
field is the scenario's field minus the field shown now.

A scenario is authored into the twin's live layer as a variant of the ``scenario`` variant set
(:mod:`twin3d.usd.scenario`), beside ``live``.

Examples:
    >>> result = engine.what_if({"heater": "x2", "ambient": 35.0})      # doctest: +SKIP
    >>> result.readings["plate/tc5"], result.name                        # doctest: +SKIP
    (118.2, 'heater_x2_ambient_35')
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.errors import EngineError
from twin3d.fields.base import ImplausibleInputWarning

__all__ = ["WhatIf", "author_what_if", "parse_change", "run_what_if", "scenario_name"]

F32 = npt.NDArray[np.float32]
_FACTOR = re.compile(r"\s*[x×*]\s*([-+0-9.eE]+)\s*")
_VARIANT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, eq=False)
class WhatIf:
    """A scenario's predictions.

    Attributes:
        name: the scenario's name (its variant in the ``scenario`` variant set).
        changes: the changes as asked, ``{input: "x2" | value}``.
        baseline: the inputs fitted to the current readings, by published name.
        inputs: the scenario's inputs, by published name.
        readings: ``{channel: predicted reading}`` for the sensors of the changed models.
        fields: ``{mesh path: {quantity: (n_vertices,) float32}}`` the predicted fields.
        differences: the same shape: predicted minus the field from the current readings.
    """

    name: str
    changes: dict[str, str | float]
    baseline: dict[str, float]
    inputs: dict[str, float]
    readings: dict[str, float]
    fields: dict[str, dict[str, F32]]
    differences: dict[str, dict[str, F32]]


def parse_change(name: str, value: float | str, fitted: float) -> float:
    """The new value of one input: a number sets it, ``"x1.2"`` scales the fitted value.

    Raises:
        EngineError: neither a number nor a factor.

    Examples:
        >>> parse_change("heater", "x1.5", 20.0), parse_change("ambient", "35", 21.0)
        (30.0, 35.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    elif isinstance(value, str) and (m := _FACTOR.fullmatch(value)):
        try:
            out = float(m.group(1)) * fitted
        except ValueError:
            out = math.nan
    else:
        try:
            out = float(value) if isinstance(value, str) else math.nan
        except ValueError:
            out = math.nan
    if not math.isfinite(out):
        raise EngineError(f"{name}={value}: give a value in the input's unit (e.g. {name}=35) "
                          f"or a factor of its fitted value (e.g. {name}=x1.2)")
    return out


def scenario_name(changes: Mapping[str, float | str], name: str | None = None) -> str:
    """The scenario's variant name: ``name`` checked, or one made from the changes.

    Raises:
        EngineError: ``name`` is not a valid variant name, or is ``live``.

    Examples:
        >>> scenario_name({"heater": "x1.2", "ambient": 35.0})
        'heater_x1_2_ambient_35'
    """
    if name is None:
        parts = []
        for key, value in changes.items():
            text = value if isinstance(value, str) else f"{value:g}"
            parts.append(f"{key}_{text}")
        name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts).replace("×", "x").replace("*", "x"))
        name = re.sub(r"_+", "_", name).strip("_") or "scenario"
        if name[0].isdigit():
            name = f"s_{name}"
    if not _VARIANT.fullmatch(name) or name == "live":
        raise EngineError(f"scenario name {name!r}: use letters, digits and '_' (not starting "
                          "with a digit), and not 'live' (reality's variant)")
    return name


def run_what_if(engine: Any, changes: Mapping[str, float | str], name: str | None = None) -> WhatIf:
    """Run a what-if on an :class:`~twin3d.engine.core.Engine` (see :meth:`Engine.what_if`).

    Raises:
        EngineError: no changes, an unknown input, a bad value, no forward model, or no
            current values.
    """
    if not changes:
        raise EngineError("no change given: set at least one input, e.g. heater=x1.2")
    known = {n: g for g in engine.groups for n in g.names}
    unknown = [k for k in changes if k not in known]
    if unknown:
        names = ", ".join(known) or "none: the twin has no physics model with a forward response"
        raise EngineError(f"unknown input {unknown[0]!r} (inputs: {names})")
    label = scenario_name(changes, name)
    values = engine.state_values()
    if not values:
        raise EngineError("the twin has no current values to start from: run the engine on a "
                          "bridge first (twin3d engine), or update the twin")
    baseline: dict[str, float] = {}
    inputs: dict[str, float] = {}
    readings: dict[str, float] = {}
    fields: dict[str, dict[str, F32]] = {}
    differences: dict[str, dict[str, F32]] = {}
    for g in engine.groups:
        if not g.names:
            continue
        current, fitted = engine.group_values(g, values)
        if not np.isfinite(fitted).all():
            if any(k in g.names for k in changes):
                raise EngineError(f"the {g.quantity} model of {g.mesh} has no current readings "
                                  "to fit its inputs to")
            continue
        base = dict(zip(g.names, fitted.tolist(), strict=True))
        new = {n: (parse_change(n, changes[n], base[n]) if n in changes else base[n]) for n in g.names}
        baseline |= base
        inputs |= new
        predicted = g.model.readings({full: new[n] for full, n in zip(g.inputs, g.names, strict=True)})
        readings |= predicted
        if g.scratch is None:   # the engine's model keeps its state; a copy computes the fields
            g.scratch = type(g.model).from_arrays(g.model.to_arrays())
        with warnings.catch_warnings():   # an impossible scenario is the user's question
            warnings.simplefilter("ignore", ImplausibleInputWarning)
            scenario = np.array(g.scratch.update(predicted), dtype=np.float32)
        fitted_readings = g.model.readings({full: base[n] for full, n in zip(g.inputs, g.names, strict=True)})
        now = {c: current.get(c, fitted_readings[c]) for c in g.channels}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImplausibleInputWarning)
            live = np.array(g.scratch.update(now), dtype=np.float32)
        fields.setdefault(g.mesh, {})[g.quantity] = scenario
        differences.setdefault(g.mesh, {})[g.quantity] = scenario - live
    return WhatIf(label, dict(changes), baseline, inputs, readings, fields, differences)


def author_what_if(twin: Any, result: WhatIf) -> None:
    """Author a what-if into the twin's live layer as a ``scenario`` variant, and save it.

    The fields go on the prims that show them: a mesh's display surface where it has one
    (``MeshData.prim``), the mesh itself otherwise.
    """
    from twin3d.colormap import ALARM_COLORS
    from twin3d.usd.scenario import author_scenario

    ranges = dict(twin.field_ranges)
    for by_q in result.fields.values():
        for q, values in by_q.items():
            if q not in ranges:
                lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
                ranges[q] = (lo, hi if hi > lo else lo + 1.0)
    sensors = twin.sensors
    states = {}
    for channel, value in result.readings.items():
        state = sensors[channel].limits.state(value) if channel in sensors else "ok"
        states[channel] = state if state in ALARM_COLORS else "ok"
    prim = {m.path: m.prim for m in twin.meshes}
    shown = twin.displayed_fields
    author_scenario(twin.stage, result.name, {prim[m]: by_q for m, by_q in result.fields.items()},
                    {prim[m]: by_q for m, by_q in result.differences.items()}, result.readings,
                    states=states, ranges=ranges, shown={prim[m]: q for m, q in shown.items()})
    twin.save()
