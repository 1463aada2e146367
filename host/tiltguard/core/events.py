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
from scipy import signal
from scipy.ndimage import median_filter
from scipy.special import ndtr

from tiltguard.core.kinematics import Kinematics

try:    # the compiled loop behind signal.sosfilt: on a 10 s window its Python wrapper costs more than the loop
    from scipy.signal._sosfilt import _sosfilt
except ImportError:     # pragma: no cover - a scipy without it: the public wrapper, the same numbers
    _sosfilt = None

def _private_sosfilt_ok() -> bool:
    """The private compiled loop still takes these arguments and gives ``signal.sosfilt``'s numbers (checked
    once, at import: a scipy that changed it falls back to the public wrapper instead of failing mid-run)."""
    sos = signal.butter(2, 0.2, output="sos")
    x = np.arange(32.0) ** 1.5
    zi = signal.sosfilt_zi(sos) * x[0]
    try:
        y = x.copy()
        _sosfilt(sos, y.reshape(1, -1), zi.reshape(1, len(sos), 2).copy())
        return bool(np.array_equal(y, signal.sosfilt(sos, x, zi=zi)[0]))
    except Exception:  # noqa: BLE001 - any failure: use the public wrapper
        return False


if _sosfilt is not None and not _private_sosfilt_ok():   # pragma: no cover
    _sosfilt = None

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
    steps = t[1:] - t[:-1]      # (np.diff, without its wrapper)
    # use the samples as they are only if index * dt also stays on the timestamps over the whole record
    if len(t) < 2 or (steps.max() < 1.25 * dt and steps.min() > 0.75 * dt
                      and abs(t[-1] - t[0] - (len(t) - 1) * dt) < 0.25 * dt):
        # within +-SPIKE_G everywhere (the max and min propagate NaN): every row is finite
        fin = None if no_spike else _finite_rows(acc)
        ok = ok_src if fin is None else ok_src & fin         # (ok_src is a new array already)
        data = valid.copy() if fin is None else valid & fin
        acc, spike = (acc, None) if no_spike else _despike(acc, dt)
        obs = data & ~spike if spike is not None else data
        # origin on the absolute sample grid, so any window of a session maps indices to the same times
        region, dregion = _ok_data_regions(ok, data)
        return Grid(float(np.round(t[0] / dt) * dt) if len(t) else 0.0, dt, acc, ang, ok, region, obs,
                    data, dregion)
    g0 = np.ceil(t[0] / dt - 1e-9) * dt    # absolute grid: any window of a session lands on the same points
    n = int(np.floor((t[-1] - g0) / dt + 1e-9)) + 1
    tg = g0 + np.arange(n) * dt
    j = _clip(t.searchsorted(tg, side="right"), 1, len(t) - 1)   # t[j-1] <= tg < t[j]
    jm = j - 1
    t_lo, t_hi = t[jm], t[j]
    span = t_hi - t_lo
    w = _clip((tg - t_lo) / span, 0.0, 1.0)
    # acc and angles as the rows of one float64 (6, n) array (the kinematics are column-major already): the
    # gathers and the weighting run along whole rows, not 3 values at a time; each value is interpolated in
    # float64 as before. The grid holds (n, 3) column-major views of it.
    src = np.concatenate((acc.T, ang.T), dtype=np.float64)
    both = src.take(jm, axis=1) * (1 - w) + src.take(j, axis=1) * w
    acc_g, ang_g = both[:acc.shape[1]].T, both[acc.shape[1]:].T
    data = (span <= MAX_BRIDGE_S) & valid[jm] & valid[j] & _finite_rows(acc_g)
    ok = data & ok_src[jm] & ok_src[j]
    obs = data & (span <= MAX_INTERP_GAP_S + 0.5 * dt)
    acc_g, spike = _despike(acc_g, dt)
    if spike is not None:
        obs &= ~spike
    region, dregion = _ok_data_regions(ok, data)
    return Grid(float(g0), dt, acc_g, ang_g, ok, region, obs, data, dregion)


