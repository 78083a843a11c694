"""Values in USD: the live layer (current state) and recordings (time samples in ``.usdc``).

Files of a twin whose bound stage is ``plate.usda``::

    plate.usda        the stage as converted and bound (never rewritten here)
    plate.twin.usda   a small root layer: subLayers = [plate.live.usdc]
    plate.live.usdc   the live layer, the root's strongest sublayer: sensor values, field
                      primvars; subLayers = [plate.usda], so it also opens on its own
    run1.usdc         a recording: subLayers = [plate.usda] + time samples, playable

Open ``plate.twin.usda`` in usdview or Omniverse to see the live state (reload to refresh),
or a recording to play it back on the timeline. Everything is plain USD: sensor markers
carry ``twin:value``, ``twin:state`` and a ``primvars:displayColor`` in the alarm colours of
:data:`twin3d.colormap.ALARM_COLORS`; a field over a mesh is a vertex ``primvars:<quantity>``
plus a ``primvars:displayColor`` through :func:`twin3d.colormap.colorize` with a fixed range,
shown through a preview material that reads displayColor.

Hot paths (sensor values, recordings) are written with ``Sdf`` specs; a recording buffers
its samples and writes them in one ``Sdf.ChangeBlock`` when it is closed.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, Vt

from twin3d._types import PathLike
from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP, colorize
from twin3d.errors import BindingError, FieldError, RecordingError, StageError
from twin3d.model import Limits, Sample, Sensor
from twin3d.usd.layer import open_layer, save_layer
from twin3d.usd.mesh import MeshData, read_meshes
from twin3d.usd.sensors import read_model, read_sensors, sensor_prim_name, sensor_prims

__all__ = ["FIELD_MATERIAL", "LiveStage", "Recording", "live_paths", "record_samples"]

#: Where the live layer defines the preview material that shows field colours.
FIELD_MATERIAL = "Materials/Twin3DFieldOverlay"
_STATES = ("ok", "warn", "alarm", "stale")
_T = Sdf.ValueTypeNames


def live_paths(stage_path: PathLike) -> tuple[Path, Path]:
    """Return ``(root layer, live layer)`` paths beside a bound stage.

    Examples:
        >>> [p.name for p in live_paths("scenes/plate/plate.usda")]
        ['plate.twin.usda', 'plate.live.usdc']
    """
    p = Path(stage_path)
    stem = p.name.split(".")[0]
    return p.with_name(f"{stem}.twin.usda"), p.with_name(f"{stem}.live.usdc")


def _copy_metrics(src: Sdf.Layer, dst: Sdf.Layer) -> None:
    for key in ("upAxis", "metersPerUnit"):
        if src.pseudoRoot.HasInfo(key):
            dst.pseudoRoot.SetInfo(key, src.pseudoRoot.GetInfo(key))
    if src.defaultPrim:
        dst.defaultPrim = src.defaultPrim


def _role(layer: Sdf.Layer) -> str:
    data = layer.customLayerData.get("twin3d", {})
    return str(data.get("role", "")) if isinstance(data, dict) else ""


def _open_layer(path: Path, what: str) -> Sdf.Layer:
    return open_layer(path, what, "" if what == "stage" else "delete it to start afresh")


def _new_layer(path: Path) -> Sdf.Layer:
    existing = Sdf.Layer.Find(str(path))
    if existing is not None:
        existing.Clear()
        return existing
    fmt = Sdf.FileFormat.FindByExtension(path.suffix.lstrip("."))
    return Sdf.Layer.New(fmt, str(path))


def _state_color(state: str) -> Vt.Vec3fArray:
    return Vt.Vec3fArray([Gf.Vec3f(*ALARM_COLORS[state])])


def _indexed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (n,) or (n, k) values into (unique values, (n,) int32 indices)."""
    if values.ndim == 1:
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq, inverse.astype(np.int32).reshape(-1)
    rows = np.ascontiguousarray(values)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], inverse.astype(np.int32).reshape(-1)


