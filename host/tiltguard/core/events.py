"""Initial contact, toe-off and side of every running step, from a sacral IMU.

The vertical specific force at the sacrum follows the vertical ground reaction force per body mass: near 0 g in
flight, a 2-3 g hump in stance. How each step is found (all times interpolated between samples):

1. One hump per step: peaks of the 8 Hz low-passed signal on a ~50 Hz block-mean copy; the flight centre before
   each hump is the minimum of that smooth signal, and the flight ``floor`` the minimum of the 30 Hz signal near
   it (relative levels keep slow, almost flightless running working).
2. Initial contact (IC): the first rise through ``floor + ic_level_g`` after the flight centre, moved later to
   where the tangent at the steep part of the rise (its crossing of ``floor + ANCHOR_G``) meets that level --
   real sacral signals often show a small pre-contact bump that a plain threshold mistakes for contact.
3. Toe-off (TO): the last fall through ``floor + to_level_g`` before the next flight centre.
4. Lost packets: gaps up to MAX_BRIDGE_S are bridged by interpolation; a TO hidden in a gap is NaN, an IC read off
   interpolated samples is replaced by the midpoint of its neighbours, and whole steps lost in a gap are
   re-inserted from the cadence (``StepEvents.observed`` is False for those).

Thresholds were chosen on the 31 force-plate trials of ``data/alcantara-sacral-running`` (see
benchmarks/core_real.py, which also checks them two-fold); the simulator was not used to tune them.

Left/right: steps alternate while running, so the side is one binary phase per run of consecutive steps
(a "chunk": no gap, no missed step). The phase is decided by summing per-step evidence over the whole chunk:
the obliquity rise and rotation swing over stance (from the gyro-based angles), or, accelerometer-only, the
mediolateral specific force over stance. ``side_confidence`` is the probability that the chunk's phase is right.

All work is vectorised over steps (``np.searchsorted``, ``np.*.reduceat``, ``np.bincount``, equal-width window
gathers); no Python loops over samples or steps.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal
from scipy.special import ndtr

from tiltguard.core.kinematics import Kinematics

IC_LEVEL_G = 0.10        # rise above the flight floor that marks initial contact
TO_LEVEL_G = 0.25        # fall to this far above the floor marks toe-off (the sacrum lags the foot at push-off)
EDGE_LP_HZ = 30.0        # low-pass for edge timing
PEAK_LP_HZ = 8.0         # low-pass for finding one hump per step
PEAK_FS_HZ = 50.0        # rate (about) at which humps are looked for
EDGE_SEARCH_S = 0.25     # IC within this after the flight centre, TO within this before the next one
MIN_STEP_S = 0.20        # shortest step (about 300 steps/min)
MAX_FLOOR_WIN_S = 0.45   # how far from a peak the flight floor is looked for
MIN_GCT_S, MAX_GCT_S = 0.06, 0.50
MAX_INTERP_GAP_S = 0.03  # gaps up to this are interpolated and count as observed
MAX_BRIDGE_S = 0.60      # gaps up to this (lost packets) do not end the run: events in them are imputed
PEAK_MIN_G = 1.15        # a stance hump peaks above this (g, gravity included)
PEAK_PROM_G = 0.35
TANGENT_IC = True
ANCHOR_G = 0.8        # the tangent to the rise is taken where it crosses this level above the floor
SPIKE_G = 9.0            # |specific force| on any axis above this is a knock, not running
SPIKE_PAD_S = 0.010      # samples this close to a knock are replaced too
EDGE_BEFORE_S = 0.05   # a step needs this much valid signal before its IC ...
EDGE_AFTER_S = 0.03    # ... and after its TO

# Side evidence signs (positive score = left step), matching docs/conventions.md: during left stance the right
# side drops (obliquity, left-up positive, rises) and the pelvis turns from left-forward towards right-forward
# (rotation falls).
SIDE_OBLIQUITY_SIGN = +1.0
SIDE_ROTATION_SIGN = -1.0
SIDE_ML_ACC_SIGN = -1.0   # accelerometer-only: mean left-ward specific force during stance (CoM pushed away)


@dataclass
class StepEvents:
    """Events of the running steps, sorted by initial contact (all arrays (M,))."""

    t_ic_s: np.ndarray                 # initial contact, s
    t_to_s: np.ndarray                 # toe-off, s
    side: np.ndarray                   # 'L' / 'R' (stance foot)
    side_confidence: np.ndarray        # 0..1, probability the side is right
    chunk: np.ndarray                  # int: equal for consecutive steps with no gap or missed step between
    peak_g: np.ndarray = field(default_factory=lambda: np.zeros(0))  # stance peak of vertical specific force, g
    side_method: str = "none"          # 'gyro', 'acc_ml' or 'none'
    observed: np.ndarray | None = None  # False where the IC was imputed across lost samples

    def __post_init__(self) -> None:
        if self.observed is None:
            self.observed = np.ones(len(self.t_ic_s), dtype=bool)

    def __len__(self) -> int:
        return len(self.t_ic_s)

    @property
    def next_ic_s(self) -> np.ndarray:
        """Next step's IC when it follows in the same chunk, else NaN (s)."""
        nxt = np.full(len(self), np.nan)
        if len(self) > 1:
            same = self.chunk[1:] == self.chunk[:-1]
            nxt[:-1] = np.where(same, self.t_ic_s[1:], np.nan)
        return nxt

    @classmethod
    def empty(cls) -> "StepEvents":
        z = np.zeros(0)
        return cls(z, z.copy(), np.zeros(0, dtype="<U1"), z.copy(), np.zeros(0, dtype=int), z.copy(),
                   observed=np.zeros(0, dtype=bool))


