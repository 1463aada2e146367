"""Fatigue drift detector (core.drift) on synthetic stride series, plus its TOML configuration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiltguard.core.drift import DriftConfig, DriftDetector, detect_drift
from tiltguard.core.pipeline import load_config
from tiltguard.errors import InputError
from tiltguard.formats.session import ALERTS_COLUMNS


def strides(minutes: float, seed: int = 0, base: float = 6.0, noise: float = 0.4, drift=None, hills=(),
            stops=(), cadence=170.0, drop=3.0, rot=12.0, drop_growth=None) -> pd.DataFrame:
    """Running strides: stride-mean tilt = base + noise (+ drift ramp) (+ hill bumps); stops remove strides.

    drift = (onset_s, rate_deg_per_min, magnitude_deg[, end_s]); hills = [(t0, t1, deg), ...]."""
    rng = np.random.default_rng(seed)
    period = 120.0 / cadence
    t0 = np.arange(0.0, minutes * 60.0, period)
    for a, b in stops:
        t0 = t0[(t0 < a) | (t0 >= b)]
    tilt = base + noise * rng.standard_normal(len(t0))
    if drift is not None:
        on, rate, mag = drift[:3]
        d = np.clip((t0 - on) * rate / 60.0, 0.0, mag)
        if len(drift) > 3:
            d[t0 >= drift[3]] = 0.0
        tilt += d
    for a, b, deg in hills:
        tilt += deg * ((t0 >= a) & (t0 < b))
    dr = drop + 0.3 * rng.standard_normal(len(t0))
    if drop_growth is not None:
        on, rate = drop_growth
        dr += np.clip((t0 - on) * rate / 60.0, 0.0, None)
    return pd.DataFrame({"t_start_s": t0, "t_end_s": t0 + period, "tilt_mean_deg": tilt,
                         "cadence_spm": cadence + rng.standard_normal(len(t0)),
                         "pelvic_drop_l_deg": dr, "pelvic_drop_r_deg": dr,
                         "rotation_rom_deg": rot + 0.5 * rng.standard_normal(len(t0))})


def cross3(onset: float, rate: float) -> float:
    return onset + 3.0 / rate * 60.0


@pytest.mark.parametrize("rate", [0.6, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drift_detected_within_90s_of_3deg(rate, seed):
    onset = 600.0
    alerts, det = detect_drift(strides(25, seed, drift=(onset, rate, 5.0)))
    drift = alerts[alerts.kind == "anterior_tilt_drift"]
    assert len(drift) == 1
    t = float(drift.t_s.iloc[0])
    assert onset < t <= cross3(onset, rate) + 90.0
    assert det.onset_s is not None and abs(det.onset_s - onset) < 90.0
    assert drift.value.iloc[0] > 1.5 and drift.baseline_deg.iloc[0] == pytest.approx(6.0, abs=0.2)
    assert list(alerts.columns) == ALERTS_COLUMNS


def test_no_false_alarms_with_hills_stops_and_pace():
    """Two hours: climbs of +1 deg (8 % at 0.12 deg/%) for up to 3 min, a steep +2 deg one, stops."""
    hills = [(600 + 900 * i, 600 + 900 * i + 180, 1.0) for i in range(7)] + [(3000, 3120, 2.0)]
    stops = [(1500, 1560), (4000, 4100)]
    for seed in range(4):
        alerts, _ = detect_drift(strides(120, seed, hills=hills, stops=stops))
        assert len(alerts[alerts.kind == "anterior_tilt_drift"]) == 0, (seed, alerts)


def test_recovered_after_tilt_comes_back_and_cooldown():
    # drift from 600 s, back to baseline at 1500 s; a second drift at 1560 s is inside the cool-down
    df = strides(40, 3, drift=(600, 2.0, 5.0, 1500))
    alerts, _ = detect_drift(df)
    kinds = alerts.kind.tolist()
    assert kinds[:2] == ["anterior_tilt_drift", "recovered"]
    rec_t = alerts.t_s[alerts.kind == "recovered"].iloc[0]
    assert 1500 < rec_t < 1500 + 120
    # never nagging: one alert while it stays high
    long = strides(60, 4, drift=(600, 2.0, 6.0))
    a2, _ = detect_drift(long)
    assert (a2.kind == "anterior_tilt_drift").sum() == 1 and (a2.kind == "recovered").sum() == 0


def test_repeat_needs_cooldown():
    cfg = DriftConfig(cooldown_s=600.0)
    # drift, recover, drift again 100 s after recovery -> only allowed once cool-down has passed
    t = strides(60, 5)
    tilt = t.tilt_mean_deg.to_numpy().copy()
    t0 = t.t_start_s.to_numpy()
    tilt[(t0 > 600) & (t0 < 900)] += 5.0
    tilt[(t0 > 1000) & (t0 < 1300)] += 5.0
    tilt[(t0 > 2200) & (t0 < 2500)] += 5.0
    t["tilt_mean_deg"] = tilt
    alerts, _ = detect_drift(t, cfg)
    on = alerts.t_s[alerts.kind == "anterior_tilt_drift"].to_numpy()
    assert len(on) == 2 and on[0] < 700 and on[1] > 2200


def test_cadence_slope_corrects_pace_changes():
    """Faster running (higher cadence) tilts more; with a varied baseline the slope is learnt."""
    rng = np.random.default_rng(7)
    df = strides(40, 6)
    cad = 165 + 12 * np.sin(2 * np.pi * df.t_start_s.to_numpy() / 120.0)        # pace changes from the start
    df["cadence_spm"] = cad
    df["tilt_mean_deg"] = 6.0 + 0.25 * (cad - 165) + 0.3 * rng.standard_normal(len(df))
    alerts, det = detect_drift(df)
    assert det.baseline["cadence_slope_deg_per_spm"] == pytest.approx(0.25, abs=0.05)
    assert len(alerts) == 0
    # without the correction the same run nags
    alerts2, _ = detect_drift(df, DriftConfig(min_cadence_span_spm=1e9, k_on_deg=1.5, h_on_deg_s=20))
    assert len(alerts2) > 0


def test_pelvic_drop_and_rotation_growth_flagged():
    df = strides(30, 8, drop_growth=(600, 1.0))
    alerts, _ = detect_drift(df)
    assert "pelvic_drop" in alerts.kind.tolist()
    assert "anterior_tilt_drift" not in alerts.kind.tolist()
    df2 = strides(30, 9)
    r = df2.rotation_rom_deg.to_numpy().copy()
    r[df2.t_start_s.to_numpy() > 700] += 5.0
    df2["rotation_rom_deg"] = r
    a2, _ = detect_drift(df2)
    assert a2.kind.tolist() == ["rotation_rom"]


def test_incremental_equals_table_and_thresholds_matter():
    df = strides(25, 10, drift=(600, 1.0, 5.0))
    batch, _ = detect_drift(df)
    det = DriftDetector()
    inc = []
    for r in df.itertuples():
        inc += det.update(r.t_end_s, r.t_end_s - r.t_start_s, r.tilt_mean_deg, r.cadence_spm,
                          r.pelvic_drop_l_deg, r.rotation_rom_deg)
    assert [a["t_s"] for a in inc] == batch.t_s.tolist()
    strict, _ = detect_drift(df, DriftConfig(k_on_deg=6.0))
    assert len(strict[strict.kind == "anterior_tilt_drift"]) == 0
    # too short for a baseline: nothing, and no error
    short, det2 = detect_drift(strides(1.5, 11, drift=(0, 5.0, 5.0)))
    assert len(short) == 0 and det2.baseline is None
    assert len(detect_drift(df.iloc[:0])[0]) == 0


def test_toml_config(tmp_path):
    p = tmp_path / "tiltguard.toml"
    p.write_text("[drift]\nk_on_deg = 3\ncooldown_s = 120.5\n[orientation]\nfc_tilt_hz = 0.05\n"
                 "[activity]\nflight_g = 0.4\n")
    cfg = load_config(p)
    assert cfg.drift.k_on_deg == 3.0 and isinstance(cfg.drift.k_on_deg, float)
    assert cfg.drift.cooldown_s == 120.5 and cfg.orientation.fc_tilt_hz == 0.05
    assert cfg.orientation.activity.flight_g == 0.4
    for bad in ("[drift]\nnope = 1\n", "[nosuch]\nx = 1\n", "[drift]\nk_on_deg = 'high'\n", "[drift\n"):
        p.write_text(bad)
        with pytest.raises(InputError):
            load_config(p)


@pytest.mark.parametrize("seed", range(12))
def test_table_feed_equals_stride_by_stride_updates(seed):
    """feed_table (whole-array, used by the batch call and core.stream) and update (one stride at a time)
    are the same detector: same alerts, values and state, for tables fed in random chunks, with drifts
    that recover, pelvic-drop and rotation growth, missing values and long strides (gaps)."""
    rng = np.random.default_rng(seed)
    df = strides(25, seed, noise=0.8, drift=(300, 3.0, 6.0, 700 + 60 * seed), drop_growth=(900, 2.0),
                 hills=[(400, 460, 3.0)], stops=[(1000, 1100)])
    r = df.rotation_rom_deg.to_numpy().copy()
    r[df.t_start_s.to_numpy() > 1200] += 6.0
    df["rotation_rom_deg"] = r
    for col in ("tilt_mean_deg", "pelvic_drop_l_deg", "rotation_rom_deg", "cadence_spm"):
        v = df[col].to_numpy().copy()
        v[rng.random(len(v)) < 0.03] = np.nan
        df[col] = v
    cfg = DriftConfig(cooldown_s=float(rng.choice([0.0, 120.0, 300.0])), k_on_deg=float(rng.uniform(1.5, 2.5)))
    one = DriftDetector(cfg)
    inc = []
    for x in df.itertuples():
        lr = [v for v in (x.pelvic_drop_l_deg, x.pelvic_drop_r_deg) if np.isfinite(v)]
        drop = float(np.mean(lr)) if lr else np.nan      # as feed_table: the mean of the sides present
        inc += one.update(x.t_end_s, x.t_end_s - x.t_start_s, x.tilt_mean_deg, x.cadence_spm, drop, x.rotation_rom_deg)
    many = DriftDetector(cfg)
    out, i = [], 0
    while i < len(df):
        k = int(rng.integers(1, 400))
        out += many.feed_table(df.iloc[i:i + k])
        i += k
    assert [(a["t_s"], a["kind"], a["value"]) for a in out] == [(a["t_s"], a["kind"], a["value"]) for a in inc]
    assert {a["kind"] for a in inc} == {"anterior_tilt_drift", "recovered", "pelvic_drop", "rotation_rom"}
    assert many.onset_s == one.onset_s and many.baseline == one.baseline and many.excess == one.excess
    assert many.active == one.active and many.tilt.s == one.tilt.s and many.drop.s == one.drop.s