def _author_primvar(layer: Sdf.Layer, prim: Sdf.Path, name: str, values: np.ndarray,
                    time: float | None = None) -> Sdf.AttributeSpec:
    """Author a vertex primvar as indexed values (NVIDIA's IndexedPrimvarChecker wants
    repeated values indexed): default value, or a time sample when ``time`` is given."""
    colour = values.ndim == 2
    type_name = _T.Color3fArray if colour else _T.FloatArray
    uniq, idx = _indexed(values)
    vt = Vt.Vec3fArray.FromNumpy(uniq) if colour else Vt.FloatArray.FromNumpy(uniq)
    spec = _ensure_attr(layer, prim, f"primvars:{name}", type_name, interpolation="vertex")
    ispec = _ensure_attr(layer, prim, f"primvars:{name}:indices", _T.IntArray)
    if time is None:
        spec.default, ispec.default = vt, Vt.IntArray.FromNumpy(idx)
    else:
        layer.SetTimeSample(spec.path, time, vt)
        layer.SetTimeSample(ispec.path, time, Vt.IntArray.FromNumpy(idx))
        if not spec.HasDefaultValue():  # the first frame, for readers of the default time
            spec.default, ispec.default = vt, Vt.IntArray.FromNumpy(idx)
    return spec


def _ensure_attr(layer: Sdf.Layer, prim_path: Sdf.Path, name: str,
                 type_name: Sdf.ValueTypeName, **info: Any) -> Sdf.AttributeSpec:
    spec = layer.GetAttributeAtPath(prim_path.AppendProperty(name))
    if spec is None:
        prim = layer.GetPrimAtPath(prim_path) or Sdf.CreatePrimInLayer(layer, prim_path)
        spec = Sdf.AttributeSpec(prim, name, type_name, Sdf.VariabilityVarying, False)
        for key, value in info.items():
            spec.SetInfo(key, value)
    return spec


@lru_cache(maxsize=8)
def _overlay_template(root: str) -> Sdf.Layer:
    """An anonymous layer holding the overlay material (built once with the Usd API)."""
    layer = Sdf.Layer.CreateAnonymous(".usda")  # held by the cache: a strong reference
    stage = Usd.Stage.Open(layer)
    path = Sdf.Path(root).AppendPath(FIELD_MATERIAL)
    material = UsdShade.Material.Define(stage, path)
    surface = UsdShade.Shader.Define(stage, path.AppendChild("PreviewSurface"))
    surface.CreateIdAttr("UsdPreviewSurface")
    reader = UsdShade.Shader.Define(stage, path.AppendChild("DisplayColor"))
    reader.CreateIdAttr("UsdPrimvarReader_float3")
    reader.CreateInput("varname", _T.String).Set("displayColor")
    reader.CreateInput("fallback", _T.Float3).Set(Gf.Vec3f(*ALARM_COLORS["stale"]))
    out = reader.CreateOutput("result", _T.Float3)
    surface.CreateInput("diffuseColor", _T.Color3f).ConnectToSource(out)
    surface.CreateInput("roughness", _T.Float).Set(0.5)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    return layer


def _author_overlay(layer: Sdf.Layer, root: Sdf.Path) -> Sdf.Path:
    """Copy the overlay material (a preview surface reading displayColor) into ``layer``."""
    path = root.AppendPath(FIELD_MATERIAL)
    if layer.GetPrimAtPath(path):
        return path
    parent = Sdf.CreatePrimInLayer(layer, path.GetParentPath())
    parent.specifier, parent.typeName = Sdf.SpecifierDef, "Scope"
    Sdf.CreatePrimInLayer(layer, path)
    if not Sdf.CopySpec(_overlay_template(str(root)), path, layer, path):
        raise StageError(f"cannot author the field material at {path}")
    return path


