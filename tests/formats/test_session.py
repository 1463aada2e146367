
import numpy as np
import pandas as pd
import pytest

from tiltguard.errors import InputError
from tiltguard.formats import session as S


def _outputs(n=5):
    rng = np.random.default_rng(1)
    steps = pd.DataFrame({c: rng.normal(size=n) for c in S.STEPS_COLUMNS})
    steps["side"] = ["L", "R"] * (n // 2) + ["L"] * (n % 2)
    strides = pd.DataFrame({c: rng.normal(size=n) for c in S.STRIDES_COLUMNS})
    alerts = pd.DataFrame({"t_s": [10.0], "kind": ["anterior_tilt_drift"], "value": [3.2],
                           "baseline_deg": [12.0], "sent": ["buzz:alert"]})
    curves = pd.DataFrame({c: rng.normal(size=101) for c in S.CURVES_COLUMNS})
    return steps, strides, alerts, curves


def test_outputs_round_trip(tmp_path):
    steps, strides, alerts, curves = _outputs()
    summary = {"n_steps": np.int64(5), "cadence_spm": np.float64(170.5), "drift_onset_s": float("nan"),
               "mounting": {"matrix": np.eye(3)}}
    S.write_outputs(tmp_path, steps, strides, alerts, summary, curves)
    out = S.read_outputs(tmp_path)
    pd.testing.assert_frame_equal(out.steps, steps, check_exact=False, rtol=1e-5)
    pd.testing.assert_frame_equal(out.strides, strides, check_exact=False, rtol=1e-5)
    assert out.alerts.loc[0, "kind"] == "anterior_tilt_drift" and out.alerts.loc[0, "sent"] == "buzz:alert"
    assert out.summary["n_steps"] == 5 and out.summary["drift_onset_s"] is None
    assert out.summary["mounting"]["matrix"][1] == [0.0, 1.0, 0.0]
    assert len(out.curves) == 101


def test_columns_come_in_documented_order_and_extras_are_kept(tmp_path):
    steps, strides, alerts, _ = _outputs()
    steps = steps[list(reversed(steps.columns))].assign(extra_ms=1.0)
    S.write_outputs(tmp_path, steps, strides, alerts, {})
    header = (tmp_path / "steps.csv").read_text().splitlines()[0].split(",")
    assert header == S.STEPS_COLUMNS + ["extra_ms"]


def test_missing_columns_refused(tmp_path):
    steps, strides, alerts, _ = _outputs()
    with pytest.raises(ValueError, match="gct_ms"):
        S.write_outputs(tmp_path, steps.drop(columns="gct_ms"), strides, alerts, {})
    (tmp_path / "strides.csv").write_text("t_start_s,t_end_s\n0,1\n")
    with pytest.raises(InputError, match="missing column"):
        S.read_outputs(tmp_path)


def test_meta_atomic_and_format_tag(tmp_path):
    S.write_session_meta(tmp_path, {"start_time": "2026-11-22T06:00:00+00:00", "source": "file"})
    meta = S.read_session_meta(tmp_path)
    assert meta["format"] == S.FORMAT and meta["source"] == "file"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "session.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        S.read_session_meta(tmp_path)


def test_find_raw(tmp_path):
    with pytest.raises(InputError, match="no samples"):
        S.find_raw(tmp_path)
    (tmp_path / "stream.tgl").write_bytes(b"")
    assert S.find_raw(tmp_path).name == "stream.tgl"
    (tmp_path / "raw.csv.gz").write_bytes(b"")
    assert S.find_raw(tmp_path).name == "raw.csv.gz"
