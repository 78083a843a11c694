"""Sensor health: leave-one-out residuals of a linear model, and the checks that call a sensor suspect.

**Leave-one-out, closed form.** A physics model says what the sensors read for its inputs:
``y = A a + e`` (``A`` the model's ``response``, (m, k); ``e`` independent noise with standard
deviation ``s_i``). With weights ``w_i = 1 / s_i²`` over the sensors trusted now (the *active*
ones), ``G = Aᵀ W A`` and the fit ``â = G⁻¹ Aᵀ W y`` give the leverages
``h_i = w_i A_i G⁻¹ A_iᵀ``; the residual of sensor ``i`` against the model fitted *without it* is
``r_i = (y_i - A_i â) / (1 - h_i)`` with variance ``s_i² / (1 - h_i)``: one fit for every sensor,
no refit per sensor. A sensor outside the active set (suspect) is compared with the fit of the
active ones: ``r_i = y_i - A_i â``, variance ``s_i² + A_i G⁻¹ A_iᵀ``. The standardised residual
``z_i`` is N(0, 1) for a healthy sensor when the model holds, whatever its place on the part; a
sensor the others cannot check (``h_i`` = 1: it alone fixes an input) gets NaN. A sensor far off
(``|z|`` > :data:`OUTLIER` sigma) leaves the fit of the others before they are judged, so that a
fault does not spill onto its neighbours.

**Whose fault it is.** Below that, a faulty sensor in the fit moves its neighbours' residuals
too: a fault of ``e`` on sensor ``j`` gives every ``z_i`` ``rho_ij`` times what it gives ``z_j``,
``rho`` the correlation of the leave-one-out residuals (:meth:`LeaveOneOut.correlation`; up to
0.71 on the demo plate, between the thermocouple between the rear bolts and a rear corner). So a
slow drift fed its neighbours' CUSUMs too, and one with a head start from noise crossed the
threshold first. The evidence that sensor ``i`` itself is at fault is its recent residuals,
``d_i = |sum z_i| / sqrt(n)`` over its last :data:`EVIDENCE_WINDOW` periods (N(0, 1) for a
healthy sensor; its own ``z`` is always the largest a fault puts anywhere, ``|rho| <= 1``); a
CUSUM crossing becomes a verdict only when that evidence is the sensor's own:
``d_i >= max_j |rho_ij| d_j + MARGIN``, more than any other sensor's fault (suspect or not) can
have put there. A neighbour's evidence is ``|rho|`` times the culprit's plus noise of standard
deviation ``sqrt(1 - rho²)``, so :data:`MARGIN` sigma above it is not reached by chance; the
culprit's own passes once its evidence is ``MARGIN / (1 - rho²)``, a few periods into a drift.

Replacing a suspect sensor's reading by its leave-one-out prediction makes any least-squares
fit of all readings equal the fit without it (the prediction is on the fitted plane), which is
how the engine takes it out of the fields without rebuilding ``W``.

**Faults** (:class:`FaultCheck`, one per channel):

* *drift* (and offsets): a two-sided CUSUM of ``z`` over health periods,
  ``S = max(0, S + |z| - k)`` per side, suspect above ``h`` (``threshold``), clear when both sides
  are back to 0 (capped at ``2 h``, so recovery takes at most ``2 h / k`` quiet periods);
* *stuck*: the robust spread of its last :data:`RAW_WINDOW` raw readings' successive
  differences is below a tenth of the noise it should show (clear above half, for
  :data:`HOLD_PERIODS` periods in a row): a real sensor never repeats itself exactly;
* *noisy*: the robust spread of the successive differences of its last :data:`Z_WINDOW`
  residuals ``z`` is above 3 (three times the noise it should show; clear below 2, as long).
  Residuals, not the readings' own scatter: the model explains how fast the signal moves, so a
  quickly changing load is not noise; and differences, robustly, so that one step (an offset,
  a neighbour's fault) is not either;
* *dead*: no value for ``stale_after`` seconds (clear on the next value).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["EVIDENCE_WINDOW", "HOLD_PERIODS", "MARGIN", "OUTLIER", "RAW_WINDOW", "Z_WINDOW", "FaultCheck",
           "LeaveOneOut", "LooResult"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: A standardised residual this large takes its sensor out of the others' fit (see above).
OUTLIER = 5.0
#: Health periods of residuals the evidence of a fault sums (:attr:`FaultCheck.evidence`).
EVIDENCE_WINDOW = 10
#: Sigma by which a sensor's evidence must exceed what another's fault explains (see above).
MARGIN = 3.0
#: Raw readings the stuck check looks at (per channel).
RAW_WINDOW = 20
#: Health periods the noisy check looks at.
Z_WINDOW = 20
_STUCK_SET, _STUCK_CLEAR = 0.1, 0.5     # robust noise / model noise
_NOISY_SET, _NOISY_CLEAR = 3.0, 2.0     # robust spread of z
#: periods a stuck or noisy sensor must look healthy in a row before it is cleared
HOLD_PERIODS = 10
_MAD_TO_SIGMA = 1.4826 / math.sqrt(2.0)  # successive differences have sqrt(2) times the noise


@dataclass(frozen=True, eq=False)
class LooResult:
    """Leave-one-out residuals of one set of readings.

    Attributes:
        z: (m,) standardised residual of each sensor (NaN: not judged).
        predicted: (m,) what the others say each sensor should read (NaN: not judged).
        inputs: (k,) the inputs fitted to the active sensors.
        inputs_cov: (k, k) their covariance from the sensors' noise.
    """

    z: FloatArray
    predicted: FloatArray
    inputs: FloatArray
    inputs_cov: FloatArray


class LeaveOneOut:
    """Closed-form leave-one-out residuals of the linear model ``y = A a + noise``.

    Args:
        response: (m, k) the readings each input gives per unit (a model's ``response``).
        noise: (m,) standard deviation of one reading of each sensor.

    Examples:
        >>> loo = LeaveOneOut(np.ones((3, 1)), np.full(3, 0.1))
        >>> r = loo.residuals(np.array([1.0, 1.0, 1.3]), np.ones(3), np.ones(3, dtype=bool))
        >>> round(float(r.z[2]), 2)
        2.45
    """

    def __init__(self, response: npt.ArrayLike, noise: npt.ArrayLike) -> None:
        self.A = np.asarray(response, dtype=np.float64)
        self.noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), self.A.shape[:1]).copy()
        self._cache: dict[bytes, tuple[FloatArray, FloatArray, FloatArray]] = {}

    def residuals(self, y: FloatArray, counts: FloatArray, active: BoolArray, *,
                  outlier: float | None = None) -> LooResult:
        """Residuals of each sensor against the model fitted without it.

        Args:
            y: (m,) readings (means of ``counts`` readings each); entries with ``counts`` 0 are
                not looked at.
            counts: (m,) how many raw readings each entry averages (0: none this time).
            active: (m,) the sensors the fit may use (not suspect).
            outlier: when given, the active sensor with the largest ``|z|`` above it leaves the
                fit of the others, one at a time while the fit keeps a spare sensor: a sensor
                far off (a fault not yet judged) must not make its neighbours look wrong.

        Returns:
            The residuals; all NaN when the active sensors cannot fix the inputs.
        """
        result = self._residuals(y, counts, active)
        if outlier is None:
            return result
        use = active & (counts > 0)
        k = self.A.shape[1]
        while use.sum() > k + 1:
            z = np.where(use, np.abs(result.z), 0.0)
            worst = int(np.nanargmax(np.nan_to_num(z, nan=0.0)))
            if not z[worst] > outlier:
                break
            use = use.copy()
            use[worst] = False
            result = self._residuals(y, counts, use)
        return result

    def correlation(self) -> FloatArray:
        """(m, m) correlation of the sensors' leave-one-out residuals, every sensor in the fit
        (one reading each; the diagonal is 1): a fault on sensor ``j`` moves ``z_i`` by
        ``rho_ij`` times what it moves ``z_j``. 0 for a sensor the others cannot check."""
        m = self.A.shape[0]
        root_w = 1.0 / self.noise
        _, Ginv, _ = self._factor(root_w**2)
        B = self.A * root_w[:, None]
        C = np.eye(m) - B @ Ginv @ B.T   # the projection onto the residuals, whitened
        d = np.sqrt(np.clip(np.diag(C), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = C / np.outer(d, d)
        rho[~np.isfinite(rho) | (np.outer(d, d) < 1e-6)] = 0.0
        np.fill_diagonal(rho, 1.0)
        out: FloatArray = rho
        return out

    def _residuals(self, y: FloatArray, counts: FloatArray, active: BoolArray) -> LooResult:
        m, k = self.A.shape
        have = counts > 0
        use = have & active
        nan = np.full(m, np.nan)
        if use.sum() < k:
            return LooResult(nan, nan.copy(), np.full(k, np.nan), np.full((k, k), np.nan))
        var = np.where(have, self.noise**2 / np.maximum(counts, 1.0), np.inf)   # of each mean
        w = np.where(use, 1.0 / var, 0.0)
        Aw, Ginv, quad = self._factor(w)
        yy = np.where(have, y, 0.0)
        a = Ginv @ (Aw.T @ yy)
        fitted = self.A @ a
        lev = w * quad
        resid = yy - fitted
        with np.errstate(divide="ignore", invalid="ignore"):
            free = 1.0 - lev
            judged = use & (free > 1e-6)
            r = np.where(use, resid / free, resid)
            r_var = np.where(use, var / free, var + quad)
            z = np.where(judged | (have & ~use), r / np.sqrt(r_var), np.nan)
        predicted = np.where(np.isfinite(z), yy - r, np.nan)
        return LooResult(z, predicted, a, Ginv)

    def _factor(self, w: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(W A, G⁻¹, A_i G⁻¹ A_iᵀ) for weights ``w``; the same weights come back on every
        reading (the same sensors, one reading each), so the last few are kept."""
        key = w.tobytes()
        hit = self._cache.get(key)
        if hit is None:
            k = self.A.shape[1]
            Aw = self.A * w[:, None]
            G = self.A.T @ Aw
            G += 1e-12 * max(float(np.trace(G)), 1e-300) / k * np.eye(k)
            Ginv: FloatArray = np.asarray(np.linalg.inv(G), dtype=np.float64)
            quad = np.einsum("ij,jk,ik->i", self.A, Ginv, self.A)
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            hit = self._cache[key] = (Aw, Ginv, quad)
        return hit


class FaultCheck:
    """The fault checks of one channel, with hysteresis (see the module docstring).

    Args:
        noise: standard deviation of one reading (the sensor's unit), or None when unknown
            (then only *dead* is checked).
        threshold: CUSUM decision level ``h`` (sigma).
        allowance: CUSUM allowance ``k`` (sigma).
        stale_after: seconds without a value before the sensor is dead.

    Attributes:
        reason: why the sensor is suspect now (``"drift"``, ``"stuck"``, ``"noisy"``, ``"dead"``),
            or None.
        cusum: (high side, low side) of the drift CUSUM.
    """

    def __init__(self, noise: float | None, threshold: float, allowance: float,
                 stale_after: float) -> None:
        self.noise, self.threshold, self.allowance = noise, threshold, allowance
        self.stale_after = stale_after
        self.raw: deque[float] = deque(maxlen=RAW_WINDOW)
        self.zs: deque[float] = deque(maxlen=Z_WINDOW)
        self.recent: deque[float] = deque(maxlen=EVIDENCE_WINDOW)
        self.cusum = (0.0, 0.0)
        self.last_seen: float | None = None
        self.flags: dict[str, bool] = {"dead": False, "stuck": False, "noisy": False, "drift": False}
        self.spread = math.nan    # robust scatter of the raw readings / noise (stuck check)
        self.scatter = math.nan   # robust spread of the recent residuals z (noisy check)
        self.quiet = {"stuck": 0, "noisy": 0}

    @property
    def reason(self) -> str | None:
        """The first fault that holds (dead, stuck, noisy, drift), or None."""
        return next((name for name, on in self.flags.items() if on), None)

    @property
    def evidence(self) -> float:
        """``|sum z| / sqrt(n)`` of the last :data:`EVIDENCE_WINDOW` residuals :meth:`note`
        took (0 before any): N(0, 1) for a healthy sensor."""
        n = len(self.recent)
        return abs(math.fsum(self.recent)) / math.sqrt(n) if n else 0.0

    def note(self, z: float) -> None:
        """Note the period's residual fitted with every trusted sensor (the evidence)."""
        if math.isfinite(z):
            self.recent.append(z)

    def reading(self, value: float, time: float) -> None:
        """Note one raw reading."""
        self.raw.append(value)
        self.last_seen = time if self.last_seen is None else max(self.last_seen, time)
        self.flags["dead"] = False

    def period(self, z: float, now: float, *, own: bool = True) -> None:
        """Close a health period: the CUSUM takes ``z`` (NaN: no news), then every check runs.

        Args:
            z: the standardised leave-one-out residual of the period.
            now: the engine's clock (source time, s).
            own: whether the recent evidence is this sensor's own, not another's fault seen
                through the fit (see the module docstring); a drift verdict needs it.
        """
        if math.isfinite(z):
            self.zs.append(z)
            hi, lo = self.cusum
            cap = 2.0 * self.threshold
            hi = min(max(0.0, hi + z - self.allowance), cap)
            lo = min(max(0.0, lo - z - self.allowance), cap)
            self.cusum = (hi, lo)
        hi, lo = self.cusum
        if max(hi, lo) > self.threshold and own:
            self.flags["drift"] = True
        elif hi == 0.0 and lo == 0.0:
            self.flags["drift"] = False
        self.flags["dead"] = self.last_seen is not None and now - self.last_seen > self.stale_after
        if self.noise and len(self.raw) == RAW_WINDOW:
            d = np.diff(np.fromiter(self.raw, dtype=np.float64, count=RAW_WINDOW))
            self.spread = float(np.median(np.abs(d - np.median(d)))) * _MAD_TO_SIGMA / self.noise
            self._hold("stuck", self.spread < (_STUCK_CLEAR if self.flags["stuck"] else _STUCK_SET))
        if len(self.zs) == Z_WINDOW:
            d = np.diff(np.fromiter(self.zs, dtype=np.float64, count=Z_WINDOW))
            self.scatter = float(np.median(np.abs(d - np.median(d)))) * _MAD_TO_SIGMA
            self._hold("noisy", self.scatter > (_NOISY_CLEAR if self.flags["noisy"] else _NOISY_SET))

    def _hold(self, name: str, holds: bool) -> None:
        """Set ``name`` when ``holds``; clear it after :data:`HOLD_PERIODS` periods without."""
        if holds:
            self.flags[name], self.quiet[name] = True, 0
        elif self.flags[name]:
            self.quiet[name] += 1
            if self.quiet[name] >= HOLD_PERIODS:
                self.flags[name] = False

    def explain(self, z: float) -> str:
        """One line saying why the sensor is suspect (for the alarm's message)."""
        reason = self.reason
        if reason == "dead":
            return f"no value for more than {self.stale_after:g} s"
        if reason == "stuck":
            return (f"stuck: its last {RAW_WINDOW} readings vary {self.spread:.2g} times the "
                    "noise it should show")
        if reason == "noisy":
            return (f"noisy: it scatters {self.scatter:.2g} times as much as the model and its "
                    "noise allow")
        if reason == "drift":
            side = "above" if self.cusum[0] >= self.cusum[1] else "below"
            now = f" (now {z:+.1f} sigma)" if math.isfinite(z) else ""
            return f"drifting {side} what the other sensors and the model say{now}"
        return "healthy"
