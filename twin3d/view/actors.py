"""Build the VTK scene once: one actor per mesh, sensors as outlined markers with labels.

Every per-frame change afterwards writes into the arrays and properties made here; nothing
in this module is called again after the first frame. Mesh actors colour their field on the
GPU: the raw float32 field is bound as a vertex attribute
(``vtkOpenGLPolyDataMapper.MapDataArrayToVertexAttribute``) and a fragment-shader
replacement maps it through a 256-texel colour-map texture, so one float per vertex is
uploaded per change and the CPU does no colour mapping.

A mesh moves by its actor's matrix; it deforms by new positions written into its points
buffer, or, from :data:`SHADER_DISPLACEMENT_POINTS` drawn points up, by a displacement vertex
attribute its vertex shader adds (:mod:`twin3d.view.deform`): one buffer uploaded per change
and no bounds pass over a million points; displacement modes uploaded once and weighed by
uniforms cost no upload at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyvista as pv
import vtk
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP, linear_to_srgb, lookup_table
from twin3d.view.deform import ShaderDisplacement

if TYPE_CHECKING:
    from twin3d.usd.meshes import MeshData

__all__ = ["FIELD_ARRAY", "MARKER_PX", "MAX_TICKS", "OUTLINE_PX",
           "SHADER_DISPLACEMENT_POINTS", "ColorBar", "MeshActor",
           "SensorGlyphs", "build_color_bar", "build_legend", "build_mesh_actor",
           "build_sensor_glyphs", "colormap_texture", "label_actor", "lookup_table_vtk"]

#: name of the per-vertex float32 field array on every mesh's point data
FIELD_ARRAY = "twin3d_field"
#: Meshes of at least this many drawn points deform in the vertex shader (see the module doc).
SHADER_DISPLACEMENT_POINTS = 250_000

_VS_DEC = "//VTK::Normal::Dec\nin float twin3dFieldIn;\nout float twin3dFieldVS;"
_VS_IMPL = "//VTK::Normal::Impl\n  twin3dFieldVS = twin3dFieldIn;"
_FS_DEC = "//VTK::Normal::Dec\nin float twin3dFieldVS;"
_FS_IMPL = """//VTK::Color::Impl
  if (twin3dFieldOn == 1) {
    float t = clamp((twin3dFieldVS - twin3dMin) / max(twin3dMax - twin3dMin, 1e-30), 0.0, 1.0);
    if (twin3dFieldVS != twin3dFieldVS) {
      diffuseColor = diffuseIntensity * twin3dNanColor;
      ambientColor = ambientIntensity * twin3dNanColor;
    } else {
      vec3 c = texture(twin3dCmap, vec2((t * 255.0 + 0.5) / 256.0, 0.5)).rgb;
      diffuseColor = diffuseIntensity * c;
      ambientColor = ambientIntensity * c;
    }
  }"""


def colormap_texture(name: str = DEFAULT_CMAP) -> vtk.vtkTexture:
    """Return the colour map ``name`` as a 256×1 RGB texture, clamped, linearly filtered."""
    table = (np.asarray(lookup_table(name, 256)) * 255.0 + 0.5).astype(np.uint8)
    image = pv.ImageData(dimensions=(256, 1, 1))
    image.point_data["rgb"] = table
    tex = vtk.vtkTexture()
    tex.SetInputData(image)
    tex.InterpolateOn()
    tex.EdgeClampOn()
    tex.RepeatOff()
    tex.SetColorModeToDirectScalars()
    return tex


def lookup_table_vtk(name: str, vmin: float, vmax: float) -> vtk.vtkLookupTable:
    """Return a ``vtkLookupTable`` with the same colours (for the scalar bar and CPU path)."""
    table = np.asarray(lookup_table(name, 256))
    lut = vtk.vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    for i, (r, g, b) in enumerate(table):
        lut.SetTableValue(i, float(r), float(g), float(b), 1.0)
    lut.SetNanColor(*ALARM_COLORS["stale"], 1.0)
    lut.SetTableRange(vmin, vmax)
    lut.Build()
    return lut


@dataclass(eq=False)
class MeshActor:
    """One mesh of the stage on screen.

    Attributes:
        path: the mesh prim path.
        polydata: the VTK surface (points, triangles, normals computed once).
        field: (n,) float32 view of the field array VTK draws from; write into it in place.
        array: the ``vtkFloatArray`` wrapping ``field`` (call ``Modified()`` after writing).
        actor: the actor, added once.
        gpu: whether colour mapping runs in the shader (else VTK maps scalars on the CPU).
        base_color: the material colour (linear RGB, as read from the stage).
        vertex_ids: (n_points,) stage vertex of each drawn point where hard edges split
            points, else None (drawn points are the stage vertices).
        n_vertices: number of stage vertices.
        rest: (n_points, 3) float32 the points as read (world space at read time).
        to_read: (4, 4) the inverse of the mesh's local-to-world matrix when it was read.
        moved: (4, 4) the actor's matrix: world at read time -> where the mesh is now.
        deformation: the exaggeration of the displacement shown (0: at rest).
        version: counts changes of the points (deformation), for caches of the geometry.
        lit: whether the surface is lit (the vertex shader differs).
        shader_displacement: deform in the vertex shader (a displacement attribute) rather
            than by rewriting the points (decided by size; set it before the first
            deformation to choose).
    """

    path: str
    polydata: pv.PolyData
    field: npt.NDArray[np.float32]
    array: vtk.vtkFloatArray
    actor: vtk.vtkActor
    gpu: bool
    base_color: tuple[float, float, float]
    vertex_ids: npt.NDArray[np.intp] | None = None
    n_vertices: int = 0
    has_field: bool = False
    rest: npt.NDArray[np.float32] = dataclasses.field(default_factory=lambda: np.zeros((0, 3), np.float32))
    to_read: npt.NDArray[np.float64] = dataclasses.field(default_factory=lambda: np.eye(4))
    moved: npt.NDArray[np.float64] = dataclasses.field(default_factory=lambda: np.eye(4))
    deformation: float = 0.0
    version: int = 0
    lit: bool = True
    shader_displacement: bool = False
    _matrix: vtk.vtkMatrix4x4 = dataclasses.field(default_factory=vtk.vtkMatrix4x4, repr=False)
    _offset: npt.NDArray[np.float32] | None = dataclasses.field(default=None, repr=False)
    _shader: ShaderDisplacement | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.actor.SetUserMatrix(self._matrix)

    @property
    def points(self) -> npt.NDArray[np.float32]:
        """(n_points, 3) float32 view of the points buffer VTK draws from."""
        return np.asarray(self.polydata.points)

    def place(self, world: npt.ArrayLike) -> None:
        """Put the mesh where its local-to-world matrix ``world`` (4, 4) says.

        Only the actor's matrix changes (64 bytes); no point or scalar buffer is touched.
        """
        self.moved = np.asarray(world, dtype=np.float64) @ self.to_read
        self._matrix.DeepCopy(self.moved.ravel())

    def deform(self, displacement: npt.ArrayLike | None, scale: float = 1.0, *,
               normals: bool = False) -> None:
        """Draw the points at ``rest + scale * displacement``, written into the points buffer.

        Args:
            displacement: (n_vertices, 3) per stage vertex, stage units, in the frame of the
                points as read; None: back at rest.
            scale: the exaggeration factor.
            normals: recompute the shading normals too (else they stay as at rest).
        """
        d = None if displacement is None else np.asarray(displacement)
        if self.shader_displacement:
            self._gpu().write(d, scale)
        else:
            pts = self.points
            if d is None:
                np.copyto(pts, self.rest)
            else:
                if self._offset is None:
                    self._offset = np.empty_like(self.rest)
                src = d if self.vertex_ids is None else d[self.vertex_ids]
                np.multiply(src, scale, out=self._offset, casting="same_kind")
                np.add(self.rest, self._offset, out=pts)
            self.polydata.GetPoints().Modified()
        self.deformation = 0.0 if d is None else float(scale)
        self._changed(normals)

    def set_modes(self, modes: npt.ArrayLike) -> None:
        """Upload k displacement modes (n_vertices, 3, k) to the GPU once (see :meth:`weigh`)."""
        self.shader_displacement = True
        self._gpu().set_modes(np.asarray(modes))
        self.deformation = 0.0
        self._changed(False)

    def weigh(self, weights: npt.ArrayLike, scale: float, *, normals: bool = False) -> None:
        """Draw the points at ``rest + scale * Σ weights[j] * mode[j]``: k uniforms per change."""
        self._gpu().weigh(np.asarray(weights), scale)
        self.deformation = float(scale)
        self._changed(normals)

    @property
    def modes(self) -> int:
        """How many displacement modes are uploaded (0: none)."""
        return 0 if self._shader is None else self._shader.modes

    @property
    def reach(self) -> float:
        """How far the vertex shader displaces any point now, stage units (the actor's bounds
        do not know it: the view widens its clipping range by it)."""
        return 0.0 if self._shader is None or not self.shader_displacement else self._shader.reach

    def offset(self, point: int) -> npt.NDArray[np.float64]:
        """How far drawn point ``point`` is from rest now (3,), before the actor's matrix."""
        if self.shader_displacement:
            return np.zeros(3) if self._shader is None else self._shader.offset(point)
        return np.asarray(self.points[point] - self.rest[point], dtype=np.float64)

    def drawn(self) -> npt.NDArray[np.floating[Any]]:
        """(n_points, 3) the points as drawn now, before the actor's matrix (the points
        buffer, plus the vertex shader's displacement for a part deformed there)."""
        if self._shader is None or not self.shader_displacement:
            return self.points
        return self.rest + self._shader.displacement()

    def _gpu(self) -> ShaderDisplacement:
        if self._shader is None:
            self._shader = ShaderDisplacement(self.actor, self.polydata, self.lit,
                                              self.vertex_ids)
        return self._shader

    def _changed(self, normals: bool) -> None:
        if normals:
            _write_normals(self.polydata, self.drawn())
        self.version += 1

    def set_range(self, vmin: float, vmax: float) -> None:
        """Set the colour range (a uniform on the GPU path, the LUT range on the CPU path)."""
        if self.gpu:
            u = self.actor.GetShaderProperty().GetFragmentCustomUniforms()
            u.SetUniformf("twin3dMin", float(vmin))
            u.SetUniformf("twin3dMax", float(vmax))
        else:
            self.actor.GetMapper().SetScalarRange(float(vmin), float(vmax))

    def show_field(self, on: bool) -> None:
        """Switch the field overlay on (colour map) or off (material colour)."""
        self.has_field = on
        if self.gpu:
            u = self.actor.GetShaderProperty().GetFragmentCustomUniforms()
            u.SetUniformi("twin3dFieldOn", 1 if on else 0)
        else:
            self.actor.GetMapper().SetScalarVisibility(on)

    def write(self, values: npt.ArrayLike) -> None:
        """Copy ``values`` (n_vertices,) into the field array in place and mark it modified.

        Where hard edges split points, each drawn point takes its stage vertex's value.
        """
        v = np.asarray(values, dtype=np.float32)
        if self.vertex_ids is None:
            np.copyto(self.field, v, casting="same_kind")
        else:
            np.take(v, self.vertex_ids, out=self.field)
        self.array.Modified()

    def field_at_vertices(self) -> npt.NDArray[np.float32]:
        """The field as last written, per stage vertex (n_vertices,)."""
        if self.vertex_ids is None:
            return self.field
        out = np.empty(self.n_vertices, dtype=np.float32)
        out[self.vertex_ids] = self.field
        return out


