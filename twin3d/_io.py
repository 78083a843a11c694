"""Atomic file output: write to a temporary file beside the target, rename on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from twin3d._types import PathLike
from twin3d.errors import OutputError, reason

__all__ = ["atomic_output"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: PathLike, *, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed, so a failed write never leaves
    a half-written output behind.

    Args:
        path: the final output file.
        keep_suffix: give the temporary file the same suffix (USD picks its file
            format from the suffix).

    Raises:
        OutputError: the folder does not exist or is not writable.

    Examples:
        >>> with atomic_output("/tmp/x.txt") as tmp:
        ...     _ = tmp.write_text("hello")
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(target, f"folder {folder} does not exist")
    suffix = target.suffix if keep_suffix else ".tmp"
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=folder)
    except OSError as exc:
        raise OutputError(target, reason(exc)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
