"""How long `tiltguard trends` takes over 1,000 session folders (target: under a minute).

Generates N small synthetic sessions (50 athletes by default, 10-minute runs, summary.json without asymmetry so
every session's strides.csv is read too: the slow path) in a temp folder, then times, median of repeats:
  baseline   json.load of every summary.json and session.json (the least any tool must do)
  summarise  trends table (tiltguard.coach.trends.summarise)
  full       trends.csv + trends.html (what `tiltguard trends DIR -o OUT` does)

    python benchmarks/coach_trends.py [--sessions 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tiltguard.coach.synthetic import make_session, start_plus
from tiltguard.coach.trends import find_sessions, summarise, write_trends


def _make(args):
    root, i, athletes = args
    a = i % athletes
    make_session(Path(root) / f"athlete{a:02d}" / f"run{i:04d}", athlete=f"athlete {a:02d}", seed=i,
                 start_time=start_plus("2026-01-01T07:00:00+00:00", i // athletes), duration_s=600,
                 baseline_deg=10 + (a % 20) * 0.5, drift_onset_s=(200 + (i * 7) % 300) if i % 3 else None)


def baseline(root: Path) -> int:
    n = 0
    for d in find_sessions(root):
        for name in ("summary.json", "session.json"):
            with open(d / name, "rb") as fh:
                json.load(fh)
        n += 1
    return n


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--athletes", type=int, default=50, help="athletes sharing the sessions (a club)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="coach-trends-") as tmp:
        root = Path(tmp) / "club"
        t = time.perf_counter()
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as ex:
            list(ex.map(_make, [(str(root), i, args.athletes) for i in range(args.sessions)], chunksize=20))
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        print(f"generated {args.sessions} sessions of {args.athletes} athletes ({size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        out = Path(tmp) / "out"
        b, _ = timed(lambda: baseline(root), args.repeats)
        s, _ = timed(lambda: summarise(root), args.repeats)
        f, runs = timed(lambda: write_trends(root, out), args.repeats)
        n = len(summarise(root))
        print(f"sessions summarised        : {n}")
        print(f"baseline (json.load only)  : median {b:.2f} s")
        print(f"summarise (trends table)   : median {s:.2f} s  ({s / b:.1f}x baseline)")
        print(f"full (trends.csv + .html)  : median {f:.2f} s  ({f / b:.1f}x baseline)  runs "
              + ", ".join(f"{x:.2f}" for x in runs))
        print(f"target 60 s for 1,000      : {'met' if f * 1000 / max(n, 1) < 60 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
