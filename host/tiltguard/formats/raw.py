"""Raw recording CSV (``raw.csv`` / ``raw.csv.gz``): reader with validation, and writer.

Columns and rules are in ``docs/formats.md``. Reading uses pyarrow's multithreaded CSV engine; every
refusal is an :class:`~tiltguard.errors.InputError` with a one-line message.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tiltguard.errors import InputError

TIME = "t_s"
ACC = ("ax_g", "ay_g", "az_g")
GYRO = ("gx_dps", "gy_dps", "gz_dps")
ANGLES = ("tilt_deg", "obliquity_deg", "rotation_deg")
REQUIRED = (TIME, *ACC)
MIN_RATE_HZ, MAX_RATE_HZ = 50.0, 1000.0


@dataclass
class Recording:
    """Samples of one session in the device frame (docs/conventions.md)."""

    t_s: np.ndarray                       # (N,) float64, strictly increasing
    acc_g: np.ndarray                     # (N, 3) float64 specific force
    gyro_dps: np.ndarray | None = None    # (N, 3) float64, None for accelerometer-only recordings
    angles_deg: np.ndarray | None = None  # (N, 3) device-computed [tilt, obliquity, rotation]
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def fs_hz(self) -> float:
        """Nominal sample rate from the median sample interval."""
        if len(self.t_s) < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.t_s)))

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if len(self.t_s) else 0.0


def _where(path: Path) -> str:
    return path.name


def _numeric(table: pa.Table, name: str, path: Path) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.to_numpy().astype(np.float64, copy=False)
    if pa.types.is_null(col.type):
        return np.full(table.num_rows, np.nan)
    # A text cell made pyarrow infer strings: find the first one that is not a number, for the message.
    values = col.to_pylist()
    for i, v in enumerate(values):
        if v is None or v == "":
            continue
        try:
            float(v)
        except (TypeError, ValueError):
            raise InputError(f"{_where(path)}: column {name} has a non-numeric value {v!r} at data row {i + 1}")
    return np.array([np.nan if v in (None, "") else float(v) for v in values], dtype=np.float64)


def read_raw(path: str | Path) -> Recording:
    """Read and validate a raw recording (CSV or gzipped CSV).

    Returns a :class:`Recording`. Raises :class:`InputError` (one line) for a missing or empty file, missing
    required columns, non-numeric cells, non-increasing ``t_s`` or a sample rate outside 50..1000 Hz.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{_where(path)}: empty file")
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
        names = [n.strip() for n in table.column_names]
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Empty CSV file" in msg:
            raise InputError(f"{_where(path)}: empty file") from None
        raise InputError(f"{_where(path)}: not a readable CSV ({msg})") from None
    table = table.rename_columns(names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InputError(f"{_where(path)}: missing required column(s): {', '.join(missing)}")
    if table.num_rows < 2:
        raise InputError(f"{_where(path)}: needs at least 2 samples, has {table.num_rows}")

    t = _numeric(table, TIME, path)
    bad = ~np.isfinite(t)
    if bad.any():
        raise InputError(f"{_where(path)}: t_s is empty or not finite at data row {int(np.argmax(bad)) + 1}")
    dt = np.diff(t)
    if (dt <= 0).any():
        i = int(np.argmax(dt <= 0)) + 1
        raise InputError(f"{_where(path)}: t_s does not increase at data row {i + 1} ({t[i - 1]:g} then {t[i]:g})")
    fs = 1.0 / float(np.median(dt))
    if not (MIN_RATE_HZ * 0.95 <= fs <= MAX_RATE_HZ * 1.05):
        raise InputError(f"{_where(path)}: sample rate {fs:.1f} Hz is outside {MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz")

    def group(cols: tuple[str, ...]) -> np.ndarray | None:
        present = [c in names for c in cols]
        if not any(present):
            return None
        if not all(present):
            absent = [c for c, p in zip(cols, present) if not p]
            raise InputError(f"{_where(path)}: incomplete column group, missing {', '.join(absent)}")
        return np.column_stack([_numeric(table, c, path) for c in cols])

    acc = group(ACC)
    gyro = group(GYRO)
    angles = group(ANGLES)
    known = set(REQUIRED) | set(GYRO) | set(ANGLES)
    extra = {}
    for n in names:
        if n in known:
            continue
        col = table.column(n)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            extra[n] = col.to_numpy().astype(np.float64, copy=False)
        else:
            extra[n] = np.asarray(col.to_pylist(), dtype=object)
    return Recording(t_s=t, acc_g=acc, gyro_dps=gyro, angles_deg=angles, extra=extra, path=path)


def write_raw(
    path: str | Path,
    rec: Recording | None = None,
    *,
    t_s: np.ndarray | None = None,
    acc_g: np.ndarray | None = None,
    gyro_dps: np.ndarray | None = None,
    angles_deg: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
    decimals: int = 6,
) -> Path:
    """Write a raw recording CSV (gzip-compressed when the name ends in ``.gz``).

    Pass a :class:`Recording` or the arrays by keyword. Values are rounded to ``decimals`` places
    (1 µg / 1 µs resolution is far below any sensor's noise) to keep files small.
    """
    path = Path(path)
    if rec is not None:
        t_s, acc_g, gyro_dps, angles_deg = rec.t_s, rec.acc_g, rec.gyro_dps, rec.angles_deg
        extra = rec.extra if extra is None else extra
    if t_s is None or acc_g is None:
        raise ValueError("write_raw needs t_s and acc_g")
    cols: dict[str, np.ndarray] = {TIME: np.round(np.asarray(t_s, dtype=np.float64), decimals)}
    for names, arr in ((ACC, acc_g), (GYRO, gyro_dps), (ANGLES, angles_deg)):
        if arr is None:
            continue
        arr = np.asarray(arr, dtype=np.float64)
        for j, n in enumerate(names):
            cols[n] = np.round(arr[:, j], decimals)
    for n, v in (extra or {}).items():
        cols[n] = np.asarray(v)
    table = pa.table(cols)
    # Unquoted header and numbers read best in a spreadsheet; quote only when text columns exist.
    has_text = any(pa.types.is_string(f.type) or pa.types.is_large_string(f.type) for f in table.schema)
    opts = pacsv.WriteOptions(quoting_style="needed" if has_text else "none", include_header=False)
    header = (",".join(table.column_names) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if path.suffix == ".gz":
        # Level 3: most of level 9's size at a fraction of its time; mtime=0 keeps output reproducible.
        with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=3, mtime=0) as out:
            out.write(header)
            pacsv.write_csv(table, out, write_options=opts)
    else:
        with pa.OSFile(str(tmp), "wb") as out:
            out.write(header)
            pacsv.write_csv(table, out, write_options=opts)
    tmp.replace(path)
    return path