def _bind_in_layer(layer: Sdf.Layer, mesh: Sdf.Path, material: Sdf.Path) -> None:
    """Bind ``material`` to ``mesh`` with opinions in ``layer`` (stronger than the base)."""
    prim = layer.GetPrimAtPath(mesh) or Sdf.CreatePrimInLayer(layer, mesh)
    schemas = prim.GetInfo("apiSchemas")
    if "MaterialBindingAPI" not in schemas.prependedItems:
        prim.SetInfo("apiSchemas", Sdf.TokenListOp.Create(
            prependedItems=[*schemas.prependedItems, "MaterialBindingAPI"]))
    rel = layer.GetRelationshipAtPath(mesh.AppendProperty("material:binding"))
    if rel is None:
        rel = Sdf.RelationshipSpec(prim, "material:binding", False)
    if list(rel.targetPathList.explicitItems) != [material]:
        rel.targetPathList.explicitItems = [material]


@dataclass(frozen=True)
class _FieldTarget:
    key: str                      # the prim path the caller's name resolved to
    meshes: tuple[MeshData, ...]  # meshes whose points the values cover, in order

    @property
    def n_points(self) -> int:
        return sum(len(m.points) for m in self.meshes)


class LiveStage:
    """A bound stage opened through its root layer, with the live layer as edit target.

    Args:
        stage_path: the bound stage (``plate.usda``) or its root layer (``plate.twin.usda``).
        reset: start with an empty live layer instead of the last saved state.

    Raises:
        StageError: the stage is missing or unreadable, or has no defaultPrim.
    """

    def __init__(self, stage_path: PathLike, *, reset: bool = False) -> None:
        path = Path(stage_path)
        if not path.exists():
            raise StageError(f"{path}: no such file")
        first = _open_layer(path, "stage")
        if _role(first) in ("root", "live"):  # find the base through the live layer
            live = first if _role(first) == "live" else _open_layer(
                Path(first.ComputeAbsolutePath(first.subLayerPaths[0])), "live layer")
            subs = list(live.subLayerPaths)
            if len(subs) != 1:
                raise StageError(f"{live.realPath}: a twin3d live layer has one sublayer, the "
                                 "bound stage; delete it to start afresh")
            base_path = Path(live.ComputeAbsolutePath(subs[0]))
        else:
            base_path = path
        self.base_path = base_path
        self.root_path, self.live_path = live_paths(base_path)
        base = _open_layer(base_path, "stage")
        if not base.defaultPrim:
            raise StageError(f"{base_path}: the stage has no defaultPrim; write it with "
                             "'twin3d convert'")
        if self.live_path.exists() and not reset:
            self.live = _open_layer(self.live_path, "live layer")
        else:
            self.live = _new_layer(self.live_path)
        _copy_metrics(base, self.live)
        self.live.customLayerData = {"twin3d": {"role": "live"}}
        # the live layer also sublayers the base, so it opens (and validates) on its own
        if list(self.live.subLayerPaths) != [f"./{base_path.name}"]:
            self.live.subLayerPaths = [f"./{base_path.name}"]
        self.root = (_open_layer(self.root_path, "root layer") if self.root_path.exists()
                     else _new_layer(self.root_path))
        subs = [f"./{self.live_path.name}"]  # the base comes in beneath, through the live layer
        if list(self.root.subLayerPaths) != subs:
            self.root.subLayerPaths = subs
        _copy_metrics(base, self.root)
        if _role(self.root) != "root":
            self.root.customLayerData = {"twin3d": {"role": "root"}}
        self.stage = Usd.Stage.Open(self.root, Usd.Stage.LoadAll)
        self.stage.SetEditTarget(Usd.EditTarget(self.live))
        self.root_prim = self.stage.GetDefaultPrim()
        if not self.root_prim:
            raise StageError(f"{base_path}: defaultPrim {base.defaultPrim!r} is not on the stage")
        self.sensors: dict[str, Sensor] = read_sensors(self.stage)
        self.model: dict[str, Any] = read_model(self.stage)
        self._prims = {c: p.GetPath() for c, p in sensor_prims(self.stage).items()}
        self._ranges: dict[str, tuple[float, float]] = {}  # quantity -> fixed colour range
        self._root_saved = False
        self._meshes: list[MeshData] | None = None

    # --- reading ---------------------------------------------------------------------------

    @property
    def meters_per_unit(self) -> float:
        """The stage's metersPerUnit."""
        return float(UsdGeom.GetStageMetersPerUnit(self.stage))

    def meshes(self) -> list[MeshData]:
        """The stage's meshes in world space (cached; geometry does not change live)."""
        if self._meshes is None:
            self._meshes = read_meshes(self.stage)
        return self._meshes

    def values(self) -> dict[str, float]:
        """Current ``twin:value`` of every sensor that has one."""
        out: dict[str, float] = {}
        for channel, path in self._prims.items():
            attr = self.stage.GetAttributeAtPath(path.AppendProperty("twin:value"))
            v = attr.Get() if attr else None
            if v is not None:
                out[channel] = float(v)
        return out

    # --- live authoring ---------------------------------------------------------------------

    def update(self, values: Mapping[str, float], time: float | None = None) -> None:
        """Author sensor values, states and marker colours into the live layer.

        Raises:
            BindingError: a channel is not bound on this stage, or a value is not a number.
        """
        checked: list[tuple[Sdf.Path, float, str]] = []
        for channel, raw in values.items():
            path = self._prims.get(channel)
            if path is None:
                raise BindingError(channel, f"not bound on {self.base_path.name} "
                                            "(see 'twin3d info'; bind it with 'twin3d bind')")
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise BindingError(channel, f"value {raw!r} is not a number") from None
            checked.append((path, value, self.sensors[channel].limits.state(value)))
        layer = self.live
        with Sdf.ChangeBlock():
            for path, value, state in checked:
                _ensure_attr(layer, path, "twin:value", _T.Double).default = value
                _ensure_attr(layer, path, "twin:state", _T.Token).default = state
                _ensure_attr(layer, path, "primvars:displayColor", _T.Color3fArray,
                             interpolation="constant").default = _state_color(state)
                if time is not None:
                    _ensure_attr(layer, path, "twin:time", _T.Double).default = float(time)

    def resolve_field_target(self, prim: str) -> _FieldTarget:
        """Resolve ``prim`` (a mesh path, a prim path, or a name under the root) to meshes."""
        root = self.root_prim.GetPath()
        if prim.startswith("/"):
            path = prim
        elif prim == root.name:
            path = str(root)
        else:
            path = str(root.AppendPath(prim)) if Sdf.Path.IsValidPathString(prim) else prim
        if not Sdf.Path.IsValidPathString(path) or not self.stage.GetPrimAtPath(path):
            raise FieldError(f"prim {prim!r} is not on the stage (meshes: "
                             f"{', '.join(m.path for m in self.meshes()) or 'none'})")
        prefix = Sdf.Path(path)
        meshes = tuple(m for m in self.meshes() if Sdf.Path(m.path).HasPrefix(prefix))
        if not meshes:
            raise FieldError(f"prim {prim!r} has no meshes to carry a field")
        return _FieldTarget(path, meshes)

    def field_range(self, target: _FieldTarget, quantity: str, values: np.ndarray,
                    vmin: float | None, vmax: float | None) -> tuple[float, float]:
        """The fixed colour range of a quantity: given, remembered, or the first data's."""
        key = quantity
        old = self._ranges.get(key)
        if vmin is None or vmax is None:
            finite = values[np.isfinite(values)]
            lo = float(finite.min()) if finite.size else 0.0
            hi = float(finite.max()) if finite.size else 1.0
            vmin = vmin if vmin is not None else (old[0] if old else lo)
            vmax = vmax if vmax is not None else (old[1] if old else hi)
        if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmax < vmin:
            raise FieldError(f"colour range of {quantity!r} must be finite with vmin <= vmax, "
                             f"got {vmin}..{vmax}")
        self._ranges[key] = (float(vmin), float(vmax))
        return float(vmin), float(vmax)

    def set_field(self, prim: str, quantity: str, values: npt.ArrayLike, *,
                  vmin: float | None = None, vmax: float | None = None,
                  sigma: npt.ArrayLike | None = None) -> tuple[float, float]:
        """Author a per-vertex field as ``primvars:<quantity>`` + ``primvars:displayColor``.

        Args:
            prim: a mesh path, or a prim (or its name under the root) whose meshes the
                values cover in :meth:`meshes` order.
            quantity: primvar name, e.g. ``"temperature"``, ``"von_mises"``.
            values: (n_points,) float, one per point of the meshes.
            vmin: value of the colour map's first colour (fixed thereafter).
            vmax: value of its last colour.
            sigma: optional (n_points,) standard deviation, as ``primvars:<quantity>_sigma``.

        Returns:
            The colour range used.

        Raises:
            FieldError: unknown prim, wrong length, bad quantity name or range.
        """
        if not Sdf.Path.IsValidNamespacedIdentifier(quantity) or ":" in quantity:
            raise FieldError(f"quantity {quantity!r} is not a valid primvar name "
                             "(letters, digits and '_')")
        target = self.resolve_field_target(prim)
        arr = _field_array(values, target, quantity)
        sig = None if sigma is None else _field_array(sigma, target, f"{quantity} sigma")
        lo, hi = self.field_range(target, quantity, arr, vmin, vmax)
        colors = colorize(arr, lo, hi)
        layer = self.live
        start = 0
        _overlay_template(str(self.root_prim.GetPath()))  # Usd API: before the change block
        with Sdf.ChangeBlock():
            material = _author_overlay(layer, self.root_prim.GetPath())
            for mesh in target.meshes:
                n = len(mesh.points)
                path = Sdf.Path(mesh.path)
                spec = _author_primvar(layer, path, quantity, arr[start:start + n])
                spec.customData = {"twin3d": {"colormap": DEFAULT_CMAP, "vmin": lo, "vmax": hi}}
                _author_primvar(layer, path, "displayColor", colors[start:start + n])
                if sig is not None:
                    _author_primvar(layer, path, f"{quantity}_sigma", sig[start:start + n])
                _bind_in_layer(layer, path, material)
                start += n
        return lo, hi

    def save(self) -> None:
        """Write the live layer (and the root layer when it changed), each atomically.

        Each layer is exported to a temporary file that is renamed over the old one, so a
        viewer reloading at any moment reads either the previous or the new state.
        """
        todo = [(self.live, self.live_path)]
        if self.root.dirty and not self._root_saved or not self.root_path.exists():
            todo.append((self.root, self.root_path))
        for layer, path in todo:
            save_layer(layer, path)
        self._root_saved = True

    def recording(self, path: PathLike, *, fps: float = 10.0, origin: float | None = None,
                  skip_unknown: bool = False,
                  ranges: Mapping[str, tuple[float, float]] | None = None) -> Recording:
        """A :class:`Recording` over this stage's base layer, knowing its sensors and ranges."""
        return Recording(path, stage=self.base_path, fps=fps, origin=origin,
                         skip_unknown=skip_unknown, ranges=ranges, _live=self)


