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
from tiltguard.core.align import AlignConfig, Mounting, estimate_mounting, find_gaps, gap_list, to_body_flu
from tiltguard.core.angles import apply_euler, rotate_rows
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
        b = np.floor(t_s / bin_s).astype(np.int64)
        self.b0 = int(b[0]) if like is None else like.b0
        self.idx = (b - self.b0).astype(np.intp)
        self.nb = int(self.idx[-1]) + 1 if like is None else like.nb
        self.count = np.bincount(self.idx, minlength=self.nb).astype(np.float64)
        self.full = self.count > 0
        self.tc = (np.arange(self.nb) + self.b0 + 0.5) * bin_s
        self.t = t_s
        self.fs = 1.0 / bin_s
        self._j = self._f = None

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Bin means of (N,) or (N, k) ``x``; empty bins are interpolated."""
        cols = x.reshape(len(x), -1)
        out = np.empty((self.nb, cols.shape[1]))
        for j in range(cols.shape[1]):  # loop over channels, not samples
            s = np.bincount(self.idx, weights=cols[:, j], minlength=self.nb)
            m = np.divide(s, self.count, out=np.full(self.nb, np.nan), where=self.full)
            if not self.full.all():
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
                both[:, k] = np.bincount(self.idx, weights=cols[:, j], minlength=self.nb)
            if weight is not None:
                both[:, :-1] *= weight[:, None]
            both[:, -1] = w
            ker = _hann_kernel(self.fs / fc)
            f = signal.oaconvolve(both, ker[:, None], mode="same", axes=0)
            out[:, sel] = f[:, :-1] / np.maximum(f[:, -1:], 1e-6 * float(ker.sum()) * max(float(w.max()), 1e-12))
        return out if x.ndim > 1 else out[:, 0]

    def back(self, y: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
        """Linear interpolation of a bin series (bin centres) back to the sample times (or ``t``)."""
        if t is not None:
            return np.interp(t, self.tc, y)
        if self._j is None:
            u = self.t / (1.0 / self.fs) - (self.b0 + 0.5)
            j = np.clip(np.floor(u), 0, max(self.nb - 2, 0)).astype(np.intp)
            self._j, self._f = j, np.clip(u - j, 0.0, 1.0).astype(np.float32)
        if self.nb < 2:
            return np.full(len(self.t), float(y[0]))
        y0 = y[self._j]
        return y0 + self._f * (y[self._j + 1] - y0)


def _hann_kernel(length_bins: float) -> np.ndarray:
    """Hann window of about ``length_bins`` bins (odd, at least 3), summing to 1."""
    n = max(3, int(round(length_bins)) | 1)
    k = np.hanning(n + 2)[1:-1]
    return k / k.sum()


def _integrate(rates: np.ndarray, dt: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Trapezoid integral of (N, k) rates over time; no increment across ``cut`` intervals (gaps)."""
    inc = rates[1:] + rates[:-1]                   # float32 rates stay float32 here ...
    inc *= (0.5 * dt).astype(inc.dtype)[:, None]
    inc[cut] = 0.0
    out = np.empty(rates.shape, dtype=np.float64)  # ... and are summed in float64
    out[0] = 0.0
    np.cumsum(inc, axis=0, dtype=np.float64, out=out[1:])
    return out


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
        x -= icpt[self.owner] + slope[self.owner] * u[:, None]
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
    if not np.isfinite(acc_s).all():
        acc_s = _fill_nan(np.asarray(acc_s, dtype=np.float64), t)
    if activity is None:
        activity = act.classify(acc_s, fs, cfg.activity)
    if mounting is None:
        mounting = estimate_mounting(t, acc_s, rec.gyro_dps, fs, activity, cfg.align)
    M = to_body_flu(mounting)
    acc = rotate_rows(acc_s, M)                                          # body forward/left/up, g
    gap_idx = find_gaps(t, fs, cfg.align.gap_factor)
    dt = np.diff(t)
    cut = np.zeros(len(dt), dtype=bool)
    cut[gap_idx - 1] = True
    grid = _Grid(t, cfg.bin_s)
    valid = np.ones(len(t), dtype=bool)

    gyro = rec.gyro_dps
    has_gyro = gyro is not None and np.isfinite(gyro).any()
    meta: dict = {"mounting": mounting.to_dict(), "gaps": gap_list(t, gap_idx), "gyro": bool(has_gyro),
                  "unavailable": []}
    if has_gyro:
        valid &= np.isfinite(gyro).all(axis=1)
        g = gyro if valid.all() else _fill_nan(np.asarray(gyro, dtype=np.float32), t)
        w = rotate_rows(g, np.radians(M), offset=mounting.gyro_bias_dps)     # rad/s, body forward/left/up
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
        wd = np.add.reduceat(w, starts, axis=0).astype(np.float64) / cnt[:, None]
        ad = np.add.reduceat(acc, starts, axis=0) / cnt[:, None].astype(np.float32)
        span = cnt / fs
        if segs is not None:
            gi_d = np.flatnonzero(np.diff(segs.owner[starts]) != 0) + 1
        else:
            gi_d = np.zeros(0, dtype=np.intp)
        segs_d = _Segments(len(td), gi_d) if len(gi_d) else None
        grid_d = _Grid(td, cfg.bin_s, like=grid)      # the same bins as the full-rate grid
        small_d = np.column_stack([wd[:, 1], wd[:, 0], -wd[:, 2]])
        ang_d = _block_integral(small_d, span)
        hp_d, rot_d, rate_d = _fast(ang_d, small_d[:, 2], segs_d, grid_d, td, cfg)
        a_hp = apply_euler(ad, hp_d[:, 0], hp_d[:, 1], rot_d, out_dtype=np.float64)
        weight = _reference_weight(grid_d, rate_d, activity[starts], cfg)
        m = grid_d.smooth(a_hp, cfg.fc_tilt_hz, weight)
        del a_hp
        tilt_lf, obl_lf = _gravity_angles(m)             # rad, on the 0.1 s grid
        tilt_d = hp_d[:, 0] + grid_d.back(tilt_lf)
        obl_d = hp_d[:, 1] + grid_d.back(obl_lf)
        # exact minus small-angle rates of R = R_down(yaw) R_forward(obl) R_left(tilt), and their integral
        ct, st, co, so = np.cos(tilt_d), np.sin(tilt_d), np.cos(obl_d), np.sin(obl_d)
        wf, wl, wu = small_d[:, 1], small_d[:, 0], -small_d[:, 2]
        yaw_rate = (wf * st - wu * ct) / co
        corr = np.column_stack([yaw_rate * so, wf * (ct - 1.0) + wu * st, yaw_rate + wu])
        # the first-pass angles are poor within a few seconds of the recording's ends (filter edges); a
        # wrong correction there would be integrated into a step that the low-pass smears back in time
        corr *= np.clip(np.minimum(td - td[0], td[-1] - td) / cfg.edge_taper_s, 0.0, 1.0)[:, None]
        corr_int = _block_integral(corr, span)
        del ct, st, co, so, corr, small_d, ang_d, hp_d, rot_d

        # ---- fast parts at the full rate
        ang = _integrate(np.column_stack([w[:, 1], w[:, 0], -w[:, 2]]), dt, cut)
        # block values back to the samples: linear between block centres (one search for all channels)
        j = np.clip(np.searchsorted(td, t) - 1, 0, max(len(td) - 2, 0))
        f = np.clip((t - td[j]) / np.maximum(td[np.minimum(j + 1, len(td) - 1)] - td[j], 1e-12), 0.0, 1.0)
        for k in range(3):  # loop over the three angles
            c0 = corr_int[j, k]
            ang[:, k] += c0 + f * (corr_int[np.minimum(j + 1, len(td) - 1), k] - c0)
        del j, f
        hp, rot, _ = _fast(ang, None, segs, grid, t, cfg, rate=grid_d.smooth(yaw_rate, cfg.fc_heading_hz))
        tilt = hp[:, 0] + grid.back(tilt_lf)
        obl = hp[:, 1] + grid.back(obl_lf)
        del ang, hp
        # pelvis frame (x up, y left, z back) from forward/left/up
        gyro_body = np.empty_like(w)
        gyro_body[:, 0], gyro_body[:, 1], gyro_body[:, 2] = w[:, 2], w[:, 1], -w[:, 0]
        gyro_body *= np.float32(180.0 / np.pi)
        del w
    else:
        m = grid.smooth(acc, cfg.fc_nogyro_hz)
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
    acc_level = apply_euler(acc, tilt, obl, rot, out_dtype=np.float32)
    del acc
    angles = np.empty((len(t), 3), dtype=np.float32)
    np.multiply(tilt, np.float32(180.0 / np.pi), out=angles[:, 0])
    np.multiply(obl, np.float32(180.0 / np.pi), out=angles[:, 1])
    if has_gyro:
        np.multiply(rot, np.float32(180.0 / np.pi), out=angles[:, 2])
    else:
        angles[:, 2] = np.nan

    if rec.angles_deg is not None:
        meta["device_angles"] = device_agreement(angles, rec.angles_deg, activity == act.RUNNING)
    return Kinematics(t_s=t, fs_hz=fs, acc_level_g=acc_level, angles_deg=angles, gyro_body_dps=gyro_body,
                      valid=valid, running=activity == act.RUNNING, activity=activity, meta=meta)


def _block_integral(rates: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Integral of block-mean rates (N, k) up to each block's middle; ``span`` = block lengths, s."""
    inc = rates * span[:, None]
    out = np.cumsum(inc, axis=0)
    out -= 0.5 * inc
    return out


def _block_starts(t: np.ndarray, fs: float, d: int) -> np.ndarray:
    """First sample index of each block of ``d`` sample slots on the absolute grid ``round(t * fs)``."""
    if d == 1:
        return np.arange(len(t))
    blk = np.rint(t * fs).astype(np.int64) // d
    return np.flatnonzero(np.diff(blk, prepend=blk[0] - 1) != 0)


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
    hp = np.empty((len(ang), 2))
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