@dataclass
class Grid:
    """The kinematics on a uniform time grid (gaps interpolated, flagged in ``ok``)."""

    t0: float
    dt: float
    acc: np.ndarray       # (n, 3) level-frame specific force, g (float32 or float64, as the kinematics hold it)
    angles: np.ndarray    # (n, 3) deg (float32 or float64; users needing sums or differences upcast first)
    ok: np.ndarray        # (n,) valid and running; short gaps (<= MAX_BRIDGE_S) are bridged
    region: np.ndarray    # int label of each contiguous ok stretch (0 where not ok), indexed like an (n,) array
    obs: np.ndarray       # (n,) observed data: within MAX_INTERP_GAP_S of real samples on both sides
    data: np.ndarray | None = None     # (n,) valid signal, running or not (events may use it at run edges)
    dregion: np.ndarray | None = None  # labels of contiguous ``data`` stretches

    def __post_init__(self) -> None:
        if self.data is None:
            self.data, self.dregion = self.ok, self.region

    @property
    def n(self) -> int:
        return len(self.ok)

    def time(self, idx: np.ndarray) -> np.ndarray:
        return self.t0 + np.asarray(idx, dtype=float) * self.dt


def uniform_grid(kin: Kinematics) -> Grid:
    """Resample ``kin`` onto its nominal rate (linear across gaps).

    Samples inside gaps up to MAX_BRIDGE_S stay ``ok`` (the run goes on) but are not ``obs`` unless the gap
    is under MAX_INTERP_GAP_S; longer gaps end the stretch. The grid is remembered on ``kin`` for as long as
    its arrays are the same objects (events, metrics and curves all need it).
    """
    # the key holds the arrays themselves (identity, not id(): a freed array's id can be reused); arrays
    # changed in place after the first call are not noticed -- replace them instead
    key = (kin.t_s, kin.acc_level_g, kin.angles_deg, kin.valid, kin.running, kin.fs_hz)
    cached = getattr(kin, "_grid_cache", None)
    if cached is not None:
        k = cached[0]
        if (k[0] is key[0] and k[1] is key[1] and k[2] is key[2] and k[3] is key[3] and k[4] is key[4]
                and k[5] == key[5]):
            return cached[1]
    g = _uniform_grid(kin)
    try:
        object.__setattr__(kin, "_grid_cache", (key, g))
    except (AttributeError, TypeError):     # a frozen or slotted Kinematics: no cache
        pass
    return g


