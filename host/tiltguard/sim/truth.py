"""Exact truth tables from the simulated body (definitions: docs/conventions.md, docs/formats.md).

Per-step and per-stride values come from the continuous body on fine grids (65 points per step,
128 per stride), not from the sensor samples, so they do not depend on the sample rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiltguard.sim import gait
from tiltguard.sim.body import Body
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS

R2D = 180.0 / np.pi


def asymmetry_pct(left, right):
    """Signed symmetry index 100 (L - R) / mean(L, R); 0 when both are 0."""
    left, right = np.asarray(left, float), np.asarray(right, float)
    m = 0.5 * (left + right)
    return np.where(np.abs(m) > 1e-12, 100.0 * (left - right) / np.where(m == 0, 1, m), 0.0)


def step_table(body: Body) -> pd.DataFrame:
    """Running steps with a following initial contact (bout ends are not steps)."""
    st = body.steps
    k = np.flatnonzero((st.kind == gait.RUN) & ~st.last)
    u = np.linspace(0.0, 1.0, 65)
    tau = st.T[k, None] * u
    _, _, pos = st.vertical(tau, k[:, None])
    vo_cm = np.ptp(pos, axis=1) * 100.0
    tau_c = st.tc[k, None] * u
    _, dv = body.speed(st.t_ic[k, None] + tau_c)
    fwd = st.forward(tau_c, k[:, None]) + dv / gait.G
    t_to = st.t_ic[k] + st.tc[k]
    return pd.DataFrame({
        "t_ic_s": st.t_ic[k],
        "side": np.where(st.side[k] == 0, "L", "R"),
        "t_to_s": t_to,
        "gct_ms": st.tc[k] * 1000.0,
        "flight_ms": (st.t_end[k] - t_to) * 1000.0,
        "step_time_s": st.T[k],
        "vertical_oscillation_cm": vo_cm,
        "braking_peak_g": np.maximum(0.0, -fwd.min(axis=1)),
        "side_confidence": 1.0,
        "speed_mps": st.speed[k],
        "grade_pct": st.grade[k],
    })[STEPS_COLUMNS + ["speed_mps", "grade_pct"]]


def stride_table(body: Body) -> pd.DataFrame:
    """Strides from a left IC to the next left IC, both steps running."""
    st = body.steps
    n = len(st.t_ic)
    k = np.arange(max(n - 1, 0))
    ok = ((st.side[k] == 0) & (st.kind[k] == gait.RUN) & (st.kind[np.minimum(k + 1, n - 1)] == gait.RUN)
          & ~st.last[k] & ~st.last[np.minimum(k + 1, n - 1)] & (st.bout[k] == st.bout[np.minimum(k + 1, n - 1)]))
    k = k[ok]
    t0, t1 = st.t_ic[k], st.t_end[k + 1]
    m = 128
    tg = t0[:, None] + (t1 - t0)[:, None] * (np.arange(m) / m)
    ang, _ = body.angles(tg.ravel())
    ang = ang.reshape(len(k), m, 3) * R2D
    tilt, obl, rot = ang[..., 0], ang[..., 1], ang[..., 2]

    def stance_obl(j):
        g = st.t_ic[j, None] + st.tc[j, None] * np.linspace(0.0, 1.0, 65)
        a, _ = body.angles(g.ravel())
        return a[:, 1].reshape(len(j), 65) * R2D

    ol, orr = stance_obl(k), stance_obl(k + 1)
    drop_l = np.maximum(0.0, (ol - ol[:, :1]).max(axis=1))    # right side falls: obliquity rises
    drop_r = np.maximum(0.0, (orr[:, :1] - orr).max(axis=1))  # left side falls: obliquity falls
    gl, gr = st.tc[k] * 1000.0, st.tc[k + 1] * 1000.0
    return pd.DataFrame({
        "t_start_s": t0, "t_end_s": t1,
        "tilt_mean_deg": tilt.mean(axis=1), "tilt_min_deg": tilt.min(axis=1), "tilt_max_deg": tilt.max(axis=1),
        "tilt_rom_deg": np.ptp(tilt, axis=1), "tilt_ic_deg": tilt[:, 0],
        "obliquity_rom_deg": np.ptp(obl, axis=1), "rotation_rom_deg": np.ptp(rot, axis=1),
        "pelvic_drop_l_deg": drop_l, "pelvic_drop_r_deg": drop_r,
        "cadence_spm": 120.0 / (t1 - t0),
        "gct_l_ms": gl, "gct_r_ms": gr,
        "gct_asymmetry_pct": asymmetry_pct(gl, gr),
        "obliquity_asymmetry_pct": asymmetry_pct(drop_l, drop_r),
        "speed_mps": st.speed[k], "grade_pct": st.grade[k],
    })[STRIDES_COLUMNS + ["speed_mps", "grade_pct"]]
