"""Regenerate the README's demo pictures from the demo itself.

    python assets/media/make_demo_media.py

runs ``twin3d demo --headless --duration 20`` into a temporary folder and keeps a small GIF
(every fourth frame, 400 px wide, one 160-colour palette) and the alarm snapshot as ``assets/media/demo.gif`` and
``assets/media/demo_alarm.png``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image

from twin3d.cli import main

HERE = Path(__file__).resolve().parent


def shrink(frame: np.ndarray, width: int = 400) -> Image.Image:
    image = Image.fromarray(frame)
    height = round(image.height * width / image.width)
    return image.resize((width, height), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        assert main(["demo", "--headless", "--duration", "20", "-o", str(out)]) == 0
        with imageio.get_reader(str(out / "demo.mp4")) as reader:
            frames = [shrink(f) for i, f in enumerate(reader) if i % 4 == 0]
        # one palette for the whole movie, from a strip of frames (the glyphs' alarm colours
        # are small: an octree palette keeps them, median cut folds them into the plate)
        strip = Image.fromarray(np.concatenate([np.asarray(f) for f in frames[::5]], axis=0))
        palette = strip.quantize(colors=160, method=Image.Quantize.FASTOCTREE)
        small = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        small[0].save(HERE / "demo.gif", save_all=True, append_images=small[1:], duration=400,
                      loop=0, optimize=True)
        snapshot = out / "snapshot_alarm.png"
        snapshot = snapshot if snapshot.exists() else out / "snapshot_end.png"
        shrink(imageio.imread(snapshot)[..., :3], 720).save(HERE / "demo_alarm.png",
                                                            optimize=True)
    print(f"wrote {HERE / 'demo.gif'} ({len(frames)} frames) and {HERE / 'demo_alarm.png'}")
