"""Channels that move, hide, colour or set a property of a prim: their values, in a layer.

A property binding (:class:`~twin3d.sensors.PropertyBinding`, stored on the bound prim as an
instance of ``Twin3DBindingAPI``, read by :func:`twin3d.usd.bindings.read_property_bindings`)
drives, from the channel's value ``v`` and its motion value ``m = clamp(scale * v + offset)``:

=========  ==========================================================================
rotate     ``xformOp:orient:twin_<name>``: ``m`` degrees about ``axis`` (local frame);
           with a pivot, between ``xformOp:translate:twin_<name>_pivot`` and its inverse
translate  ``xformOp:translate:twin_<name>``: ``axis * m`` (local frame, stage units)
visible    ``visibility``: ``inherited`` while ``v >= threshold`` (below, if inverted),
           else ``invisible``
color      ``primvars:displayColor`` (linear RGB) of the meshes (and instances) under the prim, shown
           through a display-colour material bound in the same layer: the colour map over
           ``range``, or the state colours of the limits
attribute  the named numeric attribute: ``m``
=========  ==========================================================================

and ``twin:binding:<name>:value`` holds ``v``. The ops are appended to the prim's op order when
the binding is made (:func:`append_ops`, by ``twin3d bind`` and ``twin3d convert``), with
identity values, so the asset's own transform is never rewritten; their values go into the
live layer or a recording (:meth:`Motion.author`), which any USD tool then plays.

:meth:`Motion.world_matrices` gives the same poses as 4x4 matrices without touching a layer,
for views that move actors rather than meshes.

Parts that bend move their points: :class:`Deformation` turns a displacement field (world
space, one row per point, as :meth:`twin3d.fields.StressModel.displacement` gives it) into
each mesh's ``points`` and ``extent``, exaggerated by a scale that the mesh states
(``twin:deformScale``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pxr import Gf, Sdf, Tf, Usd, UsdGeom, Vt

from twin3d.colormap import linear_colorize
from twin3d.errors import StageError
from twin3d.sensors import PropertyBinding
from twin3d.usd.bindings import binding_attr, read_property_bindings
from twin3d.usd.material import define_display_color_material
from twin3d.usd.meshes import REST_POINTS, rest_points
from twin3d.usd.spec import bind_material, ensure_attr, state_color
from twin3d.usd.surface import flat_normals

__all__ = ["COLOR_MATERIAL", "DEFORM_SCALE", "OP_PREFIX", "Deformation", "Motion", "append_ops",
           "op_matrix", "rotation_quat", "twin_op"]

#: Suffix prefix of the xformOps that bindings drive: ``xformOp:orient:twin_<name>``.
OP_PREFIX = "twin_"
#: Where (under the default prim) the material that shows bound colours is defined.
COLOR_MATERIAL = "Materials/Twin3DBindingColor"
#: Attribute of a mesh shown deformed: the exaggeration of its shape (1: true scale).
DEFORM_SCALE = "twin:deformScale"

_T = Sdf.ValueTypeNames
Matrix = npt.NDArray[np.float64]


def twin_op(binding: PropertyBinding) -> str:
    """The name of the op attribute a rotate or translate binding drives.

    Examples:
        >>> from twin3d.sensors import PropertyBinding
        >>> twin_op(PropertyBinding("so101/wrist_roll", "/R/wrist", "rotate", "wrist_roll"))
        'xformOp:orient:twin_wrist_roll'
    """
    op = "orient" if binding.kind == "rotate" else "translate"
    return f"xformOp:{op}:{OP_PREFIX}{binding.name}"


def _pivot_op(binding: PropertyBinding) -> str:
    return f"xformOp:translate:{OP_PREFIX}{binding.name}_pivot"


def _has_pivot(binding: PropertyBinding) -> bool:
    return binding.kind == "rotate" and any(abs(c) > 0.0 for c in binding.pivot)


def append_ops(prim: Usd.Prim, binding: PropertyBinding) -> None:
    """Append the ops of a rotate or translate binding to ``prim``'s op order, at rest.

    Authored with the Usd API at the stage's edit target: for a rotation about a pivot
    ``p``, ``translate(p)``, ``orient`` (identity) and ``!invert!translate(p)``; without a
    pivot only the ``orient``; for a translation one ``translate`` (zero). The prim's own ops
    stay as they are, before these.

    Raises:
        StageError: ``prim`` is not Xformable, or already has ops of that name.
    """
    xf = UsdGeom.Xformable(prim)
    if not xf:
        raise StageError(f"{prim.GetPath()} is a {prim.GetTypeName() or 'typeless prim'}, "
                         "which cannot move: bind an Xform or a mesh")
    double = UsdGeom.XformOp.PrecisionDouble
    suffix = f"{OP_PREFIX}{binding.name}"
    try:
        if binding.kind == "translate":
            xf.AddTranslateOp(double, suffix).Set(Gf.Vec3d(0.0))
            return
        if _has_pivot(binding):
            xf.AddTranslateOp(double, f"{suffix}_pivot").Set(Gf.Vec3d(*binding.pivot))
        xf.AddOrientOp(double, suffix).Set(Gf.Quatd(1.0))
        if _has_pivot(binding):
            xf.AddTranslateOp(double, f"{suffix}_pivot", isInverseOp=True)
    except Tf.ErrorException as exc:  # the op exists already
        raise StageError(f"{prim.GetPath()}: cannot add the ops of binding {binding.name!r} "
                         f"({' '.join(str(exc).split())[:200]})") from None


def rotation_quat(axis: Sequence[float], degrees: float) -> Gf.Quatd:
    """The unit quaternion of a rotation by ``degrees`` about ``axis`` (normalised here)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    half = math.radians(degrees) / 2.0
    s = math.sin(half)
    return Gf.Quatd(math.cos(half), Gf.Vec3d(*(a * s)))


