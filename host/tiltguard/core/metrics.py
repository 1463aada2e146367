"""Per-step and per-stride metrics (columns of ``docs/formats.md``), vectorised over steps.

Steps run from one IC to the next IC of the same chunk (see :mod:`tiltguard.core.events`); the last step of a
chunk has no next IC, so its step time and flight time are NaN. Strides start at a left IC and end at the next
left IC (L, R, L in one chunk). Windows are taken on the uniform grid of :func:`events.uniform_grid` and reduced
with ``np.*.reduceat`` / ``np.bincount``; no per-sample or per-step Python loop.
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import pandas as pd

from tiltguard.core.events import Grid, StepEvents, _interp_at, uniform_grid
from tiltguard.core.kinematics import Kinematics
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS

G = 9.80665
# built once: on a 10 s window, building the column Index costs more than the rest of the table
_STRIDES_INDEX = pd.Index(STRIDES_COLUMNS)


def _fidx(g: Grid, t_s: np.ndarray) -> np.ndarray:
    """Fractional grid index of times t_s."""
    return (np.asarray(t_s, dtype=float) - g.t0) / g.dt


def _spans(g: Grid, t0: np.ndarray, t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer grid windows [i0, i1) holding the samples with t0 <= t < t1 (at least one sample)."""
    # (minimum/maximum: np.clip's wrapper costs more than the work on a few windows)
    i0 = np.minimum(np.maximum(np.ceil(_fidx(g, t0) - 1e-9).astype(int), 0), g.n - 1)
    i1 = np.minimum(np.maximum(np.ceil(_fidx(g, t1) - 1e-9).astype(int), i0 + 1), g.n)
    return i0, i1


