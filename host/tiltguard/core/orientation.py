"""Pelvic tilt, obliquity and rotation over time: a vectorised, zero-phase complementary filter.

How (all steps are whole-array operations):

1. Rotate accelerometer and gyro into the body forward/left/up frame (the gyro into the pelvis frame, an
   output) with the estimated mounting and remove the gyro bias found while standing (float32: the
   sensors are 16-bit).
2. Slow parts come from gravity. On a ~50 Hz copy (means over blocks of sample slots on the absolute
   time grid), small-angle gyro angles are split into fast parts; the specific force de-rotated by them is
   averaged on a fixed 0.1 s time grid (bins hold whole blocks) and low-passed (Hann-window normalised
   convolution); over whole strides its mean is gravity, so its direction gives the slow tilt and
   obliquity even under 2-3 g running accelerations. Turns (centripetal force) and the seconds around a
   change of activity (pace changes) count less.
3. Fast parts come from the gyro at the full rate: Euler-angle rates integrated (trapezoid increments).
   The exact rates of the conventions' rotation order differ from the small-angle ones by coupling terms
   (pelvic rotation x obliquity rectifies into a steady tilt ramp); those are evaluated on the 50 Hz copy
   at the first-pass angles, integrated, and added.
   ``angle = gyro_angle + LP(gravity_angle - gyro_angle)``: an exact complementary split, zero phase, and a
   constant gyro bias (a ramp in the integral) passes through the low-pass and cancels. The low-passed
   angles are bin means of block sums, and the corrections and slow parts reach the samples as one block
   series, linear between block centres. Without lost samples or gaps the blocks are (blocks, slots)
   views: the running sum runs over the block totals (float64) and within each block (float32), and the
   full rate sees a few whole-array operations per slot (:func:`_angles_regular`); otherwise the angles
   are integrated sample by sample (``cumsum``, :func:`_angles_general`), the same numbers up to rounding.
4. Nothing is integrated across a gap: each gap-free segment gets its own constant (tilt/obliquity: its
   Hann-tapered trend is replaced by the gravity one; yaw: placed on the heading path integrated from the
   low-passed yaw rate). Rotation is yaw minus its low-passed version (the running heading).

The fixed time grid and the short filter memory make results on any window identical to the whole
session away from the window's edges, which ``core.stream`` relies on.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

try:   # the C filters behind scipy.ndimage's public wrappers (see _convolve0)
    from scipy.ndimage import _nd_image
except ImportError:   # pragma: no cover
    _nd_image = None

from tiltguard.core import activity as act
from tiltguard.core.align import AlignConfig, Mounting, estimate_mounting, gap_list, to_body_flu
from tiltguard.core.kinematics import Kinematics
from tiltguard.errors import InputError
from tiltguard.formats.raw import Recording


@dataclass
class OrientationConfig:
    fc_tilt_hz: float = 0.04      # crossover gyro -> gravity for tilt/obliquity
    fc_heading_hz: float = 0.5    # yaw below this is heading (a ~2 s window), above it pelvic rotation
    fc_nogyro_hz: float = 0.3     # accelerometer-only: stride-averaged gravity
    bin_s: float = 0.1            # fixed time grid for the slow parts
    edge_taper_s: float = 3.0     # rate corrections fade in/out over this long at the recording's ends
    edge_taper_end_s: float | None = None   # ... at its end, if different (core.provisional: 0, it wants the end)
    turn_rate_dps: float = 4.0    # heading rates around this make the gravity reference untrustworthy
    transition_s: float = 4.0     # ... and so do the seconds around a change of activity (pace changes)
    device_agreement: bool = True  # compare the clip's own angles with the host's (a summary figure)
    activity: act.ActivityConfig = field(default_factory=act.ActivityConfig)
    align: AlignConfig = field(default_factory=AlignConfig)


class _Grid:
    """Mean of samples per fixed ``bin_s`` time bin (absolute grid), and interpolation back."""

    def __init__(self, t_s: np.ndarray, bin_s: float, like: "_Grid | None" = None):
        q = t_s / bin_s
        # times are in order: if the first is not negative none is, and truncation is the floor
        b = q.astype(np.intp) if len(q) and q[0] >= 0 else np.floor(q).astype(np.intp)
        # back() needs t / (1 / fs) again: keep this one when it is the same number (saves a pass)
        self._q = q if 1.0 / (1.0 / bin_s) == bin_s else None
        self.b0 = int(b[0]) if like is None else like.b0
        b -= self.b0
        self.idx = b
        self.nb = int(self.idx[-1]) + 1 if like is None else like.nb
        count = np.bincount(self.idx, minlength=self.nb)
        self.count = count.astype(np.float64)
        self.full = count > 0
        # first sample of every non-empty bin (samples are in time order): bin sums by one reduceat
        self._first = (count.cumsum() - count)[self.full]   # (methods: no wrapper)
        self._all_full = len(self._first) == self.nb
        # the same number q of samples in every bin but the first and the last (a regular block grid: 5
        # blocks per bin)? Then the inner bins are summed slot by slot: (q, start of bin 1, end of bin nb - 2)
        self._reg = None
        if self.nb >= 3 and count[0] > 0 and count[-1] > 0 and count[1] > 0 and (count[1:-1] == count[1]).all():
            self._reg = (int(count[1]), int(count[0]), int(len(t_s) - count[-1]))
        self._count_max = self._ckey = None
        # bin centres: the same numbers as ``like``'s when the bins are (same nb, b0 and bin_s)
        same = like is not None and like.fs == 1.0 / bin_s
        self.tc = like.tc if same else (np.arange(self.nb) + self.b0 + 0.5) * bin_s
        self.t = t_s
        self.fs = 1.0 / bin_s
        self._rep = self._f = self._work = self._j = None

    def sums(self, col: np.ndarray) -> np.ndarray:
        """Per-bin sums (float64) of one (N,) channel, or of each column of (N, k) ones (one call: numpy
        sums each column alike); empty bins are 0."""
        if self._reg is not None and len(col) == len(self.t) and len(col) >= _SLOTS_MIN:
            # slot by slot over strided views of the (k, N) rows: far faster than reduceat's per-bin loop
            # (on a long series; on a live window's few bins the one reduceat call costs less)
            q, a, e = self._reg
            rows = col.T if col.ndim == 2 else col[None]
            out = np.empty((len(rows), self.nb))
            np.add.reduce(rows[:, :a], axis=1, dtype=np.float64, out=out[:, 0])
            np.add.reduce(rows[:, e:], axis=1, dtype=np.float64, out=out[:, -1])
            inner = out[:, 1:-1]
            slots = range(q)
            inner[...] = rows[:, a: e: q]
            for s in slots[1:]:
                inner += rows[:, a + s: e: q]
            return out.T if col.ndim == 2 else out[0]
        s = np.add.reduceat(col, self._first, axis=0, dtype=np.float64)
        if self._all_full:
            return s
        out = np.zeros((self.nb,) + s.shape[1:])
        out[self.full] = s
        return out

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Bin means of (N,) or (N, k) ``x``; empty bins are interpolated."""
        cols = x.reshape(len(x), -1)
        out = np.empty((self.nb, cols.shape[1]))
        for j in range(cols.shape[1]):  # loop over channels, not samples
            s = self.sums(cols[:, j])
            m = np.divide(s, self.count, out=np.full(self.nb, np.nan), where=self.full)
            if not self._all_full:
                m = np.interp(self.tc, self.tc[self.full], m[self.full])
            out[:, j] = m
        return out if x.ndim > 1 else out[:, 0]

    def smooth(self, x, fc_hz, weight: np.ndarray | None = None) -> np.ndarray:
        """Low-passed (N,) or (N, k) ``x`` (or a tuple of (N,) columns and (N, k) arrays, k columns in all) on
        the grid by normalised convolution with a Hann kernel.

        Each bin counts by its number of samples (times ``weight`` per bin), so a bin that a gap left half
        empty does not count like a full one, empty bins count zero, and near an end the result is the
        weighted mean of the data there. The kernel spans ``1 / fc_hz`` seconds (one per column if
        ``fc_hz`` is a sequence); being finite, a window of a session gives exactly the session's result
        farther than half a kernel from the window's ends.
        """
        items, x_ndim = (x, 2) if isinstance(x, tuple) else ((x,), x.ndim)
        # the bin sums of every column: one reduceat per item
        cols = [c for s in [self.sums(a) for a in items] for c in (s.T if s.ndim > 1 else (s,))]
        if weight is None:      # the grid's own counts: their maximum once per grid, the filtered ones cached
            if self._count_max is None:
                self._count_max = max(float(self.count.max()), 1e-12)
            out = self._smooth_cols(cols, self.count, fc_hz, None, self._count_max, self._count_key)
        else:
            w = self.count * weight
            out = self._smooth_cols(cols, w, fc_hz, weight, max(float(w.max()), 1e-12), None)
        return out if x_ndim > 1 else out[:, 0]

    def smooth_sums(self, sums: np.ndarray, w: np.ndarray, fc_hz) -> np.ndarray:
        """:meth:`smooth` of series given by their (nb, k) bin sums over ``w`` samples per bin ((nb,) float64)."""
        key = (lambda: w.tobytes()) if self.nb <= _DEN_MAX_BINS else None
        return self._smooth_cols(list(sums.T), w, fc_hz, None, max(float(w.max()), 1e-12), key)

    def _smooth_cols(self, cols: list, w: np.ndarray, fc_hz, weight, w_max: float, key_fn) -> np.ndarray:
        """Normalised convolution of the bin-sum columns ``cols`` (times ``weight`` per bin, if given) with
        bin weights ``w``; ``key_fn`` names ``w`` for the cache of filtered weights (None: not cached)."""
        # the cut-off per column, grouped in plain Python (np.unique/broadcast_to cost more than the filter)
        if isinstance(fc_hz, (float, int)) or (not isinstance(fc_hz, (tuple, list)) and np.ndim(fc_hz) == 0):
            parts = {float(fc_hz): list(range(len(cols)))}
        else:
            fcs = [float(fc) for fc in fc_hz]
            if len(fcs) != len(cols):
                raise ValueError("one cut-off per column expected")
            # the columns in parts by cut-off (one to three)
            parts = {fc: [j for j, f in enumerate(fcs) if f == fc] for fc in sorted(set(fcs))}
        out = np.empty((self.nb, len(cols)))
        for fc, sel in parts.items():   # loop over the cut-offs, not samples
            ker, rev, ker_sum = _kernel_parts(self.fs / fc)
            # short kernel or series: direct beats the FFT
            direct = len(ker) <= 61 or self.nb * len(ker) <= 50_000
            # on a short grid: the filtered weights come from the cache (live windows share a few count
            # patterns), the same numbers as filtering them along (each column is filtered alone)
            cached = key_fn is not None and direct and self.nb <= _DEN_MAX_BINS
            key = (key_fn(), self.fs / fc) if cached else None
            den = _DEN_CACHE.get(key) if key is not None else None
            k = len(sel)
            both = np.empty((self.nb, k + (den is None)))
            for i, j in enumerate(sel):  # loop over channels
                both[:, i] = cols[j]
            if weight is not None:
                both[:, :k] *= weight[:, None]
            if den is None:
                both[:, -1] = w
            f = _convolve0(both, ker, rev) if direct else _fftconvolve_same(both, ker)
            if den is None:
                den = np.maximum(f[:, -1:], 1e-6 * ker_sum * w_max)
                if key is not None:
                    if len(_DEN_CACHE) >= 256:
                        _DEN_CACHE.clear()
                    den.flags.writeable = False
                    _DEN_CACHE[key] = den
            if sel[-1] - sel[0] == k - 1:     # adjacent columns: divide straight into them
                np.divide(f[:, :k], den, out=out[:, sel[0]: sel[-1] + 1])
            else:
                out[:, sel] = f[:, :k] / den
        return out

    def _count_key(self) -> bytes:
        if self._ckey is None:
            self._ckey = self.count.tobytes()
        return self._ckey

    def back(self, y: np.ndarray, t: np.ndarray | None = None, scratch: bool = False) -> np.ndarray:
        """Linear interpolation of a bin series (bin centres) back to the sample times (or ``t``); ``y`` may
        also hold k series as (k, nb) rows (one call for all, (k, N) rows back; not with ``t``).

        ``scratch``: (k, N) rows (k <= 3) returned in a buffer of the grid that the next such call
        overwrites (each fresh array of a few MB costs page faults; the callers use the rows at once)."""
        if t is not None:
            return np.interp(t, self.tc, y)
        if self._f is None:
            u = self._q if self._q is not None else self.t / (1.0 / self.fs)
            self._q = None
            u -= self.b0 + 0.5
            # samples are in time order, so j = clip(floor(u)) only steps up: y[j] is y repeated by the run
            # lengths of j (a repeat is twice as fast as the gather, and no index array is kept), which are
            # the counts of u between whole numbers
            m = max(self.nb - 1, 1)
            edges = np.empty(m + 1, dtype=np.intp)                                  # [0, #(u < k)..., n]
            edges[0], edges[m] = 0, len(u)
            edges[1:m] = u.searchsorted(np.arange(1, m), side="left")
            self._rep = np.zeros(self.nb, dtype=np.intp)                                 # j <= nb - 2
            np.subtract(edges[1:], edges[:-1], out=self._rep[:m])
            # clip as maximum/minimum (no clip wrapper): u is never -0.0 (a difference with a nonzero
            # b0 + 0.5), nor is u - j, so the signs of zero agree too
            j = np.floor(u)
            np.maximum(j, 0.0, out=j)
            np.minimum(j, max(self.nb - 2, 0), out=j)
            u -= j
            np.maximum(u, 0.0, out=u)
            np.minimum(u, 1.0, out=u)
            self._f = u.astype(np.float32)
        if self.nb < 2:
            return np.full(y.shape[:-1] + (len(self.t),), y[..., :1])
        # per-bin slopes first: two small series repeated to the samples instead of gathers at full rate
        dy = np.empty_like(y)
        np.subtract(y[..., 1:], y[..., :-1], out=dy[..., :-1])
        dy[..., -1] = 0.0
        if not (scratch and y.ndim == 2 and len(y) <= 3):
            out = dy.repeat(self._rep, axis=-1)
            out *= self._f
            out += y.repeat(self._rep, axis=-1)
            return out
        if self._work is None:
            self._work = np.empty((2, 3, len(self.t)))
            self._j = np.arange(self.nb).repeat(self._rep)      # the bin before each sample
        out, tmp = self._work[0, : len(y)], self._work[1, : len(y)]
        # gathers into the buffers: the same values as the repeats above
        np.take(dy, self._j, axis=1, out=out, mode="clip")
        out *= self._f
        out += np.take(y, self._j, axis=1, out=tmp, mode="clip")
        return out


