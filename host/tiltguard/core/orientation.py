"""Pelvic tilt, obliquity and rotation over time: a vectorised, zero-phase complementary filter.

How (all steps are whole-array operations):

1. Rotate accelerometer and gyro into the body forward/left/up frame with the estimated mounting and
   remove the gyro bias found while standing (float32: the sensors are 16-bit).
2. Slow parts come from gravity. On a ~50 Hz copy, small-angle gyro angles are split into fast parts;
   the specific force de-rotated by them is averaged on a fixed 0.1 s time grid and low-passed
   (``sosfiltfilt``); over whole strides its mean is gravity, so its direction gives the slow tilt and
   obliquity even under 2-3 g running accelerations. Turns (centripetal force) and the seconds around a
   change of activity (pace changes) count less (normalised convolution).
3. Fast parts come from the gyro at the full rate: Euler-angle rates integrated (trapezoid + ``cumsum``).
   The exact rates of the conventions' rotation order differ from the small-angle ones by coupling terms
   (pelvic rotation x obliquity rectifies into a steady tilt ramp); those are evaluated on the 50 Hz copy
   at the first-pass angles, integrated, and added.
   ``angle = gyro_angle + LP(gravity_angle - gyro_angle)``: an exact complementary split, zero phase, and a
   constant gyro bias (a ramp in the integral) passes through the low-pass and cancels.
4. Nothing is integrated across a gap: each gap-free segment gets its own constant (tilt/obliquity: its
   Hann-tapered trend is replaced by the gravity one; yaw: placed on the heading path integrated from the
   low-passed yaw rate). Rotation is yaw minus its low-passed version (the running heading).

The fixed time grid and the short filter memory make results on any window identical to the whole
session away from the window's edges, which ``core.stream`` relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, signal

from tiltguard.core import activity as act
from tiltguard.core.align import AlignConfig, Mounting, estimate_mounting, gap_list, to_body_flu
from tiltguard.core.angles import apply_euler
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
    turn_rate_dps: float = 4.0    # heading rates around this make the gravity reference untrustworthy
    transition_s: float = 4.0     # ... and so do the seconds around a change of activity (pace changes)
    activity: act.ActivityConfig = field(default_factory=act.ActivityConfig)
    align: AlignConfig = field(default_factory=AlignConfig)


class _Grid:
    """Mean of samples per fixed ``bin_s`` time bin (absolute grid), and interpolation back."""

    def __init__(self, t_s: np.ndarray, bin_s: float, like: "_Grid | None" = None):
        q = t_s / bin_s
        b = np.floor(q).astype(np.intp)
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
        self._first = (np.cumsum(count) - count)[self.full]
        self._all_full = bool(self.full.all())
        self.tc = (np.arange(self.nb) + self.b0 + 0.5) * bin_s
        self.t = t_s
        self.fs = 1.0 / bin_s
        self._j = self._f = None

    def sums(self, col: np.ndarray) -> np.ndarray:
        """Per-bin sums (float64) of one (N,) channel; empty bins are 0."""
        s = np.add.reduceat(col, self._first, dtype=np.float64)
        if self._all_full:
            return s
        out = np.zeros(self.nb)
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

    def smooth(self, x: np.ndarray, fc_hz, weight: np.ndarray | None = None) -> np.ndarray:
        """Low-passed (N,) or (N, k) ``x`` on the grid by normalised convolution with a Hann kernel.

        Each bin counts by its number of samples (times ``weight`` per bin), so a bin that a gap left half
        empty does not count like a full one, empty bins count zero, and near an end the result is the
        weighted mean of the data there. The kernel spans ``1 / fc_hz`` seconds (one per column if
        ``fc_hz`` is a sequence); being finite, a window of a session gives exactly the session's result
        farther than half a kernel from the window's ends.
        """
        cols = x.reshape(len(x), -1)
        w = self.count if weight is None else self.count * weight
        fcs = np.broadcast_to(np.atleast_1d(np.asarray(fc_hz, dtype=float)), (cols.shape[1],))
        out = np.empty((self.nb, cols.shape[1]))
        for fc in np.unique(fcs):   # loop over the (one to three) cut-offs, not samples
            sel = np.flatnonzero(fcs == fc)
            both = np.empty((self.nb, len(sel) + 1))
            for k, j in enumerate(sel):  # loop over channels
                both[:, k] = self.sums(cols[:, j])
            if weight is not None:
                both[:, :-1] *= weight[:, None]
            both[:, -1] = w
            ker = _hann_kernel(self.fs / fc)
            if len(ker) <= 61:   # short kernels: direct convolution beats the FFT
                f = ndimage.convolve1d(both, ker, axis=0, mode="constant")
            else:
                f = signal.fftconvolve(both, ker[:, None], mode="same", axes=0)
            out[:, sel] = f[:, :-1] / np.maximum(f[:, -1:], 1e-6 * float(ker.sum()) * max(float(w.max()), 1e-12))
        return out if x.ndim > 1 else out[:, 0]

    def back(self, y: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
        """Linear interpolation of a bin series (bin centres) back to the sample times (or ``t``)."""
        if t is not None:
            return np.interp(t, self.tc, y)
        if self._j is None:
            u = self._q if self._q is not None else self.t / (1.0 / self.fs)
            self._q = None
            u -= self.b0 + 0.5
            j = np.floor(u)
            np.clip(j, 0, max(self.nb - 2, 0), out=j)
            u -= j
            np.clip(u, 0.0, 1.0, out=u)
            self._j, self._f = j.astype(np.intp), u.astype(np.float32)
        if self.nb < 2:
            return np.full(len(self.t), float(y[0]))
        # per-bin slopes first: two gathers from a small (cache-resident) array instead of j + 1 at full rate
        dy = np.empty_like(y)
        np.subtract(y[1:], y[:-1], out=dy[:-1])
        dy[-1] = 0.0
        out = dy[self._j]
        out *= self._f
        out += y[self._j]
        return out


def _hann_kernel(length_bins: float) -> np.ndarray:
    """Hann window of about ``length_bins`` bins (odd, at least 3), summing to 1."""
    n = max(3, int(round(length_bins)) | 1)
    k = np.hanning(n + 2)[1:-1]
    return k / k.sum()


def _seg_mean(segs: "_Segments", x: np.ndarray) -> np.ndarray:
    """Each sample's segment's Hann-tapered mean of (N,) ``x``."""
    m = np.add.reduceat(segs.w * x, segs.starts) / segs.wsum
    return m[segs.owner]


class _Segments:
    """Gap-free stretches; each gets its own integration constant (nothing is integrated across a gap)."""

    def __init__(self, n: int, gap_idx: np.ndarray):
        self.starts = np.concatenate(([0], gap_idx)).astype(np.intp)
        lens = np.diff(np.append(self.starts, n))
        self.owner = np.repeat(np.arange(len(self.starts)), lens)
        pos = np.arange(n) - self.starts[self.owner]
        # Hann taper: a tapered mean of a partial stride leaks far less than a plain mean
        self.w = np.sin(np.pi * (pos + 0.5) / lens[self.owner]) ** 2
        self.wsum = np.add.reduceat(self.w, self.starts)

    def detrend(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Subtract each segment's tapered least-squares line from (N, k) ``x`` (in place).

        Small-angle rate integration picks up a steady ramp (pelvic rotation x obliquity rectifies);
        within a segment it is removed here, the slow truth comes back from gravity.
        """
        u = t - t[self.starts][self.owner]
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
        x -= np.take(icpt, self.owner, axis=0) + np.take(slope, self.owner, axis=0) * u[:, None]
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


