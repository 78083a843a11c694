"""Shared test fixtures: off-screen rendering, image regression, real data files."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from plate_stage import SENSORS, STL

# VTK tries X first and warns when there is no display; EGL (Mesa llvmpipe here) works headless.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

DATA = Path(__file__).parent / "data"
IMAGE_CACHE = Path(__file__).parent / "image_cache"
IN_CI = bool(os.environ.get("CI"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reset-image-cache", action="store_true",
                     help="rewrite the baseline PNGs of the image-regression tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``render`` tests where no OpenGL context can be made (in CI they run, and fail)."""
    if IN_CI or not any(item.get_closest_marker("render") for item in items) or _opengl_works():
        return
    reason = "no OpenGL context (VTK needs EGL, OSMesa or a display): apt-get install libegl1"
    for item in items:
        if item.get_closest_marker("render"):
            item.add_marker(pytest.mark.skip(reason=reason))


def _opengl_works() -> bool:
    import subprocess
    import sys

    probe = ("import vtk; w = vtk.vtkRenderWindow(); w.SetOffScreenRendering(1); "
             "w.AddRenderer(vtk.vtkRenderer()); w.Render(); print(w.ReportCapabilities()[:1])")
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_binary(name: str, apt_package: str) -> str:
    """Return the path of an external program; skip locally, fail in CI, when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: apt-get install {apt_package}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def data_dir() -> Path:
    """The folder of real CAD files copied from trimesh's models (see tests/data/README.md)."""
    return DATA


@pytest.fixture
def assert_image(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Compare a plotter's render with the committed baseline PNG (pytest-pyvista's way)."""
    import pyvista as pv

    def check(plotter: pv.Plotter, *, error: float = 500.0, warning: float = 200.0) -> None:
        name = request.node.name.removeprefix("test_")
        path = IMAGE_CACHE / f"{name}.png"
        if request.config.getoption("--reset-image-cache") or not path.exists():
            if IN_CI and not path.exists():
                pytest.fail(f"missing baseline {path.name}: run pytest --reset-image-cache and commit it")
            IMAGE_CACHE.mkdir(exist_ok=True)
            plotter.screenshot(str(path))
            return
        err = pv.compare_images(str(path), plotter)
        assert err <= error, f"{path.name}: image error {err:.0f} > {error}"
        if err > warning:
            warnings.warn(f"{path.name}: image error {err:.0f} > {warning}", stacklevel=2)

    return check


# --- the example plate twin (tests/plate_stage.py) -------------------------------------------

@pytest.fixture(scope="session")
def plate_templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(converted plate.usda, the same bound to the example sensor map), made once."""
    from twin3d.cad.convert import convert
    from twin3d.sensors import load_sensor_map
    from twin3d.usd.bind import bind_sensors

    raw = tmp_path_factory.mktemp("plate_raw") / "plate.usda"
    convert([STL], raw, units="mm", name="Plate", progress=False)
    bound_dir = tmp_path_factory.mktemp("plate_bound")
    for f in raw.parent.glob("plate.*"):
        shutil.copy(f, bound_dir / f.name)
    bound = bound_dir / "plate.usda"
    bind_sensors(bound, load_sensor_map(SENSORS))
    return raw, bound


def _copy(src: Path, folder: Path) -> Path:
    for f in src.parent.glob("plate.*"):
        shutil.copy(f, folder / f.name)
    return folder / src.name


@pytest.fixture
def plate(tmp_path: Path, plate_templates: tuple[Path, Path]) -> Path:
    """A fresh copy of the converted, unbound plate stage."""
    return _copy(plate_templates[0], tmp_path)


@pytest.fixture
def bound_plate(tmp_path: Path, plate_templates: tuple[Path, Path]) -> Path:
    """A fresh copy of the plate stage bound to ``twin3d/data/plate_sensors.toml``."""
    return _copy(plate_templates[1], tmp_path)


@pytest.fixture
def view_plate(tmp_path: Path) -> Any:
    """The view tests' small plate stage (tests/render/view_scene.py): its twin and a field model."""
    from render.view_scene import make_plate

    return make_plate(tmp_path)