def _write_normals(poly: pv.PolyData, points: npt.ArrayLike) -> None:
    """Recompute the point normals of ``poly`` in place (area-weighted face normals) for its
    triangles at ``points`` (n_points, 3)."""
    arr = poly.GetPointData().GetNormals()
    if arr is None:
        return
    pts = np.asarray(points, dtype=np.float64)
    tri = np.asarray(poly.faces).reshape(-1, 4)[:, 1:]
    fn = np.cross(pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]])
    acc = np.zeros_like(pts)
    for k in range(3):
        for c in range(3):
            acc[:, c] += np.bincount(tri[:, k], weights=fn[:, c], minlength=len(pts))
    acc /= np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-300)
    out = vtk_to_numpy(arr)  # type: ignore[no-untyped-call]
    out[:] = acc
    arr.Modified()


def _polydata(mesh: MeshData, feature_angle: float) -> tuple[pv.PolyData, npt.NDArray[np.intp] | None]:
    """Surface with normals computed once; hard edges (> ``feature_angle``) split.

    Returns:
        The polydata and, when splitting duplicated points, (n_out,) indices of the stage
        vertex each output point came from (the field is gathered through them).
    """
    faces = np.asarray(mesh.faces, dtype=np.int64)
    cells = np.hstack([np.full((len(faces), 1), 3, dtype=np.int64), faces]).ravel()
    poly = pv.PolyData(np.asarray(mesh.points, dtype=np.float32), cells)
    vid = numpy_to_vtk(np.arange(poly.n_points, dtype=np.int64), deep=1)  # type: ignore[no-untyped-call]
    vid.SetName("twin3d_vid")
    poly.GetPointData().AddArray(vid)
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.SetFeatureAngle(feature_angle)
    normals.SetSplitting(feature_angle < 180.0)
    normals.ConsistencyOff()
    normals.AutoOrientNormalsOff()
    normals.ComputeCellNormalsOff()
    normals.Update()
    out = pv.wrap(normals.GetOutput())
    ids = np.asarray(out.point_data["twin3d_vid"], dtype=np.intp)
    out.GetPointData().RemoveArray("twin3d_vid")
    if out.n_points == poly.n_points and np.array_equal(ids, np.arange(poly.n_points)):
        return out, None
    return out, ids


