"""`tiltguard simulate` and `tiltguard score` from the command line."""

import json

import numpy as np
import pandas as pd
import pytest

from tiltguard.cli import main
from tiltguard.formats.raw import read_raw
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS, read_outputs, read_session_meta


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "s"
    rc = main(["simulate", "-o", str(out), "--minutes", "2", "--seed", "3", "--rate-hz", "100",
               "--scenario", "drift", "--drift-deg", "4", "--drift-onset-s", "40", "--drift-rate", "3",
               "--misalign-deg", "15", "--upside-down", "--loss", "0.02", "--angles"])
    assert rc == 0
    return out


def test_simulate_writes_the_documented_folder(session):
    assert (session / "raw.csv.gz").exists()
    for name in ("steps.csv", "strides.csv", "alerts.csv", "summary.json", "samples.csv", "drift.json",
                 "mounting.json"):
        assert (session / "truth" / name).exists(), name
    rec = read_raw(session / "raw.csv.gz")
    assert rec.gyro_dps is not None and rec.angles_deg is not None
    assert rec.fs_hz == pytest.approx(100, rel=0.02)
    assert rec.acc_g[:500, 0].mean() < -0.9                 # upside down: +X points down
    meta = read_session_meta(session)
    assert meta["simulated"] is True and meta["source"] == "simulated" and meta["sim"]["config"]["seed"] == 3
    truth = read_outputs(session / "truth")
    assert list(truth.steps.columns[:len(STEPS_COLUMNS)]) == STEPS_COLUMNS
    assert list(truth.strides.columns[:len(STRIDES_COLUMNS)]) == STRIDES_COLUMNS
    samples = pd.read_csv(session / "truth" / "samples.csv")
    assert list(samples.columns) == ["t_s", "tilt_deg", "obliquity_deg", "rotation_deg", "pos_up_m", "speed_mps",
                                     "grade_pct", "activity"]
    assert set(samples.activity) == {"standing", "walking", "running"}
    # samples.csv is on the raw time base, before packet loss
    assert len(samples) > len(rec.t_s) and np.isin(np.round(rec.t_s, 6), samples.t_s.to_numpy()).all()
    assert len(truth.summary["gaps"]) > 0
    drift = json.loads((session / "truth" / "drift.json").read_text())
    assert drift["onset_s"] == 40 and drift["cross3_s"] == pytest.approx(100.0)
    mount = json.loads((session / "truth" / "mounting.json").read_text())
    assert mount["upside_down"] and np.allclose(np.linalg.det(mount["matrix"]), 1.0)


def test_accelerometer_only(tmp_path):
    assert main(["simulate", "-o", str(tmp_path), "--minutes", "0.5", "--no-gyro", "--no-gzip"]) == 0
    head = (tmp_path / "raw.csv").read_text().splitlines()[0]
    assert head == "t_s,ax_g,ay_g,az_g"
    assert read_session_meta(tmp_path)["mode"] == "compact"


def test_score_truth_against_itself(session, tmp_path, capsys):
    js = tmp_path / "score.json"
    assert main(["score", str(session / "truth"), str(session), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "initial contact F1 (+-40 ms)       1.0000" in out
    res = json.loads(js.read_text())
    assert res["ic_f1"] == 1.0 and res["drift_detected_within_90s"] == 1 and res["false_alarms"] == 0


@pytest.mark.parametrize("argv, msg", [
    (["simulate", "-o", "{tmp}", "--minutes", "abc"], "--minutes: 'abc' is not a number"),
    (["simulate", "-o", "{tmp}", "--seed", "1.5"], "--seed: '1.5' is not an integer"),
    (["simulate", "-o", "{tmp}", "--rate-hz", "20"], "outside 50-1000 Hz"),
    (["simulate", "-o", "{tmp}", "--scenario", "moon"], "unknown scenario 'moon'"),
    (["simulate", "-o", "{tmp}", "--loss", "0.7"], "loss must be a fraction"),
    (["simulate", "-o", "{tmp}", "--speed", "12"], "--speed must be within"),
    (["score", "{tmp}/nothing", "{tmp}"], "not a folder"),
    (["score", "{tmp}", "{tmp}"], "no truth/steps.csv"),
    (["score", "{tmp}", "{tmp}", "--tol-ms", "x"], "--tol-ms"),
])
def test_malformed_options_give_one_line_errors(argv, msg, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tiltguard: error:") and "\n" not in err and msg in err, err
