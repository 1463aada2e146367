"""Truth tables follow docs/conventions.md; the sensor model does what it claims; runs are reproducible."""

import numpy as np
import pytest

from tiltguard.errors import InputError
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS
from tiltguard.sim import SCENARIOS, SimConfig, preset, simulate
from tiltguard.sim import sensor


@pytest.fixture(scope="module")
def mixed():
    return simulate(preset("mixed", seed=4, minutes=12, rate_hz=100, misalign_deg=12, loss=0.02, knocks_per_min=0.5))


def test_step_table_definitions(mixed):
    st = mixed.steps
    assert list(st.columns[: len(STEPS_COLUMNS)]) == STEPS_COLUMNS
    assert set(st.side) == {"L", "R"}
    assert np.allclose(st.t_to_s - st.t_ic_s, st.gct_ms / 1000)
    assert np.allclose(st.step_time_s * 1000, st.gct_ms + st.flight_ms)
    assert (st.flight_ms > 0).all() and (st.braking_peak_g >= 0).all()
    # within a bout the next step starts where this one ends, and sides alternate
    cont = np.isclose(st.t_ic_s.to_numpy()[:-1] + st.step_time_s.to_numpy()[:-1], st.t_ic_s.to_numpy()[1:])
    assert cont.mean() > 0.98
    sides = st.side.to_numpy()
    assert (sides[:-1][cont] != sides[1:][cont]).all()
    # running only: every truth IC is in a running sample
    act = mixed.activity[np.searchsorted(mixed.t_s, st.t_ic_s) - 1]
    assert (act == 2).all()
    # the mixed preset really has stops, walking, hills, pace changes
    acts = {s["activity"] for s in mixed.meta["segments"]}
    assert {"standing", "walking", "running", "stopped"} <= acts
    assert np.ptp(st.grade_pct) > 3 and np.ptp(st.speed_mps) > 0.3


def test_stride_table_definitions(mixed):
    sd, st = mixed.strides, mixed.steps
    assert list(sd.columns[: len(STRIDES_COLUMNS)]) == STRIDES_COLUMNS
    left = st.set_index("t_ic_s")
    assert (left.loc[sd.t_start_s, "side"] == "L").all()
    assert (left.loc[sd.t_start_s, "step_time_s"].to_numpy() < (sd.t_end_s - sd.t_start_s).to_numpy()).all()
    assert np.allclose(sd.cadence_spm, 120 / (sd.t_end_s - sd.t_start_s))
    assert np.allclose(sd.tilt_rom_deg, sd.tilt_max_deg - sd.tilt_min_deg)
    assert ((sd.tilt_min_deg <= sd.tilt_mean_deg) & (sd.tilt_mean_deg <= sd.tilt_max_deg)).all()
    assert ((sd.pelvic_drop_l_deg >= 0) & (sd.pelvic_drop_r_deg >= 0)).all()
    gl, gr = sd.gct_l_ms, sd.gct_r_ms
    assert np.allclose(sd.gct_asymmetry_pct, 100 * (gl - gr) / ((gl + gr) / 2))
    # stride means agree with the per-sample truth
    t, tilt = mixed.t_s, mixed.angles_deg[:, 0]
    for a, b, mean in sd[["t_start_s", "t_end_s", "tilt_mean_deg"]].to_numpy()[::50]:
        m = (t >= a) & (t < b)
        assert abs(tilt[m].mean() - mean) < 0.1


def test_pelvis_ranges_match_reference(mixed):
    """REFERENCE.md: tilt ROM 5.9-7.4, obliquity 7.8-9.6, rotation 9.7-16.1 deg; tilt twice per stride."""
    sd = mixed.strides
    r = mixed.meta["runner"]
    assert 5.5 < sd.tilt_rom_deg.median() < 8.5
    assert 7.5 < sd.obliquity_rom_deg.median() < 10.0
    assert 9.5 < sd.rotation_rom_deg.median() < 16.5
    assert abs(sd.obliquity_rom_deg.median() - r["obliquity_rom_deg"]) < 0.3
    # tilt: two maxima per stride; obliquity: one
    a, b = sd.t_start_s.iloc[10], sd.t_end_s.iloc[10]
    m = (mixed.t_s >= a) & (mixed.t_s < b)
    for j, peaks in ((0, 2), (1, 1), (2, 1)):
        x = mixed.angles_deg[m, j]
        x = x - x.mean()
        assert np.count_nonzero(np.diff(np.sign(x)) < 0) in (peaks, peaks + 1)   # downward zero crossings


