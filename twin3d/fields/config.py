"""The ``[model]`` table of the sensor map: one schema and one checker for every key.

:func:`check_model` runs when the sensor map is parsed (so ``twin3d bind`` refuses a bad
table) and again when a model is built. Each problem is one line naming the table, the key
and what is allowed, in the sensor keys' style::

    [model.thermal]: unknown key 'conductivty' (allowed: conductivity, convection, ...);
    did you mean 'conductivity'?

The schema (lengths in stage units; see :mod:`twin3d.fields` for an annotated example):

* ``[model]``: ``regions``, ``thermal``, ``kriging``, ``stress``;
* ``[model.regions.NAME]``: ``box``, ``sphere`` {``center``, ``radius``}, ``cylinder``
  {``center``, ``axis``, ``radius``, ``outside``, ``wall``}, ``normal``, ``angle``, ``all``,
  ``description``;
* ``[model.thermal]``: ``conductivity``, ``sources``, ``fixed``, ``noise``,
  ``residual_kriging``, ``kriging_range``, ``nugget``, ``tets``, ``mesh_quality``,
  ``convection`` {``h``, ``region``};
* ``[model.kriging]``: ``quantities``, ``range``, ``nugget``, ``noise``;
* ``[model.stress]``: ``E``, ``nu``, ``unit``, ``fixed``, ``gauge_direction``,
  ``gauge_directions``, ``tets``, ``mesh_quality``, ``load`` (``[[model.stress.load]]``:
  ``name``, ``region``, ``force`` or ``pressure``, ``channel``).

Examples:
    >>> check_model({"regions": {"pad": {"normal": [0, 0, -1]}},
    ...              "thermal": {"sources": ["pad"], "convection": {"h": 10.0}}})
    >>> try:
    ...     check_model({"thermal": {"h": 10.0}})
    ... except FieldError as exc:
    ...     print(str(exc).split(" (")[0], "...", str(exc).split("; ")[-1])
    [model.thermal]: unknown key 'h' ... 'h' belongs in [model.thermal.convection]
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from twin3d.errors import FieldError
from twin3d.model import QUANTITIES

__all__ = ["DEFAULT_MESH_QUALITY", "STRESS_UNITS", "check_model", "check_region", "mesh_quality"]

#: Output units of the stress model and their size in Pa.
STRESS_UNITS = {"Pa": 1.0, "kPa": 1e3, "MPa": 1e6, "GPa": 1e9, "psi": 6894.757293168}
#: TetGen's radius-edge ratio and smallest dihedral angle (degrees) when none is given.
DEFAULT_MESH_QUALITY = (2.0, 10.0)


@dataclass(frozen=True)
class _Leaf:
    """A value that is not a table: ``test`` says if it is fine, ``expected`` what it must be."""

    expected: str
    test: Callable[[Any], bool]


@dataclass(frozen=True)
class _Table:
    keys: Mapping[str, _Spec]


@dataclass(frozen=True)
class _TableArray:  # [[name]]
    item: _Table


@dataclass(frozen=True)
class _NamedTables:  # a table whose keys are free names (regions, per-gauge directions)
    item: _Spec
    expected: str


_Spec = _Leaf | _Table | _TableArray | _NamedTables


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _vector(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 3 and all(_number(x) for x in v)


def _strings(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)


_POSITIVE = _Leaf("a number > 0", lambda v: _number(v) and v > 0)
_NON_NEGATIVE = _Leaf("a number >= 0", lambda v: _number(v) and v >= 0)
_NUMBER = _Leaf("a number", _number)
_BOOL = _Leaf("true or false", lambda v: isinstance(v, bool))
_TEXT = _Leaf("a string", lambda v: isinstance(v, str))
_POINT = _Leaf("a point [x, y, z]", _vector)
_DIRECTION = _Leaf("a direction [x, y, z], not all zero",
                   lambda v: _vector(v) and any(x != 0 for x in v))
_REGION_NAMES = _Leaf('a list of region names, e.g. ["heater"]', _strings)
_TETS = _Leaf("a whole number > 0 (rough tetrahedron count)",
              lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0)
_QUALITY = _Leaf("[radius_edge_ratio, min_angle_deg], e.g. [2.0, 10.0]",
                 lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                 and all(_number(x) for x in v) and v[0] > 0 and v[1] >= 0)

_REGION = _Table({
    "box": _Leaf("[[xmin, ymin, zmin], [xmax, ymax, zmax]]",
                 lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                 and all(_vector(c) for c in v)),
    "sphere": _Table({"center": _POINT, "radius": _POSITIVE}),
    "cylinder": _Table({"center": _POINT, "axis": _DIRECTION, "radius": _POSITIVE,
                        "outside": _BOOL, "wall": _BOOL}),
    "normal": _DIRECTION,
    "angle": _Leaf("an angle in degrees, > 0 and <= 180", lambda v: _number(v) and 0 < v <= 180),
    "all": _BOOL,
    "description": _TEXT,
})
_THERMAL = _Table({
    "conductivity": _POSITIVE,
    "sources": _REGION_NAMES,
    "fixed": _REGION_NAMES,
    "noise": _NON_NEGATIVE,
    "residual_kriging": _BOOL,
    "kriging_range": _POSITIVE,
    "nugget": _POSITIVE,
    "tets": _TETS,
    "mesh_quality": _QUALITY,
    "convection": _Table({"h": _POSITIVE, "region": _TEXT}),
})
_KRIGING = _Table({
    "quantities": _Leaf(f"a list of quantities ({', '.join(QUANTITIES)})",
                        lambda v: _strings(v) and all(q in QUANTITIES for q in v)),
    "range": _POSITIVE,
    "nugget": _POSITIVE,
    "noise": _NON_NEGATIVE,
})
_LOAD = _Table({"name": _TEXT, "region": _TEXT, "force": _POINT, "pressure": _NUMBER,
                "channel": _TEXT})
_STRESS = _Table({
    "E": _POSITIVE,
    "nu": _Leaf("a number > -1 and < 0.5", lambda v: _number(v) and -1 < v < 0.5),
    "unit": _Leaf(f"one of {', '.join(STRESS_UNITS)}", lambda v: v in STRESS_UNITS),
    "fixed": _REGION_NAMES,
    "gauge_direction": _DIRECTION,
    "gauge_directions": _NamedTables(_DIRECTION, '{ "channel" = [x, y, z], ... }'),
    "tets": _TETS,
    "mesh_quality": _QUALITY,
    "load": _TableArray(_LOAD),
})
_MODEL = _Table({"regions": _NamedTables(_REGION, "a table of named regions"),
                 "thermal": _THERMAL, "kriging": _KRIGING, "stress": _STRESS})

#: Names people reach for, and the key that means it.
_SYNONYMS = {"poisson": "nu", "poissons_ratio": "nu", "poisson_ratio": "nu", "young": "E",
             "youngs_modulus": "E", "modulus": "E", "k": "conductivity",
             "thermal_conductivity": "conductivity", "sigma": "noise", "heaters": "sources"}


def _tables(spec: _Table, name: str) -> Iterator[tuple[str, _Table]]:
    """Every table of the schema with its TOML name (free names shown as ``NAME``)."""
    yield name, spec
    for key, sub in spec.keys.items():
        if isinstance(sub, _Table):
            yield from _tables(sub, f"{name}.{key}")
        elif isinstance(sub, _TableArray):
            yield from _tables(sub.item, f"{name}.{key}")
        elif isinstance(sub, _NamedTables) and isinstance(sub.item, _Table):
            yield from _tables(sub.item, f"{name}.{key}.NAME")


_ALL_TABLES = list(_tables(_MODEL, "model"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_key(key: str, spec: _Table, table: str) -> FieldError:
    allowed = sorted(spec.keys)
    hint = ""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    if key in _SYNONYMS and _SYNONYMS[key] in allowed:
        hint = f"; did you mean {_SYNONYMS[key]!r}?"
    elif close:
        hint = f"; did you mean {close[0]!r}?"
    else:
        homes = [n for n, t in _ALL_TABLES if key in t.keys and t is not spec]
        if homes:
            hint = f"; {key!r} belongs in [{homes[0]}]"
    return FieldError(f"{table}: unknown key {key!r} (allowed: {', '.join(allowed)}){hint}")


def _check(value: Any, spec: _Spec, name: str, table: str, key: str) -> None:
    """Check ``value`` (key ``key`` of table ``table``; ``name`` its own dotted name)."""
    if isinstance(spec, _Leaf):
        if not spec.test(value):
            raise FieldError(f"{table}: {key} must be {spec.expected} (got {_short(value)})")
    elif isinstance(spec, _Table):
        if not isinstance(value, Mapping):
            raise FieldError(f"{table}: {key} must be a table: write [{name}] with its keys "
                             f"({', '.join(sorted(spec.keys))})")
        unknown = sorted(str(k) for k in value if k not in spec.keys)
        if unknown:
            raise _unknown_key(unknown[0], spec, f"[{name}]")
        for k, sub in spec.keys.items():
            if k in value:
                _check(value[k], sub, f"{name}.{k}", f"[{name}]", k)
    elif isinstance(spec, _TableArray):
        if not isinstance(value, (list, tuple)) or not all(isinstance(t, Mapping) for t in value):
            raise FieldError(f"{table}: {key} must be an array of tables: write [[{name}]] "
                             "once per entry")
        for i, item in enumerate(value, start=1):
            label = f"[[{name}]] #{i}" + (f" {item['name']!r}" if "name" in item else "")
            unknown = sorted(str(k) for k in item if k not in spec.item.keys)
            if unknown:
                raise _unknown_key(unknown[0], spec.item, label)
            for k, sub in spec.item.keys.items():
                if k in item:
                    _check(item[k], sub, f"{name}.{k}", label, k)
    else:
        if not isinstance(value, Mapping):
            raise FieldError(f"{table}: {key} must be {spec.expected}")
        for k, item in value.items():
            _check(item, spec.item, f"{name}.{k}", f"[{name}]", repr(str(k)))


def check_region(name: str, region: Any) -> None:
    """Check one ``[model.regions.NAME]`` table.

    Raises:
        FieldError: an unknown key, a malformed shape, or a region that selects nothing.
    """
    _check(region, _REGION, f"model.regions.{name}", "[model.regions]", name)
    if not any(k in region for k in ("box", "sphere", "cylinder", "normal")) and not region.get(
            "all", False):
        raise FieldError(f"[model.regions.{name}]: region {name!r} selects nothing: give box, "
                         "sphere, cylinder, normal or all = true")
    if "angle" in region and "normal" not in region and not region.get("cylinder", {}).get(
            "wall", False):
        raise FieldError(f"[model.regions.{name}]: angle applies to normal and to a cylinder "
                         "with wall = true; add one of them or remove angle")


def _defined(regions: Mapping[str, Any], name: str, where: str) -> None:
    if name not in regions:
        raise FieldError(f"{where}: region {name!r} is not defined; add [model.regions.{name}] "
                         f"(defined: {', '.join(sorted(regions)) or 'none'})")


def check_model(model: Mapping[str, Any]) -> None:
    """Check every key, type and cross-reference of a ``[model]`` table.

    Args:
        model: the ``[model]`` table (``{}`` is fine: kriging only).

    Raises:
        FieldError: the first problem, one line naming the table, the key and the fix.
    """
    _check(model, _MODEL, "model", "[model]", "model")
    regions = model.get("regions", {})
    for name, region in regions.items():
        check_region(name, region)
    thermal = model.get("thermal")
    if thermal is not None:
        for key in ("sources", "fixed"):
            for name in thermal.get(key, []):
                _defined(regions, name, f"[model.thermal] {key}")
        conv = thermal.get("convection")
        if conv is not None:
            if "h" not in conv:
                raise FieldError("[model.thermal.convection]: needs h = <W/(m² K)>")
            if conv.get("region", "rest") != "rest":
                _defined(regions, conv["region"], "[model.thermal.convection] region")
        if not thermal.get("fixed") and conv is None:
            raise FieldError("[model.thermal]: no reference temperature: add fixed regions or "
                             "[model.thermal.convection]")
    stress = model.get("stress")
    if stress is not None:
        if "E" not in stress:
            raise FieldError("[model.stress]: needs E = <Pa> (Young's modulus)")
        if not stress.get("fixed"):
            raise FieldError("[model.stress]: needs fixed = [<region>, ...] to hold the part")
        loads = stress.get("load", [])
        if not loads:
            raise FieldError("[model.stress]: has no [[model.stress.load]] case")
        for name in stress["fixed"]:
            _defined(regions, name, "[model.stress] fixed")
        seen: set[str] = set()
        for i, load in enumerate(loads, start=1):
            label = str(load.get("name", f"load{i}"))
            where = f"[[model.stress.load]] #{i} {label!r}"
            if label in seen:
                raise FieldError(f"{where}: name {label!r} is used twice; names must differ")
            seen.add(label)
            if "region" not in load:
                raise FieldError(f"{where}: needs region = <name of a [model.regions] table>")
            _defined(regions, load["region"], where)
            if ("force" in load) == ("pressure" in load):
                raise FieldError(f"{where}: give one of force = [fx, fy, fz] (N) or "
                                 "pressure = <Pa>")


def mesh_quality(table: Mapping[str, Any]) -> tuple[float, float]:
    """TetGen's ``(radius_edge_ratio, min_angle_deg)`` of a checked thermal or stress table."""
    ratio, angle = table.get("mesh_quality", DEFAULT_MESH_QUALITY)
    return float(ratio), float(angle)
