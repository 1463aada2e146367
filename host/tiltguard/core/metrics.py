"""Per-step and per-stride metrics (columns of ``docs/formats.md``), vectorised over steps.

Steps run from one IC to the next IC of the same chunk (see :mod:`tiltguard.core.events`); the last step of a
chunk has no next IC, so its step time and flight time are NaN. Strides start at a left IC and end at the next
left IC (L, R, L in one chunk). Windows are taken on the uniform grid of :func:`events.uniform_grid` and reduced
with ``np.*.reduceat`` / ``np.bincount``; no per-sample or per-step Python loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiltguard.core.events import Grid, StepEvents, _interp_at, uniform_grid
from tiltguard.core.kinematics import Kinematics
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS

G = 9.80665


def _fidx(g: Grid, t_s: np.ndarray) -> np.ndarray:
    """Fractional grid index of times t_s."""
    return (np.asarray(t_s, dtype=float) - g.t0) / g.dt


def _spans(g: Grid, t0: np.ndarray, t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer grid windows [i0, i1) holding the samples with t0 <= t < t1 (at least one sample)."""
    i0 = np.clip(np.ceil(_fidx(g, t0) - 1e-9).astype(int), 0, g.n - 1)
    i1 = np.clip(np.ceil(_fidx(g, t1) - 1e-9).astype(int), i0 + 1, g.n)
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
    """ufunc.reduceat of x over disjoint ascending windows [i0_k, i1_k), as float64.

    Pass float64 ``x`` for sums; minima and maxima are exact in float32 and are upcast afterwards.
    """
    if len(i0) == 0:
        return np.zeros(0)
    # reduceat needs every index < len: one extra element only when a window ends at the last sample
    xp = x if int(np.max(i1)) < len(x) else np.append(x, x[-1:])
    return ufunc.reduceat(xp, np.column_stack([i0, i1]).ravel())[::2].astype(np.float64, copy=False)


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
    starts = np.cumsum(lens) - lens
    idx = np.repeat(np.asarray(i0) - starts, lens)
    idx += np.arange(len(idx))
    a = g.acc[:, 2].take(idx).astype(np.float64, copy=False)   # g; scaled to m/s^2 and by dt^2 at the end
    del idx
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
    i = np.arange(m - 2)
    ok = (ev.side[i] == "L") & (ev.side[i + 1] == "R") & (ev.side[i + 2] == "L")
    ok &= (ev.chunk[i] == ev.chunk[i + 2])
    return i[ok]


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
    si = stride_index(ev)
    if len(si) == 0:
        return pd.DataFrame(np.zeros((0, len(STRIDES_COLUMNS))), columns=STRIDES_COLUMNS)
    g = grid or uniform_grid(kin)
    t0, t1 = ev.t_ic_s[si], ev.t_ic_s[si + 2]
    i0, i1 = _spans(g, t0, t1)
    cnt = (i1 - i0).astype(float)
    tilt, obl, rot = g.angles[:, 0], g.angles[:, 1], g.angles[:, 2]
    tmin, tmax = _reduce(tilt, i0, i1, np.minimum), _reduce(tilt, i0, i1, np.maximum)
    # pelvic drop: within each stance, how far the swing side falls below its level at IC. Obliquity is
    # left-side-up positive, so in left stance the (right) swing side falls as obliquity rises, and in right
    # stance as it falls (the simulator's truth uses the same reading).
    to_l, to_r = ev.t_to_s[si], ev.t_to_s[si + 1]
    l0, l1 = _spans(g, ev.t_ic_s[si], np.where(np.isfinite(to_l), to_l, ev.t_ic_s[si]))
    r0, r1 = _spans(g, ev.t_ic_s[si + 1], np.where(np.isfinite(to_r), to_r, ev.t_ic_s[si + 1]))
    obl_ic_l = _interp_at(obl, _fidx(g, ev.t_ic_s[si]))
    obl_ic_r = _interp_at(obl, _fidx(g, ev.t_ic_s[si + 1]))
    drop_l = np.clip(_reduce(obl, l0, l1, np.maximum) - obl_ic_l, 0.0, None)
    drop_r = np.clip(obl_ic_r - _reduce(obl, r0, r1, np.minimum), 0.0, None)
    drop_l = np.where(np.isfinite(to_l) & ev.observed[si], drop_l, np.nan)
    drop_r = np.where(np.isfinite(to_r) & ev.observed[si + 1], drop_r, np.nan)
    gct = 1000.0 * (ev.t_to_s - ev.t_ic_s)
    return pd.DataFrame({
        "t_start_s": t0,
        "t_end_s": t1,
        "tilt_mean_deg": _reduce(tilt.astype(np.float64, copy=False), i0, i1, np.add) / cnt,
        "tilt_min_deg": tmin,
        "tilt_max_deg": tmax,
        "tilt_rom_deg": tmax - tmin,
        "tilt_ic_deg": _interp_at(tilt, _fidx(g, t0)),
        "obliquity_rom_deg": _reduce(obl, i0, i1, np.maximum) - _reduce(obl, i0, i1, np.minimum),
        "rotation_rom_deg": _reduce(rot, i0, i1, np.maximum) - _reduce(rot, i0, i1, np.minimum),
        "pelvic_drop_l_deg": drop_l,
        "pelvic_drop_r_deg": drop_r,
        "cadence_spm": 120.0 / (t1 - t0),
        "gct_l_ms": gct[si],
        "gct_r_ms": gct[si + 1],
        "gct_asymmetry_pct": _asym_pct(gct[si], gct[si + 1]),
        "obliquity_asymmetry_pct": _asym_pct(drop_l, drop_r),
    }, columns=STRIDES_COLUMNS)
