"""The IMU: mounting, sample instants, errors, int16 quantisation, saturation and packet loss.

Error sizes: noise and bias from the LSM6DSV16X / ICM-42688-P data (REFERENCE.md) inflated for
soft-tissue vibration at the sacrum; full scales +-16 g and +-2000 dps (REFERENCE.md "use at the sacrum").
"""

from __future__ import annotations

import numpy as np

from tiltguard.sim.rotations import axis_angle

ACC_FS_G, GYRO_FS_DPS = 16.0, 2000.0
ACC_LSB_G, GYRO_LSB_DPS = ACC_FS_G / 32768.0, GYRO_FS_DPS / 32768.0
UPSIDE_DOWN = np.diag([-1.0, -1.0, 1.0])   # X down, Y right, Z still backward (logo outwards)


def mounting(misalign_deg: float, upside_down: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sensor-to-pelvis rotation ``Rm`` (pelvis_vec = Rm @ sensor_vec) and the misalignment axis."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    R = axis_angle(axis, np.radians(misalign_deg))
    if upside_down:
        R = R @ UPSIDE_DOWN
    return R, axis


def sample_times(duration_s: float, rate_hz: float, jitter_frac: float, rng) -> np.ndarray:
    """Sample instants: a regular grid whose points wander by up to ``jitter_frac`` of an interval."""
    n = int(np.floor(duration_s * rate_hz)) + 1
    t = np.arange(n) / rate_hz
    if jitter_frac > 0:
        j = np.clip(jitter_frac, 0.0, 0.45)
        t = t + rng.uniform(-j, j, n) / rate_hz
        t[0] = 0.0
    return t[t <= duration_s]


def slow_wander(t: np.ndarray, amp: float, rng, n_axes: int = 3) -> np.ndarray:
    """Smooth bias drift: a few sinusoids with periods of 5-40 min and random phases, (N, n_axes).

    Evaluated on a 1 s grid and interpolated (the periods are minutes long).
    """
    grid = np.arange(np.floor(t[0]), np.ceil(t[-1]) + 2.0)
    per = rng.uniform(300, 2400, (3, n_axes))
    ph = rng.uniform(0, 2 * np.pi, (3, n_axes))
    coarse = (np.sin(2 * np.pi * grid[:, None, None] / per + ph) * (amp / np.sqrt(3))).sum(axis=1)
    return np.column_stack([np.interp(t, grid, coarse[:, j]) for j in range(n_axes)])


def quantise(x: np.ndarray, lsb: float) -> tuple[np.ndarray, np.ndarray]:
    """int16 codes -> physical values, with saturation; also returns the saturated mask."""
    code = np.round(x / lsb)
    sat = (code > 32767) | (code < -32768)
    return np.clip(code, -32768, 32767) * lsb, sat


def add_knocks(t, acc, rate_per_min, rng):
    """Short bumps (tapping the clip, a hand swing) of 18-30 g lasting 4 ms: they saturate."""
    n = rng.poisson(rate_per_min * (t[-1] - t[0]) / 60.0) if rate_per_min > 0 else 0
    if n == 0:
        return acc, np.zeros(0)
    t0 = np.sort(rng.uniform(t[0] + 1, t[-1] - 1, n))
    idx = np.searchsorted(t, t0)
    amp = rng.uniform(18, 30, n)[:, None] * rng.standard_normal((n, 3)) / np.sqrt(3)
    for off in range(2):   # two samples per knock
        acc[np.minimum(idx + off, len(t) - 1)] += amp
    return acc, t0


def packet_loss(n: int, loss: float, packet: int, rng) -> np.ndarray:
    """Boolean keep-mask: lost packets come in bursts (geometric length, mean 3 packets)."""
    keep = np.ones(n, dtype=bool)
    if loss <= 0 or n < packet * 4:
        return keep
    n_pk = n // packet
    mean_len = 3.0
    n_bursts = max(1, int(round(loss * n_pk / mean_len)))
    starts = rng.integers(1, n_pk - 1, n_bursts)
    lens = rng.geometric(1.0 / mean_len, n_bursts)
    lost_pk = np.zeros(n_pk + 1, dtype=int)
    np.add.at(lost_pk, starts, 1)
    np.add.at(lost_pk, np.minimum(starts + lens, n_pk), -1)
    lost = np.cumsum(lost_pk)[:n_pk] > 0
    lost[0] = False   # keep the first packet so the session start is defined
    keep[: n_pk * packet] = ~np.repeat(lost, packet)
    return keep
