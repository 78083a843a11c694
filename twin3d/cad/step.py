"""STEP: tessellated by OpenCASCADE (cascadio) in a child process, at a tolerance sized to the model.

cascadio reads the STEP file, tessellates every face and writes a GLB; the GLB is read like
any glTF (:func:`twin3d.cad.gltf.read_gltf`, each part's faces one mesh with a material per
face). Tessellating happens in a child process, so that ``timeout`` can stop it (the C++ code
cannot be interrupted) and a crash of OpenCASCADE is an error message, not the end of twin3d.

The linear tolerance (the largest distance between the surface and its triangles) is by
default 0.1 % of the model's bounding-box diagonal, read from the file's points before
tessellating: a fixed 0.01 mm made a 63 m fuselage take over 9 minutes and 14 GB (issue 14),
and at any size the same share of the model keeps the triangle count about the same. The
angular tolerance bounds the angle between neighbouring triangles on curved faces.
"""

from __future__ import annotations

import importlib.util
import mmap
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twin3d.errors import CADImportError, UsageError

__all__ = ["Tolerance", "model_diagonal_mm", "tessellate_step"]

#: cascadio's tolerances when the model's size cannot be read from the file
_FALLBACK_MM = 0.01
#: the child process: read, tessellate, write the GLB (exit status 0 when it did). It loads
#: cascadio's compiled core alone: the package's __init__ imports trimesh (~1 s a STEP file)
_TESSELLATE = """
import importlib.machinery as m, importlib.util as u, pathlib, sys
spec = u.find_spec("cascadio")
where = pathlib.Path(next(iter(spec.submodule_search_locations or ["."])))
cores = [p for s in m.EXTENSION_SUFFIXES for p in where.glob("_core" + s)]
if cores:
    loader = m.ExtensionFileLoader("cascadio._core", str(cores[0]))
    core = u.module_from_spec(u.spec_from_loader(loader.name, loader))
    loader.exec_module(core)
else:
    import cascadio as core
sys.exit(core.step_to_glb(sys.argv[1], sys.argv[2], tol_linear=float(sys.argv[3]),
                          tol_angular=float(sys.argv[4])))
"""
_NUMBER = rb"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
#: three-coordinate points (two-coordinate ones are in a surface's parameter space)
_POINT = re.compile(rb"CARTESIAN_POINT\s*\(\s*'(?:[^']|'')*'\s*,\s*\(" + _NUMBER + b"," + _NUMBER
                    + b"," + _NUMBER + rb"\)")
_CONVERSION_UNIT = re.compile(rb"CONVERSION_BASED_UNIT\s*\(\s*'([^']*)'")
_SI_LENGTH = re.compile(rb"LENGTH_UNIT\s*\(\s*\)\s*NAMED_UNIT\s*\(\s*\*\s*\)\s*"
                        rb"SI_UNIT\s*\(\s*(\$|\.\w+\.)\s*,\s*\.METRE\.\s*\)")
_MM_PER_UNIT = {b"INCH": 25.4, b"FOOT": 304.8, b"MILLIMETRE": 1.0, b"MILLIMETER": 1.0,
                b"CENTIMETRE": 10.0, b"CENTIMETER": 10.0, b"METRE": 1000.0, b"METER": 1000.0}
_SI_PREFIX_MM = {b"$": 1000.0, b".MILLI.": 1.0, b".CENTI.": 10.0, b".DECI.": 100.0,
                 b".KILO.": 1e6, b".MICRO.": 1e-3, b".NANO.": 1e-6}
#: points parsed into numbers at a time
_BATCH = 1 << 16
_LENGTH = re.compile(r"^([0-9.eE+-]+)\s*(mm|cm|m|um|in|%)$")
_LENGTH_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 1e-3, "in": 25.4}


