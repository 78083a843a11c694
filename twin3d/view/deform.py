"""Displacement added in a mesh's vertex shader: the GPU side of deformation.

Two ways, both leaving the points buffer (and the bounds VTK computes from it) as it is:

* one (n, 3) float32 displacement attribute, rewritten and uploaded per change, scaled by a
  uniform: for any displacement (what :meth:`twin3d.View.set_displacement` does for big
  meshes);
* k displacement *modes* uploaded once, weighed by k uniforms per change: for a displacement
  linear in k numbers, as a stress model's is in its channels (``U @ values``): a change then
  uploads k floats, whatever the mesh size (:meth:`twin3d.View.set_displacement_modes`).

The vertex shader adds ``scale * displacement`` (or ``Σ wⱼ modeⱼ``) to ``vertexMC`` before
VTK's own position code; coordinates are only shifted, never scaled, on upload
(``AUTO_SHIFT``), so displacements stay in stage units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import vtk
from vtkmodules.util.numpy_support import numpy_to_vtk

__all__ = ["MAX_MODES", "ShaderDisplacement"]

#: Most displacement modes one mesh takes as vertex attributes (GL guarantees 16 attributes;
#: VTK uses up to 5 of them, the field one more).
MAX_MODES = 8


def _shader(lit: bool, modes: int | None) -> tuple[str, str]:
    """The declarations and position code of the vertex shader (``modes`` None: one field)."""
    if modes is None:
        dec = "in vec3 twin3dDispIn;\n"
        disp = "twin3dScale * twin3dDispIn"
    else:
        dec = "".join(f"in vec3 twin3dMode{j};\n" for j in range(modes))
        disp = " + ".join(f"twin3dWeights[{j}] * twin3dMode{j}" for j in range(modes))
    impl = (f"vec4 twin3dPosMC = vertexMC + vec4({disp}, 0.0);\n"
            "  gl_Position = MCDCMatrix * twin3dPosMC;\n")
    if lit:  # VTK declares vertexVCVSOutput only for lit surfaces
        impl += "  vertexVCVSOutput = MCVCMatrix * twin3dPosMC;\n"
    return "//VTK::PositionVC::Dec\n" + dec, impl


class ShaderDisplacement:
    """The displacement of one mesh actor, added in its vertex shader.

    Args:
        actor: the mesh's actor (its mapper a ``vtkOpenGLPolyDataMapper``).
        polydata: the surface it draws.
        lit: whether the surface is lit.
        vertex_ids: (n_points,) stage vertex of each drawn point, or None (the same).

    Attributes:
        reach: the largest distance any point is displaced now (stage units): the actor's
            bounds do not know it, so views widen their clipping range by it.
    """

    def __init__(self, actor: vtk.vtkActor, polydata: Any, lit: bool,
                 vertex_ids: npt.NDArray[np.intp] | None) -> None:
        self._actor, self._poly, self._lit, self._ids = actor, polydata, lit, vertex_ids
        self._n = int(polydata.GetNumberOfPoints())
        self._kind = ""  # "field": one attribute written per change; "modes": k, weighed
        self._field: npt.NDArray[np.float32] | None = None
        self._arrays: list[vtk.vtkFloatArray] = []
        self._modes: list[npt.NDArray[np.float32]] = []
        self._mode_max = np.zeros(0)
        self._weights = np.zeros(0, dtype=np.float32)
        self._scale = 0.0
        self.reach = 0.0

    @property
    def modes(self) -> int:
        """How many modes are uploaded (0: none)."""
        return len(self._modes)

    def _install(self, modes: int | None, arrays: list[npt.NDArray[np.float32]]) -> None:
        """Replace the displacement attributes and shader code (one recompile)."""
        pd = self._poly.GetPointData()
        mapper = self._actor.GetMapper()
        for old in self._arrays:
            pd.RemoveArray(old.GetName())
        self._arrays = []
        names = ["twin3dDispIn"] if modes is None else [f"twin3dMode{j}" for j in range(modes)]
        for name, data in zip(names, arrays, strict=True):
            arr = numpy_to_vtk(data, deep=0)  # type: ignore[no-untyped-call]
            arr.SetName(f"twin3d_{name}")
            pd.AddArray(arr)
            mapper.MapDataArrayToVertexAttribute(name, f"twin3d_{name}",
                                                 vtk.vtkDataObject.FIELD_ASSOCIATION_POINTS, -1)
            self._arrays.append(arr)
        mapper.SetVBOShiftScaleMethod(vtk.vtkPolyDataMapper.AUTO_SHIFT)
        dec, impl = _shader(self._lit, modes)
        sp = self._actor.GetShaderProperty()
        sp.AddVertexShaderReplacement("//VTK::PositionVC::Dec", True, dec, False)
        sp.AddVertexShaderReplacement("//VTK::PositionVC::Impl", True, impl, False)
        self._kind = "field" if modes is None else "modes"

    def _drawn(self, per_vertex: npt.NDArray[Any], out: npt.NDArray[np.float32]) -> None:
        np.copyto(out, per_vertex if self._ids is None else per_vertex[self._ids],
                  casting="same_kind")

    def write(self, displacement: npt.NDArray[Any] | None, scale: float) -> None:
        """Show ``rest + scale * displacement`` ((n_vertices, 3); None: rest)."""
        if self._kind != "field":
            self._field = np.zeros((self._n, 3), dtype=np.float32)
            self._modes = []
            self._install(None, [self._field])
        assert self._field is not None
        if displacement is None:
            self._field.fill(0.0)
            scale = 0.0
        else:
            self._drawn(displacement, self._field)
        self._scale = float(scale)
        self.reach = self._scale * float(np.abs(self._field).max(initial=0.0)) * 3.0 ** 0.5
        self._arrays[0].Modified()
        self._actor.GetShaderProperty().GetVertexCustomUniforms().SetUniformf(
            "twin3dScale", self._scale)

    def set_modes(self, modes: npt.NDArray[Any]) -> None:
        """Upload k displacement modes ((n_vertices, 3, k)), weighed by :meth:`weigh`."""
        k = modes.shape[2]
        self._modes = [np.empty((self._n, 3), dtype=np.float32) for _ in range(k)]
        for j, out in enumerate(self._modes):
            self._drawn(modes[:, :, j], out)
        self._mode_max = np.array([np.linalg.norm(m, axis=1).max(initial=0.0)
                                   for m in self._modes])
        self._field = None
        self._install(k, self._modes)
        self.weigh(np.zeros(k), 0.0)

    def weigh(self, weights: npt.NDArray[Any], scale: float) -> None:
        """Show ``rest + scale * Σ weights[j] * mode[j]``: k uniforms, nothing uploaded."""
        self._weights = (np.asarray(weights, dtype=np.float64) * scale).astype(np.float32)
        self._scale = float(scale)
        self.reach = float(np.abs(self._weights) @ self._mode_max)
        self._actor.GetShaderProperty().GetVertexCustomUniforms().SetUniform1fv(
            "twin3dWeights", len(self._weights), self._weights.tolist())

    def offset(self, point: int) -> npt.NDArray[np.float64]:
        """The displacement drawn at drawn point ``point`` now (3,), stage units."""
        if self._field is not None:
            return np.asarray(self._scale * self._field[point], dtype=np.float64)
        out = np.zeros(3)
        for w, m in zip(self._weights.tolist(), self._modes, strict=True):
            out += w * m[point]
        return out

    def displacement(self) -> npt.NDArray[np.float64]:
        """(n_points, 3) the displacement drawn now (for normals of the deformed shape)."""
        if self._field is not None:
            return np.asarray(self._scale * self._field, dtype=np.float64)
        out = np.zeros((self._n, 3))
        for w, m in zip(self._weights.tolist(), self._modes, strict=True):
            out += w * m
        return out
