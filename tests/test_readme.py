"""The README's examples work as written: the camera path file and the scripting example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_camera_path_file_is_documented_and_reads_as_written(tmp_path: Path) -> None:
    from twin3d.view.camerapath import load_path

    (block,) = _blocks("toml")
    path = tmp_path / "walk.toml"
    path.write_text(block)
    walk = load_path(path)
    assert walk.fov == 35.0 and walk.up == (0.0, 0.0, 1.0) and not walk.closed
    assert walk.positions.tolist() == [[0.8, -0.6, 0.5], [0.2, -0.3, 0.2], [-0.3, 0.1, 0.35]]
    for key in ("[orbit]", "center", "radius", "elevation", "keys", 'camera = "'):
        assert key in README.read_text(encoding="utf-8"), key


@pytest.mark.render
@pytest.mark.slow
def test_the_scripting_example_runs_from_any_folder(tmp_path: Path) -> None:
    """'Script your twin' as a newcomer runs it: in an empty folder, without a display."""
    script = next(b for b in _blocks("python") if "twin3d.Twin.open" in b)
    (tmp_path / "example.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("plate.usda", "plate.twin.usda", "plate.live.usdc", "run1.usdc", "plate.png"):
        assert (tmp_path / name).stat().st_size > 0, name
