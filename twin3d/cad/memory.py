"""Hand freed heap memory back to the operating system between the phases of big jobs.

numpy's temporaries of a few MiB come from glibc's heap (its mmap threshold rises to 32 MiB
after the first large array is freed), and glibc returns freed heap pages only from the top
of the heap. ``malloc_trim(0)`` returns every free page; without it a 1.3M-triangle
conversion kept 40-60 MiB of garbage resident between phases (``benchmarks/RESULTS.md``,
"Conversion"). A no-op where the C library has no ``malloc_trim`` (macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], Any] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> None:
    """Return the heap's free pages to the operating system (glibc); a few ms."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