def _field_array(values: npt.ArrayLike, target: _FieldTarget, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.shape[0] != target.n_points:
        raise FieldError(f"{what}: got {arr.shape[0]} values for {target.key}, which has "
                         f"{target.n_points} points (one value per point)")
    return np.ascontiguousarray(arr)


# --- recordings ----------------------------------------------------------------------------


class Recording:
    """A recording of sensor values and fields as time samples in a ``.usdc`` layer.

    Samples are buffered and written when the recording is closed (``with`` block or
    :meth:`close`): one ``Sdf.ChangeBlock``, one crate file written atomically. The layer
    sublayers the stage (when given), so it plays back on its own in usdview or Omniverse:
    markers change value, state and colour, fields change their primvars and colours.
    Without a stage, channels become prims ``/Recording/<channel>`` with ``twin:value``.

    Args:
        path: the output ``.usdc``.
        stage: the bound stage the values belong to (``None``: channels only).
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

    def __init__(self, path: PathLike, *, stage: PathLike | None = None, fps: float = 10.0,
                 origin: float | None = None, skip_unknown: bool = False,
                 ranges: Mapping[str, tuple[float, float]] | None = None,
                 _live: LiveStage | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix not in (".usdc", ".usd"):
            raise RecordingError(f"{self.path}: recordings are written as crate (.usdc): "
                                 "time samples in .usda trip the ASCII-performance rule")
        if not fps > 0:
            raise RecordingError(f"fps must be > 0, got {fps}")
        self.fps, self.origin, self.skip_unknown = float(fps), origin, skip_unknown
        self.ranges = {q: (float(lo), float(hi)) for q, (lo, hi) in (ranges or {}).items()}
        self._live = _live if _live is not None else (
            LiveStage(stage, reset=False) if stage is not None else None)
        self._times: dict[str, array[float]] = {}   # 16 bytes a sample until close()
        self._values: dict[str, array[float]] = {}
        self._fields: list[tuple[float, _FieldTarget, str, np.ndarray]] = []
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
            if self._live is not None and channel not in self._live.sensors:
                if self.skip_unknown:
                    continue
                raise BindingError(channel, f"not bound on {self._live.base_path.name}")
            try:
                v = float(raw)
            except (TypeError, ValueError):
                raise BindingError(channel, f"value {raw!r} is not a number") from None
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
                    arr = _field_array(vals, target, quantity)
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
            _overlay_template(str(self._live.root_prim.GetPath()))
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
            _copy_metrics(_open_layer(base, "stage"), layer)
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
        if self._live is not None:
            path = self._live._prims[channel]
            limits = self._live.sensors[channel].limits
        else:
            path = root.AppendChild(sensor_prim_name(channel))
            prim = Sdf.CreatePrimInLayer(layer, path)
            prim.specifier, prim.typeName = Sdf.SpecifierDef, "Scope"
            chan = Sdf.AttributeSpec(prim, "twin:channel", _T.String, Sdf.VariabilityUniform)
            chan.default = channel
            limits = Limits()
        value = _ensure_attr(layer, path, "twin:value", _T.Double).path
        set_sample = layer.SetTimeSample
        for code, v in zip(codes.tolist(), vals.tolist()):
            set_sample(value, code, v)
        if self._live is not None:
            states = _states(vals, limits)
            state = _ensure_attr(layer, path, "twin:state", _T.Token).path
            color = _ensure_attr(layer, path, "primvars:displayColor", _T.Color3fArray,
                                 interpolation="constant").path
            change = np.flatnonzero(states[1:] != states[:-1]) + 1
            for i in np.concatenate([[0], change]).tolist():
                set_sample(state, codes[i], _STATES[states[i]])
            # colours interpolate linearly: hold each colour up to the sample before a change
            keys = np.unique(np.concatenate([[0, len(codes) - 1], change, change - 1]))
            palette = [_state_color(s) for s in _STATES]
            for i in keys.tolist():
                set_sample(color, codes[i], palette[states[i]])
        return float(codes[0]), float(codes[-1])

    def _write_fields(self, layer: Sdf.Layer, origin: float) -> list[float]:
        assert self._live is not None or not self._fields
        codes: list[float] = []
        for t, target, quantity, arr in sorted(self._fields, key=lambda f: f[0]):
            assert self._live is not None
            lo, hi = (self.ranges.get(quantity) or self._live._ranges.get(quantity)
                      or _first_range(self._fields, quantity))
            colors = colorize(arr, lo, hi)
            code = (t - origin) * self.fps
            codes.append(code)
            start = 0
            for mesh in target.meshes:
                n = len(mesh.points)
                path = Sdf.Path(mesh.path)
                spec = _author_primvar(layer, path, quantity, arr[start:start + n], code)
                spec.customData = {"twin3d": {"colormap": DEFAULT_CMAP, "vmin": lo, "vmax": hi}}
                _author_primvar(layer, path, "displayColor", colors[start:start + n], code)
                start += n
            material = _author_overlay(layer, self._live.root_prim.GetPath())
            for mesh in target.meshes:
                _bind_in_layer(layer, Sdf.Path(mesh.path), material)
        return codes


def _first_range(fields: Sequence[tuple[float, _FieldTarget, str, np.ndarray]],
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

