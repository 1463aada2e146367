"""Trends across many sessions: one row per session from its summary.json (and strides only when needed).

Per session: baseline tilt, drift onset (time, and distance when the strides carry ``speed_mps``),
cadence, contact time and asymmetry. Sessions are found recursively (any folder holding summary.json,
simulator ``truth/`` folders excepted) and read in parallel threads: file reading dominates.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tiltguard.coach import html as H
from tiltguard.coach.session import parse_time
from tiltguard.errors import InputError

TRENDS_COLUMNS = ["athlete", "session", "start_time", "duration_s", "running_s", "n_strides", "tilt_baseline_deg",
                  "drift_onset_s", "drift_onset_km", "cadence_spm", "gct_ms", "gct_asymmetry_pct",
                  "obliquity_asymmetry_pct", "alerts_n"]
_STRIDE_COLS = ["t_start_s", "t_end_s", "gct_asymmetry_pct", "obliquity_asymmetry_pct", "speed_mps"]


def find_sessions(root: str | Path) -> list[Path]:
    """Session folders below ``root`` (those with a summary.json), sorted; ``truth/`` folders skipped."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "truth" and not d.startswith("."))
        if "summary.json" in filenames:
            found.append(Path(dirpath))
    return found


def _load_json(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = json.load(fh)
        return obj if isinstance(obj, dict) else {}
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: not valid JSON") from None


def _strides(path: Path) -> pd.DataFrame | None:
    f = path / "strides.csv"
    if not f.exists():
        return None
    try:
        tbl = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(
            include_columns=_STRIDE_COLS, include_missing_columns=True,
            column_types={c: pa.float64() for c in _STRIDE_COLS}))
    except (pa.ArrowInvalid, OSError):
        raise InputError(f"{f}: not a readable strides table") from None
    return tbl.to_pandas()


def _median(a) -> float:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else float("nan")


def session_row(path: Path, root: Path) -> dict:
    summary = _load_json(path / "summary.json")
    meta = _load_json(path / "session.json")
    start = parse_time(meta.get("start_time"), str(path / "session.json"))
    onset = summary.get("drift_onset_s")
    row = {
        "athlete": str(meta.get("athlete") or "unknown"),
        "session": path.relative_to(root).as_posix() if path != root else path.name,
        "start_time": start.isoformat() if start else "",
        "duration_s": summary.get("duration_s"), "running_s": summary.get("running_s"),
        "n_strides": summary.get("n_strides"), "tilt_baseline_deg": summary.get("tilt_baseline_deg"),
        "drift_onset_s": onset, "drift_onset_km": summary.get("drift_onset_km"),
        "cadence_spm": summary.get("cadence_spm"), "gct_ms": summary.get("gct_ms"),
        "gct_asymmetry_pct": summary.get("gct_asymmetry_pct"),
        "obliquity_asymmetry_pct": summary.get("obliquity_asymmetry_pct"),
        "alerts_n": summary.get("alerts"),
    }
    need_asym = row["gct_asymmetry_pct"] is None or row["obliquity_asymmetry_pct"] is None
    need_km = onset is not None and row["drift_onset_km"] is None
    if need_asym or need_km:           # the summary lacks it: read just these stride columns
        st = _strides(path)
        if st is not None and len(st):
            for c in ("gct_asymmetry_pct", "obliquity_asymmetry_pct"):
                if row[c] is None:
                    row[c] = _median(st[c])
            if need_km and np.isfinite(st["speed_mps"]).any():
                before = (st["t_end_s"] <= float(onset)).to_numpy()
                dt = (st["t_end_s"] - st["t_start_s"]).to_numpy(float)
                row["drift_onset_km"] = float(np.nansum(st["speed_mps"].to_numpy(float)[before] * dt[before]) / 1000)
    return row


