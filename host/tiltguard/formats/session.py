"""Session folders: metadata, analysis outputs and where the samples are (``docs/formats.md``).

Every write that a crash could tear goes through :func:`atomic_write_text` (temp file, fsync, rename),
so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tiltguard.errors import InputError

FORMAT = "tiltguard-session/1"
META_FILE = "session.json"
RAW_NAMES = ("raw.csv", "raw.csv.gz")
LOG_NAME = "stream.tgl"

STEPS_COLUMNS = [
    "t_ic_s", "side", "t_to_s", "gct_ms", "flight_ms", "step_time_s",
    "vertical_oscillation_cm", "braking_peak_g", "side_confidence",
]
STRIDES_COLUMNS = [
    "t_start_s", "t_end_s", "tilt_mean_deg", "tilt_min_deg", "tilt_max_deg", "tilt_rom_deg", "tilt_ic_deg",
    "obliquity_rom_deg", "rotation_rom_deg", "pelvic_drop_l_deg", "pelvic_drop_r_deg", "cadence_spm",
    "gct_l_ms", "gct_r_ms", "gct_asymmetry_pct", "obliquity_asymmetry_pct",
]
ALERTS_COLUMNS = ["t_s", "kind", "value", "baseline_deg", "sent"]
CURVES_COLUMNS = [
    "pct", "tilt_early_deg", "tilt_late_deg", "obliquity_early_deg", "obliquity_late_deg",
    "rotation_early_deg", "rotation_late_deg",
]
OUTPUT_FILES = {"steps": "steps.csv", "strides": "strides.csv", "alerts": "alerts.csv", "curves": "curves.csv"}
OUTPUT_COLUMNS = {"steps": STEPS_COLUMNS, "strides": STRIDES_COLUMNS, "alerts": ALERTS_COLUMNS, "curves": CURVES_COLUMNS}


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """JSON with NaN/inf as null and numpy types converted, written atomically."""
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc.__class__.__name__} at {getattr(exc, 'pos', '?')})") from None


def write_session_meta(session_dir: str | Path, meta: dict) -> Path:
    """Write ``session.json`` atomically; ``format`` is filled in."""
    meta = {"format": FORMAT, **meta}
    return write_json_atomic(Path(session_dir) / META_FILE, meta)


def read_session_meta(session_dir: str | Path) -> dict:
    session_dir = Path(session_dir)
    if not session_dir.is_dir():
        raise InputError(f"{session_dir}: not a session folder")
    path = session_dir / META_FILE
    if not path.exists():
        return {"format": FORMAT}
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object")
    return meta


@dataclass
class Outputs:
    """Analysis outputs of one session (empty tables with the right columns when absent)."""

    steps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEPS_COLUMNS))
    strides: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STRIDES_COLUMNS))
    alerts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ALERTS_COLUMNS))
    summary: dict = field(default_factory=dict)
    curves: pd.DataFrame | None = None


def _ordered(df: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} table lacks column(s) {missing}")
    rest = [c for c in df.columns if c not in columns]
    return df[columns + rest]


def write_table(path: str | Path, df: pd.DataFrame) -> Path:
    """CSV with a stable float format, written atomically."""
    return atomic_write_text(path, df.to_csv(index=False, float_format="%.10g", lineterminator="\n"))


def write_outputs(
    session_dir: str | Path,
    steps: pd.DataFrame,
    strides: pd.DataFrame,
    alerts: pd.DataFrame,
    summary: dict,
    curves: pd.DataFrame | None = None,
) -> Path:
    """Write steps.csv, strides.csv, alerts.csv, summary.json (and curves.csv) into ``session_dir``.

    Required columns come first in the documented order; extra columns are kept after them.
    """
    d = Path(session_dir)
    d.mkdir(parents=True, exist_ok=True)
    write_table(d / "steps.csv", _ordered(steps, STEPS_COLUMNS, "steps"))
    write_table(d / "strides.csv", _ordered(strides, STRIDES_COLUMNS, "strides"))
    write_table(d / "alerts.csv", _ordered(alerts, ALERTS_COLUMNS, "alerts"))
    if curves is not None:
        write_table(d / "curves.csv", _ordered(curves, CURVES_COLUMNS, "curves"))
    write_json_atomic(d / "summary.json", summary)
    return d


def read_table(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """Read one output table, refusing it (one line) when a documented column is missing."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=columns)
    try:
        df = pd.read_csv(path, keep_default_na=True, na_values=[""])
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s): {', '.join(missing)}")
    return df


def read_outputs(session_dir: str | Path) -> Outputs:
    d = Path(session_dir)
    if not d.is_dir():
        raise InputError(f"{d}: not a session folder")
    out = Outputs(
        steps=read_table(d / "steps.csv", STEPS_COLUMNS),
        strides=read_table(d / "strides.csv", STRIDES_COLUMNS),
        alerts=read_table(d / "alerts.csv", ALERTS_COLUMNS),
        summary=read_json(d / "summary.json") if (d / "summary.json").exists() else {},
    )
    if (d / "curves.csv").exists():
        out.curves = read_table(d / "curves.csv", CURVES_COLUMNS)
    return out


def find_raw(session_dir: str | Path) -> Path:
    """The samples of a session: raw.csv, raw.csv.gz or the binary log stream.tgl, in that order."""
    d = Path(session_dir)
    for name in (*RAW_NAMES, LOG_NAME):
        if (d / name).exists():
            return d / name
    raise InputError(f"{d}: no samples found (expected raw.csv, raw.csv.gz or {LOG_NAME})")
