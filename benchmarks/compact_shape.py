"""Compact mode's stride shape from the clip's own angles, against truth and against full mode.

    python benchmarks/compact_shape.py [--minutes M]

Per simulated session (the clip worn misaligned): the real firmware's fusion runs under the MicroPython unix
port on the raw samples (calibration on the first 3 s of standing, mounting yaw from its first 60 s of
running), then the host analyses the same samples three ways: full mode (accelerometer + gyro, the baseline
measured in the same run), compact mode (accelerometer + the firmware's angles, no gyro) and accelerometer
only. Printed per way: median and p95 |error| of each shape column against the simulator's truth strides,
over strides from 5 s after the firmware's yaw estimate, and the share of strides that have the column.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "host"))

from tests.firmware.test_fusion import run_firmware  # noqa: E402
from tiltguard import sim  # noqa: E402
from tiltguard.core.pipeline import analyze  # noqa: E402
from tiltguard.formats.raw import Recording, read_raw  # noqa: E402
from tiltguard.sim.score import match_nearest  # noqa: E402

COLS = ("tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg", "pelvic_drop_l_deg", "pelvic_drop_r_deg",
        "tilt_ic_deg")
SESSIONS = (("steady", 2, 15.0), ("mixed", 451, 8.0), ("intervals", 401, 20.0))   # (scenario, seed, misalign deg)


def one(scenario: str, seed: int, misalign: float, minutes: float, tmp: Path) -> dict[str, pd.DataFrame]:
    """Per-stride errors (estimate - truth) of each way, for strides after the firmware's yaw estimate."""
    res = sim.simulate(sim.preset(scenario, seed=seed, minutes=minutes, rate_hz=200, misalign_deg=misalign))
    folder = sim.write_session(res, tmp / f"{scenario}{seed}", gzip=False)
    est, out, _ = run_firmware(folder / "raw.csv", tmp / "est.bin", "lsm", (-1.0, 60.0))
    yaw_at = float(out.split("yaw_at")[1].split()[0])
    raw = read_raw(folder / "raw.csv")
    ang = np.full((len(raw.t_s), 3), np.nan)
    ang[est[:, 0]] = est[:, 1:] / 100.0
    truth = pd.read_csv(folder / "truth" / "strides.csv")
    ways = {"full (gyro on the host)": Recording(t_s=raw.t_s, acc_g=raw.acc_g, gyro_dps=raw.gyro_dps),
            "compact (the clip's angles)": Recording(t_s=raw.t_s, acc_g=raw.acc_g, angles_deg=ang),
            "accelerometer only": Recording(t_s=raw.t_s, acc_g=raw.acc_g)}
    errs = {}
    for name, rec in ways.items():
        st = analyze(rec).strides
        st = st[st.t_start_s >= yaw_at + 5.0]
        ip, it = match_nearest(st.t_start_s.to_numpy(), truth.t_start_s.to_numpy(), 0.05)
        e, t = st.iloc[ip].reset_index(drop=True), truth.iloc[it].reset_index(drop=True)
        errs[name] = pd.DataFrame({c: e[c].to_numpy(float) - t[c].to_numpy(float) for c in COLS})
    return errs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    a = ap.parse_args(argv)
    pooled: dict[str, list[pd.DataFrame]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario, seed, mis in SESSIONS:
            for name, e in one(scenario, seed, mis, a.minutes, Path(tmp)).items():
                pooled.setdefault(name, []).append(e)
    print(f"{len(SESSIONS)} simulated sessions of {a.minutes:g} min at 200 Hz ({', '.join(s[0] for s in SESSIONS)}); "
          "|estimate - truth| per stride, deg: median / p95 (share of strides with a value)")
    for name, parts in pooled.items():
        e = pd.concat(parts, ignore_index=True)
        cells = []
        for c in COLS:
            v = np.abs(e[c].to_numpy())
            ok = np.isfinite(v)
            cells.append(f"{c[:-4]} " + (f"{np.median(v[ok]):.2f} / {np.percentile(v[ok], 95):.2f} "
                                         f"({100 * ok.mean():.0f} %)" if ok.any() else "- (0 %)"))
        print(f"  {name}, {len(e)} strides: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
