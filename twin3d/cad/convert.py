"""CAD / mesh files -> one OpenUSD asset (Z-up, metres by default): ``twin3d.convert``.

Reading is :func:`twin3d.cad.load_part` (pure), writing is :mod:`twin3d.usd.asset` (pxr).
Outputs are written to temporary files beside the target and renamed at the end, so a
failed conversion leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.cad.memory import release_free_memory
from twin3d.cad.name import prim_name, unique_names
from twin3d.cad.part import FORMATS, UNITS, load_part
from twin3d.cad.scene import Part
from twin3d.cad.step import Tolerance
from twin3d.errors import CADImportError, OutputError, UsageError, reason

if TYPE_CHECKING:
    from twin3d.usd.asset import AuthoredAsset

__all__ = ["OUTPUT_SUFFIXES", "ROBOT_SUFFIXES", "convert", "geometry_path", "texture_folder"]

OUTPUT_SUFFIXES = (".usda", ".usdc", ".usd", ".usdz")
#: inputs read as robots (a .xacro file is refused with how to expand it)
ROBOT_SUFFIXES = (".urdf", ".xacro")


def geometry_path(output: PathLike) -> Path:
    """The geometry layer written beside ``output`` (``OUT.geom.usdc``); none for ``.usdz``."""
    out = Path(output)
    return out.with_name(out.stem + ".geom.usdc")


def texture_folder(output: PathLike) -> Path:
    """The folder of textures written beside ``output`` (``OUT.textures``) when the sources
    have any; inside the package for ``.usdz``."""
    out = Path(output)
    return out.with_name(out.stem + ".textures")


class _Progress:
    """A rich progress bar on stderr that only appears once a conversion passes 1 s."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._progress = None
        self._task = None
        self._timer: threading.Timer | None = None
        if not enabled or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self._progress = Progress(TextColumn("[bold]convert[/] {task.description}"), BarColumn(),
                                  TimeElapsedColumn(), console=console, transient=True)
        self._task = self._progress.add_task("reading", total=total)
        self._timer = threading.Timer(1.0, self._progress.start)
        self._timer.daemon = True
        self._timer.start()

    def advance(self, label: str, amount: float = 0.0) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=label, advance=amount)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._progress is not None:
            self._progress.stop()


