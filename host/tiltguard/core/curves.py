"""Stride-normalised mean curves of the pelvic angles, early vs late in the run (``CURVES_COLUMNS``).

Every stride (left IC to next left IC) is resampled at 0, 1, ..., 100 % of its duration by one
``np.interp`` call over all strides at once; the curves are the means over the strides of the first and the
last quarter of the run's strides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiltguard.core.events import Grid, StepEvents, uniform_grid
from tiltguard.core.kinematics import Kinematics, shape_missing
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
    t0, t1 = ev.t_ic_s[si], ev.t_ic_s[si + 2]
    v = _curve_values(g, t0, t1)                                       # (3, 2k, 101)
    v[:, shape_missing(kin, t0, t1)] = np.nan
    # means over the strides straight from the angle-major values (no (strides, 101, 3) copy)
    return _frame(_nanmean(v[:, :k], axis=1).T, _nanmean(v[:, k:], axis=1).T)


def stride_curve_rows(g: Grid, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """(n, 101, 3) tilt/obliquity/rotation (deg) of strides ``[t0, t1)`` at 0..100 % of their duration."""
    if len(t0) == 0:
        return np.zeros((0, 101, 3))
    return _curve_values(g, t0, t1).transpose(1, 2, 0).copy()


def _curve_values(g: Grid, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """(3, n, 101) tilt/obliquity/rotation (deg) of strides ``[t0, t1)`` at 0..100 % of their duration."""
    tq = (t0[:, None] + (t1 - t0)[:, None] * (PCT / 100.0)[None, :]).ravel()    # (n * 101,)
    fi = (tq - g.t0) / g.dt
    i = np.minimum(np.maximum(np.floor(fi).astype(np.intp), 0), g.n - 2)    # (= np.clip, no wrapper)
    w = np.minimum(np.maximum(fi - i, 0.0), 1.0)
    ang = g.angles[:, :3].T          # (3, n): contiguous rows when the grid is channel-major
    # both neighbours in one gather (take: 5x faster than ang[:, i]), in float64 before the arithmetic (a
    # float32 grid would otherwise be cast inside every operation)
    a = np.take(ang, np.stack((i, i + 1)), axis=1).astype(np.float64, copy=False)     # (3, 2, n * 101)
    out = np.multiply(a[:, 0], 1 - w)
    out += np.multiply(a[:, 1], w, out=a[:, 1])
    return out.reshape(3, len(t0), 101)


def curves_frame(early_rows: np.ndarray, late_rows: np.ndarray) -> pd.DataFrame:
    """The ``CURVES_COLUMNS`` table from per-stride curve rows (see :func:`stride_curve_rows`)."""
    return _frame(_nanmean(early_rows), _nanmean(late_rows))


def _frame(early: np.ndarray, late: np.ndarray) -> pd.DataFrame:
    """The ``CURVES_COLUMNS`` table from the (101, 3) early and late mean curves."""
    # column order: tilt early/late, obliquity early/late, rotation early/late
    body = np.stack([early, late], axis=2).reshape(101, 6)
    return pd.DataFrame(np.column_stack([PCT, body]), columns=CURVES_COLUMNS)


def _nanmean(c: np.ndarray, axis: int = 0) -> np.ndarray:
    s = c.sum(axis=axis)
    if np.isfinite(s).all():
        # no NaN (nor inf) anywhere: the same sums as below with every count full, without the masks
        return s / c.shape[axis]
    ok = np.isfinite(c)
    cnt = ok.sum(axis=axis)
    s = np.where(ok, c, 0.0).sum(axis=axis)
    return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
