"""The bindings file (sensor map): a TOML file that says which sensor sits where and which
channel drives which prim property. Pure: no USD.

One ``[[sensor]]`` table per sensor, one ``[[binding]]`` table per property binding
(:class:`PropertyBinding`; the reference is ``docs/bindings.md``); an optional ``[model]``
table for the field models is checked against its schema
(:func:`twin3d.fields.config.check_model`) and kept as a dict::

    snap_tolerance = 0.005            # metres; optional (default 5 mm)

    [[sensor]]
    channel = "plate/tc1"             # unique channel id
    quantity = "temperature"          # temperature|strain|stress|pressure|displacement|force|generic
    unit = "degC"
    target = "/Plate/Geom/Body"       # mesh prim the sensor sits on
    position = [0.05, 0.10, 0.0127]   # stage units, world space (or: vertex = 123)
    limits = { warn_high = 80, alarm_high = 95 }
    description = "near the heater"

    [[binding]]
    channel = "box/lid"               # the channel that drives the property
    prim = "/box_sides/Geom/lid"      # the prim it belongs to
    kind = "rotate"                   # rotate|translate|visible|color|attribute
    axis = [1, 0, 0]                  # world frame, unless frame = "local"
    pivot = [0.0, 0.1, 0.2]           # a point on the hinge (stage units)
    limits = [0, 110]                 # degrees: scale * value + offset, clamped

:func:`parse_sensor_map` checks everything that can be checked without a stage (types,
quantities, unique channels, limit order, every key of ``[model]`` and of each binding);
:func:`twin3d.usd.bind.bind_sensors` checks targets, positions and bound prims against the stage.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from twin3d._types import PathLike
from twin3d.colormap import DEFAULT_CMAP
from twin3d.errors import FieldError, SensorMapError
from twin3d.model import QUANTITIES, Limits, Sensor

__all__ = ["BINDING_KINDS", "DEFAULT_SNAP_TOLERANCE_M", "PropertyBinding", "SensorMap",
           "binding_name", "load_sensor_map", "parse_sensor_map"]

#: Default largest distance (metres) a sensor position may be from its target's surface.
DEFAULT_SNAP_TOLERANCE_M = 0.005

_SENSOR_KEYS = {"channel", "quantity", "unit", "target", "position", "vertex", "limits",
                "description"}
_LIMIT_KEYS = ("warn_low", "warn_high", "alarm_low", "alarm_high")
_TOP_KEYS = {"sensor", "binding", "model", "snap_tolerance", "virtual", "engine"}

#: What a channel can drive on a prim (``kind`` of a ``[[binding]]`` table).
BINDING_KINDS = ("rotate", "translate", "visible", "color", "attribute")
_COMMON_KEYS = ("channel", "prim", "kind", "name")
#: the keys each kind takes besides the common ones; the required ones come first
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "rotate": ("axis", "pivot", "scale", "offset", "limits", "frame"),
    "translate": ("axis", "scale", "offset", "limits", "frame"),
    "visible": ("threshold", "invert"),
    "color": ("colormap", "range", "states"),
    "attribute": ("attribute", "scale", "offset", "limits"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "rotate": ("axis", "pivot"), "translate": ("axis",), "visible": ("threshold",),
    "color": (), "attribute": ("attribute",)}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z_][A-Za-z0-9_]*)*")


def binding_name(kind: str, channel: str) -> str:
    """The default instance name of a binding: ``<kind>_<channel as identifier>``.

    Examples:
        >>> binding_name("rotate", "box/lid")
        'rotate_box_lid'
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{kind}_{channel}")


