"""Score analysis outputs against simulator truth (vectorised matching, pooled over sessions).

Definitions (docs/simulator.md "Scoring"):
- An initial contact (IC) matches a true one when each is the other's nearest and they are within
  ``tol_s`` (default 40 ms). Precision = matched / predicted, recall = matched / true.
  True steps whose IC falls in a sample gap (truth/summary.json ``gaps``) cannot be seen and are left
  out of recall; predicted steps outside the true running bouts but within ``edge_s`` of a bout's start
  or end (walk/run transitions) are neither hits nor false positives.
- Timing error = predicted - true IC (ms); side accuracy over matched steps; metric errors are mean
  absolute errors over matched steps / strides (strides matched by ``t_start_s`` with the same rule).
- Drift: the first ``anterior_tilt_drift`` alert at or after the true onset is the detection, its delay
  is measured from ``cross3_s`` (negative = before the +3 deg crossing); every drift alert before the
  onset, or in a session without drift, is a false alarm; false alarms per hour use the time outside
  the drift episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tiltguard.errors import InputError
from tiltguard.formats.session import ALERTS_COLUMNS, STEPS_COLUMNS, STRIDES_COLUMNS, read_json, read_table

STEP_METRICS = {"gct_ms": "gct_mae_ms", "flight_ms": "flight_mae_ms", "step_time_s": "step_time_mae_s",
                "vertical_oscillation_cm": "vo_mae_cm", "braking_peak_g": "braking_mae_g"}
STRIDE_METRICS = {"tilt_mean_deg": "tilt_mean_mae_deg", "tilt_min_deg": "tilt_min_mae_deg",
                  "tilt_max_deg": "tilt_max_mae_deg", "tilt_rom_deg": "tilt_rom_mae_deg",
                  "tilt_ic_deg": "tilt_ic_mae_deg", "obliquity_rom_deg": "obliquity_rom_mae_deg",
                  "rotation_rom_deg": "rotation_rom_mae_deg", "pelvic_drop_l_deg": "pelvic_drop_l_mae_deg",
                  "pelvic_drop_r_deg": "pelvic_drop_r_mae_deg", "cadence_spm": "cadence_mae_spm",
                  "gct_asymmetry_pct": "gct_asymmetry_mae_pct"}
DRIFT_KIND = "anterior_tilt_drift"


def match_nearest(pred: np.ndarray, true: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i_pred, i_true) of mutual nearest neighbours no further apart than ``tol``."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    if not len(pred) or not len(true):
        return np.zeros(0, int), np.zeros(0, int)
    po, to = np.argsort(pred, kind="stable"), np.argsort(true, kind="stable")
    ps, ts = pred[po], true[to]

    def nearest(a, b):   # index into b of the nearest element for each of a (b sorted)
        j = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(a), int)
        if len(b) == 1:
            return j
        left_closer = np.abs(a - b[j - 1]) <= np.abs(b[j] - a)
        return np.where(left_closer, j - 1, j)

    nt = nearest(ps, ts)
    npred = nearest(ts, ps)
    i = np.arange(len(ps))
    ok = (npred[nt] == i) & (np.abs(ps - ts[nt]) <= tol)
    return po[i[ok]], to[nt[ok]]


@dataclass
class SessionScore:
    """Raw material of one session's score (pooled by :func:`summarise`)."""

    n_pred: int = 0
    n_true: int = 0
    n_true_hidden: int = 0
    n_pred_ignored: int = 0
    ic_err_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    side_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    step_err: dict = field(default_factory=dict)
    n_stride_pred: int = 0
    n_stride_true: int = 0
    n_stride_matched: int = 0
    stride_err: dict = field(default_factory=dict)
    drift_present: bool = False
    drift_detected: bool = False
    drift_delay_s: float | None = None
    false_alarms: int = 0
    hours_outside: float = 0.0


def _bouts(steps: pd.DataFrame) -> np.ndarray:
    """True running bouts [[start, end], ...] from consecutive truth steps."""
    if not len(steps):
        return np.zeros((0, 2))
    t, T = steps.t_ic_s.to_numpy(float), steps.step_time_s.to_numpy(float)
    brk = np.flatnonzero(np.abs(t[1:] - (t[:-1] + T[:-1])) > 1e-3)
    starts = np.concatenate([[0], brk + 1])
    ends = np.concatenate([brk, [len(t) - 1]])
    return np.column_stack([t[starts], t[ends] + T[ends]])