_SLOTS_MIN = 8192       # series at least this long are summed slot by slot (shorter: fewer numpy calls)
_DEN_CACHE: dict = {}   # (bin counts, kernel length) -> the filtered counts (floored) of _Grid.smooth
_DEN_MAX_BINS = 2048    # ... of grids this short (live windows; a whole session would only fill memory)


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(ker_bytes: bytes, nfft: int) -> np.ndarray:
    """rfft of a kernel column zero-padded to ``nfft`` (the same call scipy's fftconvolve makes)."""
    ker = np.frombuffer(ker_bytes)
    spec = sp_fft.rfftn(ker[:, None], [nfft], axes=[0])
    spec.flags.writeable = False       # shared between calls
    return spec


def _fftconvolve_same(x: np.ndarray, ker: np.ndarray) -> np.ndarray:
    """``signal.fftconvolve(x, ker[:, None], mode="same", axes=0)`` with the kernel's spectrum cached (the
    same FFT calls, so the same numbers): every window of a stream and every call reuses it."""
    n, m = len(x), len(ker)
    full = n + m - 1
    nfft = sp_fft.next_fast_len(full, True)
    y = sp_fft.irfftn(sp_fft.rfftn(x, [nfft], axes=[0]) * _kernel_spectrum(ker.tobytes(), nfft), [nfft], axes=[0])
    start = (full - n) // 2
    return y[start: start + n].copy()


