"""The engine's tables in the sensor map: ``[[virtual]]`` sensors and ``[engine]`` settings. Pure.

Both live in the same TOML file as the ``[[sensor]]`` tables; ``twin3d bind`` stores them in the
stage beside the ``[model]`` table, so ``twin3d engine STAGE`` finds them there::

    [[virtual]]                       # a virtual sensor: the model's value and sigma at a point
    name = "heater_centre"            # -> channels twin/virtual/heater_centre (+ /sigma)
    position = [0.1016, 0.115, 0.0]   # stage units, world space, on the part
    quantity = "temperature"          # a field the twin models (temperature, von_mises, ...)
    target = "/Plate/Geom/Body"       # optional: the mesh (default: the nearest with that model)
    limits = { alarm_high = 120 }     # optional: alarms and ETAs as for a real sensor
    description = "under the heater"  # optional

    [engine]                          # every key optional
    period = 1.0                      # s of source time per health / forecast step
    horizon = 600.0                   # s: crossings predicted further out are not published
    window = 60.0                     # s of history a trend is fitted to
    threshold = 15.0                  # CUSUM decision level (in sigma) of the drift check
    allowance = 0.5                   # CUSUM allowance k (in sigma)
    stale_after = 5.0                 # s without a value: the sensor is dead (stale)
    exclude_suspect = false           # true: suspect sensors leave the fields until they recover
    noise = { strain = 1.5 }          # sensor sigma per quantity where the model has none
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from twin3d.errors import EngineError
from twin3d.model import QUANTITIES, Limits

__all__ = ["EngineSettings", "EngineSpec", "VirtualSensor", "parse_engine_tables"]

_VIRTUAL_KEYS = ("name", "position", "quantity", "target", "limits", "description")
_LIMIT_ORDER = ("alarm_low", "warn_low", "warn_high", "alarm_high")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


@dataclass(frozen=True)
class EngineSettings:
    """How the engine judges and forecasts (the ``[engine]`` table; see the module docstring).

    Raises:
        EngineError: a value out of range (the message names the key).
    """

    period: float = 1.0
    horizon: float = 600.0
    window: float = 60.0
    threshold: float = 15.0
    allowance: float = 0.5
    stale_after: float = 5.0
    exclude_suspect: bool = False
    noise: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "exclude_suspect":
                if not isinstance(value, bool):
                    raise EngineError(f"exclude_suspect must be true or false, got {value!r}")
            elif f.name == "noise":
                if not isinstance(value, Mapping):
                    raise EngineError("noise must be a table of quantity = sigma, e.g. "
                                      "noise = { strain = 1.5 }")
                for q, sigma in value.items():
                    if q not in QUANTITIES:
                        raise EngineError(f"noise: {q!r} is not a quantity ({', '.join(QUANTITIES)})")
                    if not _number(sigma) or not sigma > 0 or not math.isfinite(sigma):
                        raise EngineError(f"noise: {q} = {sigma!r} must be a positive number (the "
                                          "sensors' standard deviation in their unit)")
            elif not _number(value) or not math.isfinite(value) or value <= 0:
                unit = "" if f.name in ("threshold", "allowance") else " of seconds"
                raise EngineError(f"{f.name} must be a positive number{unit}, got {value!r}")

    def with_overrides(self, **overrides: Any) -> EngineSettings:
        """These settings with some keys replaced (``None`` values are ignored).

        Raises:
            EngineError: an unknown key or a value out of range.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise EngineError(f"unknown engine setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class VirtualSensor:
    """A point of the part where the engine publishes the model's value and sigma.

    Attributes:
        name: the sensor's name; its channels are ``twin/virtual/<name>`` and ``.../sigma``.
        position: (x, y, z) stage units, world space.
        quantity: the field it samples, e.g. ``"temperature"``.
        target: the mesh it sits on, or None for the nearest mesh with a model of the quantity.
        limits: warn and alarm limits (alarms and ETAs as for a real sensor).
        description: free text for people.
    """

    name: str
    position: tuple[float, float, float]
    quantity: str
    target: str | None = None
    limits: Limits = field(default_factory=Limits)
    description: str = ""

    @property
    def channel(self) -> str:
        """``twin/virtual/<name>``."""
        return f"twin/virtual/{self.name}"


@dataclass(frozen=True)
class EngineSpec:
    """The engine tables of a sensor map: the virtual sensors and the settings."""

    virtual: tuple[VirtualSensor, ...] = ()
    settings: EngineSettings = field(default_factory=EngineSettings)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_engine_tables(tables: Mapping[str, Any], *, source: str = "<sensor map>") -> EngineSpec:
    """Check the ``virtual`` and ``engine`` entries of a parsed sensor map.

    Args:
        tables: the TOML document (or any mapping) with optional ``virtual`` (a list of tables)
            and ``engine`` (a table) entries; other keys are not looked at.
        source: the map's name, for messages.

    Returns:
        The virtual sensors in file order and the settings.

    Raises:
        EngineError: a malformed table (one line naming the table, the key and the fix).

    Examples:
        >>> spec = parse_engine_tables({"virtual": [{"name": "mid", "position": [0, 0, 0],
        ...                                          "quantity": "temperature"}]})
        >>> spec.virtual[0].channel
        'twin/virtual/mid'
    """
    raw_virtual = tables.get("virtual", [])
    if not isinstance(raw_virtual, list) or not all(isinstance(t, Mapping) for t in raw_virtual):
        raise EngineError(f"{source}: 'virtual' must be an array of tables: write [[virtual]]")
    virtual: list[VirtualSensor] = []
    for i, table in enumerate(raw_virtual, start=1):
        sensor = _parse_virtual(table, f"{source}: [[virtual]] #{i}")
        if any(v.name == sensor.name for v in virtual):
            raise EngineError(f"{source}: [[virtual]] #{i}: the name {sensor.name!r} is used twice")
        virtual.append(sensor)
    raw = tables.get("engine", {})
    if not isinstance(raw, Mapping):
        raise EngineError(f"{source}: 'engine' must be a table: write [engine]")
    known = {f.name for f in fields(EngineSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EngineError(f"{source}: [engine] has no key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    given: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    try:
        settings = EngineSettings(**given)
    except EngineError as exc:
        raise EngineError(f"{source}: [engine] {exc}") from None
    return EngineSpec(tuple(virtual), settings)


def _parse_virtual(t: Mapping[str, Any], where: str) -> VirtualSensor:
    name = t.get("name")
    if isinstance(name, str):
        where = f"{where} {name!r}"
    unknown = sorted(set(t) - set(_VIRTUAL_KEYS))
    if unknown:
        raise EngineError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(_VIRTUAL_KEYS)})")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise EngineError(f"{where}: name must be letters, digits, '_', '-', '.' (parts joined "
                          "by '/'), e.g. name = \"heater_centre\"")
    position = t.get("position")
    if (not isinstance(position, list) or len(position) != 3
            or not all(_number(v) and math.isfinite(v) for v in position)):
        raise EngineError(f"{where}: position must be three finite numbers [x, y, z] in stage units")
    quantity = t.get("quantity")
    if not isinstance(quantity, str) or not quantity:
        raise EngineError(f"{where}: quantity must name a field, e.g. quantity = \"temperature\" "
                          "(or \"von_mises\")")
    target = t.get("target")
    if target is not None and (not isinstance(target, str) or not target.startswith("/")):
        raise EngineError(f"{where}: target must be an absolute mesh prim path, e.g. \"/Plate/Geom/Body\"")
    description = t.get("description", "")
    if not isinstance(description, str):
        raise EngineError(f"{where}: description must be a string")
    return VirtualSensor(name, (float(position[0]), float(position[1]), float(position[2])),
                         quantity, target, _parse_limits(t.get("limits", {}), where), description)


def _parse_limits(raw: object, where: str) -> Limits:
    if not isinstance(raw, Mapping):
        raise EngineError(f"{where}: limits must be a table, e.g. {{ warn_high = 80, alarm_high = 95 }}")
    unknown = sorted(set(raw) - set(_LIMIT_ORDER))
    if unknown:
        raise EngineError(f"{where}: unknown limit {unknown[0]!r} (allowed: {', '.join(_LIMIT_ORDER)})")
    for key, value in raw.items():
        if not _number(value) or not math.isfinite(value):
            raise EngineError(f"{where}: limit {key} must be a finite number")
    given = [(k, float(raw[k])) for k in _LIMIT_ORDER if k in raw]
    for (k1, v1), (k2, v2) in itertools.pairwise(given):
        if v1 > v2:
            raise EngineError(f"{where}: limits out of order: {k1} = {v1:g} > {k2} = {v2:g}")
    return Limits(**dict(given))