@dataclass(frozen=True)
class PropertyBinding:
    """A channel bound to a property of a prim: one ``[[binding]]`` table, or one instance of
    the ``Twin3DBindingAPI`` schema read back from a stage.

    The motion value is ``scale * value + offset``, clamped to ``lower`` .. ``upper``: degrees
    about ``axis`` through ``pivot`` (rotate), stage units along ``axis`` (translate), or the
    attribute's new value (attribute).

    Attributes:
        channel: the channel id that drives the property.
        prim: the bound prim's path.
        kind: one of :data:`BINDING_KINDS`.
        name: the instance name (a valid identifier, unique on the prim).
        axis: (3,) direction of a rotation or translation.
        pivot: (3,) a point on the rotation axis.
        frame: ``"world"``: axis and pivot are in world space (as written in the TOML), or
            ``"local"``: in the prim's own frame (as stored in the stage).
        scale: multiplies the channel value.
        offset: added after scaling.
        lower: lowest motion value, or None.
        upper: highest motion value, or None.
        threshold: visible: shown while the value is >= threshold (< threshold if ``invert``).
        invert: visible: show below the threshold instead.
        colormap: color: a matplotlib colour map over ``range``; "": state colours.
        range: color: the values shown as the map's first and last colours.
        states: color: the limits whose states (ok/warn/alarm) give the colour.
        attribute: attribute: the numeric attribute of the prim that takes the value.
    """

    channel: str
    prim: str
    kind: str
    name: str
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frame: str = "world"
    scale: float = 1.0
    offset: float = 0.0
    lower: float | None = None
    upper: float | None = None
    threshold: float = 0.5
    invert: bool = False
    colormap: str = ""
    range: tuple[float, float] = (0.0, 1.0)
    states: Limits = field(default_factory=Limits)
    attribute: str = ""

    def motion(self, value: float) -> float:
        """``scale * value + offset``, clamped to the limits.

        Examples:
            >>> PropertyBinding("a/b", "/A", "rotate", "r", scale=2.0, upper=90.0).motion(50.0)
            90.0
        """
        v = self.scale * float(value) + self.offset
        if self.lower is not None and v < self.lower:
            v = self.lower
        if self.upper is not None and v > self.upper:
            v = self.upper
        return v

    def visible(self, value: float) -> bool:
        """visible: whether the prim is shown at ``value``."""
        return (float(value) < self.threshold) if self.invert else (float(value) >= self.threshold)


@dataclass(frozen=True)
class SensorMap:
    """A parsed sensor map.

    Attributes:
        sensors: the sensors in file order (positions as written, not yet snapped).
        model: the raw ``[model]`` table for the field models (empty when absent).
        snap_tolerance: largest allowed distance from position to surface, metres,
            or ``None`` for the default (:data:`DEFAULT_SNAP_TOLERANCE_M`).
        source: where the map came from, for messages.
        bindings: the property bindings in file order (axes and pivots as written).
        engine: the twin engine's ``[[virtual]]`` and ``[engine]`` tables, raw but checked
            (:func:`twin3d.engine.config.parse_engine_tables`); empty when absent.
    """

    sensors: list[Sensor]
    model: dict[str, Any] = field(default_factory=dict)
    snap_tolerance: float | None = None
    source: str = "<sensor map>"
    bindings: list[PropertyBinding] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, channel: str) -> Sensor:
        for sensor in self.sensors:
            if sensor.channel == channel:
                return sensor
        raise KeyError(channel)

    @property
    def channels(self) -> list[str]:
        """Channel ids in file order."""
        return [s.channel for s in self.sensors]


