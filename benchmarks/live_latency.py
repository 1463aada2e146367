"""Live pipeline latency and cost: ``python benchmarks/live_latency.py [SESSION] [--hop S]``.

Replays a recorded session (default: the bundled data/sim-demo-drift, 12 min at 200 Hz) through the live
pipeline as fast as possible and prints:

* stride latency: from the start of handling the frame whose arrival made a stride final to that stride's
  row being written (processing time; p50/p99, target < 50 ms). Also printed: how long after its end a
  stride becomes final (stream time; set by core.stream's margin, not by processing);
* buzz latency: from the start of handling the frame that made a drift alert final to the buzz command
  being written to the link (p50/p99, target < 200 ms);
* host CPU time per hour of 200 Hz streaming as a fraction of the hour (target < 1 %), next to a
  baseline measured in the same run: the same replay with decoding and logging only (no analysis).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _run(src: Path, hop_s: float, analyse: bool, speed: float | None = None) -> tuple[float, float, object]:
    from tiltguard.live.config import LiveConfig
    from tiltguard.live.pipeline import LiveSession
    from tiltguard.transport.replay import ReplayTransport

    cfg = LiveConfig(hop_s=hop_s)
    with tempfile.TemporaryDirectory() as tmp:
        s = LiveSession(Path(tmp) / "s", ReplayTransport(src, speed=speed), cfg, source="replay")
        if not analyse:
            s._drain_sync = lambda *a, **k: (s._pending.clear(), [])[1]  # decode + log only
            s.analyzer.finish = lambda: (_ for _ in ()).throw(__import__("tiltguard.errors").errors.InputError("off"))
        c0, w0 = time.process_time(), time.perf_counter()
        asyncio.run(s.run())
        return time.process_time() - c0, time.perf_counter() - w0, s


def pct(v, q):
    return float(np.percentile(np.asarray(v) * 1000.0, q)) if len(v) else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("session", nargs="?", default=str(ROOT / "data" / "sim-demo-drift"))
    ap.add_argument("--hop", type=float, default=5.0, help="core.stream hop_s (default 5)")
    ap.add_argument("--speed", type=float, default=40.0,
                    help="replay speed for the paced run, where frames arrive one by one (default 40)")
    a = ap.parse_args()
    src = Path(a.session)
    cpu_base, wall_base, _ = _run(src, a.hop, analyse=False)
    cpu, wall, s = _run(src, a.hop, analyse=True)
    cpu_paced, wall_paced, s_paced = _run(src, a.hop, analyse=True, speed=a.speed)
    dur_s = s.t_stream_s
    strides = s.analyzer.strides
    print(f"session: {src} ({dur_s / 60:.1f} min of samples, {s.rx_samples} samples), hop_s={a.hop:g}")
    print(f"stride latency (frame handled -> stride written), {len(s.latency_stride_s)} emitting frames: "
          f"p50 {pct(s.latency_stride_s, 50):.1f} ms, p99 {pct(s.latency_stride_s, 99):.1f} ms (target < 50 ms)")
    print(f"buzz latency (frame handled -> buzz written), {len(s.latency_buzz_s)} buzzes: "
          f"p50 {pct(s.latency_buzz_s, 50):.1f} ms, p99 {pct(s.latency_buzz_s, 99):.1f} ms (target < 200 ms)")
    if len(strides):
        print(f"strides become final {s.cfg.margin_s:g} s + up to hop_s after they end (core.stream margin; "
              f"next to a lost-packet gap up to stall_s = {s.analyzer.stall_s:g} s later)")
    per_hour = cpu / dur_s
    base_hour = cpu_base / dur_s
    print(f"host CPU per hour of 200 Hz streaming: {per_hour * 100:.2f} % of the hour "
          f"({cpu:.1f} s CPU for {dur_s:.0f} s; target < 1 %)")
    print(f"baseline in the same run, decode + log only: {base_hour * 100:.3f} % of the hour; "
          f"analysis costs {per_hour / max(base_hour, 1e-9):.1f}x the baseline")
    print(f"paced replay at {a.speed:g}x (frames arrive one at a time, as live): "
          f"{cpu_paced / s_paced.t_stream_s * 100:.2f} % of the hour; stride latency p50 "
          f"{pct(s_paced.latency_stride_s, 50):.1f} ms, p99 {pct(s_paced.latency_stride_s, 99):.1f} ms")
    print(f"wall time: {wall:.1f} s with analysis, {wall_base:.1f} s baseline, {wall_paced:.1f} s paced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
