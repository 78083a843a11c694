"""The sensor map: a TOML file that says which sensor sits where. Pure: no USD.

One ``[[sensor]]`` table per sensor; an optional ``[model]`` table for the field models is
checked against its schema (:func:`twin3d.fields.config.check_model`) and kept as a dict::

    snap_tolerance = 0.005            # metres; optional (default 5 mm)

    [[sensor]]
    channel = "plate/tc1"             # unique channel id
    quantity = "temperature"          # temperature|strain|stress|pressure|displacement|force|generic
    unit = "degC"
    target = "/Plate/Geom/Body"       # mesh prim the sensor sits on
    position = [0.05, 0.10, 0.0127]   # stage units, world space (or: vertex = 123)
    limits = { warn_high = 80, alarm_high = 95 }
    description = "near the heater"

:func:`parse_sensor_map` checks everything that can be checked without a stage (types,
quantities, unique channels, limit order, every key of ``[model]``);
:func:`twin3d.usd.bind.bind_sensors` checks targets and positions against the stage.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin3d._types import PathLike
from twin3d.errors import FieldError, SensorMapError
from twin3d.model import QUANTITIES, Limits, Sensor

__all__ = ["DEFAULT_SNAP_TOLERANCE_M", "SensorMap", "load_sensor_map", "parse_sensor_map"]

#: Default largest distance (metres) a sensor position may be from its target's surface.
DEFAULT_SNAP_TOLERANCE_M = 0.005

_SENSOR_KEYS = {"channel", "quantity", "unit", "target", "position", "vertex", "limits",
                "description"}
_LIMIT_KEYS = ("warn_low", "warn_high", "alarm_low", "alarm_high")
_TOP_KEYS = {"sensor", "model", "snap_tolerance", "virtual", "engine"}


@dataclass(frozen=True)
class SensorMap:
    """A parsed sensor map.

    Attributes:
        sensors: the sensors in file order (positions as written, not yet snapped).
        model: the raw ``[model]`` table for the field models (empty when absent).
        snap_tolerance: largest allowed distance from position to surface, metres,
            or ``None`` for the default (:data:`DEFAULT_SNAP_TOLERANCE_M`).
        source: where the map came from, for messages.
        engine: the twin engine's ``[[virtual]]`` and ``[engine]`` tables, raw but checked
            (:func:`twin3d.engine.config.parse_engine_tables`); empty when absent.
    """

    sensors: list[Sensor]
    model: dict[str, Any] = field(default_factory=dict)
    snap_tolerance: float | None = None
    source: str = "<sensor map>"
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
                             f"(expected [[sensor]] tables, [model], [[virtual]], [engine], "
                             "snap_tolerance)")
    tables = doc.get("sensor", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SensorMapError(f"{source}: 'sensor' must be an array of tables: write [[sensor]]")
    if not tables:
        raise SensorMapError(f"{source}: no [[sensor]] tables")
    model = doc.get("model", {})
    if not isinstance(model, dict):
        raise SensorMapError(f"{source}: [model] must be a table")
    if model:
        from twin3d.fields.config import check_model  # numpy/scipy: only for maps with a model

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
    engine: dict[str, Any] = {k: doc[k] for k in ("virtual", "engine") if k in doc}
    if engine:  # the twin engine's tables: checked by the engine's own parser
        from twin3d.engine.config import parse_engine_tables
        from twin3d.errors import EngineError

        try:
            parse_engine_tables(engine, source=source)
        except EngineError as exc:
            raise SensorMapError(str(exc)) from None
    return SensorMap(sensors, dict(model), None if tol is None else float(tol), source, engine)


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
    for (k1, v1), (k2, v2) in zip(given, given[1:]):
        if v1 > v2:
            raise fail(f"limits out of order: {k1} = {v1:g} > {k2} = {v2:g} "
                       "(need alarm_low <= warn_low <= warn_high <= alarm_high)")
    return lim