def summarise(root: str | Path, workers: int | None = None) -> pd.DataFrame:
    """The trends table (``TRENDS_COLUMNS``) of every session below ``root``, by athlete then start time."""
    root = Path(root)
    paths = find_sessions(root)
    if not paths:
        raise InputError(f"{root}: no session folders (with summary.json) found")
    with ThreadPoolExecutor(max_workers=workers or min(16, (os.cpu_count() or 2) * 4)) as ex:
        rows = list(ex.map(lambda p: session_row(p, root), paths))
    df = pd.DataFrame(rows, columns=TRENDS_COLUMNS)
    num = [c for c in TRENDS_COLUMNS if c not in ("athlete", "session", "start_time")]
    df[num] = df[num].apply(pd.to_numeric, errors="coerce")
    return df.sort_values(["athlete", "start_time", "session"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- page

def athlete_figures(df: pd.DataFrame) -> list[str]:
    """Four charts of one athlete's sessions over time (direct SVG: a club page holds hundreds)."""
    from tiltguard.coach import svgchart

    t = pd.to_datetime(df["start_time"], utc=True, errors="coerce", format="ISO8601")
    dates = bool(len(t)) and t.notna().all()
    x = svgchart.as_datetimes(t) if dates else np.arange(1, len(df) + 1)
    xl = "" if dates else " (by session)"
    d = df.assign(drift_onset_min=df["drift_onset_s"] / 60.0)
    specs = [("tilt_baseline_deg", "baseline anterior tilt", "deg"),
             ("drift_onset_min", "drift onset (gap: no drift)", "min into the run"),
             ("cadence_spm", "cadence", "steps/min"),
             ("gct_asymmetry_pct", "contact-time asymmetry (L vs R)", "%")]
    out = []
    for col, title, unit in specs:
        y = d[col].to_numpy(float)
        smooth = pd.Series(y).rolling(5, min_periods=2).median().to_numpy() if len(y) >= 5 else None
        chart = svgchart.line_chart(x, y, title + xl, unit, dates=dates, smooth=smooth,
                                    smooth_label="median of 5" if smooth is not None else "")
        out.append(f"<figure>{chart}</figure>")
    return out


def build_page(df: pd.DataFrame, root: str, max_rows: int = 30) -> str:
    parts = [f"<h1>tiltguard trends</h1><p class='sub'>{len(df)} sessions of "
             f"{df['athlete'].nunique()} athlete(s) under {H.html.escape(str(root))}</p>"]
    for athlete, g in df.groupby("athlete", sort=True):
        g = g.reset_index(drop=True)
        figs = athlete_figures(g)
        n_drift = int(g["drift_onset_s"].notna().sum())
        parts.append(f"<h2>{H.html.escape(str(athlete))}</h2>")
        parts.append(H.cards([
            ("sessions", str(len(g))),
            ("median baseline tilt", H.fmt(g["tilt_baseline_deg"].median(), ".1f", "°")),
            ("runs with drift", f"{n_drift} of {len(g)}"),
            ("median drift onset", H.mmss(g["drift_onset_s"].median()) if n_drift else "–"),
            ("median cadence", H.fmt(g["cadence_spm"].median(), ".0f", " spm")),
        ]))
        parts.append(H.grid(figs))
        tail = g.tail(max_rows)
        rows = [[str(r.start_time)[:10] or str(r.session), H.fmt(r.tilt_baseline_deg),
                 H.mmss(r.drift_onset_s) if pd.notna(r.drift_onset_s) else "none",
                 H.fmt(r.drift_onset_km, ".2f"), H.fmt(r.cadence_spm, ".0f"), H.fmt(r.gct_asymmetry_pct, "+.1f")]
                for r in tail.itertuples()]
        parts.append(H.table(["start", "baseline (°)", "drift onset", "onset (km)", "cadence", "asym. (%)"], rows))
        if len(g) > max_rows:
            parts.append(f"<p class='sub'>Last {max_rows} of {len(g)} sessions; all are in trends.csv.</p>")
    return H.page("tiltguard trends", "".join(parts))


def write_trends(root: str | Path, out_dir: str | Path, html: bool = True) -> tuple[Path, Path | None]:
    from tiltguard.formats.session import atomic_write_text

    df = summarise(root)
    out_dir = Path(out_dir)
    csv = atomic_write_text(out_dir / "trends.csv", df.to_csv(index=False, lineterminator="\n"))
    page = atomic_write_text(out_dir / "trends.html", build_page(df, str(root))) if html else None
    return csv, page
