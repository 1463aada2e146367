"""Fusion under MicroPython on the project simulator (tiltguard.sim): a clip worn 15 deg off about a
random axis, with the simulator's sensor errors (noise, turn-on and drifting biases, scale errors,
timing jitter), a walk-to-run start, bends and a 180 deg turnaround.

The firmware calibrates on the first 3 s of standing, estimates the mounting yaw from its first
60 s of running (YawEstimator picks the running chunks itself), and from then on its per-stride
tilt is compared with truth/strides.csv. This is a steady session; harder scenarios (intervals,
stops, turnarounds with accelerometer bias) are reported by the fw-sense helper, not asserted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.firmware.test_fusion import run_firmware

import tiltguard.sim as sim


def test_fusion_on_simulator_session_with_15deg_misaligned_clip(tmp_path):
    res = sim.simulate(sim.preset("steady", seed=2, minutes=4, rate_hz=200, misalign_deg=15))
    sim.write_session(res, tmp_path / "s", gzip=False)
    est, out, wall = run_firmware(tmp_path / "s" / "raw.csv", tmp_path / "est.bin", "lsm", (-1.0, 60.0))
    assert "lost 0 " in out, out
    yaw = float(out.split("yaw")[1].split()[0])
    yaw_at = float(out.split("yaw_at")[1].split()[0])
    samples = pd.read_csv(tmp_path / "s" / "truth" / "samples.csv", usecols=["t_s", "activity"])
    run_start = samples.t_s[samples.activity.eq("running").idxmax()]
    assert run_start + 58 <= yaw_at < run_start + 70  # only running counted (15 s standing, 12 s walking skipped)
    want_yaw = -res.mounting["euler_deg"]["rotation_deg"]  # conventions' rotation is about the down axis
    assert abs(yaw - want_yaw) < 2.0, (yaw, want_yaw)

    t_raw = pd.read_csv(tmp_path / "s" / "raw.csv", usecols=["t_s"]).t_s.to_numpy()
    t = t_raw[est[:, 0]]
    tilt = est[:, 1] / 100.0
    strides = pd.read_csv(tmp_path / "s" / "truth" / "strides.csv")
    strides = strides[strides.t_start_s >= yaw_at + 5.0]
    errs = []
    for s in strides.itertuples():
        m = (t >= s.t_start_s) & (t < s.t_end_s)
        errs.append((tilt[m].mean() - s.tilt_mean_deg, np.ptp(tilt[m]) - s.tilt_rom_deg))
    errs = np.array(errs)
    assert len(errs) > 100
    print(
        f"yaw {yaw:.2f} (truth {want_yaw:.2f}); over {len(errs)} strides: max |mean tilt err| "
        f"{np.abs(errs[:, 0]).max():.3f} deg (median {np.median(np.abs(errs[:, 0])):.3f}), max |tilt ROM err| "
        f"{np.abs(errs[:, 1]).max():.3f} deg; wall {wall:.1f} s"
    )
    assert np.abs(errs[:, 0]).max() <= 1.0
    assert np.abs(errs[:, 1]).max() <= 1.0
