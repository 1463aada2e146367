"""``tiltguard simulate``: write a simulated session folder with exact truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tiltguard.errors import InputError
from tiltguard.sim.config import SCENARIOS, SimConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="session folder to write")
    p.add_argument("--minutes", default="10", help="session length in minutes (default 10)")
    p.add_argument("--seed", default="0", help="random seed (default 0)")
    p.add_argument("--rate-hz", default="200", help="sample rate, 50-1000 Hz (default 200)")
    p.add_argument("--scenario", default="steady", help=f"preset: {', '.join(SCENARIOS)} (default steady)")
    p.add_argument("--speed", default=None, help="base running speed, m/s (default: drawn from the seed)")
    p.add_argument("--drift-deg", default=None, help="fatigue drift of anterior tilt, deg (0 = none)")
    p.add_argument("--drift-onset-s", default=None, help="drift onset, s from start")
    p.add_argument("--drift-rate", default=None, help="drift rate, deg/min")
    p.add_argument("--misalign-deg", default="0", help="mounting misalignment angle about a random axis, deg")
    p.add_argument("--upside-down", action="store_true", help="clip worn upside down")
    p.add_argument("--no-gyro", action="store_true", help="accelerometer-only recording")
    p.add_argument("--angles", action="store_true", help="add device-computed angle columns")
    p.add_argument("--loss", default="0", help="fraction of samples lost in packet gaps (e.g. 0.02)")
    p.add_argument("--knocks", default="0", help="bumps beyond full scale per minute")
    p.add_argument("--standing-s", default="15", help="standing calibration at the start, s")
    p.add_argument("--clean", action="store_true", help="no sensor errors (noise, bias, quantisation, jitter)")
    p.add_argument("--no-gzip", action="store_true", help="write raw.csv instead of raw.csv.gz")


def _num(value, name: str, kind=float):
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"--{name}: {value!r} is not a{'n integer' if kind is int else ' number'}") from None


def config_from_args(args) -> SimConfig:
    return SimConfig(
        minutes=_num(args.minutes, "minutes"), seed=_num(args.seed, "seed", int),
        rate_hz=_num(args.rate_hz, "rate-hz"), scenario=args.scenario, speed_mps=_num(args.speed, "speed"),
        drift_deg=_num(args.drift_deg, "drift-deg"), drift_onset_s=_num(args.drift_onset_s, "drift-onset-s"),
        drift_rate_deg_per_min=_num(args.drift_rate, "drift-rate"),
        misalign_deg=_num(args.misalign_deg, "misalign-deg"), upside_down=args.upside_down,
        gyro=not args.no_gyro, angles=args.angles, loss=_num(args.loss, "loss"),
        knocks_per_min=_num(args.knocks, "knocks"), standing_s=_num(args.standing_s, "standing-s"),
        clean=args.clean,
    ).validate()


def run(args) -> int:
    from tiltguard.sim.engine import simulate
    from tiltguard.sim.io import write_session

    cfg = config_from_args(args)
    if cfg.speed_mps is not None and not (2.0 <= cfg.speed_mps <= 7.0):
        raise InputError(f"--speed must be within 2-7 m/s, got {cfg.speed_mps:g}")
    if cfg.standing_s < 0:
        raise InputError("--standing-s must not be negative")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    t0 = time.perf_counter()
    res = simulate(cfg)
    write_session(res, out, gzip=not args.no_gzip)
    d = res.drift
    drift = "none" if d.get("onset_s") is None else (
        f"{d['magnitude_deg']:.1f} deg from {d['onset_s']:.0f} s, +3 deg at "
        + ("never" if d.get("cross3_s") is None else f"{d['cross3_s']:.0f} s"))
    print(f"simulated {cfg.minutes:g} min at {cfg.rate_hz:g} Hz ({cfg.scenario}, seed {cfg.seed}): "
          f"{len(res.steps)} running steps, {len(res.strides)} strides, {int((~res.keep).sum())} samples lost, "
          f"drift {drift} -> {out} ({time.perf_counter() - t0:.1f} s)")
    return 0
