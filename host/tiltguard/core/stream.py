"""Incremental analysis: feed blocks of samples in order, get steps, strides and alerts once final.

:class:`StreamAnalyzer` runs the batch functions (``core.pipeline``) on a sliding window:

* until the calibration window is complete (the stance and the first ``forward_window_s`` of running,
  see ``core.align``) it only buffers; then it estimates the mounting exactly as the batch call does;
* every ``hop_s`` it analyses the last ``history_s + margin_s + hop_s`` seconds and emits the steps and
  strides that end more than ``margin_s`` before the newest sample. The filters' memory is far shorter
  than the margin, so what is emitted equals the batch result on the whole session (within floating
  tolerance); ``tests/core/test_stream.py`` checks it;
* strides go through the same :class:`~tiltguard.core.drift.DriftDetector` as in the batch call, so the
  alerts are identical too; each final stride's 0-100 % angle curve is kept (float32), so ``finish()``
  returns the batch call's early/late curves as well;
* lost packets: orientation detrends each gap-free stretch as a whole, so results within the tilt
  low-pass's reach of the last gap wait until the stretch after it ends (the next gap), at most
  ``stall_s``.

Latency: a step is final ``margin_s`` (default 40 s) after it happened; the live path shows provisional
values earlier if it wants them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tiltguard.core import activity as act
from tiltguard.core.align import Mounting, calibration_window, estimate_mounting, find_gaps, gap_list
from tiltguard.core.drift import DriftDetector, alerts_frame
from tiltguard.core.kinematics import shape_missing
from tiltguard.core.pipeline import (NOMINAL_RATE_SAMPLES, Analysis, AnalysisConfig, analyze, kinematics,
                                     mask_unavailable, nominal_rate, summarize)
from tiltguard.errors import InputError
from tiltguard.formats.raw import Recording
from tiltguard.formats.session import STEPS_COLUMNS, STRIDES_COLUMNS


@dataclass
class StreamUpdate:
    """What one :meth:`StreamAnalyzer.feed` call made final."""

    steps: pd.DataFrame
    strides: pd.DataFrame
    alerts: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(len(self.steps) or len(self.strides) or self.alerts)


class _Buffer:
    """Growable sample arrays with cheap trimming at the front."""

    def __init__(self):
        self.blocks: list[tuple] = []
        self.t = np.zeros(0)
        self.acc = np.zeros((0, 3))
        self.gyro: np.ndarray | None = None
        self.angles: np.ndarray | None = None

    def append(self, t, acc, gyro, angles) -> None:
        self.blocks.append((t, acc, gyro, angles))

    def consolidate(self) -> None:
        if not self.blocks:
            return
        parts = [(self.t, self.acc, self.gyro, self.angles)] + self.blocks
        self.blocks = []
        self.t = np.concatenate([p[0] for p in parts])
        self.acc = np.concatenate([p[1] for p in parts])
        for k, name in ((2, "gyro"), (3, "angles")):
            arrs = [p[k] for p in parts if len(p[0])]
            if all(a is None for a in arrs):
                setattr(self, name, None)
                continue
            arrs = [np.full((len(p[0]), 3), np.nan) if p[k] is None else p[k] for p in parts if len(p[0])]
            setattr(self, name, np.concatenate(arrs))

    def trim_before(self, t0: float) -> None:
        i = int(np.searchsorted(self.t, t0))
        if i > 0:
            self.t, self.acc = self.t[i:], self.acc[i:]
            self.gyro = None if self.gyro is None else self.gyro[i:]
            self.angles = None if self.angles is None else self.angles[i:]

    def recording(self, t0: float = -np.inf, end: int | None = None) -> Recording:
        i = int(np.searchsorted(self.t, t0))
        j = len(self.t) if end is None else end
        return Recording(t_s=self.t[i:j], acc_g=self.acc[i:j],
                         gyro_dps=None if self.gyro is None else self.gyro[i:j],
                         angles_deg=None if self.angles is None else self.angles[i:j])


class StreamAnalyzer:
    """Incremental twin of :func:`tiltguard.core.pipeline.analyze`.

    Parameters
    ----------
    config : the same :class:`AnalysisConfig` as the batch call.
    margin_s : how long after the newest sample a result becomes final, s.
    history_s : context kept before the oldest non-final result, s.
    hop_s : re-analyse after at least this much new data, s.
    lookback_s : how far before the window a gap is looked for to start the window on, s.
    stall_s : longest wait for the gap-free stretch after a gap to end before results near that gap
        are emitted anyway, s (see :meth:`_hold_at_open_stretch`).
    """

    def __init__(self, config: AnalysisConfig | None = None, *, margin_s: float = 40.0,
                 history_s: float = 30.0, hop_s: float = 5.0, lookback_s: float = 120.0,
                 stall_s: float = 90.0):
        self.config = config or AnalysisConfig()
        self.stall_s = stall_s
        self.margin_s, self.history_s, self.hop_s = margin_s, history_s, hop_s
        self.lookback_s = lookback_s
        self.buf = _Buffer()
        self.fs_hz: float | None = None
        self.mounting: Mounting | None = None
        self.first_run_s: float | None = None
        self.detector = DriftDetector(self.config.drift)
        self.final_s = -np.inf           # everything before this is emitted
        self._stride_from = -np.inf      # next stride to emit starts at or after this
        self._step_from = -np.inf
        self._last_run_t = -np.inf
        self._t_first: float | None = None
        self._t_last = -np.inf
        self._since_run = 0.0
        self._n_new = 0.0
        self._steps: list[pd.DataFrame] = []
        self._strides: list[pd.DataFrame] = []
        self._alerts: list[dict] = []
        self._curve_rows: list[np.ndarray] = []   # (n, 101, 3) float32 stride curves, as strides become final
        self._activity = np.zeros(len(act.NAMES))
        self._gaps: list[list[float]] = []
        self._meta: dict = {}
        self._done: Analysis | None = None

    # ------------------------------------------------------------------ input
    def feed(self, t_s, acc_g, gyro_dps=None, angles_deg=None) -> StreamUpdate:
        """Add a block of samples (device frame, in time order); returns what became final."""
        if self._done is not None:
            raise InputError("stream already finished")
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        if len(t) == 0:
            return self._empty()
        acc = np.asarray(acc_g, dtype=np.float64).reshape(len(t), 3)
        if np.any(np.diff(t) <= 0) or t[0] <= self._t_last:
            raise InputError(f"stream samples must have increasing t_s (got {t[0]:g} after {self._t_last:g})")
        gyro = None if gyro_dps is None else np.asarray(gyro_dps, dtype=np.float64).reshape(len(t), 3)
        ang = None if angles_deg is None else np.asarray(angles_deg, dtype=np.float64).reshape(len(t), 3)
        if self._t_first is None:
            self._t_first = float(t[0])
        self._n_new += float(t[-1] - max(self._t_last, t[0]))
        self._t_last = float(t[-1])
        self.buf.append(t, acc, gyro, ang)
        if self._n_new < self.hop_s:
            return self._empty()
        self._n_new = 0.0
        self.buf.consolidate()
        if self.mounting is None and not self._calibrate():
            return self._empty()
        return self._process(self._t_last - self.margin_s)

    def finish(self) -> Analysis:
        """End of session: emit everything left and return all outputs (like the batch call)."""
        if self._done is not None:
            return self._done
        self.buf.consolidate()
        if len(self.buf.t) < 2 and self._t_first is None:
            raise InputError("stream ended before any samples arrived")
        if self.mounting is None:
            # never calibrated on the fly: the whole session is still buffered, so this is the batch call
            res = analyze(self.buf.recording(), self.config)
            self._done = res
            self.detector = res.detector
            return res
        self._process(np.inf)
        # still periods after the last running are standing, as in the batch call
        self._activity[act.STANDING] += self._since_run
        self._activity[act.STOPPED] -= self._since_run
        steps, strides = self.steps, self.strides
        alerts = alerts_frame(self._alerts)
        duration = self._t_last - (self._t_first or 0.0)
        activity_s = {n: round(float(s), 2) for n, s in zip(act.NAMES, self._activity)}
        summary = summarize(self._kin_meta_stub(), steps, strides, alerts, self.detector, self.mounting,
                            activity_s=activity_s, duration_s=duration, gaps=self._gaps)
        self._done = Analysis(steps=steps, strides=strides, alerts=alerts, summary=summary,
                              curves=self._curves() if self.config.curves else None,
                              kinematics=None, mounting=self.mounting, detector=self.detector)
        return self._done

    # ------------------------------------------------------------------ results so far
    @property
    def steps(self) -> pd.DataFrame:
        return _cat(self._steps, STEPS_COLUMNS)

    @property
    def strides(self) -> pd.DataFrame:
        return _cat(self._strides, STRIDES_COLUMNS)

    @property
    def alerts(self) -> pd.DataFrame:
        return alerts_frame(self._alerts)

    # ------------------------------------------------------------------ internals
    def _empty(self) -> StreamUpdate:
        # most feeds make nothing final: shared empty tables (read-only; building one costs milliseconds)
        return StreamUpdate(_EMPTY["steps"], _EMPTY["strides"], [])

    def _calibrate(self) -> bool:
        b = self.buf
        if len(b.t) <= NOMINAL_RATE_SAMPLES:
            return False
        fs = nominal_rate(b.t)
        oc = self.config.orientation
        codes = act.classify(np.nan_to_num(b.acc), fs, oc.activity)
        stand, run = calibration_window(b.t, codes, fs, oc.align)
        if len(run) < int(oc.align.forward_window_s * fs):
            return False
        if b.t[run[-1]] > self._t_last - self.margin_s:   # labels there are not final yet
            return False
        self.fs_hz = fs
        self.first_run_s = float(b.t[run[0]])
        self.mounting = estimate_mounting(b.t, b.acc, b.gyro, fs, codes, oc.align)
        return True

    def _process(self, final_s: float) -> StreamUpdate:
        b = self.buf
        start = max(self.final_s, self._t_first) - self.history_s
        # orientation treats each gap-free stretch as a whole: start the window at the beginning of one
        # (right after a gap, as the batch call sees it) whenever a gap lies within the look-back
        i0 = int(np.searchsorted(b.t, start))
        lo_i = int(np.searchsorted(b.t, start - self.lookback_s))
        if i0 > lo_i:
            gi = find_gaps(b.t[lo_i: i0 + 1], self.fs_hz, self.config.orientation.align.gap_factor)
            if len(gi):
                start = float(b.t[lo_i + gi[-1]])
        end_i = len(b.t)
        if np.isfinite(final_s):
            # likewise end the window at the last gap, so that no gap-free stretch is cut in two
            j0 = int(np.searchsorted(b.t, final_s))
            gi = find_gaps(b.t[j0:], self.fs_hz, self.config.orientation.align.gap_factor)
            if len(gi):
                end_i = j0 + int(gi[-1])
                final_s = min(final_s, float(b.t[end_i - 1]) - self.margin_s)
            else:
                final_s = self._hold_at_open_stretch(final_s, j0)
            if final_s <= self.final_s:
                return self._empty()
        rec = b.recording(start, end_i)
        if len(rec.t_s) < 2:
            return self._empty()
        from tiltguard.core import events, metrics

        kin, _ = kinematics(rec, self.config, self.mounting, self.fs_hz, self.first_run_s)
        self._meta = kin.meta
        ev = events.detect_steps(kin)
        grid = events.uniform_grid(kin)
        steps = metrics.step_table(kin, ev, grid)
        strides = metrics.stride_table(kin, ev, grid)
        strides = mask_unavailable(kin, strides)
        lo = self.final_s
        # an event seen again in a later window may move by a rounding error: the "from" marks sit
        # half a shortest step / stride past the last emitted one
        new_steps = steps[(steps["t_ic_s"] >= self._step_from) & (steps["t_ic_s"] < final_s)]
        new_strides = strides[(strides["t_start_s"] >= self._stride_from) & (strides["t_end_s"] < final_s)]
        if len(new_steps):
            self._step_from = float(new_steps["t_ic_s"].iloc[-1]) + 0.1
        if len(new_strides):
            self._stride_from = float(new_strides["t_start_s"].iloc[-1]) + 0.2
        alerts = self.detector.feed_table(new_strides)
        if self.config.curves and len(new_strides):
            from tiltguard.core.curves import stride_curve_rows
            t0, t1 = new_strides["t_start_s"].to_numpy(float), new_strides["t_end_s"].to_numpy(float)
            rows = stride_curve_rows(grid, t0, t1)
            rows[shape_missing(kin, t0, t1)] = np.nan
            self._curve_rows.append(rows.astype(np.float32))
        # bookkeeping over the newly final span
        t = kin.t_s
        span = (t >= lo) & (t < final_s)
        if span.any():
            codes = kin.activity[span]
            ts = t[span]
            dt = np.diff(ts, append=min(final_s, ts[-1] + 1.0 / self.fs_hz))
            dt = np.where(dt > 2.5 / self.fs_hz, 1.0 / self.fs_hz, dt)
            self._activity += np.bincount(codes, weights=dt, minlength=len(act.NAMES))
            running = codes == act.RUNNING
            if running.any():
                last = int(np.flatnonzero(running)[-1])
                self._since_run = float(dt[last + 1:][codes[last + 1:] == act.STOPPED].sum())
            else:
                self._since_run += float(dt[codes == act.STOPPED].sum())
        gi = find_gaps(t, self.fs_hz, self.config.orientation.align.gap_factor)
        self._gaps += [g for g in gap_list(t, gi) if lo <= g[1] < final_s]
        self.final_s = final_s
        b.trim_before(final_s - self.history_s - self.lookback_s - 1.0)
        if len(new_steps):
            self._steps.append(new_steps.reset_index(drop=True))
        if len(new_strides):
            self._strides.append(new_strides.reset_index(drop=True))
        self._alerts += alerts
        return StreamUpdate(new_steps.reset_index(drop=True), new_strides.reset_index(drop=True), alerts)

    def _curves(self) -> pd.DataFrame:
        """Early/late stride curves as the batch call computes them (``core.curves``)."""
        from tiltguard.core.curves import PART, curves_frame

        if not self._curve_rows:     # no strides: NaN curves, as the batch call gives
            return curves_frame(np.full((1, 101, 3), np.nan), np.full((1, 101, 3), np.nan))
        rows = np.concatenate(self._curve_rows)
        n = len(rows)
        k = max(1, int(round(PART * n)))
        return curves_frame(rows[:k].astype(np.float64), rows[n - k:].astype(np.float64))

    def _hold_at_open_stretch(self, final_s: float, j0: int) -> float:
        """No gap after ``final_s``: the stretch after the last gap runs past the newest sample, and the
        batch call detrends that stretch whole (``core.orientation``), so results within the tilt
        low-pass's reach of that gap (half its kernel plus a margin) wait until the stretch ends -- the
        next gap -- or until it is ``stall_s`` long (then any difference is far below the noise)."""
        b = self.buf
        oc = self.config.orientation
        reach = 0.5 / oc.fc_tilt_hz + 2.0
        # the last gap after the results emitted so far (less the reach)
        lo = int(np.searchsorted(b.t, min(self.final_s, final_s) - reach))
        gi = find_gaps(b.t[lo: j0 + 1], self.fs_hz, oc.align.gap_factor)
        if not len(gi):
            return final_s
        g = lo + int(gi[-1])                       # first sample of the open stretch
        if self._t_last - float(b.t[g]) >= self.stall_s:
            return final_s
        return min(final_s, float(b.t[g - 1]) - reach)

    def _kin_meta_stub(self):
        class _K:  # summarize() reads only these when activity and duration are given
            pass
        k = _K()
        k.meta = dict(self._meta)
        k.fs_hz = self.fs_hz
        return k


def _cat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The tables in ``parts`` as one (an empty one with ``columns`` when there are none)."""
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "side" else float) for c in columns})
    return pd.concat(parts, ignore_index=True)


_EMPTY = {"steps": _cat([], STEPS_COLUMNS), "strides": _cat([], STRIDES_COLUMNS)}
