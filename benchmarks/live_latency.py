"""Live pipeline latency and cost: ``python benchmarks/live_latency.py [SESSION] [--hop S]``.

Replays a recorded session (default: the bundled data/sim-demo-drift, 12 min at 200 Hz) through the live
pipeline as fast as possible and prints:

* stride latency: from the arrival of the frame that holds a stride's last sample to that stride's metrics
  being given to the dashboard (``core.provisional``), p50/p99, target < 50 ms. At real time that is the
  time from the clip's notification burst that carries that frame to the burst whose samples let the stride
  be read (the closing contact's steep rise; usually the same burst), plus the processing time. Also printed:
  processing alone, how far provisional strides differ from the final ones, and when strides become final
  (``core.stream``'s margin: those feed the CSVs and the cues);
* buzz latency: from the start of handling the frame that made a drift alert final to the buzz command
  being written to the link (p50/p99, target < 200 ms);
* host CPU time per hour of 200 Hz streaming as a fraction of the hour (target < 1 %): as fast as possible,
  paced at ``--speed`` (frames in the clip's notification bursts, ``wire.NOTIFY_BURST_MS``) and at real
  time over ``--realtime-s`` seconds after a fast-forward, each next to baselines measured in the same run
  (decoding and logging only; the replay transport and event loop alone). Real time is the honest figure:
  between bursts the process sleeps, and waking costs CPU (and cold caches) that a faster replay hides. The pipeline's share is split, paced and at
  real time, into the provisional looks, the final analysis and the handling of each frame (clocks on
  ``ProvisionalStrides._look`` and ``StreamAnalyzer.feed``), and the machine's own wake-up tax is measured
  with a process that only sleeps one burst interval at a time.

The real-time figures are printed twice: for the session as recorded (with gyro: full-mode frames, 12 samples,
16.7 a second in bursts of three) and for its compact-mode copy (``--compact``, default on: accelerometer +
angles, 19 samples a frame, 10.5 a second in bursts of two; the clip's default mode). A simulated session's
copy takes its angles from ``truth/samples.csv`` plus 0.05 deg of noise, standing in for the clip's fusion
(the cost does not depend on the values).
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


def _run(src: Path, hop_s: float, analyse: bool | str, speed: float | None = None,
         transport=None, provisional: bool = True) -> tuple[float, float, object]:
    """One replay; analyse False: decode + log only; "transport": the replay and the event loop alone."""
    from tiltguard.live.config import LiveConfig
    from tiltguard.live.pipeline import LiveSession
    from tiltguard.transport.replay import ReplayTransport

    cfg = LiveConfig(hop_s=hop_s, provisional=provisional)
    with tempfile.TemporaryDirectory() as tmp:
        s = LiveSession(Path(tmp) / "s", transport or ReplayTransport(src, speed=speed), cfg, source="replay")
        if analyse == "transport":
            async def nothing(item):
                return None
            s._on_frame = nothing
        if analyse is not True:
            s._drain_sync = lambda *a, **k: (s._pending.clear(), [])[1]  # decode + log only
            s.analyzer.finish = lambda: (_ for _ in ()).throw(__import__("tiltguard.errors").errors.InputError("off"))
        c0, w0 = time.process_time(), time.perf_counter()
        asyncio.run(s.run())
        return time.process_time() - c0, time.perf_counter() - w0, s


def _fast_forward(src: Path, ff_s: float, settle_s: float = 10.0, stop_s: float | None = None):
    """A replay that delivers its first ``ff_s`` seconds of stream as fast as it can (the analyser calibrates),
    then paces the rest at real time (up to ``stop_s`` more). Its ``cpu`` is the process CPU time over the
    real-time stretch from ``settle_s`` after it starts to the last frame, ``stream_s`` the stream time that
    stretch covers."""
    from tiltguard.transport.replay import ReplayTransport

    class FastForward(ReplayTransport):
        cpu = stream_s = mark_cpu = float("nan")
        frames_after_mark = 0

        async def open(self):
            await super().open()
            p = self._pace
            t_rt = p[0] + ff_s                 # real time from here on
            self._t_mark = t_rt + settle_s
            keep = len(p) if stop_s is None else int(np.searchsorted(p, t_rt + stop_s))
            self._frames, self._pace = self._frames[:keep], np.maximum(p[:keep], t_rt)

        async def _run(self):
            mark, i = None, 0
            async for item in super()._run():
                if getattr(item, "kind", None) == "end" and mark is not None:
                    self.cpu = time.process_time() - mark[0]
                    self.stream_s = self._pace[-1] - mark[1]
                elif hasattr(item, "raw"):     # frame i (the bundled sessions have no damaged ones)
                    if mark is None and self._pace[i] >= self._t_mark:
                        mark = (time.process_time(), self._pace[i])
                        self.mark_cpu = mark[0]
                    self.frames_after_mark += mark is not None
                    i += 1
                yield item

    return FastForward(src, speed=1.0)


class _Clock:
    """CPU time spent in one method while installed (instrumentation for this benchmark only)."""

    def __init__(self, cls, name: str):
        self.cls, self.name, self.orig = cls, name, getattr(cls, name)
        self.calls: list[tuple[float, float]] = []    # (process time at the start, CPU s)
        orig, calls = self.orig, self.calls

        def timed(obj, *a, **k):
            c = time.process_time()
            try:
                return orig(obj, *a, **k)
            finally:
                calls.append((c, time.process_time() - c))

        setattr(cls, name, timed)

    def close(self) -> _Clock:
        setattr(self.cls, self.name, self.orig)
        return self

    def since(self, c0: float = -np.inf) -> tuple[int, float]:
        """Calls that started at process time >= c0, and their CPU s."""
        d = [x for c, x in self.calls if c >= c0]
        return len(d), float(sum(d))


def _clocks() -> tuple[_Clock, _Clock]:
    """Clocks on the provisional looks (one per stride) and the final analysis (one per hop)."""
    from tiltguard.core.provisional import ProvisionalStrides
    from tiltguard.core.stream import StreamAnalyzer

    return _Clock(ProvisionalStrides, "_look"), _Clock(StreamAnalyzer, "feed")


def _wake_tax(period_s: float, n: int = 100) -> tuple[float, float]:
    """CPU per wake-up of a process doing nothing else, us: sleeping with time.sleep, and in asyncio."""
    c = time.process_time()
    for _ in range(n):
        time.sleep(period_s)
    plain = (time.process_time() - c) / n

    async def loop():
        c = time.process_time()
        for _ in range(n):
            await asyncio.sleep(period_s)
        return (time.process_time() - c) / n

    return 1e6 * plain, 1e6 * asyncio.run(loop())


def pct(v, q):
    return float(np.percentile(np.asarray(v) * 1000.0, q)) if len(v) else float("nan")


def _agreement(s, final) -> None:
    """How far the provisional strides (all of them: the dashboard keeps only the last) are from the final."""
    prov = s.provisional_rows
    if not len(prov) or not len(final):
        return
    fe = final["t_end_s"].to_numpy(float)
    j = np.clip(np.searchsorted(fe, prov["t_end_s"].to_numpy(float)), 0, len(fe) - 1)
    jm = np.clip(j - 1, 0, len(fe) - 1)
    j = np.where(np.abs(fe[jm] - prov["t_end_s"]) < np.abs(fe[j] - prov["t_end_s"]), jm, j)
    ok = np.abs(fe[j] - prov["t_end_s"].to_numpy(float)) < 0.04
    p, f = prov[ok].reset_index(drop=True), final.iloc[j[ok]].reset_index(drop=True)
    parts = []
    for c, k in (("t_end_s", 1000), ("cadence_spm", 1), ("gct_l_ms", 1), ("tilt_mean_deg", 1),
                 ("tilt_rom_deg", 1), ("obliquity_rom_deg", 1), ("rotation_rom_deg", 1)):
        e = np.abs(p[c].to_numpy(float) - f[c].to_numpy(float)) * k
        parts.append(f"{c.replace('_s', '_ms') if k == 1000 else c} {np.nanmedian(e):.2f}/{np.nanpercentile(e, 95):.2f}")
    print(f"  provisional vs final ({ok.sum()} matched of {len(prov)}; median/p95 |diff|): " + ", ".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("session", nargs="?", default=str(ROOT / "data" / "sim-demo-drift"))
    ap.add_argument("--hop", type=float, default=5.0, help="core.stream hop_s (default 5, as live)")
    ap.add_argument("--speed", type=float, default=40.0,
                    help="replay speed for the paced run, where frames arrive in bursts, as live (default 40)")
    ap.add_argument("--realtime-s", type=float, default=90.0,
                    help="seconds of the session replayed at real time (1x) for the CPU figure (0: skip)")
    ap.add_argument("--ff-s", type=float, default=180.0,
                    help="stream seconds fast-forwarded first (the analyser calibrates), default 180")
    ap.add_argument("--no-compact", dest="compact", action="store_false",
                    help="skip the real-time run of the session's compact-mode copy")
    a = ap.parse_args()
    src = Path(a.session)
    cpu_base, wall_base, _ = _run(src, a.hop, analyse=False)
    cpu, wall, s = _run(src, a.hop, analyse=True)
    looks, finals = _clocks()
    cpu_paced, wall_paced, s_paced = _run(src, a.hop, analyse=True, speed=a.speed)
    looks.close(), finals.close()
    cpu_link, _, _ = _run(src, a.hop, analyse="transport", speed=a.speed)
    dur_s = s.t_stream_s
    strides = s.analyzer.strides
    print(f"session: {src} ({dur_s / 60:.1f} min of samples, {s.rx_samples} samples), hop_s={a.hop:g}")
    print(f"stride latency at real time (arrival of the frame holding a stride's last sample -> stride on the "
          f"dashboard), {_latency_text(s_paced)} ({len(strides)} final strides; target < 50 ms)")
    _agreement(s_paced, strides)
    print(f"final strides (CSVs, cues): written {pct(s.latency_final_s, 50):.1f} ms (p50) after the frame that "
          f"made them final, {s.cfg.margin_s:g} s + up to hop_s after they end")
    print(f"buzz latency (frame handled -> buzz written), {len(s.latency_buzz_s)} buzzes: "
          f"p50 {pct(s.latency_buzz_s, 50):.1f} ms, p99 {pct(s.latency_buzz_s, 99):.1f} ms (target < 200 ms)")
    per_hour = cpu / dur_s
    base_hour = cpu_base / dur_s
    print(f"host CPU per hour of 200 Hz streaming: {per_hour * 100:.2f} % of the hour "
          f"({cpu:.1f} s CPU for {dur_s:.0f} s; target < 1 %)")
    print(f"baseline in the same run, decode + log only: {base_hour * 100:.3f} % of the hour; "
          f"analysis costs {per_hour / max(base_hour, 1e-9):.1f}x the baseline")
    paced, link = cpu_paced / s_paced.t_stream_s * 100, cpu_link / s_paced.t_stream_s * 100
    print(f"paced replay at {a.speed:g}x (frames arrive in bursts, as live): {paced:.2f} % of the hour "
          f"(target < 1 %), {s_paced.provisional.looks if s_paced.provisional else 0} provisional looks; of which "
          f"the replay transport and event loop alone (standing in for the clip and the radio) {link:.2f} %, "
          f"the host pipeline {paced - link:.2f} %")
    paced_parts = _split(cpu_paced - cpu_link, s_paced.t_stream_s, s_paced.decoder.counters.frames_ok, looks, finals)
    print("  the pipeline's share: " + _parts_text(paced_parts))
    if a.realtime_s > 0:
        print("as recorded (full-mode frames):")
        _realtime(src, a.hop, a.ff_s, a.realtime_s, paced_parts)
        if a.compact:
            with tempfile.TemporaryDirectory() as tmp:
                comp = _compact_copy(src, Path(tmp))
                if comp is not None:
                    print("compact mode (the clip's default; no gyro, the clip's angles give the stride shape):")
                    _paced_compact(comp, a.hop, a.speed)
                    _realtime(comp, a.hop, a.ff_s, a.realtime_s, None)
    print(f"wall time: {wall:.1f} s with analysis, {wall_base:.1f} s baseline, {wall_paced:.1f} s paced")
    return 0


def _split(cpu_s: float, stream_s: float, frames: int, looks: _Clock, finals: _Clock,
           c0: float = -np.inf) -> dict:
    """The pipeline's CPU (the run's minus its transport + event-loop baseline) as % of the hour: the
    provisional looks, the final analysis and, the rest, the handling of each frame (us a frame)."""
    n_look, look_s = looks.since(c0)
    _, final_s = finals.since(c0)
    rest_s = cpu_s - look_s - final_s
    return {"looks": 100 * look_s / stream_s, "n_looks": n_look, "look_ms": 1000 * look_s / max(n_look, 1),
            "final": 100 * final_s / stream_s, "frames": 100 * rest_s / stream_s,
            "frame_us": 1e6 * rest_s / max(frames, 1)}


def _parts_text(p: dict) -> str:
    return (f"provisional looks {p['looks']:.2f} % ({p['n_looks']} looks, {p['look_ms']:.2f} ms each), final analysis "
            f"{p['final']:.2f} %, the handling of each frame {p['frames']:.2f} % ({p['frame_us']:.0f} us a frame)")


def _paced_compact(src: Path, hop_s: float, speed: float) -> None:
    """Stride latency and CPU of the compact copy paced at ``speed`` (two frames a burst, 190 ms apart)."""
    cpu, _, s = _run(src, hop_s, analyse=True, speed=speed)
    print(f"  stride latency, {_latency_text(s)}; paced at {speed:g}x {100 * cpu / s.t_stream_s:.2f} % of the hour")
    _agreement(s, s.analyzer.strides)


def _latency_text(s) -> str:
    """Stride latency at real time from a paced run's ``stride_timing``: the wait for the notification burst
    whose samples let the stride be read (from the arrival of the burst holding its last sample: a clip sends
    frames in bursts, ``replay.notify_time_s``; frame ends are stream times from the first sample, the zero
    of a re-encoded CSV's bursts) + processing."""
    from tiltguard.transport.replay import notify_time_s

    tim = np.array(s.stride_timing).reshape(-1, 5)
    held, got = notify_time_s(tim[:, 2]), notify_time_s(tim[:, 3])
    real = (got - held) + tim[:, 4]
    same = float(np.mean(got == held) * 100) if len(tim) else float("nan")
    return (f"{len(tim)} provisional strides: p50 {pct(real, 50):.1f} ms, p99 {pct(real, 99):.1f} ms; "
            f"read from the burst holding the stride's last sample: {same:.0f} %; processing alone p50 "
            f"{pct(tim[:, 4], 50):.1f} ms, "
            f"p99 {pct(tim[:, 4], 99):.1f} ms; samples needed after t_end p50 {pct(tim[:, 1] - tim[:, 0], 50):.0f} ms")


def _compact_copy(src: Path, tmp: Path) -> Path | None:
    """The session as the clip sends it in compact mode: accelerometer + angles, no gyro (None: no angles
    to be had: neither angle columns nor a simulator's truth)."""
    from tiltguard.formats.raw import Recording, read_raw, write_raw
    from tiltguard.sim.io import stand_in_clip_angles

    raw = read_raw(next(p for p in (src / "raw.csv.gz", src / "raw.csv", src) if p.is_file()))
    ang = raw.angles_deg if raw.angles_deg is not None else stand_in_clip_angles(src, raw.t_s)
    if ang is None:
        return None
    return write_raw(tmp / "compact.csv", Recording(t_s=raw.t_s, acc_g=raw.acc_g, angles_deg=ang))


def _realtime(src: Path, hop_s: float, ff_s: float, run_s: float, paced: dict | None) -> None:
    """CPU at real time, the way a run feels it: the process sleeps between bursts (190 ms apart), and on
    this kind of machine every wake-up costs CPU and cold caches. Baselines in the same run, over the same
    stretch: the replay transport alone, and with the live session's event loop handing frames to nothing;
    what a wake-up costs a process that does nothing else. The pipeline's share is split as when paced."""
    pipe = _fast_forward(src, ff_s, stop_s=run_s)
    looks, finals = _clocks()
    _, _, s = _run(src, hop_s, analyse=True, transport=pipe)
    looks.close(), finals.close()
    base_s = min(run_s, 30.0)
    loop = _fast_forward(src, ff_s, stop_s=base_s)
    _run(src, hop_s, analyse="transport", transport=loop)
    bare = _fast_forward(src, ff_s, stop_s=base_s)
    final_only = _fast_forward(src, ff_s, stop_s=base_s)
    _run(src, hop_s, analyse=True, transport=final_only, provisional=False)

    async def drain():
        async with bare:
            async for _ in bare.frames():
                pass

    asyncio.run(drain())
    total, link, radio = (100 * x.cpu / x.stream_s for x in (pipe, loop, bare))
    given = [r for r in s.stride_timing if r[0] >= ff_s]
    print(f"real time (1x, {pipe.stream_s:.0f} s from {ff_s:g} s on, {len(given)} provisional strides): "
          f"host CPU {total:.2f} % of the hour (target < 1 %)")
    print(f"  baselines over {bare.stream_s:.0f} s of the same stretch: the replay transport alone (standing in "
          f"for the clip and the radio) {radio:.2f} %, with the session's event loop handing each frame to nothing "
          f"{link:.2f} %; the pipeline's own work {total - link:.2f} %")
    print(f"  with [live] provisional = false (no per-stride dashboard rows; CSVs, summary and cues unchanged), "
          f"over the same {final_only.stream_s:.0f} s: {100 * final_only.cpu / final_only.stream_s:.2f} %")
    rt = _split(pipe.cpu - link / 100 * pipe.stream_s, pipe.stream_s, pipe.frames_after_mark, looks, finals,
                pipe.mark_cpu)
    print(f"  the pipeline's share: {_parts_text(rt)}" + ("" if paced is None else
          f"; when paced a look took {paced['look_ms']:.2f} ms and a frame {paced['frame_us']:.0f} us"))
    gaps = np.diff(pipe._pace[-200:])
    frame_s = float(np.median(gaps[gaps > 0]))     # between bursts (frames of one burst come together)
    plain_us, loop_us = _wake_tax(frame_s)
    print(f"  this machine's wake-up tax, a process doing nothing but sleep {frame_s * 1000:.0f} ms at a time: "
          f"{plain_us:.0f} us CPU per wake-up (time.sleep), {loop_us:.0f} us (asyncio), i.e. "
          f"{100 * loop_us * 1e-6 / frame_s:.2f} % of the hour at one wake-up per burst")


if __name__ == "__main__":
    sys.exit(main())
