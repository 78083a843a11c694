"""A stage, or a USD recording of one, as it plays: meshes in frames, field colours, poses.

What a viewer outside USD needs to show a twin over time (the MCAP export for Foxglove,
:mod:`twin3d.bridge.mcap`), read once from the stage:

* **meshes**: every mesh of the stage, as its display surface where the stage keeps one
  (:mod:`twin3d.usd.surface`: the surface that carries the fields), in metres;
* **frames**: a mesh that a bound ``rotate`` or ``translate`` moves (:mod:`twin3d.usd.motion`)
  is given in the frame of the nearest moving prim at or above it (its points as they sit in
  that frame at rest); the others in :data:`WORLD`. :meth:`Playback.poses` gives each moving
  frame's pose for channel values, so a viewer moves parts by frame transforms alone;
* **fields**: a mesh that shows a field (``twin:displayField`` naming a ``primvars:<quantity>``
  with its colour map and range in ``customData``) is coloured per vertex through that colour
  map (sRGB); in a USD recording (:mod:`twin3d.usd.timesamples`) at every time the field was
  recorded (:attr:`Playback.field_times`, source time in Unix seconds), else as the stage
  holds it (a twin's ``.twin.usda`` holds the latest); meshes without a field keep their
  material's colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pxr import Sdf, Usd, UsdGeom

from twin3d._types import PathLike
from twin3d.colormap import DEFAULT_CMAP, colorize, linear_to_srgb
from twin3d.usd.layer import open_stage
from twin3d.usd.meshes import MeshData, read_meshes, triangulate
from twin3d.usd.motion import Motion
from twin3d.usd.overlay import DISPLAY_ATTR
from twin3d.usd.surface import display_path

__all__ = ["WORLD", "FieldView", "Playback", "PlayedMesh", "open_playback"]

#: The fixed frame: the stage's world, in metres.
WORLD = "world"

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FieldView:
    """The field a mesh shows and how it is coloured.

    Attributes:
        prim: the prim holding it (the mesh's display surface, or the mesh).
        quantity: its primvar name, e.g. ``"temperature"``.
        cmap: the colour map's name.
        vmin: the value of the map's first colour.
        vmax: the value of its last colour.
    """

    prim: str
    quantity: str
    cmap: str
    vmin: float
    vmax: float


@dataclass(frozen=True, eq=False)
class PlayedMesh:
    """One mesh as a viewer outside USD shows it.

    Attributes:
        path: the mesh prim (its display surface's mesh where it has one).
        frame: :data:`WORLD`, or the moving prim whose frame the points are in.
        points: (n, 3) float64 metres, in ``frame``.
        faces: (m, 3) int64 triangles.
        color: sRGB 0..1 of its material (where no field colours it).
        field: the field it shows, or None.
    """

    path: str
    frame: str
    points: F64
    faces: npt.NDArray[np.int64]
    color: tuple[float, float, float]
    field: FieldView | None

    @property
    def moves(self) -> bool:
        """Whether the mesh is in a moving frame (not :data:`WORLD`)."""
        return self.frame != WORLD


class Playback:
    """The meshes, field colours and moving frames of a stage (see the module doc).

    Use :func:`open_playback`.

    Attributes:
        meshes: every mesh, in stage order.
        frames: the moving frames (bound prims that rotate or translate), sorted.
        motion_channels: the channels that move them.
        field_times: (k,) Unix seconds at which fields were recorded, sorted (empty: the
            stage is not a recording with fields).
        meters_per_unit: the stage's unit.
        stage: the stage read.
    """

    def __init__(self, stage: Usd.Stage) -> None:
        self.stage = stage
        self.meters_per_unit = float(UsdGeom.GetStageMetersPerUnit(stage))
        self._motion = Motion.from_stage(stage)
        movers = sorted({b.prim for b in self._motion.bindings if b.kind in ("rotate", "translate")})
        self.frames: tuple[str, ...] = tuple(movers)
        self.motion_channels = frozenset(b.channel for b in self._motion.bindings
                                         if b.kind in ("rotate", "translate"))
        rest = self._motion.world_matrices({}) if movers else {}
        self._rest_frames = {p: _rigid(rest[p]) for p in movers}
        self.meshes = [self._played(m, movers, rest) for m in read_meshes(stage)]
        data = stage.GetRootLayer().customLayerData.get("twin3d", {})
        origin = data.get("timeOrigin") if isinstance(data, dict) else None
        self._origin = None if origin is None else float(origin)
        self._fps = float(stage.GetTimeCodesPerSecond())
        codes: set[float] = set()
        if self._origin is not None:
            for m in self.meshes:
                if m.field is not None:
                    codes.update(self._primvar(m.field).GetAttr().GetTimeSamples())
        self.field_times = [self._origin + c / self._fps for c in sorted(codes)] \
            if self._origin is not None else []

    def _played(self, mesh: MeshData, movers: list[str], rest: dict[str, F64]) -> PlayedMesh:
        surface = self.stage.GetPrimAtPath(display_path(mesh.path))
        points, faces, holder = mesh.points, mesh.faces, mesh.path
        if surface and surface.IsA(UsdGeom.Mesh) and not surface.IsInstanceProxy():
            geom = UsdGeom.Mesh(surface)
            local = np.asarray(geom.GetPointsAttr().Get(), dtype=np.float64)
            w = np.asarray(UsdGeom.XformCache().GetLocalToWorldTransform(surface)).T
            points = local @ w[:3, :3].T + w[:3, 3]
            faces = triangulate(geom.GetFaceVertexCountsAttr().Get(),
                                geom.GetFaceVertexIndicesAttr().Get())
            holder = str(surface.GetPath())
        frame = next((p for p in reversed(movers) if Sdf.Path(mesh.path).HasPrefix(p)), WORLD)
        if frame != WORLD:  # as the points sit in the moving frame at rest
            to_frame = np.linalg.inv(self._rest_frames[frame]) @ rest[mesh.path] @ np.linalg.inv(mesh.world)
            points = points @ to_frame[:3, :3].T + to_frame[:3, 3]
        rgb = linear_to_srgb(np.clip(mesh.color, 0.0, 1.0)).tolist()
        return PlayedMesh(mesh.path, frame, points * self.meters_per_unit, faces,
                          (float(rgb[0]), float(rgb[1]), float(rgb[2])),
                          self._field(holder, len(points)))

    def _field(self, holder: str, n: int) -> FieldView | None:
        prim = self.stage.GetPrimAtPath(holder)
        shown = prim.GetAttribute(DISPLAY_ATTR).Get() if prim.GetAttribute(DISPLAY_ATTR) else None
        if not shown:
            return None
        pv = UsdGeom.PrimvarsAPI(prim).GetPrimvar(str(shown))
        info = pv.GetAttr().GetCustomDataByKey("twin3d") if pv else None
        if not (isinstance(info, dict) and "vmin" in info and "vmax" in info):
            return None
        view = FieldView(holder, str(shown), str(info.get("colormap", DEFAULT_CMAP)),
                         float(info["vmin"]), float(info["vmax"]))
        values = pv.ComputeFlattened(Usd.TimeCode.EarliestTime())
        return view if values is not None and len(values) == n else None

    def _primvar(self, field: FieldView) -> UsdGeom.Primvar:
        return UsdGeom.PrimvarsAPI(self.stage.GetPrimAtPath(field.prim)).GetPrimvar(field.quantity)

    def colors(self, mesh: PlayedMesh, time: float | None = None) -> npt.NDArray[np.float32]:
        """(n, 3) sRGB per vertex of ``mesh``: its field through its colour map at source time
        ``time`` (Unix seconds; None: as the stage holds it), or its material colour.

        NaN values come out in the stale grey (:func:`twin3d.colormap.colorize`).
        """
        if mesh.field is None:
            return np.tile(np.asarray(mesh.color, dtype=np.float32), (len(mesh.points), 1))
        tc = Usd.TimeCode.Default() if time is None or self._origin is None else \
            Usd.TimeCode((time - self._origin) * self._fps)
        values = self._primvar(mesh.field).ComputeFlattened(tc)
        if values is None:  # no default value: the earliest recorded one
            values = self._primvar(mesh.field).ComputeFlattened(Usd.TimeCode.EarliestTime())
        f = mesh.field
        return colorize(np.asarray(values, dtype=np.float64), f.vmin, f.vmax, f.cmap)

    def poses(self, values: dict[str, float]) -> dict[str, F64]:
        """Each moving frame's (4, 4) rigid pose in :data:`WORLD` (metres) at channel
        ``values`` (a channel without a value leaves its motion at rest)."""
        if not self.frames:
            return {}
        world = self._motion.world_matrices(values)
        out = {}
        for frame in self.frames:
            m = _rigid(world[frame])
            m[:3, 3] *= self.meters_per_unit
            out[frame] = m
        return out


def _rigid(m: F64) -> F64:
    """The rotation and translation of ``m`` (4, 4), without scale or shear (polar decomposition)."""
    u, _, vt = np.linalg.svd(m[:3, :3])
    out = np.eye(4)
    out[:3, :3] = u @ vt
    out[:3, 3] = m[:3, 3]
    return out


def open_playback(path: PathLike) -> Playback:
    """Read a bound stage, a twin's ``.twin.usda`` or a USD recording for playing it.

    Raises:
        StageError: the file is missing or is not a readable USD stage.
    """
    return Playback(open_stage(path))
