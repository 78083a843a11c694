"""Recordings in USD: values, motion, fields and deformed shapes as value clips, playable in usdview.

A recording written to ``run1.usdc`` is these files::

    run1.usdc                  the file to open: the ``clips`` metadata on the default prim,
                               subLayers = [topology, the bound stage]
    run1.clips/topology.usdc   every prim and attribute the clips give values to (no samples)
    run1.clips/manifest.usdc   the attributes that have values in the clips
    run1.clips/0000.usdc ...   the time samples, one clip per ``clip_seconds`` of the session

Samples are buffered one clip at a time: when a clip's span is over (and the next one's too,
so a sample may arrive up to one clip late) the clip is written as its own crate file and
dropped, so memory stays flat however long the session (``benchmarks/record_usd.py``). The
clips are USD value clips (:class:`pxr.Usd.ClipsAPI`): every USD tool plays them as one
timeline, and values between samples interpolate across clip boundaries as they would in
one layer. The topology and manifest are stitched from each clip as it is written, as
``UsdUtils.StitchClips`` does for a finished set of clips.

The recording plays on its own in usdview or Omniverse: markers change ``twin:value``,
``twin:state`` and colour, bound prims move (:mod:`twin3d.usd.motion`), fields change their
primvars and colours (:mod:`twin3d.usd.overlay`; the shown field is a variant, as in the
live layer), deformed meshes change their points, all written with the same attributes as
the live layer (:mod:`twin3d.usd.live`); fields and shapes of a mesh with sensors are those of
its display surface (:mod:`twin3d.usd.surface`), copied into the topology layer. Without a stage, channels become prims
``/Recording/<channel>``.

(The bridge's SQLite log of samples is also called a recording: ``twin3d export`` turns one
into the other with :func:`record_samples`.)
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from pxr import Sdf, Usd, UsdUtils

from twin3d._types import PathLike
from twin3d.errors import BindingError, FieldError, OutputError, RecordingError, reason
from twin3d.model import Limits, Sample
from twin3d.usd.bindings import sensor_prim_name, sensor_value
from twin3d.usd.layer import open_layer, save_layer
from twin3d.usd.live import LiveStage, displacement_array
from twin3d.usd.motion import Deformation
from twin3d.usd.overlay import FieldTarget, author_field, field_array, prepare_overlay
from twin3d.usd.spec import copy_metrics, ensure_attr, state_color
from twin3d.usd.surface import author_surface

__all__ = ["Recording", "record_samples"]

_STATES = ("ok", "warn", "alarm", "stale")
_T = Sdf.ValueTypeNames
_TOPOLOGY = "topology.usdc"
_MANIFEST = "manifest.usdc"


_Field = tuple[float, FieldTarget, str, np.ndarray]   # (time, meshes, quantity, values)
_Shape = tuple[float, str, np.ndarray]                 # (time, prim, displacement)
_Item = TypeVar("_Item", _Field, _Shape)


@dataclass
class _Clip:
    """Samples of one clip's span, buffered until the clip is written (16 bytes a value)."""

    times: dict[str, array[float]] = field(default_factory=dict)
    values: dict[str, array[float]] = field(default_factory=dict)
    fields: list[_Field] = field(default_factory=list)
    shapes: list[_Shape] = field(default_factory=list)

    def add(self, channel: str, t: float, value: float) -> None:
        """Add a value of ``channel`` at ``t``."""
        if channel not in self.times:
            self.times[channel], self.values[channel] = array("d"), array("d")
        self.times[channel].append(t)
        self.values[channel].append(value)

    def span(self) -> tuple[float, float]:
        """The earliest and latest time of the samples."""
        ts = [t for arr in self.times.values() for t in (min(arr), max(arr))]
        ts += [f[0] for f in self.fields] + [s[0] for s in self.shapes]
        return min(ts), max(ts)

    def ends(self, last: bool) -> _Clip:
        """The first (or last) sample of every channel, field and shape."""
        out = _Clip()
        for channel, times in self.times.items():
            arr = np.frombuffer(times, dtype=np.float64)
            i = len(arr) - 1 - int(np.argmax(arr[::-1])) if last else int(np.argmin(arr))
            out.add(channel, float(arr[i]), self.values[channel][i])
        out.fields = list(_ends(self.fields, _field_key, last).values())
        out.shapes = list(_ends(self.shapes, _shape_key, last).values())
        return out

    def replaced_by(self, newer: _Clip) -> _Clip:
        """These samples, with those of every channel, field and shape ``newer`` has replaced."""
        out = _Clip({**self.times, **newer.times}, {**self.values, **newer.values})
        out.fields = list({**_keyed(self.fields, _field_key),
                           **_keyed(newer.fields, _field_key)}.values())
        out.shapes = list({**_keyed(self.shapes, _shape_key),
                           **_keyed(newer.shapes, _shape_key)}.values())
        return out

    def around(self, before: _Clip, after: _Clip) -> _Clip:
        """These samples plus ``before``'s and ``after``'s of the channels, fields and shapes
        these have (so a clip interpolates up to its neighbours' samples, as one layer does)."""
        out = _Clip()
        for channel in self.times:
            out.times[channel], out.values[channel] = array("d"), array("d")
            for src in (before, self, after):
                if channel in src.times:
                    out.times[channel].extend(src.times[channel])
                    out.values[channel].extend(src.values[channel])
        fkeys = {_field_key(f) for f in self.fields}
        skeys = {_shape_key(s) for s in self.shapes}
        out.fields = ([f for f in before.fields if _field_key(f) in fkeys] + self.fields
                      + [f for f in after.fields if _field_key(f) in fkeys])
        out.shapes = ([s for s in before.shapes if _shape_key(s) in skeys] + self.shapes
                      + [s for s in after.shapes if _shape_key(s) in skeys])
        return out


