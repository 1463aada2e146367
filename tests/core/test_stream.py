"""Incremental analyser (core.stream): on the same data it gives the batch call's steps, strides and alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiltguard.core.drift import DriftConfig
from tiltguard.core.pipeline import AnalysisConfig, analyze
from tiltguard.core.stream import StreamAnalyzer
from tiltguard.errors import InputError
from tiltguard.formats.raw import Recording
from tiltguard.sim import SimConfig, simulate

# a short session needs a short warm-up to reach an alert
FAST_DRIFT = DriftConfig(warmup_s=30.0, baseline_s=60.0)


def rec_of(res) -> Recording:
    k = res.keep
    return Recording(t_s=res.t_s[k], acc_g=res.acc_g[k], gyro_dps=None if res.gyro_dps is None else res.gyro_dps[k])


def feed_all(rec: Recording, stream: StreamAnalyzer, seed: int = 0, lo: int = 20, hi: int = 400):
    rng = np.random.default_rng(seed)
    i, n, updates = 0, len(rec.t_s), []
    while i < n:
        k = int(rng.integers(lo, hi + 1))
        g = None if rec.gyro_dps is None else rec.gyro_dps[i:i + k]
        updates.append(stream.feed(rec.t_s[i:i + k], rec.acc_g[i:i + k], g))
        i += k
    return updates


def assert_same(a: pd.DataFrame, b: pd.DataFrame, time_cols, tol_deg=0.01, tol_s=1e-5, skip=()):
    """Equal rows; times within ``tol_s``, angles within ``tol_deg`` (what the events' IIR filters leave at
    the window margins; the median difference is far smaller)."""
    assert len(a) == len(b)
    for c in a.columns:
        if c in skip:
            continue
        if not pd.api.types.is_numeric_dtype(a[c]):
            assert (a[c].astype(str).to_numpy() == b[c].astype(str).to_numpy()).all(), c
            continue
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        assert (np.isnan(x) == np.isnan(y)).all(), c
        tol = tol_s if c in time_cols else (0.05 if c.endswith("_ms") else 0.5 if c.endswith("_pct") else tol_deg)
        d = np.abs(x - y)
        assert np.nanmax(d, initial=0.0) <= tol, (c, np.nanmax(d))
        if c.endswith("_deg"):
            assert np.nanmedian(d) <= 1e-3, (c, np.nanmedian(d))


@pytest.fixture(scope="module")
def drift_session():
    res = simulate(SimConfig(minutes=6.0, seed=31, rate_hz=200, scenario="drift", drift_deg=5.0,
                             drift_onset_s=150.0, drift_rate_deg_per_min=2.5))
    return rec_of(res)


def test_stream_equals_batch_with_alerts(drift_session):
    cfg = AnalysisConfig(drift=FAST_DRIFT)
    batch = analyze(drift_session, cfg)
    assert (batch.alerts.kind == "anterior_tilt_drift").sum() == 1      # the test needs an alert
    s = StreamAnalyzer(cfg)
    updates = feed_all(drift_session, s)
    assert any(len(u.steps) for u in updates[: len(updates) // 2])       # results flow before the end
    out = s.finish()
    assert_same(batch.steps, out.steps, ("t_ic_s", "t_to_s", "step_time_s"), skip=("side_confidence",))
    assert_same(batch.strides, out.strides, ("t_start_s", "t_end_s"))
    assert batch.alerts.kind.tolist() == out.alerts.kind.tolist()
    assert np.allclose(batch.alerts.t_s.to_numpy(float), out.alerts.t_s.to_numpy(float), atol=1e-5)
    for k in ("n_steps", "n_strides", "alerts", "drift_onset_s"):
        assert batch.summary[k] == out.summary[k], k
    assert out.summary["running_s"] == pytest.approx(batch.summary["running_s"], abs=1.0)
    assert out.summary["mounting"] == batch.summary["mounting"]
    # alerts surfaced through feed() as they became final, once each
    fed = [a for u in updates for a in u.alerts]
    assert [a["kind"] for a in fed] == out.alerts.kind.tolist()[: len(fed)]


def test_stream_equals_batch_with_packet_loss_100hz():
    res = simulate(SimConfig(minutes=4.0, seed=32, rate_hz=100, loss=0.01, misalign_deg=15.0))
    rec = rec_of(res)
    batch = analyze(rec)
    s = StreamAnalyzer()
    feed_all(rec, s, seed=1, lo=20, hi=200)
    out = s.finish()
    assert len(batch.steps) > 300
    # a gap-free stretch cut by the window start is detrended on what the window holds of it: event
    # times then agree within 0.1 ms (1/50 of a sample), not 10 us
    assert_same(batch.steps, out.steps, ("t_ic_s", "t_to_s", "step_time_s"), tol_s=1e-4,
                skip=("side_confidence",))
    assert_same(batch.strides, out.strides, ("t_start_s", "t_end_s"), tol_s=1e-4)
    assert out.summary["gaps"] == [g for g in batch.summary["gaps"]]


def test_short_session_never_calibrated_is_the_batch_call():
    res = simulate(SimConfig(minutes=1.2, seed=33, rate_hz=100))
    rec = rec_of(res)
    s = StreamAnalyzer()
    ups = feed_all(rec, s)
    assert not any(ups)                    # under 60 s of running: nothing final before the end
    out = s.finish()
    batch = analyze(rec)
    pd.testing.assert_frame_equal(out.steps, batch.steps)
    assert s.finish() is out               # idempotent


def test_stream_rejects_bad_input():
    s = StreamAnalyzer()
    s.feed([0.0, 0.01], np.zeros((2, 3)) + [1, 0, 0])
    with pytest.raises(InputError):
        s.feed([0.005, 0.02], np.zeros((2, 3)))          # goes back in time
    with pytest.raises(InputError):
        StreamAnalyzer().finish()                       # nothing arrived
    assert not s.feed([], np.zeros((0, 3)))