def _in_spans(t: np.ndarray, spans) -> np.ndarray:
    spans = np.asarray(spans, float).reshape(-1, 2)
    if not len(spans):
        return np.zeros(len(t), bool)
    spans = spans[np.argsort(spans[:, 0])]
    j = np.searchsorted(spans[:, 0], t, side="right") - 1
    jc = np.clip(j, 0, len(spans) - 1)
    reach = np.maximum.accumulate(spans[:, 1])   # overlapping spans: furthest end so far
    return (j >= 0) & (t <= reach[jc])


def _errors(pred: pd.DataFrame, true: pd.DataFrame, ip, it, cols) -> dict:
    out = {}
    for c in cols:
        if c in pred.columns and c in true.columns:
            e = pd.to_numeric(pred[c], errors="coerce").to_numpy(float)[ip] - true[c].to_numpy(float)[it]
            out[c] = e[np.isfinite(e)]
    return out


def _truth_dir(d: Path) -> Path:
    return d / "truth" if (d / "truth" / "steps.csv").exists() else d


def score_arrays(steps: pd.DataFrame, strides: pd.DataFrame, alerts: pd.DataFrame, t_steps: pd.DataFrame,
                 t_strides: pd.DataFrame, drift: dict, duration_s: float, gaps=(), tol_s: float = 0.040,
                 edge_s: float = 1.0) -> SessionScore:
    """Score one session from tables (the files' contents)."""
    s = SessionScore()
    p_ic = pd.to_numeric(steps.t_ic_s, errors="coerce").to_numpy(float)
    p_ic = p_ic[np.isfinite(p_ic)]
    steps = steps.loc[pd.to_numeric(steps.t_ic_s, errors="coerce").notna()].reset_index(drop=True)
    t_ic = t_steps.t_ic_s.to_numpy(float)
    hidden = _in_spans(t_ic, gaps)
    ip, it = match_nearest(p_ic, t_ic, tol_s)
    keep_true = ~hidden
    keep_true[it] = True                      # a hidden step that was still found counts
    unmatched = np.ones(len(p_ic), bool)
    unmatched[ip] = False
    bouts = _bouts(t_steps)
    inside = _in_spans(p_ic, bouts)
    edges = np.concatenate([np.column_stack([bouts[:, 0] - edge_s, bouts[:, 0]]),
                            np.column_stack([bouts[:, 1], bouts[:, 1] + edge_s])])
    near_edge = _in_spans(p_ic, edges)
    ignored = unmatched & ~inside & near_edge
    s.n_pred = int(len(p_ic) - ignored.sum())
    s.n_pred_ignored = int(ignored.sum())
    s.n_true = int(keep_true.sum())
    s.n_true_hidden = int((~keep_true).sum())
    s.ic_err_ms = (p_ic[ip] - t_ic[it]) * 1000.0
    s.side_ok = steps.side.astype(str).str.upper().to_numpy()[ip] == t_steps.side.astype(str).to_numpy()[it]
    s.step_err = _errors(steps, t_steps, ip, it, STEP_METRICS)
    # strides
    p_st = pd.to_numeric(strides.t_start_s, errors="coerce").to_numpy(float)
    ok = np.isfinite(p_st)
    strides = strides.loc[ok].reset_index(drop=True)
    jp, jt = match_nearest(p_st[ok], t_strides.t_start_s.to_numpy(float), tol_s)
    s.n_stride_pred, s.n_stride_true, s.n_stride_matched = int(ok.sum()), int(len(t_strides)), int(len(jp))
    s.stride_err = _errors(strides, t_strides, jp, jt, STRIDE_METRICS)
    # drift
    a = alerts[alerts.kind.astype(str) == DRIFT_KIND] if len(alerts) else alerts
    ta = np.sort(pd.to_numeric(a.t_s, errors="coerce").dropna().to_numpy(float)) if len(a) else np.zeros(0)
    onset = drift.get("onset_s") if drift else None
    if onset is None:
        s.false_alarms = int(len(ta))
        s.hours_outside = duration_s / 3600.0
    else:
        s.false_alarms = int((ta < onset).sum())
        s.hours_outside = min(onset, duration_s) / 3600.0
        c3 = drift.get("cross3_s")
        s.drift_present = c3 is not None
        after = ta[ta >= onset]
        if len(after):
            s.drift_detected = True
            s.drift_delay_s = float(after[0] - c3) if c3 is not None else None
    return s