def load_sensor_map(path: PathLike) -> SensorMap:
    """Read and check a sensor map file.

    Args:
        path: a TOML file.

    Raises:
        SensorMapError: the file is missing, not TOML, a sensor is malformed, or a key of
            ``[model]`` is unknown or of the wrong type (the message names the sensor or the
            table and key, and the problem).

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.toml"
        >>> _ = p.write_text('[[sensor]]\\nchannel="a/t"\\nquantity="temperature"\\n'
        ...                  'unit="degC"\\ntarget="/A/Geom/Body"\\nvertex=0\\n')
        >>> load_sensor_map(p).channels
        ['a/t']
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SensorMapError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SensorMapError(f"{p}: cannot read ({exc})") from None
    return parse_sensor_map(text, source=str(p))


def parse_sensor_map(text: str, *, source: str = "<sensor map>") -> SensorMap:
    """Parse the text of a sensor map.

    Args:
        text: TOML text.
        source: name used in error messages.

    Raises:
        SensorMapError: as :func:`load_sensor_map`.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SensorMapError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise SensorMapError(f"{source}: unknown top-level key {unknown[0]!r} "
                             f"(expected [[sensor]] and [[binding]] tables, [model], [[virtual]], [engine], "
                             "snap_tolerance)")
    tables = doc.get("sensor", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SensorMapError(f"{source}: 'sensor' must be an array of tables: write [[sensor]]")
    binding_tables = doc.get("binding", [])
    if not isinstance(binding_tables, list) or not all(isinstance(t, dict)
                                                       for t in binding_tables):
        raise SensorMapError(f"{source}: 'binding' must be an array of tables: write [[binding]]")
    if not tables and not binding_tables:
        raise SensorMapError(f"{source}: no [[sensor]] or [[binding]] tables")
    model = doc.get("model", {})
    if not isinstance(model, dict):
        raise SensorMapError(f"{source}: [model] must be a table")
    if model:
        from twin3d.fields.config import (
            check_model,  # numpy/scipy: only for maps with a model
        )

        try:
            check_model(model)
        except FieldError as exc:
            raise SensorMapError(f"{source}: {exc}") from None
    tol = doc.get("snap_tolerance")
    if tol is not None and (not _is_number(tol) or not tol >= 0 or not math.isfinite(tol)):
        raise SensorMapError(f"{source}: snap_tolerance must be a number >= 0 (metres)")
    sensors: list[Sensor] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(tables, start=1):
        sensor = _parse_sensor(table, i, source)
        if sensor.channel in seen:
            raise SensorMapError(f"{source}: sensor #{i} {sensor.channel!r}: duplicate channel "
                                 f"(already used by sensor #{seen[sensor.channel]})")
        seen[sensor.channel] = i
        sensors.append(sensor)
    bindings: list[PropertyBinding] = []
    names: dict[tuple[str, str], int] = {}
    for i, table in enumerate(binding_tables, start=1):
        binding = _parse_binding(table, i, source)
        key = (binding.prim, binding.name)
        if key in names:
            raise SensorMapError(f"{source}: binding #{i} {binding.channel!r}: {binding.prim} "
                                 f"already has a binding named {binding.name!r} (binding "
                                 f"#{names[key]}): give one of them another name = \"...\"")
        names[key] = i
        bindings.append(binding)
    engine: dict[str, Any] = {k: doc[k] for k in ("virtual", "engine") if k in doc}
    if engine:  # the twin engine's tables: checked by the engine's own parser
        from twin3d.engine.config import parse_engine_tables
        from twin3d.errors import EngineError

        try:
            parse_engine_tables(engine, source=source)
        except EngineError as exc:
            raise SensorMapError(str(exc)) from None
    return SensorMap(sensors, dict(model), None if tol is None else float(tol), source,
                     bindings, engine)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _parse_sensor(t: Mapping[str, Any], i: int, source: str) -> Sensor:
    channel = t.get("channel")
    name = f"sensor #{i}" + (f" {channel!r}" if isinstance(channel, str) else "")

    def fail(problem: str) -> SensorMapError:
        return SensorMapError(f"{source}: {name}: {problem}")

    unknown = sorted(set(t) - _SENSOR_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_SENSOR_KEYS))})")
    if not isinstance(channel, str) or not channel.strip():
        raise fail("missing channel: add channel = \"area/name\"")
    if channel != channel.strip() or any(c.isspace() for c in channel):
        raise fail("channel must not contain spaces")
    quantity = t.get("quantity")
    if quantity not in QUANTITIES:
        raise fail(f"quantity {quantity!r} is not one of {', '.join(QUANTITIES)}")
    unit = t.get("unit", "")
    if not isinstance(unit, str):
        raise fail("unit must be a string, e.g. \"degC\"")
    target = t.get("target")
    if not isinstance(target, str) or not target.startswith("/"):
        raise fail("target must be an absolute prim path, e.g. \"/Plate/Geom/Body\"")
    position, vertex = t.get("position"), t.get("vertex")
    if (position is None) == (vertex is None):
        raise fail("give exactly one of position = [x, y, z] or vertex = N")
    pos: tuple[float, float, float] | None = None
    if position is not None:
        if (not isinstance(position, list) or len(position) != 3
                or not all(_is_number(v) and math.isfinite(v) for v in position)):
            raise fail("position must be three finite numbers [x, y, z] in stage units")
        pos = (float(position[0]), float(position[1]), float(position[2]))
    if vertex is not None and (not isinstance(vertex, int) or isinstance(vertex, bool)
                               or vertex < 0):
        raise fail("vertex must be an integer >= 0")
    limits = _parse_limits(t.get("limits", {}), fail)
    description = t.get("description", "")
    if not isinstance(description, str):
        raise fail("description must be a string")
    return Sensor(channel=channel, quantity=quantity, unit=unit, target=target, position=pos,
                  vertex=vertex, limits=limits, description=description)


