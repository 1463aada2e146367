"""The whole analysis (core.pipeline) and ``tiltguard analyze`` (core.cli): outputs, summary, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tiltguard.cli import main
from tiltguard.core.drift import DriftConfig
from tiltguard.core.pipeline import AnalysisConfig, analyze, nominal_rate
from tiltguard.formats.raw import Recording, write_raw
from tiltguard.formats.session import (ALERTS_COLUMNS, CURVES_COLUMNS, STEPS_COLUMNS, STRIDES_COLUMNS,
                                       read_outputs, read_session_meta)
from tiltguard.sim import SimConfig, simulate, write_session
from tiltguard.sim.score import score_arrays

SUMMARY_KEYS = {"duration_s", "running_s", "n_steps", "n_strides", "cadence_spm", "gct_ms", "tilt_baseline_deg",
                "drift_onset_s", "alerts", "mounting", "gaps"}


def rec_of(res) -> Recording:
    k = res.keep
    return Recording(t_s=res.t_s[k], acc_g=res.acc_g[k], gyro_dps=None if res.gyro_dps is None else res.gyro_dps[k],
                     angles_deg=None if res.device_angles_deg is None else res.device_angles_deg[k])


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "run"
    res = simulate(SimConfig(minutes=3.0, seed=41, rate_hz=100, misalign_deg=12.0, angles=True))
    write_session(res, d)
    return d


def test_analyze_outputs_and_summary():
    res = simulate(SimConfig(minutes=8.0, seed=42, rate_hz=100, scenario="drift", drift_deg=5.0,
                             drift_onset_s=220.0, drift_rate_deg_per_min=1.2))
    out = analyze(rec_of(res), AnalysisConfig(drift=DriftConfig(warmup_s=45.0, baseline_s=90.0)))
    assert list(out.steps.columns) == STEPS_COLUMNS
    assert list(out.strides.columns) == STRIDES_COLUMNS
    assert list(out.alerts.columns) == ALERTS_COLUMNS
    assert list(out.curves.columns) == CURVES_COLUMNS and len(out.curves) == 101
    s = out.summary
    assert SUMMARY_KEYS <= set(s)
    json.dumps(s)                                            # plain JSON types only
    assert s["n_steps"] == len(out.steps) and s["n_strides"] == len(out.strides)
    assert 140 < s["cadence_spm"] < 200 and 150 < s["gct_ms"] < 320
    # the drift of this session is found once, after onset and soon after it crosses +3 deg
    sc = score_arrays(out.steps, out.strides, out.alerts, res.steps, res.strides, res.drift, res.t_s[-1], res.gaps())
    assert sc.false_alarms == 0 and sc.drift_detected
    assert sc.drift_delay_s is not None and sc.drift_delay_s <= 90.0
    assert s["drift_onset_s"] == pytest.approx(220.0, abs=90.0)
    # truth baseline vs ours (both relative to standing)
    tb = res.strides[(res.strides.t_start_s > 80) & (res.strides.t_start_s < 200)].tilt_mean_deg.median()
    assert s["tilt_baseline_deg"] == pytest.approx(tb, abs=0.6)
    # stride angles vs truth
    assert np.nanmean(np.abs(sc.stride_err["tilt_mean_deg"])) < 0.5
    for c in ("tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg"):
        assert np.nanmean(np.abs(sc.stride_err[c])) < 0.7, c


def test_no_false_alarm_with_hills_and_stops():
    res = simulate(SimConfig(minutes=10.0, seed=43, rate_hz=100, scenario="mixed"))
    out = analyze(rec_of(res))
    assert len(out.alerts) == 0, out.alerts
    assert out.summary["activity_s"]["stopped"] > 10.0


def test_accelerometer_only_marks_unavailable():
    res = simulate(SimConfig(minutes=2.5, seed=44, rate_hz=100, gyro=False))
    out = analyze(rec_of(res))
    assert len(out.strides) > 50
    assert out.strides.rotation_rom_deg.isna().all() and out.strides.tilt_rom_deg.isna().all()
    assert out.strides.tilt_mean_deg.notna().all()
    assert "rotation_deg" in out.summary["unavailable"] and out.summary["gyro"] is False


def test_nominal_rate_ignores_jitter():
    t = np.arange(10000) / 200.0 + np.random.default_rng(0).uniform(-2.5e-4, 2.5e-4, 10000)
    assert nominal_rate(np.sort(t)) == 200.0


def test_cli_on_session_folder_and_raw_file(sim_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(sim_dir), "-o", str(out)]) == 0
    assert "steps" in capsys.readouterr().out
    o = read_outputs(out)
    assert len(o.steps) > 200 and len(o.strides) > 100 and o.curves is not None
    assert o.summary["mounting"]["upside_down"] is False
    assert "device_angles" in o.summary
    assert (out / "raw.csv.gz").exists()
    meta = read_session_meta(out)
    assert meta["format"] == "tiltguard-session/1" and meta.get("simulated") is True
    # a bare raw file, and in place on a session folder
    raw = tmp_path / "my run.csv"
    from tiltguard.formats.raw import read_raw
    write_raw(raw, read_raw(sim_dir / "raw.csv.gz"))
    out2 = tmp_path / "out2"
    assert main(["analyze", str(raw), "-o", str(out2), "-q", "--no-curves"]) == 0
    assert capsys.readouterr().out == ""
    assert (out2 / "raw.csv").exists() and not (out2 / "curves.csv").exists()
    m2 = read_session_meta(out2)
    assert m2["source"] == "file" and m2["sample_rate_hz"] == 100.0
    assert len(read_outputs(out2).steps) == len(o.steps)
    assert main(["analyze", str(out2), "-q"]) == 0            # re-analyse in place
    assert (out2 / "steps.csv").exists()


def test_cli_config_file(sim_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[drift]\nwarmup_s = 10\nbaseline_s = 30\n")
    out = tmp_path / "o"
    assert main(["analyze", str(sim_dir), "-o", str(out), "-q", "--config", str(cfg)]) == 0
    assert read_outputs(out).summary["tilt_baseline_deg"] is not None


@pytest.mark.parametrize("case", ["missing", "not_csv", "empty_dir", "no_out", "bad_config"])
def test_cli_bad_input_one_line_error(case, tmp_path, sim_dir, capsys):
    args = ["analyze"]
    if case == "missing":
        args += [str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")]
    elif case == "not_csv":
        p = tmp_path / "x.csv"
        p.write_text("t_s,ax_g\n0,a\n")
        args += [str(p), "-o", str(tmp_path / "o")]
    elif case == "empty_dir":
        (tmp_path / "d").mkdir()
        args += [str(tmp_path / "d")]
    elif case == "no_out":
        args += [str(sim_dir / "raw.csv.gz")]
    else:
        p = tmp_path / "c.toml"
        p.write_text("[drift]\nwhat = 1\n")
        args += [str(sim_dir), "-o", str(tmp_path / "o"), "--config", str(p)]
    if case == "missing":   # once through a real process: exit status and no traceback
        r = subprocess.run([sys.executable, "-m", "tiltguard", *args], capture_output=True, text=True)
        code, err = r.returncode, r.stderr
    else:
        code, err = main(args), capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tiltguard: error:"), err