def build_mesh_actor(
    mesh: MeshData, *, cmap: str = DEFAULT_CMAP, gpu: bool = True, lighting: bool = True,
    feature_angle: float = 30.0,
) -> MeshActor:
    """Make the actor of one mesh with a zero field array ready for in-place updates.

    Args:
        mesh: world-space triangles from :func:`twin3d.usd.meshes.read_meshes`.
        cmap: matplotlib colour map name of the field overlay.
        gpu: map colours in a shader (one float per vertex uploaded); else VTK's CPU mapping.
        lighting: light the surface (off gives exact colour-map colours, for tests).
        feature_angle: edges sharper than this (degrees) stay hard; 180 = smooth everywhere.
    """
    poly, vid = _polydata(mesh, feature_angle)
    field_np = np.zeros(poly.n_points, dtype=np.float32)
    arr = numpy_to_vtk(field_np, deep=0)  # type: ignore[no-untyped-call]
    arr.SetName(FIELD_ARRAY)
    poly.GetPointData().AddArray(arr)
    mapper = vtk.vtkOpenGLPolyDataMapper()
    mapper.SetInputData(poly)
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*linear_to_srgb(mesh.color).tolist())  # USD colours are linear
    prop.SetLighting(lighting)
    prop.SetInterpolationToGouraud()
    if gpu:
        mapper.ScalarVisibilityOff()
        mapper.MapDataArrayToVertexAttribute(
            "twin3dFieldIn", FIELD_ARRAY, vtk.vtkDataObject.FIELD_ASSOCIATION_POINTS, -1
        )
        prop.SetTexture("twin3dCmap", colormap_texture(cmap))
        sp = actor.GetShaderProperty()
        sp.AddVertexShaderReplacement("//VTK::Normal::Dec", True, _VS_DEC, False)
        sp.AddVertexShaderReplacement("//VTK::Normal::Impl", True, _VS_IMPL, False)
        sp.AddFragmentShaderReplacement("//VTK::Normal::Dec", True, _FS_DEC, False)
        sp.AddFragmentShaderReplacement("//VTK::Color::Impl", True, _FS_IMPL, False)
        u = sp.GetFragmentCustomUniforms()
        u.SetUniform3f("twin3dNanColor", list(ALARM_COLORS["stale"]))
        u.SetUniformi("twin3dFieldOn", 0)
    else:
        poly.GetPointData().SetActiveScalars(FIELD_ARRAY)
        mapper.SetLookupTable(lookup_table_vtk(cmap, 0.0, 1.0))
        mapper.SetScalarModeToUsePointData()
        mapper.UseLookupTableScalarRangeOff()
        mapper.InterpolateScalarsBeforeMappingOn()
        mapper.ScalarVisibilityOff()
    ma = MeshActor(mesh.path, poly, field_np, arr, actor, gpu, mesh.color, vertex_ids=vid,
                   n_vertices=len(mesh.points), rest=np.array(poly.points, dtype=np.float32),
                   to_read=np.linalg.inv(np.asarray(mesh.world, dtype=np.float64)),
                   lit=lighting, shader_displacement=poly.n_points >= SHADER_DISPLACEMENT_POINTS)
    ma.set_range(0.0, 1.0)
    return ma


