"""FIT in and out with Garmin's FIT SDK (``garmin_fit_sdk``: Encoder to write, Decoder to read).

Out: a session's strides as a FIT running activity (file_id, developer_data_id, field_description,
event, one record per stride carrying developer fields, lap, session, activity). FIT times are whole
seconds, so each record also carries the stride's exact start in ``stride_start`` (s from session start).

In: a watch's FIT (records with timestamp, enhanced_speed, enhanced_altitude, heart_rate) aligned by
wall-clock time to the session (``session.json`` ``start_time``) and joined per stride as ``speed_mps``,
``grade_pct`` and ``hr_bpm``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tiltguard import __version__
from tiltguard.coach.session import Session
from tiltguard.errors import InputError

FLOAT32 = 0x88   # FIT base type id of float32
APP_ID = list(bytes.fromhex("7469_6c74_6775_6172_6400_0000_0000_0001".replace("_", "")))  # "tiltguard"+pad
MANUFACTURER_DEVELOPMENT = 255
FIT_EPOCH = datetime(1989, 12, 31, tzinfo=timezone.utc)

# (key, name, units, strides column or callable) for the per-record developer fields.
RECORD_FIELDS = [
    (0, "pelvic_tilt", "deg", "tilt_mean_deg"),
    (1, "tilt_rom", "deg", "tilt_rom_deg"),
    (2, "drift_excess", "deg", None),            # tilt_mean_deg minus the session's baseline
    (3, "pelvic_drop_l", "deg", "pelvic_drop_l_deg"),
    (4, "pelvic_drop_r", "deg", "pelvic_drop_r_deg"),
    (5, "obliquity_rom", "deg", "obliquity_rom_deg"),
    (6, "rotation_rom", "deg", "rotation_rom_deg"),
    (7, "gct_asymmetry", "%", "gct_asymmetry_pct"),
    (8, "stride_start", "s", "t_start_s"),
]
SESSION_FIELDS = [(20, "tilt_baseline", "deg")]


def _dev_messages() -> tuple[dict, list[dict]]:
    dev_id = {"mesg_num": 207, "developer_data_index": 0, "application_id": APP_ID,
              "application_version": int(__version__.replace(".", "")[:4] or 1)}
    descs = []
    for key, name, units, *_ in RECORD_FIELDS:
        descs.append({"mesg_num": 206, "developer_data_index": 0, "field_definition_number": key,
                      "fit_base_type_id": FLOAT32, "field_name": name, "units": units, "native_mesg_num": 20})
    for key, name, units in SESSION_FIELDS:
        descs.append({"mesg_num": 206, "developer_data_index": 0, "field_definition_number": key,
                      "fit_base_type_id": FLOAT32, "field_name": name, "units": units, "native_mesg_num": 18})
    return dev_id, descs


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def write_session_fit(session: Session) -> bytes:
    """The session's strides as the bytes of a FIT activity file."""
    from garmin_fit_sdk import Encoder

    start = session.start
    if start is None:
        raise InputError(f"{session.path}: session.json has no start_time, which a FIT file needs")
    st = session.strides
    if st.empty:
        raise InputError(f"{session.path}: no strides to export")
    base = session.out.summary.get("tilt_baseline_deg")
    if base is None:
        base = float(np.nanmedian(st["tilt_mean_deg"].to_numpy(float)[: max(10, len(st) // 10)]))
    t0 = st["t_start_s"].to_numpy(float)
    t1 = st["t_end_s"].to_numpy(float)
    enc = Encoder()
    dev_id, descs = _dev_messages()
    when = start.astimezone(timezone.utc)
    enc.write_mesg({"mesg_num": 0, "type": "activity", "manufacturer": MANUFACTURER_DEVELOPMENT, "product": 1,
                    "serial_number": 1, "time_created": when})
    enc.write_mesg({"mesg_num": 23, "timestamp": when, "manufacturer": MANUFACTURER_DEVELOPMENT, "product": 1,
                    "software_version": 1.0, "product_name": "tiltguard"})
    enc.write_mesg(dev_id)
    for d in descs:
        enc.write_mesg(d)
        enc.add_developer_field(d["field_definition_number"], dev_id, d)
    first = when + timedelta(seconds=float(t0[0]))
    last = when + timedelta(seconds=float(t1[-1]))
    enc.write_mesg({"mesg_num": 21, "timestamp": first, "event": "timer", "event_type": "start"})

    cols = {c: st[c].to_numpy(float) for c in st.columns if c not in ("side",) and st[c].dtype != object}
    cad = cols.get("cadence_spm")
    gct = np.nanmean(np.column_stack([cols["gct_l_ms"], cols["gct_r_ms"]]), axis=1) if "gct_l_ms" in cols else None
    for i in range(len(st)):
        dev = {}
        for key, _name, _u, col in RECORD_FIELDS:
            v = cols["tilt_mean_deg"][i] - base if col is None else cols[col][i]
            v = _f(v)
            if v is not None:
                dev[key] = v
        rec = {"mesg_num": 20, "timestamp": when + timedelta(seconds=float(t0[i])), "developer_fields": dev}
        if cad is not None and np.isfinite(cad[i]):
            rec["cadence"] = int(cad[i] / 2)                     # FIT running cadence: strides/min
            rec["fractional_cadence"] = float(cad[i] / 2 - int(cad[i] / 2))
        if gct is not None and np.isfinite(gct[i]):
            rec["stance_time"] = float(gct[i])
        for col, field, scale in (("speed_mps", "enhanced_speed", 1.0), ("hr_bpm", "heart_rate", 1.0)):
            if col in cols and np.isfinite(cols[col][i]):
                rec[field] = int(round(cols[col][i])) if field == "heart_rate" else float(cols[col][i] * scale)
        enc.write_mesg(rec)

    elapsed = float(t1[-1] - t0[0])
    avg_cad = int(np.nanmean(cad) / 2) if cad is not None else None
    enc.write_mesg({"mesg_num": 21, "timestamp": last, "event": "timer", "event_type": "stop_all"})
    enc.write_mesg({"mesg_num": 19, "timestamp": last, "start_time": first, "total_elapsed_time": elapsed,
                    "total_timer_time": elapsed, "event": "lap", "event_type": "stop", "message_index": 0,
                    "sport": "running", "avg_cadence": avg_cad})
    enc.write_mesg({"mesg_num": 18, "timestamp": last, "start_time": first, "total_elapsed_time": elapsed,
                    "total_timer_time": elapsed, "sport": "running", "sub_sport": "generic", "first_lap_index": 0,
                    "num_laps": 1, "event": "session", "event_type": "stop", "message_index": 0,
                    "avg_cadence": avg_cad, "developer_fields": {20: float(base)}})
    enc.write_mesg({"mesg_num": 34, "timestamp": last, "total_timer_time": elapsed, "num_sessions": 1,
                    "type": "manual", "event": "activity", "event_type": "stop",
                    "local_timestamp": int((last - FIT_EPOCH).total_seconds() + (start.utcoffset() or timedelta()).total_seconds())})
    return bytes(enc.close())


# ---------------------------------------------------------------- reading a watch's FIT

def read_fit_records(data: bytes | str | Path) -> pd.DataFrame:
    """Record messages of a FIT file as a table: ``time_utc`` (datetime), ``speed_mps``, ``altitude_m``,
    ``hr_bpm``, ``distance_m`` (NaN where the watch did not record the field)."""
    from garmin_fit_sdk import Decoder, Stream

    if not isinstance(data, (bytes, bytearray)):
        p = Path(data)
        if not p.exists():
            raise InputError(f"{p}: no such file")
        data = p.read_bytes()
    def decoder():  # each check consumes the stream
        return Decoder(Stream.from_byte_array(bytearray(data)))

    if not decoder().is_fit():
        raise InputError("not a FIT file")
    if not decoder().check_integrity():
        raise InputError("FIT file fails its CRC check (truncated or corrupted)")
    msgs, errors = decoder().read()
    if errors:
        raise InputError(f"FIT file could not be read: {errors[0]}")
    recs = [m for m in msgs.get("record_mesgs", []) if m.get("timestamp") is not None]
    if not recs:
        raise InputError("FIT file has no timestamped records")

    def col(*names):
        out = np.full(len(recs), np.nan)
        for i, m in enumerate(recs):
            for n in names:
                v = m.get(n)
                if isinstance(v, (int, float)):
                    out[i] = float(v)
                    break
        return out

    df = pd.DataFrame({
        "time_utc": pd.to_datetime([m["timestamp"] for m in recs], utc=True),
        "speed_mps": col("enhanced_speed", "speed"),
        "altitude_m": col("enhanced_altitude", "altitude"),
        "hr_bpm": col("heart_rate"),
        "distance_m": col("distance"),
    })
    return df.sort_values("time_utc", kind="stable").drop_duplicates("time_utc", keep="last").reset_index(drop=True)


def grade_pct(t_s: np.ndarray, speed_mps: np.ndarray, altitude_m: np.ndarray, distance_m: np.ndarray | None = None,
              window_s: float = 10.0) -> np.ndarray:
    """Slope in % from altitude over distance, each smoothed over ``window_s`` (altimeters are noisy).

    Distance comes from the watch when it has it, else from integrating speed.
    """
    t = np.asarray(t_s, float)
    alt = np.asarray(altitude_m, float)
    if distance_m is None or not np.isfinite(distance_m).any():
        v = np.nan_to_num(np.asarray(speed_mps, float))
        dist = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])
    else:
        dist = pd.Series(distance_m).interpolate(limit_direction="both").to_numpy(float)
    ok = np.isfinite(alt)
    if ok.sum() < 2:
        return np.full(len(t), np.nan)
    alt = np.interp(t, t[ok], alt[ok])
    half = window_s / 2
    lo = np.searchsorted(t, t - half)
    hi = np.clip(np.searchsorted(t, t + half, side="right") - 1, 0, len(t) - 1)
    # Moving average over the window first: watch altitude comes in 0.2 m steps.
    c = np.concatenate([[0.0], np.cumsum(alt)])
    alt = (c[hi + 1] - c[lo]) / (hi - lo + 1)
    dd = dist[hi] - dist[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        g = 100.0 * (alt[hi] - alt[lo]) / dd
    g[dd < 2.0] = 0.0  # standing still: no slope to speak of
    return g


def align_watch(strides: pd.DataFrame, start: datetime, watch: pd.DataFrame, offset_s: float = 0.0,
                max_gap_s: float = 5.0) -> pd.DataFrame:
    """Per-stride ``speed_mps``, ``grade_pct``, ``hr_bpm`` from watch records, by wall-clock time.

    A stride takes the watch values interpolated at its mid-time; strides farther than ``max_gap_s``
    from any watch record get NaN. ``offset_s`` is added to the watch clock (if it is known to be off).
    """
    if start is None:
        raise InputError("session.json has no start_time: cannot align a watch file by time")
    base = pd.Timestamp(start.astimezone(timezone.utc))
    wt = (watch["time_utc"] - base).dt.total_seconds().to_numpy(float) + offset_s
    g = grade_pct(wt, watch["speed_mps"].to_numpy(float), watch["altitude_m"].to_numpy(float),
                  watch["distance_m"].to_numpy(float) if "distance_m" in watch else None)
    mid = 0.5 * (strides["t_start_s"].to_numpy(float) + strides["t_end_s"].to_numpy(float))
    near = np.abs(wt[np.clip(np.searchsorted(wt, mid), 0, len(wt) - 1)] - mid)
    near = np.minimum(near, np.abs(wt[np.clip(np.searchsorted(wt, mid) - 1, 0, len(wt) - 1)] - mid))
    out = pd.DataFrame(index=strides.index)
    for name, values in (("speed_mps", watch["speed_mps"].to_numpy(float)), ("grade_pct", g),
                         ("hr_bpm", watch["hr_bpm"].to_numpy(float))):
        ok = np.isfinite(values)
        col = np.interp(mid, wt[ok], values[ok]) if ok.sum() >= 1 else np.full(len(mid), np.nan)
        col[near > max_gap_s] = np.nan
        out[name] = col
    return out


def join_watch(session: Session, fit: bytes | str | Path, offset_s: float = 0.0) -> pd.DataFrame:
    """The session's strides with the watch columns joined (existing watch columns are replaced)."""
    watch = read_fit_records(fit)
    st = session.strides.drop(columns=[c for c in ("speed_mps", "grade_pct", "hr_bpm") if c in session.strides])
    aligned = align_watch(st, session.start, watch, offset_s)
    if not np.isfinite(aligned["speed_mps"]).any() and not np.isfinite(aligned["hr_bpm"]).any():
        raise InputError("the watch file does not overlap the session in time (check both clocks)")
    return pd.concat([st, aligned], axis=1)


def encode_watch_fit(start: datetime, t_s: np.ndarray, speed_mps: np.ndarray, altitude_m: np.ndarray,
                     hr_bpm: np.ndarray | None = None) -> bytes:
    """A minimal watch-style FIT activity (1 Hz records: enhanced_speed, enhanced_altitude, distance,
    heart_rate) with the SDK's Encoder; used to test and demonstrate the import."""
    from garmin_fit_sdk import Encoder

    t = np.asarray(t_s, float)
    v = np.asarray(speed_mps, float)
    dist = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])
    when = start.astimezone(timezone.utc)
    enc = Encoder()
    enc.write_mesg({"mesg_num": 0, "type": "activity", "manufacturer": "garmin", "product": 1, "serial_number": 42,
                    "time_created": when + timedelta(seconds=float(t[0]))})
    enc.write_mesg({"mesg_num": 21, "timestamp": when + timedelta(seconds=float(t[0])), "event": "timer",
                    "event_type": "start"})
    for i in range(len(t)):
        rec = {"mesg_num": 20, "timestamp": when + timedelta(seconds=float(t[i])), "enhanced_speed": float(v[i]),
               "enhanced_altitude": float(altitude_m[i]), "distance": float(dist[i])}
        if hr_bpm is not None:
            rec["heart_rate"] = int(round(float(hr_bpm[i])))
        enc.write_mesg(rec)
    end = when + timedelta(seconds=float(t[-1]))
    enc.write_mesg({"mesg_num": 21, "timestamp": end, "event": "timer", "event_type": "stop_all"})
    enc.write_mesg({"mesg_num": 18, "timestamp": end, "start_time": when + timedelta(seconds=float(t[0])),
                    "total_elapsed_time": float(t[-1] - t[0]), "total_timer_time": float(t[-1] - t[0]),
                    "sport": "running", "event": "session", "event_type": "stop", "message_index": 0})
    return bytes(enc.close())


def altitude_from_grade(t_s: np.ndarray, speed_mps: np.ndarray, grade_pct: np.ndarray, start_m: float = 100.0
                        ) -> np.ndarray:
    """Altitude, m, climbed along a path of known speed and grade (to make a watch file from a simulation)."""
    t = np.asarray(t_s, float)
    rise = np.asarray(speed_mps, float) * np.asarray(grade_pct, float) / 100.0
    return start_m + np.concatenate([[0.0], np.cumsum(0.5 * (rise[1:] + rise[:-1]) * np.diff(t))])
