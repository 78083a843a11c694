"""The one preview material twin3d authors: a ``UsdPreviewSurface`` coloured by ``displayColor``.

Sensor markers (``twin3d bind``) and field overlays (the live layer, recordings) both show
their colours through it: a ``UsdPrimvarReader_float3`` reads the prim's
``primvars:displayColor`` (grey, the "stale" colour, where a prim has none) into the
surface's diffuse colour, so the colour shows in every renderer, also where a bound
material would hide a plain ``displayColor``.
"""

from __future__ import annotations

from pxr import Gf, Sdf, Usd, UsdShade

from twin3d.colormap import linear_state_color

__all__ = ["define_display_color_material"]

_T = Sdf.ValueTypeNames


def define_display_color_material(stage: Usd.Stage, path: Sdf.Path | str, *, roughness: float,
                                  emissive: bool = False) -> UsdShade.Material:
    """Define at ``path`` a preview material whose colour is the prim's ``displayColor``.

    Args:
        stage: the stage to author on (at its edit target).
        path: the material prim path; its parent must exist or be definable.
        roughness: the surface's roughness, 0 (mirror) .. 1 (matte).
        emissive: also connect the colour to ``emissiveColor`` (markers that stay visible
            in unlit views).

    Returns:
        The material, its ``surface`` output connected.

    Examples:
        >>> from pxr import Usd
        >>> stage = Usd.Stage.CreateInMemory()
        >>> m = define_display_color_material(stage, "/Looks/Marker", roughness=0.6)
        >>> m.ComputeSurfaceSource()[0].GetPath()
        Sdf.Path('/Looks/Marker/PreviewSurface')
    """
    path = Sdf.Path(path)
    material = UsdShade.Material.Define(stage, path)
    surface = UsdShade.Shader.Define(stage, path.AppendChild("PreviewSurface"))
    surface.CreateIdAttr("UsdPreviewSurface")
    reader = UsdShade.Shader.Define(stage, path.AppendChild("DisplayColor"))
    reader.CreateIdAttr("UsdPrimvarReader_float3")
    reader.CreateInput("varname", _T.String).Set("displayColor")
    reader.CreateInput("fallback", _T.Float3).Set(Gf.Vec3f(*linear_state_color("stale")))
    out = reader.CreateOutput("result", _T.Float3)
    surface.CreateInput("diffuseColor", _T.Color3f).ConnectToSource(out)
    if emissive:
        surface.CreateInput("emissiveColor", _T.Color3f).ConnectToSource(out)
    surface.CreateInput("roughness", _T.Float).Set(roughness)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    return material
