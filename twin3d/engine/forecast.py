"""Forecasts: when will a signal cross its limit, from its recent trajectory. Pure numpy.

A :class:`Trend` keeps the last ``window`` seconds of one signal (one point per health period:
the period's mean). :meth:`Trend.crossing` fits a straight line by least squares, on the whole
window or, when the trajectory bends within it (the quadratic term of a second fit is
significant at 3 sigma), on its later half, quarter, eighth; the line's level now and its slope
give the time left until the limit, and their covariance (from the fit's residuals) its sigma.

The engine publishes a crossing when it is within the horizon and its sigma is at most
:data:`MAX_RELATIVE_SIGMA` of it: a trend too weak or too noisy to say when says nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_RELATIVE_SIGMA", "Crossing", "Trend"]

#: A crossing is published when its sigma is at most this share of the time left.
MAX_RELATIVE_SIGMA = 0.05
_MIN_POINTS = 6
_CURVATURE_SIGMAS = 3.0


@dataclass(frozen=True)
class Crossing:
    """A predicted crossing of a limit.

    Attributes:
        eta: seconds from the newest point until the line reaches the limit (> 0).
        sigma: standard deviation of ``eta`` (s).
        slope: the fitted rate (signal unit per second).
        confident: ``sigma <= MAX_RELATIVE_SIGMA * eta``: the engine publishes it.
    """

    eta: float
    sigma: float
    slope: float

    @property
    def confident(self) -> bool:
        """True when the crossing is known well enough to publish."""
        return self.sigma <= MAX_RELATIVE_SIGMA * self.eta


class Trend:
    """The recent trajectory of one signal.

    Args:
        window: seconds of history kept and fitted.

    Examples:
        >>> trend = Trend(60.0)
        >>> for t in range(30):
        ...     trend.add(float(t), 20.0 + 0.5 * t + 0.01 * (-1) ** t)
        >>> round(trend.crossing(50.0, rising=True, horizon=600.0).eta, 1)
        31.0
    """

    def __init__(self, window: float) -> None:
        self.window = float(window)
        self.points: deque[tuple[float, float]] = deque()
        self._fit: tuple[float, float, float, float, float] | None = None
        self._fitted = False   # _fit is the fit of the current points

    def add(self, time: float, value: float) -> None:
        """Add one point (a period's mean at its mean time); older than ``window`` drop out."""
        self.points.append((time, value))
        while self.points and self.points[0][0] < time - self.window:
            self.points.popleft()
        self._fitted = False

    def clear(self) -> None:
        """Forget the history (a sensor that was suspect starts afresh)."""
        self.points.clear()
        self._fitted = False

    def crossing(self, limit: float, *, rising: bool, horizon: float,
                 now: float | None = None) -> Crossing | None:
        """When the signal reaches ``limit``, or None (no trend toward it within ``horizon``).

        Args:
            limit: the limit's value.
            rising: True for a high limit (crossed from below), False for a low one.
            horizon: seconds beyond which a crossing is not predicted.
            now: the time the answer is for (default: the newest point's); ``eta`` counts from
                it.

        Returns:
            The crossing, or None when there are too few points, the signal is already past
            the limit, it heads away from it, or it would reach it after ``horizon``.
        """
        if not self._fitted:  # one fit per new point, whatever the number of limits
            self._fit, self._fitted = self._line(), True
        fit = self._fit
        if fit is None:
            return None
        level, slope, var_level, var_slope, cov = fit
        dt = 0.0 if now is None else now - self.points[-1][0]
        if dt:  # the line carried on to ``now``
            level, var_level, cov = (level + slope * dt, var_level + dt * dt * var_slope + 2.0 * dt * cov,
                                     cov + dt * var_slope)
        gap = (limit - level) if rising else (level - limit)
        rate = slope if rising else -slope
        if gap <= 0.0 or rate <= 0.0:
            return None
        eta = gap / rate
        if eta > horizon:
            return None
        # eta = gap / rate: first-order error propagation of (level, slope)
        var = (var_level + eta * eta * var_slope + 2.0 * eta * cov) / (rate * rate)
        return Crossing(eta, math.sqrt(max(var, 0.0)), slope)

    def _line(self) -> tuple[float, float, float, float, float] | None:
        """(level now, slope, var level, var slope, cov) of the longest straight part."""
        if len(self.points) < _MIN_POINTS:
            return None
        pts = np.asarray(self.points, dtype=np.float64)
        t_now = float(pts[-1, 0])
        span = self.window
        while True:
            part = pts[pts[:, 0] >= t_now - span]
            if len(part) < _MIN_POINTS:
                return None
            if len(part) < 2 * _MIN_POINTS or not self._bends(part, t_now):
                return self._fit_line(part, t_now)
            span /= 2.0

    @staticmethod
    def _design(t: np.ndarray, t_now: float, degree: int) -> np.ndarray:
        x = t - t_now
        return np.vander(x, degree + 1, increasing=True)

    def _bends(self, part: np.ndarray, t_now: float) -> bool:
        X = self._design(part[:, 0], t_now, 2)
        coef, cov = _lstsq(X, part[:, 1])
        if cov is None:
            return False
        return bool(abs(coef[2]) > _CURVATURE_SIGMAS * math.sqrt(max(cov[2, 2], 1e-300)))

    def _fit_line(self, part: np.ndarray, t_now: float) -> tuple[float, float, float, float, float] | None:
        X = self._design(part[:, 0], t_now, 1)
        coef, cov = _lstsq(X, part[:, 1])
        if cov is None:
            return None
        return float(coef[0]), float(coef[1]), float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])


def _lstsq(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Least squares with the coefficients' covariance from the residuals (None: too few dof)."""
    n, p = X.shape
    if n <= p:
        return np.zeros(p), None
    XtX = X.T @ X
    try:
        inv = np.linalg.inv(XtX)
    except np.linalg.LinAlgError:
        return np.zeros(p), None
    coef = inv @ (X.T @ y)
    resid = y - X @ coef
    s2 = float(resid @ resid) / (n - p)
    return coef, inv * s2