def _all_observed(g: Grid, i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
    """True for windows [i0, i1) whose samples were all observed and ok (no lost packets)."""
    runs = getattr(g, "_bad_runs", None)
    if runs is None:
        good = g.ok & g.obs
        # the stretches [start, stop) that are not good (few: stops, gaps), from the changes of ``good``
        edges = np.flatnonzero(good[1:] != good[:-1]) + 1
        bounds = np.concatenate(([0], edges, [len(good)]))
        first_bad = 0 if len(good) and not good[0] else 1          # runs alternate
        runs = (bounds[first_bad:-1:2], bounds[first_bad + 1::2])
        g._bad_runs = runs       # the grid's arrays are not changed after it is built
    start, stop = runs
    if len(start) == 0:          # the usual case in a clean session: nothing lost
        return np.ones(len(i0), dtype=bool)
    # the first bad stretch ending after i0 must start at or after i1
    k = np.searchsorted(stop, i0, side="right")
    hit = k < len(start)
    hit[hit] = start[k[hit]] < np.asarray(i1)[hit]
    return ~hit


def _reduce(x: np.ndarray, i0: np.ndarray, i1: np.ndarray, ufunc) -> np.ndarray:
    """ufunc.reduceat of x (along axis 0) over windows [i0_k, i1_k) (i0_k < i1_k), as float64.

    Pass float64 ``x`` for sums; minima and maxima are exact in float32 and are upcast afterwards. The
    windows may overlap or come in any order: reduceat reduces each pair (i0_k, i1_k) on its own.
    """
    if len(i0) == 0:
        return np.zeros(0)
    xp, pairs = _reduceat_args(x, i0, i1)
    return ufunc.reduceat(xp, pairs)[::2].astype(np.float64, copy=False)


def _reduceat_args(x: np.ndarray, i0: np.ndarray, i1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (padded by one element only when a window ends at the last sample: reduceat needs every index
    < len) and the interleaved (start, end) indices whose even reduceat outputs are the windows'."""
    xp = x if int(np.max(i1)) < len(x) else np.concatenate((x, x[-1:]))
    return xp, np.column_stack([i0, i1]).ravel()


def vertical_oscillation_cm(g: Grid, i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
    """Peak-to-peak vertical displacement per step window (cm), drift-free.

    The vertical specific force minus its step mean (the step mean is 1 g at steady running; using the
    measured mean also removes scale and orientation errors) is integrated to velocity, the velocity's step
    mean removed (no net rise over a step), and integrated again.
    """
    lens = np.maximum(np.asarray(i1) - np.asarray(i0), 0)
    if len(lens) == 0 or lens.sum() == 0:
        return np.zeros(len(i0))
    nz = lens > 0
    if not nz.all():     # empty windows give 0, the others are computed as below
        out = np.zeros(len(i0))
        out[nz] = vertical_oscillation_cm(g, np.asarray(i0)[nz], np.asarray(i1)[nz])
        return out
    i0, i1 = np.asarray(i0), np.asarray(i1)
    starts = np.cumsum(lens) - lens
    gaps = i0[1:] - i1[:-1]
    if (gaps >= 0).all():
        # time-ordered disjoint windows (the step table's: end to end within a chunk): one slice of the
        # column, less the few gaps between chunks by a boolean mask (far cheaper than an index per sample)
        seg = g.acc[i0[0]:i1[-1], 2]
        if gaps.any():
            counts = np.empty(2 * len(lens) - 1, dtype=np.intp)
            counts[0::2], counts[1::2] = lens, gaps
            seg = seg[np.repeat(np.arange(len(counts)) % 2 == 0, counts)]
        a = seg.astype(np.float64)          # a copy: worked on in place below
    else:
        idx = np.repeat(i0 - starts, lens)
        idx += np.arange(len(idx))
        a = g.acc[:, 2].take(idx).astype(np.float64, copy=False)
        del idx
    # (a in g: scaled to m/s^2 and by dt^2 at the end)
    # a constant per step added to v or z changes neither the v mean removal nor z's peak-to-peak, so
    # plain running sums over all steps do (they return to ~0 at each step's end: no growth)
    a -= np.repeat(np.add.reduceat(a, starts) / lens, lens)
    v = np.cumsum(a, out=a)
    v -= np.repeat(np.add.reduceat(v, starts) / lens, lens)
    z = np.cumsum(v, out=v)
    vo = np.maximum.reduceat(z, starts) - np.minimum.reduceat(z, starts)
    return (100.0 * G * g.dt * g.dt) * vo


def step_table(kin: Kinematics, ev: StepEvents, grid: Grid | None = None) -> pd.DataFrame:
    """One row per running step (``STEPS_COLUMNS``).

    Parameters
    ----------
    kin : Kinematics
    ev : StepEvents from :func:`events.detect_steps`.

    Returns
    -------
    DataFrame: times s, ``gct_ms``/``flight_ms`` ms, ``step_time_s`` s (NaN for the last step of a chunk),
    ``vertical_oscillation_cm`` cm, ``braking_peak_g`` g (>= 0), ``side_confidence`` 0..1.
    """
    m = len(ev)
    if m == 0:
        return pd.DataFrame(np.zeros((0, len(STEPS_COLUMNS))), columns=STEPS_COLUMNS).astype({"side": object})
    g = grid or uniform_grid(kin)
    nxt = ev.next_ic_s
    step_s = nxt - ev.t_ic_s
    # VO window: the whole step; the last step of a chunk borrows the median step time.
    fill = np.nanmedian(step_s) if np.isfinite(step_s).any() else 0.35
    end = np.where(np.isfinite(nxt), nxt, ev.t_ic_s + fill)
    i0, i1 = _spans(g, ev.t_ic_s, end)
    i1 = np.minimum(i1, np.append(i0[1:], g.n))          # keep windows disjoint
    vo = vertical_oscillation_cm(g, i0, np.maximum(i1, i0 + 1))
    seen = _all_observed(g, i0, i1)
    vo = np.where(seen, vo, np.nan)        # never integrate across lost samples
    # raw samples: a low-pass would blunt the 30-40 ms braking impact (the simulator's truth says raw is best)
    fwd = np.where(g.ok, g.acc[:, 0], 0.0) if not g.ok.all() else g.acc[:, 0]
    has_to = np.isfinite(ev.t_to_s)
    s0, s1 = _spans(g, ev.t_ic_s, np.where(has_to, ev.t_to_s, ev.t_ic_s))
    brake = np.clip(-_reduce(fwd, s0, s1, np.minimum), 0.0, None)
    brake = np.where(has_to & _all_observed(g, s0, s1), brake, np.nan)
    return pd.DataFrame({
        "t_ic_s": ev.t_ic_s,
        "side": ev.side.astype(object),
        "t_to_s": ev.t_to_s,
        "gct_ms": 1000.0 * (ev.t_to_s - ev.t_ic_s),
        "flight_ms": 1000.0 * (nxt - ev.t_to_s),
        "step_time_s": step_s,
        "vertical_oscillation_cm": vo,
        "braking_peak_g": brake,
        "side_confidence": ev.side_confidence,
    }, columns=STEPS_COLUMNS)      # columns=: the order without a second copy


def stride_index(ev: StepEvents) -> np.ndarray:
    """Index of the left step that starts each stride (L, R, L consecutive in one chunk)."""
    m = len(ev)
    if m < 3:
        return np.zeros(0, dtype=int)
    left, right = ev.side == "L", ev.side == "R"
    ok = left[:-2] & right[1:-1] & left[2:]
    ok &= ev.chunk[:-2] == ev.chunk[2:]
    return np.flatnonzero(ok)


def _asym_pct(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    mean = 0.5 * (left + right)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(mean) > 1e-9, 100.0 * (left - right) / mean, np.nan)


def stride_table(kin: Kinematics, ev: StepEvents, grid: Grid | None = None) -> pd.DataFrame:
    """One row per running stride (``STRIDES_COLUMNS``): left IC to the next left IC.

    Angles in deg over the samples in ``[t_start_s, t_end_s)``; ``cadence_spm`` = 120 / stride time;
    ``gct_*_ms`` the contact times of its left and right step; asymmetries ``100 (L - R) / mean(L, R)`` %.
    Angles unavailable in ``kin`` (NaN, e.g. rotation without a gyro) give NaN columns.
    """
    return pd.DataFrame(stride_rows(kin, ev, grid), columns=_STRIDES_INDEX, copy=False)


def stride_rows(kin: Kinematics, ev: StepEvents, grid: Grid | None = None) -> np.ndarray:
    """:func:`stride_table` as a (strides, ``len(STRIDES_COLUMNS)``) float64 array (a view of a
    column-major block): the live look's way in, without a table per stride."""
    si = stride_index(ev)
    if len(si) == 0:
        return np.zeros((0, len(STRIDES_COLUMNS)))
    g = grid or uniform_grid(kin)
    k = len(si)
    t_ic, t_to = ev.t_ic_s, ev.t_to_s
    t0, t1, ic_r = t_ic[si], t_ic[si + 2], t_ic[si + 1]
    to_l, to_r = t_to[si], t_to[si + 1]
    # the stride windows, then the left and the right stance windows
    end_l, end_r = np.where(np.isfinite(to_l), to_l, t0), np.where(np.isfinite(to_r), to_r, ic_r)
    w0, w1 = _spans(g, np.concatenate((t0, t0, ic_r)), np.concatenate((t1, end_l, end_r)))
    i0, i1 = w0[:k], w1[:k]
    cnt = (i1 - i0).astype(float)
    ang = g.angles          # columns tilt, obliquity, rotation
    # extremes of all three angles over the strides; of the stances only what the pelvic drop needs (the
    # obliquity's max in left stance, min in right stance). Reducing (start, end) pairs also reduces each
    # gap between windows, which for stance windows is most of the stride: a third of the old work.
    # (one padding test and one set of index pairs for all four reductions)
    xp, pairs = _reduceat_args(ang, w0, w1)
    amax = np.maximum.reduceat(xp, pairs[:2 * k])[::2].astype(np.float64, copy=False)
    amin = np.minimum.reduceat(xp, pairs[:2 * k])[::2].astype(np.float64, copy=False)
    st_max = np.maximum.reduceat(xp[:, 1], pairs[2 * k:4 * k])[::2].astype(np.float64, copy=False)
    st_min = np.minimum.reduceat(xp[:, 1], pairs[4 * k:])[::2].astype(np.float64, copy=False)
    tmin, tmax = amin[:, 0], amax[:, 0]
    # tilt and obliquity at the left IC (the stride start), obliquity at the right IC
    at_ic = _interp_at(ang[:, :2], _fidx(g, np.concatenate((t0, ic_r))))
    # pelvic drop: within each stance, how far the swing side falls below its level at IC. Obliquity is
    # left-side-up positive, so in left stance the (right) swing side falls as obliquity rises, and in right
    # stance as it falls (the simulator's truth uses the same reading).
    drop_l = np.maximum(st_max - at_ic[:k, 1], 0.0)
    drop_r = np.maximum(at_ic[k:, 1] - st_min, 0.0)
    drop_l = np.where(np.isfinite(to_l) & ev.observed[si], drop_l, np.nan)
    drop_r = np.where(np.isfinite(to_r) & ev.observed[si + 1], drop_r, np.nan)
    gct = 1000.0 * (t_to - t_ic)
    gct_l, gct_r = gct[si], gct[si + 1]
    asym = _asym_pct(np.stack((gct_l, drop_l)), np.stack((gct_r, drop_r)))
    cols = {
        "t_start_s": t0,
        "t_end_s": t1,
        "tilt_mean_deg": _reduce(ang[:, 0].astype(np.float64, copy=False), i0, i1, np.add) / cnt,
        "tilt_min_deg": tmin,
        "tilt_max_deg": tmax,
        "tilt_rom_deg": tmax - tmin,
        "tilt_ic_deg": at_ic[:k, 0],
        "obliquity_rom_deg": amax[:, 1] - amin[:, 1],
        "rotation_rom_deg": amax[:, 2] - amin[:, 2],
        "pelvic_drop_l_deg": drop_l,
        "pelvic_drop_r_deg": drop_r,
        "cadence_spm": 120.0 / (t1 - t0),
        "gct_l_ms": gct_l,
        "gct_r_ms": gct_r,
        "gct_asymmetry_pct": asym[0],
        "obliquity_asymmetry_pct": asym[1],
    }
    # one (columns, rows) float64 block, handed to pandas as it is: a dict of columns costs ~20x more
    return np.stack(itemgetter(*STRIDES_COLUMNS)(cols)).T