def _field_key(f: _Field) -> tuple[str, str]:
    return f[1].key, f[2]


def _shape_key(s: _Shape) -> str:
    return s[1]


def _keyed(items: Sequence[_Item], key: Callable[[_Item], Hashable]) -> dict[Hashable, _Item]:
    return {key(item): item for item in items}


def _ends(items: Sequence[_Item], key: Callable[[_Item], Hashable], last: bool
          ) -> dict[Hashable, _Item]:
    """The earliest (or latest) item of each key; items are ``(time, ...)`` tuples."""
    out: dict[Hashable, _Item] = {}
    for item in items:
        k = key(item)
        if k not in out or (item[0] >= out[k][0] if last else item[0] < out[k][0]):
            out[k] = item
    return out


class Recording:
    """A recording of sensor values, motion, fields and deformed shapes as USD value clips.

    Use it as a context manager (or call :meth:`close`): samples go into one clip per
    ``clip_seconds`` of the session, each written to ``<stem>.clips/`` as soon as its span
    (and the next one's) is over; closing writes the last clips, the topology and manifest
    layers and ``path`` itself, the file to open. The recording sublayers the stage (when
    given), so it plays back on its own in usdview or Omniverse. Without a stage, channels
    become prims ``/Recording/<channel>`` with ``twin:value``.

    Args:
        path: the output ``.usdc`` (its clips go in the folder ``<stem>.clips`` beside it).
        stage: the bound stage the values belong to, or its open :class:`LiveStage`
            (a twin's: its sensors and colour ranges); ``None``: channels only.
        fps: timeCodesPerSecond (and framesPerSecond) of the recording.
        origin: source time of time code 0 (default: the time of the first write).
        skip_unknown: drop channels that are not bound on the stage instead of raising.
        ranges: fixed colour ranges ``{quantity: (vmin, vmax)}`` of recorded fields
            (default: the twin's range from :meth:`LiveStage.set_field`, else the min..max
            of the first clip that has the field).
        clip_seconds: the span of one clip, in seconds of source time (``math.inf``: one
            clip for the whole session, held in memory until closed).
        deform_scale: the exaggeration of recorded displacements (> 0; 1: true scale), kept
            on each deformed mesh as ``twin:deformScale``.
        deform_rate: at most this many deformed shapes a second are recorded per prim
            (the first written in each ``1 / deform_rate`` slot); points interpolate between.

    Raises:
        RecordingError: a bad argument, or ``path`` is not a ``.usdc``.
    """

    def __init__(self, path: PathLike, *, stage: PathLike | LiveStage | None = None,
                 fps: float = 10.0, origin: float | None = None, skip_unknown: bool = False,
                 ranges: Mapping[str, tuple[float, float]] | None = None,
                 clip_seconds: float = 30.0, deform_scale: float = 1.0,
                 deform_rate: float = 2.0) -> None:
        self.path = Path(path)
        if self.path.suffix not in (".usdc", ".usd"):
            raise RecordingError(f"{self.path}: recordings are written as crate (.usdc): "
                                 "time samples in .usda trip the ASCII-performance rule")
        for name, value in (("fps", fps), ("clip_seconds", clip_seconds),
                            ("deform_rate", deform_rate)):
            if not value > 0:
                raise RecordingError(f"{name} must be > 0, got {value}")
        if not (math.isfinite(deform_scale) and deform_scale > 0):
            raise RecordingError(f"deform_scale must be a positive finite number, got "
                                 f"{deform_scale}")
        self.fps, self.origin, self.skip_unknown = float(fps), origin, skip_unknown
        self.clip_seconds, self.deform_scale = float(clip_seconds), float(deform_scale)
        self.deform_rate = float(deform_rate)
        self.ranges = {q: (float(lo), float(hi)) for q, (lo, hi) in (ranges or {}).items()}
        self._live = stage if isinstance(stage, LiveStage) or stage is None else LiveStage(stage)
        self._root = (self._live.root_prim.GetPath() if self._live is not None
                      else Sdf.Path("/Recording"))
        self.clips_dir = self.path.with_name(f"{self.path.stem}.clips")
        self._tmp: Path | None = None          # the clips folder while recording
        self._pending: dict[int, _Clip] = {}   # clip index -> samples not yet written
        self._before = _Clip()                  # the last sample of each, in written clips
        self._written: list[tuple[float, str]] = []  # (active from, clip file name)
        self._next = -math.inf                  # clips before this index are written
        self._span = (math.inf, -math.inf)      # lowest and highest time code written
        self._channels: set[str] = set()
        self._deform: dict[str, Deformation] = {}
        self._kept: set[str] = set()  # meshes whose display surface is in the topology
        self._deform_slot: dict[str, int] = {}
        self._topology = self._new_layer()
        self._manifest = self._new_layer()
        self._closed = False

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:  # an error inside the block: write nothing
            self._closed = True
            self._discard()

    # --- taking samples ----------------------------------------------------------------------

    def write(self, time: float, values: Mapping[str, float] | None = None,
              fields: Mapping[str, Mapping[str, npt.ArrayLike]] | None = None,
              displacement: Mapping[str, npt.ArrayLike] | None = None) -> None:
        """Record values, fields and/or a deformed shape at ``time``.

        Args:
            time: source time in seconds (same clock as ``origin``); up to one clip
                (``clip_seconds``) earlier than the latest time written.
            values: ``{channel: value}``.
            fields: ``{prim: {quantity: (n_points,) values}}``, prim as in
                :meth:`LiveStage.set_field` (needs a stage).
            displacement: ``{prim: (n_points, 3) displacement}`` of the prim's meshes'
                points in the twin's world space, stage units (as
                :meth:`twin3d.fields.StressModel.displacement` gives it); recorded as the
                meshes' points, rest + ``deform_scale`` * displacement, at most
                ``deform_rate`` times a second (needs a stage).

        Raises:
            RecordingError: the recording is closed, ``time`` is not finite or too late.
            BindingError: a channel is not bound on the stage (unless ``skip_unknown``).
            FieldError: an unknown prim, or arrays of the wrong size.
            OutputError: a finished clip cannot be written (its folder, the disk).
        """
        if self._closed:
            raise RecordingError(f"{self.path}: the recording is closed")
        t = float(time)
        if not math.isfinite(t):
            raise RecordingError(f"time {time!r} is not a finite number")
        if self.origin is None:
            self.origin = t
        index = self._clip_index(t)
        if index < self._next:
            raise RecordingError(
                f"time {t} is more than one clip ({self.clip_seconds:g} s) older than the "
                f"latest sample of {self.path.name}, whose clip is written: write samples "
                "in time order")
        checked = self._checked_values(values or {})
        arrays = self._checked_fields(fields or {})
        shapes = self._checked_shapes(t, displacement or {})
        for target, _, _ in arrays:
            self._keep_surfaces(target)
        for key, _ in shapes:
            self._keep_surfaces(self._target(key))
        clip = self._pending.setdefault(index, _Clip())
        for channel, v in checked.items():
            clip.add(channel, t, v)
            self._channels.add(channel)
        clip.fields.extend((t, target, q, arr) for target, q, arr in arrays)
        clip.shapes.extend((t, prim, arr) for prim, arr in shapes)
        self._flush(below=index - 1)

    def write_samples(self, samples: Iterable[Sample]) -> int:
        """Record :class:`~twin3d.model.Sample` objects (each at its own time); return the count."""
        n = 0
        for s in samples:
            self.write(s.time, {s.channel: s.value})
            n += 1
        return n

    def _clip_index(self, t: float) -> int:
        if math.isinf(self.clip_seconds):
            return 0
        assert self.origin is not None
        return math.floor((t - self.origin) / self.clip_seconds)

    def _checked_values(self, values: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for channel, raw in values.items():
            if self._live is not None and channel not in self._live.sensors and \
                    channel not in self._live.motion.channels:
                if self.skip_unknown:
                    continue
                raise BindingError(channel, f"not bound on {self._live.base_path.name}; bind it "
                                   "('twin3d bind'), or drop unbound channels (skip_unknown=True, "
                                   "'twin3d export --skip-unknown')")
            out[channel] = sensor_value(channel, raw)
        return out

    def _checked_fields(self, fields: Mapping[str, Mapping[str, npt.ArrayLike]]
                        ) -> list[tuple[FieldTarget, str, np.ndarray]]:
        out = []
        if fields and self._live is None:
            raise RecordingError("fields need a stage: open the recording through a Twin")
        for prim, by_quantity in fields.items():
            target = self._target(prim)
            for quantity, vals in by_quantity.items():
                out.append((target, quantity, field_array(vals, target, quantity)))
        return out

    def _checked_shapes(self, t: float, displacement: Mapping[str, npt.ArrayLike]
                        ) -> list[tuple[str, np.ndarray]]:
        out = []
        if displacement and self._live is None:
            raise RecordingError("deformed shapes need a stage: open the recording through a Twin")
        assert self.origin is not None
        slot = math.floor((t - self.origin) * self.deform_rate + 1e-9)
        for prim, raw in displacement.items():
            assert self._live is not None
            target = self._target(prim)
            arr = displacement_array(raw, target, prim)
            self._deform.setdefault(target.key, self._live.deformation(target))
            if self._deform_slot.get(target.key) == slot:
                continue  # rate-limited: this slot has its shape
            self._deform_slot[target.key] = slot
            out.append((target.key, arr.copy()))
        return out

    def _keep_surfaces(self, target: FieldTarget) -> None:
        """Put the display surfaces of ``target``'s meshes in the topology layer, once (the
        recording sublayers the stage, not the live layer that keeps them)."""
        assert self._live is not None
        for mesh in target.meshes:
            kept = self._live.surface(mesh.path)
            if kept is not None and mesh.path not in self._kept:
                author_surface(self._topology, kept, color=False)  # the clips colour it
                self._kept.add(mesh.path)

    def _target(self, prim: str) -> FieldTarget:
        assert self._live is not None
        target = self._live.resolve_field_target(prim)
        if not Sdf.Path(target.key).HasPrefix(self._root):
            raise FieldError(f"prim {prim!r} is outside the default prim {self._root}, which a "
                             "recording covers")
        return target

    # --- writing clips -----------------------------------------------------------------------

    def _new_layer(self) -> Sdf.Layer:
        layer = Sdf.Layer.CreateAnonymous(".usdc")
        layer.timeCodesPerSecond = self.fps
        layer.framesPerSecond = self.fps
        return layer

    def _flush(self, below: float) -> None:
        """Write every pending clip whose index is below ``below``, in order."""
        for index in sorted(i for i in self._pending if i < below):
            self._write_clip(index, self._pending.pop(index))
            self._next = index + 1

    def _write_clip(self, index: int, clip: _Clip) -> None:
        """Write one clip, with its neighbours' nearest samples, and stitch it into the
        topology and manifest."""
        assert self.origin is not None
        after = _Clip()
        for later in sorted(self._pending, reverse=True):  # the earliest sample wins
            after = after.replaced_by(self._pending[later].ends(last=False))
        lo, hi = ((t - self.origin) * self.fps for t in clip.span())
        full = clip.around(self._before, after)
        self._before = self._before.replaced_by(clip.ends(last=True))
        clip.fields.clear()  # the arrays are in ``full`` now, which drops each once authored
        clip.shapes.clear()
        layer = self._new_layer()
        if self._live is None:
            root = Sdf.CreatePrimInLayer(layer, self._root)
            root.specifier, root.typeName = Sdf.SpecifierDef, "Scope"
        if self._live is not None:  # Usd API: before the change block
            if full.fields:
                prepare_overlay(self._root)
            self._live.motion.prepare()
        with Sdf.ChangeBlock():
            for channel in full.values:
                self._write_channel(layer, full, channel)
            self._write_fields(layer, full.fields)
            full.shapes.sort(key=lambda s: s[0], reverse=True)
            while full.shapes:
                t, key, arr = full.shapes.pop()
                self._deform[key].author(layer, arr, self.deform_scale,
                                         time=(t - self.origin) * self.fps)
        layer.startTimeCode, layer.endTimeCode = lo, hi
        self._span = (min(self._span[0], lo), max(self._span[1], hi))
        name = f"{index:04d}.usdc" if index >= 0 else f"m{-index:04d}.usdc"
        UsdUtils.StitchLayers(self._manifest,
                              Usd.ClipsAPI.GenerateClipManifestFromLayers([layer], self._root))
        save_layer(layer, self._folder() / name)
        # active from its first sample: USD lists each clip's start among the sample times
        self._written.append((lo, name))
        _drop_time_samples(layer)
        UsdUtils.StitchLayers(self._topology, layer)

    def _folder(self) -> Path:
        """The folder the clips are written to while recording (made on first use)."""
        if self._tmp is None:
            parent = self.path.parent if str(self.path.parent) else Path(".")
            if not parent.is_dir():
                raise OutputError(self.path, f"folder {parent} does not exist")
            try:
                self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.clips_dir.name}.", dir=parent))
                mask = os.umask(0)
                os.umask(mask)
                os.chmod(self._tmp, 0o777 & ~mask)  # mkdtemp makes 0700: give the usual mode
            except OSError as exc:
                raise OutputError(self.path, reason(exc)) from None
        return self._tmp

    def _write_channel(self, layer: Sdf.Layer, clip: _Clip, channel: str) -> None:
        assert self.origin is not None
        times = np.frombuffer(clip.times[channel], dtype=np.float64)
        vals = np.frombuffer(clip.values[channel], dtype=np.float64)
        order = np.argsort(times, kind="stable")
        codes = (times[order] - self.origin) * self.fps
        vals = vals[order]
        if self._live is not None and channel in self._live.motion.channels:
            self._live.motion.author_samples(layer, channel, codes.tolist(), vals.tolist())
            if channel not in self._live.sensors:
                return
        if self._live is not None:
            path = self._live.sensor_paths[channel]
            limits = self._live.sensors[channel].limits
        else:
            path = self._root.AppendChild(sensor_prim_name(channel))
            prim = Sdf.CreatePrimInLayer(layer, path)
            prim.specifier, prim.typeName = Sdf.SpecifierDef, "Scope"
            chan = Sdf.AttributeSpec(prim, "twin:channel", _T.String, Sdf.VariabilityUniform)
            chan.default = channel
            limits = Limits()
        value = ensure_attr(layer, path, "twin:value", _T.Double).path
        set_sample = layer.SetTimeSample
        for code, v in zip(codes.tolist(), vals.tolist(), strict=True):
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

    def _write_fields(self, layer: Sdf.Layer, fields: list[_Field]) -> None:
        """Author ``fields`` into ``layer``, emptying the list as it goes (memory)."""
        if self._live is None:
            return
        assert self.origin is not None
        for quantity in {f[2] for f in fields} - set(self.ranges):  # fixed from here on
            self.ranges[quantity] = self._live.ranges.get(quantity) or _range(fields, quantity)
        fields.sort(key=lambda f: f[0], reverse=True)
        while fields:
            t, target, quantity, arr = fields.pop()
            lo, hi = self.ranges[quantity]
            author_field(layer, self._root, target, quantity, arr, lo, hi,
                         time=(t - self.origin) * self.fps, display=self._live.display_choices)

    # --- closing -----------------------------------------------------------------------------

    def close(self) -> Path:
        """Write the last clips, the topology, manifest and root layers (once); return ``path``.

        Raises:
            RecordingError: nothing was recorded (nothing is written).
            OutputError: a file cannot be written (nothing of the recording is left).
        """
        if self._closed:
            return self.path
        self._closed = True
        try:
            self._flush(below=math.inf)
            if not self._written:
                raise RecordingError(f"{self.path}: nothing was recorded")
            folder = self._folder()
            save_layer(self._topology, folder / _TOPOLOGY)
            save_layer(self._manifest, folder / _MANIFEST)
            root = self._root_layer()
        except BaseException:
            self._discard()
            raise
        self._publish(folder, root)
        return self.path

    def _root_layer(self) -> Sdf.Layer:
        """The layer the user opens: clip metadata on the default prim, the sublayers."""
        layer = self._new_layer()
        lo, hi = self._span
        layer.startTimeCode, layer.endTimeCode = lo, hi
        layer.customLayerData = {"twin3d": {
            "role": "recording", "timeOrigin": float(self.origin or 0.0),
            "channels": len(self._channels), "clipSeconds": self.clip_seconds,
            "clips": len(self._written)}}
        folder = f"./{self.clips_dir.name}"
        _author_clips(layer, self._root, [(start, f"{folder}/{name}")
                                          for start, name in self._written],
                      f"{folder}/{_MANIFEST}")
        subs = [f"{folder}/{_TOPOLOGY}"]
        if self._live is not None:
            base = self._live.base_path.resolve()
            rel = os.path.relpath(base, self.path.resolve().parent).replace(os.sep, "/")
            subs.append(rel if rel.startswith(".") else f"./{rel}")
            copy_metrics(open_layer(base, "stage"), layer)
        else:
            layer.defaultPrim = self._root.name
            layer.pseudoRoot.SetInfo("upAxis", "Z")
            layer.pseudoRoot.SetInfo("metersPerUnit", 1.0)
        layer.subLayerPaths = subs
        return layer

    def _publish(self, folder: Path, root: Sdf.Layer) -> None:
        """Move the clips folder into place, then write ``path`` (replacing an older recording)."""
        old = None
        try:
            if self.clips_dir.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.clips_dir.name}.old.",
                                            dir=self.clips_dir.parent))
                self.clips_dir.rename(old / "clips")
            folder.rename(self.clips_dir)
            self._tmp = self.clips_dir
            save_layer(root, self.path)
        except BaseException:
            self._discard()
            if old is not None:
                (old / "clips").rename(self.clips_dir)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        self._tmp = None  # published: no longer ours to remove

    def _discard(self) -> None:
        """Remove the clips written so far."""
        self._pending.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _author_clips(layer: Sdf.Layer, prim: Sdf.Path, clips: Sequence[tuple[float, str]],
                  manifest: str) -> None:
    """Author the clip set of ``prim`` in ``layer`` (before it has sublayers) with Usd.ClipsAPI.

    No ``times``: a clip's time codes are the stage's (USD's default mapping).

    Args:
        layer: the recording's root layer, without sublayers yet (the clips are not opened).
        prim: the prim whose namespace the clips cover.
        clips: ``(time code the clip is active from, asset path)``, in time order.
        manifest: the manifest's asset path.
    """
    Sdf.CreatePrimInLayer(layer, prim)
    stage = Usd.Stage.Open(layer, Usd.Stage.LoadNone)
    api = Usd.ClipsAPI(stage.GetPrimAtPath(prim))
    api.SetClipManifestAssetPath(Sdf.AssetPath(manifest))  # first: else USD opens every clip
    api.SetClipPrimPath(str(prim))                          # to make a manifest of its own
    api.SetClipAssetPaths([Sdf.AssetPath(path) for _, path in clips])
    api.SetClipActive([(start, i) for i, (start, _) in enumerate(clips)])
    api.SetInterpolateMissingClipValues(True)  # a channel silent for a clip: as in one layer


