"""Regenerate the README's robot picture from the robot demo itself.

    python assets/media/make_robot_media.py

runs ``twin3d demo --scene robot --headless`` for one pick-and-place cycle into a temporary
folder, then replays its bridge recording (``recording.sqlite``: every joint angle at 50 Hz,
every servo temperature at 5 Hz, as the bridge acknowledged them) through the same view and
camera at an even 10 frames a second, so that the GIF plays at the speed the arm moved
whatever the speed of the machine that renders it (a busy one drops live frames). Rendered at
the GIF's size (labels drawn at their own pixel size, not scaled down), one palette:
``assets/media/robot.gif``.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from twin3d.cad.urdf import read_urdf
from twin3d.cli import main
from twin3d.demos.common import Moves
from twin3d.demos.pickplace import PickAndPlace
from twin3d.demos.robot import URDF, ArmLoad, RobotScene
from twin3d.twin import Twin
from twin3d.view import View

HERE = Path(__file__).resolve().parent
FPS = 10.0
SIZE = (576, 360)


def replay(folder: Path, seconds: float) -> list[Image.Image]:
    """The demo's recorded run rendered at an even ``FPS``."""
    twin = Twin.open(folder / "so101.usda", reset=True)  # meshes at rest, as Moves wants
    load = ArmLoad(read_urdf(URDF), Moves(twin.stage))
    with sqlite3.connect(folder / "recording.sqlite") as db:
        rows = db.execute("SELECT channel, time, value FROM samples_named ORDER BY time").fetchall()
    t0 = rows[0][1]
    view = View(twin, None, off_screen=True, window_size=SIZE)
    view.connection = f"replay of {folder.name}/recording.sqlite"
    scene = RobotScene(twin, view, load, seconds)
    latest: dict[str, float] = {}
    frames: list[Image.Image] = []
    i = 0
    for k in range(int(seconds * FPS)):
        t = k / FPS
        batch = {}
        while i < len(rows) and rows[i][1] - t0 <= t:
            batch[rows[i][0]] = rows[i][2]
            i += 1
        latest |= batch
        view.push(batch, time=t0 + t)
        scene.frame(t, latest, None)
        frames.append(Image.fromarray(view.screenshot()))
    view.close()
    return frames


if __name__ == "__main__":
    traj = PickAndPlace()
    seconds = round(traj.cycle_start + traj.cycle_seconds + 0.5, 1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "robot"
        assert main(["demo", "--scene", "robot", "--headless", "--duration", str(seconds),
                     "-o", str(out)]) == 0
        frames = replay(out, seconds)
    strip = Image.fromarray(np.concatenate([np.asarray(f) for f in frames[::8]], axis=0))
    palette = strip.quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    small = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    small[0].save(HERE / "robot.gif", save_all=True, append_images=small[1:],
                  duration=round(1000 / FPS), loop=0, optimize=True)
    print(f"wrote {HERE / 'robot.gif'} ({len(frames)} frames, "
          f"{(HERE / 'robot.gif').stat().st_size / 1e6:.2f} MB)")
