"""Progress of long model builds on the terminal (rich), shown once a build passes a second.

A build opens :func:`build_progress`; the code under it reports steps with :func:`step` and
never needs to know whether anyone watches. Nothing is drawn when stderr is not a terminal
(tests, CI, pipes) or for builds that finish within :data:`DELAY_S`.

Examples:
    >>> with build_progress("stress model"):
    ...     step("solving", 1, 2)
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["DELAY_S", "build_progress", "step"]

#: Builds shorter than this (seconds) show nothing.
DELAY_S = 1.0


class _Display:
    def __init__(self, title: str) -> None:
        self.title = title
        self.start = time.monotonic()
        self.progress: Any = None
        self.task: Any = None
        self.enabled = True

    def show(self, what: str, done: float, total: float | None) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            if time.monotonic() - self.start < DELAY_S:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if not console.is_terminal:
                self.enabled = False
                return
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                                     TimeElapsedColumn(), console=console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.title, total=None)
        self.progress.update(self.task, description=f"{self.title}: {what}", completed=done,
                             total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


_current: contextvars.ContextVar[_Display | None] = contextvars.ContextVar(
    "twin3d_fields_progress", default=None)


@contextlib.contextmanager
def build_progress(title: str) -> Iterator[None]:
    """Show the steps reported inside the block under ``title`` (nested blocks reuse the
    outer display)."""
    if _current.get() is not None:
        yield
        return
    display = _Display(title)
    token = _current.set(display)
    try:
        yield
    finally:
        _current.reset(token)
        display.close()


def step(what: str, done: float = 0, total: float | None = None) -> None:
    """Report ``done`` of ``total`` for the step ``what`` (no-op outside a build)."""
    display = _current.get()
    if display is not None:
        display.show(what, done, total)
