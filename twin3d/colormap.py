"""Colour maps shared by USD authoring and the view, so both show the same colours. Pure numpy."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["ALARM_COLORS", "DEFAULT_CMAP", "colorize", "lookup_table"]

DEFAULT_CMAP = "inferno"

#: RGB in 0..1 for sensor states; ``stale`` is a sensor that has gone quiet.
ALARM_COLORS: dict[str, tuple[float, float, float]] = {
    "ok": (0.15, 0.68, 0.38),
    "warn": (1.0, 0.65, 0.0),
    "alarm": (0.9, 0.1, 0.1),
    "stale": (0.55, 0.55, 0.55),
}


@lru_cache(maxsize=16)
def lookup_table(name: str = DEFAULT_CMAP, n: int = 256) -> npt.NDArray[np.float32]:
    """Return the colour map ``name`` as an ``(n, 3)`` float32 RGB table in 0..1."""
    from matplotlib import colormaps  # a dependency of pyvista

    table = colormaps[name].resampled(n)(np.linspace(0.0, 1.0, n))[:, :3]
    out = np.ascontiguousarray(table, dtype=np.float32)
    out.flags.writeable = False
    return out


def colorize(
    values: npt.ArrayLike, vmin: float, vmax: float, name: str = DEFAULT_CMAP
) -> npt.NDArray[np.float32]:
    """Map ``values`` to RGB through a fixed range.

    Args:
        values: (n,) float.
        vmin: value shown as the first colour of the map (lower values clip to it).
        vmax: value shown as the last colour (higher values clip to it).
        name: a matplotlib colour map name.

    Returns:
        (n, 3) float32 RGB in 0..1; NaN values come out grey.

    Examples:
        >>> colorize([0.0, 1.0], 0.0, 1.0).shape
        (2, 3)
    """
    v = np.asarray(values, dtype=np.float64)
    table = lookup_table(name)
    span = vmax - vmin if vmax > vmin else 1.0
    idx = np.clip((v - vmin) / span * (len(table) - 1) + 0.5, 0, len(table) - 1)
    out = table[np.nan_to_num(idx, nan=0.0).astype(np.intp)].copy()
    out[np.isnan(v)] = ALARM_COLORS["stale"]
    return out
