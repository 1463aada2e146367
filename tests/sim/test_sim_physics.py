"""The simulator's truth is self-consistent: what the sensor reports integrates back to the truth."""

import numpy as np
from scipy.integrate import cumulative_trapezoid

from tiltguard.sim import SimConfig, simulate
from tiltguard.sim.gait import G
from tiltguard.sim.rotations import exp_map, pelvis_to_level, rotation_angle_deg


def sensor_to_world(res):
    a = np.radians(res.angles_deg)
    return pelvis_to_level(a[:, 0], a[:, 1], a[:, 2], res.heading_rad) @ res.mount


def test_double_integrated_vertical_acceleration_gives_truth_vertical_oscillation(clean_run):
    res = clean_run
    t = res.t_s
    up = (np.einsum("nij,nj->ni", sensor_to_world(res), res.acc_g)[:, 2] - 1.0) * G   # world, gravity removed
    steps = res.steps.iloc[::7]
    errs, pos_errs = [], []
    for t0, T, vo in zip(steps.t_ic_s, steps.step_time_s, steps.vertical_oscillation_cm):
        m = (t > t0) & (t < t0 + T)
        tt = np.concatenate([[t0], t[m], [t0 + T]])          # close the step exactly at both contacts
        a = np.interp(tt, t, up)
        v = cumulative_trapezoid(a, tt, initial=0.0)
        v -= np.trapezoid(v, tt) / (tt[-1] - tt[0])          # zero mean vertical velocity over the step
        p = cumulative_trapezoid(v, tt, initial=0.0)
        errs.append(np.ptp(p) * 100 - vo)
        pos_errs.append(np.abs(p[1:-1] - res.pos_up_m[m]).max())   # truth is 0 at every IC
    assert len(errs) > 40
    assert np.abs(errs).max() < 0.05, np.abs(errs).max()          # cm
    assert max(pos_errs) < 0.001                                  # m, the whole trajectory
    assert 4.0 < steps.vertical_oscillation_cm.median() < 11.0    # running VO is ~5-10 cm


def test_gyro_integrates_back_to_orientation(clean_run):
    res = clean_run
    t = res.t_s
    R = sensor_to_world(res)
    i0, i1 = np.searchsorted(t, [30.0, 200.0])     # running, incl. turnaround, bend, hills and pace change
    w = np.radians(res.gyro_dps[i0:i1])
    dR = exp_map(0.5 * (w[1:] + w[:-1]) * np.diff(t[i0:i1])[:, None])
    # integrate in chunks with a log-depth product (no per-sample Python loop)
    Rs = dR
    while len(Rs) > 1:
        if len(Rs) % 2:
            Rs = np.concatenate([Rs, np.eye(3)[None]])
        Rs = Rs[0::2] @ Rs[1::2]
    R_end = R[i0] @ Rs[0]
    assert rotation_angle_deg(R_end.T @ R[i1 - 1]) < 0.5
    # the heading really turned (the test would be trivial on a straight line)
    assert abs(np.degrees(res.heading_rad[i1 - 1] - res.heading_rad[i0])) > 90


def test_mean_specific_force_over_a_steady_stride_is_1g_up(clean_run):
    res = clean_run
    t = res.t_s
    fw = np.einsum("nij,nj->ni", sensor_to_world(res), res.acc_g)
    st = res.strides[(res.strides.t_start_s > 40) & (res.strides.t_end_s < 65)]   # steady 3.2 m/s, straight
    assert len(st) > 20
    for a, b in zip(st.t_start_s, st.t_end_s):
        m = (t >= a) & (t < b)
        mean = fw[m].mean(axis=0)
        assert abs(mean[2] - 1.0) < 0.01 and np.hypot(mean[0], mean[1]) < 0.01, mean
        assert abs(np.linalg.norm(res.acc_g[m].mean(axis=0)) - 1.0) < 0.03   # also in the sensor frame


def test_standing_reads_gravity_along_the_mounting(clean_run):
    res = clean_run
    m = res.t_s < 10
    acc = res.acc_g[m]
    assert np.allclose(acc, acc[0], atol=1e-9)                       # still
    assert np.allclose(acc[0], res.mount.T @ [1.0, 0.0, 0.0], atol=1e-9)
    assert np.degrees(np.arccos(acc[0, 0])) <= 20.0 + 1e-6           # 20 deg misalignment tilts +X by <= 20
    assert np.allclose(res.gyro_dps[m], 0.0, atol=1e-9)
    assert np.allclose(res.angles_deg[m], 0.0)                      # angles are relative to standing


def test_worn_as_designed_and_upside_down():
    base = dict(minutes=1, seed=5, clean=True, scenario="steady")
    up = simulate(SimConfig(**base))
    down = simulate(SimConfig(**base, upside_down=True))
    assert np.allclose(up.acc_g[0], [1, 0, 0]) and np.allclose(down.acc_g[0], [-1, 0, 0])
    # upside down = 180 deg about the backward axis: x and y flip, z stays
    assert np.allclose(down.acc_g, up.acc_g * [-1, -1, 1])
    assert np.allclose(down.gyro_dps, up.gyro_dps * [-1, -1, 1])
    assert np.allclose(up.angles_deg, down.angles_deg)     # the body is the same
    assert down.mounting["upside_down"] and np.allclose(down.mounting["matrix"], np.diag([-1, -1, 1]))


def test_conventions_signs(clean_run):
    res = clean_run
    run = res.activity == 2
    # running tilts the pelvis anteriorly relative to standing, on average
    assert res.angles_deg[run, 0].mean() > 0
    # obliquity: left side up during left stance (right side drops)
    st = res.steps
    for side, sign in (("L", 1), ("R", -1)):
        mid = (st.t_ic_s + 0.5 * st.gct_ms / 1000)[st.side == side].to_numpy()
        obl = np.interp(mid, res.t_s, res.angles_deg[:, 1])
        assert (np.sign(obl) == sign).mean() > 0.95
    # rotation: left side forward at left initial contact
    ic_l = st.t_ic_s[st.side == "L"].to_numpy()
    assert (np.interp(ic_l, res.t_s, res.angles_deg[:, 2]) > 0).mean() > 0.95
    # pelvis-frame gyro (x up, y left, z back), small angles: tilt rate about +y, obliquity about -z,
    # rotation about -x (down)
    rates = np.gradient(res.angles_deg, res.t_s, axis=0)
    straight = run & (np.abs(np.gradient(res.heading_rad, res.t_s)) < 1e-6)
    w = res.gyro_body_dps[straight]
    for j, k, sign in ((1, 0, 1), (2, 1, -1), (0, 2, -1)):
        assert np.corrcoef(w[:, j], sign * rates[straight, k])[0, 1] > 0.95
