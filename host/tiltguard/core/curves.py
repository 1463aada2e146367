"""Stride-normalised mean curves of the pelvic angles, early vs late in the run (``CURVES_COLUMNS``).

Every stride (left IC to next left IC) is resampled at 0, 1, ..., 100 % of its duration by one
``np.interp`` call over all strides at once; the curves are the means over the strides of the first and the
last quarter of the run's strides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiltguard.core.events import Grid, StepEvents, uniform_grid
from tiltguard.core.kinematics import Kinematics
from tiltguard.core.metrics import stride_index
from tiltguard.formats.session import CURVES_COLUMNS

PCT = np.arange(101, dtype=float)
PART = 0.25      # early = first quarter of the strides, late = last quarter


def stride_curves(kin: Kinematics, ev: StepEvents, part: float = PART, grid: Grid | None = None) -> pd.DataFrame:
    """Mean tilt/obliquity/rotation (deg) over 0..100 % of the stride, early and late in the run.

    Parameters
    ----------
    kin, ev : the kinematics and its step events.
    part : fraction of the strides forming each of the early and late groups (0 < part <= 0.5).
    grid : the uniform grid of ``kin`` if the caller already has it.

    Returns
    -------
    DataFrame with ``CURVES_COLUMNS`` and 101 rows (``pct`` 0..100); NaN where there are no strides or the
    angle is unavailable.
    """
    si = stride_index(ev)
    n = len(si)
    if n == 0:
        return pd.DataFrame(np.column_stack([PCT, np.full((101, 6), np.nan)]), columns=CURVES_COLUMNS)
    g = grid or uniform_grid(kin)
    k = max(1, int(round(part * n)))
    si = np.concatenate((si[:k], si[n - k:]))     # only the early and late strides are needed
    curves = stride_curve_rows(g, ev.t_ic_s[si], ev.t_ic_s[si + 2])
    return curves_frame(curves[:k], curves[k:])


def stride_curve_rows(g: Grid, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """(n, 101, 3) tilt/obliquity/rotation (deg) of strides ``[t0, t1)`` at 0..100 % of their duration."""
    if len(t0) == 0:
        return np.zeros((0, 101, 3))
    tq = (t0[:, None] + (t1 - t0)[:, None] * (PCT / 100.0)[None, :]).ravel()    # (n * 101,)
    fi = (tq - g.t0) / g.dt
    i = np.clip(np.floor(fi).astype(int), 0, g.n - 2)
    w = np.clip(fi - i, 0.0, 1.0)
    ang = g.angles[:, :3].T          # (3, n): contiguous rows when the grid is channel-major
    a0, a1 = np.take(ang, i, axis=1), np.take(ang, i + 1, axis=1)    # (take: 5x faster than ang[:, i])
    out = np.multiply(a0, 1 - w)      # float64 (w is), also from a float32 grid
    out += np.multiply(a1, w, out=a1) if a1.dtype == np.float64 else a1 * w
    return out.T.reshape(len(t0), 101, 3)


def curves_frame(early_rows: np.ndarray, late_rows: np.ndarray) -> pd.DataFrame:
    """The ``CURVES_COLUMNS`` table from per-stride curve rows (see :func:`stride_curve_rows`)."""
    early, late = _nanmean(early_rows), _nanmean(late_rows)              # (101, 3) each
    # column order: tilt early/late, obliquity early/late, rotation early/late
    body = np.stack([early, late], axis=2).reshape(101, 6)
    return pd.DataFrame(np.column_stack([PCT, body]), columns=CURVES_COLUMNS)


def _nanmean(c: np.ndarray) -> np.ndarray:
    ok = np.isfinite(c)
    cnt = ok.sum(axis=0)
    s = np.where(ok, c, 0.0).sum(axis=0)
    return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
