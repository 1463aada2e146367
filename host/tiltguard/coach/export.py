"""Exports of a session: stable columns (units in the names) as CSV, parquet or xlsx, plus a sidecar JSON.

The columns are listed once here (``COLUMNS``) and documented in ``docs/formats.md`` ("Exports"). Extra
columns an analysis version may add are left out, so an export made today reads the same next year.
Text cells a spreadsheet would run as a formula get a leading apostrophe (:func:`guard_text`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tiltguard import __version__
from tiltguard.coach.session import Session
from tiltguard.errors import InputError
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS, atomic_write_bytes, atomic_write_text, find_raw

EXPORT_FORMAT = "tiltguard-export/1"
WHATS = ("samples", "steps", "strides", "summary")
FORMATS = ("csv", "parquet", "xlsx", "fit")

SAMPLES_COLUMNS = ["t_s", "ax_g", "ay_g", "az_g", "gx_dps", "gy_dps", "gz_dps", "tilt_deg", "obliquity_deg",
                   "rotation_deg"]
# Per-stride columns joined from a watch FIT (tiltguard.coach.fit.align_watch); empty when no watch data.
WATCH_COLUMNS = ["speed_mps", "grade_pct", "hr_bpm"]
SUMMARY_COLUMNS = ["session", "athlete", "start_time", "duration_s", "running_s", "n_steps", "n_strides",
                   "cadence_spm", "gct_ms", "tilt_baseline_deg", "drift_onset_s", "alerts_n", "gaps_n", "gaps_s"]

COLUMNS = {
    "samples": SAMPLES_COLUMNS,
    "steps": ["time_utc", *STEPS_COLUMNS],
    "strides": ["time_utc", *STRIDES_COLUMNS, *WATCH_COLUMNS],
    "summary": SUMMARY_COLUMNS,
}
XLSX_MAX_ROWS = 1_048_576  # Excel's sheet limit, header row included

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z"  # ASCII digits only, nothing after


def guard_text(series: pd.Series) -> pd.Series:
    """Prefix text cells starting with = + - @ tab or CR with an apostrophe; numbers and NaN are untouched."""
    if series.dtype != object and not pd.api.types.is_string_dtype(series):
        return series
    s = series.astype(object)
    is_str = s.map(lambda v: isinstance(v, str))
    text = s[is_str].astype(str)
    bad = text.str.startswith(_DANGEROUS) & ~text.str.match(_NUMBER)
    out = s.copy()
    out.loc[bad[bad].index] = "'" + text[bad]
    return out


def guard_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(guard_text)


def _time_utc(session: Session, t_s: pd.Series) -> pd.Series:
    start = session.start
    if start is None:
        return pd.Series([""] * len(t_s), index=t_s.index, dtype=object)
    base = pd.Timestamp(start.astimezone(timezone.utc))
    ts = base + pd.to_timedelta(pd.to_numeric(t_s, errors="coerce"), unit="s")
    return pd.Series(ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "+00:00", index=t_s.index, dtype=object)


def _with_columns(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c in columns:
        out[c] = df[c] if c in df.columns else np.nan
    return out.reset_index(drop=True)


def table(session: Session, what: str) -> pd.DataFrame:
    """The export table ``what`` of a session with exactly ``COLUMNS[what]``."""
    if what not in WHATS:
        raise InputError(f"unknown export {what!r} (choose from {', '.join(WHATS)})")
    if what == "steps":
        df = session.steps.copy()
        df["time_utc"] = _time_utc(session, df["t_ic_s"])
        return _with_columns(df, COLUMNS[what])
    if what == "strides":
        df = session.strides.copy()
        df["time_utc"] = _time_utc(session, df["t_start_s"])
        return _with_columns(df, COLUMNS[what])
    if what == "summary":
        return pd.DataFrame([summary_row(session)], columns=SUMMARY_COLUMNS)
    return samples_table(session)


def summary_row(session: Session) -> dict:
    s = session.out.summary
    gaps = s.get("gaps") or []
    try:
        gaps_s = float(sum(float(b) - float(a) for a, b in gaps))
    except (TypeError, ValueError):
        gaps_s = float("nan")
    start = session.start
    return {
        "session": session.name, "athlete": session.meta.get("athlete") or "",
        "start_time": start.isoformat() if start else "",
        **{k: s.get(k) for k in ("duration_s", "running_s", "n_steps", "n_strides", "cadence_spm", "gct_ms",
                                 "tilt_baseline_deg", "drift_onset_s")},
        "alerts_n": s.get("alerts"), "gaps_n": len(gaps), "gaps_s": gaps_s,
    }


def samples_table(session: Session) -> pd.DataFrame:
    """Samples from raw.csv[.gz], or decoded from the binary log stream.tgl (merged by sequence number)."""
    path = find_raw(session.path)
    if path.name.endswith((".csv", ".csv.gz")):
        from tiltguard.formats.raw import read_raw

        rec = read_raw(path)
    else:
        from tiltguard.formats.sessionlog import read_recording

        rec = read_recording(path)
    cols = {"t_s": rec.t_s}
    groups = ((("ax_g", "ay_g", "az_g"), rec.acc_g), (("gx_dps", "gy_dps", "gz_dps"), rec.gyro_dps),
              (("tilt_deg", "obliquity_deg", "rotation_deg"), rec.angles_deg))
    for names, arr in groups:
        for j, n in enumerate(names):
            cols[n] = arr[:, j] if arr is not None else np.full(len(rec.t_s), np.nan)
    return pd.DataFrame(cols)[SAMPLES_COLUMNS]


def metadata(session: Session, what: str, fmt: str, columns: list[str]) -> dict:
    """Sidecar content: what the file is, which session, and every column with its meaning."""
    from tiltguard.coach.columns import describe

    start = session.start
    return {
        "format": EXPORT_FORMAT,
        "what": what,
        "file_format": fmt,
        "exported_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "tiltguard_version": __version__,
        "session": {
            "name": session.name,
            "start_time": start.isoformat() if start else None,
            "athlete": session.meta.get("athlete"),
            "source": session.meta.get("source"),
            "sample_rate_hz": session.meta.get("sample_rate_hz"),
            "device": session.meta.get("device"),
            "mode": session.meta.get("mode"),
            "notes": session.meta.get("notes"),
            "simulated": session.meta.get("simulated"),
        },
        "summary": session.out.summary,
        "columns": [{"name": c, "description": describe(c, what)} for c in columns],
    }


def sidecar_path(out: Path) -> Path:
    """``run-strides.csv`` -> ``run-strides.csv.json`` (one sidecar per export file)."""
    return out.with_name(out.name + ".json")


def default_output(session: Session, what: str, fmt: str) -> Path:
    return Path(f"{session.name}-{what}.{fmt}")


def export(session: Session, what: str = "strides", fmt: str = "csv", out: str | Path | None = None) -> Path:
    """Write the export and its sidecar JSON; returns the export's path."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    out = Path(out) if out else default_output(session, what, fmt)
    if fmt == "fit":
        from tiltguard.coach.fit import write_session_fit

        if what != "strides":
            raise InputError("FIT export holds per-stride records: use --what strides")
        atomic_write_bytes(out, write_session_fit(session))
        return out
    df = table(session, what)
    from tiltguard.formats.session import write_json_atomic

    meta = metadata(session, what, fmt, list(df.columns))
    if fmt == "csv":
        atomic_write_text(out, guard_frame(df).to_csv(index=False, lineterminator="\n"))
    elif fmt == "parquet":
        _write_parquet(out, df, meta)
    else:
        if len(df) >= XLSX_MAX_ROWS:
            raise InputError(f"{len(df)} rows do not fit in a spreadsheet ({XLSX_MAX_ROWS - 1} max): "
                             "use --format csv or parquet")
        _write_xlsx(out, df, meta, what)
    write_json_atomic(sidecar_path(out), meta)
    return out


def _write_parquet(out: Path, df: pd.DataFrame, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tbl = pa.Table.from_pandas(df, preserve_index=False)
    tbl = tbl.replace_schema_metadata({**(tbl.schema.metadata or {}), b"tiltguard": json.dumps(meta).encode()})
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(tbl, tmp)
    tmp.replace(out)


def _write_xlsx(out: Path, df: pd.DataFrame, meta: dict, what: str) -> None:
    """A workbook: the table (text guarded, numbers as numbers) and a key/value 'metadata' sheet."""
    flat = [("format", meta["format"]), ("what", what), ("exported_at", meta["exported_at"])]
    flat += [(f"session.{k}", json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in meta["session"].items()]
    flat += [(f"column.{c['name']}", c["description"]) for c in meta["columns"]]
    info = pd.DataFrame(flat, columns=["key", "value"])
    tmp = out.with_name(f".{out.name}.tmp.xlsx")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        guard_frame(df).to_excel(xw, sheet_name=what, index=False)
        guard_frame(info.astype(object)).to_excel(xw, sheet_name="metadata", index=False)
    tmp.replace(out)

