"""Simulator speed: a 60-minute 200 Hz session, in memory and written to a folder.

Prints the median of a few runs in seconds and as a ratio to a single numpy pass (``np.copy``) over the
same (N, 7) sample array measured in the same run. Usage: ``python benchmarks/sim_speed.py [--minutes 60]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from tiltguard.sim import preset, simulate, write_session


def timed(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate-hz", type=float, default=200.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = preset("mixed", seed=1, minutes=args.minutes, rate_hz=args.rate_hz, loss=0.01, misalign_deg=10)
    t_sim, res = timed(lambda: simulate(cfg), args.repeat)
    arr = np.column_stack([res.t_s, res.acc_g, res.gyro_dps])
    t_copy, _ = timed(lambda: np.copy(arr), 20)
    with tempfile.TemporaryDirectory() as d:
        t_write, _ = timed(lambda: write_session(res, d), 1)
    n = len(res.t_s)
    print(f"session: {args.minutes:g} min at {args.rate_hz:g} Hz, {n} samples, {len(res.steps)} running steps")
    print(f"simulate (body + sensor + truth), median of {args.repeat}: {t_sim:.2f} s "
          f"= {t_sim / t_copy:,.0f} x one np.copy pass ({t_copy * 1e3:.2f} ms), "
          f"{n / t_sim / 1e6:.2f} M samples/s")
    print(f"write_session (raw.csv.gz + truth/): {t_write:.2f} s")


if __name__ == "__main__":
    main()