def _ok_data_regions(ok: np.ndarray, data: np.ndarray) -> tuple[_RunLabels, _RunLabels]:
    """Region labels of ``ok`` and of ``data``: one set for both when they agree (the usual case; ok lies
    within data, so equal counts mean equal masks). The labels are never changed after they are built."""
    region = _regions(ok)
    return region, region if np.count_nonzero(ok) == np.count_nonzero(data) else _regions(data)


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
        edges = (ok[1:] != ok[:-1]).nonzero()[0] + 1
        self.bounds = np.concatenate(([0], edges)).astype(np.intp)     # first sample of every run
        run_ok = np.zeros(len(self.bounds), dtype=bool)
        if n:
            run_ok[(0 if ok[0] else 1)::2] = True                      # runs alternate
        self.labels = np.where(run_ok, run_ok.cumsum(), 0).astype(np.intp)
        ends = np.concatenate((self.bounds[1:], [n]))
        self.starts, self.lasts = self.bounds[run_ok], ends[run_ok] - 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        idx = np.where(idx < 0, idx + self.n, idx)
        return self.labels[self.bounds.searchsorted(idx, side="right") - 1]

    def __array__(self, dtype=None, copy=None):
        a = np.repeat(self.labels, np.diff(np.append(self.bounds, self.n)))
        return a if dtype is None else a.astype(dtype)


def _regions(ok: np.ndarray) -> _RunLabels:
    """Labels 1, 2, ... of the contiguous True stretches of ``ok`` (0 where False), see :class:`_RunLabels`."""
    return _RunLabels(ok)


@functools.lru_cache(maxsize=16)
def _butter_sos(fc: float, fs: float) -> tuple[np.ndarray, np.ndarray, int]:
    """2nd-order Butterworth low-pass sections, with what ``signal.sosfiltfilt`` derives from them on every
    call: its steady-state initial conditions (a linear solve) and its pad length. Designed once per rate:
    the design costs more than filtering a window."""
    sos = signal.butter(2, fc, fs=fs, output="sos")
    ntaps = 2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum())
    return sos, signal.sosfilt_zi(sos).reshape(1, len(sos), 2), 3 * int(ntaps)   # zi shaped as _sosfilt takes it


def _lowpass(x: np.ndarray, fc: float, fs: float) -> np.ndarray:
    """``signal.sosfiltfilt(sos, x)`` (odd padding) of a 1-D float64 x (or float32: the numbers of its float64
    copy), step by step as scipy does it but with the cached initial conditions: the same numbers, without
    the per-call setup."""
    fc = min(fc, 0.45 * fs)
    if len(x) <= 15:
        return x.astype(np.float64)
    sos, zi, edge = _butter_sos(float(fc), float(fs))
    # odd extension at both ends; forward, then backward, each started in steady state (filtered in place)
    n = len(x)
    y = np.empty(n + 2 * edge)
    np.subtract(2 * np.float64(x[0]), x[edge:0:-1].astype(np.float64), out=y[:edge])
    y[edge: edge + n] = x
    np.subtract(2 * np.float64(x[-1]), x[-2:-(edge + 2):-1].astype(np.float64), out=y[edge + n:])
    _sosfilt_inplace(sos, y, zi * y[0])
    y = y[::-1].copy()
    _sosfilt_inplace(sos, y, zi * y[0])
    # contiguous: a reversed view would be copied by every later np.take
    return np.ascontiguousarray(y[::-1][edge:-edge])


def _sosfilt_inplace(sos: np.ndarray, y: np.ndarray, zi: np.ndarray) -> None:
    """``y[:] = signal.sosfilt(sos, y, zi=zi[0])[0]`` for a C-contiguous 1-D float64 y and a (1, sections, 2)
    float64 zi (overwritten): the compiled call scipy makes, without the wrapper's checks and copies."""
    if _sosfilt is None:
        y[:] = signal.sosfilt(sos, y, zi=zi[0])[0]
    else:
        _sosfilt(sos, y.reshape(1, -1), zi)


