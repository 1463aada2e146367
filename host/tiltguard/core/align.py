"""Sensor-to-pelvis mounting, gaps and the calibration window.

The mounting is estimated from the *start* of a session only (the standing stance before the first
running, then the first ``forward_window_s`` of running), so the batch call and the incremental analyser
(``core.stream``) find exactly the same mounting:

* **up**: the mean specific force while standing (it is +1 g up); with no standing period, the mean
  specific force over the running window (over whole strides it is gravity, so the running posture then
  becomes the zero of tilt and obliquity -- reported as ``reference = "running"``).
* **forward**: the horizontal direction whose acceleration is anti-correlated with the rate of change of
  the vertical acceleration. Braking happens while the vertical force rises (early stance) and propulsion
  while it falls (late stance), so the antero-posterior axis carries this correlation with a sign, whereas
  the medio-lateral sway alternates between left and right steps and averages out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from tiltguard.core.angles import P_FLU, matrix_to_euler
from tiltguard.core.activity import RUNNING, STANDING
from tiltguard.errors import InputError


@dataclass
class AlignConfig:
    gap_factor: float = 2.5          # an interval longer than this many nominal intervals is a gap
    min_standing_s: float = 1.0      # shortest stance usable for the gravity reference
    standing_use_s: float = 5.0      # use at most the last this-many seconds of the stance
    forward_window_s: float = 60.0   # running time used for forward (and up without stance)


@dataclass
class Mounting:
    """Sensor-to-pelvis rotation: ``v_pelvis = matrix @ v_sensor`` (pelvis: x up, y left, z back)."""

    matrix: np.ndarray
    reference: str = "standing"            # what zero tilt/obliquity means: "standing" or "running"
    forward_confidence: float = float("nan")  # 0..1, correlation strength of the forward estimate
    gyro_bias_dps: np.ndarray = field(default_factory=lambda: np.zeros(3))  # sensor frame
    t_calibrated_s: float = float("nan")   # session time by which the calibration window was complete

    @property
    def angles_deg(self) -> np.ndarray:
        """The sensor's orientation in the pelvis as [tilt, obliquity, rotation] (conventions' order)."""
        return matrix_to_euler(P_FLU @ self.matrix @ P_FLU.T)

    @property
    def upside_down(self) -> bool:
        return bool(self.matrix[0, 0] < 0)  # sensor +X points down

    def to_dict(self) -> dict:
        """The mounting as plain JSON values (fresh lists each call)."""
        # computed once per mounting value (the live path asks once a look, every look the same mounting)
        m, b = np.asarray(self.matrix), np.asarray(self.gyro_bias_dps)
        key = (m.dtype.str, m.shape, m.tobytes(), str(self.reference),
               np.float64(self.forward_confidence).tobytes(), b.dtype.str, b.shape, b.tobytes())
        d = _TO_DICT.get(key)
        if d is None:
            if len(_TO_DICT) >= 64:
                _TO_DICT.clear()
            d = _TO_DICT[key] = self._to_dict()
        return {**d, "matrix": [list(r) for r in d["matrix"]], "gyro_bias_dps": list(d["gyro_bias_dps"])}

    def _to_dict(self) -> dict:
        a = self.angles_deg
        return {
            "matrix": np.round(self.matrix, 6).tolist(),
            "tilt_deg": round(float(a[0]), 3),
            "obliquity_deg": round(float(a[1]), 3),
            "rotation_deg": round(float(a[2]), 3),
            "upside_down": self.upside_down,
            "reference": self.reference,
            "forward_confidence": None if not np.isfinite(self.forward_confidence)
            else round(float(self.forward_confidence), 3),
            "gyro_bias_dps": np.round(self.gyro_bias_dps, 4).tolist(),
        }


_TO_DICT: dict = {}   # Mounting.to_dict() by the mounting's values

IDENTITY = Mounting(np.eye(3), reference="assumed")


def find_gaps(t_s: np.ndarray, fs_hz: float, factor: float = 2.5) -> np.ndarray:
    """Indices ``i`` where samples ``i-1`` and ``i`` are separated by a gap (> ``factor`` intervals)."""
    return np.flatnonzero(np.diff(t_s) > factor / fs_hz) + 1


def gap_list(t_s: np.ndarray, gap_idx: np.ndarray) -> list[list[float]]:
    """``[[t_start_s, t_end_s], ...]`` of the spans with no samples."""
    return [[float(t_s[i - 1]), float(t_s[i])] for i in gap_idx]


def calibration_window(t_s: np.ndarray, activity: np.ndarray, fs_hz: float,
                       config: AlignConfig | None = None) -> tuple[slice | None, np.ndarray]:
    """The stance used for gravity (slice or None) and the running samples used for forward (indices)."""
    cfg = config or AlignConfig()
    is_run = activity == RUNNING
    k = int(cfg.forward_window_s * fs_hz)
    first_run = int(np.argmax(is_run)) if is_run.any() else len(activity)
    # the first k running samples: usually found within a few k samples of the first one, so the index
    # list is built over that stretch only (the whole session as a fallback)
    run = first_run + np.flatnonzero(is_run[first_run: first_run + 4 * k])
    if len(run) < k:
        run = np.flatnonzero(is_run)
    stand = None
    st = np.flatnonzero(activity[:first_run] == STANDING)
    if len(st):
        # the last contiguous stance before running
        breaks = np.flatnonzero(np.diff(st) > 1)
        start = st[breaks[-1] + 1] if len(breaks) else st[0]
        stop = st[-1] + 1
        # trim the transition at both ends
        trim = int(0.3 * fs_hz)
        start, stop = start + trim, stop - trim
        start = max(start, stop - int(cfg.standing_use_s * fs_hz))
        if stop - start >= cfg.min_standing_s * fs_hz:
            stand = slice(int(start), int(stop))
    # running samples within the first forward_window_s of running time
    return stand, run[:k]


def estimate_mounting(t_s: np.ndarray, acc_g: np.ndarray, gyro_dps: np.ndarray | None, fs_hz: float,
                      activity: np.ndarray, config: AlignConfig | None = None, *,
                      all_finite: bool | None = None) -> Mounting:
    """Estimate the sensor-to-pelvis rotation and the gyro bias from the calibration window.

    Parameters
    ----------
    t_s : (N,) time, s.   acc_g : (N, 3) specific force, g (sensor frame).
    gyro_dps : (N, 3) angular rate, deg/s, or None.   fs_hz : nominal rate, Hz.
    activity : (N,) codes from :func:`tiltguard.core.activity.classify`.
    all_finite : True if the caller already knows every value of ``acc_g`` is finite (skips that test).

    With neither a stance nor 5 s of running, "up" is the session's mean specific force
    (``reference = "session_mean"``) and the forward direction is arbitrary (confidence 0).
    """
    cfg = config or AlignConfig()
    stand, run = calibration_window(t_s, activity, fs_hz, cfg)
    # one quick whole-array test first: usually every value is finite
    if all_finite is None:
        all_finite = bool(np.isfinite(np.sum(acc_g)))
    finite = slice(None) if all_finite else np.isfinite(acc_g).all(axis=1)
    if not isinstance(finite, slice) and not finite.any():
        raise InputError("cannot estimate how the clip is worn: the accelerometer holds no numbers")
    bias = np.zeros(3)
    if stand is None and len(run) < 5 * fs_hz:
        # neither a stance nor running (a walk, a test on the desk): the session mean is the best "up"
        up = acc_g[finite].mean(axis=0)
        reference = "session_mean"
        if gyro_dps is not None and np.isfinite(gyro_dps).any():
            bias = np.nanmean(gyro_dps, axis=0)
        t_cal = float(t_s[-1])
        run = run[:0]
    elif stand is not None:
        up = acc_g[stand].mean(axis=0)
        reference = "standing"
        if gyro_dps is not None:
            g = gyro_dps[stand]
            if np.isfinite(g).any():
                bias = np.nanmean(g, axis=0)
        t_cal = float(t_s[stand.stop - 1])
    else:
        up = acc_g[run].mean(axis=0)
        reference = "running"
        if gyro_dps is not None and np.isfinite(gyro_dps[run]).any():
            bias = np.nanmean(gyro_dps[run], axis=0)
        t_cal = float(t_s[run[-1]])
    if not np.linalg.norm(up) > 0.2:
        raise InputError("cannot estimate how the clip is worn: no gravity in the accelerometer data")
    up = up / np.linalg.norm(up)

    fwd, conf = _forward(acc_g, run, up, fs_hz)
    if fwd is None:  # no running yet: any horizontal direction, flagged
        helper = np.array([0.0, 0.0, -1.0]) if abs(up[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        fwd = helper - up * (helper @ up)
        fwd /= np.linalg.norm(fwd)
        conf = 0.0
    else:
        t_cal = max(t_cal, float(t_s[run[-1]]))
    left = np.cross(up, fwd)
    matrix = np.vstack([up, left, -fwd])  # rows: pelvis x (up), y (left), z (back) in sensor coordinates
    return Mounting(matrix=matrix, reference=reference, forward_confidence=conf,
                    gyro_bias_dps=np.asarray(bias, dtype=float), t_calibrated_s=t_cal)


@functools.lru_cache(maxsize=8)
def _bandpass_sos(fs_hz: float) -> np.ndarray:
    """The 0.5-20 Hz band-pass of :func:`_forward` (designed once per rate: the design costs a millisecond)."""
    return signal.butter(2, [0.5, min(20.0, 0.45 * fs_hz)], btype="bandpass", fs=fs_hz, output="sos")


def _forward(acc_g: np.ndarray, run: np.ndarray, up: np.ndarray, fs_hz: float):
    if len(run) < 5 * fs_hz:
        return None, 0.0
    a = acc_g[run[0]: run[-1] + 1]
    sos = _bandpass_sos(float(fs_hz)).copy()     # scipy wants a writeable array
    a = signal.sosfiltfilt(sos, a, axis=0)
    # the running samples within the filtered stretch; all of it (no gathers) when running is unbroken
    keep = slice(None) if run[-1] - run[0] + 1 == len(run) else run - run[0]
    v = a @ up
    h = a - np.outer(v, up)
    dv = np.gradient(v) * fs_hz
    c = (h[keep] * dv[keep, None]).mean(axis=0)
    norm = np.sqrt((h[keep] ** 2).sum(axis=1).mean() * (dv[keep] ** 2).mean())
    c = c - up * (c @ up)
    if not np.linalg.norm(c) > 0:
        return None, 0.0
    fwd = -c / np.linalg.norm(c)
    return fwd, float(np.linalg.norm(c) / norm) if norm > 0 else 0.0


def to_body_flu(mounting: Mounting) -> np.ndarray:
    """3x3 matrix taking sensor vectors to body forward/left/up coordinates."""
    return P_FLU @ mounting.matrix
