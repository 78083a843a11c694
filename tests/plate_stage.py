"""Test helper: a converter-shaped plate stage written directly with pxr.

The layout follows the convert area's contract (interface ``.usda`` with defaultPrim
``/Plate``, Z-up, metres, geometry payloaded from a ``.usdc`` beside it, the mesh at
``/Plate/Geom/Body`` bound to a UsdPreviewSurface), so the bindings tests do not depend on
the converter. The geometry is the real CAD file ``assets/plate/plate_holes.stl`` (mm).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, Vt

STL = Path(__file__).resolve().parents[1] / "assets" / "plate" / "plate_holes.stl"


def make_plate_stage(folder: Path, name: str = "plate") -> Path:
    """Write ``folder/<name>.usda`` + ``folder/<name>.geom.usdc``; return the .usda path."""
    tm = trimesh.load(STL, force="mesh")
    points = np.asarray(tm.vertices, dtype=np.float64) * 0.001  # mm -> m
    faces = np.asarray(tm.faces, dtype=np.int32)
    geom_path = folder / f"{name}.geom.usdc"
    geom = Usd.Stage.CreateNew(str(geom_path))
    _metrics(geom)
    root = UsdGeom.Xform.Define(geom, "/Plate")
    geom.SetDefaultPrim(root.GetPrim())
    UsdGeom.Scope.Define(geom, "/Plate/Geom")
    mesh = UsdGeom.Mesh.Define(geom, "/Plate/Geom/Body")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points.astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    normals = np.asarray(tm.face_normals, dtype=np.float32).repeat(3, axis=0)
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(normals))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.faceVarying)
    lo, hi = points.min(0), points.max(0)
    mesh.CreateExtentAttr([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))])
    UsdGeom.Scope.Define(geom, "/Plate/Materials")
    mat = UsdShade.Material.Define(geom, "/Plate/Materials/Steel")
    shader = UsdShade.Shader.Define(geom, "/Plate/Materials/Steel/PreviewSurface")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(0.6, 0.62, 0.65))
    shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.8)
    mat.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(mat)
    geom.GetRootLayer().Save()

    iface_path = folder / f"{name}.usda"
    iface = Usd.Stage.CreateNew(str(iface_path))
    _metrics(iface)
    top = UsdGeom.Xform.Define(iface, "/Plate")
    iface.SetDefaultPrim(top.GetPrim())
    Usd.ModelAPI(top.GetPrim()).SetKind(Kind.Tokens.component)
    top.GetPrim().GetPayloads().AddPayload(f"./{geom_path.name}")
    iface.GetRootLayer().Save()
    return iface_path


def _metrics(stage: Usd.Stage) -> None:
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)


def validation_failures(path: Path) -> list[str]:
    """Run every pxr.UsdValidation validator and NVIDIA's default rules; return failures.

    Stand-in until ``twin3d validate`` lands; then the tests call that instead.
    """
    from pxr import UsdValidation

    stage = Usd.Stage.Open(str(path))
    out: list[str] = []
    registry = UsdValidation.ValidationRegistry()
    ctx = UsdValidation.ValidationContext(registry.GetOrLoadAllValidators())
    for err in ctx.Validate(stage):
        if not err.HasNoError():
            out.append(f"usd: {err.GetErrorAsString()}")
    try:
        import omni.asset_validator as nv
    except ImportError:
        return out
    results = nv.ValidationEngine().validate(str(path))
    for issue in results.issues():
        sev = str(issue.severity).lower()
        if "error" in sev or "warning" in sev or "failure" in sev:
            out.append(f"nvidia: {issue}")
    return out
