"""The whole analysis of one recording: ``analyze(rec) -> Analysis``.

activity -> align (mounting) -> orientation -> events -> metrics/curves -> drift -> summary.
Activity comes first because its features are orientation-free and the mounting is calibrated on the
stance and the first running it finds. Every stage is a pure function of arrays; ``core.stream`` runs the
same stages on a sliding window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from tiltguard.core import activity as act
from tiltguard.core.align import Mounting, estimate_mounting
from tiltguard.core.drift import DriftConfig, DriftDetector, detect_drift
from tiltguard.core.kinematics import Kinematics, shape_missing
from tiltguard.core.orientation import OrientationConfig, orientation
from tiltguard.errors import InputError
from tiltguard.formats.raw import Recording
from tiltguard.formats.session import Outputs


@dataclass
class AnalysisConfig:
    orientation: OrientationConfig = field(default_factory=OrientationConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    curves: bool = True


@dataclass
class Analysis(Outputs):
    """:class:`~tiltguard.formats.session.Outputs` plus the intermediate results."""

    kinematics: Kinematics | None = None
    mounting: Mounting | None = None
    detector: DriftDetector | None = None


NOMINAL_RATE_SAMPLES = 5000   # the rate is taken from the start, so the stream finds the same one


def nominal_rate(t_s: np.ndarray) -> float:
    """Nominal sample rate, Hz: 1 / median interval of the first samples, rounded to a whole Hz.

    Rounding makes the rate immune to timing jitter, so a window of a session (``core.stream``) finds the
    same rate as the whole session; timestamps stay the truth for event times.
    """
    dt = np.diff(np.asarray(t_s[: NOMINAL_RATE_SAMPLES + 1], dtype=np.float64))
    if len(dt) == 0:
        raise InputError("recording has fewer than 2 samples")
    return float(max(1.0, np.round(1.0 / np.median(dt))))


def kinematics(rec: Recording, config: AnalysisConfig | None = None, mounting: Mounting | None = None,
               fs_hz: float | None = None, first_run_s: float | None = None) -> tuple[Kinematics, Mounting]:
    """activity -> mounting -> orientation; returns the kinematics and the mounting used."""
    cfg = config or AnalysisConfig()
    oc = cfg.orientation
    fs = fs_hz or nominal_rate(rec.t_s)
    acc = np.asarray(rec.acc_g, dtype=np.float64)
    if len(acc) < 2:
        raise InputError("recording has fewer than 2 samples")
    all_finite = bool(np.isfinite(acc.sum()))      # one quick whole-array test first: usually true
    if not all_finite and not np.isfinite(acc).any():
        raise InputError("the accelerometer columns hold no numbers")
    # activity and orientation both work on float32 channel rows: convert once and share (read-only)
    acc32 = acc.T.astype(np.float32, order="C") if all_finite else None
    codes = act.classify(acc32.T if all_finite else np.nan_to_num(acc), fs, oc.activity,
                         first_run_s=first_run_s, t_s=rec.t_s)
    if mounting is None:
        mounting = estimate_mounting(rec.t_s, acc, rec.gyro_dps, fs, codes, oc.align,
                                     all_finite=all_finite)
    src = replace(rec, acc_g=acc32.T) if all_finite else rec
    kin = orientation(src, mounting=mounting, activity=codes, config=oc, fs_hz=fs)
    return kin, mounting


def analyze(rec: Recording, config: AnalysisConfig | None = None, *, mounting: Mounting | None = None
            ) -> Analysis:
    """Analyse a recording: steps, strides, alerts, curves and summary (``docs/formats.md``).

    Parameters
    ----------
    rec : the raw recording (device frame).
    config : thresholds and filter settings; defaults when None.
    mounting : a known sensor-to-pelvis mounting; estimated from the session when None.
    """
    from tiltguard.core import curves as cv
    from tiltguard.core import events, metrics

    cfg = config or AnalysisConfig()
    kin, mounting = kinematics(rec, cfg, mounting)
    ev = events.detect_steps(kin)
    grid = events.uniform_grid(kin)
    steps = metrics.step_table(kin, ev, grid)
    strides = metrics.stride_table(kin, ev, grid)
    del grid
    curves = cv.stride_curves(kin, ev) if cfg.curves else None
    strides = mask_unavailable(kin, strides)
    alerts, det = detect_drift(strides, cfg.drift)
    summary = summarize(kin, steps, strides, alerts, det, mounting)
    return Analysis(steps=steps, strides=strides, alerts=alerts, summary=summary, curves=curves,
                    kinematics=kin, mounting=mounting, detector=det)


# stride columns that need the within-stride angle shape, which an accelerometer alone cannot give (a gyro on
# the host does, or the clip's own angles in compact mode: kin.meta["shape"] says which)
NEEDS_SHAPE = ("tilt_min_deg", "tilt_max_deg", "tilt_rom_deg", "tilt_ic_deg", "obliquity_rom_deg",
              "rotation_rom_deg", "pelvic_drop_l_deg", "pelvic_drop_r_deg", "obliquity_asymmetry_pct")


def mask_unavailable(kin: Kinematics, strides: pd.DataFrame) -> pd.DataFrame:
    """Blank what only the within-stride shape can give in the strides that lack it (``shape_missing``);
    the stride-mean tilt stays, as a trend. (The curves leave those strides out themselves.)"""
    rows = shape_missing(kin, strides["t_start_s"], strides["t_end_s"])
    if not rows.any():
        return strides
    strides = strides.copy()
    strides.loc[rows, [c for c in NEEDS_SHAPE if c in strides]] = np.nan
    return strides


def _median(df: pd.DataFrame, col: str) -> float | None:
    if col not in df or len(df) == 0:
        return None
    c = df[col]
    v = c.to_numpy(dtype=float) if c.dtype.kind == "f" else pd.to_numeric(c, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return round(float(np.median(v)), 3) if len(v) else None


def activity_seconds(t_s: np.ndarray, codes: np.ndarray, fs_hz: float) -> dict[str, float]:
    """Seconds spent in each activity (sample intervals, gaps excluded)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    codes = np.asarray(codes)
    n = len(codes)
    if n == 0:
        return {name: 0.0 for name in act.NAMES}
    # the sample intervals of a run of equal codes telescope to its time span (the last sample counts
    # 1 / fs); a gap's interval (over 2.5 nominal ones) counts 1 / fs instead: corrected per gap (few)
    starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    ends = np.append(starts[1:], n - 1)
    span = t_s[ends] - t_s[starts]
    span[-1] += 1.0 / fs_hz
    dt = t_s[1:] - t_s[:-1]
    gaps = np.flatnonzero(dt > 2.5 / fs_hz)
    if len(gaps):
        run = np.searchsorted(starts, gaps, side="right") - 1
        span -= np.bincount(run, weights=dt[gaps] - 1.0 / fs_hz, minlength=len(starts))
    sec = np.bincount(codes[starts], weights=span, minlength=len(act.NAMES))
    return {name: round(float(s), 2) for name, s in zip(act.NAMES, sec)}


