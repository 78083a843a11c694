"""Alarms as events with the ISA-18.2 states, not colours. Pure: no I/O.

Whoever judges a condition (the twin engine, a token with ``alarms = ["raise"]``) raises and
clears alarms through the bridge; operators (``alarms = ["acknowledge"]``) acknowledge them.
The bridge keeps one :class:`AlarmBook`, records every change in the recording's ``alarms``
table and sends each change to the subscribers of the alarm's channel.

States of one alarm (ISA-18.2, "alarm state transition diagram")::

    (normal) --raise--> active --acknowledge--> acknowledged --clear--> cleared (closed)
                          |                                              ^
                          +--clear--> returned --acknowledge-------------+
                                         |
                                         +--raise--> active (again, same alarm)

``active``: the condition holds and nobody has acknowledged it; ``returned``: the condition has
cleared but nobody acknowledged it yet. A closed alarm stays in the record; the next raise of
the same channel and kind opens a new alarm.

Examples:
    >>> book = AlarmBook()
    >>> a = book.raise_alarm("plate/tc3", "alarm_high", 96.0, 95.0, "", 10.0)
    >>> a.state, book.acknowledge(a.id, "operator", 12.0).state, book.clear("plate/tc3", "alarm_high", 15.0).state
    ('active', 'acknowledged', 'cleared')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from twin3d.errors import ProtocolViolation

__all__ = ["ALARM_KINDS", "ALARM_STATES", "Alarm", "AlarmBook"]

#: what an alarm is about: a limit of the channel, a predicted crossing, a suspect or stale sensor
ALARM_KINDS = ("warn_low", "warn_high", "alarm_low", "alarm_high", "predicted", "suspect", "stale")
ALARM_STATES = ("active", "acknowledged", "returned", "cleared")


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm and where it stands.

    Args:
        id: the bridge's number for it (acknowledge by id).
        channel: the channel it is about.
        kind: one of :data:`ALARM_KINDS`.
        limit: the limit crossed (or predicted to be), if any.
        value: the value that raised it.
        message: what the raiser said, e.g. ``"crossing in 74 s"``.
        state: one of :data:`ALARM_STATES`.
        raised, acknowledged, cleared: Unix times (``None``: not yet).
        acknowledged_by: the name of the token that acknowledged it.
    """

    id: int
    channel: str
    kind: str
    limit: float | None
    value: float | None
    message: str
    state: str
    raised: float
    acknowledged: float | None = None
    acknowledged_by: str | None = None
    cleared: float | None = None

    @property
    def open(self) -> bool:
        """Still needs attention: not cleared and acknowledged."""
        return self.state != "cleared"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AlarmBook:
    """Every alarm the bridge knows, and the one transition rule.

    Args:
        alarms: alarms loaded from a recording (open ones resume where they were).
    """

    def __init__(self, alarms: Iterable[Alarm] = ()) -> None:
        self._by_id: dict[int, Alarm] = {}
        self._open: dict[tuple[str, str], int] = {}
        for a in alarms:
            self._store(a)

    def _store(self, alarm: Alarm) -> Alarm:
        self._by_id[alarm.id] = alarm
        key = (alarm.channel, alarm.kind)
        if alarm.open:
            self._open[key] = alarm.id
        elif self._open.get(key) == alarm.id:
            del self._open[key]
        return alarm

    def open_alarms(self) -> list[Alarm]:
        """Alarms that are not closed, oldest first."""
        return sorted((self._by_id[i] for i in self._open.values()), key=lambda a: a.id)

    def raise_alarm(self, channel: str, kind: str, value: float | None, limit: float | None,
                    message: str, time: float) -> Alarm | None:
        """The condition holds; returns the changed alarm, or ``None`` if nothing changed."""
        current = self._by_id.get(self._open.get((channel, kind), -1))
        if current is None:
            return self._store(Alarm(max(self._by_id, default=0) + 1, channel, kind, limit, value,
                                     message, "active", time))
        if current.state == "returned":   # it came back before anyone acknowledged it
            return self._store(replace(current, state="active", value=value, limit=limit,
                                       message=message, cleared=None))
        return None

    def clear(self, channel: str, kind: str, time: float) -> Alarm | None:
        """The condition no longer holds; returns the changed alarm, or ``None``."""
        current = self._by_id.get(self._open.get((channel, kind), -1))
        if current is None or current.state == "returned":
            return None
        state = "cleared" if current.state == "acknowledged" else "returned"
        return self._store(replace(current, state=state, cleared=time))

    def acknowledge(self, alarm_id: int, by: str, time: float) -> Alarm:
        """An operator saw it.

        Raises:
            ProtocolViolation: ``unknown_alarm``: no open alarm has this id.
        """
        current = self._by_id.get(alarm_id)
        if current is None or current.state not in ("active", "returned"):
            what = "is closed" if current is not None and not current.open else (
                "is acknowledged already" if current is not None else "does not exist")
            raise ProtocolViolation("unknown_alarm", f"alarm {alarm_id} {what}; open alarms: "
                                    f"{[a.id for a in self.open_alarms()][:20]}")
        state = "cleared" if current.state == "returned" else "acknowledged"
        return self._store(replace(current, state=state, acknowledged=time, acknowledged_by=by))