def _drop_time_samples(layer: Sdf.Layer) -> None:
    """Remove every time sample from ``layer``, keeping its specs (a clip -> its topology)."""
    paths: list[Sdf.Path] = []
    layer.Traverse(Sdf.Path.absoluteRootPath,
                   lambda p: paths.append(p) if p.IsPropertyPath() else None)
    for path in paths:
        spec = layer.GetAttributeAtPath(path)
        if spec is not None and spec.HasInfo("timeSamples"):
            spec.ClearInfo("timeSamples")


def _range(fields: Sequence[tuple[float, FieldTarget, str, np.ndarray]],
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
                   skip_unknown: bool = False, clip_seconds: float = 30.0) -> Path:
    """Write samples (e.g. from a bridge recording) as a playable USD recording.

    Args:
        path: the output ``.usdc``.
        samples: the samples, any order (sorted by time here).
        stage: the bound stage to play them on (``None``: channels under ``/Recording``).
        fps: timeCodesPerSecond of the recording.
        origin: source time (Unix seconds) of time code 0; default: the earliest sample.
        skip_unknown: drop channels not bound on the stage instead of raising.
        clip_seconds: the span of one value clip (see :class:`Recording`).

    Returns:
        ``path``.

    Examples:
        >>> import tempfile, pathlib
        >>> from twin3d.model import Sample
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "rec.usdc"
        >>> record_samples(out, [Sample("a/t", 1.0, 100.0), Sample("a/t", 2.0, 100.5)]).name
        'rec.usdc'
    """
    rec = Recording(path, stage=stage, fps=fps, origin=origin, skip_unknown=skip_unknown,
                    clip_seconds=clip_seconds)
    with rec:
        rec.write_samples(sorted(samples, key=lambda s: s.time))
    return rec.path
