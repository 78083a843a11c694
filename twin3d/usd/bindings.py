"""The bindings stored in a stage, read back: which sensor sits where, which channel drives
which prim property, and the field models' table.

``twin3d bind`` (:mod:`twin3d.usd.bind`) writes them; everything that opens a twin reads them
here. A sensor is a marker prim under the default prim's ``Sensors`` scope with the
``Twin3DSensorAPI`` applied (``twin:channel``, ``twin:quantity``, ``twin:unit``, limits,
snap distance, nearest vertex, a ``twin:target`` relationship to its mesh); the sensor map's
``[model]`` table is JSON in that scope's ``customData``, and so are the twin engine's
``[[virtual]]`` and ``[engine]`` tables. A property binding is an instance of
the multiple-apply ``Twin3DBindingAPI`` on the bound prim (``twin:binding:<name>:channel``,
``:kind``, ``:axis`` ...; axis and pivot in the prim's local frame). Reading works with or
without the schema plugin: a sensor prim is any child of the scope with a ``twin:channel``
attribute, a binding any ``twin:binding:<name>:channel`` attribute.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

from pxr import Tf, Usd, UsdGeom

from twin3d.errors import BindingError, StageError
from twin3d.model import Limits, Sensor
from twin3d.sensors import PropertyBinding

__all__ = ["BINDING_NAMESPACE", "ENGINE_KEY", "LIMIT_ATTRS", "MODEL_KEY", "SENSORS_SCOPE", "binding_attr",
           "read_engine", "read_model", "read_property_bindings", "read_sensors", "sensor_prim_name",
           "sensor_prims", "sensor_value"]

#: Namespace of the ``Twin3DBindingAPI`` properties: ``twin:binding:<name>:<property>``.
BINDING_NAMESPACE = "twin:binding"

#: Name of the scope under the default prim that holds the sensor markers.
SENSORS_SCOPE = "Sensors"
#: customData key on the Sensors scope holding the sensor map's [model] table (JSON).
MODEL_KEY = "twin3d:model"
#: customData key on the Sensors scope holding the engine's [[virtual]] and [engine] tables (JSON).
ENGINE_KEY = "twin3d:engine"
#: :class:`~twin3d.model.Limits` field -> the sensor prim's attribute.
LIMIT_ATTRS = {"alarm_low": "twin:limits:alarmLow", "warn_low": "twin:limits:warnLow",
               "warn_high": "twin:limits:warnHigh", "alarm_high": "twin:limits:alarmHigh"}


def binding_attr(name: str, prop: str) -> str:
    """The attribute of binding instance ``name`` holding ``prop``.

    Examples:
        >>> binding_attr("shoulder_pan", "channel")
        'twin:binding:shoulder_pan:channel'
    """
    return f"{BINDING_NAMESPACE}:{name}:{prop}"


def sensor_prim_name(channel: str) -> str:
    """Return the prim name of a channel's marker (a valid USD identifier).

    Examples:
        >>> sensor_prim_name("plate/tc3")
        'plate_tc3'
    """
    return str(Tf.MakeValidIdentifier(channel))


def sensor_prims(stage: Usd.Stage) -> dict[str, Usd.Prim]:
    """Return ``{channel: marker prim}`` for the sensors bound on ``stage``.

    Works with or without the schema plugin: a sensor prim is any child of the ``Sensors``
    scope with a ``twin:channel`` attribute.
    """
    root = stage.GetDefaultPrim()
    if not root:
        return {}
    scope = root.GetChild(SENSORS_SCOPE)
    out: dict[str, Usd.Prim] = {}
    if not scope:
        return out
    for prim in scope.GetChildren():
        attr = prim.GetAttribute("twin:channel")
        channel = attr.Get() if attr else None
        if channel:
            out[str(channel)] = prim
    return out


def _get(prim: Usd.Prim, name: str) -> object:
    attr = prim.GetAttribute(name)
    return attr.Get() if attr and attr.HasAuthoredValue() else None


def read_model(stage: Usd.Stage) -> dict[str, Any]:
    """The sensor map's ``[model]`` table that ``bind`` stored on the stage (``{}`` if none)."""
    return _read_json(stage, MODEL_KEY)


def read_engine(stage: Usd.Stage) -> dict[str, Any]:
    """The sensor map's ``virtual`` and ``engine`` tables that ``bind`` stored (``{}`` if none)."""
    return _read_json(stage, ENGINE_KEY)


