"""Off-screen export of a walk-through to MP4 (imageio-ffmpeg) or GIF, with a progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.errors import RenderError, Twin3DError

if TYPE_CHECKING:
    from twin3d.view.camerapath import CameraPath
    from twin3d.view.renderer import View

__all__ = ["MOVIE_SUFFIXES", "export_movie", "export_movie_live", "movie_writer"]

MOVIE_SUFFIXES = (".mp4", ".gif")


@contextlib.contextmanager
def movie_writer(output: PathLike, fps: float = 30.0) -> Iterator[Callable[[Any], None]]:
    """Open ``output`` (.mp4 or .gif) atomically; yield ``append(frame (h, w, 3) uint8)``.

    Raises:
        RenderError: unknown suffix or the encoder failed (no partial file is left).
    """
    import imageio.v2 as imageio

    out = Path(output)
    suffix = out.suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise RenderError(f"{out}: unknown movie type {out.suffix or '(none)'!r}; "
                          "use .mp4 or .gif")
    with atomic_output(out) as tmp:
        if suffix == ".mp4":
            kwargs: dict[str, Any] = dict(fps=fps, codec="libx264", quality=7,
                                          macro_block_size=8, ffmpeg_log_level="error",
                                          pixelformat="yuv420p")
        else:
            kwargs = dict(duration=1000.0 / fps, loop=0)
        try:
            writer = imageio.get_writer(str(tmp), format="FFMPEG" if suffix == ".mp4" else "GIF",
                                        mode="I", **kwargs)
        except Exception as exc:  # the encoder is missing or refuses the options
            raise RenderError(f"{out}: cannot start the {suffix[1:]} encoder ({exc})") from None
        try:
            yield writer.append_data
        except Twin3DError:
            writer.close()
            raise
        except Exception as exc:
            writer.close()
            raise RenderError(f"{out}: writing the movie failed ({exc})") from None
        writer.close()


@contextlib.contextmanager
def _progress(frames: int, enabled: bool) -> Iterator[Callable[[], None]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]walk-through"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} frames"),
                  TimeRemainingColumn(), disable=not enabled, transient=True) as bar:
        task = bar.add_task("render", total=frames)
        yield lambda: bar.advance(task)


def export_movie(
    view: View,
    path: CameraPath,
    output: PathLike,
    *,
    frames: int = 120,
    fps: float = 30.0,
    before_frame: Callable[[int], None] | None = None,
    progress: bool = True,
) -> Path:
    """Render ``frames`` frames along ``path`` and write them to ``output``.

    Args:
        view: an (off-screen) view; its data is whatever was pushed, or what
            ``before_frame`` pushes.
        path: the camera path, sampled evenly into ``frames`` poses.
        output: ``.mp4`` (H.264 via imageio-ffmpeg) or ``.gif``; written atomically.
        frames: number of frames.
        fps: frames per second of the movie.
        before_frame: called with the frame index before each frame (push recorded
            values here to show a replay along the walk).
        progress: show a rich progress bar on stderr.

    Returns:
        The output path.

    Raises:
        RenderError: unknown suffix or the encoder failed (no partial file is left).

    Examples:
        >>> export_movie(view, orbit_path((0, 0, 0), 2.0), "walk.mp4", frames=90)  # doctest: +SKIP
    """
    if frames < 1:
        raise RenderError(f"frames must be at least 1, got {frames}")
    positions, focals = path.sample(frames)
    with movie_writer(output, fps) as append, _progress(frames, progress) as advance:
        for i in range(frames):
            if before_frame is not None:
                before_frame(i)
            view.set_camera(positions[i], focals[i], path.up, path.fov)
            append(view.screenshot())
            advance()
    return Path(output)


async def export_movie_live(view: View, path: CameraPath, output: PathLike, *,
                            frames: int = 120, fps: float = 30.0,
                            progress: bool = True) -> Path:
    """Like :func:`export_movie`, yielding to the event loop between frames.

    Use it while :func:`~twin3d.view.feed.feed_bridge` (or any task calling ``push``) runs on
    the same loop: each frame shows the latest values received by then.
    """
    import asyncio

    if frames < 1:
        raise RenderError(f"frames must be at least 1, got {frames}")
    positions, focals = path.sample(frames)
    with movie_writer(output, fps) as append, _progress(frames, progress) as advance:
        for i in range(frames):
            await asyncio.sleep(1.0 / fps)
            view.set_camera(positions[i], focals[i], path.up, path.fov)
            append(view.screenshot())
            advance()
    return Path(output)
