"""The scorer, checked on small hand-built tables with known answers."""

import json

import numpy as np
import pandas as pd
import pytest

from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS, write_json_atomic, write_outputs
from tiltguard.sim.score import match_nearest, score, score_arrays, summarise

T_STEP = 0.33


def truth_steps(n=20, t0=10.0):
    t = t0 + T_STEP * np.arange(n)
    return pd.DataFrame({
        "t_ic_s": t, "side": np.where(np.arange(n) % 2 == 0, "L", "R"), "t_to_s": t + 0.2, "gct_ms": 200.0,
        "flight_ms": 130.0, "step_time_s": T_STEP, "vertical_oscillation_cm": 7.0, "braking_peak_g": 1.5,
        "side_confidence": 1.0})[STEPS_COLUMNS]


def strides_of(steps):
    s = steps[steps.side == "L"].iloc[:-1]
    n = len(s)
    return pd.DataFrame({c: np.full(n, 5.0) for c in STRIDES_COLUMNS} | {
        "t_start_s": s.t_ic_s.to_numpy(), "t_end_s": s.t_ic_s.to_numpy() + 2 * T_STEP,
        "cadence_spm": np.full(n, 120 / (2 * T_STEP))})[STRIDES_COLUMNS]


NO_ALERTS = pd.DataFrame(columns=["t_s", "kind", "value", "baseline_deg", "sent"])


def run(steps, t_steps, strides=None, t_strides=None, alerts=NO_ALERTS, drift=None, duration=3600.0, gaps=()):
    t_strides = strides_of(t_steps) if t_strides is None else t_strides
    strides = t_strides if strides is None else strides
    return summarise([score_arrays(steps, strides, alerts, t_steps, t_strides, drift or {"onset_s": None},
                                   duration, gaps)])


def test_match_nearest_is_one_to_one_and_respects_tolerance():
    ip, it = match_nearest(np.array([1.0, 1.008, 2.5, 5.0]), np.array([1.005, 2.45, 3.0]), 0.04)
    assert sorted(zip(ip.tolist(), it.tolist())) == [(1, 0)]     # 1.008 is nearest to 1.005; 2.5 is 50 ms off
    ip, it = match_nearest(np.array([]), np.array([1.0]), 0.04)
    assert len(ip) == 0


def test_truth_against_itself_is_perfect():
    t = truth_steps()
    r = run(t, t)
    assert r["ic_f1"] == 1.0 and r["ic_median_abs_err_ms"] == 0.0 and r["side_accuracy"] == 1.0
    assert r["gct_mae_ms"] == 0.0 and r["vo_mae_cm"] == 0.0 and r["tilt_mean_mae_deg"] == 0.0
    assert r["stride_recall"] == 1.0 and r["false_alarms"] == 0


def test_known_errors_give_known_numbers():
    t = truth_steps(20)
    p = t.copy()
    p["t_ic_s"] = p.t_ic_s + np.where(np.arange(20) < 10, 0.010, -0.020)   # 10 ms late, then 20 ms early
    p.loc[2, "side"] = "R"                                                # one wrong side
    p["gct_ms"] = 212.0                                                   # 12 ms too long
    p["vertical_oscillation_cm"] = 6.5
    p = p.drop(index=[5, 6])                                              # two steps missed
    extra = t.iloc[[0]].assign(t_ic_s=10.0 + 0.165)                       # one extra mid-step
    p = pd.concat([p, extra]).sort_values("t_ic_s")
    r = run(p, t)
    assert r["n_matched"] == 18 and r["n_pred_steps"] == 19 and r["n_true_steps"] == 20
    assert r["ic_precision"] == pytest.approx(18 / 19) and r["ic_recall"] == pytest.approx(18 / 20)
    assert r["ic_f1"] == pytest.approx(2 * (18 / 19) * 0.9 / (18 / 19 + 0.9))
    # 8 errors of +10 ms, 10 of -20 ms
    assert r["ic_median_abs_err_ms"] == pytest.approx(20.0)
    assert r["ic_bias_ms"] == pytest.approx((8 * 10 - 10 * 20) / 18)
    assert r["side_accuracy"] == pytest.approx(17 / 18)
    assert r["gct_mae_ms"] == pytest.approx(12.0) and r["vo_mae_cm"] == pytest.approx(0.5)


def test_outside_tolerance_is_a_miss_and_an_extra():
    t = truth_steps(10)
    p = t.copy()
    p.loc[4, "t_ic_s"] += 0.045
    r = run(p, t)
    assert r["n_matched"] == 9 and r["ic_precision"] == pytest.approx(0.9) and r["ic_recall"] == pytest.approx(0.9)


