"""Plain data shared by every room of twin3d: samples, sensors, limits. Pure: no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["QUANTITIES", "AlarmState", "Limits", "Sample", "Sensor"]

#: Quantities a sensor may measure (the sensor map rejects others).
QUANTITIES = ("temperature", "strain", "stress", "pressure", "displacement", "force", "generic")

AlarmState = Literal["ok", "warn", "alarm"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one channel, modelled on OPC UA's DataValue.

    Args:
        channel: channel id, e.g. ``"plate/tc3"``.
        value: the reading, a finite number in the sensor's unit.
        time: source time, Unix seconds.
        seq: the publisher's sequence number, when it sends one.
        source: who published it (token name, adapter), filled in by the bridge.
    """

    channel: str
    value: float
    time: float
    seq: int | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Warn and alarm limits of a sensor; ``None`` means no limit on that side."""

    warn_low: float | None = None
    warn_high: float | None = None
    alarm_low: float | None = None
    alarm_high: float | None = None

    def state(self, value: float) -> AlarmState:
        """Return ``"alarm"``, ``"warn"`` or ``"ok"`` for ``value``.

        Examples:
            >>> Limits(warn_high=80, alarm_high=90).state(85.0)
            'warn'
        """
        if math.isnan(value):
            return "alarm"
        if (self.alarm_low is not None and value < self.alarm_low) or (
            self.alarm_high is not None and value > self.alarm_high
        ):
            return "alarm"
        if (self.warn_low is not None and value < self.warn_low) or (
            self.warn_high is not None and value > self.warn_high
        ):
            return "warn"
        return "ok"


@dataclass(frozen=True, slots=True)
class Sensor:
    """A sensor bound to a prim of the stage.

    Args:
        channel: channel id, e.g. ``"plate/tc3"``.
        quantity: one of :data:`QUANTITIES`.
        unit: unit of the values, e.g. ``"degC"``, ``"ustrain"``, ``"N"``.
        target: path of the mesh prim the sensor sits on, e.g. ``"/Plate/Geom/Body"``.
        position: (x, y, z) in stage units (world space), after snapping when bound.
        vertex: index of the target mesh's vertex the sensor sits on, if given so.
        limits: warn and alarm limits.
        description: free text for people.
        snap_distance: distance (stage units) the position moved when snapped to the surface.
        triangle: the target mesh's triangle the (snapped) position lies in, as bound (index
            into its fan-triangulated faces); None for a sensor given by vertex.
        barycentric: the position's barycentric coordinates in ``triangle``.
    """

    channel: str
    quantity: str
    unit: str
    target: str
    position: tuple[float, float, float] | None = None
    vertex: int | None = None
    limits: Limits = field(default_factory=Limits)
    description: str = ""
    snap_distance: float = 0.0
    triangle: int | None = None
    barycentric: tuple[float, float, float] | None = None
