"""Gait timing and ground-reaction shapes from speed (sources in ``docs/simulator.md``).

Running (Alcantara 2021, GRF_IMU_summary.csv, 37 runners at 3.8-5.4 m/s):
- step frequency ``2.46 + 0.16 v`` Hz (least squares over the per-runner means, residual sd 0.17 Hz),
  plus a per-runner offset; uphill +0.4 %/% grade (Alcantara 2022 treadmill slopes);
- contact time ``0.202 (v / 3.8) ** -0.52`` s (power law through the 3.8 and 5.4 m/s means);
- vertical specific force: a half-sine over stance plus a short impact half-sine at initial contact
  (the sacral impact peak of Accelerometer_one_sub.csv), the main amplitude chosen so that the
  per-step mean is exactly 1 g.
Walking (1.2-1.6 m/s): step frequency ``1.2 + 0.45 v`` Hz, stance 60 % of the stride, vertical specific
force ``1 + 0.25 cos(2 pi tau / T)`` g (inverted pendulum: lowest, fastest-turning point at contact).
"""

from __future__ import annotations

import numpy as np

G = 9.80665
RUN, WALK = 0, 1
IMPACT_T0, IMPACT_S = 0.008, 0.045   # sacral impact transient: starts ~8 ms after IC, peaks ~30 ms after IC
BRAKE_T0, BRAKE_IMPACT_S = 0.004, 0.035   # (Accelerometer_one_sub.csv, aligned on force-plate onset)


def run_step_hz(v, grade_pct, offset_hz):
    v = np.clip(v, 2.0, 7.0)
    return (2.46 + 0.16 * v + offset_hz) * (1.0 + 0.004 * np.asarray(grade_pct))


def walk_step_hz(v):
    return 1.2 + 0.45 * np.clip(v, 0.8, 2.0)


def run_contact_s(v):
    return 0.202 * (np.clip(v, 2.0, 7.0) / 3.8) ** -0.52


def impact_g(v, grade_pct, scale):
    """Amplitude of the impact half-sine (g): grows with speed and downhill (one_sub: -10 % ~ +60 %)."""
    v = np.clip(v, 2.0, 7.0)
    g = np.asarray(grade_pct, dtype=float)
    slope = np.where(g < 0, 0.09, 0.025)   # downhill raises the impact much more than uphill lowers it
    return np.clip(scale * (2.4 + 0.35 * (v - 3.33)) * (1.0 - slope * g), 0.3, 8.0)


def brake_impact_g(v, grade_pct, scale):
    v = np.clip(v, 2.0, 7.0)
    return np.clip(scale * (1.5 + 0.3 * (v - 3.33)) * (1.0 - 0.04 * np.asarray(grade_pct)), 0.2, 4.0)


# ---------------------------------------------------------------- half-sine pulses and their integrals

def pulse(tau, t0, d, amp):
    """amp * sin(pi (tau - t0) / d) on [t0, t0 + d), else 0; and its first and second integrals from 0."""
    x = np.clip(tau - t0, 0.0, d)
    ph = np.pi * x / d
    inside = (tau >= t0) & (tau < t0 + d)
    val = np.where(inside, amp * np.sin(ph), 0.0)
    k = amp * d / np.pi
    i1 = k * (1.0 - np.cos(ph))
    i2 = k * (x - d / np.pi * np.sin(ph)) + 2.0 * k * np.maximum(tau - t0 - d, 0.0)
    return val, i1, i2


def pulse_value(tau, t0, d, amp):
    """Just the value of :func:`pulse` (no integrals): cheaper for forward and lateral forces."""
    x = tau - t0
    return np.where((x >= 0) & (x < d), amp * np.sin(np.pi * np.clip(x, 0.0, d) / d), 0.0)