def test_stride_errors():
    t = truth_steps(21)
    ts = strides_of(t)
    ps = ts.copy()
    ps["tilt_mean_deg"] += np.where(np.arange(len(ps)) % 2 == 0, 0.4, -0.2)
    ps["rotation_rom_deg"] += 1.0
    ps = ps.iloc[1:]
    r = run(t, t, ps, ts)
    assert r["stride_recall"] == pytest.approx((len(ts) - 1) / len(ts))
    errs = np.abs(np.where(np.arange(len(ts)) % 2 == 0, 0.4, -0.2))[1:]
    assert r["tilt_mean_mae_deg"] == pytest.approx(errs.mean())
    assert r["rotation_rom_mae_deg"] == pytest.approx(1.0) and r["tilt_rom_mae_deg"] == pytest.approx(0.0)


def test_drift_delay_and_false_alarms():
    t = truth_steps()
    drift = {"onset_s": 1800.0, "magnitude_deg": 5.0, "rate_deg_per_min": 1.0, "cross3_s": 1980.0}
    alerts = pd.DataFrame({"t_s": [600.0, 2030.0, 2500.0, 900.0], "kind": ["anterior_tilt_drift"] * 2 +
                           ["recovered", "pelvic_drop"], "value": 1.0, "baseline_deg": 5.0, "sent": ""})
    r = run(t, t, alerts=alerts, drift=drift, duration=3600.0)
    assert r["drift_sessions"] == 1 and r["drift_detected_within_90s"] == 1
    assert r["drift_delays_s"] == [pytest.approx(50.0)]
    assert r["false_alarms"] == 1 and r["false_alarms_per_hour"] == pytest.approx(1 / 0.5)
    late = alerts.assign(t_s=[600.0, 2100.0, 2500.0, 900.0])
    assert run(t, t, alerts=late, drift=drift)["drift_detection_rate_90s"] == 0.0
    # no drift in the session: every drift alert is false
    r = run(t, t, alerts=alerts, duration=7200.0)
    assert r["false_alarms"] == 2 and r["false_alarms_per_hour"] == pytest.approx(1.0)
    assert r["drift_sessions"] == 0 and r["drift_detection_rate_90s"] is None


def test_gaps_and_bout_edges():
    t = truth_steps(20)
    p = t.drop(index=[7, 8])                                   # both inside a sample gap: not held against it
    walk = t.iloc[[0]].assign(t_ic_s=t.t_ic_s.iloc[0] - 0.5)    # one step early at the walk->run edge: ignored
    far = t.iloc[[0]].assign(t_ic_s=t.t_ic_s.iloc[0] - 5.0)     # a step during standing: false positive
    p = pd.concat([walk, far, p])
    gap = [[t.t_ic_s.iloc[7] - 0.05, t.t_ic_s.iloc[8] + 0.05]]
    r = run(p, t, gaps=gap)
    assert r["n_true_hidden_in_gaps"] == 2 and r["ic_recall"] == 1.0
    assert r["n_pred_ignored_at_edges"] == 1 and r["ic_precision"] == pytest.approx(18 / 19)


def test_pooling_over_sessions():
    t = truth_steps(10)
    a = score_arrays(t, strides_of(t), NO_ALERTS, t, strides_of(t), {"onset_s": None}, 1800.0)
    p = t.assign(t_ic_s=t.t_ic_s + 0.030)
    b = score_arrays(p, strides_of(t), NO_ALERTS, t, strides_of(t), {"onset_s": None}, 1800.0)
    r = summarise([a, b])
    assert r["sessions"] == 2 and r["n_matched"] == 20
    assert r["ic_median_abs_err_ms"] == pytest.approx(15.0) and r["ic_p95_abs_err_ms"] == pytest.approx(30.0)


def test_score_reads_folders(tmp_path):
    t = truth_steps()
    truth = tmp_path / "sess" / "truth"
    write_outputs(truth, t, strides_of(t), NO_ALERTS, {"duration_s": 100.0, "gaps": []})
    write_json_atomic(truth / "drift.json", {"onset_s": None})
    out = tmp_path / "out"
    p = t.assign(gct_ms=210.0)
    write_outputs(out, p, strides_of(t), NO_ALERTS, {})
    r = score(out, tmp_path / "sess")        # the session folder or its truth/ both work
    assert r["gct_mae_ms"] == pytest.approx(10.0) and r == score(out, truth)
    json.dumps(r)