def _parse_limits(raw: object, fail: Any) -> Limits:
    if not isinstance(raw, dict):
        raise fail("limits must be a table, e.g. { warn_high = 80, alarm_high = 95 }")
    unknown = sorted(set(raw) - set(_LIMIT_KEYS))
    if unknown:
        raise fail(f"unknown limit {unknown[0]!r} (allowed: {', '.join(_LIMIT_KEYS)})")
    for key, v in raw.items():
        if not _is_number(v) or not math.isfinite(v):
            raise fail(f"limit {key} must be a finite number")
    lim = Limits(**{k: float(v) for k, v in raw.items()})
    order = [(k, getattr(lim, k)) for k in ("alarm_low", "warn_low", "warn_high", "alarm_high")]
    given = [(k, v) for k, v in order if v is not None]
    for (k1, v1), (k2, v2) in pairwise(given):
        if v1 > v2:
            raise fail(f"limits out of order: {k1} = {v1:g} > {k2} = {v2:g} "
                       "(need alarm_low <= warn_low <= warn_high <= alarm_high)")
    return lim


def _vector(value: object, what: str, fail: Callable[[str], SensorMapError]) -> tuple[float, ...]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(_is_number(v) and math.isfinite(v) for v in value)):
        raise fail(f"{what} must be three finite numbers [x, y, z]")
    return tuple(float(v) for v in value)


def _pair(value: object, what: str, fail: Callable[[str], SensorMapError],
          strict: bool = False) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in value)
            or (value[0] >= value[1] if strict else value[0] > value[1])):
        order = "<" if strict else "<="
        raise fail(f"{what} must be two finite numbers [low, high] with low {order} high")
    return float(value[0]), float(value[1])


def _number(t: Mapping[str, Any], key: str, default: float,
            fail: Callable[[str], SensorMapError]) -> float:
    v = t.get(key, default)
    if not _is_number(v) or not math.isfinite(v):
        raise fail(f"{key} must be a finite number")
    return float(v)


