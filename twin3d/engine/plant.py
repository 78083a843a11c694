"""A simulated plant: what a twin's sensors read for known inputs, with noise and sensor faults.

The readings come from the twin's own forward models
(:meth:`~twin3d.fields.base.LinearFieldModel.readings`) plus Gaussian noise, so a trial of the
engine knows the truth it should find: the inputs, the true value anywhere, and which sensor
went wrong when. Faults:

* ``drift``: the reading walks away at ``size`` units per second from ``start``;
* ``offset``: the reading jumps by ``size`` at ``start``;
* ``stuck``: the reading freezes at its value at ``start``;
* ``noisy``: the noise grows ``size`` times from ``start``;
* ``dead``: no more readings from ``start``.

Examples:
    >>> plant = SimulatedPlant([heat], lambda t: {"source:heater": 20.0, "ambient": 22.0},
    ...                        {c: 0.2 for c in heat.channels},
    ...                        faults=[Fault("plate/tc4", "drift", start=60.0, size=0.05)])  # doctest: +SKIP
    >>> plant.samples(61.0)[:1]                                                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin3d.errors import EngineError
from twin3d.model import Sample

__all__ = ["FAULT_KINDS", "Fault", "SimulatedPlant"]

FAULT_KINDS = ("drift", "offset", "stuck", "noisy", "dead")


@dataclass(frozen=True)
class Fault:
    """A sensor fault from ``start`` (seconds of plant time) on (see the module docstring)."""

    channel: str
    kind: str
    start: float
    size: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise EngineError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")


class SimulatedPlant:
    """Sensor readings from a twin's forward models.

    Args:
        models: field models with a forward response (``inputs``, ``readings``).
        inputs: ``inputs(t) -> {input name: value}`` at plant time ``t`` (s); each model takes
            the names it knows (``source:heater``, ``ambient``, ``press`` ...).
        noise: standard deviation of each channel's readings (missing: noise-free).
        faults: sensor faults.
        seed: seed of the noise.
        t0: source time (Unix seconds) of plant time 0.
        decimals: readings are rounded to this many decimals, as instruments report them.
    """

    def __init__(self, models: Sequence[Any], inputs: Callable[[float], Mapping[str, float]],
                 noise: Mapping[str, float], *, faults: Sequence[Fault] = (), seed: int = 0,
                 t0: float = 0.0, decimals: int = 3) -> None:
        self.models = [m for m in models if getattr(m, "response", None) is not None]
        self.inputs, self.noise, self.faults = inputs, dict(noise), list(faults)
        self.rng = np.random.default_rng(seed)
        self.t0, self.decimals = t0, decimals
        self._frozen: dict[str, float] = {}
        channels = {c for m in self.models for c in m.channels}
        for f in self.faults:
            if f.channel not in channels:
                raise EngineError(f"fault on {f.channel!r}: no model reads that channel")

    def truth(self, t: float) -> dict[str, float]:
        """Noise-free readings of every channel at plant time ``t``."""
        given = self.inputs(t)
        out: dict[str, float] = {}
        for m in self.models:
            out |= m.readings({n: float(given[n]) for n in m.inputs if n in given})
        return out

    def readings(self, t: float) -> dict[str, float]:
        """What the sensors report at plant time ``t`` (dead ones: nothing)."""
        out = self.truth(t)
        for channel in out:
            out[channel] += float(self.rng.normal(0.0, self.noise.get(channel, 0.0)))
        for f in self.faults:
            if t < f.start or f.channel not in out:
                continue
            if f.kind == "drift":
                out[f.channel] += f.size * (t - f.start)
            elif f.kind == "offset":
                out[f.channel] += f.size
            elif f.kind == "noisy":
                out[f.channel] += float(self.rng.normal(0.0, self.noise.get(f.channel, 0.0) * f.size))
            elif f.kind == "stuck":
                out[f.channel] = self._frozen.setdefault(f.channel, out[f.channel])
            else:
                del out[f.channel]
        return {c: round(v, self.decimals) for c, v in out.items()}

    def samples(self, t: float) -> list[Sample]:
        """:meth:`readings` as samples stamped ``t0 + t``."""
        return [Sample(c, v, self.t0 + t) for c, v in self.readings(t).items()]