def op_matrix(binding: PropertyBinding, value: float) -> Matrix:
    """The (4, 4) matrix of the ops a rotate/translate binding drives, at channel ``value``.

    Column-vector convention (``p' = M p``), in the prim's local frame: the prim's local
    transform is its own ops' matrix times this one.

    Examples:
        >>> from twin3d.sensors import PropertyBinding
        >>> b = PropertyBinding("a/x", "/A", "translate", "x", axis=(1.0, 0.0, 0.0))
        >>> op_matrix(b, 0.25)[:3, 3].tolist()
        [0.25, 0.0, 0.0]
    """
    m = binding.motion(value)
    out = np.eye(4)
    if binding.kind == "translate":
        out[:3, 3] = np.asarray(binding.axis, dtype=np.float64) * m
        return out
    if binding.kind != "rotate":
        return out
    axis = np.asarray(binding.axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    c, s = math.cos(math.radians(m)), math.sin(math.radians(m))
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    rot = np.eye(3) + s * k + (1.0 - c) * (k @ k)  # Rodrigues
    p = np.asarray(binding.pivot, dtype=np.float64)
    out[:3, :3] = rot
    out[:3, 3] = p - rot @ p
    return out


@lru_cache(maxsize=8)
def _material_template(root: str) -> Sdf.Layer:
    """An anonymous layer holding the bound-colour material (built once with the Usd API)."""
    layer = Sdf.Layer.CreateAnonymous(".usda")  # held by the cache: a strong reference
    define_display_color_material(Usd.Stage.Open(layer),
                                  Sdf.Path(root).AppendPath(COLOR_MATERIAL), roughness=0.5)
    return layer


@dataclass(frozen=True)
class _Plan:
    """Where one binding writes: its value attribute, op, colour targets or attribute type."""

    binding: PropertyBinding
    prim: Sdf.Path
    colored: tuple[Sdf.Path, ...] = ()
    attr_type: Sdf.ValueTypeName | None = None


def _own_ops(prim: Usd.Prim) -> Matrix:
    """The prim's local transform without the bindings' ops (column-vector convention)."""
    out = np.eye(4)
    xf = UsdGeom.Xformable(prim)
    if not xf:
        return out
    for op in xf.GetOrderedXformOps():
        parts = op.GetOpName().split(":")
        if len(parts) > 2 and parts[2].startswith(OP_PREFIX):
            continue
        out = out @ np.asarray(op.GetOpTransform(Usd.TimeCode.Default()), dtype=np.float64).T
    return out


def _color_targets(prim: Usd.Prim) -> tuple[Sdf.Path, ...]:
    """The meshes under ``prim`` and the instances (whose meshes inherit a colour) below it."""
    out: list[Sdf.Path] = []
    it = iter(Usd.PrimRange(prim))
    for p in it:
        if p.IsInstance():
            out.append(p.GetPath())
            it.PruneChildren()
        elif p.IsA(UsdGeom.Mesh):
            out.append(p.GetPath())
    return tuple(out)


class Motion:
    """The property bindings of a stage, ready to author values and compute poses.

    Build it once per stage with :meth:`from_stage`; :meth:`author` writes values into a
    layer (the live layer, a recording), :meth:`world_matrices` computes poses without USD.

    Args:
        bindings: the stage's property bindings (local frame).
        plans: where each writes (from :meth:`from_stage`).
        root: the stage's default prim (the colour material goes under it).
        rest: (4, 4) world matrix at rest (every binding's ops at identity) of each bound
            prim and each mesh under one, by path.
        moved_by: for each path in ``rest``, the nearest bound prim at or above it that
            rotates or translates (None: none).
    """

    def __init__(self, bindings: Sequence[PropertyBinding], plans: Sequence[_Plan],
                 root: Sdf.Path, rest: Mapping[str, Matrix],
                 moved_by: Mapping[str, str | None]) -> None:
        self.bindings = tuple(bindings)
        self._plans = tuple(plans)
        self._root = root
        self._rest = dict(rest)
        self._moved_by = dict(moved_by)
        self._by_prim: dict[str, list[PropertyBinding]] = {}
        for b in self.bindings:
            if b.kind in ("rotate", "translate"):
                self._by_prim.setdefault(b.prim, []).append(b)

    @classmethod
    def from_stage(cls, stage: Usd.Stage) -> Motion:
        """Read the property bindings of ``stage`` and plan where their values go."""
        bindings = read_property_bindings(stage)
        root = stage.GetDefaultPrim().GetPath() if stage.GetDefaultPrim() else \
            Sdf.Path.absoluteRootPath
        plans: list[_Plan] = []
        for b in bindings:
            prim = stage.GetPrimAtPath(b.prim)
            colored: tuple[Sdf.Path, ...] = ()
            attr_type = None
            if b.kind == "color":
                colored = _color_targets(prim)
            elif b.kind == "attribute":
                attr = prim.GetAttribute(b.attribute)
                attr_type = attr.GetTypeName() if attr else _T.Double
            plans.append(_Plan(b, prim.GetPath(), colored, attr_type))
        movers = {b.prim for b in bindings if b.kind in ("rotate", "translate")}
        rest: dict[str, Matrix] = {}
        moved_by: dict[str, str | None] = {}
        if movers:
            world: dict[Sdf.Path, Matrix] = {}

            def rest_world(prim: Usd.Prim) -> Matrix:
                path = prim.GetPath()
                if path not in world:
                    parent = prim.GetParent()
                    up = rest_world(parent) if parent and not parent.IsPseudoRoot() else np.eye(4)
                    world[path] = up @ _own_ops(prim)
                return world[path]

            for mover in sorted(movers):
                for p in Usd.PrimRange(stage.GetPrimAtPath(mover), Usd.TraverseInstanceProxies()):
                    key = str(p.GetPath())
                    if key in rest or not (key in movers or p.IsA(UsdGeom.Mesh)):
                        continue
                    rest[key] = rest_world(p)
                    owner = p
                    while str(owner.GetPath()) not in movers:
                        owner = owner.GetParent()
                    moved_by[key] = str(owner.GetPath())
        return cls(bindings, plans, root, rest, moved_by)

    @property
    def channels(self) -> frozenset[str]:
        """The channels that drive a property."""
        return frozenset(b.channel for b in self.bindings)

    # --- poses without USD -------------------------------------------------------------------

    def local_matrices(self, values: Mapping[str, float]) -> dict[str, Matrix]:
        """The (4, 4) matrix of the bindings' ops on each moving prim (column-vector convention).

        Args:
            values: ``{channel: value}``; a channel without a value leaves its ops at rest.
        """
        out: dict[str, Matrix] = {}
        for prim, bindings in self._by_prim.items():
            m = np.eye(4)
            for b in bindings:  # in op order: each binding's ops after the previous one's
                if b.channel in values:
                    m = m @ op_matrix(b, values[b.channel])
            out[prim] = m
        return out

    def world_matrices(self, values: Mapping[str, float]) -> dict[str, Matrix]:
        """World (4, 4) matrices, column-vector convention, of every moving prim and every
        mesh under one (instance proxy paths for instanced meshes), at channel ``values``.

        A mesh's points ``p`` (its local frame) are at ``M @ [p, 1]``; at rest this is the
        stage's own world transform. Meshes that no binding moves are not listed.

        Args:
            values: ``{channel: value}``; a channel without a value leaves its ops at rest.
        """
        local = self.local_matrices(values)
        moving: dict[str, Matrix] = {}

        def mover_world(prim: str) -> Matrix:
            if prim not in moving:
                parent = Sdf.Path(prim).GetParentPath()
                above = next((str(p) for p in parent.GetPrefixes()[::-1] if str(p) in local),
                             None)
                base = self._rest[prim]
                if above is not None:  # attached rigidly to the moved frame above
                    base = mover_world(above) @ np.linalg.inv(self._rest[above]) @ base
                moving[prim] = base @ local[prim]
            return moving[prim]

        out: dict[str, Matrix] = {}
        for path, rest in self._rest.items():
            owner = self._moved_by[path]
            if owner is None:
                continue
            if path == owner:
                out[path] = mover_world(path)
            else:
                out[path] = mover_world(owner) @ np.linalg.inv(self._rest[owner]) @ rest
        return out

    # --- values into a layer -----------------------------------------------------------------

    def prepare(self) -> None:
        """Build the bound-colour material once (Usd API): call it before a ``ChangeBlock``
        in which :meth:`author` runs."""
        if any(b.kind == "color" for b in self.bindings):
            _material_template(str(self._root))

    def author(self, layer: Sdf.Layer, values: Mapping[str, float],
               time: float | None = None) -> None:
        """Author the bound properties of ``values``' channels into ``layer``.

        Args:
            layer: the live layer or a recording (inside an ``Sdf.ChangeBlock`` is best;
                call :meth:`prepare` before it).
            values: ``{channel: value}``, already checked as numbers; other channels are
                left alone.
            time: a time code, or ``None`` for the default value.
        """
        material: Sdf.Path | None = None
        for plan in self._plans:
            b = plan.binding
            if b.channel not in values:
                continue
            v = float(values[b.channel])
            _put(layer, plan.prim, binding_attr(b.name, "value"), _T.Double, v, time)
            if b.kind == "rotate":
                _put(layer, plan.prim, twin_op(b), _T.Quatd, rotation_quat(b.axis, b.motion(v)),
                     time)
            elif b.kind == "translate":
                _put(layer, plan.prim, twin_op(b), _T.Double3,
                     Gf.Vec3d(*(float(a) * b.motion(v) for a in b.axis)), time)
            elif b.kind == "visible":
                shown = UsdGeom.Tokens.inherited if b.visible(v) else UsdGeom.Tokens.invisible
                _put(layer, plan.prim, "visibility", _T.Token, shown, time)
            elif b.kind == "attribute":
                m = b.motion(v)
                assert plan.attr_type is not None
                cast = round(m) if plan.attr_type.type.pythonClass is int else m
                _put(layer, plan.prim, b.attribute, plan.attr_type, cast, time)
            elif b.kind == "color":
                color = _binding_color(b, v)
                if material is None:
                    material = _author_material(layer, self._root)
                for target in plan.colored:
                    _put(layer, target, "primvars:displayColor", _T.Color3fArray, color, time,
                         interpolation=UsdGeom.Tokens.constant)
                    bind_material(layer, target, material)

    def author_samples(self, layer: Sdf.Layer, channel: str, codes: Iterable[float],
                       values: Iterable[float]) -> None:
        """Author a channel's recorded values as time samples at time ``codes`` (in order)."""
        for code, value in zip(codes, values, strict=True):
            self.author(layer, {channel: value}, time=code)


@dataclass(frozen=True, eq=False)
class _Shape:
    """One mesh a :class:`Deformation` moves: where it is, its rest, its flat triangles."""

    path: Sdf.Path
    rest: npt.NDArray[np.float32]         # (n, 3) the mesh's own frame
    to_local: npt.NDArray[np.float64]     # (3, 3) world-space vector -> that frame
    faces: npt.NDArray[np.int64] | None   # (m, 3) when its normals are one per triangle


class Deformation:
    """Meshes at rest, and their points under a displacement.

    A deformed mesh gets its ``points`` and ``extent`` (and, for a mesh with one normal per
    triangle, as display surfaces have, its ``normals``) and ``twin:deformScale``, the
    exaggeration its shape is shown with, so a usdview user sees that the shape is
    exaggerated. In a twin's live layer (:meth:`author` without a time) it also keeps its
    points at rest as ``twin:restPoints`` (:data:`~twin3d.usd.meshes.REST_POINTS`), which
    readers of the stage take as the mesh's shape (:func:`~twin3d.usd.meshes.rest_points`);
    :meth:`restore` puts it back at rest.

    Build it with :meth:`from_stage`.
    """

    def __init__(self, shapes: Sequence[_Shape]) -> None:
        self._shapes = tuple(shapes)
        #: the number of rows a displacement has
        self.n_points = sum(len(s.rest) for s in self._shapes)

    @classmethod
    def from_stage(cls, stage: Usd.Stage, paths: Sequence[str]) -> Deformation:
        """The meshes at ``paths`` as ``stage`` composes them at rest, at the default time.

        Raises:
            StageError: a path is not a mesh, or is an instance proxy (an instanced mesh
                shares its points with every other instance).
        """
        cache = UsdGeom.XformCache(Usd.TimeCode.Default())
        shapes = []
        for path in paths:
            prim = stage.GetPrimAtPath(path)
            if not prim or not prim.IsA(UsdGeom.Mesh):
                raise StageError(f"{path} is not a mesh: only meshes deform")
            if prim.IsInstanceProxy():
                raise StageError(f"{path} is an instanced mesh, whose points every instance "
                                 "shares: make it uninstanced (instanceable = false) to deform it")
            mesh = UsdGeom.Mesh(prim)
            rest = np.asarray(rest_points(mesh), dtype=np.float32).reshape(-1, 3)
            world = np.asarray(cache.GetLocalToWorldTransform(prim), dtype=np.float64)
            # USD is row-vector: world = local @ M[:3, :3] + t, so a world vector v is v @ inv
            to_local = np.asarray(np.linalg.inv(world[:3, :3]), dtype=np.float64)
            shapes.append(_Shape(prim.GetPath(), rest, to_local, _flat_faces(mesh)))
        return cls(shapes)

    def points(self, displacement: npt.NDArray[np.float32], scale: float
               ) -> list[tuple[Sdf.Path, npt.NDArray[np.float32]]]:
        """Each mesh's (n, 3) float32 points: rest + ``scale`` * its rows of ``displacement``.

        Args:
            displacement: (n_points, 3) world space, stage units.
            scale: the exaggeration (1: true scale).
        """
        out = []
        start = 0
        for s in self._shapes:
            rows = displacement[start:start + len(s.rest)].astype(np.float64)
            out.append((s.path, (s.rest + scale * (rows @ s.to_local)).astype(np.float32)))
            start += len(s.rest)
        return out

    def author(self, layer: Sdf.Layer, displacement: npt.NDArray[np.float32], scale: float,
               time: float | None = None) -> None:
        """Author the meshes' deformed shape into ``layer`` (see :meth:`points`).

        Args:
            layer: the live layer or a recording (inside an ``Sdf.ChangeBlock`` is best).
            displacement: (n_points, 3) world space, stage units.
            scale: the exaggeration (1: true scale), kept as ``twin:deformScale``.
            time: a time code, or ``None`` for the default value (the live layer: the rest
                points are kept as ``twin:restPoints`` then).
        """
        for s, (path, pts) in zip(self._shapes, self.points(displacement, scale), strict=True):
            if time is None and layer.GetAttributeAtPath(path.AppendProperty(REST_POINTS)) is None:
                ensure_attr(layer, path, REST_POINTS, _T.Point3fArray).default = \
                    Vt.Vec3fArray.FromNumpy(s.rest)
            self._put_shape(layer, s, pts, time)
            ensure_attr(layer, path, DEFORM_SCALE, _T.Double).default = float(scale)

    def restore(self, layer: Sdf.Layer) -> None:
        """Put the meshes back at rest in ``layer`` (the live layer): drop the shape, scale
        and rest points authored over a mesh, or write the rest back on a mesh the layer
        defines (a display surface). Sdf API only."""
        for s in self._shapes:
            spec = layer.GetPrimAtPath(s.path)
            if spec is None:
                continue
            defined = spec.specifier == Sdf.SpecifierDef
            names = [DEFORM_SCALE, REST_POINTS] + ([] if defined else
                                                   ["points", "extent", "normals"])
            for name in names:
                if name in spec.attributes:
                    spec.RemoveProperty(spec.attributes[name])
            if defined:
                self._put_shape(layer, s, s.rest, None)

    @staticmethod
    def _put_shape(layer: Sdf.Layer, s: _Shape, pts: npt.NDArray[np.float32],
                   time: float | None) -> None:
        extent = np.stack([pts.min(axis=0), pts.max(axis=0)])
        _put(layer, s.path, "points", _T.Point3fArray, Vt.Vec3fArray.FromNumpy(pts), time)
        _put(layer, s.path, "extent", _T.Float3Array, Vt.Vec3fArray.FromNumpy(extent), time)
        if s.faces is not None:
            _put(layer, s.path, "normals", _T.Normal3fArray,
                 Vt.Vec3fArray.FromNumpy(flat_normals(pts, s.faces)), time,
                 interpolation=UsdGeom.Tokens.uniform)


def _flat_faces(mesh: UsdGeom.Mesh) -> npt.NDArray[np.int64] | None:
    """The triangles of a triangle mesh whose normals are one per triangle, else None."""
    normals = mesh.GetNormalsAttr()
    if not normals.HasAuthoredValue() or mesh.GetNormalsInterpolation() != UsdGeom.Tokens.uniform:
        return None
    counts = np.asarray(mesh.GetFaceVertexCountsAttr().Get(), dtype=np.int64)
    if counts.size == 0 or not np.all(counts == 3):
        return None
    return np.asarray(mesh.GetFaceVertexIndicesAttr().Get(), dtype=np.int64).reshape(-1, 3)


def _binding_color(b: PropertyBinding, value: float) -> Vt.Vec3fArray:
    if b.colormap:
        rgb = linear_colorize(np.array([value]), b.range[0], b.range[1], b.colormap)
        return Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(rgb, dtype=np.float32))
    return state_color(b.states.state(value))