def _reference_weight(grid: _Grid, heading_rate: np.ndarray, activity: np.ndarray,
                      cfg: "OrientationConfig") -> np.ndarray:
    """Trust in the gravity reference per grid bin (0..1).

    Turning adds a centripetal specific force (speed x heading rate) and changing pace a forward one;
    neither is gravity, so those bins count less and the gyro bridges them.
    """
    rate = np.degrees(heading_rate)   # rad/s -> deg/s, on the grid
    w = np.exp(-((rate / cfg.turn_rate_dps) ** 2))
    code = grid.mean(activity.astype(np.float64))
    change = np.abs(np.diff(code, prepend=code[0])) > 1e-6
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
    if not np.isfinite(np.sum(acc_s)) and not np.isfinite(acc_s).all():
        acc_s = _fill_nan(np.asarray(acc_s, dtype=np.float64), t)
    if activity is None:
        activity = act.classify(acc_s, fs, cfg.activity)
    if mounting is None:
        mounting = estimate_mounting(t, acc_s, rec.gyro_dps, fs, activity, cfg.align)
    M = to_body_flu(mounting)
    # channel-major (3, N) float32 throughout: every full-rate operation runs over contiguous rows
    acc = _rotate_cols(acc_s, M)                                          # body forward/left/up, g
    dt = np.diff(t)
    gap_idx = np.flatnonzero(dt > cfg.align.gap_factor / fs) + 1      # = find_gaps(t, ...), one diff pass
    grid = _Grid(t, cfg.bin_s)
    valid = np.ones(len(t), dtype=bool)

    gyro = rec.gyro_dps
    # one quick whole-array test first: usually every gyro value is finite
    gyro_finite = gyro is not None and bool(np.isfinite(np.sum(gyro)))
    has_gyro = gyro is not None and (gyro_finite or bool(np.isfinite(gyro).any()))
    meta: dict = {"mounting": mounting.to_dict(), "gaps": gap_list(t, gap_idx), "gyro": bool(has_gyro),
                  "unavailable": []}
    if has_gyro:
        if not gyro_finite:
            valid &= np.isfinite(gyro).all(axis=1)
        g = gyro if valid.all() else _fill_nan(np.asarray(gyro, dtype=np.float32), t)
        w = _rotate_cols(g, np.radians(M), offset=mounting.gyro_bias_dps)   # rad/s, body forward/left/up
        del g
        segs = _Segments(len(t), gap_idx) if len(gap_idx) else None

        # ---- slow parts (gravity) and rate corrections, on a ~50 Hz copy
        d = max(1, int(fs // 50.0))
        # means over blocks of d sample slots on the absolute time grid (no aliasing of impacts, and any
        # window of a session has the same blocks); a block-mean rate times the block's samples / fs is
        # the block's integral, and a gap adds nothing
        starts = _block_starts(t, fs, d)
        cnt = np.diff(np.append(starts, len(t)))
        td = np.add.reduceat(t, starts) / cnt
        wd = _block_sums(w, starts, d).astype(np.float64)
        wd /= cnt                                     # (3, n) rows
        ad = (_block_sums(acc, starts, d) / cnt.astype(np.float32)).T
        span = cnt / fs
        if segs is not None:
            gi_d = np.flatnonzero(np.diff(segs.owner[starts]) != 0) + 1
        else:
            gi_d = np.zeros(0, dtype=np.intp)
        segs_d = _Segments(len(td), gi_d) if len(gi_d) else None
        grid_d = _Grid(td, cfg.bin_s, like=grid)      # the same bins as the full-rate grid
        small_d = np.empty_like(wd)                   # rows [tilt, obliquity, yaw] rates; (n, 3) view below
        small_d[0], small_d[1] = wd[1], wd[0]
        np.negative(wd[2], out=small_d[2])
        small_d = small_d.T
        ang_d = _block_integral(small_d, span)
        hp_d, rot_d, rate_d = _fast(ang_d, small_d[:, 2], segs_d, grid_d, td, cfg)
        # float32 like the block-mean samples themselves (float64 sines cost 15x more)
        a_hp = apply_euler(ad, hp_d[:, 0], hp_d[:, 1], rot_d, out_dtype=np.float32)
        weight = _reference_weight(grid_d, rate_d, activity[starts], cfg)
        m = grid_d.smooth(a_hp, cfg.fc_tilt_hz, weight)
        del a_hp
        tilt_lf, obl_lf = _gravity_angles(m)             # rad, on the 0.1 s grid
        tilt_d = hp_d[:, 0] + grid_d.back(tilt_lf)
        obl_d = hp_d[:, 1] + grid_d.back(obl_lf)
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
        corr *= np.clip(np.minimum(td - td[0], td[-1] - td) / cfg.edge_taper_s, 0.0, 1.0)
        corr_int = _block_integral(corr.T, span)
        del ct, st, co, so, corr, small_d, ang_d, hp_d, rot_d, wd, ad

        # ---- fast parts at the full rate, one contiguous row per angle [tilt, obliquity, yaw]
        ang = _integrate_rows((w[1], w[0], w[2]), (1.0, 1.0, -1.0), dt, gap_idx - 1)
        # block values back to the samples: linear between block centres. Sample i of block b lies after
        # the centres of blocks < b and before those > b, so searchsorted(td, t) - 1 = b - 1 + (td[b] < t)
        nbd = len(td)
        j = np.repeat(np.arange(-1, nbd - 1), cnt)
        j += np.repeat(td, cnt) < t
        np.clip(j, 0, max(nbd - 2, 0), out=j)
        nxt = np.minimum(np.arange(nbd) + 1, nbd - 1)
        den = np.maximum(td[nxt] - td, 1e-12)
        f = t - td[j]
        f /= den[j]
        np.clip(f, 0.0, 1.0, out=f)
        for k in range(3):  # loop over the three angles
            c = np.ascontiguousarray(corr_int[:, k])
            inc = (c[nxt] - c)[j]
            inc *= f
            inc += c[j]
            ang[k] += inc
        del inc
        del j, f
        rate = grid_d.smooth(yaw_rate, cfg.fc_heading_hz)
        if segs is not None:
            segs.detrend(ang[:2].T, t)
            path = grid.back(np.cumsum(rate) / grid.fs)
            path -= ang[2]
            ang[2] += _seg_mean(segs, path)
            del path
        slow = grid.smooth(ang.T, np.array([cfg.fc_tilt_hz, cfg.fc_tilt_hz, cfg.fc_heading_hz]))
        # angle = gyro angle - its slow part + the gravity angle, both bin series back in one interpolation
        ang[0] += grid.back(tilt_lf - slow[:, 0])
        ang[1] += grid.back(obl_lf - slow[:, 1])
        ang[2] -= grid.back(slow[:, 2])
        tilt, obl, rot = ang[0], ang[1], ang[2]
        # pelvis frame (x up, y left, z back) from forward/left/up
        k = np.float32(180.0 / np.pi)
        gb = np.empty_like(w)
        np.multiply(w[2], k, out=gb[0])
        np.multiply(w[1], k, out=gb[1])
        np.multiply(w[0], -k, out=gb[2])
        gyro_body = gb.T
        del w
    else:
        m = grid.smooth(acc.T, cfg.fc_nogyro_hz)
        tilt_lf, obl_lf = _gravity_angles(m)
        tilt, obl = grid.back(tilt_lf), grid.back(obl_lf)
        rot = np.zeros(len(t))
        gyro_body = None
        meta["unavailable"] = ["rotation_deg", "tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg",
                               "pelvic_drop_l_deg", "pelvic_drop_r_deg", "tilt_ic_deg"]
        meta["angles_quality"] = "stride-averaged gravity trend (no gyro)"

    tilt = tilt.astype(np.float32)
    obl = obl.astype(np.float32)
    rot = np.asarray(rot, dtype=np.float32)
    acc_level = _level_rows(acc, tilt, obl, rot).T     # (N, 3) view of the (3, N) rows
    del acc
    angles = np.empty((3, len(t)), dtype=np.float32)
    np.multiply(tilt, np.float32(180.0 / np.pi), out=angles[0])
    np.multiply(obl, np.float32(180.0 / np.pi), out=angles[1])
    if has_gyro:
        np.multiply(rot, np.float32(180.0 / np.pi), out=angles[2])
    else:
        angles[2] = np.nan
    angles = angles.T

    if rec.angles_deg is not None:
        meta["device_angles"] = device_agreement(angles, rec.angles_deg, activity == act.RUNNING)
    return Kinematics(t_s=t, fs_hz=fs, acc_level_g=acc_level, angles_deg=angles, gyro_body_dps=gyro_body,
                      valid=valid, running=activity == act.RUNNING, activity=activity, meta=meta)

def _rotate_cols(x: np.ndarray, M: np.ndarray, offset=None) -> np.ndarray:
    """``M @ (x - offset).T`` for (N, 3) ``x``: a (3, N) float32 array (same arithmetic as ``rotate_rows``)."""
    # one transposing pass to contiguous columns (none if x already is float32 channel rows: read-only
    # then, the offset is subtracted in a copy)
    xt = np.asarray(x).T.astype(np.float32, order="C", copy=offset is not None)
    cols = [xt[0], xt[1], xt[2]]
    if offset is not None:
        for k in range(3):   # three channels
            cols[k] -= np.float32(offset[k])
    out = np.empty((3, len(x)), dtype=np.float32)
    tmp = np.empty(len(x), dtype=np.float32)
    for i in range(3):   # three output axes
        r = out[i]
        np.multiply(cols[0], np.float32(M[i, 0]), out=r)
        r += np.multiply(cols[1], np.float32(M[i, 1]), out=tmp)
        r += np.multiply(cols[2], np.float32(M[i, 2]), out=tmp)
    return out


def _integrate_rows(rows, signs, dt: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Trapezoid integrals (3, N) float64 of float32 rate rows (times ``signs``); no increment across the
    ``cut`` intervals (gaps): float32 increments summed in float64, one contiguous row at a time."""
    n = len(rows[0])
    half = (0.5 * dt).astype(np.float32)
    out = np.empty((len(rows), n), dtype=np.float64)
    inc = np.empty(n - 1, dtype=np.float32)
    for k in range(3):   # loop over the three angles
        r = rows[k]
        np.add(r[1:], r[:-1], out=inc)
        if signs[k] < 0:
            np.negative(inc, out=inc)
        inc *= half
        inc[cut] = 0.0
        out[k, 0] = 0.0
        row = out[k, 1:]
        row[...] = inc                # float64 first, then an in-place running sum (no buffered casting)
        np.cumsum(row, out=row)
    return out


def _level_rows(acc: np.ndarray, tilt, obl, rot) -> np.ndarray:
    """:func:`angles.apply_euler` in float32 on (3, N) body rows (same arithmetic; ``acc`` is used as
    scratch space); returns the level-frame (3, N) rows."""
    f, l, u = acc[0], acc[1], acc[2]
    out = np.empty_like(acc)
    tmp = np.empty_like(f)
    ct, st = np.cos(tilt), np.sin(tilt)
    f1 = np.multiply(ct, f, out=out[0])       # R_left(tilt): f1 = ct f + st u, u1 = ct u - st f
    f1 += np.multiply(st, u, out=tmp)
    u *= ct
    f *= st
    u -= f                                    # u1
    c, s = np.cos(obl, out=ct), np.sin(obl, out=st)   # reuse the buffers (no fresh allocations)
    l2 = np.multiply(c, l, out=out[1])        # R_forward(obliquity): l2 = c l - s u1, u2 = s l + c u1
    l2 -= np.multiply(s, u, out=tmp)
    l *= s
    u *= c
    u += l                                    # u2
    c, s = np.cos(rot, out=ct), np.sin(rot, out=st)
    np.multiply(c, f1, out=f)                 # R_down(rotation) = rotation about +up by -rotation
    f += np.multiply(s, l2, out=l)
    l2 *= c
    f1 *= s
    l2 -= f1
    out[0] = f
    out[2] = u
    return out


def _block_integral(rates: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Integral of block-mean rates (N, k) up to each block's middle; ``span`` = block lengths, s."""
    inc = rates.T * span                      # (k, N): each running sum over one contiguous row
    out = np.cumsum(inc, axis=1)
    inc *= 0.5
    out -= inc
    return out.T


def _block_starts(t: np.ndarray, fs: float, d: int) -> np.ndarray:
    """First sample index of each block of ``d`` sample slots on the absolute grid ``round(t * fs)``."""
    if d == 1:
        return np.arange(len(t))
    blk = np.rint(t * fs).astype(np.int64)
    blk //= d
    new = np.empty(len(t), dtype=bool)
    new[0] = True
    np.not_equal(blk[1:], blk[:-1], out=new[1:])
    return np.flatnonzero(new)


def _block_sums(x: np.ndarray, starts: np.ndarray, d: int) -> np.ndarray:
    """``np.add.reduceat(x, starts, axis=1)`` for (k, N) rows; when the inner blocks are all ``d`` long
    (no lost samples), from a slot-major copy (5x faster than reduceat)."""
    n, m = x.shape[1], len(starts)
    if d == 1:
        return x.copy()
    if m > 2 and starts[-1] - starts[1] == (m - 2) * d and n - starts[-1] <= d \
            and bool((np.diff(starts[1:]) == d).all()):
        out = np.empty((x.shape[0], m), dtype=x.dtype)
        out[:, :1] = np.add.reduceat(x[:, : starts[1]], [0], axis=1)
        out[:, -1:] = np.add.reduceat(x[:, starts[-1]:], [0], axis=1)
        a, e = int(starts[1]), int(starts[-1])
        # slot-major copy (k, d, m) of the whole blocks, then d contiguous rows summed (no BLAS: its
        # threads spin and cost CPU time)
        slots = np.ascontiguousarray(x[:, a:e].reshape(x.shape[0], m - 2, d).transpose(0, 2, 1))
        np.sum(slots, axis=1, out=out[:, 1:-1])
        return out
    return np.add.reduceat(x, starts, axis=1)


def _fast(ang: np.ndarray, yaw_rate: np.ndarray | None, segs: "_Segments | None", grid: _Grid, t: np.ndarray,
          cfg: OrientationConfig, rate: np.ndarray | None = None):
    """Split integrated gyro angles [tilt, obliquity, yaw] (rad, (N, 3), modified in place).

    Returns the tilt/obliquity parts above ``fc_tilt_hz`` (N, 2), the rotation (yaw above the heading
    cut-off, (N,)) and the low-passed yaw rate on the grid (rad/s). With gaps, tilt/obliquity segments are
    detrended (their slow part comes from gravity) and yaw segments are placed on the heading path
    integrated from the low-passed yaw rate, which bridges the gaps.
    """
    if rate is None:
        rate = grid.smooth(yaw_rate, cfg.fc_heading_hz)
    if segs is not None:
        segs.detrend(ang[:, :2], t)
        path = grid.back(np.cumsum(rate) / grid.fs)
        path -= ang[:, 2]
        ang[:, 2] += _seg_mean(segs, path)
        del path
    slow = grid.smooth(ang, np.array([cfg.fc_tilt_hz, cfg.fc_tilt_hz, cfg.fc_heading_hz]))
    hp = np.empty((len(ang), 2), order="F")          # contiguous columns
    hp[:, 0] = ang[:, 0] - grid.back(slow[:, 0])
    hp[:, 1] = ang[:, 1] - grid.back(slow[:, 1])
    rot = ang[:, 2] - grid.back(slow[:, 2])
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