def _uniform_grid(kin: Kinematics) -> Grid:
    t = np.asarray(kin.t_s, dtype=float)
    fs = float(kin.fs_hz) if kin.fs_hz and np.isfinite(kin.fs_hz) else 1.0 / np.median(np.diff(t))
    dt = 1.0 / fs
    valid = np.asarray(kin.valid, bool)
    ok_src = valid & np.asarray(kin.running, bool)
    acc_in = np.asarray(kin.acc_level_g)
    # the knock test on the (usually float32) input: the same values, half the bytes
    no_spike = len(acc_in) == 0 or (acc_in.max() <= SPIKE_G and acc_in.min() >= -SPIKE_G)
    # float32 kinematics stay float32 on a grid that is the samples themselves (no copy); every user upcasts
    # what it sums or subtracts, so results are those of a float64 grid
    acc = _as_float(acc_in)
    ang = _as_float(np.asarray(kin.angles_deg))
    steps = np.diff(t)
    # use the samples as they are only if index * dt also stays on the timestamps over the whole record
    if len(t) < 2 or (steps.max() < 1.25 * dt and steps.min() > 0.75 * dt
                      and abs(t[-1] - t[0] - (len(t) - 1) * dt) < 0.25 * dt):
        # within +-SPIKE_G everywhere (the max and min propagate NaN): every row is finite
        fin = np.ones(len(acc), dtype=bool) if no_spike else _finite_rows(acc)
        ok = ok_src & fin
        data = valid & fin
        acc, spike = (acc, None) if no_spike else _despike(acc, dt)
        obs = data & ~spike if spike is not None else data
        # origin on the absolute sample grid, so any window of a session maps indices to the same times
        return Grid(float(np.round(t[0] / dt) * dt) if len(t) else 0.0, dt, acc, ang, ok, _regions(ok), obs,
                    data, _regions(data))
    g0 = np.ceil(t[0] / dt - 1e-9) * dt    # absolute grid: any window of a session lands on the same points
    n = int(np.floor((t[-1] - g0) / dt + 1e-9)) + 1
    tg = g0 + np.arange(n) * dt
    j = np.clip(np.searchsorted(t, tg, side="right"), 1, len(t) - 1)   # t[j-1] <= tg < t[j]
    w = np.clip((tg - t[j - 1]) / (t[j] - t[j - 1]), 0.0, 1.0)[:, None]
    acc_g = np.take(acc, j - 1, axis=0) * (1 - w) + np.take(acc, j, axis=0) * w    # (take: fast row gathers)
    ang_g = np.take(ang, j - 1, axis=0) * (1 - w) + np.take(ang, j, axis=0) * w
    span = t[j] - t[j - 1]
    data = (span <= MAX_BRIDGE_S) & valid[j - 1] & valid[j] & _finite_rows(acc_g)
    ok = data & ok_src[j - 1] & ok_src[j]
    obs = data & (span <= MAX_INTERP_GAP_S + 0.5 * dt)
    acc_g, spike = _despike(acc_g, dt)
    if spike is not None:
        obs &= ~spike
    return Grid(float(g0), dt, acc_g, ang_g, ok, _regions(ok), obs, data, _regions(data))


def _as_float(x: np.ndarray) -> np.ndarray:
    """x itself when it is float32/float64, else a float64 copy."""
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _finite_rows(x: np.ndarray) -> np.ndarray:
    """Rows of x with no NaN/inf (one quick whole-array test first: usually all are)."""
    if np.isfinite(x.sum()):
        return np.ones(len(x), dtype=bool)
    return np.isfinite(x).all(axis=1)