@functools.lru_cache(maxsize=16)
def _hann_kernel(length_bins: float) -> np.ndarray:
    """Hann window of about ``length_bins`` bins (odd, at least 3), summing to 1 (cached, read-only)."""
    n = max(3, int(round(length_bins)) | 1)
    k = np.hanning(n + 2)[1:-1]
    k = k / k.sum()
    k.flags.writeable = False
    return k


@functools.lru_cache(maxsize=16)
def _kernel_parts(length_bins: float) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`_hann_kernel`, its reverse (a contiguous copy, as ``ndimage.convolve1d`` hands it to
    ``correlate1d``) and its sum: cached, as rebuilding them costs more than a short filter."""
    ker = _hann_kernel(length_bins)
    rev = ker[::-1].copy()
    rev.flags.writeable = False
    return ker, rev, float(ker.sum())


def _convolve0(x: np.ndarray, ker: np.ndarray, rev: np.ndarray) -> np.ndarray:
    """``ndimage.convolve1d(x, ker, axis=0, mode="constant")`` for float64 (n, k) ``x``, an odd-length
    float64 kernel and ``rev`` its contiguous reverse: the same C filter, called without the wrappers'
    per-call argument handling (which costs more than the filter on the short series of a live window)."""
    if _nd_image is None or x.dtype != np.float64:
        return ndimage.convolve1d(x, ker, axis=0, mode="constant")
    out = np.empty_like(x)
    _nd_image.correlate1d(x, rev, 0, out, 4, 0.0, 0)   # 4: mode "constant"
    return out


def _private_filter_ok() -> bool:
    """The private C call still takes these arguments and gives the public wrapper's numbers (checked once,
    at import: a scipy that changed it falls back to the wrapper instead of failing mid-run)."""
    x = np.arange(24.0).reshape(8, 3) ** 1.5
    ker = np.array([0.25, 0.5, 0.25, 0.125, 0.0625])
    try:
        out = np.empty_like(x)
        _nd_image.correlate1d(x, np.ascontiguousarray(ker[::-1]), 0, out, 4, 0.0, 0)
        return bool(np.array_equal(out, ndimage.convolve1d(x, ker, axis=0, mode="constant")))
    except Exception:  # noqa: BLE001 - any failure: use the public wrapper
        return False


if _nd_image is not None and not _private_filter_ok():   # pragma: no cover
    _nd_image = None


def _seg_mean(segs: "_Segments", x: np.ndarray) -> np.ndarray:
    """Each sample's segment's Hann-tapered mean of (N,) ``x``."""
    m = np.add.reduceat(segs.w * x, segs.starts) / segs.wsum
    return m.repeat(segs.lens)


class _Segments:
    """Gap-free stretches; each gets its own integration constant (nothing is integrated across a gap)."""

    def __init__(self, n: int, gap_idx: np.ndarray):
        k = len(gap_idx) + 1
        self.starts = np.empty(k, dtype=np.intp)
        self.starts[0] = 0
        self.starts[1:] = gap_idx
        self.lens = lens = np.empty(k, dtype=np.intp)
        np.subtract(self.starts[1:], self.starts[:-1], out=lens[:-1])
        lens[-1] = n - self.starts[-1]
        # per-sample values of a segment by repeating it over the segment (cheaper than gathers)
        self.owner = np.arange(k).repeat(lens)
        pos = np.arange(n) - self.starts.repeat(lens)
        # Hann taper: a tapered mean of a partial stride leaks far less than a plain mean
        self.w = np.sin(np.pi * (pos + 0.5) / lens.repeat(lens)) ** 2
        self.wsum = np.add.reduceat(self.w, self.starts)

    def detrend(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Subtract each segment's tapered least-squares line from (N, k) ``x`` (in place).

        Small-angle rate integration picks up a steady ramp (pelvic rotation x obliquity rectifies);
        within a segment it is removed here, the slow truth comes back from gravity.
        """
        u = t - t[self.starts].repeat(self.lens)
        w = self.w
        r = lambda a: np.add.reduceat(a, self.starts, axis=0)  # noqa: E731
        s0, s1, s2 = self.wsum, r(w * u), r(w * u * u)
        wx = w[:, None] * x
        sx, sux = r(wx), r(u[:, None] * wx)
        det = s0 * s2 - s1 * s1
        ok = det > 1e-12 * np.maximum(s0 * s2, 1e-300)
        det = np.where(ok, det, 1.0)
        slope = np.where(ok[:, None], (s0[:, None] * sux - s1[:, None] * sx) / det[:, None], 0.0)
        icpt = (sx - slope * s1[:, None]) / s0[:, None]
        x -= icpt.repeat(self.lens, axis=0) + slope.repeat(self.lens, axis=0) * u[:, None]
        return x


