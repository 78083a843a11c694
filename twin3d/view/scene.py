"""Build the VTK scene once: one actor per mesh, sensors as glyphs with labels.

Every per-frame change afterwards writes into the arrays and properties made here; nothing
in this module is called again after the first frame. Mesh actors colour their field on the
GPU: the raw float32 field is bound as a vertex attribute
(``vtkOpenGLPolyDataMapper.MapDataArrayToVertexAttribute``) and a fragment-shader
replacement maps it through a 256-texel colour-map texture, so one float per vertex is
uploaded per change and the CPU does no colour mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyvista as pv
import vtk
from vtkmodules.util.numpy_support import numpy_to_vtk

from twin3d.colormap import ALARM_COLORS, DEFAULT_CMAP, lookup_table

if TYPE_CHECKING:
    from twin3d.usd.geometry import MeshData

__all__ = ["FIELD_ARRAY", "MeshActor", "SensorGlyphs", "build_mesh_actor", "colormap_texture"]

#: name of the per-vertex float32 field array on every mesh's point data
FIELD_ARRAY = "twin3d_field"

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
        base_color: the material colour.
        vertex_ids: (n_points,) stage vertex of each drawn point where hard edges split
            points, else None (drawn points are the stage vertices).
        n_vertices: number of stage vertices.
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
        mesh: world-space triangles from :func:`twin3d.usd.geometry.read_meshes`.
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
    prop.SetColor(*mesh.color)
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
                   n_vertices=len(mesh.points))
    ma.set_range(0.0, 1.0)
    return ma


@dataclass(eq=False)
class SensorGlyphs:
    """Sensors as spheres (one actor each, flat-shaded in their state colour) with labels.

    Attributes:
        channels: channel ids in glyph order.
        actors: one sphere actor per channel.
        labels: the label strings' array (updated in place).
    """

    channels: list[str]
    positions: npt.NDArray[np.float64]
    actors: list[vtk.vtkActor]
    labels: vtk.vtkStringArray
    label_actor: vtk.vtkActor2D
    points: pv.PolyData = field(repr=False)

    radius: float = 0.0

    def radius_px(self, renderer: vtk.vtkRenderer, center: npt.ArrayLike) -> float:
        """The glyph radius in pixels at ``center`` (for placing labels above it)."""
        c = np.asarray(center, dtype=np.float64)
        cam = renderer.GetActiveCamera()
        up = np.asarray(cam.GetViewUp(), dtype=np.float64)
        out = []
        for p in (c, c + self.radius * up / (np.linalg.norm(up) or 1.0)):
            renderer.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
            renderer.WorldToDisplay()
            out.append(np.asarray(renderer.GetDisplayPoint()[:2]))
        return float(np.linalg.norm(out[1] - out[0]))

    def set(self, i: int, color: Sequence[float], text: str) -> None:
        """Set glyph ``i``'s colour and label text."""
        self.actors[i].GetProperty().SetColor(*color)
        if self.labels.GetValue(i) != text:
            self.labels.SetValue(i, text)
            self.labels.Modified()
            self.points.Modified()


def build_sensor_glyphs(
    channels: Sequence[str], positions: npt.ArrayLike, radius: float
) -> SensorGlyphs:
    """Make one sphere per sensor and a label mapper over all of them.

    Args:
        channels: channel ids.
        positions: (k, 3) world positions, stage units.
        radius: sphere radius, stage units.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    actors = []
    for p in pos:
        src = vtk.vtkSphereSource()
        src.SetCenter(*p)
        src.SetRadius(radius)
        src.SetThetaResolution(16)
        src.SetPhiResolution(12)
        m = vtk.vtkPolyDataMapper()
        m.SetInputConnection(src.GetOutputPort())
        a = vtk.vtkActor()
        a.SetMapper(m)
        a.GetProperty().SetLighting(False)
        a.GetProperty().SetColor(*ALARM_COLORS["stale"])
        actors.append(a)
    pts = pv.PolyData(pos.copy() if len(pos) else np.zeros((0, 3)))
    labels = vtk.vtkStringArray()
    labels.SetName("label")
    for ch in channels:
        labels.InsertNextValue(ch)
    pts.GetPointData().AddArray(labels)
    lm = vtk.vtkLabeledDataMapper()
    lm.SetInputData(pts)
    lm.SetLabelModeToLabelFieldData()
    lm.SetFieldDataName("label")
    tp = lm.GetLabelTextProperty()
    tp.SetFontSize(13)
    tp.SetColor(1.0, 1.0, 1.0)
    tp.SetBackgroundColor(0.1, 0.1, 0.12)
    tp.SetBackgroundOpacity(0.65)
    tp.SetJustificationToCentered()
    tp.SetVerticalJustificationToBottom()
    tp.BoldOff()
    tp.ItalicOff()
    tp.ShadowOff()
    la = vtk.vtkActor2D()
    la.SetMapper(lm)
    return SensorGlyphs(list(channels), pos, actors, labels, la, pts, radius)