def _read_json(stage: Usd.Stage, key: str) -> dict[str, Any]:
    root = stage.GetDefaultPrim()
    scope = root.GetChild(SENSORS_SCOPE) if root else None
    text = scope.GetCustomDataByKey(key) if scope else None
    if not text or scope is None:
        return {}
    try:
        data = json.loads(str(text))
    except ValueError:
        raise StageError(f"the {key} custom data of {scope.GetPath()} is not valid JSON; "
                         "bind the sensor map again") from None
    return data if isinstance(data, dict) else {}


def read_sensors(stage: Usd.Stage) -> dict[str, Sensor]:
    """Return ``{channel: Sensor}`` for the sensors bound on ``stage``.

    Positions are the markers' world positions (stage units), i.e. after snapping.
    """
    cache = UsdGeom.XformCache(Usd.TimeCode.Default())
    out: dict[str, Sensor] = {}
    for channel, prim in sensor_prims(stage).items():
        m = cache.GetLocalToWorldTransform(prim)
        t = m.ExtractTranslation()
        targets = prim.GetRelationship("twin:target").GetTargets() if prim.GetRelationship(
            "twin:target") else []
        limits = Limits(**{k: (None if (v := _get(prim, a)) is None else float(v))  # type: ignore[arg-type]
                           for k, a in LIMIT_ATTRS.items()})
        vertex = _get(prim, "twin:vertex")
        out[channel] = Sensor(
            channel=channel,
            quantity=str(_get(prim, "twin:quantity") or "generic"),
            unit=str(_get(prim, "twin:unit") or ""),
            target=str(targets[0]) if targets else "",
            position=(float(t[0]), float(t[1]), float(t[2])),
            vertex=None if vertex is None or int(vertex) < 0 else int(vertex),  # type: ignore[call-overload]
            limits=limits,
            description=str(_get(prim, "twin:description") or ""),
            snap_distance=float(_get(prim, "twin:snapDistance") or 0.0),  # type: ignore[arg-type]
        )
    return out


def sensor_value(channel: str, raw: object) -> float:
    """Return a reading of ``channel`` as a float: the one check of values the stage takes.

    A reading is a finite real number (int, float, numpy scalar); text such as ``"50"``,
    booleans, NaN and infinities are refused, as the bridge refuses them on the wire.

    Raises:
        BindingError: ``raw`` is not a finite number.

    Examples:
        >>> sensor_value("plate/tc1", 71.5)
        71.5
    """
    if not isinstance(raw, numbers.Real) or isinstance(raw, bool):
        raise BindingError(channel, f"value {raw!r} is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise BindingError(channel, f"value {raw!r} is not a finite number")
    return value



def _binding(prim: Usd.Prim, name: str) -> PropertyBinding:
    def get(prop: str) -> Any:
        return _get(prim, binding_attr(name, prop))

    def vec(prop: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
        v = get(prop)
        return default if v is None else (float(v[0]), float(v[1]), float(v[2]))

    def num(prop: str, default: float | None) -> float | None:
        v = get(prop)
        return default if v is None else float(v)

    rng = get("range")
    states = Limits(**{k: num(a.rsplit(":", 1)[1], None) for k, a in LIMIT_ATTRS.items()})
    return PropertyBinding(
        channel=str(get("channel")), prim=str(prim.GetPath()), kind=str(get("kind") or "rotate"),
        name=name, axis=vec("axis", (0.0, 0.0, 1.0)), pivot=vec("pivot", (0.0, 0.0, 0.0)),
        frame="local", scale=float(get("scale") if get("scale") is not None else 1.0),
        offset=float(get("offset") or 0.0), lower=num("lower", None), upper=num("upper", None),
        threshold=float(get("threshold") if get("threshold") is not None else 0.5),
        invert=bool(get("invert") or False),
        colormap=str(get("colormap") or ""),
        range=(0.0, 1.0) if rng is None else (float(rng[0]), float(rng[1])), states=states,
        attribute=str(get("attribute") or ""))


def read_property_bindings(stage: Usd.Stage) -> list[PropertyBinding]:
    """Return the property bindings on ``stage``, in stage order (axes and pivots local).

    Works with or without the schema plugin: a binding is any ``twin:binding:<name>:channel``
    attribute with a value.
    """
    out: list[PropertyBinding] = []
    for prim in stage.Traverse():
        props = prim.GetPropertiesInNamespace(BINDING_NAMESPACE)
        if not props:
            continue
        names = [p.GetName().split(":")[2] for p in props
                 if p.GetName().endswith(":channel") and len(p.GetName().split(":")) == 4]
        out.extend(_binding(prim, n) for n in names if _get(prim, binding_attr(n, "channel")))
    return out
