"""The twin engine, sans-I/O: readings in, derived channels and alarm changes out.

:class:`Engine` keeps the twin's field models up to date from the readings it is fed
(:meth:`Engine.feed`, in source time, so a test or a benchmark can feed hours of simulated data
in seconds) and says what the model knows that the sensors do not:

* on every feed: ``twin/virtual/<name>`` and ``.../sigma`` (the model's value and sigma at each
  ``[[virtual]]`` point) and ``twin/input/<name>`` (the inputs fitted to the readings: heat
  inputs, ambient, fixed temperatures, load cases);
* once per health period (``[engine] period``, source time): ``twin/health/<channel>`` (the
  leave-one-out standardised residual of the period's mean, :mod:`twin3d.engine.health`),
  ``twin/suspect/<channel>`` (1 while judged faulty: drifting, stuck, noisy, dead),
  ``twin/eta/<channel>/<limit>`` and ``.../sigma`` (seconds until a limit is crossed, when a
  crossing is predicted confidently within the horizon, :mod:`twin3d.engine.forecast`), and
  alarm changes: limit crossings (``warn_high`` ...), ``predicted`` crossings, ``suspect`` and
  ``stale`` sensors, and ``warn_low`` on an input that is physically impossible.

Every derived sample carries the source time of the newest reading it was made from.
:mod:`twin3d.engine.run` connects an engine to a bridge; :meth:`Engine.what_if` runs the
forward model with changed inputs (:mod:`twin3d.engine.whatif`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin3d.engine.config import EngineSettings, EngineSpec, VirtualSensor, parse_engine_tables
from twin3d.engine.forecast import Trend
from twin3d.engine.health import MARGIN, OUTLIER, FaultCheck, LeaveOneOut
from twin3d.engine.virtual import PlacedPoint, place_virtual, point_response
from twin3d.errors import EngineError
from twin3d.fields.base import ImplausibleInputWarning
from twin3d.model import Limits, Sample

__all__ = ["LIMIT_KINDS", "AlarmChange", "Engine", "Step"]

#: The limits of a channel, with the side they are crossed from (True: from below).
LIMIT_KINDS: dict[str, bool] = {"warn_high": True, "alarm_high": True, "warn_low": False,
                                "alarm_low": False}


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """An alarm condition that began (``active``) or ended, for ``Client.raise_alarm``."""

    channel: str
    kind: str
    active: bool
    value: float | None = None
    limit: float | None = None
    message: str = ""


@dataclass
class Step:
    """What one call of the engine produced: derived samples and alarm changes, in order."""

    samples: list[Sample] = field(default_factory=list)
    alarms: list[AlarmChange] = field(default_factory=list)

    def extend(self, other: Step) -> None:
        """Append ``other``'s samples and alarms."""
        self.samples += other.samples
        self.alarms += other.alarms


class _Group:
    """One field model of one mesh, as the engine uses it."""

    def __init__(self, mesh: str, quantity: str, model: Any, noise: np.ndarray | None) -> None:
        self.mesh, self.quantity, self.model = mesh, quantity, model
        self.channels: list[str] = list(model.channels)
        self.index = {c: i for i, c in enumerate(self.channels)}
        self.noise = noise
        response = getattr(model, "response", None)
        #: fits the inputs (and predicts suspect sensors) when the model has a forward model
        self.fitter = None if response is None else LeaveOneOut(
            response, np.ones(len(self.channels)) if noise is None else noise)
        #: judges the sensors' health: needs the sensors' noise too
        self.loo = self.fitter if noise is not None else None
        #: (m, m) |correlation| of the sensors' residuals, 0 on the diagonal (whose fault it is)
        self.rho = np.zeros((len(self.channels), len(self.channels)))
        if self.loo is not None:
            self.rho = np.abs(self.loo.correlation())
            np.fill_diagonal(self.rho, 0.0)
        self.inputs: list[str] = list(getattr(model, "inputs", ()) or ()) if response is not None else []
        self.names: list[str] = []      # published input names, set by the engine
        self.points: list[PlacedPoint] = []
        self.point_rows: np.ndarray | None = None   # (p, k) forward response at the points
        self.scratch: Any = None        # a copy of the model for what-ifs, made on first use


