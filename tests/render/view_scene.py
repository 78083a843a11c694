"""The view tests' scene: a real small stage written with pxr, a real linear field model.

(Not a conftest.py: a second module named ``conftest`` would shadow ``tests/conftest.py`` for
tests that import helpers from it.) The ``view_plate`` fixture in ``tests/conftest.py`` makes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twin3d.model import Limits, Sensor

W_PLATE, H_PLATE, NX, NY = 0.4, 0.3, 41, 31


def write_plate_stage(path: Path) -> Path:
    """Write a Z-up, metre stage: a plate (41×31 grid) with a grey material and a red block."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, Vt

    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/Plate")
    stage.SetDefaultPrim(root.GetPrim())
    xs, ys = np.linspace(0, W_PLATE, NX), np.linspace(0, H_PLATE, NY)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    quads = [[j * NX + i, j * NX + i + 1, (j + 1) * NX + i + 1, (j + 1) * NX + i]
             for j in range(NY - 1) for i in range(NX - 1)]
    mesh = UsdGeom.Mesh.Define(stage, "/Plate/Geom/Body")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts.astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr([4] * len(quads))
    mesh.CreateFaceVertexIndicesAttr(np.asarray(quads).ravel().tolist())
    mesh.CreateSubdivisionSchemeAttr("none")
    cube = UsdGeom.Mesh.Define(stage, "/Plate/Geom/Block")
    c = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    cube.CreatePointsAttr(Vt.Vec3fArray.FromNumpy((c * [0.06, 0.06, 0.05]).astype(np.float32)))
    cube.CreateFaceVertexCountsAttr([4] * 6)
    cube.CreateFaceVertexIndicesAttr([0, 2, 3, 1, 4, 5, 7, 6, 0, 1, 5, 4, 2, 6, 7, 3, 0, 4, 6, 2,
                                      1, 3, 7, 5])
    UsdGeom.XformCommonAPI(cube).SetTranslate(Gf.Vec3d(0.30, 0.20, 0.0))
    mat = UsdShade.Material.Define(stage, "/Plate/Materials/Red")
    sh = UsdShade.Shader.Define(stage, "/Plate/Materials/Red/Surface")
    sh.CreateIdAttr("UsdPreviewSurface")
    sh.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(0.8, 0.15, 0.1))
    mat.CreateSurfaceOutput().ConnectToSource(sh.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(cube.GetPrim()).Bind(mat)
    stage.GetRootLayer().Save()
    return path


@dataclass
class PlateTwin:
    """A real data holder with the Twin attributes the view reads (meshes read back with pxr)."""

    stage_path: Path
    sensors: Mapping[str, Sensor]
    meshes: list = field(default_factory=list)
    meters_per_unit: float = 1.0


class IdwModel:
    """A linear field model: rows of W are normalised inverse-distance² weights.

    At a sensor's own vertex the row is one-hot, so the field equals the reading there.
    """

    quantity = "temperature"
    unit = "degC"

    def __init__(self, points: npt.NDArray[np.float64], sensors: list[Sensor],
                 vertices: list[int]) -> None:
        self.channels = [s.channel for s in sensors]
        d2 = ((points[:, None, :] - points[vertices][None, :, :]) ** 2).sum(-1)
        w = 1.0 / np.maximum(d2, 1e-12) ** 1.0
        w[d2 < 1e-12] = 1e12
        self.W = np.asfortranarray((w / w.sum(1, keepdims=True)).astype(np.float32))
        self.n_vertices = len(points)
        self.values = np.full(len(self.channels), np.nan)
        self.sigma = None

    def update(self, values: Mapping[str, float]) -> npt.NDArray[np.float32]:
        for i, ch in enumerate(self.channels):
            if ch in values:
                self.values[i] = values[ch]
        v = np.where(np.isnan(self.values), np.nanmean(self.values), self.values)
        return (self.W @ v.astype(np.float32)).astype(np.float32)


# sensors at grid vertices of the plate (index j*NX+i)
SENSOR_VERTS = {"plate/tc1": (5, 5), "plate/tc2": (20, 15), "plate/tc3": (25, 25),
                "plate/tc4": (35, 5)}


def make_plate(tmp_path: Path) -> tuple[PlateTwin, IdwModel]:
    """Write the plate stage under ``tmp_path``; return its twin and an IDW field model."""
    from twin3d.usd.layer import open_stage
    from twin3d.usd.meshes import read_meshes

    path = write_plate_stage(tmp_path / "plate.usda")
    meshes = read_meshes(open_stage(path))
    body = next(m for m in meshes if m.path.endswith("Body"))
    sensors, verts = [], []
    for ch, (i, j) in SENSOR_VERTS.items():
        v = j * NX + i
        verts.append(v)
        sensors.append(Sensor(ch, "temperature", "degC", body.path,
                              position=tuple(map(float, body.points[v])),
                              limits=Limits(warn_high=80.0, alarm_high=95.0)))
    twin = PlateTwin(path, {s.channel: s for s in sensors}, meshes)
    return twin, IdwModel(body.points, sensors, verts)


def bind_plate(tmp_path: Path) -> Path:
    """Write the plate stage and bind its four thermocouples with ``twin3d bind``."""
    from twin3d.cli import main

    stage = write_plate_stage(tmp_path / "plate.usda")
    lines = []
    for ch, (i, j) in SENSOR_VERTS.items():
        lines += ["[[sensor]]", f'channel = "{ch}"', 'quantity = "temperature"', 'unit = "degC"',
                  'target = "/Plate/Geom/Body"', f"position = [{i * 0.01}, {j * 0.01}, 0.0]",
                  "limits = { warn_high = 80.0, alarm_high = 95.0 }", ""]
    (tmp_path / "sensors.toml").write_text("\n".join(lines))
    assert main(["bind", str(stage), "--sensors", str(tmp_path / "sensors.toml")]) == 0
    return stage