def _fill_nan(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    x = x.copy()
    for j in range(x.shape[1]):
        b = bad[:, j]
        if b.all():
            x[:, j] = 0.0
        elif b.any():
            x[b, j] = np.interp(t[b], t[~b], x[~b, j])
    return x


def _device_shape(grid: _Grid, t: np.ndarray, device_deg: np.ndarray | None, cfg: "OrientationConfig"
                  ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The within-stride part of the clip's own angles (compact mode: no gyro on the host): (3, N) rad, and
    the samples that had none ((N,) bool, None if every sample had them); None if the clip sent no angles.

    The clip's fusion has the gyro; the host has only its angles. Their part above ``fc_nogyro_hz`` (the
    angle minus the same grid smoothing the gravity trend gets) is the shape within each stride, and
    complements the host's gravity trend below it: the trend stays in the host's mounting frame, so a
    different calibration on the clip only offsets what is removed. Samples without angles (the clip sends
    none before it is calibrated) are bridged here and their strides blanked by ``shape_missing``.
    """
    if device_deg is None:
        return None
    dev = np.asarray(device_deg, dtype=np.float64)
    ok = np.isfinite(dev).all(axis=1)
    if not ok.any():
        return None
    if not ok.all():   # a sample is used whole or not at all
        dev = _fill_nan(np.where(ok[:, None], dev, np.nan), t)
    dev = dev * (np.pi / 180.0)
    shape = dev.T - grid.back(np.ascontiguousarray(grid.smooth(dev, cfg.fc_nogyro_hz).T))
    return shape, None if ok.all() else ~ok


def _reference_weight(grid: _Grid, heading_rate: np.ndarray, activity: np.ndarray,
                      cfg: "OrientationConfig") -> np.ndarray:
    """Trust in the gravity reference per grid bin (0..1).

    Turning adds a centripetal specific force (speed x heading rate) and changing pace a forward one;
    neither is gravity, so those bins count less and the gyro bridges them.
    """
    rate = np.degrees(heading_rate)   # rad/s -> deg/s, on the grid
    w = np.exp(-((rate / cfg.turn_rate_dps) ** 2))
    # one activity throughout (a live window, usually): its bin means are that code exactly, no change
    if activity.min() == activity.max():
        return np.maximum(w, 1e-3)
    code = grid.mean(activity.astype(np.float64))
    change = np.zeros(len(code), dtype=bool)     # = |diff(code, prepend=code[0])| > 1e-6 (no np.diff wrapper)
    np.greater(np.abs(code[1:] - code[:-1]), 1e-6, out=change[1:])
    if change.any():
        k = max(1, int(round(cfg.transition_s * grid.fs)))
        near = ndimage.maximum_filter1d(change.astype(np.uint8), 2 * k + 1) > 0
        w[near] *= 0.05
    return np.maximum(w, 1e-3)


def _gravity_angles(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tilt and obliquity (rad) from a mean specific-force direction in body forward/left/up."""
    tilt = np.arctan2(-m[:, 0], m[:, 2])
    obl = np.arctan2(m[:, 1], np.hypot(m[:, 0], m[:, 2]))
    return tilt, obl


def orientation(rec: Recording, mounting: Mounting | None = None, activity: np.ndarray | None = None,
                config: OrientationConfig | None = None, fs_hz: float | None = None) -> Kinematics:
    """Pelvic angles and level-frame acceleration of a recording.

    Parameters
    ----------
    rec : the recording (device frame).
    mounting : sensor-to-pelvis rotation; estimated with :func:`core.align.estimate_mounting` when None.
    activity : per-sample activity codes; computed with :func:`core.activity.classify` when None.
    fs_hz : nominal sample rate, Hz; ``rec.fs_hz`` when None.

    Returns
    -------
    Kinematics with ``angles_deg`` [tilt, obliquity, rotation] (deg, relative to standing), ``acc_level_g``
    [forward, left, up] (g), ``gyro_body_dps`` (pelvis frame) and ``meta`` (mounting, gaps, availability).
    """
    cfg = config or OrientationConfig()
    t = np.asarray(rec.t_s, dtype=np.float64)
    if len(t) < 2:
        raise InputError("recording has fewer than 2 samples")
    fs = float(fs_hz) if fs_hz else rec.fs_hz
    acc_s = np.asarray(rec.acc_g)
    if not np.isfinite(acc_s.sum()) and not np.isfinite(acc_s).all():
        acc_s = _fill_nan(np.asarray(acc_s, dtype=np.float64), t)
    if activity is None:
        activity = act.classify(acc_s, fs, cfg.activity)
    if mounting is None:
        mounting = estimate_mounting(t, acc_s, rec.gyro_dps, fs, activity, cfg.align)
    M = to_body_flu(mounting)
    # channel-major (3, N) float32 throughout: every full-rate operation runs over contiguous rows
    acc = _rotate_cols(acc_s, M)                                          # body forward/left/up, g
    dt = np.subtract(t[1:], t[:-1])
    gap_idx = (dt > cfg.align.gap_factor / fs).nonzero()[0] + 1      # = find_gaps(t, ...), one diff pass
    valid = np.ones(len(t), dtype=bool)

    gyro = rec.gyro_dps
    # one quick whole-array test first: usually every gyro value is finite
    gyro_finite = gyro is not None and bool(np.isfinite(np.sum(gyro)))
    has_gyro = gyro is not None and (gyro_finite or bool(np.isfinite(gyro).any()))
    meta: dict = {"mounting": mounting.to_dict(), "gaps": gap_list(t, gap_idx), "gyro": bool(has_gyro),
                  "shape": "gyro" if has_gyro else None, "unavailable": []}
    if has_gyro:
        if not gyro_finite:
            valid &= np.isfinite(gyro).all(axis=1)
        g = gyro if valid.all() else _fill_nan(np.asarray(gyro, dtype=np.float32), t)
        # the gyro in the pelvis frame (x up, y left, z back), deg/s: an output, and (rows 1, -2, -0 in rad/s)
        # the small-angle rates [tilt, obliquity, yaw] that the angles integrate
        gb = _rotate_cols(g, _PELVIS_ROWS @ M, offset=mounting.gyro_bias_dps)
        del g
        segs = _Segments(len(t), gap_idx) if len(gap_idx) else None

        # ---- slow parts (gravity) and rate corrections, on a ~50 Hz copy
        d = max(1, int(fs // 50.0))
        # means over blocks of d sample slots on the absolute time grid (no aliasing of impacts, and any
        # window of a session has the same blocks); a block-mean rate times the block's samples / fs is
        # the block's integral, and a gap adds nothing
        starts = _block_starts(t, fs, d)
        cnt = np.empty(len(starts), dtype=np.intp)
        np.subtract(starts[1:], starts[:-1], out=cnt[:-1])
        cnt[-1] = len(t) - starts[-1]
        regular = _regular_blocks(starts, len(t), d)
        td = _block_sums_1d(t, starts, d, regular) / cnt
        sd = _block_sums(gb, starts, d, regular).astype(np.float64)
        sd *= (np.pi / 180.0) / cnt
        small_d = np.empty_like(sd)                   # (3, n) rows [tilt, obliquity, yaw] rates, rad/s
        small_d[0] = sd[1]
        np.negative(sd[2], out=small_d[1])
        np.negative(sd[0], out=small_d[2])
        del sd
        ad = (_block_sums(acc, starts, d, regular) / cnt.astype(np.float32)).T
        span = cnt / fs
        if segs is not None:
            gi_d = np.flatnonzero(np.diff(segs.owner[starts]) != 0) + 1
        else:
            gi_d = np.zeros(0, dtype=np.intp)
        segs_d = _Segments(len(td), gi_d) if len(gi_d) else None
        # the 0.1 s bins hold whole blocks (bins and blocks are both on the sample-slot grid), so every bin
        # series of the angles comes from block sums
        grid_d = _Grid(td, cfg.bin_s)
        small_d = small_d.T                           # (n, 3) view
        ang_d = _block_integral(small_d, span)
        hp_d, rot_d, rate_d = _fast(ang_d, small_d[:, 2], segs_d, grid_d, td, cfg)
        # float32 like the block-mean samples themselves (float64 sines cost 15x more)
        # apply_euler's float32 arithmetic on the (3, n) rows of ``ad`` (used up): contiguous rows for the
        # bin sums below
        a_hp = _level_rows(np.ascontiguousarray(ad.T), hp_d[:, 0].astype(np.float32),
                           hp_d[:, 1].astype(np.float32), rot_d.astype(np.float32)).T
        weight = _reference_weight(grid_d, rate_d, activity[starts], cfg)
        m = grid_d.smooth(a_hp, cfg.fc_tilt_hz, weight)
        del a_hp
        tilt_lf, obl_lf = _gravity_angles(m)             # rad, on the 0.1 s grid
        lf_d = np.empty((2, len(tilt_lf)))
        lf_d[0], lf_d[1] = tilt_lf, obl_lf
        lf_d = grid_d.back(lf_d, scratch=True)
        tilt_d = hp_d[:, 0] + lf_d[0]
        obl_d = hp_d[:, 1] + lf_d[1]
        del lf_d
        # exact minus small-angle rates of R = R_down(yaw) R_forward(obl) R_left(tilt), and their integral
        t32, o32 = tilt_d.astype(np.float32), obl_d.astype(np.float32)
        ct, st, co, so = (np.cos(t32).astype(np.float64), np.sin(t32).astype(np.float64),
                          np.cos(o32).astype(np.float64), np.sin(o32).astype(np.float64))
        del t32, o32
        wf, wl, wu = small_d[:, 1], small_d[:, 0], -small_d[:, 2]
        yaw_rate = (wf * st - wu * ct) / co
        # (3, n) rows, so the block integral runs over contiguous rows; (n, 3) view below
        corr = np.empty((3, len(td)))
        np.multiply(yaw_rate, so, out=corr[0])
        np.add(wf * (ct - 1.0), wu * st, out=corr[1])
        np.add(yaw_rate, wu, out=corr[2])
        # the first-pass angles are poor within a few seconds of the recording's ends (filter edges); a
        # wrong correction there would be integrated into a step that the low-pass smears back in time
        end_s = cfg.edge_taper_s if cfg.edge_taper_end_s is None else cfg.edge_taper_end_s
        ends = _ends(td, max(cfg.edge_taper_s, end_s))   # the taper is 1 elsewhere
        corr[:, ends] *= _taper(td, cfg.edge_taper_s, ends, end_s)
        del ct, st, co, so, small_d, ang_d, hp_d, rot_d, ad

        # ---- at the full rate: gyro angles plus the block-centre corrections and the slow gravity parts
        lf = (tilt_lf, obl_lf)
        if segs is None and regular:
            corr *= span                              # the corrections' increments per block
            tilt, obl, rot = _angles_regular(gb, t, dt, starts, cnt, td, corr, grid_d, lf, cfg, d)
        else:
            corr_int = _block_integral(corr.T, span)  # their running sum to each block's middle
            tilt, obl, rot = _angles_general(_small_rates(gb), t, dt, gap_idx, segs, starts, cnt, td, corr_int.T,
                                             grid_d, lf, yaw_rate, cfg)
            del corr_int
        del corr
        gyro_body = gb.T
    else:
        grid = _Grid(t, cfg.bin_s)
        m = grid.smooth(acc.T, cfg.fc_nogyro_hz)
        tilt_lf, obl_lf = _gravity_angles(m)
        tilt, obl = grid.back(tilt_lf), grid.back(obl_lf)
        gyro_body = None
        dev = _device_shape(grid, t, rec.angles_deg, cfg)
        if dev is not None:
            shape, meta["shape_missing"] = dev
            tilt = tilt + shape[0]
            obl = obl + shape[1]
            rot = shape[2]
            meta["shape"] = "clip"
            meta["angles_quality"] = (f"gravity trend below {cfg.fc_nogyro_hz} Hz + the clip's angles above it "
                                      "(compact mode, no gyro)")
        else:
            rot = np.zeros(len(t))
            meta["unavailable"] = ["rotation_deg", "tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg",
                                   "pelvic_drop_l_deg", "pelvic_drop_r_deg", "tilt_ic_deg"]
            meta["angles_quality"] = "stride-averaged gravity trend (no gyro)"

    tilt = np.asarray(tilt, dtype=np.float32)
    obl = np.asarray(obl, dtype=np.float32)
    rot = np.asarray(rot, dtype=np.float32)
    acc_level = _level_rows(acc, tilt, obl, rot).T     # (N, 3) view of the (3, N) rows
    del acc
    angles = np.empty((3, len(t)), dtype=np.float32)
    np.multiply(tilt, np.float32(180.0 / np.pi), out=angles[0])
    np.multiply(obl, np.float32(180.0 / np.pi), out=angles[1])
    if meta["shape"]:
        np.multiply(rot, np.float32(180.0 / np.pi), out=angles[2])
    else:
        angles[2] = np.nan
    angles = angles.T

    if rec.angles_deg is not None and cfg.device_agreement:
        meta["device_angles"] = device_agreement(angles, rec.angles_deg, activity == act.RUNNING)
    return Kinematics(t_s=t, fs_hz=fs, acc_level_g=acc_level, angles_deg=angles, gyro_body_dps=gyro_body,
                      valid=valid, running=activity == act.RUNNING, activity=activity, meta=meta)

def _rotate_cols(x: np.ndarray, M: np.ndarray, offset=None) -> np.ndarray:
    """``M @ (x - offset).T`` for (N, 3) ``x``: a (3, N) float32 array (short windows: the same arithmetic as
    ``angles.rotate_rows``; long recordings: a BLAS product, equal to rounding)."""
    # one transposing pass to contiguous columns (none if x already is float32 channel rows: read-only
    # then, the offset is subtracted in a copy)
    xt = np.asarray(x).T.astype(np.float32, order="C", copy=offset is not None)
    if offset is not None:
        xt -= np.asarray(offset, dtype=np.float64).astype(np.float32)[:, None]
    m = np.asarray(M, dtype=np.float64).astype(np.float32)
    if xt.shape[1] < _SLOTS_MIN:     # a short window: all three output rows per call (fewer calls), the
        # same float32 operations in the same order per element: r = x0 M[i, 0] + x1 M[i, 1] + x2 M[i, 2]
        out = np.multiply(xt[0], m[:, 0:1])
        tmp = np.multiply(xt[1], m[:, 1:2])
        out += tmp
        out += np.multiply(xt[2], m[:, 2:3], out=tmp)
        return out
    # a long recording: one matrix product (BLAS reads the rows once; the elementwise sums above take about
    # five passes), on one thread: spare BLAS threads would spin and cost more CPU time than they save
    with _one_blas_thread():
        return np.matmul(m, xt)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
        return ThreadpoolController()      # finding the loaded BLAS takes a few ms: once
    except Exception:  # noqa: BLE001 - no threadpoolctl (or it fails): leave BLAS as it is
        return None


def _one_blas_thread():
    ctl = _blas_controller()
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else contextlib.nullcontext()


def _integrate_rows(r: np.ndarray, dt: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid integrals (float64) of the three float32 rate rows of ``r``; no increment across the ``cut``
    intervals (gaps): float32 increments summed in float64.

    Returns ``(pair, last)``: rows 0 and 1 side by side in an (N, 2) array, row 2 as (N,). A running sum is
    bound by the latency of its additions; viewed as complex numbers the pair is summed by one ``cumsum``
    at the cost of one row (the same additions, so the same numbers).
    """
    n = r.shape[1]
    half = np.multiply(dt, 0.5, dtype=np.float32)     # = float32(0.5 dt): halving is exact
    pair = np.empty((n, 2))
    last = np.empty(n)
    inc = np.add(r[:, 1:], r[:, :-1])                 # the three rows at once
    inc *= half
    inc[:, cut] = 0.0
    pair[0] = 0.0
    last[0] = 0.0
    # float64 first, then an in-place running sum (no buffered casting)
    pair[1:, 0], pair[1:, 1], last[1:] = inc[0], inc[1], inc[2]
    z = pair.view(np.complex128)[:, 0]
    z.cumsum(out=z)
    last.cumsum(out=last)
    return pair, last


def _level_rows(acc: np.ndarray, tilt, obl, rot) -> np.ndarray:
    """:func:`angles.apply_euler` in float32 on (3, N) body rows (same arithmetic; ``acc`` is used as
    scratch space); returns the level-frame (3, N) rows. Each result is computed in its final row (no
    copies at the end)."""
    f, l, u = acc[0], acc[1], acc[2]
    out = np.empty_like(acc)
    tmp = np.empty_like(f)
    ct, st = np.cos(tilt), np.sin(tilt)
    f1 = np.multiply(ct, f, out=out[1])       # R_left(tilt): f1 = ct f + st u, u1 = ct u - st f
    f1 += np.multiply(st, u, out=tmp)
    u *= ct
    f *= st
    u -= f                                    # u1 (f's row is free from here)
    c, s = np.cos(obl, out=ct), np.sin(obl, out=st)   # reuse the buffers (no fresh allocations)
    l2 = np.multiply(c, l, out=f)             # R_forward(obliquity): l2 = c l - s u1, u2 = s l + c u1
    l2 -= np.multiply(s, u, out=tmp)
    l *= s
    u2 = np.multiply(u, c, out=out[2])
    u2 += l
    c, s = np.cos(rot, out=ct), np.sin(rot, out=st)
    f3 = np.multiply(c, f1, out=out[0])       # R_down(rotation) = rotation about +up by -rotation
    f3 += np.multiply(s, l2, out=tmp)
    l2 *= c
    f1 *= s
    np.subtract(l2, f1, out=out[1])
    return out


def _block_integral(rates: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Integral of block-mean rates (N, k) up to each block's middle; ``span`` = block lengths, s."""
    inc = rates.T * span                      # (k, N): each running sum over one contiguous row
    if len(inc) != 3:
        out = inc.cumsum(axis=1)
        inc *= 0.5
        out -= inc
        return out.T
    # rows 0 and 1 summed as complex numbers by one cumsum (see _integrate_rows), row 2 alone
    pair = np.empty((inc.shape[1], 2))
    pair[:, 0], pair[:, 1] = inc[0], inc[1]
    z = pair.view(np.complex128)[:, 0]
    z.cumsum(out=z)
    last = inc[2].cumsum()
    inc *= -0.5
    inc[0] += pair[:, 0]
    inc[1] += pair[:, 1]
    inc[2] += last
    return inc.T


def _block_starts(t: np.ndarray, fs: float, d: int) -> np.ndarray:
    """First sample index of each block of ``d`` sample slots on the absolute grid ``round(t * fs)``."""
    if d == 1:
        return np.arange(len(t))
    # block = floor(slot / d), in float64: exact for whole slots (far below 2**52), and 3x faster than an
    # integer floor division
    blk = np.multiply(t, fs)
    np.rint(blk, out=blk)
    blk /= d
    np.floor(blk, out=blk)
    new = np.empty(len(t), dtype=bool)
    new[0] = True
    np.not_equal(blk[1:], blk[:-1], out=new[1:])
    return new.nonzero()[0]


def _ends(t: np.ndarray, fade_s: float):
    """The samples of (sorted) ``t`` within about ``1.5 fade_s`` of either end (all of them when the
    recording is short or ``fade_s`` is not a positive time): elsewhere :func:`_taper` is exactly 1."""
    if not (fade_s > 0 and np.isfinite(fade_s)):
        return slice(None)
    lo = int(t.searchsorted(t[0] + 1.5 * fade_s))
    hi = int(t.searchsorted(t[-1] - 1.5 * fade_s))
    # when the ends are most of the samples (a short window), all of them: no gathers, and the product
    # with the taper's exact 1s in between leaves those numbers as they are
    if lo >= hi or 2 * (lo + len(t) - hi) >= len(t):
        return slice(None)
    return np.concatenate((np.arange(lo), np.arange(hi, len(t))))


def _taper(t: np.ndarray, fade_s: float, sel, fade_end_s: float | None = None) -> np.ndarray:
    """0 -> 1 over ``fade_s`` from each end of ``t`` (over ``fade_end_s`` from the last one, none if 0), at the
    samples ``sel``."""
    if fade_end_s is None or fade_end_s == fade_s:
        x = np.minimum(t[sel] - t[0], t[-1] - t[sel]) / fade_s
    else:
        tail = (t[-1] - t[sel]) / fade_end_s if fade_end_s > 0 else np.inf
        x = np.minimum((t[sel] - t[0]) / fade_s, tail)
    if not fade_s > 0:
        return np.clip(x, 0.0, 1.0)
    # clip without its wrapper: with a positive fade no x is -0.0 (on which maximum and clip differ)
    np.maximum(x, 0.0, out=x)
    return np.minimum(x, 1.0, out=x)


def _regular_blocks(starts: np.ndarray, n: int, d: int) -> bool:
    """True when every block but the first and the last holds exactly ``d`` samples (no lost samples)."""
    m = len(starts)
    return bool(d > 1 and m > 2 and starts[-1] - starts[1] == (m - 2) * d and n - starts[-1] <= d
                and (starts[2:] - starts[1:-1] == d).all())


def _block_sums(x: np.ndarray, starts: np.ndarray, d: int, regular: bool | None = None) -> np.ndarray:
    """``np.add.reduceat(x, starts, axis=1)`` for (k, N) rows; when the inner blocks are all ``d`` long
    (no lost samples), slot by slot (far faster than reduceat)."""
    n, m = x.shape[1], len(starts)
    if d == 1:
        return x.copy()
    if regular if regular is not None else _regular_blocks(starts, n, d):
        out = np.empty((x.shape[0], m), dtype=x.dtype)
        out[:, :1] = np.add.reduceat(x[:, : starts[1]], [0], axis=1)
        out[:, -1:] = np.add.reduceat(x[:, starts[-1]:], [0], axis=1)
        a, e = int(starts[1]), int(starts[-1])
        # the whole blocks slot by slot (strided views, no copy), added in slot order
        slots = range(d)
        inner = out[:, 1:-1]
        np.add(x[:, a: e: d], x[:, a + 1: e: d], out=inner)
        for s in slots[2:]:
            inner += x[:, a + s: e: d]
        return out
    return np.add.reduceat(x, starts, axis=1)


def _reduceat_blocks(x: np.ndarray, a: int, m: int, d: int) -> np.ndarray:
    """``np.add.reduceat`` of the ``m`` whole blocks ``x[a + k d: a + (k + 1) d]`` of a 1-D float64 array,
    with the same numbers: reduceat adds the first element to the sum of the others, which numpy forms
    (for fewer than 8 others) as a running sum from -0.0; here the same additions run slot by slot over
    strided views (far faster than reduceat's per-block loop)."""
    v = x[a:a + m * d].reshape(m, d)
    if d == 1 or d > 8:
        return v[:, 0].copy() if d == 1 else np.add.reduceat(x[a:a + m * d], np.arange(0, m * d, d))
    # (-0.0 + the first other is that value exactly: the running sum starts from it)
    slots = range(d)
    rest = v[:, 1].copy()
    for s in slots[2:]:
        rest += v[:, s]
    return np.add(v[:, 0], rest, out=rest)


def _block_sums_1d(x: np.ndarray, starts: np.ndarray, d: int, regular: bool) -> np.ndarray:
    """``np.add.reduceat(x, starts)`` (1-D float64, same numbers), by whole blocks when ``regular``."""
    m = len(starts)
    if not regular:
        return np.add.reduceat(x, starts)
    out = np.empty(m)
    out[0] = np.add.reduceat(x[: starts[1]], [0])[0]
    out[-1] = np.add.reduceat(x[starts[-1]:], [0])[0]
    out[1:-1] = _reduceat_blocks(x, int(starts[1]), m - 2, d)
    return out


# the pelvis frame (x up, y left, z back) from body forward/left/up
_PELVIS_ROWS = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def _small_rates(gb: np.ndarray) -> np.ndarray:
    """Small-angle rates (rad/s, float32 rows [tilt, obliquity, yaw] = [left, forward, -up]) from the
    pelvis-frame gyro rows ``gb`` (deg/s, [up, left, back])."""
    k = np.float32(np.pi / 180.0)
    r = np.empty_like(gb)
    np.multiply(gb[1], k, out=r[0])
    np.multiply(gb[2], -k, out=r[1])
    np.multiply(gb[0], -k, out=r[2])
    return r


def _slow_rows(grid_d: _Grid, block_sums: np.ndarray, cnt: np.ndarray, lf, cfg: OrientationConfig) -> np.ndarray:
    """The slow parts to add to the gyro angles, at the block centres ((3, n) rows [tilt, obliquity, yaw]).

    ``block_sums``: (n, 3) sums of the gyro angles (rate corrections included) over each block's samples.
    Their bin means are low-passed (each bin weighted by its samples) and replaced by the gravity angles
    ``lf`` (tilt/obliquity); yaw loses its low-passed part (the heading). The bin series come to the
    blocks by linear interpolation (blocks are ~50 Hz, the series' bins 0.1 s).
    """
    sums = grid_d.sums(block_sums)                    # (nb, 3): bins hold whole blocks
    n_samples = grid_d.sums(cnt.astype(np.float64))
    slow = grid_d.smooth_sums(sums, n_samples, (cfg.fc_tilt_hz, cfg.fc_tilt_hz, cfg.fc_heading_hz))
    ys = np.empty((3, grid_d.nb))
    np.subtract(lf[0], slow[:, 0], out=ys[0])
    np.subtract(lf[1], slow[:, 1], out=ys[1])
    np.negative(slow[:, 2], out=ys[2])
    return grid_d.back(ys, scratch=True)


def _angles_regular(gb: np.ndarray, t: np.ndarray, dt: np.ndarray, starts: np.ndarray, cnt: np.ndarray,
                    td: np.ndarray, ci: np.ndarray, grid_d: _Grid, lf, cfg: OrientationConfig, d: int):
    """Tilt, obliquity and rotation (float32 rows, rad) when every block but the first and the last holds
    ``d`` samples and there is no gap; the same numbers as :func:`_angles_general` up to rounding.

    The samples are viewed as (blocks, d slots), the partial first block padded in front and the last one
    at the back, so each step is a whole-array operation per slot (a few), never a gather or a repeat:

    * gyro angle = the running sum of the block totals of the trapezoid increments before the block
      (float64, at the block rate) + the running sum within the block (float32, at most d terms);
    * block sums of the angle come from the same parts, so the slow parts (:func:`_slow_rows`) are known
      before anything else is done at the full rate;
    * the corrections (``ci``: their (3, n) increments per block, whose running sum to each block's middle
      :func:`_angles_general` interpolates) are summed along with the gyro angle's block totals: one running
      sum. With the slow parts they are one block series, interpolated linearly between block centres ``td``:
      samples before the centre (the first half of the slots; a middle slot by its time) on the segment from
      the previous centre, the others on the segment to the next; the outer halves of the end blocks keep
      the value.
    """
    n, m = gb.shape[1], len(starts)
    a, e = int(starts[1]), int(starts[-1])
    off = d - a                                      # padding before the first sample
    slots = range(d)            # the loops below run over the d slots of a block (a few), not samples
    h = d // 2                  # slots before the block centre
    buf = np.empty((3, m * d), dtype=np.float32)
    buf[:, : off + 1] = 0.0                          # (the first sample's increment: angles start at 0)
    buf[:, off + n:] = 0.0
    # trapezoid increments of the rates [tilt, obliquity, yaw] = [left, -back, -up] of the pelvis-frame gyro
    # ``gb`` (deg/s; the sign and the radians in the half interval)
    inc = buf[:, off + 1: off + n]
    half = np.multiply(dt, 0.5 * np.pi / 180.0, dtype=np.float32)
    np.add(gb[1, 1:], gb[1, :-1], out=inc[0])
    inc[0] *= half
    np.negative(half, out=half)
    np.add(gb[2, 1:], gb[2, :-1], out=inc[1])
    np.add(gb[0, 1:], gb[0, :-1], out=inc[2])
    inc[1:] *= half
    del half
    v = buf.reshape(3, m, d)
    for s in slots[1:]:         # running sums within the blocks
        np.add(v[:, :, s], v[:, :, s - 1], out=v[:, :, s])
    # block-level float64 work arrays, reused (every fresh array of a few MB costs page faults)
    base = np.empty((3, m))
    g = np.empty((3, m + 1))
    # each block's start value: the running sum of the block totals before it, plus the corrections to the
    # block's middle (the running sum of their increments before it and half its own): float64, two rows
    # summed as complex numbers by one cumsum (in g's memory, see _integrate_rows)
    pair = g.reshape(-1)[: 2 * m].reshape(m, 2)
    pair[0], base[2, 0] = 0.0, 0.0
    np.add(v[0, :-1, d - 1], ci[0, :-1], out=pair[1:, 0])
    np.add(v[1, :-1, d - 1], ci[1, :-1], out=pair[1:, 1])
    np.add(v[2, :-1, d - 1], ci[2, :-1], out=base[2, 1:])
    z = pair.view(np.complex128)[:, 0]
    z.cumsum(out=z)
    base[2].cumsum(out=base[2])
    np.multiply(ci[:2], 0.5, out=base[:2])
    base[0] += pair[:, 0]
    base[1] += pair[:, 1]
    base[2] += 0.5 * ci[2]
    del pair, z
    # sums of the within-block running sums over the real samples (the last block's padding repeats its total)
    w32 = v[:, :, 0].copy()
    for s in slots[1:]:
        w32 += v[:, :, s]
    w32[:, -1] -= (d - (n - e)) * v[:, -1, d - 1]
    # time from the block centre per sample (0 in the padding)
    tb = np.empty((m, d), dtype=np.float32)
    tb[0], tb[-1] = 0.0, 0.0
    t_in = t[a:e].reshape(m - 2, d)
    for s in slots:
        np.subtract(t_in[:, s], td[1:-1], out=tb[1:-1, s])
    tb[0, off:] = t[:a] - td[0]
    tb[-1, : n - e] = t[e:] - td[-1]
    # an odd d has a slot at the centre: each of its samples on the segment its time falls in (as searchsorted
    # would place it), the others by slot
    mid = tb[:, h] if d % 2 else None
    t_before = np.zeros(m) if mid is None else np.minimum(mid, 0.0).astype(np.float64)
    for s in slots[:h]:
        t_before += tb[:, s]
    t_after = np.zeros(m) if mid is None else np.maximum(mid, 0.0).astype(np.float64)
    for s in slots[h + (mid is not None):]:
        t_after += tb[:, s]
    den = np.maximum(td[1:] - td[:-1], 1e-12)
    g[:, 0], g[:, m] = 0.0, 0.0

    # the corrections' steps between block centres: half the increments of the two blocks
    dc = ci[:, 1:] + ci[:, :-1]
    dc *= 0.5

    def slopes(x=None):         # (3, m) series (+ the corrections) -> slopes on the segments before and after
        if x is None:           # each centre (overlapping views of g)
            g[:, 1:-1] = dc
        else:
            np.subtract(x[:, 1:], x[:, :-1], out=g[:, 1:-1])
            g[:, 1:-1] += dc
        g[:, 1:-1] /= den
        return g[:, :-1], g[:, 1:]

    # block sums of gyro angle + interpolated corrections -> slow parts at the block centres
    sb, sf = slopes()
    sums = np.multiply(base, cnt.astype(np.float64))
    sums += w32
    tmp = np.multiply(sb, t_before, out=w32)          # (float32 is plenty for these small terms)
    sums += tmp
    sums += np.multiply(sf, t_after, out=tmp)
    y = _slow_rows(grid_d, sums.T, cnt, lf, cfg)
    del sums
    base += y
    sb, sf = slopes(y)          # of the whole block series
    del y
    base32 = w32                # (w32's memory again: float32 block values)
    np.copyto(base32, base, casting="same_kind")
    g32 = g.astype(np.float32)
    sb32, sf32 = g32[:, :-1], g32[:, 1:]
    del base, sb, sf
    tmp = np.empty((3, m), dtype=np.float32)
    for s in slots:
        if s == h and mid is not None:
            np.multiply(np.where(mid <= 0.0, sb32, sf32), mid, out=tmp)
        else:
            np.multiply(sb32 if s < h else sf32, tb[:, s], out=tmp)
        tmp += base32
        v[:, :, s] += tmp
    return buf[0, off: off + n], buf[1, off: off + n], buf[2, off: off + n]


class _BlockInterp:
    """Linear interpolation of block series (values at the block centres ``td``) to the sample times."""

    def __init__(self, t: np.ndarray, td: np.ndarray, cnt: np.ndarray):
        # Sample i of block b lies after the centres of blocks < b and before those > b, so
        # searchsorted(td, t) - 1 = b - 1 + (td[b] < t)
        nbd = len(td)
        j = np.arange(-1, nbd - 1).repeat(cnt)
        j += td.repeat(cnt) < t
        np.maximum(j, 0, out=j)        # = clip (integers), without the wrapper
        np.minimum(j, max(nbd - 2, 0), out=j)
        self.nxt = np.minimum(np.arange(nbd) + 1, nbd - 1)
        den = np.maximum(td[self.nxt] - td, 1e-12)
        f = t - td[j]
        f /= den[j]
        np.clip(f, 0.0, 1.0, out=f)
        self.j, self.f = j, f

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(k, n) block rows -> (k, N) sample rows."""
        out = (x[:, self.nxt] - x).take(self.j, axis=1, mode="clip")    # indices in range: "clip" avoids a copy
        out *= self.f
        out += x.take(self.j, axis=1, mode="clip")
        return out


def _angles_general(r: np.ndarray, t: np.ndarray, dt: np.ndarray, gap_idx: np.ndarray, segs: _Segments | None,
                    starts: np.ndarray, cnt: np.ndarray, td: np.ndarray, c: np.ndarray, grid_d: _Grid, lf,
                    yaw_rate: np.ndarray, cfg: OrientationConfig):
    """Tilt, obliquity and rotation (float32, rad) with lost samples or gaps: gyro angles integrated at the
    full rate, the block-centre corrections ``c`` interpolated to the samples, gap-free segments detrended
    (tilt/obliquity) or placed on the heading path (yaw), then the slow parts (:func:`_slow_rows`)."""
    pair, yaw = _integrate_rows(r, dt, gap_idx - 1)
    ang = [pair[:, 0], pair[:, 1], yaw]           # (N,) rows [tilt, obliquity, yaw] (views, added to in place)
    interp = _BlockInterp(t, td, cnt)
    inc = interp(c)
    for k in range(3):  # loop over the three angles
        ang[k] += inc[k]
    del inc
    if segs is not None:
        segs.detrend(pair, t)
        rate = grid_d.smooth(yaw_rate, cfg.fc_heading_hz)
        path = interp(grid_d.back(np.cumsum(rate)[None] / grid_d.fs, scratch=True))[0]
        path -= ang[2]
        ang[2] += _seg_mean(segs, path)
        del path
    sums = np.empty((len(starts), 3))
    sums[:, :2] = np.add.reduceat(pair, starts, axis=0)
    sums[:, 2] = np.add.reduceat(yaw, starts)
    ys = interp(_slow_rows(grid_d, sums, cnt, lf, cfg))
    # the sum is rounded to float32 as it is stored
    out = np.empty((3, len(t)), dtype=np.float32)
    for k in range(3):  # loop over the three angles
        np.add(ang[k], ys[k], out=out[k])
    return out[0], out[1], out[2]


def _fast(ang: np.ndarray, yaw_rate: np.ndarray | None, segs: "_Segments | None", grid: _Grid, t: np.ndarray,
          cfg: OrientationConfig, rate: np.ndarray | None = None):
    """Split integrated gyro angles [tilt, obliquity, yaw] (rad, (N, 3), modified in place).

    Returns the tilt/obliquity parts above ``fc_tilt_hz`` (N, 2), the rotation (yaw above the heading
    cut-off, (N,)) and the low-passed yaw rate on the grid (rad/s). With gaps, tilt/obliquity segments are
    detrended (their slow part comes from gravity) and yaw segments are placed on the heading path
    integrated from the low-passed yaw rate, which bridges the gaps.
    """
    fcs = (cfg.fc_tilt_hz, cfg.fc_tilt_hz, cfg.fc_heading_hz)
    slow = None
    if rate is None and segs is None:
        # nothing changes the angles in between: the rate is low-passed in the same call (columns are
        # filtered independently, so the numbers are the same)
        both = grid.smooth((ang, yaw_rate), fcs + (cfg.fc_heading_hz,))
        slow, rate = both[:, :3], both[:, 3].copy()
    elif rate is None:
        rate = grid.smooth(yaw_rate, cfg.fc_heading_hz)
    if segs is not None:
        segs.detrend(ang[:, :2], t)
        path = grid.back(np.cumsum(rate) / grid.fs)
        path -= ang[:, 2]
        ang[:, 2] += _seg_mean(segs, path)
        del path
    if slow is None:
        slow = grid.smooth(ang, fcs)
    hp = np.empty((len(ang), 2), order="F")          # contiguous columns
    back = grid.back(np.ascontiguousarray(slow.T), scratch=True)   # (3, N) rows, one call
    np.subtract(ang[:, 0], back[0], out=hp[:, 0])
    np.subtract(ang[:, 1], back[1], out=hp[:, 1])
    rot = ang[:, 2] - back[2]
    return hp, rot, rate


def device_agreement(host_deg: np.ndarray, device_deg: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """How the device-computed angles agree with the host estimate (per angle, running samples).

    Returns the median offset (device - host, deg), the RMS difference after removing that offset (deg)
    and the number of samples compared.
    """
    d = np.asarray(device_deg, dtype=np.float64) - host_deg
    if mask is not None and mask.any():
        d = d[mask]
    out = {"offset_deg": [], "rms_diff_deg": [], "n": int(np.isfinite(d).all(axis=1).sum())}
    for j in range(3):
        c = d[:, j][np.isfinite(d[:, j])]
        if len(c) == 0:
            out["offset_deg"].append(None)
            out["rms_diff_deg"].append(None)
            continue
        off = float(np.median(c))
        out["offset_deg"].append(round(off, 3))
        out["rms_diff_deg"].append(round(float(np.sqrt(np.mean((c - off) ** 2))), 3))
    return out
