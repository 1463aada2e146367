"""On-device drift cue (firmware/cue.py) on a synthetic run under the MicroPython unix port."""

from tests.firmware._mpyapp import run_check


def test_cue_buzzes_once_on_drift_and_once_on_recovery(tmp_path):
    r = run_check("cue", tmp_path)
    stride_s = r["stride_s"]
    assert abs(r["strides"] - 800 / stride_s) <= 2  # two steps per stride were found
    assert abs(r["baseline"] - 800) <= 10  # baseline = the early-run stride-mean tilt (cdeg)
    kinds = [e[0] for e in r["events"]]
    assert kinds == ["alert", "recovered"]  # rare, never nagging
    _, alert_stride, excess = r["events"][0]
    t_alert = alert_stride * stride_s
    # drift starts at 200 s and crosses the 3 deg threshold at 250 s
    assert 250 <= t_alert <= 280, t_alert
    assert excess > 300
    t_rec = r["events"][1][1] * stride_s
    assert 500 <= t_rec <= 540, t_rec  # back to baseline at 500 s
    assert r["c2_strides"] == 0  # without calibrated angles the cue stays quiet
