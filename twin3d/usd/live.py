"""The live layer: a twin's current state, in USD beside the stage it belongs to.

Files of a twin whose bound stage is ``plate.usda``::

    plate.usda        the stage as converted and bound (never rewritten here)
    plate.twin.usda   a small root layer: subLayers = [plate.live.usdc]
    plate.live.usdc   the live layer, the root's strongest sublayer: sensor values, field
                      primvars; subLayers = [plate.usda], so it also opens on its own

Open ``plate.twin.usda`` in usdview or Omniverse to see the live state (reload to refresh).
Everything is plain USD: sensor markers carry ``twin:value``, ``twin:state`` and a
``primvars:displayColor`` in the alarm colours of :data:`twin3d.colormap.ALARM_COLORS` (as
linear RGB); fields over meshes are overlays (:mod:`twin3d.usd.overlay`), one shown per mesh
(``twin:displayField``, switchable as the ``displayField`` variant). The colour range of each
field is stored with it and kept by later sessions. Recordings of the same values as time
samples are :mod:`twin3d.usd.timesamples`.

Sensor values are written with ``Sdf`` specs (:mod:`twin3d.usd.spec`), one ``Sdf.ChangeBlock``
per update.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from time import time as _now
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
from pxr import Sdf, Usd, UsdGeom

from twin3d._types import PathLike
from twin3d.colormap import ALARM_COLORS
from twin3d.errors import BindingError, FieldError, StageError
from twin3d.model import Sensor
from twin3d.usd.bindings import read_model, read_sensors, sensor_prims, sensor_value
from twin3d.usd.layer import open_layer, save_layer
from twin3d.usd.meshes import MeshData, read_meshes
from twin3d.usd.motion import Deformation, Motion
from twin3d.usd.overlay import (
    FieldTarget,
    author_field,
    field_array,
    prepare_overlay,
    read_field_info,
    select_display,
)
from twin3d.usd.spec import copy_metrics, ensure_attr, state_color
from twin3d.usd.surface import KeptSurface, author_surface, drop_surface, keep_surface

__all__ = ["LiveStage", "displacement_array", "live_paths"]

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


def displacement_array(values: npt.ArrayLike, target: FieldTarget, prim: str) -> np.ndarray:
    """Return a displacement as (n_points, 3) contiguous float32, a finite row per point of
    ``target`` (``prim``: the name the caller gave, for the message).

    Raises:
        FieldError: the wrong shape, or NaN or infinite values.
    """
    arr = np.ascontiguousarray(values, dtype=np.float32)
    if arr.shape != (target.n_points, 3):
        raise FieldError(f"displacement of {prim!r}: got an array of shape {arr.shape}, "
                         f"need ({target.n_points}, 3), one row per point")
    if not np.isfinite(arr).all():
        raise FieldError(f"displacement of {prim!r} has NaN or infinite values")
    return arr


def _check_deform(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise FieldError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


class LiveStage:
    """A bound stage opened through its root layer, with the live layer as edit target.

    Args:
        stage_path: the bound stage (``plate.usda``) or its root layer (``plate.twin.usda``).
        reset: start with an empty live layer instead of the last saved state.
        deform_rate: at most this many deformed shapes a second per prim
            (:meth:`set_displacement`).

    Raises:
        StageError: the stage is missing or unreadable, or has no defaultPrim.
        FieldError: ``deform_rate`` is not a positive number.
    """

    def __init__(self, stage_path: PathLike, *, reset: bool = False,
                 deform_rate: float = 2.0) -> None:
        self.deform_rate = _check_deform("deform_rate", deform_rate)
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
        copy_metrics(base, self.live)
        self.live.customLayerData = {"twin3d": {"role": "live"}}
        # the live layer also sublayers the base, so it opens (and validates) on its own
        if list(self.live.subLayerPaths) != [f"./{base_path.name}"]:
            self.live.subLayerPaths = [f"./{base_path.name}"]
        self.root = (_open_layer(self.root_path, "root layer") if self.root_path.exists()
                     else _new_layer(self.root_path))
        subs = [f"./{self.live_path.name}"]  # the base comes in beneath, through the live layer
        if list(self.root.subLayerPaths) != subs:
            self.root.subLayerPaths = subs
        copy_metrics(base, self.root)
        if _role(self.root) != "root":
            self.root.customLayerData = {"twin3d": {"role": "root"}}
        self.stage = Usd.Stage.Open(self.root, Usd.Stage.LoadAll)
        self.stage.SetEditTarget(Usd.EditTarget(self.live))
        self.root_prim = self.stage.GetDefaultPrim()
        if not self.root_prim:
            raise StageError(f"{base_path}: defaultPrim {base.defaultPrim!r} is not on the stage")
        self.sensors: dict[str, Sensor] = read_sensors(self.stage)
        self.model: dict[str, Any] = read_model(self.stage)
        self._paths = {c: p.GetPath() for c, p in sensor_prims(self.stage).items()}
        #: the property bindings: channels that move, hide, colour or set prims
        self.motion = Motion.from_stage(self.stage)
        self._root_saved = False
        self._meshes: list[MeshData] | None = None
        self._surfaces: dict[str, KeptSurface] = {}  # mesh path -> its display surface
        # quantity -> fixed colour range, as stored by earlier sessions (then this one's)
        self._ranges, _ = read_field_info(self.stage, [m.prim for m in self.meshes()])
        self._display: dict[str, str] = {}  # mesh path -> field chosen for display
        self._deform: dict[str, Deformation] = {}  # target prim -> its meshes at rest
        self._shaped: dict[str, float] = {}  # target prim -> time of the shape authored last

    # --- reading ---------------------------------------------------------------------------

    @property
    def meters_per_unit(self) -> float:
        """The stage's metersPerUnit."""
        return float(UsdGeom.GetStageMetersPerUnit(self.stage))

    @property
    def sensor_paths(self) -> Mapping[str, Sdf.Path]:
        """The marker prim of each bound sensor, by channel (read-only)."""
        return MappingProxyType(self._paths)

    @property
    def ranges(self) -> Mapping[str, tuple[float, float]]:
        """The fixed colour range of each field quantity, stored or set so far (read-only)."""
        return MappingProxyType(self._ranges)

    @property
    def display_choices(self) -> Mapping[str, str]:
        """The fields chosen with :meth:`show_field`, by mesh path (read-only)."""
        return MappingProxyType(self._display)

    def displayed_fields(self) -> dict[str, str]:
        """The field each mesh shows (its ``twin:displayField``), by mesh path."""
        meshes = self.meshes()
        shown = read_field_info(self.stage, [m.prim for m in meshes])[1]
        return {m.path: shown[m.prim] for m in meshes if m.prim in shown}

    def meshes(self) -> list[MeshData]:
        """The surfaces fields are shown on, one per mesh of the stage, in world space.

        A mesh with sensors on it is given as its display surface (:mod:`twin3d.usd.surface`:
        refined, a vertex at each sensor, kept in the live layer beside the mesh; ``path`` is
        still the mesh's); other meshes as they are. Cached: geometry does not change live.
        """
        if self._meshes is None:
            sites: dict[str, list[tuple[float, float, float]]] = {}
            for s in self.sensors.values():
                if s.position is not None:
                    sites.setdefault(s.target, []).append(s.position)
            out = []
            for mesh in read_meshes(self.stage):
                prim = self.stage.GetPrimAtPath(mesh.path)
                if mesh.path not in sites or prim.IsInstanceProxy():
                    drop_surface(self.live, Sdf.Path(mesh.path))
                    out.append(mesh)
                    continue
                kept, new = keep_surface(self.stage, prim, sites[mesh.path], mesh.color)
                if new:
                    with Sdf.ChangeBlock():
                        author_surface(self.live, kept)
                self._surfaces[mesh.path] = kept
                out.append(kept.mesh_data(mesh))
            self._meshes = out
        return self._meshes

    def surface(self, mesh: str) -> KeptSurface | None:
        """The display surface of mesh ``mesh`` (to author it into a recording), if it has one."""
        self.meshes()
        return self._surfaces.get(mesh)

    def values(self) -> dict[str, float]:
        """Current ``twin:value`` of every sensor that has one."""
        out: dict[str, float] = {}
        for channel, path in self._paths.items():
            attr = self.stage.GetAttributeAtPath(path.AppendProperty("twin:value"))
            v = attr.Get() if attr else None
            if v is not None:
                out[channel] = float(v)
        return out

    # --- live authoring ---------------------------------------------------------------------

    def update(self, values: Mapping[str, float], time: float | None = None,
               states: Mapping[str, str] | None = None) -> None:
        """Author sensor values, states and marker colours, and the properties channels drive
        (:mod:`twin3d.usd.motion`), into the live layer.

        Args:
            values: ``{channel: value}``.
            time: source time of the values (``twin:time``).
            states: states that override the limits' verdict for some channels, e.g.
                ``{"plate/tc4": "suspect"}`` from the twin engine (a state of
                :data:`twin3d.colormap.ALARM_COLORS`).

        Raises:
            BindingError: a channel is not bound on this stage, a value is not a number, or
                a state is unknown.
        """
        checked: list[tuple[Sdf.Path, float, str]] = []
        moved: dict[str, float] = {}
        states = states or {}
        for channel, raw in values.items():
            path = self._paths.get(channel)
            if path is None and channel not in self.motion.channels:
                raise BindingError(channel, f"not bound on {self.base_path.name} "
                                            "(see 'twin3d info'; bind it with 'twin3d bind')")
            value = sensor_value(channel, raw)
            if channel in self.motion.channels:
                moved[channel] = value
            if path is not None:
                state = states.get(channel) or self.sensors[channel].limits.state(value)
                if state not in ALARM_COLORS:
                    raise BindingError(channel, f"state {state!r} is not one of {', '.join(ALARM_COLORS)}")
                checked.append((path, value, state))
        layer = self.live
        self.motion.prepare()  # Usd API: before the change block
        with Sdf.ChangeBlock():
            self.motion.author(layer, moved)
            for path, value, state in checked:
                ensure_attr(layer, path, "twin:value", _T.Double).default = value
                ensure_attr(layer, path, "twin:state", _T.Token).default = state
                ensure_attr(layer, path, "primvars:displayColor", _T.Color3fArray,
                            interpolation="constant").default = state_color(state)
                if time is not None:
                    ensure_attr(layer, path, "twin:time", _T.Double).default = float(time)

    def resolve_field_target(self, prim: str) -> FieldTarget:
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
        return FieldTarget(path, meshes)

    def field_range(self, target: FieldTarget, quantity: str, values: np.ndarray,
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
        arr = field_array(values, target, quantity)
        sig = None if sigma is None else field_array(sigma, target, f"{quantity} sigma")
        lo, hi = self.field_range(target, quantity, arr, vmin, vmax)
        root = self.root_prim.GetPath()
        prepare_overlay(root)  # Usd API: before the change block
        with Sdf.ChangeBlock():
            author_field(self.live, root, target, quantity, arr, lo, hi, sigma=sig,
                         display=self._display)
        return lo, hi

    def deformation(self, target: FieldTarget) -> Deformation:
        """The meshes of ``target`` at rest, to deform (made once per target).

        Raises:
            FieldError: a mesh of ``target`` cannot deform (an instanced mesh).
        """
        if target.key not in self._deform:
            try:
                self._deform[target.key] = Deformation.from_stage(
                    self.stage, [m.prim for m in target.meshes])
            except StageError as exc:
                raise FieldError(str(exc)) from None
        return self._deform[target.key]

    def set_displacement(self, prim: str, displacement: npt.ArrayLike | None, *,
                         scale: float = 1.0, time: float | None = None) -> bool:
        """Show ``prim``'s meshes deformed: their points at rest + ``scale`` * displacement.

        Authors each mesh's (its display surface's, where it has one) ``points``,
        ``extent``, flat ``normals`` where it has them, ``twin:deformScale`` and, once,
        ``twin:restPoints`` (:class:`~twin3d.usd.motion.Deformation`). Rate-limited: a
        shape less than ``1 / deform_rate`` seconds after the last one authored for
        ``prim`` is skipped.

        Args:
            prim: as for :meth:`set_field`.
            displacement: (n_points, 3) world space, stage units, one row per point of the
                meshes in :meth:`meshes` order (as ``StressModel.displacement`` gives it);
                None: back to rest (never skipped).
            scale: the exaggeration (> 0; 1: true scale).
            time: source time of the shape (Unix seconds), for the rate limit; default: now.

        Returns:
            Whether the shape was authored (False: skipped by the rate limit).

        Raises:
            FieldError: unknown prim, wrong shape, NaN, a scale that is not > 0, a mesh
                that cannot deform.
        """
        target = self.resolve_field_target(prim)
        deformation = self.deformation(target)
        if displacement is None:
            with Sdf.ChangeBlock():
                deformation.restore(self.live)
            self._shaped.pop(target.key, None)
            return True
        arr = displacement_array(displacement, target, prim)
        factor = _check_deform("scale", scale)
        t = _now() if time is None else float(time)
        last = self._shaped.get(target.key)
        if last is not None and last <= t < last + 1.0 / self.deform_rate:
            return False
        with Sdf.ChangeBlock():
            deformation.author(self.live, arr, factor)
        self._shaped[target.key] = t
        return True

    def show_field(self, prim: str, quantity: str) -> None:
        """Show field ``quantity`` on ``prim``'s meshes (the ``displayField`` variant).

        The choice holds for later :meth:`set_field` calls and recordings of this twin.

        Raises:
            FieldError: unknown prim, or no such field set on its meshes.
        """
        target = self.resolve_field_target(prim)
        with Sdf.ChangeBlock():
            select_display(self.live, [Sdf.Path(m.prim) for m in target.meshes], quantity)
        for mesh in target.meshes:
            self._display[mesh.path] = quantity

    def save(self) -> None:
        """Write the live layer (and the root layer when it changed), each atomically.

        Each layer is exported to a temporary file that is renamed over the old one, so a
        viewer reloading at any moment reads either the previous or the new state.
        """
        todo = [(self.live, self.live_path)]
        if (self.root.dirty and not self._root_saved) or not self.root_path.exists():
            todo.append((self.root, self.root_path))
        for layer, path in todo:
            save_layer(layer, path)
        self._root_saved = True