@dataclass(frozen=True)
class Tolerance:
    """How finely STEP surfaces are tessellated.

    Attributes:
        linear_mm: the largest distance between a surface and its triangles, millimetres;
            None: ``relative`` times the model's size.
        relative: the linear tolerance as a share of the model's bounding-box diagonal.
        angular_deg: the largest angle between neighbouring triangles of a curved face.

    Examples:
        >>> Tolerance.parse("0.05mm,15")
        Tolerance(linear_mm=0.05, relative=0.001, angular_deg=15.0)
    """

    linear_mm: float | None = None
    relative: float = 1e-3
    angular_deg: float = 30.0

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``LINEAR`` or ``LINEAR,ANGLE`` as given to ``--tolerance``: a length with its unit
        (``0.1mm``, ``1e-4m``, ``0.005in``) or a share of the model's size (``0.1%``), then an
        angle in degrees.

        Raises:
            UsageError: not of that form, or not positive.
        """
        values = text.split(",")
        if not 1 <= len(values) <= 2:
            raise UsageError(f"--tolerance {text!r}: give LINEAR or LINEAR,ANGLE, e.g. 0.1mm,20")
        match = _LENGTH.match(values[0].strip().lower())
        if match is None or not float(match[1]) > 0:
            raise UsageError(f"--tolerance {values[0]!r}: give a positive length with its unit "
                             "(0.1mm, 0.0001m, 0.004in) or a share of the model's size (0.1%)")
        angle = cls.angular_deg
        if len(values) == 2:
            try:
                angle = float(values[1].strip().lower().removesuffix("deg"))
            except ValueError:
                angle = -1.0
            if not 0 < angle < 180:
                raise UsageError(f"--tolerance angle {values[1]!r}: give degrees between 0 "
                                 "and 180, e.g. 20")
        value, unit = float(match[1]), match[2]
        if unit == "%":
            return cls(None, value / 100.0, angle)
        return cls(value * _LENGTH_MM[unit], cls.relative, angle)


def tessellate_step(path: Path, glb: Path, tolerance: Tolerance, timeout: float | None = None,
                    progress: Callable[[str], None] | None = None) -> str:
    """Tessellate the STEP file ``path`` into the GLB ``glb`` (metres) in a child process.

    Args:
        path: the STEP file.
        glb: where the GLB goes.
        tolerance: how finely.
        timeout: seconds before the child is stopped; None: no limit.
        progress: called with a label before tessellating.

    Returns:
        How the surfaces were tessellated, for the stage's provenance (linear and angular
        tolerance, and the model size the linear one came from).

    Raises:
        CADImportError: cascadio is missing, OpenCASCADE cannot read the file or crashed,
            or ``timeout`` passed.
    """
    if importlib.util.find_spec("cascadio") is None:  # the child loads it
        raise CADImportError(path, "reading STEP needs cascadio: pip install cascadio")
    linear, note = _linear_mm(path, tolerance)
    note = f"{note}, {tolerance.angular_deg:g} degrees"
    if progress is not None:
        progress(f"tessellating {path.name} ({note})")
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-c", _TESSELLATE, str(path), str(glb), repr(float(linear)),
             repr(float(np.radians(tolerance.angular_deg)))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            raise CADImportError(path, f"tessellating took longer than --timeout {timeout:g} s "
                                       f"at {note}: give a coarser --tolerance or a longer "
                                       "--timeout") from None
        finally:
            if child.poll() is None:  # the timeout, or Ctrl-C
                child.kill()
                child.wait()
        err.seek(0)
        said = [line.strip() for line in err.read().decode("utf-8", "replace").splitlines()
                if line.strip()]
    if code < 0:
        raise CADImportError(path, f"OpenCASCADE crashed reading it (signal {-code}): the file "
                                   "may be damaged")
    if code != 0 or not glb.is_file() or glb.stat().st_size == 0:
        why = f" ({said[-1]})" if said else ""
        raise CADImportError(path, f"not a readable STEP file{why}")
    return note


def _linear_mm(path: Path, tolerance: Tolerance) -> tuple[float, str]:
    """The linear tolerance in millimetres (OpenCASCADE's unit), and how it was chosen."""
    if tolerance.linear_mm is not None:
        return tolerance.linear_mm, f"{tolerance.linear_mm:.3g} mm"
    diagonal = model_diagonal_mm(path)
    if diagonal is None:
        return _FALLBACK_MM, f"{_FALLBACK_MM:g} mm (the model's size could not be read)"
    linear = max(tolerance.relative * diagonal, 1e-6)
    return linear, (f"{linear:.3g} mm ({tolerance.relative * 100:g}% of the model's "
                    f"{diagonal:.4g} mm diagonal)")


def model_diagonal_mm(path: Path) -> float | None:
    """The bounding-box diagonal of a STEP file's 3-D points, in millimetres; None: no points.

    Points are read from the text (``CARTESIAN_POINT``), in the file's length unit (an
    inch or foot ``CONVERSION_BASED_UNIT``, else the ``SI_UNIT`` prefix of metres). Parts of
    an assembly count in their own coordinates, with their placements' origins: an estimate,
    enough to size a tolerance (leaving out the farthest 0.1 % of points instead made a long,
    thin part's size 2.5 times too small: its ends have few points).
    """
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    with path.open("rb") as f:
        try:
            text = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty
            return None
        with text:
            batch: list[tuple[bytes, ...]] = []
            for match in _POINT.finditer(text):  # a batch at a time: millions of points
                batch.append(match.groups())
                if len(batch) == _BATCH:
                    lo, hi = _bounds(batch, lo, hi)
                    batch.clear()
            lo, hi = _bounds(batch, lo, hi)
            # the first length among the conversion-based units (others are 'DEGREE' ...)
            unit_name = next((n for n in (bytes(m).upper() for m in _CONVERSION_UNIT.findall(text))
                              if n in _MM_PER_UNIT), None)
            si = _SI_LENGTH.search(text)
            si_prefix = None if si is None else bytes(si[1]).upper()
    if not np.all(hi >= lo):
        return None  # no points
    unit = 1.0
    if unit_name is not None:
        unit = _MM_PER_UNIT[unit_name]
    elif si_prefix is not None:
        unit = _SI_PREFIX_MM.get(si_prefix, 1.0)
    diagonal = float(np.linalg.norm(hi - lo)) * unit
    return diagonal if np.isfinite(diagonal) and diagonal > 0 else None


def _bounds(rows: list[tuple[bytes, ...]], lo: npt.NDArray[np.float64],
            hi: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(3,) lower and upper corners of ``lo``/``hi`` and the points ``rows`` (text numbers)."""
    if not rows:
        return lo, hi
    points = np.array(rows, dtype=np.float64)
    return np.minimum(lo, points.min(axis=0)), np.maximum(hi, points.max(axis=0))