def convert(inputs: PathLike | Sequence[PathLike], output: PathLike, units: str | None = None,
            up_axis: str | None = None, name: str | None = None, keep_units: bool = False,
            *, progress: bool = True, package_path: Sequence[PathLike] = (),
            tolerance: Tolerance | None = None, timeout: float | None = None,
            skip_bad_parts: bool = False) -> Path:
    """Convert CAD / mesh files, or a URDF robot, into one USD asset.

    One input makes a component; several make an assembly with one component per input.
    A URDF robot (on its own) makes a component whose links are nested Xforms, with UsdPhysics
    joints and each movable joint bound to the channel ``<robot name>/<joint name>``
    (:mod:`twin3d.usd.articulation`).
    ``OUT.usda`` (or ``.usdc``/``.usd``) is a small interface layer that payloads the geometry
    in ``OUT.geom.usdc`` beside it; ``.usdz`` packages both.

    Args:
        inputs: STL, OBJ, PLY, OFF, glTF/GLB, 3MF or STEP/STP files, or one URDF file.
        output: ``.usda``, ``.usdc``, ``.usd`` or ``.usdz`` path.
        units: units of unitless sources (``m``, ``cm``, ``mm``, ``in``, ``ft``); when not given
            they are assumed to be millimetres and a :class:`UserWarning` says so.
        up_axis: the stage's up axis, ``"Z"`` (default) or ``"Y"``; points are rotated to it.
        name: the root prim's name (default: the input's name; the output's for several).
        keep_units: keep the (first) source's units as the stage's metersPerUnit instead of
            scaling points to metres.
        progress: show a progress bar on a terminal when the conversion takes over 1 s.
        package_path: folders where a URDF's ``package://NAME/...`` meshes are found: a
            package folder, or a folder holding ``NAME/`` (the ROS layout around the URDF
            file is searched too).
        tolerance: how finely STEP surfaces are tessellated (default: 0.1 % of each model's
            size, 30 degrees).
        timeout: seconds each input's reading may take (a STEP file's tessellation is
            stopped then); None: no limit.
        skip_bad_parts: leave out, with a warning naming each, the inputs and meshes that
            cannot be converted, and convert the rest.

    Returns:
        The output path.

    Raises:
        UsageError: bad arguments (output suffix, units, axis, no inputs).
        CADImportError: an input that cannot be read.
        OutputError: the output cannot be written.
    """
    from twin3d import __version__

    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise UsageError("no input files given")
    out = Path(output)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"output {out} must end in {', '.join(OUTPUT_SUFFIXES)}")
    if units is not None and units not in UNITS:
        raise UsageError(f"--units must be one of {', '.join(UNITS)}, not {units!r}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    if tolerance is not None and not any(FORMATS.get(p.suffix.lower(), ("",))[0] == "STEP"
                                         for p in paths):
        warnings.warn("--tolerance only applies to STEP files (the inputs are meshes already)",
                      UserWarning, stacklevel=2)
    axis = (up_axis or "Z").upper()
    if axis not in ("Y", "Z"):
        raise UsageError(f"--up must be Y or Z, not {up_axis!r}")
    robots = [p for p in paths if p.suffix.lower() in ROBOT_SUFFIXES]
    if robots and len(paths) > 1:
        raise UsageError(f"{robots[0].name}: a URDF robot converts on its own, not with other "
                         "inputs")
    if robots and axis != "Z":
        raise UsageError("--up Y: a URDF robot is Z-up (URDF's convention) and converts Z-up")
    if robots and (units is not None or keep_units):
        warnings.warn(f"{robots[0].name}: {'--units' if units else '--keep-units'} ignored: URDF "
                      "is metres, converted as it is", UserWarning, stacklevel=2)
    if out.is_dir():
        raise OutputError(out, "is a folder; give a file name ending in .usda")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(out, f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(out, f"folder {folder} is not writable")

    if robots:
        return _convert_robot(paths[0], out, name, package_path, progress)
    # prim names, decided before reading: the root's from the input's name (the output's for
    # several), each part's from its file's, apart from the root's and from each other's
    part_names = unique_names([prim_name(p.stem, "Part") for p in paths])
    root = prim_name(name or (part_names[0] if len(paths) == 1 else
                              prim_name(out.stem, "Assembly")), "Asset")
    if len(paths) > 1:
        part_names = unique_names(part_names, [root])
    with _Progress(total=len(paths) * 2 + 1, enabled=progress) as bar:
        parts: list[Part] = []
        stage_mpu: float | None = None if keep_units else 1.0
        failed: list[CADImportError] = []
        for path, pname in zip(paths, part_names, strict=True):
            bar.advance(f"reading {path.name}")

            def step(label: str, file: str = path.name) -> None:
                bar.advance(f"{file}: {label}")

            try:
                part = load_part(path, units=units, up_axis=axis, meters_per_unit=stage_mpu,
                                 name=pname, tolerance=tolerance, timeout=timeout,
                                 skip_bad_parts=skip_bad_parts,
                                 progress=step)
            except CADImportError as exc:
                if not skip_bad_parts or len(paths) == 1:
                    raise
                failed.append(exc)
                warnings.warn(f"left out {exc}", UserWarning, stacklevel=2)
                continue
            if stage_mpu is None:
                stage_mpu = part.meters_per_unit
            for message in part.warnings:
                warnings.warn(message, UserWarning, stacklevel=2)
            parts.append(part)
            bar.advance(f"read {path.name}", 1)
        if not parts:
            raise CADImportError(failed[0].path, f"{failed[0].problem} (and every other input "
                                                 "failed too)")
        assert stage_mpu is not None
        bar.advance("writing")
        from twin3d.usd.asset import author_asset

        geom_final = geometry_path(out)
        asset = author_asset(parts, name=root, meters_per_unit=stage_mpu, up_axis=axis,
                             version=__version__,
                             step=lambda label: bar.advance(f"writing {label}"),
                             geometry_asset_path=f"./{geom_final.name}",
                             texture_folder=texture_folder(out).name)
        release_free_memory()  # the meshes' arrays, let go as authored: room for the writer
        _save(asset, out, geom_final)
        bar.advance("done", 1)
    return out


def _convert_robot(path: Path, out: Path, name: str | None,
                   package_path: Sequence[PathLike], progress: bool) -> Path:
    """A URDF robot -> one asset: links, visual meshes, UsdPhysics joints, joint bindings."""
    from twin3d import __version__
    from twin3d.cad.urdf import read_urdf, robot_part
    from twin3d.usd.articulation import author_robot, link_paths
    from twin3d.usd.asset import author_asset

    with _Progress(total=3, enabled=progress) as bar:
        bar.advance(f"reading {path.name}")
        robot = read_urdf(path, [Path(p) for p in package_path])
        root = prim_name(name or robot.name, "Robot")
        part = robot_part(robot, root)
        for message in part.warnings:
            warnings.warn(message, UserWarning, stacklevel=3)
        bar.advance(f"read {path.name}", 1)
        geom_final = geometry_path(out)
        channels = {j.name: f"{robot.name}/{j.name}" for j in robot.joints if j.movable}
        asset = author_asset([part], name=root, meters_per_unit=1.0, up_axis="Z",
                             version=__version__,
                             step=lambda label: bar.advance(f"writing {label}"),
                             geometry_asset_path=f"./{geom_final.name}",
                             texture_folder=texture_folder(out).name,
                             finish=lambda stage, rp: author_robot(
                                 stage, rp, robot, link_paths(robot, part, rp.AppendChild("Geom"))),
                             provenance={"robot": {"name": robot.name, "channels": channels},
                                         "decisions": "URDF metres and Z-up kept: no rescaling "
                                         "or rotation; collision geometry left out"})
        release_free_memory()
        _save(asset, out, geom_final)
        bar.advance("done", 1)
    return out


def _save(asset: AuthoredAsset, out: Path, geom_final: Path) -> None:
    """Save both layers and the textures atomically (``.usdz``: package them), or leave
    nothing behind."""
    from twin3d.usd.asset import package_usdz

    if out.suffix.lower() == ".usdz":
        tmpdir = Path(tempfile.mkdtemp(prefix=".twin3d-usdz-", dir=out.parent))
        try:
            iface = tmpdir / f"{out.stem}.usdc"
            asset.save(iface, tmpdir / f"{out.stem}.geom.usdc", tmpdir / texture_folder(out).name)
            with atomic_output(out) as tmp:
                try:
                    package_usdz(iface, tmp)
                except OSError as exc:
                    raise OutputError(out, reason(exc)) from None
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return
    textures = texture_folder(out)
    tmp_textures = Path(tempfile.mkdtemp(prefix=".twin3d-textures-", dir=out.parent)) \
        if asset.textures else None
    with atomic_output(out) as tmp_iface, atomic_output(geom_final) as tmp_geom:
        try:
            asset.save(tmp_iface, tmp_geom, tmp_textures)
            if tmp_textures is not None:  # last, just before the layers are renamed
                if textures.is_dir():
                    shutil.rmtree(textures)
                os.replace(tmp_textures, textures)
        except (OSError, RuntimeError) as exc:  # RuntimeError: pxr's Tf.ErrorException
            raise OutputError(out, reason(exc)) from None
        finally:
            if tmp_textures is not None:
                shutil.rmtree(tmp_textures, ignore_errors=True)