def _author_material(layer: Sdf.Layer, root: Sdf.Path) -> Sdf.Path:
    """Copy the bound-colour material into ``layer`` (once); return its path."""
    path = root.AppendPath(COLOR_MATERIAL)
    if layer.GetPrimAtPath(path):
        return path
    parent = layer.GetPrimAtPath(path.GetParentPath()) or Sdf.CreatePrimInLayer(
        layer, path.GetParentPath())
    if not parent.typeName:
        parent.specifier, parent.typeName = Sdf.SpecifierDef, "Scope"
    Sdf.CreatePrimInLayer(layer, path)
    if not Sdf.CopySpec(_material_template(str(root)), path, layer, path):
        raise StageError(f"cannot author the bound-colour material at {path}")
    return path


def _put(layer: Sdf.Layer, prim: Sdf.Path, name: str, type_name: Sdf.ValueTypeName,
         value: object, time: float | None, **info: object) -> None:
    """Set ``name`` on ``prim`` in ``layer``: the default, or a sample at ``time`` (the first
    sample is also written as the default, for readers of the default time)."""
    spec = ensure_attr(layer, prim, name, type_name, **info)
    if time is None:
        spec.default = value
        return
    layer.SetTimeSample(spec.path, time, value)
    if not spec.HasDefaultValue():
        spec.default = value