def summarize(kin: Kinematics, steps: pd.DataFrame, strides: pd.DataFrame, alerts: pd.DataFrame,
              det: DriftDetector, mounting: Mounting, activity_s: dict | None = None,
              duration_s: float | None = None, gaps: list | None = None) -> dict:
    """The ``summary.json`` dict (keys of docs/formats.md plus a few extras)."""
    if activity_s is None:
        activity_s = activity_seconds(kin.t_s, kin.activity, kin.fs_hz)
    if duration_s is None:
        duration_s = float(kin.t_s[-1] - kin.t_s[0])
    base = det.baseline or {}
    drift_alerts = alerts[alerts["kind"] == "anterior_tilt_drift"] if len(alerts) else alerts
    out = {
        "duration_s": round(duration_s, 3),
        "running_s": activity_s.get("running", 0.0),
        "n_steps": int(len(steps)),
        "n_strides": int(len(strides)),
        "cadence_spm": _median(strides, "cadence_spm"),
        "gct_ms": _median(steps, "gct_ms"),
        "tilt_baseline_deg": None if not np.isfinite(base.get("tilt_deg", np.nan)) else round(base["tilt_deg"], 3),
        "drift_onset_s": None if det.onset_s is None else round(float(det.onset_s), 2),
        "drift_alert_s": None if len(drift_alerts) == 0 else round(float(drift_alerts["t_s"].iloc[0]), 2),
        "alerts": int(len(alerts)),
        "mounting": mounting.to_dict(),
        "gaps": kin.meta.get("gaps", []) if gaps is None else gaps,
        "sample_rate_hz": kin.fs_hz,
        "activity_s": activity_s,
        "tilt_mean_deg": _median(strides, "tilt_mean_deg"),
        "tilt_rom_deg": _median(strides, "tilt_rom_deg"),
        "obliquity_rom_deg": _median(strides, "obliquity_rom_deg"),
        "rotation_rom_deg": _median(strides, "rotation_rom_deg"),
        "vertical_oscillation_cm": _median(steps, "vertical_oscillation_cm"),
        "baseline": base or None,
        "gyro": kin.meta.get("gyro", False),
        "shape_from": kin.meta.get("shape"),
        "unavailable": kin.meta.get("unavailable", []),
    }
    if "device_angles" in kin.meta:
        out["device_angles"] = kin.meta["device_angles"]
    return out


def read_toml(path) -> dict:
    """The tables of a TOML file; a missing or malformed file raises :class:`InputError` (one line)."""
    import tomllib
    from pathlib import Path

    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not valid TOML ({exc})") from None


def config_tables(cfg: AnalysisConfig) -> dict:
    """TOML table name -> the settings object of ``cfg`` it fills."""
    return {"drift": cfg.drift, "orientation": cfg.orientation, "activity": cfg.orientation.activity,
            "align": cfg.orientation.align}


def load_config(path) -> AnalysisConfig:
    """Read an :class:`AnalysisConfig` from a TOML file with optional tables ``[drift]``,
    ``[orientation]``, ``[activity]`` and ``[align]`` whose keys are the dataclass fields.

    Unknown keys or wrong types raise :class:`InputError` (one line).
    """
    from dataclasses import fields
    from pathlib import Path

    p = Path(path)
    data = read_toml(p)
    cfg = AnalysisConfig()
    targets = config_tables(cfg)
    for section, values in data.items():
        if section not in targets or not isinstance(values, dict):
            raise InputError(f"{p.name}: unknown section [{section}] (use {', '.join(targets)})")
        obj = targets[section]
        known = {f.name: f for f in fields(obj)}
        for k, v in values.items():
            if k not in known:
                raise InputError(f"{p.name}: [{section}] has no setting {k!r}")
            cur = getattr(obj, k)
            if isinstance(cur, (int, float)) and not isinstance(cur, bool):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise InputError(f"{p.name}: [{section}] {k} must be a number")
                v = type(cur)(v)
            setattr(obj, k, v)
    return cfg
