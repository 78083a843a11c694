"""Recordings in USD: sensor values and fields as time samples in a ``.usdc``, playable in usdview.

A recording sublayers the bound stage (when given), so it plays back on its own in usdview or
Omniverse: markers change ``twin:value``, ``twin:state`` and colour, fields change their
primvars and colours (:mod:`twin3d.usd.overlay`; the shown field is a variant, as in the live
layer) on the meshes' display surfaces (:mod:`twin3d.usd.surface`, copied in), written with the
same attributes as the live layer (:mod:`twin3d.usd.live`). Without a stage, channels become
prims ``/Recording/<channel>``.

(The bridge's SQLite log of samples is also called a recording: ``twin3d export`` turns one
into the other with :func:`record_samples`.)

Samples are buffered (16 bytes each) and written when the recording is closed, in one
``Sdf.ChangeBlock``, as one crate file written atomically.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
from pxr import Sdf

from twin3d._types import PathLike
from twin3d.errors import BindingError, RecordingError
from twin3d.model import Limits, Sample
from twin3d.usd.bindings import sensor_prim_name, sensor_value
from twin3d.usd.layer import open_layer, save_layer
from twin3d.usd.live import LiveStage
from twin3d.usd.overlay import FieldTarget, author_field, field_array, prepare_overlay
from twin3d.usd.spec import copy_metrics, ensure_attr, state_color
from twin3d.usd.surface import author_surface

__all__ = ["Recording", "record_samples"]

_STATES = ("ok", "warn", "alarm", "stale")
_T = Sdf.ValueTypeNames


class Recording:
    """A recording of sensor values and fields as time samples in a ``.usdc`` layer.

    Samples are buffered and written when the recording is closed (``with`` block or
    :meth:`close`): one ``Sdf.ChangeBlock``, one crate file written atomically. The layer
    sublayers the stage (when given), so it plays back on its own in usdview or Omniverse:
    markers change value, state and colour, fields change their primvars and colours.
    Without a stage, channels become prims ``/Recording/<channel>`` with ``twin:value``.

    Args:
        path: the output ``.usdc``.
        stage: the bound stage the values belong to, or its open :class:`LiveStage`
            (a twin's: its sensors and colour ranges); ``None``: channels only.
        fps: timeCodesPerSecond (and framesPerSecond) of the recording.
        origin: source time of time code 0 (default: the earliest recorded time).
        skip_unknown: drop channels that are not bound on the stage instead of raising.
        ranges: fixed colour ranges ``{quantity: (vmin, vmax)}`` of recorded fields
            (default: the twin's range from :meth:`LiveStage.set_field`, else the
            recording's own min..max).

    Raises:
        RecordingError: ``path`` is not a ``.usdc``, or no samples were written.
        BindingError: a channel is not bound on the stage (unless ``skip_unknown``).
    """

    def __init__(self, path: PathLike, *, stage: PathLike | LiveStage | None = None,
                 fps: float = 10.0, origin: float | None = None, skip_unknown: bool = False,
                 ranges: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix not in (".usdc", ".usd"):
            raise RecordingError(f"{self.path}: recordings are written as crate (.usdc): "
                                 "time samples in .usda trip the ASCII-performance rule")
        if not fps > 0:
            raise RecordingError(f"fps must be > 0, got {fps}")
        self.fps, self.origin, self.skip_unknown = float(fps), origin, skip_unknown
        self.ranges = {q: (float(lo), float(hi)) for q, (lo, hi) in (ranges or {}).items()}
        self._live = stage if isinstance(stage, LiveStage) or stage is None else LiveStage(stage)
        self._times: dict[str, array[float]] = {}   # 16 bytes a sample until close()
        self._values: dict[str, array[float]] = {}
        self._fields: list[tuple[float, FieldTarget, str, np.ndarray]] = []
        self._closed = False

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # an error inside the block: write nothing

    def write(self, time: float, values: Mapping[str, float] | None = None,
              fields: Mapping[str, Mapping[str, npt.ArrayLike]] | None = None) -> None:
        """Record sensor values and/or fields at ``time`` (seconds, same clock as ``origin``).

        Args:
            time: source time in seconds.
            values: ``{channel: value}``.
            fields: ``{prim: {quantity: (n_points,) values}}``, prim as in
                :meth:`LiveStage.set_field` (needs a stage).
        """
        if self._closed:
            raise RecordingError(f"{self.path}: the recording is closed")
        t = float(time)
        if not math.isfinite(t):
            raise RecordingError(f"time {time!r} is not a finite number")
        for channel, raw in (values or {}).items():
            if self._live is not None and channel not in self._live.sensors and \
                    channel not in self._live.motion.channels:
                if self.skip_unknown:
                    continue
                raise BindingError(channel, f"not bound on {self._live.base_path.name}; bind it "
                                   "('twin3d bind'), or drop unbound channels (skip_unknown=True, "
                                   "'twin3d export --skip-unknown')")
            v = sensor_value(channel, raw)
            if channel not in self._times:
                self._times[channel], self._values[channel] = array("d"), array("d")
            self._times[channel].append(t)
            self._values[channel].append(v)
        if fields:
            if self._live is None:
                raise RecordingError("fields need a stage: open the recording through a Twin")
            for prim, by_quantity in fields.items():
                target = self._live.resolve_field_target(prim)
                for quantity, vals in by_quantity.items():
                    arr = field_array(vals, target, quantity)
                    self._fields.append((t, target, quantity, arr))

    def write_samples(self, samples: Iterable[Sample]) -> int:
        """Record :class:`~twin3d.model.Sample` objects (each at its own time); return the count."""
        n = 0
        for s in samples:
            self.write(s.time, {s.channel: s.value})
            n += 1
        return n

    def close(self) -> Path:
        """Write the recording (once) and return its path."""
        if self._closed:
            return self.path
        self._closed = True
        if not self._values and not self._fields:
            raise RecordingError(f"{self.path}: nothing was recorded")
        layer = Sdf.Layer.CreateAnonymous(".usdc")
        all_t = [float(np.frombuffer(ts).min()) for ts in self._times.values()] + [
            f[0] for f in self._fields]
        origin = self.origin if self.origin is not None else min(all_t)
        codes: list[float] = []
        if self._fields and self._live is not None:  # Usd API: before the change block
            prepare_overlay(self._live.root_prim.GetPath())
        if self._live is not None:
            self._live.motion.prepare()
        with Sdf.ChangeBlock():
            root = self._prepare(layer, origin)
            for channel in self._values:
                codes.extend(self._write_channel(layer, root, channel, origin))
            codes.extend(self._write_fields(layer, origin))
        layer.startTimeCode = min(codes)
        layer.endTimeCode = max(codes)
        save_layer(layer, self.path, crate=self.path.suffix == ".usd")
        return self.path

    def _prepare(self, layer: Sdf.Layer, origin: float) -> Sdf.Path:
        layer.timeCodesPerSecond = self.fps
        layer.framesPerSecond = self.fps
        layer.customLayerData = {"twin3d": {"role": "recording", "timeOrigin": float(origin),
                                            "channels": len(self._values)}}
        if self._live is not None:
            base = self._live.base_path.resolve()
            rel = os.path.relpath(base, self.path.resolve().parent).replace(os.sep, "/")
            layer.subLayerPaths = [rel if rel.startswith(".") else f"./{rel}"]
            copy_metrics(open_layer(base, "stage"), layer)
            return self._live.root_prim.GetPath()
        root = Sdf.CreatePrimInLayer(layer, "/Recording")
        root.specifier, root.typeName = Sdf.SpecifierDef, "Scope"
        layer.defaultPrim = "Recording"
        layer.pseudoRoot.SetInfo("upAxis", "Z")
        layer.pseudoRoot.SetInfo("metersPerUnit", 1.0)
        return root.path

    def _write_channel(self, layer: Sdf.Layer, root: Sdf.Path, channel: str,
                       origin: float) -> tuple[float, float]:
        times = np.frombuffer(self._times[channel], dtype=np.float64)
        vals = np.frombuffer(self._values[channel], dtype=np.float64)
        order = np.argsort(times, kind="stable")
        codes = (times[order] - origin) * self.fps
        vals = vals[order]
        if self._live is not None and channel in self._live.motion.channels:
            self._live.motion.author_samples(layer, channel, codes.tolist(), vals.tolist())
            if channel not in self._live.sensors:
                return float(codes[0]), float(codes[-1])
        if self._live is not None:
            path = self._live.sensor_paths[channel]
            limits = self._live.sensors[channel].limits
        else:
            path = root.AppendChild(sensor_prim_name(channel))
            prim = Sdf.CreatePrimInLayer(layer, path)
            prim.specifier, prim.typeName = Sdf.SpecifierDef, "Scope"
            chan = Sdf.AttributeSpec(prim, "twin:channel", _T.String, Sdf.VariabilityUniform)
            chan.default = channel
            limits = Limits()
        value = ensure_attr(layer, path, "twin:value", _T.Double).path
        set_sample = layer.SetTimeSample
        for code, v in zip(codes.tolist(), vals.tolist()):
            set_sample(value, code, v)
        if self._live is not None:
            states = _states(vals, limits)
            state = ensure_attr(layer, path, "twin:state", _T.Token).path
            color = ensure_attr(layer, path, "primvars:displayColor", _T.Color3fArray,
                                 interpolation="constant").path
            change = np.flatnonzero(states[1:] != states[:-1]) + 1
            for i in np.concatenate([[0], change]).tolist():
                set_sample(state, codes[i], _STATES[states[i]])
            # colours interpolate linearly: hold each colour up to the sample before a change
            keys = np.unique(np.concatenate([[0, len(codes) - 1], change, change - 1]))
            palette = [state_color(s) for s in _STATES]
            for i in keys.tolist():
                set_sample(color, codes[i], palette[states[i]])
        return float(codes[0]), float(codes[-1])

    def _write_fields(self, layer: Sdf.Layer, origin: float) -> list[float]:
        codes: list[float] = []
        if self._live is None:
            return codes
        root = self._live.root_prim.GetPath()
        for mesh in {m.path: m for _, target, _, _ in self._fields for m in target.meshes}.values():
            kept = self._live.surface(mesh.path)
            if kept is not None:  # the recording sublayers the stage, not the live layer
                author_surface(layer, kept)
        for t, target, quantity, arr in sorted(self._fields, key=lambda f: f[0]):
            lo, hi = (self.ranges.get(quantity) or self._live.ranges.get(quantity)
                      or _first_range(self._fields, quantity))
            code = (t - origin) * self.fps
            codes.append(code)
            author_field(layer, root, target, quantity, arr, lo, hi, time=code,
                         display=self._live.display_choices)
        return codes


def _first_range(fields: Sequence[tuple[float, FieldTarget, str, np.ndarray]],
                 quantity: str) -> tuple[float, float]:
    arrays = [a for _, _, q, a in fields if q == quantity]
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def _states(vals: np.ndarray, lim: Limits) -> np.ndarray:
    """Vectorised :meth:`Limits.state`: indices into ``_STATES``."""
    inf = math.inf
    alarm = ((vals < (lim.alarm_low if lim.alarm_low is not None else -inf))
             | (vals > (lim.alarm_high if lim.alarm_high is not None else inf)) | np.isnan(vals))
    warn = ((vals < (lim.warn_low if lim.warn_low is not None else -inf))
            | (vals > (lim.warn_high if lim.warn_high is not None else inf)))
    return np.where(alarm, 2, np.where(warn, 1, 0)).astype(np.int8)


def record_samples(path: PathLike, samples: Iterable[Sample], *, stage: PathLike | None = None,
                   fps: float = 10.0, origin: float | None = None,
                   skip_unknown: bool = False) -> Path:
    """Write samples (e.g. from a bridge recording) as a playable USD recording.

    Args:
        path: the output ``.usdc``.
        samples: the samples, any order.
        stage: the bound stage to play them on (``None``: channels under ``/Recording``).
        fps: timeCodesPerSecond of the recording.
        origin: source time (Unix seconds) of time code 0; default: the earliest sample.
        skip_unknown: drop channels not bound on the stage instead of raising.

    Returns:
        ``path``.

    Examples:
        >>> import tempfile, pathlib
        >>> from twin3d.model import Sample
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "rec.usdc"
        >>> record_samples(out, [Sample("a/t", 1.0, 100.0), Sample("a/t", 2.0, 100.5)]).name
        'rec.usdc'
    """
    rec = Recording(path, stage=stage, fps=fps, origin=origin, skip_unknown=skip_unknown)
    rec.write_samples(samples)
    return rec.close()

