"""The simulator's ranges match real sacral running (Alcantara 2021/2022, ../shared/data)."""

import numpy as np
import pandas as pd
import pytest

from tiltguard.sim import Segment, SimConfig, simulate

FS = 500.0


def real_trials(folder):
    """Per trial: speed, slope, median per-step peak vertical acceleration, contact time, step frequency."""
    acc = np.loadtxt(folder / "Accelerometer_one_sub.csv", delimiter=",")
    grf = np.loadtxt(folder / "GRF_one_sub.csv", delimiter=",")
    info = pd.read_csv(folder / "Sub_Info_one_sub.csv")
    rows = []
    for i in range(len(grf)):   # 31 trials
        v, g = acc[i, :2480], grf[i]
        on = np.diff((g > 0.05).astype(int))
        ic, to = np.flatnonzero(on == 1) + 1, np.flatnonzero(on == -1) + 1
        to = to[to > ic[0]]
        n = min(len(ic), len(to))
        ic, to = ic[:n], to[:n]
        ok = (to - ic) > 0.1 * FS             # ignore force-plate blips
        ic, to = ic[ok], to[ok]
        peaks = np.maximum.reduceat(v, ic)[:-1]
        rows.append(dict(speed=info.Speed[i], slope=info.Slope[i], peak_g=np.median(peaks),
                         gct_s=np.median(to - ic) / FS, step_hz=FS / np.median(np.diff(ic))))
    return pd.DataFrame(rows)


def sim_steps(speed, grade=0.0, seed=0, offset=0.0):
    segs = [Segment("standing", 5), Segment("running", 40, speed, grade)]
    res = simulate(SimConfig(seed=seed, segments=segs, rate_hz=500, clean=True, cadence_offset_hz=offset))
    t, up = res.t_s, res.f_level_g[:, 2]
    st = res.steps[res.steps.t_ic_s > 10]
    peaks = np.maximum.reduceat(up, np.searchsorted(t, st.t_ic_s))[:-1]
    return np.median(peaks), st.gct_ms.median() / 1000, 1 / st.step_time_s.median()


@pytest.fixture(scope="module")
def real(alcantara_dir):
    return real_trials(alcantara_dir)


@pytest.mark.parametrize("speed", [2.5, 3.33, 4.17])
def test_level_running_matches_real_trials(real, speed):
    r = real[(real.speed == speed) & (real.slope == 0)]
    assert len(r)
    peak, gct, hz = sim_steps(speed)
    # peak vertical acceleration at the sacrum (g): within the real trials' spread +- 0.4 g
    assert r.peak_g.min() - 0.4 <= peak <= r.peak_g.max() + 0.4, (peak, r.peak_g.tolist())
    # contact time from GRF > 0.05 BW: within 25 ms of the real trials
    assert r.gct_s.min() - 0.025 <= gct <= r.gct_s.max() + 0.025, (gct, r.gct_s.tolist())
    # step frequency: this runner is within the simulator's population spread (2.5 x 0.17 Hz)
    assert abs(np.median(r.step_hz) - hz) < 2.5 * 0.17, (hz, r.step_hz.tolist())


def test_downhill_raises_the_impact_like_real_running(real):
    lvl = real[(real.speed == 3.33) & (real.slope == 0)].peak_g.median()
    down = real[(real.speed == 3.33) & (real.slope == -10)].peak_g.median()
    up = real[(real.speed == 3.33) & (real.slope == 10)].peak_g.median()
    s_lvl, s_down, s_up = (sim_steps(3.33, g)[0] for g in (0.0, -10.0, 10.0))
    assert down > lvl > up and s_down > s_lvl > s_up
    assert s_down == pytest.approx(down, abs=0.7) and s_up == pytest.approx(up, abs=0.5)


def test_speed_laws_match_the_37_runner_summary(alcantara_dir):
    """GRF_IMU_summary.csv: per-runner means at 3.8-5.4 m/s; the simulator's typical runner sits inside."""
    d = pd.read_csv(alcantara_dir / "GRF_IMU_summary.csv")
    for speed, g in d.groupby("Speed"):
        _, gct, hz = sim_steps(float(speed))
        assert g.GRFtc.min() <= gct <= g.GRFtc.max(), (speed, gct)
        assert g.IMUsf.min() <= hz <= g.IMUsf.max(), (speed, hz)
        assert abs(gct - g.GRFtc.mean()) < 0.012 and abs(hz - g.IMUsf.mean()) < 0.15
