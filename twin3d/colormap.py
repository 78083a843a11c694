"""Colour maps and state colours shared by USD authoring and the view, so both show the same.

The tables here are sRGB (what a screen shows, what the view draws). USD treats
``displayColor`` as linear, so everything authored into a stage goes through
:func:`srgb_to_linear` first (:func:`linear_colorize`, :func:`linear_state_color`); colours read
back from a stage go through :func:`linear_to_srgb` before the view draws them. Pure numpy.

The default colour map is viridis: none of its colours can be taken for a warn or alarm
colour (CIELAB distance above 35 from both), unlike inferno's oranges and reds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = ["ALARM_COLORS", "DEFAULT_CMAP", "colorize", "linear_colorize", "linear_state_color",
           "linear_to_srgb", "lookup_table", "srgb_to_linear"]

DEFAULT_CMAP = "viridis"

#: sRGB in 0..1 for sensor states; ``stale`` is a sensor that has gone quiet, ``suspect`` one the
#: twin engine judges faulty (its readings disagree with the model and the other sensors).
ALARM_COLORS: dict[str, tuple[float, float, float]] = {
    "ok": (0.15, 0.68, 0.38),
    "warn": (1.0, 0.65, 0.0),
    "alarm": (0.9, 0.1, 0.1),
    "stale": (0.55, 0.55, 0.55),
    "suspect": (0.75, 0.3, 0.9),
}


@lru_cache(maxsize=16)
def lookup_table(name: str = DEFAULT_CMAP, n: int = 256) -> npt.NDArray[np.float32]:
    """Return the colour map ``name`` as an ``(n, 3)`` float32 sRGB table in 0..1."""
    from matplotlib import colormaps  # a dependency of pyvista

    table = colormaps[name].resampled(n)(np.linspace(0.0, 1.0, n))[:, :3]
    out = np.ascontiguousarray(table, dtype=np.float32)
    out.flags.writeable = False
    return out


def colorize(
    values: npt.ArrayLike, vmin: float, vmax: float, name: str = DEFAULT_CMAP
) -> npt.NDArray[np.float32]:
    """Map ``values`` to sRGB through a fixed range.

    Args:
        values: (n,) float.
        vmin: value shown as the first colour of the map (lower values clip to it).
        vmax: value shown as the last colour (higher values clip to it).
        name: a matplotlib colour map name.

    Returns:
        (n, 3) float32 sRGB in 0..1; NaN values come out in the stale grey.

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


def srgb_to_linear(rgb: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Convert sRGB components in 0..1 to linear ones (the IEC 61966-2-1 transfer function).

    Examples:
        >>> [round(float(c), 3) for c in srgb_to_linear([0.0, 0.5, 1.0])]
        [0.0, 0.214, 1.0]
    """
    c = np.asarray(rgb, dtype=np.float64)
    out = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return out.astype(np.float32)


def linear_to_srgb(rgb: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Convert linear components in 0..1 to sRGB (the inverse of :func:`srgb_to_linear`).

    Examples:
        >>> round(float(linear_to_srgb(0.214)), 3)
        0.5
    """
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, None)
    out = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    return out.astype(np.float32)


def linear_colorize(
    values: npt.ArrayLike, vmin: float, vmax: float, name: str = DEFAULT_CMAP
) -> npt.NDArray[np.float32]:
    """:func:`colorize` in linear RGB: the numbers to author into a USD ``displayColor``.

    Returns:
        (n, 3) float32 linear RGB in 0..1.
    """
    return srgb_to_linear(colorize(values, vmin, vmax, name))


def linear_state_color(state: str) -> tuple[float, float, float]:
    """The linear RGB of a sensor state's colour (``ok``, ``warn``, ``alarm``, ``stale``,
    ``suspect``)."""
    r, g, b = srgb_to_linear(ALARM_COLORS[state]).tolist()
    return (r, g, b)
