"""Take speed and grade (from a watch, ``tiltguard.coach.fit.join_watch``) out of stride tilt before drift detection.

Running faster or uphill tips the pelvis forward for as long as the hill or the pace lasts; fatigue drift
grows slowly over many minutes. The per-runner, per-session effect of speed (deg per m/s) and grade (deg
per %) is fitted on high-passed series (each minus its centred local linear trend over ``window_s``), where the
slow drift is gone and the hills and pace changes remain. The drift detector
(``tiltguard.core.drift.detect_drift``) then runs on tilt minus that effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TILT_COLUMNS = ("tilt_mean_deg", "tilt_min_deg", "tilt_max_deg", "tilt_ic_deg")
# Physically plausible ranges; a fit outside them is clamped (a bad watch file must not invent a drift).
MAX_DEG_PER_MPS = 3.0
MAX_DEG_PER_PCT = 0.6


@dataclass
class TerrainFit:
    deg_per_mps: float = 0.0
    deg_per_pct: float = 0.0
    n_strides: int = 0
    used: tuple[str, ...] = ()


def _local_trend(t: np.ndarray, y: np.ndarray, window_s: float) -> np.ndarray:
    """Centred local linear fit over a time window, evaluated at each t (cumulative sums, no loop).

    A line rather than a mean, so a drift ramp is removed right up to the ends of the run.
    """
    tc = t - t.mean()
    c = [np.concatenate([[0.0], np.cumsum(a)]) for a in (np.ones_like(tc), tc, y, tc * tc, tc * y)]
    lo = np.searchsorted(t, t - window_s / 2)
    hi = np.searchsorted(t, t + window_s / 2, side="right")
    n, st, sy, stt, sty = (a[hi] - a[lo] for a in c)
    den = n * stt - st * st
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(den > 1e-9, (n * sty - st * sy) / den, 0.0)
    mean_t, mean_y = st / np.maximum(n, 1), sy / np.maximum(n, 1)
    return mean_y + slope * (tc - mean_t)


def _filled(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros_like(x)
    return np.where(ok, x, np.interp(np.arange(len(x)), np.flatnonzero(ok), x[ok]))


def fit_terrain(strides: pd.DataFrame, window_s: float = 300.0, min_strides: int = 60,
                min_grade_sd_pct: float = 0.5, min_speed_sd_mps: float = 0.1) -> TerrainFit:
    """Fit tilt ~ speed + grade on high-passed per-stride series; covariates that barely vary are left out."""
    have = [c for c in ("speed_mps", "grade_pct") if c in strides and np.isfinite(strides[c].astype(float)).any()]
    if len(strides) < min_strides or not have:
        return TerrainFit()
    st = strides.sort_values("t_start_s")
    t = 0.5 * (st["t_start_s"].to_numpy(float) + st["t_end_s"].to_numpy(float))
    y = st["tilt_mean_deg"].to_numpy(float)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    hp = {}
    for c in have:
        x = _filled(st[c].to_numpy(float)[ok])
        hp[c] = x - _local_trend(t, x, window_s)
    yh = y - _local_trend(t, y, window_s)
    cols = [c for c in have if np.std(hp[c]) >= (min_grade_sd_pct if c == "grade_pct" else min_speed_sd_mps)]
    if not cols:
        return TerrainFit(n_strides=int(len(y)))
    X = np.column_stack([hp[c] for c in cols])
    keep = np.ones(len(yh), bool)
    for _ in range(2):  # one refit without the outlying strides (bad steps, turns)
        coef, *_ = np.linalg.lstsq(X[keep], yh[keep], rcond=None)
        r = yh - X @ coef
        mad = np.median(np.abs(r - np.median(r))) or 1e-9
        keep = np.abs(r) < 4 * 1.4826 * mad
    fit = TerrainFit(n_strides=int(keep.sum()), used=tuple(cols))
    for c, b in zip(cols, coef):
        if c == "speed_mps":
            fit.deg_per_mps = float(np.clip(b, -MAX_DEG_PER_MPS, MAX_DEG_PER_MPS))
        else:
            fit.deg_per_pct = float(np.clip(b, -MAX_DEG_PER_PCT, MAX_DEG_PER_PCT))
    return fit


def terrain_tilt(strides: pd.DataFrame, fit: TerrainFit) -> np.ndarray:
    """Per-stride tilt explained by speed and grade, deg (relative to the session's median speed, flat ground)."""
    eff = np.zeros(len(strides))
    if "speed_mps" in strides and fit.deg_per_mps:
        v = _filled(strides["speed_mps"].to_numpy(float))
        eff += fit.deg_per_mps * (v - np.median(v))
    if "grade_pct" in strides and fit.deg_per_pct:
        eff += fit.deg_per_pct * _filled(strides["grade_pct"].to_numpy(float))
    return eff


def adjust_for_terrain(strides: pd.DataFrame, **kw) -> tuple[pd.DataFrame, TerrainFit]:
    """A copy of the strides with the speed/grade part taken out of the tilt columns (``terrain_tilt_deg``
    holds what was taken out). Without speed/grade columns the strides come back unchanged."""
    fit = fit_terrain(strides, **kw)
    out = strides.copy()
    eff = terrain_tilt(strides, fit)
    out["terrain_tilt_deg"] = eff
    for c in TILT_COLUMNS:
        if c in out:
            out[c] = out[c].astype(float) - eff
    return out, fit


def detect_drift_with_terrain(strides: pd.DataFrame, config=None):
    """core-a's drift detector on terrain-adjusted tilt: (alerts, detector, fit)."""
    from tiltguard.core.drift import detect_drift

    adjusted, fit = adjust_for_terrain(strides)
    alerts, det = detect_drift(adjusted, config)
    return alerts, det, fit
