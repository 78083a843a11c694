"""Feeders: what pushes values into a :class:`~twin3d.view.View` while a render loop draws it.

The view knows no data source; each feeder here is a task that only calls ``view.push`` and
sets ``view.connection`` (the source's state in the status line), and a render loop draws
the latest values at a steady frame rate beside it, so a fast stream never makes the view
fall behind and a slow frame never blocks the source:

* :func:`feed_bridge`: a live bridge subscription;
* :func:`feed_recording`: recorded samples (the bridge's SQLite recording) replayed in time
  order, paced by :class:`twin3d.bridge.pacing.Pace`;
* :func:`spread_recording`: a recording spread over the frames of a movie.

Examples:
    >>> asyncio.run(feed_bridge(view, "ws://127.0.0.1:8765"))           # doctest: +SKIP
    >>> asyncio.run(feed_recording(view, samples, speed=10.0))          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from twin3d.bridge.pacing import Pace
from twin3d.model import Sample

if TYPE_CHECKING:
    from twin3d.view.renderer import View

__all__ = ["background", "feed_bridge", "feed_recording", "spread_recording"]


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``coro`` as a task for the ``async with`` block; cancel it and wait for it after.

    An error of the task is not raised on the way out: it was shown (or awaited) inside.
    """
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def feed_bridge(view: View, url: str, token: str | None = None, *,
                      patterns: Sequence[str] = ("*",), fps: float = 30.0,
                      max_frames: int | None = None,
                      subscribed: asyncio.Event | None = None) -> None:
    """Subscribe ``view`` to a bridge and render while values stream in.

    Args:
        view: the view to push into and render.
        url: ``ws://HOST:PORT`` of a twin3d bridge.
        token: a token with subscribe rights, if the bridge wants one.
        patterns: channel globs to subscribe to.
        fps: frames per second of the render loop.
        max_frames: stop after this many frames (None: until the window closes or the
            task is cancelled).
        subscribed: set once the subscription is live.
    """
    from twin3d.bridge import Client

    async def pump() -> None:
        view.connection = f"connecting {url}"
        async with Client(url, token=token) as client:
            view.alarms = client.alarms      # the client keeps it current: the status line counts it
            sub = await client.subscribe(list(patterns))
            view.connection = f"connected {url}"
            if subscribed is not None:
                subscribed.set()
            async for batch in sub:
                view.push(batch)

    try:
        async with background(pump()) as task:
            await _render_loop(view, fps, max_frames, task)
    finally:
        view.connection = "disconnected"


async def feed_recording(view: View, samples: Iterable[Sample], *, speed: float = 1.0,
                         fps: float = 30.0, max_frames: int | None = None) -> None:
    """Push recorded samples in time order at ``speed`` × real time while rendering.

    Args:
        view: the view to push into and render.
        samples: the samples, in time order.
        speed: 1 = recorded pace, 2 = twice as fast, 0 = as fast as possible.
        fps: frames per second of the render loop.
        max_frames: stop after this many frames (None: off-screen, when the samples are
            done; in a window, when it is closed).

    Raises:
        UsageError: ``speed`` is negative or not a number.
    """
    pace = Pace(speed)

    pace_text = "as fast as possible" if speed == 0 else f"{speed:g}x speed"

    async def pump() -> None:
        view.connection = f"replay at {pace_text}"
        for s in samples:
            await pace.wait(s.time)
            view.push([s])
        view.connection = f"replay at {pace_text}, finished"

    async with background(pump()) as task:
        await _render_loop(view, fps, max_frames, task,
                           stop_when_done=max_frames is None and view.plotter.off_screen)


def spread_recording(samples: Sequence[Sample], frames: int,
                     push: Callable[[list[Sample]], None]) -> Callable[[int], None]:
    """Spread a recording over ``frames`` frames: a callback that pushes what frame i shows.

    Frame i shows the recording up to ``t0 + (i + 1) / frames`` of its duration (pass the
    callback as ``before_frame`` of :func:`twin3d.view.export_movie`).

    Args:
        samples: the samples, in time order (at least one).
        frames: the number of frames.
        push: where the samples of each frame go (``view.push``).
    """
    times = [s.time for s in samples]
    t0, t1 = times[0], times[-1]
    done = [0]

    def before(i: int) -> None:
        t = t0 + (t1 - t0) * (i + 1) / frames
        k = bisect.bisect_right(times, t)
        if k > done[0]:
            push(list(samples[done[0]:k]))
            done[0] = k

    return before


async def _render_loop(view: View, fps: float, max_frames: int | None, task: asyncio.Task[None],
                       stop_when_done: bool = False) -> None:
    interactive = not view.plotter.off_screen
    if interactive:
        view.open_window(fly=True)
    period = 1.0 / fps
    n = 0
    while max_frames is None or n < max_frames:
        t0 = time.perf_counter()
        view.render()
        n += 1
        if interactive:
            view.plotter.update(1)
            if view.window_closed():
                break
        if task.done():
            exc = task.exception()
            if exc is not None:
                view.connection = f"disconnected ({exc})"
            if stop_when_done:
                view.render()
                break
        await asyncio.sleep(max(0.0, period - (time.perf_counter() - t0)))