def _parse_binding(t: Mapping[str, Any], i: int, source: str) -> PropertyBinding:
    channel = t.get("channel")
    label = f"binding #{i}" + (f" {channel!r}" if isinstance(channel, str) else "")

    def fail(problem: str) -> SensorMapError:
        return SensorMapError(f"{source}: {label}: {problem}")

    kind = t.get("kind")
    if kind is None:
        raise fail(f"missing kind: add kind = \"rotate\" (one of {', '.join(BINDING_KINDS)})")
    if kind not in BINDING_KINDS:
        raise fail(f"kind {kind!r} is not one of {', '.join(BINDING_KINDS)}: add kind = "
                   "\"rotate\" (or another)")
    allowed = (*_COMMON_KEYS, *_KIND_KEYS[kind])
    unknown = [k for k in t if k not in allowed]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} for a {kind} binding "
                   f"(allowed: {', '.join(allowed)})")
    if not isinstance(channel, str) or not channel.strip():
        raise fail("missing channel: add channel = \"area/name\"")
    if any(c.isspace() for c in channel):
        raise fail("channel must not contain spaces")
    prim = t.get("prim")
    if not isinstance(prim, str) or not prim.startswith("/"):
        raise fail("prim must be an absolute prim path, e.g. \"/Box/Geom/lid\" "
                   "(see 'twin3d info')")
    for key in _REQUIRED[kind]:
        if key not in t:
            raise fail(f"a {kind} binding needs {key}: add {key} = {_EXAMPLES[key]}")
    name = t.get("name", binding_name(kind, channel))
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise fail("name must be an identifier (letters, digits and '_', not starting with a "
                   "digit)")
    args: dict[str, Any] = {"channel": channel, "prim": prim, "kind": kind, "name": name}
    if "axis" in t:
        axis = _vector(t["axis"], "axis", fail)
        if math.hypot(*axis) < 1e-12:
            raise fail("axis must not be zero: give a direction, e.g. [0, 0, 1]")
        args["axis"] = axis
    if "pivot" in t:
        args["pivot"] = _vector(t["pivot"], "pivot", fail)
    if "frame" in t:
        if t["frame"] not in ("world", "local"):
            raise fail("frame must be \"world\" (axis and pivot in world space) or \"local\" "
                       "(in the prim's own frame)")
        args["frame"] = t["frame"]
    if "scale" in t:
        args["scale"] = _number(t, "scale", 1.0, fail)
    if "offset" in t:
        args["offset"] = _number(t, "offset", 0.0, fail)
    if "limits" in t:
        args["lower"], args["upper"] = _pair(t["limits"], "limits", fail)
    if "threshold" in t:
        args["threshold"] = _number(t, "threshold", 0.5, fail)
    if "invert" in t:
        if not isinstance(t["invert"], bool):
            raise fail("invert must be true or false")
        args["invert"] = t["invert"]
    if kind == "color":
        _parse_color(t, args, fail)
    if kind == "attribute":
        attr = t["attribute"]
        if not isinstance(attr, str) or not _ATTRIBUTE_NAME.fullmatch(attr):
            raise fail("attribute must be an attribute name, e.g. \"inputs:intensity\"")
        args["attribute"] = attr
    return PropertyBinding(**args)


def _parse_color(t: Mapping[str, Any], args: dict[str, Any],
                 fail: Callable[[str], SensorMapError]) -> None:
    has_map = "colormap" in t or "range" in t
    if has_map == ("states" in t):
        raise fail("a color binding needs colormap = \"viridis\" with range = [low, high], "
                   "or states = { warn_high = 80, alarm_high = 95 } (not both)")
    if "states" in t:
        limits = _parse_limits(t["states"], fail)
        if limits == Limits():
            raise fail("states must give at least one limit, e.g. { warn_high = 80 }")
        args["states"] = limits
        return
    if "range" not in t:
        raise fail("a colormap needs range = [low, high]: the values of its first and last "
                   "colours")
    args["range"] = _pair(t["range"], "range", fail, strict=True)
    name = t.get("colormap", DEFAULT_CMAP)
    from matplotlib import (
        colormaps,  # only for maps with colours (pyvista depends on it)
    )

    if not isinstance(name, str) or name not in colormaps:
        raise fail(f"colormap {name!r} is not a matplotlib colour map (e.g. viridis, cividis, "
                   "inferno)")
    args["colormap"] = name


_EXAMPLES = {"axis": "[0, 0, 1]", "pivot": "[x, y, z] (a point on the axis, stage units)",
             "threshold": "0.5", "attribute": "\"inputs:intensity\""}
