import re

import pandas as pd

from tests.coach.conftest import FIGURES_PROBE
from tiltguard.coach.reading import THRESHOLDS, read
from tiltguard.coach.report import build, drift_episodes, write_report
from tiltguard.coach.session import load_session
from tiltguard.coach.synthetic import make_session


def check_page(load, min_figures):
    assert load.errors == [], load.errors
    assert load.other_requests == [], load.other_requests        # nothing fetched, DevTools says so
    v = load.value
    assert v["csp"].startswith("default-src 'none'") and v["viewport"]
    assert v["scrollWidth"] <= 390, "page wider than a phone screen"
    assert len(v["figures"]) >= min_figures
    for f in v["figures"]:
        assert f["paths"] >= 3 and f["w"] > 200 and f["h"] > 80, f


def test_report_renders_in_chromium(session_dir, tmp_path, chromium, artifacts):
    path = write_report(load_session(session_dir), tmp_path / "report.html")
    load = chromium.load(path, FIGURES_PROBE, screenshot=artifacts / "report.png")
    check_page(load, min_figures=10)  # tilt, 3 frontal, 3 gait, 3 curves
    assert load.screenshot.stat().st_size > 20_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", path.read_text())


def test_devtools_check_catches_requests_and_errors(chromium, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body>'
                   '</html>')
    load = chromium.load(bad, "1")
    assert load.other_requests == ["http://127.0.0.1:9/x.png"]
    assert any("boom" in e for e in load.errors)


def test_reading_numbers_come_from_the_data(session_dir):
    s = load_session(session_dir)
    r = read(s.strides, s.steps, s.out.summary, s.out.alerts)
    st = s.strides.sort_values("t_start_s")
    k = int(round(0.2 * len(st)))
    d_tilt = st["tilt_mean_deg"].iloc[-k:].mean() - st["tilt_mean_deg"].iloc[:k].mean()
    assert d_tilt >= THRESHOLDS["tilt_clear_deg"]
    text = " ".join(t for _, t in r.findings)
    assert f"rose by {d_tilt:.1f}°" in text and "hip flexors" in text
    drop = st[["pelvic_drop_l_deg", "pelvic_drop_r_deg"]].mean(axis=1)
    d_drop = drop.iloc[-k:].mean() - drop.iloc[:k].mean()
    assert f"grew by {d_drop:.1f}°" in text and "gluteus medius" in text
    assert "not a diagnosis" in build(s)


def test_steady_run_reads_steady(tmp_path):
    s = load_session(make_session(tmp_path / "calm", drift_onset_s=None, drop_growth_deg=0.0, seed=3))
    r = read(s.strides, s.steps, s.out.summary, s.out.alerts)
    levels = [lvl for lvl, _ in r.findings]
    text = " ".join(t for _, t in r.findings)
    assert "flag" not in levels, r.findings
    assert "Anterior tilt held steady" in text and "Pelvic drop stayed steady" in text


def test_report_of_a_session_without_strides(tmp_path, chromium):
    d = make_session(tmp_path / "empty", seed=1)
    pd.DataFrame(columns=pd.read_csv(d / "strides.csv").columns).to_csv(d / "strides.csv", index=False)
    page = build(load_session(d))
    assert "No running strides" in page
    out = tmp_path / "r.html"
    out.write_text(page)
    load = chromium.load(out, FIGURES_PROBE)
    assert load.errors == [] and load.other_requests == []


def test_drift_episodes_follow_alerts_and_onset():
    al = pd.DataFrame({"t_s": [300.0, 500.0, 900.0], "kind": ["anterior_tilt_drift", "recovered", "anterior_tilt_drift"],
                       "value": [3, -1, 3], "baseline_deg": [5, 5, 5], "sent": ["", "", ""]})
    assert drift_episodes({"drift_onset_s": 250.0}, al, 1200.0) == [(250.0, 500.0), (900.0, 1200.0)]
    assert drift_episodes({"drift_onset_s": 400.0}, al.iloc[:0], 1200.0) == [(400.0, 1200.0)]
    assert drift_episodes({"drift_onset_s": None}, al.iloc[:0], 1200.0) == []