def score_dirs(output_dir, truth_dir, tol_s: float = 0.040) -> SessionScore:
    """Score an analysis output folder against a simulated session (its folder or its truth/)."""
    out, tru = Path(output_dir), _truth_dir(Path(truth_dir))
    for d in (out, tru):
        if not d.is_dir():
            raise InputError(f"{d}: not a folder")
    if not (tru / "steps.csv").exists():
        raise InputError(f"{tru}: no truth/steps.csv (not a simulated session?)")
    if not (out / "steps.csv").exists():
        raise InputError(f"{out}: no steps.csv (run the analysis first)")
    steps = read_table(out / "steps.csv", ["t_ic_s", "side"])
    strides = read_table(out / "strides.csv", ["t_start_s"]) if (out / "strides.csv").exists() \
        else pd.DataFrame(columns=STRIDES_COLUMNS)
    alerts = read_table(out / "alerts.csv", ["t_s", "kind"]) if (out / "alerts.csv").exists() \
        else pd.DataFrame(columns=ALERTS_COLUMNS)
    t_steps = read_table(tru / "steps.csv", STEPS_COLUMNS)
    t_strides = read_table(tru / "strides.csv", STRIDES_COLUMNS)
    drift = read_json(tru / "drift.json") if (tru / "drift.json").exists() else {"onset_s": None}
    summ = read_json(tru / "summary.json") if (tru / "summary.json").exists() else {}
    duration = summ.get("duration_s")
    if duration is None:
        duration = float(t_steps.t_ic_s.max()) if len(t_steps) else 0.0
    return score_arrays(steps, strides, alerts, t_steps, t_strides, drift, float(duration),
                        summ.get("gaps") or [], tol_s)


def _mae(parts) -> float | None:
    e = np.concatenate(parts) if parts else np.zeros(0)
    return float(np.mean(np.abs(e))) if len(e) else None


def summarise(scores: list[SessionScore]) -> dict:
    """Pool sessions: counts add up, errors are concatenated, drift figures are over sessions."""
    tp = sum(len(s.ic_err_ms) for s in scores)
    n_pred = sum(s.n_pred for s in scores)
    n_true = sum(s.n_true for s in scores)
    prec = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    rec = tp / n_true if n_true else 1.0
    err = np.concatenate([s.ic_err_ms for s in scores]) if scores else np.zeros(0)
    side = np.concatenate([s.side_ok for s in scores]) if scores else np.zeros(0, bool)
    out = {
        "sessions": len(scores),
        "n_true_steps": n_true, "n_pred_steps": n_pred, "n_matched": tp,
        "n_true_hidden_in_gaps": sum(s.n_true_hidden for s in scores),
        "n_pred_ignored_at_edges": sum(s.n_pred_ignored for s in scores),
        "ic_precision": prec, "ic_recall": rec,
        "ic_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "ic_median_abs_err_ms": float(np.median(np.abs(err))) if len(err) else None,
        "ic_p95_abs_err_ms": float(np.percentile(np.abs(err), 95)) if len(err) else None,
        "ic_bias_ms": float(np.mean(err)) if len(err) else None,
        "side_accuracy": float(side.mean()) if len(side) else None,
    }
    for col, name in STEP_METRICS.items():
        out[name] = _mae([s.step_err[col] for s in scores if col in s.step_err])
    ns_t = sum(s.n_stride_true for s in scores)
    ns_p = sum(s.n_stride_pred for s in scores)
    ns_m = sum(s.n_stride_matched for s in scores)
    out["n_true_strides"], out["n_pred_strides"] = ns_t, ns_p
    out["n_matched_strides"] = ns_m
    out["stride_recall"] = ns_m / ns_t if ns_t else None
    out["stride_precision"] = ns_m / ns_p if ns_p else None
    for col, name in STRIDE_METRICS.items():
        out[name] = _mae([s.stride_err[col] for s in scores if col in s.stride_err])
    present = [s for s in scores if s.drift_present]
    delays = [s.drift_delay_s for s in present if s.drift_detected and s.drift_delay_s is not None]
    hours = sum(s.hours_outside for s in scores)
    fa = sum(s.false_alarms for s in scores)
    out.update({
        "drift_sessions": len(present),
        "drift_detected": sum(s.drift_detected for s in present),
        "drift_detected_within_90s": sum(1 for s in present if s.drift_detected and s.drift_delay_s <= 90.0),
        "drift_detection_rate_90s": (sum(1 for s in present if s.drift_detected and s.drift_delay_s <= 90.0)
                                     / len(present)) if present else None,
        "drift_delay_median_s": float(np.median(delays)) if delays else None,
        "drift_delays_s": delays,
        "false_alarms": fa, "hours_outside_drift": hours,
        "false_alarms_per_hour": fa / hours if hours > 0 else None,
    })
    return out


def score(output_dir, truth_dir, tol_s: float = 0.040) -> dict:
    """Score one analysis output folder against its simulated truth; returns a flat dict."""
    return summarise([score_dirs(output_dir, truth_dir, tol_s)])


def score_many(pairs, tol_s: float = 0.040) -> dict:
    """Pooled score over [(output_dir, truth_dir), ...]."""
    return summarise([score_dirs(o, t, tol_s) for o, t in pairs])
