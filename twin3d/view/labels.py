"""Sensor labels: what they say and where they go on screen. Pure numpy, no VTK.

A label names its sensor, its value and unit, and its state when it is not ok
(``tc3  99.1 °C  ALARM``, ``tc1  30 °C  STALE 25s``). :func:`place_labels` puts each label
next to its glyph where it overlaps no other label, glyph or reserved area (the colour bar,
the status line), trying positions around the glyph and then farther out (drawn with a
leader line), in order of urgency: alarms first, then warnings, stale sensors, the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["STATE_ORDER", "label_text", "nice_ticks", "place_labels", "short_names", "unit_text"]

F64 = npt.NDArray[np.float64]

#: Placement order of states (most urgent first).
STATE_ORDER = {"alarm": 0, "warn": 1, "suspect": 2, "stale": 3, "ok": 4}

#: Units as people read them (the sensor map's ASCII spellings on the left).
_UNITS = {"degC": "°C", "degF": "°F", "ustrain": "µm/m", "um/m": "µm/m", "deg": "°"}

# directions tried around a glyph: above, below, right, left, then the diagonals
_DIRECTIONS = np.array([(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)],
                       dtype=np.float64)


def unit_text(unit: str) -> str:
    """The unit as shown: ``degC`` -> ``°C``, ``ustrain`` -> ``µm/m``; others unchanged.

    Examples:
        >>> unit_text("degC"), unit_text("N")
        ('°C', 'N')
    """
    return _UNITS.get(unit, unit)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def label_text(name: str, value: float | None, unit: str, state: str,
               age: float | None = None) -> str:
    """The text of a sensor's label.

    Args:
        name: the sensor's short name (:func:`short_names`).
        value: its latest value, None before the first one.
        unit: its unit as in the sensor map.
        state: ``ok``, ``warn``, ``alarm``, ``stale`` or ``suspect`` (the twin engine's).
        age: seconds since the value arrived (shown for stale sensors).

    Examples:
        >>> label_text("tc3", 99.06, "degC", "alarm")
        'tc3  99.06 °C  ALARM'
        >>> label_text("tc1", 30.0, "degC", "stale", age=25.0)
        'tc1  30 °C  STALE 25s'
        >>> label_text("tc4", None, "degC", "stale")
        'tc4  no data'
    """
    if value is None:
        return f"{name}  no data"
    text = f"{name}  {value:.4g} {unit_text(unit)}".rstrip()
    if state == "stale" and age is not None:
        return f"{text}  STALE {_age(age)}"
    return text if state == "ok" else f"{text}  {state.upper()}"


def short_names(channels: Sequence[str]) -> dict[str, str]:
    """Each channel's last ``/`` part where that is unique, else the whole channel.

    Examples:
        >>> short_names(["plate/tc1", "plate/tc2", "a/x", "b/x"])
        {'plate/tc1': 'tc1', 'plate/tc2': 'tc2', 'a/x': 'a/x', 'b/x': 'b/x'}
    """
    last = [c.rsplit("/", 1)[-1] for c in channels]
    count: dict[str, int] = {}
    for n in last:
        count[n] = count.get(n, 0) + 1
    return {c: (n if count[n] == 1 else c) for c, n in zip(channels, last, strict=True)}


def _overlap(box: F64, others: F64) -> F64:
    """Overlap areas of ``box`` (m, 4) candidates with ``others`` (k, 4): (m,) summed."""
    if not len(others):
        return np.zeros(len(box))
    w = (np.minimum(box[:, None, 2], others[None, :, 2])
         - np.maximum(box[:, None, 0], others[None, :, 0])).clip(0)
    h = (np.minimum(box[:, None, 3], others[None, :, 3])
         - np.maximum(box[:, None, 1], others[None, :, 1])).clip(0)
    out: F64 = (w * h).sum(axis=1)
    return out


def _candidates(x: float, y: float, r: float, w: float, h: float, gap: float, step: float,
                rings: int) -> F64:
    """(rings × 8, 4) boxes (x0, y0, x1, y1) around the anchor, nearest first."""
    out = []
    for ring in range(rings):
        d = r + gap + ring * step
        for dx, dy in _DIRECTIONS:
            cx = x + dx * (d + (w / 2 if dx else 0.0)) * (0.75 if dx and dy else 1.0)
            cy = y + dy * (d + (h / 2 if dy else 0.0)) * (0.75 if dx and dy else 1.0)
            out.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return np.asarray(out, dtype=np.float64)


def place_labels(anchors: npt.ArrayLike, sizes: npt.ArrayLike, radii: npt.ArrayLike,
                 priority: Sequence[int], window: tuple[int, int], *,
                 obstacles: npt.ArrayLike = (), keep_out: Sequence[Sequence[float]] = (),
                 gap: float = 3.0, rings: int = 8) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Place labels next to their anchors without overlapping one another.

    Greedy, most urgent first: each label takes the first position around its anchor that
    overlaps nothing placed so far, no glyph and no ``keep_out`` area and lies inside the
    window; if there is none within ``rings`` steps, the position with the least overlap.

    Args:
        anchors: (k, 2) display pixels (x right, y up) of the glyphs to label.
        sizes: (k, 2) label width and height in pixels.
        radii: (k,) glyph radii in pixels.
        priority: (k,) lower is placed first (e.g. :data:`STATE_ORDER` of each state).
        window: (width, height) in pixels.
        obstacles: (g, 3) glyphs (x, y, radius) that labels must not cover, besides the
            anchors' own.
        keep_out: (x0, y0, x1, y1) areas labels must not cover (colour bar, status line).
        gap: pixels between a glyph and its label.
        rings: how many steps (of one label height) outwards to try.

    Returns:
        (k, 4) label boxes (x0, y0, x1, y1) and (k,) whether each one sits away from its
        glyph (draw a leader line).

    Examples:
        >>> boxes, lead = place_labels([[100, 100], [102, 100]], [[60, 14], [60, 14]],
        ...                            [5, 5], [0, 1], (400, 300))
        >>> bool(boxes[0, 1] >= boxes[1, 3] or boxes[1, 1] >= boxes[0, 3]
        ...      or boxes[0, 0] >= boxes[1, 2] or boxes[1, 0] >= boxes[0, 2])
        True
    """
    pts = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    wh = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    rad = np.asarray(radii, dtype=np.float64).reshape(-1)
    extra = np.asarray(obstacles, dtype=np.float64).reshape(-1, 3)
    discs = np.vstack([np.column_stack([pts, rad]), extra])
    fixed = np.vstack([np.column_stack([discs[:, 0] - discs[:, 2], discs[:, 1] - discs[:, 2],
                                        discs[:, 0] + discs[:, 2], discs[:, 1] + discs[:, 2]]),
                       np.asarray(keep_out, dtype=np.float64).reshape(-1, 4)])
    width, height = window
    boxes = np.zeros((len(pts), 4))
    lead = np.zeros(len(pts), dtype=bool)
    placed: list[F64] = []
    for i in np.argsort(np.asarray(priority), kind="stable"):
        (x, y), (w, h) = pts[i], wh[i]
        cand = _candidates(x, y, rad[i], w, h, gap, h + gap, rings)
        outside = ((cand[:, 0] < 0).astype(float) + (cand[:, 1] < 0) + (cand[:, 2] > width)
                   + (cand[:, 3] > height)) * w * h
        cost = _overlap(cand, fixed) + _overlap(cand, np.asarray(placed).reshape(-1, 4)) + outside
        free = np.flatnonzero(cost <= 1e-9)
        best = int(free[0]) if free.size else int(np.argmin(cost))
        boxes[i] = cand[best]
        lead[i] = best >= len(_DIRECTIONS)
        placed.append(cand[best])
    return boxes, lead


def nice_ticks(vmin: float, vmax: float, n: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) inside ``vmin..vmax``.

    Examples:
        >>> nice_ticks(20.0, 105.0)
        [20.0, 40.0, 60.0, 80.0, 100.0]
        >>> nice_ticks(0.0, 1.0)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    span = vmax - vmin
    if not (np.isfinite(span) and span > 0):
        return [float(vmin)]
    raw = span / n
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))
    first = np.ceil(vmin / step - 1e-9) * step
    ticks = np.arange(first, vmax + step * 1e-6, step)
    return [float(f"{round(t / step) * step:.12g}") + 0.0 for t in ticks]  # + 0.0: no -0.0