def _despike(acc: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Knocks on the clip (a few samples far beyond running's 2-6 g, often saturated) are cut out, +-SPIKE_PAD_S,
    and bridged linearly like lost samples. Returns (acc, spike mask or None when there is none)."""
    if len(acc) == 0 or (acc.max() <= SPIKE_G and acc.min() >= -SPIKE_G):   # the usual case: two quick passes
        return acc, None
    big = np.abs(acc).max(axis=1) > SPIKE_G
    pad = max(1, int(round(SPIKE_PAD_S / dt)))
    c = np.concatenate(([0], np.cumsum(big)))
    i = np.arange(len(big))
    spike = c[np.minimum(i + pad + 1, len(big))] - c[np.maximum(i - pad, 0)] > 0
    good = np.flatnonzero(~spike)
    if len(good) < 2:
        return acc, spike
    bad = np.flatnonzero(spike)
    j = np.clip(np.searchsorted(good, bad), 1, len(good) - 1)
    lft, rgt = good[j - 1], good[j]
    w = np.clip((bad - lft) / (rgt - lft), 0.0, 1.0)[:, None]
    acc = np.array(acc, dtype=np.float64)       # a float64 copy (interpolated in float64)
    acc[bad] = acc[lft] * (1 - w) + acc[rgt] * w
    return acc, spike


class _RunLabels:
    """Label 1, 2, ... of each contiguous True stretch of a mask (0 where False), looked up by index.

    ``labels[idx]`` gives what the full (n,) label array would, which is never built (events look labels up
    at a few thousand samples). ``starts``/``lasts``: first and last sample of each True stretch.
    """

    def __init__(self, ok: np.ndarray):
        self.n = n = len(ok)
        edges = np.flatnonzero(ok[1:] != ok[:-1]) + 1
        self.bounds = np.concatenate(([0], edges)).astype(np.intp)     # first sample of every run
        run_ok = np.zeros(len(self.bounds), dtype=bool)
        if n:
            run_ok[(0 if ok[0] else 1)::2] = True                      # runs alternate
        self.labels = np.where(run_ok, np.cumsum(run_ok), 0).astype(np.intp)
        ends = np.append(self.bounds[1:], n)
        self.starts, self.lasts = self.bounds[run_ok], ends[run_ok] - 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        idx = np.where(idx < 0, idx + self.n, idx)
        return self.labels[np.searchsorted(self.bounds, idx, side="right") - 1]

    def __array__(self, dtype=None, copy=None):
        a = np.repeat(self.labels, np.diff(np.append(self.bounds, self.n)))
        return a if dtype is None else a.astype(dtype)


def _regions(ok: np.ndarray) -> _RunLabels:
    """Labels 1, 2, ... of the contiguous True stretches of ``ok`` (0 where False), see :class:`_RunLabels`."""
    return _RunLabels(ok)


@functools.lru_cache(maxsize=16)
def _butter_sos(fc: float, fs: float) -> np.ndarray:
    """2nd-order Butterworth low-pass sections (designed once per rate: the design costs more than
    filtering a window)."""
    return signal.butter(2, fc, fs=fs, output="sos")


def _lowpass(x: np.ndarray, fc: float, fs: float) -> np.ndarray:
    fc = min(fc, 0.45 * fs)
    sos = _butter_sos(float(fc), float(fs)).copy()   # scipy wants a writeable array
    if len(x) <= 15:
        return x.copy()
    # contiguous: sosfiltfilt returns a reversed view, which every later np.take would copy first
    return np.ascontiguousarray(signal.sosfiltfilt(sos, x))


def _windows(x: np.ndarray, lo: np.ndarray, lens: np.ndarray, fill: float) -> np.ndarray:
    """(K, W) values of x over the windows [lo_k, lo_k + lens_k), W the longest, ``fill`` past each end.

    One gather of equal-width rows: the windows here are short (at most about EDGE_SEARCH_S), so the
    padding costs less than building ragged index lists.
    """
    w = int(lens.max()) if len(lens) else 0
    n = len(x)
    pos = np.arange(w)
    if w == 0 or w > n:
        v = np.take(x, np.minimum(lo[:, None] + pos, n - 1)) if n else np.full((len(lo), w), fill)
    else:
        # rows of a sliding-window view (a contiguous copy per row, far cheaper than an element gather);
        # the few windows that reach past the end are gathered element-wise, clipped
        v = sliding_window_view(x, w)[np.minimum(lo, n - w)]
        tail = np.flatnonzero(lo > n - w)
        if len(tail):
            v[tail] = np.take(x, np.minimum(lo[tail, None] + pos, n - 1))
    v[pos >= lens[:, None]] = fill
    return v


def _window_min(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min of x over each [lo_k, hi_k) (hi_k > lo_k; windows may overlap)."""
    return _windows(x, lo, hi - lo, np.inf).min(axis=1)


def _window_argmin(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Index of the (first) minimum of x in each [lo_k, hi_k)."""
    return lo + np.argmin(_windows(x, lo, hi - lo, np.inf), axis=1)


def _crossing(a: np.ndarray, thr: np.ndarray, lo: np.ndarray, hi: np.ndarray, rising: bool,
              last: bool) -> np.ndarray:
    """Fractional index of the first/last crossing of thr_k between samples j, j+1 with lo_k <= j < hi_k - 1.

    rising: a[j] < thr <= a[j+1]; falling: a[j] >= thr > a[j+1]. NaN where there is none. ``thr`` may be
    (K,) or (K, m) for m thresholds per window at the price of one gather; the result has thr's shape.
    """
    thr2 = thr.reshape(len(lo), -1)
    k_, m = thr2.shape
    out = np.full((k_, m), np.nan)
    lens = np.maximum(np.minimum(hi, len(a)) - 1, lo) - lo     # number of pairs (j, j + 1) per window
    if k_ == 0 or lens.max() <= 0:
        return out.reshape(thr.shape)
    # past a window's end: -inf for a rise, +inf for a fall (neither can complete a crossing there)
    v = _windows(a, lo, lens + 1, -np.inf if rising else np.inf)
    th = thr2[:, :, None]
    if np.isnan(v).any():     # NaN (a gap) compares False both ways: test both samples of each pair
        a0, a1 = v[:, None, :-1], v[:, None, 1:]
        hit = (a0 < th) & (a1 >= th) if rising else (a0 >= th) & (a1 < th)       # (K, m, W)
    else:                     # one comparison per sample, then pairs: the same hits
        above = v[:, None, :] >= th
        hit = above[:, :, 1:] > above[:, :, :-1] if rising else above[:, :, :-1] > above[:, :, 1:]
    w = hit.shape[2]
    p = (w - 1 - np.argmax(hit[:, :, ::-1], axis=2)) if last else np.argmax(hit, axis=2)
    k, c = np.nonzero(np.take_along_axis(hit, p[:, :, None], axis=2)[:, :, 0])
    j = lo[k] + p[k, c]
    den = a[j + 1] - a[j]
    frac = np.where(den != 0, (thr2[k, c] - a[j]) / np.where(den != 0, den, 1.0), 0.5)
    out[k, c] = j + np.clip(frac, 0.0, 1.0)
    return out.reshape(thr.shape)


def detect_steps(kin: Kinematics, *, ic_level_g: float = IC_LEVEL_G, to_level_g: float = TO_LEVEL_G) -> StepEvents:
    """Initial contact, toe-off and side of every running step.

    Parameters
    ----------
    kin : Kinematics
        Level-frame specific force (``acc_level_g[:, 2]`` up incl. gravity, ``[:, 0]`` forward), angles, masks.
        Only samples with ``kin.running & kin.valid`` are used; rates 50-1000 Hz, gaps allowed.
    ic_level_g, to_level_g : float
        Rise/fall above the flight floor (g) that marks IC and TO.

    Returns
    -------
    StepEvents
        Times in s (sub-sample), side 'L'/'R' with its confidence. Steps whose IC or TO falls outside a valid
        running stretch (edges, gaps) are left out.
    """
    if len(kin.t_s) < 4:
        return StepEvents.empty()
    g = uniform_grid(kin)
    fs = 1.0 / g.dt
    if not g.ok.any():
        return StepEvents.empty()
    # the signal is used wherever it is valid; only humps inside running count as steps, so a step right at
    # the start of a running stretch still has its flight before it
    up = g.acc[:, 2] if g.data.all() else np.where(g.data, g.acc[:, 2], 1.0)
    up = up.astype(np.float64)       # a float64 copy either way (filters and block means work in float64)
    a = _lowpass(up, EDGE_LP_HZ, fs)
    # One hump per step, found on a ~50 Hz block-mean copy (humps are ~0.2 s wide; 4x less work at 200 Hz).
    q = max(1, int(fs // PEAK_FS_HZ))
    o = int(-round(g.t0 / g.dt)) % q     # blocks on the absolute grid: any window of a session agrees
    nd = (len(up) - o) // q
    fsd = fs / q
    s = _lowpass(_block_mean(up, o, nd, q), PEAK_LP_HZ, fsd)
    okd = _all_in_blocks(g.ok, o, nd, q)
    pk_d = _humps(s, max(1, int(MIN_STEP_S * fsd)), int(2.0 * fsd) | 1)
    pk_d = pk_d[okd[pk_d]]
    if len(pk_d) == 0:
        return StepEvents.empty()
    n = g.n
    peaks = np.minimum(o + pk_d * q + q // 2, n - 1)
    all_ok = bool(g.data.all())
    if not all_ok:
        a = np.where(g.data, a, np.nan)    # crossings never bridge a gap
    # Flight centre before each peak and after the last one: minimum of the smoothed signal (the stance may
    # hold a deep dip between impact and active peak, which the 8 Hz signal does not).
    wd = int(MAX_FLOOR_WIN_S * fsd)
    lo = np.concatenate(([max(pk_d[0] - wd, 0)], pk_d))
    hi = np.concatenate((pk_d, [min(pk_d[-1] + wd, nd - 1)]))
    lo = np.maximum(lo, hi - wd)
    sf = np.where(okd, s, np.inf)
    trough = np.minimum(o + _window_argmin(sf, lo, np.maximum(hi, lo + 1)) * q + q // 2, n - 1)
    w2 = max(1, int(0.05 * fs))
    af = a if all_ok else np.where(np.isfinite(a), a, np.inf)
    floor = _window_min(af, np.maximum(trough - w2, 0), np.minimum(trough + w2, n))   # may overlap: see _window_min
    tb, fb = trough[:-1], floor[:-1]     # before each peak
    ta, fa = trough[1:], floor[1:]       # after each peak
    span = int(EDGE_SEARCH_S * fs)       # rises and falls lie within this of the flight centre
    ic_hi = np.minimum(peaks + 1, tb + span)
    both = _crossing(a, np.column_stack([fb + ic_level_g, fb + ANCHOR_G]), tb, ic_hi, rising=True, last=False)
    ic, anc = both[:, 0], both[:, 1]
    if TANGENT_IC:
        # Tangent at the steep start of the rise, extended down to the threshold: ignores the small
        # pre-contact bumps (swing-leg retraction) that a plain threshold catches.
        ai = np.clip(np.nan_to_num(anc).astype(int), 1, n - 3)
        slope = np.maximum(a[ai + 1] - a[ai - 1], a[ai + 2] - a[ai]) / 2.0     # samples^-1, local gradient
        tan = anc - (ANCHOR_G - ic_level_g) / np.maximum(slope, 1e-6)
        ic = np.where(np.isfinite(anc) & (slope > 0) & np.isfinite(ic), np.maximum(tan, ic), ic)
    ic_i = np.nan_to_num(ic, nan=0).astype(int)
    # TO: a plain threshold. A tangent on the falling edge (like IC) fits the simulator's half-sine better but
    # made contact time worse on the force-plate trials (the real sacral signal has a slow tail).
    to = _crossing(a, fa + to_level_g, np.maximum(np.maximum(ic_i, tb), ta - span), np.maximum(ta + 1, ic_i + 1),
                   rising=False, last=True)
    # TO hidden in a bridged gap (lost packets): the step stays, its TO is unknown.
    bridged = None if g.obs is g.data else g.data & ~g.obs      # (the same array: nothing was bridged)
    # running count of bridged samples, None when there are none
    gapc = np.concatenate(([0], np.cumsum(bridged))) if bridged is not None and bridged.any() else None
    if gapc is not None:
        hi_w = np.minimum(np.maximum(ta + 1, ic_i + 1), n)
        to_gap = gapc[hi_w] - gapc[np.minimum(ic_i, n)] > 0
    else:
        to_gap = np.zeros(len(ic), bool)
    to = np.where(np.isfinite(to) & ~_observed(g, to), np.nan, to)
    keep = np.isfinite(ic) & (np.isfinite(to) | to_gap)
    ici = np.nan_to_num(ic).astype(int)
    keep &= g.dregion[ici] == g.dregion[peaks]
    # Edge steps: the flight before IC and the fall after TO must lie inside the stretch, else the step is
    # incomplete (recording start/end, end of running) and is left out.
    r = g.dregion[peaks]
    if isinstance(g.dregion, _RunLabels):
        r_start, r_end = g.dregion.starts, g.dregion.lasts
    else:
        okr = np.concatenate(([False], g.data, [False]))
        r_start = np.flatnonzero(okr[1:-1] & ~okr[:-2])
        r_end = np.flatnonzero(okr[1:-1] & ~okr[2:])
    rr = np.maximum(r - 1, 0)
    keep &= (ic - r_start[rr]) * g.dt >= EDGE_BEFORE_S
    keep &= ~((r_end[rr] - to) * g.dt < EDGE_AFTER_S)                 # NaN TO passes
    gct = (to - ic) * g.dt
    keep &= ~((gct < MIN_GCT_S) | (gct > MAX_GCT_S))
    ic, to, pk = ic[keep], to[keep], peaks[keep]
    if len(ic) == 0:
        return StepEvents.empty()
    # A hump split in two (rare) gives two ICs within one contact: keep the first.
    dup = np.concatenate(([False], ic[1:] < np.fmax(to[:-1], ic[:-1] + MIN_GCT_S / g.dt)))
    ic, to, pk = ic[~dup], to[~dup], pk[~dup]
    reg = g.region[pk]
    ic, to, reg, imputed = _impute(g, ic, to, reg, gapc)
    t_ic, t_to = g.time(ic), g.time(to)
    chunk = _chunks(t_ic, reg)
    side, conf, method = _sides(g, ic, to, chunk)
    peak = np.interp((ic + 0.1 / g.dt - o - q // 2) / q, np.arange(nd), s)
    return StepEvents(t_ic, t_to, side, conf, chunk, peak, method, ~imputed)


def _humps(s: np.ndarray, distance: int, wlen: int) -> np.ndarray:
    """``signal.find_peaks(s, height=PEAK_MIN_G, prominence=PEAK_PROM_G, distance=distance)[0]``, faster.

    The prominence search of find_peaks may run far from each peak; a prominence measured within a window
    of ``wlen`` samples is a lower bound of it, so peaks that pass within the window pass, and only the
    others are measured without a window: the same peaks.
    """
    cand, _ = signal.find_peaks(s, height=PEAK_MIN_G, distance=distance)
    if len(cand) == 0:
        return cand
    with warnings.catch_warnings():   # a wide plateau may have no prominence within the window: re-measured
        warnings.simplefilter("ignore", RuntimeWarning)       # scipy's PeakPropertyWarning
        ok = signal.peak_prominences(s, cand, wlen=wlen)[0] >= PEAK_PROM_G
    unsure = np.flatnonzero(~ok)
    if len(unsure):
        ok[unsure] = signal.peak_prominences(s, cand[unsure])[0] >= PEAK_PROM_G
    return cand[ok]


def _all_in_blocks(mask: np.ndarray, o: int, nd: int, q: int) -> np.ndarray:
    """(nd,) True for the blocks ``[o + k q, o + (k + 1) q)`` in which every sample of ``mask`` holds.

    From the runs of False (few: gaps, stops), marked per block by a difference array: no full-rate reduction.
    """
    m = mask[o: o + nd * q]
    if nd == 0:
        return np.zeros(0, bool)
    edges = np.flatnonzero(m[1:] != m[:-1]) + 1
    bounds = np.concatenate(([0], edges, [len(m)]))
    first_bad = 0 if not m[0] else 1                  # runs alternate
    lo, hi = bounds[first_bad:-1:2], bounds[first_bad + 1::2]     # [lo, hi) runs of False
    mark = np.zeros(nd + 1, dtype=np.intp)
    np.add.at(mark, lo // q, 1)
    np.add.at(mark, (hi - 1) // q + 1, -1)
    return np.cumsum(mark[:-1]) == 0


def _block_mean(x: np.ndarray, o: int, nd: int, q: int) -> np.ndarray:
    """Means of the ``nd`` blocks ``x[o + k q: o + (k + 1) q]`` (float64 ``x``), summed as ``np.add.reduceat``
    sums them: the first element plus a running sum of the others from -0.0 (for blocks of up to 8), here
    over one contiguous row per slot (3x faster than reduceat's per-block loop)."""
    if q == 1:
        return x[o:o + nd].astype(float)
    v = x[o:o + nd * q].reshape(nd, q)
    if q > 8:
        s = np.add.reduceat(x[o:o + nd * q], np.arange(0, nd * q, q))
    else:
        s = np.add.reduce(np.ascontiguousarray(v[:, 1:].T), axis=0, initial=-0.0)
        np.add(v[:, 0], s, out=s)
    s /= q
    return s


def _observed(g: Grid, fidx: np.ndarray) -> np.ndarray:
    """True where both samples around fractional index fidx were observed (not inside a lost-packet gap)."""
    i = np.clip(np.floor(np.nan_to_num(fidx)).astype(int), 0, g.n - 2)
    return g.obs[i] & g.obs[i + 1]


def _impute(g: Grid, ic: np.ndarray, to: np.ndarray, reg: np.ndarray, gapc: np.ndarray | None = None):
    """Fill steps lost in bridged gaps from the cadence (vectorised).

    1. An interval between ICs of about k = 2 or 3 local step times that holds lost samples gets k - 1
       evenly spaced ICs (TO unknown).
    2. An IC that was itself read off interpolated samples is moved to the midpoint of its neighbours.
    ``gapc``: running count of bridged samples ((n + 1,), None when there are none).
    Returns (ic, to, region, imputed) with imputed marking ICs not measured directly.
    """
    imputed = ~_observed(g, ic)
    if len(ic) >= 3:
        from scipy.ndimage import median_filter
        d = np.diff(ic)
        med = median_filter(d, size=min(9, len(d)), mode="nearest")
        ratio = d / med
        k = np.rint(ratio).astype(int)
        if gapc is None:     # nothing was lost
            lost = np.zeros(len(d), dtype=bool)
        else:
            lost = gapc[np.ceil(ic[1:]).astype(int)] - gapc[np.floor(ic[:-1]).astype(int)] > 0
        fill = (reg[1:] == reg[:-1]) & lost & (k >= 2) & (k <= 3) & (np.abs(ratio - k) < 0.3)
        if fill.any():
            src = np.flatnonzero(fill)
            cnt = k[src] - 1
            rep = np.repeat(src, cnt)
            j = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1
            new_ic = ic[rep] + d[rep] * j / k[rep]
            ic = np.concatenate((ic, new_ic))
            to = np.concatenate((to, np.full(len(new_ic), np.nan)))
            reg = np.concatenate((reg, reg[rep]))
            imputed = np.concatenate((imputed, np.ones(len(new_ic), bool)))
            o = np.argsort(ic, kind="stable")
            ic, to, reg, imputed = ic[o], to[o], reg[o], imputed[o]
    if len(ic) >= 3:
        mid = np.flatnonzero(imputed[1:-1] & ~imputed[:-2] & ~imputed[2:]
                             & (reg[:-2] == reg[1:-1]) & (reg[2:] == reg[1:-1])) + 1
        ic[mid] = 0.5 * (ic[mid - 1] + ic[mid + 1])
    return ic, to, reg, imputed


def _chunks(t_ic: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Label runs of consecutive steps: a new chunk at a region change or a step over 1.5x the local median."""
    if len(t_ic) < 2:
        return np.zeros(len(t_ic), dtype=int)
    st = np.diff(t_ic)
    from scipy.ndimage import median_filter
    med = median_filter(st, size=min(9, len(st)), mode="nearest")
    brk = (region[1:] != region[:-1]) | (st > 1.5 * med) | (st > 0.8)
    return np.concatenate(([0], np.cumsum(brk)))


def _interp_at(x: np.ndarray, fidx: np.ndarray, nan0: bool = False) -> np.ndarray:
    i = np.clip(np.floor(fidx).astype(int), 0, len(x) - 2)
    w = np.clip(fidx - i, 0, 1)
    if x.ndim == 2:
        w = w[:, None]
    x0, x1 = x[i], x[i + 1]
    if nan0:    # as if x were np.nan_to_num(x)
        x0, x1 = np.nan_to_num(x0), np.nan_to_num(x1)
    return x0 * (1 - w) + x1 * w


def _sides(g: Grid, ic: np.ndarray, to: np.ndarray, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Side of each step from chunk-wide evidence (see module docstring)."""
    m = len(ic)
    gct = to - ic
    to = np.where(np.isfinite(to), to, ic + (np.nanmedian(gct) if np.isfinite(gct).any() else 0.2 / g.dt))
    mid = 0.5 * (ic + to)
    nxt = np.concatenate((ic[1:], [ic[-1] + (ic[-1] - ic[-2] if m > 1 else 50)]))
    nxt = np.minimum(nxt, g.n - 2)
    ang = g.angles
    stride = max(1, g.n // 20000)    # a sparse look is enough to tell whether the gyro angles exist
    have_angles = ang.shape[1] >= 3 and np.isfinite(ang[::stride, 1:3][g.ok[::stride]]).mean() > 0.9
    if have_angles:
        obl, rot = ang[:, 1], ang[:, 2]     # NaN read as 0 at the few samples used (no full-length copy)
        f_obl = SIDE_OBLIQUITY_SIGN * (_interp_at(obl, mid, nan0=True) - _interp_at(obl, ic, nan0=True))
        f_rot = SIDE_ROTATION_SIGN * (_interp_at(rot, nxt, nan0=True) - _interp_at(rot, ic, nan0=True))
        score = f_obl / (np.std(f_obl) + 1e-9) + f_rot / (np.std(f_rot) + 1e-9)
        method = "gyro"
    else:
        ml = np.where(g.ok, g.acc[:, 1], 0.0).astype(np.float64, copy=False)
        cs = np.concatenate(([0.0], np.cumsum(ml)))
        i0, i1 = np.floor(ic).astype(int), np.maximum(np.floor(to).astype(int), np.floor(ic).astype(int) + 1)
        score = SIDE_ML_ACC_SIGN * (cs[i1] - cs[i0]) / (i1 - i0)
        score = score - np.median(score)      # a mounting offset on the ML axis is common to both sides
        method = "acc_ml"
    par = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    nch = chunk.max() + 1 if m else 0
    ev = np.bincount(chunk, weights=par * score, minlength=nch)          # >0: even steps are left
    cnt = np.bincount(chunk, minlength=nch)
    s2 = np.bincount(chunk, weights=score ** 2, minlength=nch)
    mu = ev / np.maximum(cnt, 1)
    sd = np.sqrt(np.maximum(s2 / np.maximum(cnt, 1) - mu ** 2, 0.0))
    sd = np.maximum(sd, 0.25 * np.median(np.abs(score)) + 1e-9)   # few-step chunks: no overconfidence
    z = np.abs(ev) / (np.sqrt(np.maximum(cnt, 1)) * sd)
    conf_chunk = np.where(cnt > 1, ndtr(z), 0.5)
    left_even = ev[chunk] >= 0
    is_left = (par > 0) == left_even
    side = np.where(is_left, "L", "R").astype("<U1")
    return side, np.round(conf_chunk[chunk], 4), method
