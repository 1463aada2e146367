import numpy as np
import pandas as pd

from tests.coach.conftest import FIGURES_PROBE
from tests.coach.test_report import check_page
from tiltguard.coach.synthetic import make_session, start_plus
from tiltguard.coach.trends import TRENDS_COLUMNS, summarise, write_trends


def _club(root, n=6):
    for a in range(2):
        for i in range(n):
            make_session(root / f"a{a}" / f"2026-09-{i + 1:02d}", athlete=f"runner {a}",
                         start_time=start_plus("2026-09-01T07:00:00+00:00", i), duration_s=240, seed=10 * a + i,
                         baseline_deg=8 + 3 * a + 0.2 * i, drift_onset_s=(120 + 10 * i) if i % 2 else None)
    return root


def test_trends_table_matches_the_sessions(tmp_path):
    root = _club(tmp_path / "club")
    (root / "a0" / "2026-09-01" / "truth").mkdir()
    (root / "a0" / "2026-09-01" / "truth" / "summary.json").write_text("{}")   # simulator truth: ignored
    df = summarise(root)
    assert list(df.columns) == TRENDS_COLUMNS and len(df) == 12
    assert list(df["athlete"].unique()) == ["runner 0", "runner 1"]
    one = df[df["session"] == "a1/2026-09-04"].iloc[0]
    summ = pd.read_json(root / "a1/2026-09-04/summary.json", typ="series")
    assert one["tilt_baseline_deg"] == summ["tilt_baseline_deg"] and one["drift_onset_s"] == 150
    st = pd.read_csv(root / "a1/2026-09-04/strides.csv")
    assert one["gct_asymmetry_pct"] == np.median(st["gct_asymmetry_pct"])   # from strides: not in summary
    assert pd.isna(df[df["session"] == "a1/2026-09-03"].iloc[0]["drift_onset_s"])


def test_drift_onset_distance_when_speed_is_known(tmp_path):
    d = make_session(tmp_path / "s", drift_onset_s=120, seed=2, duration_s=240)
    st = pd.read_csv(d / "strides.csv")
    st["speed_mps"] = 3.5
    st.to_csv(d / "strides.csv", index=False)
    row = summarise(tmp_path).iloc[0]
    before = st["t_end_s"] <= 120
    assert abs(row["drift_onset_km"] - 3.5 * (st["t_end_s"] - st["t_start_s"])[before].sum() / 1000) < 1e-9


def test_trends_page_renders_in_chromium(tmp_path, chromium, artifacts):
    csv, page = write_trends(_club(tmp_path / "club"), tmp_path / "out")
    assert len(pd.read_csv(csv)) == 12
    load = chromium.load(page, FIGURES_PROBE, screenshot=artifacts / "trends.png")
    check_page(load, min_figures=8)  # 4 per athlete