@dataclass(eq=False)
class SensorGlyphs:
    """Sensors as screen-space markers (a disc in the state colour, outlined) with 2D labels.

    Markers are drawn in display pixels, the same size at any distance, at each sensor's
    projected position (the view moves them when the camera moves and hides those the part
    hides); one 2D actor draws them all.

    Attributes:
        channels: channel ids in marker order.
        positions: (k, 3) world positions, stage units.
        radius: a length in stage units on the scale of a marker (the view's occlusion test
            stops that short of the sensor).
        markers: 2k polygons in display pixels: k black outlines, then k coloured discs.
        marker_actor: the 2D actor drawing them.
        texts: one label per channel (display coordinates; hidden until placed).
        leaders: (2k, 3) points of the leader lines (display coordinates, one line each).
        leader_actor: the 2D actor drawing them.
    """

    channels: list[str]
    positions: npt.NDArray[np.float64]
    radius: float
    markers: pv.PolyData = field(repr=False)
    marker_actor: vtk.vtkActor2D = field(repr=False)
    texts: list[vtk.vtkTextActor] = field(repr=False)
    leaders: pv.PolyData = field(repr=False)
    leader_actor: vtk.vtkActor2D = field(repr=False)

    @property
    def radius_px(self) -> float:
        """A marker's radius on screen, outline included, in pixels."""
        return MARKER_PX + OUTLINE_PX

    def set(self, i: int, color: Sequence[float], text: str) -> None:
        """Set marker ``i``'s colour (sRGB), its label's text and the label frame's colour."""
        rgb = self.markers.cell_data["rgb"]
        rgb[len(self.channels) + i] = np.asarray(color) * 255.0 + 0.5
        self.markers.GetCellData().GetArray("rgb").Modified()
        label = self.texts[i]
        if label.GetInput() != text:
            label.SetInput(text)
        label.GetTextProperty().SetFrameColor(*color)

    def move(self, centers: npt.ArrayLike, shown: npt.ArrayLike) -> None:
        """Draw the markers at ``centers`` (k, 2) display pixels; hide those not ``shown``."""
        xy = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
        on = np.asarray(shown, dtype=bool).reshape(-1)
        ring = _RING[None, :, :]
        pts = np.zeros((2, len(xy), len(_RING), 3))
        pts[0, :, :, :2] = xy[:, None, :] + ring * (MARKER_PX + OUTLINE_PX)
        pts[1, :, :, :2] = xy[:, None, :] + ring * MARKER_PX
        pts[:, ~on, :, :2] = -100.0  # off screen, zero size
        self.markers.points = pts.reshape(-1, 3)

    def text_size(self, i: int) -> tuple[float, float]:
        """Width and height in pixels of label ``i`` as it will be drawn (frame included)."""
        bbox = [0, 0, 0, 0]
        _TEXT_RENDERER.GetBoundingBox(self.texts[i].GetTextProperty(), self.texts[i].GetInput(),
                                      bbox, 72)
        return float(bbox[1] - bbox[0] + 4), float(bbox[3] - bbox[2] + 4)

    def place(self, i: int, box: Sequence[float] | None, leader: Sequence[float] | None) -> None:
        """Show label ``i`` in ``box`` (x0, y0, x1, y1 pixels) or hide it (None).

        Args:
            i: the marker.
            box: where the label goes, or None to hide it.
            leader: (x0, y0, x1, y1) of its leader line, or None for none.
        """
        label = self.texts[i]
        label.SetVisibility(box is not None)
        if box is not None:
            label.SetPosition(float(box[0]) + 2.0, float(box[1]) + 2.0)
        pts = np.asarray(self.leaders.points)
        if leader is None:
            pts[2 * i:2 * i + 2] = 0.0
        else:
            pts[2 * i] = (leader[0], leader[1], 0.0)
            pts[2 * i + 1] = (leader[2], leader[3], 0.0)
        self.leaders.points = pts


