"""Replay pacing: recorded times played back at ``speed`` x real time (0 = as fast as possible).

The one rule shared by ``twin3d replay``, the CSV adapter and the view's replay.

Examples:
    >>> pace = Pace(0)            # as fast as possible: never waits
    >>> pace.delay(10.0), pace.delay(99.0)
    (0.0, 0.0)
"""

from __future__ import annotations

import asyncio
import math
import time

from twin3d.errors import UsageError

__all__ = ["Pace"]


class Pace:
    """When each recorded time is due, relative to the first one seen.

    Args:
        speed: 1 = recorded pace, 2 = twice as fast, 0 = as fast as possible.

    Raises:
        UsageError: ``speed`` is negative or not a finite number.
    """

    def __init__(self, speed: float) -> None:
        if not isinstance(speed, int | float) or not math.isfinite(speed) or speed < 0:
            raise UsageError(f"--speed must be a number >= 0 (0 = as fast as possible), got {speed!r}")
        self.speed = float(speed)
        self._t0: float | None = None
        self._w0 = 0.0

    def delay(self, t: float) -> float:
        """Seconds until recorded time ``t`` is due (<= 0: due now); the first call starts the clock."""
        if self.speed == 0:
            return 0.0
        if self._t0 is None:
            self._t0, self._w0 = t, time.monotonic()
        return (t - self._t0) / self.speed - (time.monotonic() - self._w0)

    async def wait(self, t: float) -> None:
        """Sleep until recorded time ``t`` is due."""
        d = self.delay(t)
        if d > 0.001:
            await asyncio.sleep(d)
