"""Per-step / per-stride metrics and stride curves (core.metrics, core.curves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiltguard.core.curves import stride_curves
from tiltguard.core.events import StepEvents, detect_steps, uniform_grid
from tiltguard.core.kinematics import Kinematics
from tiltguard.core.metrics import step_table, stride_index, stride_table
from tiltguard.formats.session import CURVES_COLUMNS, STEPS_COLUMNS, STRIDES_COLUMNS
from tiltguard.sim.config import SimConfig
from tiltguard.sim.engine import simulate

G = 9.80665


def kin_from_truth(res, noise_g=0.015, seed=0) -> Kinematics:
    """Perfectly mounted clip: true level-frame specific force + noise, true angles, lost samples removed."""
    rng = np.random.default_rng(seed)
    k = res.keep
    acc = res.f_level_g[k] + noise_g * rng.standard_normal((int(k.sum()), 3))
    return Kinematics(res.t_s[k], res.config.rate_hz, acc, res.angles_deg[k], running=res.activity[k] == 2)


def matched(det: pd.DataFrame, tru: pd.DataFrame, col: str, tol=0.04):
    d, t = det[col].to_numpy(), tru[col].to_numpy()
    j = np.clip(np.searchsorted(d, t), 1, len(d) - 1)
    j = np.where(np.abs(d[j - 1] - t) < np.abs(d[j] - t), j - 1, j)
    hit = np.abs(d[j] - t) <= tol
    return det.iloc[j[hit]].reset_index(drop=True), tru[hit].reset_index(drop=True)


@pytest.fixture(scope="module")
def analysed():
    out = {}
    for name, cfg in {
        "asym200": SimConfig(minutes=2.5, seed=21, scenario="steady", rate_hz=200, gct_asymmetry_pct=8.0,
                             obliquity_asymmetry=0.3),
        "hills100_loss": SimConfig(minutes=2.5, seed=22, scenario="hills", rate_hz=100, loss=0.02),
    }.items():
        res = simulate(cfg)
        kin = kin_from_truth(res)
        ev = detect_steps(kin)
        out[name] = (res, kin, ev, step_table(kin, ev), stride_table(kin, ev), stride_curves(kin, ev))
    return out


def test_tables_have_the_documented_columns(analysed):
    _, _, _, steps, strides, curves = analysed["asym200"]
    assert list(steps.columns) == STEPS_COLUMNS
    assert list(strides.columns) == STRIDES_COLUMNS
    assert list(curves.columns) == CURVES_COLUMNS and len(curves) == 101
    assert set(steps["side"]) <= {"L", "R"}
    assert (steps["braking_peak_g"].dropna() >= 0).all()
    assert ((steps["side_confidence"] >= 0) & (steps["side_confidence"] <= 1)).all()
    # strides run from a left IC to the next left IC, and tile the steps
    left = steps.loc[steps["side"] == "L", "t_ic_s"].to_numpy()
    assert np.isin(strides["t_start_s"], left).all() and np.isin(strides["t_end_s"], left).all()


@pytest.mark.parametrize("name", ["asym200", "hills100_loss"])
def test_step_metrics_match_truth(analysed, name):
    res, _, _, steps, _, _ = analysed[name]
    det, tru = matched(steps, res.steps, "t_ic_s")
    assert len(det) >= 0.98 * len(res.steps)
    err = lambda c: np.nanmean(np.abs(det[c].to_numpy(float) - tru[c].to_numpy(float)))  # noqa: E731
    assert err("gct_ms") <= 15.0
    assert err("vertical_oscillation_cm") <= 1.0
    assert err("step_time_s") <= 0.010
    assert err("flight_ms") <= 20.0
    assert err("braking_peak_g") <= 0.3
    # steps touching lost samples carry NaN VO instead of a corrupted number
    assert steps["vertical_oscillation_cm"].notna().mean() > 0.8


@pytest.mark.parametrize("name", ["asym200", "hills100_loss"])
def test_stride_metrics_match_truth(analysed, name):
    res, _, _, _, strides, _ = analysed[name]
    det, tru = matched(strides, res.strides, "t_start_s")
    assert len(det) >= 0.95 * len(res.strides)
    err = lambda c: np.nanmean(np.abs(det[c].to_numpy(float) - tru[c].to_numpy(float)))  # noqa: E731
    assert err("tilt_mean_deg") <= 0.5
    for c in ("tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg"):
        assert err(c) <= 0.7, c
    assert err("cadence_spm") <= 1.0
    assert err("pelvic_drop_l_deg") <= 0.7 and err("pelvic_drop_r_deg") <= 0.7
    assert err("gct_l_ms") <= 15.0 and err("gct_r_ms") <= 15.0


def test_asymmetry_indices_follow_the_simulated_runner(analysed):
    _, _, _, _, strides, _ = analysed["asym200"]
    # simulated: contact time L 8 % longer than R; obliquity half-wave of left stance 30 % larger
    assert abs(np.nanmedian(strides["gct_asymmetry_pct"]) - 8.0) < 3.0
    assert np.nanmedian(strides["obliquity_asymmetry_pct"]) > 20.0


def test_vertical_oscillation_is_drift_free_under_scale_and_bias_error():
    fs, f, amp = 200.0, 1.45, 0.04          # 4 cm sinusoidal bounce at 2.9 steps/s: VO = 8 cm
    t = np.arange(0, 30, 1 / fs)
    up = 1.0 - amp * (2 * np.pi * f) ** 2 * np.sin(2 * np.pi * f * t) / G
    up = 1.03 * up + 0.02                   # 3 % scale error and 0.02 g bias: must not drift
    kin = Kinematics(t, fs, np.column_stack([0 * t, 0 * t, up]), np.zeros((len(t), 3)))
    ic = np.arange(1.0, 28.0, 1 / f)        # one "step" per period
    ev = StepEvents(ic, ic + 0.1, np.where(np.arange(len(ic)) % 2, "R", "L"), np.ones(len(ic)), np.zeros(len(ic), int))
    vo = step_table(kin, ev)["vertical_oscillation_cm"].to_numpy()
    assert np.all(np.abs(vo[:-1] - 1.03 * 8.0) < 0.1)


def test_stride_reductions_equal_a_plain_per_stride_computation():
    rng = np.random.default_rng(3)
    fs = 100.0
    t = np.arange(0, 20, 1 / fs)
    ang = np.cumsum(rng.standard_normal((len(t), 3)), axis=0) * 0.1
    kin = Kinematics(t, fs, np.zeros((len(t), 3)) + [0, 0, 1], ang)
    ic = np.sort(rng.uniform(1, 19, 30))
    ic = ic[np.concatenate(([True], np.diff(ic) > 0.2))]
    to = ic + 0.1
    side = np.where(np.arange(len(ic)) % 2, "R", "L")
    ev = StepEvents(ic, to, side, np.ones(len(ic)), np.zeros(len(ic), int))
    st = stride_table(kin, ev)
    si = stride_index(ev)
    for row, i in zip(st.itertuples(), si):
        sel = (t >= ic[i] - 1e-9) & (t < ic[i + 2] - 1e-9)
        assert row.tilt_mean_deg == pytest.approx(ang[sel, 0].mean())
        assert row.tilt_rom_deg == pytest.approx(np.ptp(ang[sel, 0]))
        assert row.obliquity_rom_deg == pytest.approx(np.ptp(ang[sel, 1]))
        assert row.rotation_rom_deg == pytest.approx(np.ptp(ang[sel, 2]))
        stance = (t >= ic[i] - 1e-9) & (t < to[i] - 1e-9)
        obl_ic = np.interp(ic[i], t, ang[:, 1])
        assert row.pelvic_drop_l_deg == pytest.approx(max(0.0, ang[stance, 1].max() - obl_ic))


def test_curves_recover_a_known_stride_waveform():
    fs, stride_s = 200.0, 0.7
    t = np.arange(0, 60, 1 / fs)
    phase = (t % stride_s) / stride_s
    drift = np.where(t > 30, 2.0, 0.0)      # late part tilted 2 deg more
    ang = np.column_stack([3 * np.cos(4 * np.pi * phase) + drift, 4 * np.sin(2 * np.pi * phase),
                           5 * np.cos(2 * np.pi * phase)])
    kin = Kinematics(t, fs, np.zeros((len(t), 3)) + [0, 0, 1], ang)
    ic = np.arange(0, 59, stride_s / 2)
    ev = StepEvents(ic, ic + 0.1, np.where(np.arange(len(ic)) % 2, "R", "L"), np.ones(len(ic)), np.zeros(len(ic), int))
    cv = stride_curves(kin, ev)
    p = cv["pct"].to_numpy() / 100.0
    np.testing.assert_allclose(cv["obliquity_early_deg"], 4 * np.sin(2 * np.pi * p), atol=0.05)
    np.testing.assert_allclose(cv["rotation_late_deg"], 5 * np.cos(2 * np.pi * p), atol=0.05)
    np.testing.assert_allclose(cv["tilt_late_deg"] - cv["tilt_early_deg"], 2.0, atol=0.05)


def test_empty_events_give_empty_tables_with_columns():
    t = np.arange(0, 5, 0.01)
    kin = Kinematics(t, 100.0, np.zeros((len(t), 3)), np.zeros((len(t), 3)))
    ev = StepEvents.empty()
    assert list(step_table(kin, ev).columns) == STEPS_COLUMNS and len(step_table(kin, ev)) == 0
    assert list(stride_table(kin, ev).columns) == STRIDES_COLUMNS and len(stride_table(kin, ev)) == 0
    cv = stride_curves(kin, ev)
    assert len(cv) == 101 and cv["tilt_early_deg"].isna().all()


def test_grid_reuse_gives_identical_tables(analysed):
    _, kin, ev, steps, strides, _ = analysed["hills100_loss"]
    g = uniform_grid(kin)
    pd.testing.assert_frame_equal(step_table(kin, ev, g), steps)
    pd.testing.assert_frame_equal(stride_table(kin, ev, g), strides)


def test_grid_cache_follows_replaced_arrays():
    t = np.arange(0, 5, 0.01)
    kin = Kinematics(t, 100.0, np.zeros((len(t), 3)) + [0, 0, 1], np.zeros((len(t), 3)))
    g1 = uniform_grid(kin)
    assert uniform_grid(kin) is g1                       # events, metrics and curves share one grid
    kin.angles_deg = kin.angles_deg + 1.0                # a new array: the grid is rebuilt
    g2 = uniform_grid(kin)
    assert g2 is not g1 and np.allclose(g2.angles, 1.0)
