"""The Python scripting API: :class:`Twin`, a bound stage you can read, update and record.

Example (``scenes/plate/update.py`` is the runnable version)::

    import numpy as np
    import twin3d

    twin = twin3d.Twin.open("scenes/plate/plate.usda")
    twin.sensors["plate/tc3"]                 # Sensor(channel, quantity, unit, position, ...)
    twin.update({"plate/tc3": 81.5})          # live layer: value, state, marker colour
    n = len(twin.meshes[0].points)
    twin.set_field("Plate", "temperature", np.linspace(20, 90, n), vmin=20, vmax=100)
    twin.set_field("Plate", "von_mises", np.linspace(0, 40, n))
    twin.show_field("Plate", "von_mises")     # shown in usdview (default: temperature)
    twin.set_displacement("Plate", np.zeros((n, 3)), scale=50.0)  # deformed shape, ×50
    with twin.recording("run1.usdc") as rec:  # value clips, play back in usdview
        for t in range(10):
            rec.write(time=t * 0.5, values={"plate/tc3": 60.0 + t})
    twin.save()                               # writes plate.live.usdc and plate.twin.usda

All USD work happens in :mod:`twin3d.usd` (the live layer in :mod:`twin3d.usd.live`, recordings
in :mod:`twin3d.usd.timesamples`); this module imports no ``pxr`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from twin3d._types import PathLike
from twin3d.model import Sensor

if TYPE_CHECKING:
    from twin3d.usd.live import LiveStage
    from twin3d.usd.meshes import MeshData
    from twin3d.usd.motion import Motion
    from twin3d.usd.timesamples import Recording
    from twin3d.web.command import WebPage

__all__ = ["Twin"]


class Twin:
    """A twin: a bound USD stage opened with its live layer.

    Create it with :meth:`Twin.open`. Values and fields go to the live layer (in memory
    until :meth:`save`); the bound stage file is never rewritten.
    """

    def __init__(self, live: LiveStage) -> None:
        self._live = live

    @classmethod
    def open(cls, path: PathLike, *, reset: bool = False, deform_rate: float = 2.0) -> Twin:
        """Open a bound stage (``plate.usda``) or its root layer (``plate.twin.usda``).

        Args:
            path: the stage.
            reset: start from an empty live layer instead of the last saved state.
            deform_rate: at most this many deformed shapes a second per prim go into the
                live layer (:meth:`set_displacement`; the rest are skipped).

        Raises:
            StageError: the stage is missing, unreadable or has no defaultPrim.
            FieldError: ``deform_rate`` is not a positive number.

        Examples:
            >>> twin = Twin.open("scenes/plate/plate.usda")  # doctest: +SKIP
            >>> sorted(twin.sensors)[:2]                       # doctest: +SKIP
            ['plate/load', 'plate/sg1']
        """
        from twin3d.usd.live import LiveStage

        return cls(LiveStage(path, reset=reset, deform_rate=deform_rate))

    def __repr__(self) -> str:
        return f"Twin({str(self.stage_path)!r}, {len(self.sensors)} sensors)"

    # --- what the twin is -------------------------------------------------------------------

    @property
    def stage_path(self) -> Path:
        """The bound stage (base layer), e.g. ``scenes/plate/plate.usda``."""
        return self._live.base_path

    @property
    def root_path(self) -> Path:
        """The root layer to open in usdview/Omniverse to see the live state."""
        return self._live.root_path

    @property
    def live_path(self) -> Path:
        """The live layer (``.live.usdc``), strongest sublayer of the root layer."""
        return self._live.live_path

    @property
    def stage(self) -> Any:
        """The composed ``pxr.Usd.Stage`` (root layer; edit target = live layer)."""
        return self._live.stage

    @property
    def sensors(self) -> Mapping[str, Sensor]:
        """Bound sensors by channel (positions snapped, world space, stage units)."""
        return MappingProxyType(self._live.sensors)

    @property
    def model(self) -> dict[str, Any]:
        """The sensor map's ``[model]`` table stored at bind time (``{}`` if none).

        :func:`twin3d.fields.build_field_models` builds the physics models from it.
        """
        return dict(self._live.model)

    @property
    def meshes(self) -> list[MeshData]:
        """The surfaces fields are shown on, one per mesh: triangulated, world space, stage
        units. A mesh with sensors is given as its display surface (refined where its
        triangles are long, a vertex at each sensor, kept in the live layer beside it;
        ``mesh.source`` is the mesh as converted); fields set on it and field models built
        on it have one value per display point."""
        return list(self._live.meshes())

    @property
    def motion(self) -> Motion:
        """The property bindings: which channels move, hide, colour or set which prims
        (``motion.world_matrices(values)`` gives the poses a view moves its parts to)."""
        return self._live.motion

    @property
    def meters_per_unit(self) -> float:
        """The stage's metersPerUnit."""
        return self._live.meters_per_unit

    @property
    def values(self) -> dict[str, float]:
        """The current value of every sensor that has one (as composed on the stage)."""
        return self._live.values()

    @property
    def field_ranges(self) -> dict[str, tuple[float, float]]:
        """The colour range ``{quantity: (vmin, vmax)}`` of each field, as stored in the stage.

        A range is fixed by the first :meth:`set_field` of a quantity and kept by later
        sessions; views and recordings use it by default.
        """
        return dict(self._live.ranges)

    @property
    def displayed_fields(self) -> dict[str, str]:
        """The field each mesh shows in USD (its ``twin:displayField``), by mesh path."""
        return self._live.displayed_fields()

    # --- changing it ------------------------------------------------------------------------

    def update(self, values: Mapping[str, float], time: float | None = None, *,
               states: Mapping[str, str] | None = None) -> None:
        """Set sensor values in the live layer: ``twin:value``, ``twin:state``, marker colour.

        Args:
            values: ``{channel: value}`` in each sensor's unit.
            time: source time of the values (Unix seconds), stored as ``twin:time``.
            states: states that override the limits' verdict, e.g. ``{"plate/tc4":
                "suspect"}`` (the twin engine's judgement).

        Raises:
            BindingError: a channel is not bound, a value is not a finite number (text
                such as ``"50"``, NaN and infinities are refused), or a state is unknown.
        """
        self._live.update(values, time, states)

    def set_field(self, prim: str, quantity: str, values: npt.ArrayLike, *,
                  vmin: float | None = None, vmax: float | None = None,
                  sigma: npt.ArrayLike | None = None) -> tuple[float, float]:
        """Set a per-vertex field: ``primvars:<quantity>`` and its colours.

        A mesh keeps every field set on it; it shows one (:meth:`show_field`; by default
        temperature when set, else the first field set).

        Args:
            prim: a mesh path, or a prim (e.g. the root's name ``"Plate"``) whose meshes
                the values cover, in :attr:`meshes` order.
            quantity: primvar name, e.g. ``"temperature"`` or ``"von_mises"``.
            values: (n_points,) float.
            vmin: value of the colour map's first colour; the range of a quantity stays
                fixed for later calls and recordings (default: the first call's minimum).
            vmax: value of its last colour.
            sigma: optional (n_points,) standard deviation (``primvars:<quantity>_sigma``).

        Returns:
            The (vmin, vmax) colour range used.

        Raises:
            FieldError: unknown prim, wrong number of values, bad name or range.
        """
        return self._live.set_field(prim, quantity, values, vmin=vmin, vmax=vmax, sigma=sigma)

    def set_displacement(self, prim: str, displacement: npt.ArrayLike | None, *,
                         scale: float = 1.0, time: float | None = None) -> bool:
        """Show a part deformed in the live layer: its points at rest + ``scale`` * displacement.

        The meshes (their display surfaces, where they have one) get the deformed
        ``points``, ``extent`` and flat ``normals``, ``twin:deformScale = scale`` (so a
        usdview user sees the shape is exaggerated) and, once, ``twin:restPoints``: the
        twin and every reader of its stage keep using the shape at rest. At most
        ``deform_rate`` shapes a second per prim (:meth:`open`) are authored; the rest
        are skipped (a live layer saved at 10 Hz need not rewrite its points each time).

        Args:
            prim: as for :meth:`set_field`.
            displacement: (n_points, 3) float, world space, stage units, one row per point
                of :attr:`meshes` (``StressModel.displacement(values)`` gives it); None:
                back to rest (never skipped).
            scale: the exaggeration factor (> 0; 1: true scale).
            time: source time of the shape (Unix seconds) for the rate limit (default: now).

        Returns:
            Whether the shape was authored (False: skipped by the rate limit).

        Raises:
            FieldError: unknown prim, wrong shape, NaN or infinite values, a scale that is
                not a positive number, an instanced mesh.

        Examples:
            >>> stress = build_field_models(twin)[mesh]["von_mises"]  # doctest: +SKIP
            >>> twin.set_displacement(mesh, stress.displacement(twin.values), scale=20.0)  # doctest: +SKIP
            True
        """
        return self._live.set_displacement(prim, displacement, scale=scale, time=time)

    def show_field(self, prim: str, quantity: str) -> None:
        """Choose the field ``prim``'s meshes show in USD, here and in later recordings.

        The choice is the selection of each mesh's ``displayField`` variant set (one variant
        per field), so usdview and Omniverse switch it without a script; the mesh's
        ``twin:displayField`` names it.

        Args:
            prim: as for :meth:`set_field`.
            quantity: a field set on those meshes, e.g. ``"von_mises"``.

        Raises:
            FieldError: unknown prim, or no such field set on its meshes.
        """
        self._live.show_field(prim, quantity)

    def recording(self, path: PathLike, *, fps: float = 10.0, origin: float | None = None,
                  skip_unknown: bool = False,
                  ranges: Mapping[str, tuple[float, float]] | None = None,
                  clip_seconds: float = 30.0, deform_scale: float = 1.0,
                  deform_rate: float = 2.0) -> Recording:
        """Open a USD recording (time samples in value clips) over this twin's stage.

        Use it as a context manager; ``rec.write(time, values=None, fields=None,
        displacement=None)`` records, and leaving the block writes ``path``, the file to
        open (nothing is written if the block raises). The samples go into one ``.usdc``
        clip per ``clip_seconds`` in the folder ``<stem>.clips`` beside it, written as the
        session goes, so memory stays flat however long it runs.

        Args:
            path: the output ``.usdc``.
            fps: timeCodesPerSecond; time code = (time - origin) * fps.
            origin: time of time code 0 (default: the time of the first write).
            skip_unknown: drop unbound channels instead of raising.
            ranges: fixed colour ranges ``{quantity: (vmin, vmax)}`` for recorded fields
                (default: the range :meth:`set_field` fixed, else the first clip's min..max).
            clip_seconds: seconds of the session in one clip.
            deform_scale: the exaggeration of recorded displacements (> 0; 1: true scale),
                kept on each deformed mesh as ``twin:deformScale``.
            deform_rate: at most this many deformed shapes a second per prim.
        """
        from twin3d.usd.timesamples import Recording

        return Recording(path, stage=self._live, fps=fps, origin=origin,
                         skip_unknown=skip_unknown, ranges=ranges, clip_seconds=clip_seconds,
                         deform_scale=deform_scale, deform_rate=deform_rate)

    def show(self, *, bridge: str | None = None, token: str | None = None,
             field: str | None = None, host: str = "127.0.0.1", port: int = 0) -> WebPage:
        """Show the twin in a browser view; in a notebook, the returned page displays inline.

        Serves the same page as ``twin3d web`` from this process (on a Jupyter kernel's
        event loop, else on a thread) and returns once its address is known.

        Args:
            bridge: ``ws://HOST:PORT`` of a bridge to show live values from (default: the
                values saved in the live layer).
            token: the bridge token; browsers must sign in with it too.
            field: the field to overlay (default: the one the stage shows).
            host: interface to listen on.
            port: TCP port (0: any free one).

        Examples:
            >>> Twin.open("scenes/plate/plate.usda").show(bridge="ws://127.0.0.1:8765")  # doctest: +SKIP
        """
        from twin3d.web.command import show_twin

        return show_twin(self, bridge=bridge, token=token, field=field, host=host, port=port)

    def save(self) -> None:
        """Write the live layer and the root layer to disk (each replaced atomically)."""
        self._live.save()