class Steps:
    """The step table: one row per step of every walking/running bout (arrays of equal length)."""

    def __init__(self, t_ic, t_end, side, kind, bout, last, speed, grade, runner, rng) -> None:
        n = len(t_ic)
        self.t_ic, self.t_end, self.side, self.kind = t_ic, t_end, side, kind
        self.bout, self.last, self.speed, self.grade = bout, last, speed, grade
        T = t_end - t_ic
        self.T = T
        run = kind == RUN
        # contact time: speed law, L/R asymmetry (gct_asymmetry_pct = 100 (L - R) / mean), 2 % step noise
        a = runner.gct_asymmetry_pct / 200.0
        tc = run_contact_s(speed) * np.where(side == 0, 1 + a, 1 - a) * (1 + 0.02 * rng.standard_normal(n))
        tc_walk = 1.2 * T   # stance 60 % of the stride = 1.2 step times
        self.tc = np.where(run, np.minimum(tc, 0.85 * T), tc_walk)
        tcr = np.where(run, self.tc, 1.0)
        # vertical: impact pulse B on [IMPACT_T0, +IMPACT_S) + main A on [0, tc): mean over the step = 1 g
        self.B = np.where(run, impact_g(speed, grade, runner.impact_scale) * (1 + 0.1 * rng.standard_normal(n)), 0.0)
        self.B = np.clip(self.B, 0.0, None)
        self.A = np.where(run, (np.pi * T / 2 - self.B * IMPACT_S) / tcr, 0.0)
        # forward: braking impact + braking half then propulsion half; zero net impulse at constant speed
        self.Bi = np.where(run, brake_impact_g(speed, grade, runner.impact_scale) * (1 + 0.1 * rng.standard_normal(n)), 0.0)
        self.Bb = np.where(run, 0.35 * (1 - 0.03 * grade), 0.0).clip(0.05)
        self.P = np.where(run, self.Bb + self.Bi * BRAKE_IMPACT_S / (0.5 * tcr), 0.0)
        # lateral: the stance foot pushes the pelvis medially (left stance -> towards the right)
        self.L = np.where(run, 0.25 * 0.2 / tcr, 0.0) * np.where(side == 0, -1.0, 1.0)
        # vertical velocity at contact so the mean vertical velocity over the step is zero
        _, _, i2T = self._vert_terms(T, np.arange(n))
        self.v0 = np.where(run, -G * (i2T / T - T / 2), 0.0)

    # ------------------------------------------------------------ per-sample terms (k: step index)
    def _vert_terms(self, tau, k):
        tc = np.where(self.kind[k] == RUN, self.tc[k], 1.0)
        v1, a1, b1 = pulse(tau, IMPACT_T0, IMPACT_S, self.B[k])
        v2, a2, b2 = pulse(tau, 0.0, tc, self.A[k])
        return v1 + v2, a1 + a2, b1 + b2

    def vertical(self, tau, k):
        """Vertical specific force (g), velocity (m/s) and position (m, 0 at every IC) in step k."""
        T = self.T[k]
        run = self.kind[k] == RUN
        f, i1, i2 = self._vert_terms(tau, k)
        vel_r = self.v0[k] + G * (i1 - tau)
        pos_r = self.v0[k] * tau + G * (i2 - tau ** 2 / 2)
        w = 2 * np.pi / T
        c = 0.25
        f_w = 1 + c * np.cos(w * tau)
        vel_w = G * c / w * np.sin(w * tau)
        pos_w = G * c / w ** 2 * (1 - np.cos(w * tau))
        return (np.where(run, f, f_w), np.where(run, vel_r, vel_w), np.where(run, pos_r, pos_w))

    def forward(self, tau, k):
        """Forward specific force (g) from the ground reaction, without speed changes."""
        run = self.kind[k] == RUN
        tc = np.where(run, self.tc[k], 1.0)
        b1 = pulse_value(tau, BRAKE_T0, BRAKE_IMPACT_S, self.Bi[k])
        b2 = pulse_value(tau, 0.0, 0.5 * tc, self.Bb[k])
        p = pulse_value(tau, 0.5 * tc, 0.5 * tc, self.P[k])
        f_w = -0.12 * np.sin(2 * np.pi * tau / self.T[k])
        return np.where(run, p - b1 - b2, f_w)

    def lateral(self, tau, k):
        run = self.kind[k] == RUN
        tc = np.where(run, self.tc[k], 1.0)
        f = pulse_value(tau, 0.0, tc, self.L[k])
        sgn = np.where(self.side[k] == 0, -1.0, 1.0)
        f_w = sgn * 0.08 * 0.55 / self.T[k] * np.sin(np.pi * tau / self.T[k])
        return np.where(run, f, f_w)