#: A marker's radius in pixels, and its black outline's width.
MARKER_PX = 7.0
OUTLINE_PX = 2.5
_RING = np.stack([np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
                  np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))], axis=1)
_TEXT_RENDERER = vtk.vtkTextRenderer()


def label_actor(text: str = "", *, size: int = 13, color: Sequence[float] = (1.0, 1.0, 1.0),
                background: Sequence[float] = (0.08, 0.09, 0.11),
                opacity: float = 0.85) -> vtk.vtkTextActor:
    """A 2D text with a background and a frame, positioned in display pixels (lower left)."""
    a = vtk.vtkTextActor()
    a.SetInput(text)
    tp = a.GetTextProperty()
    tp.SetFontSize(size)
    tp.SetColor(*color)
    tp.SetBackgroundColor(*background)
    tp.SetBackgroundOpacity(opacity)
    tp.SetFrame(True)
    tp.SetFrameWidth(2)
    tp.SetFrameColor(*ALARM_COLORS["stale"])
    tp.SetJustificationToLeft()
    tp.SetVerticalJustificationToBottom()
    tp.BoldOff()
    tp.ItalicOff()
    tp.ShadowOff()
    return a


def _actor2d(poly: pv.PolyData, color: Sequence[float] | None = None) -> vtk.vtkActor2D:
    mapper = vtk.vtkPolyDataMapper2D()
    mapper.SetInputData(poly)
    actor = vtk.vtkActor2D()
    actor.SetMapper(mapper)
    if color is not None:
        mapper.ScalarVisibilityOff()
        actor.GetProperty().SetColor(*color)
    return actor