def _windows(x: np.ndarray, lo: np.ndarray, lens: np.ndarray, fill: float) -> np.ndarray:
    """(K, W) values of x over the windows [lo_k, lo_k + lens_k), W the longest, ``fill`` past each end.

    One gather of equal-width rows: the windows here are short (at most about EDGE_SEARCH_S), so the
    padding costs less than building ragged index lists.
    """
    w = int(lens.max()) if len(lens) else 0
    n = len(x)
    if w == 0 or n == 0:
        return np.full((len(lo), w), fill)
    # rows of a sliding-window view (a contiguous copy per row, far cheaper than an element gather on long
    # records); a window reaching past the end reads x's last value there, as a clipped gather would
    if n < 65536:
        # a short series: the view over x followed by w copies of its last value (one copy of x)
        xp = np.concatenate((x, np.full(w, x[-1])))
        st = xp.strides[0]
        # (the view made directly on the new contiguous buffer: as_strided's own set-up costs more still)
        v = np.ndarray((n + 1, w), xp.dtype, xp, 0, (st, st))[np.minimum(lo, n)]
    else:
        # a long one: the view over x itself; the few rows reaching past its end come from a short padded
        # copy of the tail (no copy of the whole of x)
        x = np.ascontiguousarray(x)
        st = x.strides[0]
        k = max(n - w + 1, 0)                       # windows starting before k lie within x
        tail0 = min(k, n - 1)
        tail = np.concatenate((x[tail0:], np.full(w, x[-1])))
        lo_c = np.minimum(lo, n)
        inner = lo_c < k
        if inner.all():
            v = np.ndarray((k, w), x.dtype, x, 0, (st, st))[lo_c]
        else:
            v = np.empty((len(lo), w), x.dtype)
            v[inner] = np.ndarray((k, w), x.dtype, x, 0, (st, st))[lo_c[inner]] if k else v[inner]
            v[~inner] = np.ndarray((len(tail) - w + 1, w), x.dtype, tail, 0, (st, st))[lo_c[~inner] - tail0]
    if lens.min() < w:
        v[_past_end(w).take(lens, axis=0)] = fill     # (a row gather: cheaper than comparing (K, W) indices)
    return v


@functools.lru_cache(maxsize=32)
def _past_end(w: int) -> np.ndarray:
    """(w + 1, w) bool: row L is True at the columns past a window of length L."""
    return np.arange(w)[None, :] >= np.arange(w + 1)[:, None]