def test_drift_truth():
    res = simulate(preset("drift", seed=7, minutes=14, drift_deg=5.0, drift_rate_deg_per_min=1.0))
    d = res.drift
    assert d["magnitude_deg"] == 5.0 and d["cross3_s"] == pytest.approx(d["onset_s"] + 180.0)
    sd = res.strides
    base = sd[sd.t_end_s < d["onset_s"]].tilt_mean_deg.median()
    late = sd[sd.t_start_s > d["onset_s"] + 300 + 10].tilt_mean_deg.median()    # drift saturated at 5 deg
    assert late - base == pytest.approx(5.0, abs=0.8)
    near = sd[(sd.t_start_s > d["cross3_s"] - 20) & (sd.t_end_s < d["cross3_s"] + 20)].tilt_mean_deg.median()
    assert near - base == pytest.approx(3.0, abs=0.8)
    small = simulate(preset("drift", seed=7, minutes=14, drift_deg=2.0))
    assert small.drift["cross3_s"] is None and small.drift["onset_s"] is not None
    none = simulate(preset("steady", seed=7, minutes=3))
    assert none.drift == {"onset_s": None}


def test_deterministic_by_seed():
    a = simulate(preset("hills", seed=9, minutes=2, loss=0.02))
    b = simulate(preset("hills", seed=9, minutes=2, loss=0.02))
    c = simulate(preset("hills", seed=10, minutes=2, loss=0.02))
    assert np.array_equal(a.acc_g, b.acc_g) and np.array_equal(a.gyro_dps, b.gyro_dps)
    assert np.array_equal(a.keep, b.keep) and a.steps.equals(b.steps)
    assert not np.array_equal(a.t_s[:100], c.t_s[:100]) or len(a.steps) != len(c.steps)
    # the body does not depend on the sample rate
    d = simulate(preset("hills", seed=9, minutes=2, loss=0.02, rate_hz=100))
    assert d.steps.equals(a.steps)


def test_sensor_errors(mixed):
    res = mixed
    acc, gyr = res.acc_g, res.gyro_dps
    # int16 codes at +-16 g / +-2000 dps, saturated at full scale
    assert np.allclose(acc / sensor.ACC_LSB_G, np.round(acc / sensor.ACC_LSB_G))
    assert np.allclose(gyr / sensor.GYRO_LSB_DPS, np.round(gyr / sensor.GYRO_LSB_DPS))
    assert acc.max() <= 32767 * sensor.ACC_LSB_G and acc.min() >= -16.0
    assert res.meta["saturated_samples"] > 0 and np.isclose(np.abs(acc).max(), 16.0, atol=1e-3)
    # jitter: irregular but increasing instants; loss: about the requested fraction, in bursts
    dt = np.diff(res.t_s)
    assert (dt > 0).all() and dt.std() > 0
    lost = 1 - res.keep.mean()
    assert 0.01 < lost < 0.03
    assert len(res.gaps()) < (~res.keep).sum() / 5
    # gyro bias: the standing period reads a non-zero mean rate
    still = res.t_s < 10
    assert np.abs(gyr[still].mean(axis=0)).max() > 0.05


def test_accel_only_and_device_angles():
    res = simulate(preset("steady", seed=1, minutes=1, gyro=False, angles=True))
    assert res.gyro_dps is None
    assert np.abs(res.device_angles_deg - res.angles_deg).max() < 2.0
    assert np.abs(res.device_angles_deg - res.angles_deg).mean() > 0.01
    rec = res.recording()
    assert rec.gyro_dps is None and rec.angles_deg.shape == (len(rec), 3) and rec.fs_hz == pytest.approx(200, rel=0.01)


@pytest.mark.parametrize("kw, msg", [
    (dict(rate_hz=20), "outside 50-1000"), (dict(scenario="beach"), "unknown scenario"),
    (dict(loss=0.9), "loss"), (dict(misalign_deg=-3), "misalign"), (dict(drift_deg=-1), "drift"),
])
def test_bad_config_is_refused_in_one_line(kw, msg):
    with pytest.raises(InputError, match=msg) as e:
        simulate(SimConfig(**kw))
    assert "\n" not in str(e.value)


def test_every_preset_runs():
    for name in SCENARIOS:
        res = simulate(preset(name, seed=2, minutes=4, rate_hz=50))
        assert len(res.steps) > 200 and len(res.strides) > 100, name
