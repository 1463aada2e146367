"""Write a simulated session folder: raw.csv[.gz], session.json and truth/ (docs/formats.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tiltguard.formats.raw import write_raw
from tiltguard.formats.session import ALERTS_COLUMNS, write_json_atomic, write_outputs, write_session_meta
from tiltguard.sim.engine import SimResult

START_TIME = "2026-01-01T07:00:00+00:00"   # fixed so that a seed reproduces the folder byte for byte


def truth_alerts(res: SimResult) -> pd.DataFrame:
    """The one true alert: anterior tilt drift reaching +3 deg (none without drift)."""
    c3 = res.drift.get("cross3_s")
    rows = [] if c3 is None else [{"t_s": c3, "kind": "anterior_tilt_drift", "value": 3.0,
                                   "baseline_deg": truth_baseline(res), "sent": ""}]
    return pd.DataFrame(rows, columns=ALERTS_COLUMNS)


def truth_baseline(res: SimResult) -> float:
    """Median stride-mean tilt of the running before any drift (warm-up included)."""
    s = res.strides
    onset = res.drift.get("onset_s")
    pre = s if onset is None else s[s.t_start_s < onset]
    return float(pre.tilt_mean_deg.median()) if len(pre) else float("nan")


def truth_summary(res: SimResult) -> dict:
    st, sd = res.steps, res.strides
    running = res.activity == 2
    dt = np.diff(res.t_s, append=res.t_s[-1])
    return {
        "duration_s": float(res.t_s[-1] - res.t_s[0]),
        "running_s": float(dt[running].sum()),
        "n_steps": int(len(st)), "n_strides": int(len(sd)),
        "cadence_spm": float(sd.cadence_spm.median()) if len(sd) else None,
        "gct_ms": float(st.gct_ms.median()) if len(st) else None,
        "tilt_baseline_deg": truth_baseline(res),
        "drift_onset_s": res.drift.get("onset_s"),
        "alerts": int(res.drift.get("cross3_s") is not None),
        "mounting": res.mounting,
        "gaps": res.gaps(),
        "simulated": True,
    }


def session_meta(res: SimResult) -> dict:
    cfg = res.config.to_dict()
    return {
        "start_time": START_TIME, "source": "simulated", "sample_rate_hz": float(res.config.rate_hz),
        "device": {"name": "tiltguard-sim", "firmware": "sim", "imu": "simulated 6-axis (+-16 g, +-2000 dps)"},
        "athlete": f"simulated runner (seed {res.config.seed})",
        "mode": "full" if res.gyro_dps is not None else "compact",
        "notes": "SIMULATED session with exact truth in truth/ (tiltguard.sim)",
        "simulated": True,
        "sim": {"config": cfg, **res.meta},
    }


def _write_csv_fast(path: Path, df: pd.DataFrame) -> None:
    """Large table as CSV through pyarrow (pandas' writer is ~15x slower), temp file then rename."""
    tmp = path.with_name(path.name + ".part")
    opts = pacsv.WriteOptions(quoting_style="none", include_header=False)
    with pa.OSFile(str(tmp), "wb") as out:
        out.write((",".join(df.columns) + "\n").encode())
        pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), out, write_options=opts)
    tmp.replace(path)


def write_session(res: SimResult, out_dir: str | Path, gzip: bool = True) -> Path:
    """Write the session folder and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = res.keep
    write_raw(out / ("raw.csv.gz" if gzip else "raw.csv"), t_s=res.t_s[k], acc_g=res.acc_g[k],
              gyro_dps=None if res.gyro_dps is None else res.gyro_dps[k],
              angles_deg=None if res.device_angles_deg is None else res.device_angles_deg[k])
    write_session_meta(out, session_meta(res))
    td = out / "truth"
    write_outputs(td, res.steps, res.strides, truth_alerts(res), truth_summary(res))
    # 0.001 deg and 0.1 mm are far below any accuracy target; keeps bundled sessions small
    samples = res.samples_df().round({"t_s": 6, "tilt_deg": 3, "obliquity_deg": 3, "rotation_deg": 3,
                                      "pos_up_m": 4, "speed_mps": 3, "grade_pct": 2})
    _write_csv_fast(td / "samples.csv", samples)
    write_json_atomic(td / "drift.json", res.drift)
    write_json_atomic(td / "mounting.json", res.mounting)
    return out


def stand_in_clip_angles(session_dir: str | Path, t_s: np.ndarray, noise_deg: float = 0.05,
                         seed: int = 0) -> np.ndarray | None:
    """(N, 3) [tilt, obliquity, rotation] deg at ``t_s``: a simulated session's true pelvic angles plus white
    noise, standing in for the clip's own angles (compact mode) where its fusion is not run; None when the
    folder has no ``truth/samples.csv``."""
    path = Path(session_dir) / "truth" / "samples.csv"
    if not path.is_file():
        return None
    tr = pd.read_csv(path, usecols=["t_s", "tilt_deg", "obliquity_deg", "rotation_deg"])
    ang = np.column_stack([np.interp(t_s, tr["t_s"], tr[c]) for c in ("tilt_deg", "obliquity_deg", "rotation_deg")])
    return ang + noise_deg * np.random.default_rng(seed).standard_normal(ang.shape)
