"""How fast `tiltguard download` moves a logged run, and what bounds it.

Writes one compact 200 Hz run of MINUTES with the firmware's own log.py (tests/e2e/download_make_log.py),
then times, median of repeats:
  host_only  the host side alone (decode, split, verify, write stream.tgl + session.json) against the
             in-process stand-in of tests/e2e/test_download_standin.py: no link limit
  firmware   the real firmware (firmware/main.py, MicroPython unix port) over a pseudo-terminal
and prints samples/s, how many times faster than real time (200 Hz), and firmware/host_only.

    python benchmarks/coach_download.py [--minutes 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.test_download import FirmwareOnPty, RunSpec, write_log  # noqa: E402
from tests.e2e.test_download_standin import StandIn  # noqa: E402
from tiltguard.coach import download as dl  # noqa: E402
from tiltguard.protocol import wire as w  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    n = int(a.minutes * 60 * 200)
    vals = np.random.default_rng(1).integers(-3000, 3000, (n, 6)).astype("<i2")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_log(tmp / "log", [RunSpec(0, 1_000_000, w.MODE_COMPACT, vals)], tmp / "spec.bin")
        quiet = dict(analyse_runs=False, echo=lambda s: None)

        def host_only():
            shutil.rmtree(tmp / "h", ignore_errors=True)
            dl.download(dl.SerialLink("standin", ser=StandIn([(0, 1_000_000, vals)], t_now_us=500_000)),
                        tmp / "h", **quiet)

        fw = FirmwareOnPty(tmp, tmp / "log")
        try:
            def firmware():
                shutil.rmtree(tmp / "f", ignore_errors=True)
                link = dl.SerialLink(fw.path)
                try:
                    res = dl.download(link, tmp / "f", **quiet)
                finally:
                    link.close()
                assert res.new_runs[0].samples == n

            t_host = statistics.median(timed(host_only) for _ in range(a.repeats))
            t_fw = statistics.median(timed(firmware) for _ in range(a.repeats))
        finally:
            fw.close()
    print(f"run: {n} compact samples ({a.minutes:g} min at 200 Hz), median of {a.repeats}")
    for name, t in (("host_only", t_host), ("firmware", t_fw)):
        print(f"{name:10s} {t:7.2f} s  {n / t:9.0f} samples/s  {n / t / 200:6.1f}x real time")
    print(f"firmware / host_only: {t_fw / t_host:.1f}x (the clip's link pacing is the bound when > 1)")


if __name__ == "__main__":
    main()
