"""Small synthetic session folders for the coach tests and benchmarks.

They hold analysis outputs with the documented columns (``docs/formats.md``) and plausible numbers,
made with numpy in one go: no simulator, no analysis. Times in seconds, angles in degrees.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tiltguard.formats.raw import write_raw
from tiltguard.formats.session import CURVES_COLUMNS, write_outputs, write_session_meta


def make_session(
    session_dir: str | Path,
    *,
    athlete: str = "runner-1",
    start_time: datetime | str = "2026-11-01T07:00:00+00:00",
    duration_s: float = 600.0,
    seed: int = 0,
    baseline_deg: float = 12.0,
    drift_onset_s: float | None = 300.0,
    drift_rate_deg_per_min: float = 1.5,
    drop_growth_deg: float = 1.5,
    cadence_spm: float = 170.0,
    raw: bool = False,
    summary_extras: dict | None = None,
) -> Path:
    """Write one session folder and return its path."""
    rng = np.random.default_rng(seed)
    d = Path(session_dir)
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(start_time, datetime):
        start_time = start_time.isoformat()

    stride_s = 120.0 / cadence_spm
    warm_s = 10.0
    n = int((duration_s - warm_s) / stride_s)
    t0 = warm_s + stride_s * np.arange(n)
    t1 = t0 + stride_s
    excess = np.zeros(n)
    if drift_onset_s is not None:
        excess = np.clip((t0 - drift_onset_s) / 60.0 * drift_rate_deg_per_min, 0.0, None)
    frac = np.clip((t0 - t0[0]) / max(t0[-1] - t0[0], 1.0), 0, 1)
    tilt_mean = baseline_deg + excess + rng.normal(0, 0.35, n)
    tilt_rom = 6.2 + 0.3 * frac + rng.normal(0, 0.3, n)
    drop_l = 4.0 + drop_growth_deg * frac + rng.normal(0, 0.3, n)
    drop_r = 4.3 + drop_growth_deg * frac + rng.normal(0, 0.3, n)
    cad = 120.0 / (stride_s + rng.normal(0, 0.004, n))
    gct_l = 210 + 12 * frac + rng.normal(0, 5, n)
    gct_r = 216 + 12 * frac + rng.normal(0, 5, n)
    strides = pd.DataFrame({
        "t_start_s": t0, "t_end_s": t1,
        "tilt_mean_deg": tilt_mean, "tilt_min_deg": tilt_mean - tilt_rom / 2, "tilt_max_deg": tilt_mean + tilt_rom / 2,
        "tilt_rom_deg": tilt_rom, "tilt_ic_deg": tilt_mean - 1.0 + rng.normal(0, 0.3, n),
        "obliquity_rom_deg": 8.5 + drop_growth_deg * frac + rng.normal(0, 0.4, n),
        "rotation_rom_deg": 11.5 + 1.0 * frac + rng.normal(0, 0.5, n),
        "pelvic_drop_l_deg": drop_l, "pelvic_drop_r_deg": drop_r, "cadence_spm": cad,
        "gct_l_ms": gct_l, "gct_r_ms": gct_r,
        "gct_asymmetry_pct": 200 * (gct_l - gct_r) / (gct_r + gct_l),
        "obliquity_asymmetry_pct": 200 * (drop_l - drop_r) / (drop_r + drop_l),
    })

    # Steps: L at stride start, R half a stride later.
    t_ic = np.empty(2 * n)
    t_ic[0::2], t_ic[1::2] = t0, t0 + stride_s / 2
    side = np.tile(["L", "R"], n)
    gct = np.empty(2 * n)
    gct[0::2], gct[1::2] = gct_l, gct_r
    step_time = np.full(2 * n, stride_s / 2)
    fr2 = np.repeat(frac, 2)
    steps = pd.DataFrame({
        "t_ic_s": t_ic, "side": side, "t_to_s": t_ic + gct / 1000.0, "gct_ms": gct,
        "flight_ms": step_time * 1000 - gct, "step_time_s": step_time,
        "vertical_oscillation_cm": 8.0 + 0.6 * fr2 + rng.normal(0, 0.3, 2 * n),
        "braking_peak_g": 0.55 + 0.08 * fr2 + rng.normal(0, 0.03, 2 * n),
        "side_confidence": np.clip(rng.normal(0.9, 0.05, 2 * n), 0, 1),
    })

    rows = []
    if drift_onset_s is not None and excess.max() >= 3.0:
        t_alert = float(t0[np.argmax(excess >= 3.0)])
        rows.append({"t_s": t_alert, "kind": "anterior_tilt_drift", "value": 3.0, "baseline_deg": baseline_deg,
                     "sent": "buzz:alert"})
    if drop_growth_deg >= 1.5:
        rows.append({"t_s": float(t0[int(0.8 * n)]), "kind": "pelvic_drop", "value": drop_growth_deg * 0.8,
                     "baseline_deg": 4.1, "sent": ""})
    alerts = pd.DataFrame(rows, columns=["t_s", "kind", "value", "baseline_deg", "sent"])

    pct = np.arange(101.0)
    ph = 2 * np.pi * pct / 100
    late_tilt = min(float(excess[-1]), 8.0)
    curves = pd.DataFrame({
        "pct": pct,
        "tilt_early_deg": 3.1 * np.cos(2 * ph),
        "tilt_late_deg": late_tilt + 3.3 * np.cos(2 * ph),
        "obliquity_early_deg": 4.2 * np.sin(ph),
        "obliquity_late_deg": (4.2 + drop_growth_deg / 2) * np.sin(ph),
        "rotation_early_deg": 5.8 * np.sin(ph + 1.2),
        "rotation_late_deg": 6.3 * np.sin(ph + 1.2),
    })[CURVES_COLUMNS]

    onset = None
    if drift_onset_s is not None and drift_onset_s < duration_s and excess.max() >= 1.0:
        onset = float(drift_onset_s)
    summary = {
        "duration_s": float(duration_s), "running_s": float(t1[-1] - t0[0]), "n_steps": int(2 * n),
        "n_strides": int(n), "cadence_spm": float(np.median(cad)), "gct_ms": float(np.median(gct)),
        "tilt_baseline_deg": float(np.median(tilt_mean[: max(10, n // 10)])), "drift_onset_s": onset,
        "alerts": int(len(alerts)), "mounting": {"euler_deg": [0.0, 0.0, 0.0]}, "gaps": [],
        **(summary_extras or {}),
    }
    write_outputs(d, steps, strides, alerts, summary, curves)
    write_session_meta(d, {
        "start_time": start_time, "source": "file", "sample_rate_hz": 200.0, "athlete": athlete,
        "mode": "full", "simulated": False, "notes": "synthetic coach fixture",
        "device": {"name": "tiltguard-test", "firmware": "0.0", "imu": "none"},
    })
    if raw:
        t = np.arange(0.0, 5.0, 0.005)
        acc = np.column_stack([1 + 0.3 * np.sin(2 * np.pi * 2.8 * t), 0.05 * np.sin(np.pi * 2.8 * t),
                               0.1 * np.cos(2 * np.pi * 2.8 * t)])
        gyro = rng.normal(0, 5, (len(t), 3))
        write_raw(d / "raw.csv", t_s=t, acc_g=acc, gyro_dps=gyro)
    return d


def start_plus(start: str, days: float) -> str:
    """ISO-8601 time ``days`` after ``start``."""
    return (datetime.fromisoformat(start) + timedelta(days=days)).astimezone(timezone.utc).isoformat()