class _Signal:
    """Per-channel state: the latest value, the period's sums, the checks and the trend."""

    def __init__(self, channel: str, limits: Limits, unit: str, window: float,
                 fault: FaultCheck | None, noise: float | None) -> None:
        self.channel, self.limits, self.unit = channel, limits, unit
        self.fault, self.noise = fault, noise
        self.trend = Trend(window)
        self.value: float | None = None
        self.sum = self.tsum = 0.0
        self.count = 0
        self.z = math.nan
        self.own = True                   # the period's evidence is its own (see health)
        self.level: float | None = None   # the last period's mean
        self.reported: str | None = None  # the fault last reported (alarms are its changes)

    def add(self, value: float, time: float) -> None:
        self.value = value
        self.sum += value
        self.tsum += time
        self.count += 1
        if self.fault is not None:
            self.fault.reading(value, time)


def _short(name: str) -> str:
    """``source:heater`` -> ``heater``, ``fixed:clamp`` -> ``clamp``, others as they are."""
    return name.split(":", 1)[1] if name.startswith(("source:", "fixed:")) else name


class Engine:
    """The twin engine of one twin (see the module docstring).

    Args:
        twin: a :class:`twin3d.Twin`, or the path of a bound stage to open.
        models: ``{mesh path: {quantity: model}}``; by default
            :func:`twin3d.fields.build_field_models` of the twin (cached on disk).
        settings: the ``[engine]`` settings; by default those bound in the stage.
        virtual: the virtual sensors; by default those bound in the stage.
        live_every: also author the latest values (suspect sensors as ``twin:state =
            "suspect"``) and fields into the twin's live layer and save it, at most this often
            (seconds of source time); None: never.
        deform_scale: with ``live_every``, also show the parts whose model gives
            displacements (a stress model) deformed this many times in the live layer
            (:meth:`twin3d.Twin.set_displacement`); None: at rest.
        **overrides: settings to replace, e.g. ``horizon=300`` (``None`` values are ignored).

    Raises:
        EngineError: a virtual sensor off the part or of an unmodelled quantity, a setting out
            of range, or bad engine tables in the stage.

    Examples:
        >>> engine = Engine("plate.usda", horizon=300)                     # doctest: +SKIP
        >>> step = engine.feed([Sample("plate/tc1", 41.5, 1.7e9)])        # doctest: +SKIP
        >>> engine.what_if({"heater": "x2"}).readings["plate/tc5"]          # doctest: +SKIP
    """

    def __init__(self, twin: Any, *, models: Mapping[str, Mapping[str, Any]] | None = None,
                 settings: EngineSettings | None = None,
                 virtual: Sequence[VirtualSensor] | None = None,
                 live_every: float | None = None, deform_scale: float | None = None,
                 **overrides: Any) -> None:
        from twin3d.sensors import DEFAULT_SNAP_TOLERANCE_M

        if isinstance(twin, (str, Path)):
            from twin3d.twin import Twin

            twin = Twin.open(twin)
        self.twin = twin
        spec = self._bound_spec() if settings is None or virtual is None else EngineSpec()
        self.settings = (settings or spec.settings).with_overrides(**overrides)
        self.virtual = tuple(spec.virtual if virtual is None else virtual)
        if live_every is not None and not live_every > 0:
            raise EngineError(f"live_every must be a positive number of seconds, got {live_every!r}")
        self.live_every = live_every
        if deform_scale is not None and not (math.isfinite(deform_scale) and deform_scale > 0):
            raise EngineError(f"deform_scale must be a positive number, got {deform_scale!r}")
        self.deform_scale = deform_scale
        if models is None:
            from twin3d.fields import build_field_models

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # region warnings were shown when it was built
                models = build_field_models(twin)
        self.models = {mesh: dict(by_q) for mesh, by_q in models.items()}
        s = self.settings
        sensors = dict(twin.sensors)
        self.groups: list[_Group] = []
        for mesh, by_q in self.models.items():
            for quantity, model in by_q.items():
                self.groups.append(_Group(mesh, quantity, model, self._noise(model, sensors)))
        self._name_inputs()
        self.signals: dict[str, _Signal] = {}
        for channel, sensor in sensors.items():
            group = self.group_of(channel)
            noise = (float(group.noise[group.index[channel]]) if group is not None and group.noise is not None
                     else s.noise.get(sensor.quantity))
            fault = FaultCheck(noise, s.threshold, s.allowance, s.stale_after)
            self.signals[channel] = _Signal(channel, sensor.limits, sensor.unit, s.window, fault, noise)
        for v in self.virtual:
            point = place_virtual(v, twin.meshes, self.models, twin.meters_per_unit,
                                  DEFAULT_SNAP_TOLERANCE_M)
            group = next(g for g in self.groups if g.mesh == point.mesh and g.quantity == v.quantity)
            group.points.append(point)
            self.signals[v.channel] = _Signal(v.channel, v.limits, group.model.unit, s.window, None, None)
        meshes = {m.path: m for m in twin.meshes}
        for g in self.groups:
            if g.points and g.fitter is not None:
                g.point_rows = point_response(meshes[g.mesh], twin.meters_per_unit, g.model,
                                              list(sensors.values()), g.points, dict(twin.model))
        self.now = -math.inf
        self._period_end: float | None = None
        self._active: dict[tuple[str, str], AlarmChange] = {}
        self._last_live = -math.inf
        #: the inputs fitted at the last feed, by published name
        self.inputs: dict[str, float] = {}
        #: (value, sigma) of each virtual sensor at the last feed, by name
        self.virtual_values: dict[str, tuple[float, float]] = {}
        #: each predicted crossing published at the last period: {(channel, limit kind): (eta, sigma)}
        self.etas: dict[tuple[str, str], tuple[float, float]] = {}

    # --- what the engine is ---------------------------------------------------------------

    def _bound_spec(self) -> EngineSpec:
        from twin3d.usd.bindings import read_engine

        return parse_engine_tables(read_engine(self.twin.stage), source=str(self.twin.stage_path))

    def _noise(self, model: Any, sensors: Mapping[str, Any]) -> np.ndarray | None:
        """(m,) each channel's reading sigma: the model's ``noise``, else ``[engine] noise`` by
        quantity; None when some channel has neither."""
        noise = getattr(model, "noise", None)
        if isinstance(noise, (int, float)) and noise > 0:
            return np.full(len(model.channels), float(noise))
        given = [self.settings.noise.get(sensors[c].quantity) if c in sensors else None
                 for c in model.channels]
        return None if any(v is None for v in given) else np.array(given, dtype=np.float64)

    def _name_inputs(self) -> None:
        counts: dict[str, int] = {}
        for g in self.groups:
            for name in g.inputs:
                counts[_short(name)] = counts.get(_short(name), 0) + 1
        for g in self.groups:
            leaf = g.mesh.rsplit("/", 1)[-1]
            g.names = [_short(n) if counts[_short(n)] == 1 else f"{leaf}/{_short(n)}" for n in g.inputs]

    def group_of(self, channel: str) -> _Group | None:
        """The model group a sensor channel belongs to (None: no model uses it)."""
        return next((g for g in self.groups if channel in g.index), None)

    @property
    def channels(self) -> list[str]:
        """The sensor channels the engine reads (the twin's bound sensors)."""
        return [c for c, sig in self.signals.items() if sig.fault is not None]

    @property
    def input_names(self) -> list[str]:
        """The published names of every fitted input (``twin/input/<name>``)."""
        return [n for g in self.groups for n in g.names]

    @property
    def suspects(self) -> dict[str, str]:
        """``{channel: reason}`` of the sensors judged faulty now."""
        out: dict[str, str] = {}
        for channel, sig in self.signals.items():
            reason = sig.fault.reason if sig.fault is not None else None
            if reason is not None:
                out[channel] = reason
        return out

    @property
    def health(self) -> dict[str, float]:
        """The standardised leave-one-out residual of each judged sensor at the last period."""
        return {c: sig.z for c, sig in self.signals.items() if math.isfinite(sig.z)}

    def describe(self) -> dict[str, dict[str, str]]:
        """Metadata of every derived channel the engine may publish (``unit``, ``quantity``)."""
        out: dict[str, dict[str, str]] = {}
        for g in self.groups:
            for p in g.points:
                meta = {"unit": g.model.unit, "quantity": p.sensor.quantity}
                out[p.sensor.channel] = meta
                out[f"{p.sensor.channel}/sigma"] = meta
            for full, name in zip(g.inputs, g.names, strict=True):
                unit = g.model.input_unit(full) if hasattr(g.model, "input_unit") else ""
                out[f"twin/input/{name}"] = {"unit": unit, "quantity": "input"}
        for channel, sig in self.signals.items():
            if sig.fault is not None:
                out[f"twin/health/{channel}"] = {"unit": "sigma", "quantity": "health"}
                out[f"twin/suspect/{channel}"] = {"unit": "", "quantity": "suspect"}
            for kind in LIMIT_KINDS:
                if getattr(sig.limits, kind) is not None:
                    out[f"twin/eta/{channel}/{kind}"] = {"unit": "s", "quantity": "eta"}
                    out[f"twin/eta/{channel}/{kind}/sigma"] = {"unit": "s", "quantity": "eta"}
        return out

    # --- feeding --------------------------------------------------------------------------

    def feed(self, samples: Iterable[Sample]) -> Step:
        """Take readings (any order of channels; channels the twin does not bind are ignored).

        Health periods that end before a reading's time are closed first, so a feed of hours
        of timestamped readings is judged as it would have been live.

        Returns:
            The derived samples (stamped with the newest source time fed) and alarm changes.
        """
        step = Step()
        got = False
        for s in samples:
            sig = self.signals.get(s.channel)
            if sig is None or sig.fault is None or not math.isfinite(s.value):
                continue
            if self._period_end is None:
                self._period_end = s.time + self.settings.period
            if s.time >= self._period_end:
                step.extend(self._close_periods(s.time))
            sig.add(float(s.value), float(s.time))
            self.now = max(self.now, float(s.time))
            got = True
        if got:
            step.extend(self._instant())
        return step

    def advance(self, now: float) -> Step:
        """Move the engine's clock to ``now`` (source time) when no reading arrives: closes the
        health periods that ended, so a sensor that went quiet is found dead."""
        if self._period_end is None or now < self._period_end:
            return Step()
        self.now = max(self.now, now)
        return self._close_periods(now)

    def _latest(self, g: _Group) -> tuple[np.ndarray, np.ndarray]:
        """(values, have) of a group's channels: the latest reading of each, 0/False if none."""
        y = np.zeros(len(g.channels))
        have = np.zeros(len(g.channels), dtype=bool)
        for i, c in enumerate(g.channels):
            v = self.signals[c].value
            if v is not None:
                y[i], have[i] = v, True
        return y, have

    def _active_mask(self, g: _Group) -> np.ndarray:
        """(m,) True for the group's sensors that are not suspect."""
        return np.array([self._trusted(self.signals[c]) for c in g.channels], dtype=bool)

    @staticmethod
    def _trusted(sig: _Signal) -> bool:
        return sig.fault is None or sig.fault.reason is None

    def current_values(self, g: _Group, y: np.ndarray, have: np.ndarray) -> dict[str, float]:
        """The readings a group's model is given: suspect sensors replaced by what the others
        say when ``exclude_suspect`` is on (see :mod:`twin3d.engine.health`)."""
        out = {c: float(y[i]) for i, c in enumerate(g.channels) if have[i]}
        if self.settings.exclude_suspect and g.fitter is not None:
            active = self._active_mask(g)
            if not active.all():
                r = g.fitter.residuals(y, have.astype(np.float64), active)
                for i, c in enumerate(g.channels):
                    if not active[i] and math.isfinite(r.predicted[i]):
                        out[c] = float(r.predicted[i])
        return out

    def _instant(self) -> Step:
        """The per-feed channels: virtual sensors and fitted inputs."""
        step = Step()
        t = self.now
        for g in self.groups:
            y, have = self._latest(g)
            if not have.any():
                continue
            if g.fitter is not None:
                r = g.fitter.residuals(y, have.astype(np.float64), self._active_mask(g))
                for name, a in zip(g.names, r.inputs.tolist(), strict=True):
                    if math.isfinite(a):
                        self.inputs[name] = a
                        step.samples.append(Sample(f"twin/input/{name}", a, t))
            if g.points:
                for p, (v, sd) in zip(g.points, self._read_points(g, y, have), strict=True):
                    self.virtual_values[p.sensor.name] = (v, sd)
                    step.samples.append(Sample(p.sensor.channel, v, t))
                    step.samples.append(Sample(f"{p.sensor.channel}/sigma", sd, t))
        return step

    @staticmethod
    def _update(g: _Group, values: Mapping[str, float]) -> np.ndarray:
        """The group's field for ``values``; impossible inputs are the engine's alarms, not
        the model's warnings."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImplausibleInputWarning)
            return np.asarray(g.model.update(values))

    def _read_points(self, g: _Group, y: np.ndarray, have: np.ndarray) -> list[tuple[float, float]]:
        """(value, sigma) of the model at each virtual point of a group (see
        :mod:`twin3d.engine.virtual`): physics at the point plus the kriged residual, or the
        field interpolated from the vertices when the model has no forward response."""
        values = self.current_values(g, y, have)
        fld = self._update(g, values)
        sigma = g.model.sigma
        if g.point_rows is None or g.fitter is None:
            return [(p.sample(fld), p.sample(sigma) if sigma is not None else 0.0) for p in g.points]
        yy = np.array([values.get(c, 0.0) for c in g.channels])
        fit = g.fitter.residuals(yy, have.astype(np.float64), np.ones(len(yy), dtype=bool))
        resid = np.where(have, yy - g.fitter.A @ fit.inputs, 0.0).astype(np.float32)
        kriged = g.model.W[: g.model.n_vertices] @ resid   # W @ residual: the kriged misfit
        out = []
        for p, row in zip(g.points, g.point_rows, strict=True):
            value = float(row @ fit.inputs) + p.sample(kriged)
            physics = math.sqrt(max(float(row @ fit.inputs_cov @ row), 0.0))
            out.append((value, max(physics, p.sample(sigma) if sigma is not None else 0.0)))
        return out

    # --- health periods -------------------------------------------------------------------

    def _close_periods(self, now: float) -> Step:
        step = Step()
        assert self._period_end is not None
        while now >= self._period_end:
            end = self._period_end
            step.extend(self._close_period(end))
            self._period_end = end + self.settings.period
            if now - self._period_end > 10 * self.settings.period:   # a long silence: skip ahead
                k = math.floor((now - self._period_end) / self.settings.period)
                self._period_end += k * self.settings.period
        return step

    def _close_period(self, end: float) -> Step:
        step = Step()
        clock = max(self.now, end)
        stamp = self.now if math.isfinite(self.now) else end
        # 1. leave-one-out residuals of the period's means, per model
        for g in self.groups:
            if g.loo is None:
                continue
            sigs = [self.signals[c] for c in g.channels]
            counts = np.array([s.count for s in sigs], dtype=np.float64)
            if not counts.any():
                continue
            means = np.array([s.sum / s.count if s.count else 0.0 for s in sigs])
            active = self._active_mask(g)
            plain = g.loo.residuals(means, counts, active)
            for s, z in zip(sigs, plain.z.tolist(), strict=True):
                if s.fault is not None and s.count:
                    s.fault.note(z)
            evidence = np.array([s.fault.evidence if s.fault is not None else 0.0 for s in sigs])
            explained = (g.rho * evidence[None, :]).max(axis=1)   # by another sensor's fault
            r = g.loo.residuals(means, counts, active, outlier=OUTLIER)
            for s, z, own in zip(sigs, r.z.tolist(), (evidence >= explained + MARGIN).tolist(), strict=True):
                s.z = z
                s.own = own
        # 2. the checks, suspect changes, health and suspect channels
        for channel, sig in self.signals.items():
            if sig.fault is None:
                continue
            was = sig.reported
            sig.fault.period(sig.z if sig.count else math.nan, clock, own=sig.own)
            now_reason = sig.reported = sig.fault.reason
            if math.isfinite(sig.z) and sig.count:
                step.samples.append(Sample(f"twin/health/{channel}", sig.z, stamp))
            step.samples.append(Sample(f"twin/suspect/{channel}", 0.0 if now_reason is None else 1.0,
                                       stamp))
            if now_reason != was:
                sig.trend.clear()
                self._alarm(step, channel, "stale", now_reason == "dead", None, None,
                            sig.fault.explain(sig.z))
                self._alarm(step, channel, "suspect", now_reason not in (None, "dead"), sig.value,
                            None, sig.fault.explain(sig.z))
        # 3. the period's levels: sensors, then virtual sensors from the models
        for sig in self.signals.values():
            if sig.fault is not None and sig.count:
                sig.level = sig.sum / sig.count
                if sig.fault.reason is None:
                    sig.trend.add(sig.tsum / sig.count, sig.level)
        self._virtual_levels(end)
        # 4. limits and predicted crossings
        self.etas = {}
        for channel, sig in self.signals.items():
            suspect = sig.fault is not None and sig.fault.reason is not None
            if sig.level is not None and not suspect:
                self._limits(step, channel, sig, stamp)
            sig.sum = sig.tsum = 0.0
            sig.count = 0
            sig.z = math.nan
            sig.own = True
        # 5. impossible fitted inputs
        self._plausibility(step)
        if self.live_every is not None and clock - self._last_live >= self.live_every:
            self._author_live(clock)
            self._last_live = clock
        return step

    def _virtual_levels(self, end: float) -> None:
        for g in self.groups:
            if not g.points:
                continue
            sigs = [self.signals[c] for c in g.channels]
            if not any(s.level is not None for s in sigs):
                continue
            y = np.array([s.level if s.level is not None else 0.0 for s in sigs])
            have = np.array([s.level is not None for s in sigs])
            for p, (v, _) in zip(g.points, self._read_points(g, y, have), strict=True):
                sig = self.signals[p.sensor.channel]
                sig.level = v
                sig.trend.add(end - self.settings.period / 2.0, v)

    def _limits(self, step: Step, channel: str, sig: _Signal, stamp: float) -> None:
        level = sig.level
        assert level is not None
        band = sig.noise or 0.0
        first: tuple[float, float, str, float] | None = None  # (eta, sigma, kind, limit)
        pending = False
        for kind, rising in LIMIT_KINDS.items():
            limit = getattr(sig.limits, kind)
            if limit is None:
                continue
            key = (channel, kind)
            beyond = level > limit if rising else level < limit
            if key in self._active and not beyond:  # hysteresis: back inside by the noise
                beyond = level > limit - band if rising else level < limit + band
            self._alarm(step, channel, kind, beyond, level, limit,
                        f"{level:.4g} {sig.unit} {'above' if rising else 'below'} {kind} {limit:g}")
            if beyond:
                continue
            cross = sig.trend.crossing(limit, rising=rising, horizon=self.settings.horizon, now=stamp)
            if cross is None:
                continue
            pending = True
            if cross.confident:
                self.etas[(channel, kind)] = (cross.eta, cross.sigma)
                step.samples.append(Sample(f"twin/eta/{channel}/{kind}", cross.eta, stamp))
                step.samples.append(Sample(f"twin/eta/{channel}/{kind}/sigma", cross.sigma, stamp))
                if first is None or cross.eta < first[0]:
                    first = (cross.eta, cross.sigma, kind, limit)
        key = (channel, "predicted")
        if first is not None:
            eta, sd, kind, limit = first
            self._alarm(step, channel, "predicted", True, level, limit,
                        f"{kind} {limit:g} {sig.unit} predicted in {eta:.0f} s (sigma {sd:.0f} s)")
        elif key in self._active and not pending:
            self._alarm(step, channel, "predicted", False)

    def _plausibility(self, step: Step) -> None:
        for g in self.groups:
            check = getattr(g.model, "fitted_inputs", None)
            if check is None or g.fitter is None:
                continue
            sigs = [self.signals[c] for c in g.channels]
            if not all(s.level is not None for s in sigs):
                continue
            y = np.array([s.level for s in sigs], dtype=np.float64)
            values = self.current_values(g, y, np.ones(len(sigs), dtype=bool))
            flagged = check(values).flagged
            for full, name in zip(g.inputs, g.names, strict=True):
                problem = flagged.get(full)
                value = self.inputs.get(name)
                self._alarm(step, f"twin/input/{name}", "warn_low", problem is not None, value,
                            None, problem or "")

    def _alarm(self, step: Step, channel: str, kind: str, active: bool, value: float | None = None,
               limit: float | None = None, message: str = "") -> None:
        """Note an alarm condition; a change of it goes into ``step``."""
        key = (channel, kind)
        if active and key not in self._active:
            change = AlarmChange(channel, kind, True, value, limit, message[:256])
            self._active[key] = change
            step.alarms.append(change)
        elif not active and key in self._active:
            del self._active[key]
            step.alarms.append(AlarmChange(channel, kind, False, value, limit))

    @property
    def active_alarms(self) -> list[AlarmChange]:
        """The alarm conditions that hold now (as raised)."""
        return list(self._active.values())

    def _author_live(self, now: float) -> None:
        values = {c: sig.value for c, sig in self.signals.items()
                  if sig.fault is not None and sig.value is not None}
        if not values:
            return
        suspects = {c: "suspect" for c, reason in self.suspects.items() if reason != "dead"}
        self.twin.update(values, now, states=suspects)
        for g in self.groups:
            y, have = self._latest(g)
            if have.any():
                fld = self._update(g, self.current_values(g, y, have))
                self.twin.set_field(g.mesh, g.quantity, fld, sigma=g.model.sigma)
                if self.deform_scale is not None and getattr(g.model, "U", None) is not None:
                    self.twin.set_displacement(g.mesh, g.model.displacement(),
                                               scale=self.deform_scale, time=now)
        self.twin.save()

    # --- what-if --------------------------------------------------------------------------

    def what_if(self, changes: Mapping[str, float | str], *, name: str | None = None,
                author: bool = True) -> Any:
        """Run the forward model with changed inputs from the current fitted state.

        Args:
            changes: ``{input: value}``: a number (or a numeric string) sets the input in its
                unit (W, degC, ...), a string ``"x1.2"`` scales its fitted value; names as in
                ``twin/input/<name>`` (``heater``, ``ambient``, ...).
            name: the scenario's name (a USD variant name); default made from the changes,
                e.g. ``heater_x2``.
            author: also author it into the twin's live layer as a variant of the ``scenario``
                variant set (and save the layer).

        Returns:
            A :class:`twin3d.engine.whatif.WhatIf`: predicted readings, fields, differences.

        Raises:
            EngineError: an unknown input, a bad value, no forward model, or no current values.
        """
        from twin3d.engine.whatif import run_what_if

        result = run_what_if(self, changes, name)
        if author:
            from twin3d.engine.whatif import author_what_if

            author_what_if(self.twin, result)
        return result

    def state_values(self) -> dict[str, float]:
        """The latest reading of every sensor the engine has seen, else the twin's live values."""
        fed = {c: sig.value for c, sig in self.signals.items()
               if sig.fault is not None and sig.value is not None}
        return fed or dict(self.twin.values)

    def group_values(self, g: _Group, values: Mapping[str, float]) -> tuple[dict[str, float], np.ndarray]:
        """A group's model inputs from ``values`` (suspects replaced as for the fields) and the
        inputs fitted to them (NaN when the group has no forward model)."""
        y = np.array([values.get(c, 0.0) for c in g.channels], dtype=np.float64)
        have = np.array([c in values for c in g.channels])
        current = self.current_values(g, y, have)
        if g.fitter is None or not have.any():
            return current, np.full(len(g.inputs), np.nan)
        r = g.fitter.residuals(y, have.astype(np.float64), self._active_mask(g))
        return current, r.inputs