def _window_min(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min of x over each [lo_k, hi_k) (hi_k > lo_k; windows may overlap).

    One ``np.minimum.reduceat`` over the bounds lo_0, hi_0, lo_1, ...: the even results are the windows (an
    overlap only spoils the odd ones, between windows, which are dropped); cheaper than gathering windows.
    """
    if len(lo) and hi.max() >= len(x):     # reduceat takes bounds below len(x): one more (unread) sample
        x = np.append(x, np.inf)
    idx = np.empty(2 * len(lo), dtype=np.intp)
    idx[0::2], idx[1::2] = lo, hi
    return np.minimum.reduceat(x, idx)[0::2]


def _window_argmin(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Index of the (first) minimum of x in each [lo_k, hi_k)."""
    return lo + _windows(x, lo, hi - lo, np.inf).argmin(axis=1)


def _crossing(a: np.ndarray, thr: np.ndarray, lo: np.ndarray, hi: np.ndarray, rising: bool,
              last: bool, may_nan: bool = True) -> np.ndarray:
    """Fractional index of the first/last crossing of thr_k between samples j, j+1 with lo_k <= j < hi_k - 1.

    rising: a[j] < thr <= a[j+1]; falling: a[j] >= thr > a[j+1]. NaN where there is none. ``thr`` may be
    (K,) or (K, m) for m thresholds per window at the price of one gather; the result has thr's shape.
    ``may_nan``: False when the caller knows ``a`` holds no NaN (the windows need no test for it).
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
    if last:    # the last hit is the first one of the windows read backwards, where a rise is a fall (the
        v, rising = v[:, ::-1], not rising       # hits come out in that order: no reversed copy for argmax)
    if may_nan and np.isnan(v).any():     # NaN (a gap) compares False both ways: test both samples of each pair
        a0, a1 = v[:, None, :-1], v[:, None, 1:]
        hit = (a0 < th) & (a1 >= th) if rising else (a0 >= th) & (a1 < th)       # (K, m, W)
    else:                     # one comparison per sample, then pairs: the same hits
        above = v[:, None, :] >= th
        hit = above[:, :, 1:] > above[:, :, :-1] if rising else above[:, :, :-1] > above[:, :, 1:]
    w = hit.shape[2]
    p = hit.argmax(axis=2)
    # windows with a hit: the one at p (argmax finds a hit wherever there is one)
    k, c = hit.reshape(-1, w)[np.arange(k_ * m), p.ravel()].reshape(k_, m).nonzero()
    if last:
        p = w - 1 - p
    j = lo[k] + p[k, c]
    aj = a[j]
    den = a[j + 1] - aj
    nz = den != 0
    frac = np.where(nz, (thr2[k, c] - aj) / np.where(nz, den, 1.0), 0.5)
    out[k, c] = j + _clip(frac, 0.0, 1.0)
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
    all_ok = bool(g.data.all())
    # (float32 kinematics stay float32 here: the filter and the block means work in float64 on their own)
    up = g.acc[:, 2] if all_ok else np.where(g.data, g.acc[:, 2], 1.0)
    a = _lowpass(up, EDGE_LP_HZ, fs)
    # One hump per step, found on a ~50 Hz block-mean copy (humps are ~0.2 s wide; 4x less work at 200 Hz).
    q = max(1, int(fs // PEAK_FS_HZ))
    o = int(-round(g.t0 / g.dt)) % q     # blocks on the absolute grid: any window of a session agrees
    nd = (len(up) - o) // q
    fsd = fs / q
    s = _lowpass(_block_mean(up, o, nd, q), PEAK_LP_HZ, fsd)
    okd = _all_in_blocks(g.ok, o, nd, q, g.region if isinstance(g.region, _RunLabels) else None)
    pk_d = _humps(s, max(1, int(MIN_STEP_S * fsd)), int(2.0 * fsd) | 1)
    pk_d = pk_d[okd[pk_d]]
    if len(pk_d) == 0:
        return StepEvents.empty()
    n = g.n
    peaks = np.minimum(o + pk_d * q + q // 2, n - 1)
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
    both = _crossing(a, np.column_stack([fb + ic_level_g, fb + ANCHOR_G]), tb, ic_hi, rising=True, last=False,
                     may_nan=not all_ok)
    ic, anc = both[:, 0], both[:, 1]
    if TANGENT_IC:
        # Tangent at the steep start of the rise, extended down to the threshold: ignores the small
        # pre-contact bumps (swing-leg retraction) that a plain threshold catches.
        ai = _clip(_nan0(anc).astype(int), 1, n - 3)
        slope = np.maximum(a[ai + 1] - a[ai - 1], a[ai + 2] - a[ai]) / 2.0     # samples^-1, local gradient
        tan = anc - (ANCHOR_G - ic_level_g) / np.maximum(slope, 1e-6)
        ic = np.where(np.isfinite(anc) & (slope > 0) & np.isfinite(ic), np.maximum(tan, ic), ic)
    ic_i = _nan0(ic).astype(int)
    # TO: a plain threshold. A tangent on the falling edge (like IC) fits the simulator's half-sine better but
    # made contact time worse on the force-plate trials (the real sacral signal has a slow tail).
    to = _crossing(a, fa + to_level_g, np.maximum(np.maximum(ic_i, tb), ta - span), np.maximum(ta + 1, ic_i + 1),
                   rising=False, last=True, may_nan=not all_ok)
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
    r_both = g.dregion[np.concatenate((ic_i, peaks))]      # one lookup for both
    r_ic, r = r_both[:len(ic_i)], r_both[len(ic_i):]
    keep &= r_ic == r
    # Edge steps: the flight before IC and the fall after TO must lie inside the stretch, else the step is
    # incomplete (recording start/end, end of running) and is left out.
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
    if dup.any():
        ic, to, pk = ic[~dup], to[~dup], pk[~dup]
    reg = g.region[pk]
    ic, to, reg, imputed = _impute(g, ic, to, reg, gapc)
    t_ic, t_to = g.time(ic), g.time(to)
    chunk = _chunks(t_ic, reg)
    side, conf, method = _sides(g, ic, to, chunk)
    peak = _interp_unit(s, (ic + 0.1 / g.dt - o - q // 2) / q)
    return StepEvents(t_ic, t_to, side, conf, chunk, peak, method, ~imputed)


def _interp_unit(fp: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.interp(x, np.arange(len(fp)), fp)``, the same numbers (numpy's ``slope * (x - j) + fp[j]``, the end
    values held outside) without building and searching the grid."""
    if len(fp) < 2:
        return np.interp(x, np.arange(len(fp)), fp)
    j = _clip(np.floor(x), 0, len(fp) - 2).astype(np.intp)
    f0 = fp[j]
    y = (fp[j + 1] - f0) * (x - j) + f0
    return np.where(x <= 0, fp[0], np.where(x >= len(fp) - 1, fp[-1], y))


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


def _all_in_blocks(mask: np.ndarray, o: int, nd: int, q: int, runs: _RunLabels | None = None) -> np.ndarray:
    """(nd,) True for the blocks ``[o + k q, o + (k + 1) q)`` in which every sample of ``mask`` holds.

    From the runs of False (few: gaps, stops), marked per block by a difference array: no full-rate reduction.
    ``runs``: the run labels of ``mask`` when they are at hand (then the mask itself is not read).
    """
    m = mask[o: o + nd * q]
    if nd == 0:
        return np.zeros(0, bool)
    if runs is not None:
        false = runs.labels == 0
        lo = np.maximum(runs.bounds[false] - o, 0)
        hi = np.minimum(np.append(runs.bounds[1:], runs.n)[false] - o, len(m))
        lo, hi = lo[hi > lo], hi[hi > lo]       # within the blocks
    else:
        edges = (m[1:] != m[:-1]).nonzero()[0] + 1
        bounds = np.concatenate(([0], edges, [len(m)]))
        first_bad = 0 if not m[0] else 1                  # runs alternate
        lo, hi = bounds[first_bad:-1:2], bounds[first_bad + 1::2]     # [lo, hi) runs of False
    if len(lo) == 0:            # the usual case: no gap, no stop
        return np.ones(nd, bool)
    # +1 at the first block of each False run, -1 after its last (bincount: np.add.at costs more here)
    mark = np.bincount(lo // q, minlength=nd + 1) - np.bincount((hi - 1) // q + 1, minlength=nd + 1)
    return mark[:-1].cumsum() == 0


def _block_mean(x: np.ndarray, o: int, nd: int, q: int) -> np.ndarray:
    """Means of the ``nd`` blocks ``x[o + k q: o + (k + 1) q]`` (float64 ``x``, or float32 summed in float64: the
    numbers of its float64 copy), summed as ``np.add.reduceat``
    sums them: the first element plus a running sum of the others from -0.0 (for blocks of up to 8), here
    over one contiguous row per slot (3x faster than reduceat's per-block loop)."""
    if q == 1:
        return x[o:o + nd].astype(float)
    v = x[o:o + nd * q].reshape(nd, q)
    if q > 8:
        s = np.add.reduceat(x[o:o + nd * q], np.arange(0, nd * q, q), dtype=np.float64)
    else:
        s = np.add.reduce(np.ascontiguousarray(v[:, 1:].T), axis=0, initial=-0.0, dtype=np.float64)
        np.add(v[:, 0], s, out=s)
    s /= q
    return s


def _observed(g: Grid, fidx: np.ndarray) -> np.ndarray:
    """True where both samples around fractional index fidx were observed (not inside a lost-packet gap)."""
    i = _clip(np.floor(_nan0(fidx)).astype(int), 0, g.n - 2)
    return g.obs[i] & g.obs[i + 1]


def _clip(x: np.ndarray, lo, hi) -> np.ndarray:
    """np.clip(x, lo, hi) (the same values, NaN kept) without its wrapper, which costs more than the work
    on a few dozen steps."""
    return np.minimum(np.maximum(x, lo), hi)


def _nan0(fidx: np.ndarray) -> np.ndarray:
    """Fractional indices (finite or NaN) with NaN read as 0: np.nan_to_num without its inf handling and
    wrapper cost."""
    return np.where(np.isnan(fidx), 0.0, fidx)


def _impute(g: Grid, ic: np.ndarray, to: np.ndarray, reg: np.ndarray, gapc: np.ndarray | None = None):
    """Fill steps lost in bridged gaps from the cadence (vectorised).

    1. An interval between ICs of about k = 2 or 3 local step times that holds lost samples gets k - 1
       evenly spaced ICs (TO unknown).
    2. An IC that was itself read off interpolated samples is moved to the midpoint of its neighbours.
    ``gapc``: running count of bridged samples ((n + 1,), None when there are none).
    Returns (ic, to, region, imputed) with imputed marking ICs not measured directly.
    """
    imputed = ~_observed(g, ic)
    if len(ic) >= 3 and gapc is not None:     # (no bridged samples: no interval lost any, nothing to fill)
        d = ic[1:] - ic[:-1]
        med = median_filter(d, size=min(9, len(d)), mode="nearest")
        ratio = d / med
        k = np.rint(ratio).astype(int)
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
    if len(ic) >= 3 and imputed.any():
        mid = np.flatnonzero(imputed[1:-1] & ~imputed[:-2] & ~imputed[2:]
                             & (reg[:-2] == reg[1:-1]) & (reg[2:] == reg[1:-1])) + 1
        ic[mid] = 0.5 * (ic[mid - 1] + ic[mid + 1])
    return ic, to, reg, imputed


def _chunks(t_ic: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Label runs of consecutive steps: a new chunk at a region change or a step over 1.5x the local median."""
    if len(t_ic) < 2:
        return np.zeros(len(t_ic), dtype=int)
    st = t_ic[1:] - t_ic[:-1]
    med = median_filter(st, size=min(9, len(st)), mode="nearest")
    brk = (region[1:] != region[:-1]) | (st > 1.5 * med) | (st > 0.8)
    return np.concatenate(([0], brk.cumsum()))


def _interp_at(x: np.ndarray, fidx: np.ndarray, nan0: bool = False) -> np.ndarray:
    """x (1-D, or 2-D along axis 0) linearly interpolated at fractional indices fidx (clamped to the ends)."""
    i = _clip(np.floor(fidx).astype(int), 0, len(x) - 2)
    w = _clip(fidx - i, 0, 1)
    if x.ndim == 2 and len(i) >= 1024 and x.T.flags.c_contiguous:
        # many points on columns of channel-major kinematics: gather along the contiguous rows (the same
        # values, far cheaper than picking rows of a strided view; a few points: fewer calls below)
        x01 = x.T.take(np.stack((i, i + 1)), axis=1)        # (k, 2, M)
        if nan0:
            x01 = np.nan_to_num(x01)
        return (x01[:, 0] * (1 - w) + x01[:, 1] * w).T
    if x.ndim == 2:
        w = w[:, None]
    x01 = x[np.stack((i, i + 1))]      # both neighbours in one gather
    if nan0:    # as if x were np.nan_to_num(x)
        x01 = np.nan_to_num(x01)
    return x01[0] * (1 - w) + x01[1] * w


def _median(x: np.ndarray) -> np.float64:
    """np.median(x) of a non-empty 1-D float64 x without its wrappers: the middle value, or the mean of the
    middle two ((a + b) / 2, as np.mean adds and divides them), NaN if there is any NaN (sorted last)."""
    n = len(x)
    h = n // 2
    # only the middle and the last (NaN sorts last) need their sorted places: a partition, not a sort
    s = np.partition(x, (h, n - 1) if n % 2 else (h - 1, h, n - 1))
    if np.isnan(s[-1]):
        return np.float64(np.nan)
    return s[h] if n % 2 else (s[h - 1] + s[h]) / 2


def _std(x: np.ndarray) -> np.float64:
    """np.std(x) of a non-empty 1-D float64 x: numpy's own steps (the same number) without its wrappers."""
    d = x - np.add.reduce(x, keepdims=True) / len(x)
    return np.sqrt(np.add.reduce(d * d) / len(x))


def _sides(g: Grid, ic: np.ndarray, to: np.ndarray, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Side of each step from chunk-wide evidence (see module docstring)."""
    m = len(ic)
    gct = to - ic
    known = gct[~np.isnan(gct)]       # np.nanmedian(gct) is np.median of these, with more wrapping
    to = np.where(np.isfinite(to), to, ic + (_median(known) if np.isfinite(known).any() else 0.2 / g.dt))
    mid = 0.5 * (ic + to)
    nxt = np.concatenate((ic[1:], [ic[-1] + (ic[-1] - ic[-2] if m > 1 else 50)]))
    nxt = np.minimum(nxt, g.n - 2)
    ang = g.angles
    stride = max(1, g.n // 20000)    # a sparse look is enough to tell whether the gyro angles exist
    # the finite share of obliquity and rotation over the ok samples (counted, not gathered)
    ok_s = g.ok[::stride]
    n_ok = 2 * np.count_nonzero(ok_s)
    have_angles = (ang.shape[1] >= 3 and n_ok > 0
                   and np.count_nonzero(np.isfinite(ang[::stride, 1:3]) & ok_s[:, None]) / n_ok > 0.9)
    if have_angles:
        # obliquity and rotation at IC, mid-stance and the next IC in one call; NaN read as 0 at the few
        # samples used (no full-length copy)
        v = _interp_at(ang[:, 1:3], np.concatenate((ic, mid, nxt)), nan0=True)
        f_obl = SIDE_OBLIQUITY_SIGN * (v[m:2 * m, 0] - v[:m, 0])
        f_rot = SIDE_ROTATION_SIGN * (v[2 * m:, 1] - v[:m, 1])
        score = f_obl / (_std(f_obl) + 1e-9) + f_rot / (_std(f_rot) + 1e-9)
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
    sd = np.maximum(sd, 0.25 * _median(np.abs(score)) + 1e-9)   # few-step chunks: no overconfidence
    z = np.abs(ev) / (np.sqrt(np.maximum(cnt, 1)) * sd)
    conf_chunk = np.where(cnt > 1, ndtr(z), 0.5)
    left_even = ev[chunk] >= 0
    is_left = (par > 0) == left_even
    side = np.where(is_left, "L", "R").astype("<U1", copy=False)
    return side, conf_chunk[chunk].round(4), method