def build_sensor_glyphs(
    channels: Sequence[str], positions: npt.ArrayLike, radius: float
) -> SensorGlyphs:
    """Make the markers (grey until placed and coloured), one label per sensor, the leaders.

    Args:
        channels: channel ids.
        positions: (k, 3) world positions, stage units.
        radius: the occlusion margin, stage units (see :class:`SensorGlyphs`).
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    k, n = len(pos), len(_RING)
    polys = np.column_stack([np.full(2 * k, n), np.arange(2 * k * n).reshape(2 * k, n)])
    markers = pv.PolyData(np.full((2 * k * n, 3), -100.0), faces=polys.ravel().astype(np.int64))
    rgb = np.zeros((2 * k, 3), dtype=np.uint8)
    rgb[k:] = np.asarray(ALARM_COLORS["stale"]) * 255.0 + 0.5
    colors = numpy_to_vtk(rgb, deep=1)  # type: ignore[no-untyped-call]  # (pyvista refuses 0 rows)
    colors.SetName("rgb")
    markers.GetCellData().SetScalars(colors)
    marker_actor = _actor2d(markers)
    marker_actor.GetMapper().SetColorModeToDirectScalars()
    marker_actor.GetMapper().SetScalarModeToUseCellData()
    texts = [label_actor(ch) for ch in channels]
    for t in texts:
        t.SetVisibility(False)
    lines = np.column_stack([np.full(k, 2), 2 * np.arange(k), 2 * np.arange(k) + 1]).ravel()
    leaders = pv.PolyData(np.zeros((2 * k, 3)), lines=lines.astype(np.int64))
    leader_actor = _actor2d(leaders, (0.92, 0.93, 0.95))
    leader_actor.GetProperty().SetLineWidth(1.5)
    return SensorGlyphs(list(channels), pos, radius, markers, marker_actor, texts, leaders,
                        leader_actor)


def build_legend() -> list[vtk.vtkTextActor]:
    """Chips naming the sensor states in their colours (placed by the view, top left)."""
    chips = []
    for state, text in (("ok", "ok"), ("warn", "WARN"), ("alarm", "ALARM"),
                        ("stale", "STALE / no data")):
        dark = state in ("warn", "stale")
        a = label_actor(f" {text} ", size=12, color=(0.05, 0.05, 0.05) if dark else (1, 1, 1),
                        background=ALARM_COLORS[state], opacity=1.0)
        a.GetTextProperty().SetFrameColor(0.0, 0.0, 0.0)
        a.GetTextProperty().SetFrameWidth(1)
        chips.append(a)
    return chips


@dataclass(eq=False)
class ColorBar:
    """The colour bar of the shown field, drawn in pixels: a strip of the colour map, round
    ticks below it, the title above it (so the title never runs into the tick labels).

    Before any value arrives the strip and ticks are hidden and the title says "no data".
    Made once; :meth:`show` and :meth:`fit` move and rewrite its parts in place.

    Attributes:
        strip: the colour strip (256 cells in the colour map's colours).
        frame: its outline.
        ticks: the tick marks (short lines below the strip).
        labels: tick label texts (as many as :data:`MAX_TICKS`; unused ones hidden).
        title: the title text.
        name: the title, e.g. ``"temperature (°C)"``.
    """

    strip: vtk.vtkActor2D
    frame: vtk.vtkActor2D
    ticks: vtk.vtkActor2D
    labels: list[vtk.vtkTextActor]
    title: vtk.vtkTextActor
    name: str
    _strip: pv.PolyData = field(repr=False)
    _frame: pv.PolyData = field(repr=False)
    _ticks: pv.PolyData = field(repr=False)
    _range: tuple[float, float] | None = None
    _box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    _width: float = 1024.0

    def actors(self) -> list[vtk.vtkProp]:
        """Every prop of the bar, to add to the renderer once."""
        return [self.strip, self.frame, self.ticks, *self.labels, self.title]

    def fit(self, window: Sequence[int]) -> None:
        """Place the bar at the lower right of a ``window`` (width, height) in pixels."""
        w = float(window[0])
        x0, x1 = 0.55 * w, 0.55 * w + min(0.42 * w, 420.0)
        box = (x0, 40.0, x1, 54.0)
        if box == self._box:
            return
        self._box, self._width = box, w
        n = 256
        xs = np.linspace(x0, x1, n + 1)
        pts = np.zeros((2 * (n + 1), 3))
        pts[0::2, 0], pts[1::2, 0] = xs, xs
        pts[0::2, 1], pts[1::2, 1] = box[1], box[3]
        self._strip.points = pts
        self._frame.points = np.array([[x0, box[1], 0], [x1, box[1], 0], [x1, box[3], 0],
                                       [x0, box[3], 0]], dtype=np.float64)
        if self._range is not None:
            self.show(*self._range)
        else:
            self.no_data()

    def show(self, vmin: float, vmax: float) -> None:
        """Show the bar over ``vmin..vmax`` with round ticks."""
        from twin3d.view.labels import nice_ticks

        self._range = (vmin, vmax)
        x0, y0, x1, _ = self._box
        values = nice_ticks(vmin, vmax)[:MAX_TICKS]
        span = (vmax - vmin) or 1.0
        marks = np.zeros((2 * MAX_TICKS, 3))
        for k, label in enumerate(self.labels):
            if k < len(values):
                x = x0 + (values[k] - vmin) / span * (x1 - x0)
                label.SetInput(f"{values[k]:g}")
                label.SetPosition(x, y0 - 7.0)
                marks[2 * k] = (x, y0, 0.0)
                marks[2 * k + 1] = (x, y0 - 5.0, 0.0)
            label.SetVisibility(k < len(values))
        self._ticks.points = marks
        for a in (self.strip, self.frame, self.ticks):
            a.SetVisibility(True)
        self._set_title(self.name)

    def no_data(self) -> None:
        """Hide the strip and ticks; the title says there is no data yet."""
        self._range = None
        for a in (self.strip, self.frame, self.ticks, *self.labels):
            a.SetVisibility(False)
        self._set_title(f"{self.name}: no data")

    def _set_title(self, text: str) -> None:
        """Write the title above the bar's left end, moved left as far as a long one needs
        to stay inside the window."""
        bbox = [0, 0, 0, 0]
        vtk.vtkTextRenderer().GetBoundingBox(self.title.GetTextProperty(), text, bbox, 72)
        x0, _, _, y1 = self._box
        self.title.SetInput(text)
        self.title.SetPosition(max(min(x0, self._width - 8.0 - (bbox[1] - bbox[0])), 8.0), y1 + 5.0)

    def pixels(self) -> tuple[float, float, float, float]:
        """The area (x0, y0, x1, y1) in pixels that the bar, its ticks and title cover."""
        x0, _, x1, y1 = self._box
        return (min(x0, self.title.GetPosition()[0]) - 16.0, 16.0, x1 + 16.0, y1 + 26.0)


#: Most tick labels a colour bar shows.
MAX_TICKS = 8


def build_color_bar(name: str, cmap: str = DEFAULT_CMAP) -> ColorBar:
    """Make the colour bar of a field ("no data" until :meth:`ColorBar.show`).

    Args:
        name: the title, e.g. ``"temperature (°C)"``.
        cmap: matplotlib colour map name.
    """
    n = 256
    table = (np.asarray(lookup_table(cmap, n)) * 255.0 + 0.5).astype(np.uint8)
    quads = np.column_stack([np.full(n, 4), 2 * np.arange(n), 2 * np.arange(n) + 2,
                             2 * np.arange(n) + 3, 2 * np.arange(n) + 1]).ravel()
    strip = pv.PolyData(np.zeros((2 * (n + 1), 3)), faces=quads.astype(np.int64))
    strip.cell_data["rgb"] = table
    strip_actor = _actor2d(strip)
    strip_actor.GetMapper().SetColorModeToDirectScalars()
    strip_actor.GetMapper().SetScalarModeToUseCellData()
    frame = pv.PolyData(np.zeros((4, 3)), lines=np.array([5, 0, 1, 2, 3, 0], dtype=np.int64))
    ticks = pv.PolyData(np.zeros((2 * MAX_TICKS, 3)), lines=np.column_stack(
        [np.full(MAX_TICKS, 2), 2 * np.arange(MAX_TICKS), 2 * np.arange(MAX_TICKS) + 1]
    ).ravel().astype(np.int64))
    text = (0.92, 0.93, 0.95)
    labels = []
    for _ in range(MAX_TICKS):
        t = vtk.vtkTextActor()
        tp = t.GetTextProperty()
        tp.SetFontSize(13)
        tp.SetColor(*text)
        tp.SetJustificationToCentered()
        tp.SetVerticalJustificationToTop()
        tp.ShadowOff()
        tp.ItalicOff()
        labels.append(t)
    title = vtk.vtkTextActor()
    tp = title.GetTextProperty()
    tp.SetFontSize(14)
    tp.SetColor(0.95, 0.96, 0.97)
    tp.BoldOn()
    tp.ShadowOff()
    tp.ItalicOff()
    out = ColorBar(strip_actor, _actor2d(frame, text), _actor2d(ticks, text), labels, title,
                   name, strip, frame, ticks)
    out.fit((1024, 768))
    out.no_data()
    return out
