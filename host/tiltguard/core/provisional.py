"""Provisional strides: each stride a few tens of milliseconds after the contact that closes it.

:class:`~tiltguard.core.stream.StreamAnalyzer` makes a stride final ``margin_s`` (~45 s) after it ended, so
that it equals the batch result. The live dashboard wants the stride that just ended, and
:class:`ProvisionalStrides` gives it from the same stages on a short window:

1. a cheap trigger on ``|a|`` per block of samples: a flight (``|a|`` below ``FLIGHT_G``) followed by a
   rise of ``RISE_G`` above that flight's minimum (the steep part of the next contact). It only decides
   *when* to look; it is not an event detector;
2. on a trigger whose contact may close a stride (strides run left IC to left IC: every other contact),
   the batch stages (``core.pipeline.kinematics`` -> ``events.detect_steps``) run on the last
   ``window_s`` seconds. They find every step up to the one before the new contact;
3. the closing contact's initial contact is read as ``core.events`` reads one, from the samples so far
   (first rise through ``floor + IC_LEVEL_G`` after the flight, moved later to the tangent at the
   ``floor + ANCHOR_G`` crossing), and the stride row comes from ``metrics.stride_rows`` (``stride_table``
   without the table).

Initial-contact times, cadence and ground-contact times agree with the final strides to about a millisecond and
0.1 steps/min. Angles agree less well (about a degree on stride-mean tilt): the window's end sees only
one side of the tilt low-pass. So the dashboard shows provisional strides while the runner's cues, the
CSVs and the summary wait for the final ones. ``benchmarks/live_latency.py`` prints both differences.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tiltguard.core import events, metrics
from tiltguard.core.align import Mounting
from tiltguard.core.kinematics import shape_missing
from tiltguard.core.pipeline import NEEDS_SHAPE, AnalysisConfig, kinematics
from tiltguard.formats.raw import Recording
from tiltguard.formats.session import STRIDES_COLUMNS

FLIGHT_G = 0.45      # |a| below this: in flight (core.activity's flight_g)
RISE_G = 0.9         # |a| this far above the flight's minimum: the contact's steep rise has been seen
MAX_STEP_S = 0.6     # a contact farther than this after the last toe-off starts a new bout
LOOK_AFTER_S = 0.01  # samples after the trigger a look uses (the rise's anchor and its slope lie within)
MAX_WAIT_S = 0.16    # ... doubled while they do not, up to this
_SLACK_G = 0.0005    # wants() answers yes this much early: rounding never makes it late


_NEEDS_SHAPE = [STRIDES_COLUMNS.index(c) for c in NEEDS_SHAPE]   # blank without the shape (as the batch call)
_T0, _T1 = STRIDES_COLUMNS.index("t_start_s"), STRIDES_COLUMNS.index("t_end_s")


class ProvisionalStrides:
    """Strides as soon as their closing contact is seen: float rows, columns ``STRIDES_COLUMNS``.

    Parameters
    ----------
    config : the analysis settings (as for the batch call).
    mounting, fs_hz, first_run_s : from the calibrated :class:`~tiltguard.core.stream.StreamAnalyzer`.
    window_s : seconds of samples each look uses.
    """

    def __init__(self, config: AnalysisConfig, mounting: Mounting, fs_hz: float, first_run_s: float | None,
                 window_s: float = 10.0):
        # the stride wanted is at the window's end: no fade of the orientation's rate corrections there; the
        # clip-vs-host angle agreement is a session figure, not wanted per stride (a sixth of a compact look)
        config = replace(config, orientation=replace(config.orientation, edge_taper_end_s=0.0,
                                                     device_agreement=False))
        self.config, self.mounting, self.fs_hz, self.first_run_s = config, mounting, fs_hz, first_run_s
        self.window_s = window_s
        # the last window_s + 1 s of samples: one preallocated (cap, 10) buffer [t, acc, gyro, angles]
        self._buf = np.full((int(4 * (window_s + 1.0) * fs_hz) + 64, 10), np.nan)
        self._n = 0
        self._has = {"gyro": False, "angles": False}   # seen at all (else the look passes None)
        self._flight_min: float | None = None   # minimum |a| of the flight in progress (None: not in flight)
        self._closes: bool | None = None    # does the next contact close a stride? None: look and see
        self._held_min: float | None = None   # wants(): the flight's minimum |a| over blocks held back
        self._held_closes = True            # wants(): may the next held contact close a stride
        self._queue: list[tuple[float, float]] = []   # (contact time, samples wanted after it, s) to look at
        self._last_end = -np.inf            # t_end_s of the last stride given
        self.looks = 0                      # window analyses run (the cost)
        self._after_s = max(LOOK_AFTER_S, 2.0 / fs_hz)   # at least two samples
        self.given = 0                      # strides given
        self.read_s: list[float] = []       # per recent stride given: the newest sample its look used, s
        # shared (read-only): most blocks close nothing. Rows, not tables: a table per stride costs a
        # millisecond of pandas, a third of a look
        self._none = np.zeros((0, len(STRIDES_COLUMNS)))
        self._none.flags.writeable = False

    def feed(self, t_s, acc_g, gyro_dps=None, angles_deg=None) -> np.ndarray:
        """Add a block of in-order samples (device frame); returns the strides closed so far (usually none)
        as (k, ``len(STRIDES_COLUMNS)``) float rows."""
        t = np.asarray(t_s, dtype=np.float64)
        if len(t) == 0:
            return self._none
        acc = np.asarray(acc_g, dtype=np.float64).reshape(len(t), 3)
        self._append(t, acc, gyro_dps, angles_deg)
        # a look waits until the samples it uses are in, so any block sizes give the same strides
        self._queue += [(tc, self._after_s) for tc in self._contacts(acc, t)]
        found: list[np.ndarray] = []
        while self._queue and t[-1] >= self._queue[0][0] + self._queue[0][1]:   # one round per contact
            tc, after = self._queue.pop(0)
            if self._closes is False:
                self._closes = True
                continue
            stride = self._look(tc, after)
            if stride is _NOT_YET:
                if 2 * after <= MAX_WAIT_S:    # a slow rise: look again with more samples
                    self._queue.insert(0, (tc, 2 * after))
            elif stride is not None:
                found.append(stride)
        self._held_min, self._held_closes = self._flight_min, self._closes is not False   # wants() from here
        if not found:
            return self._none
        return found[0] if len(found) == 1 else np.concatenate(found)

    def wants(self, mag_min_g: float, mag_max_g: float) -> bool:
        """For a caller that holds samples back (decoding them costs CPU): would feeding everything held so far
        plus a block whose ``|a|`` spans ``[mag_min_g, mag_max_g]`` let a stride be given now? Never False when
        :meth:`feed` would look (the trigger's own test on the block's extremes, in any order); sometimes True
        when it would not. What is held is forgotten at the next :meth:`feed`."""
        if self._queue:                 # a look waits for samples
            return True
        if mag_min_g < FLIGHT_G and (self._held_min is None or mag_min_g < self._held_min):
            self._held_min = mag_min_g
        if self._held_min is None or mag_max_g <= self._held_min + RISE_G - _SLACK_G:
            return False
        if self._held_closes:
            return True
        # the right contact closes nothing: it is looked at with the next one's samples
        self._held_closes, self._held_min = True, None
        return False

    # ------------------------------------------------------------------ internals
    @property
    def _t(self) -> np.ndarray:
        return self._buf[: self._n, 0]

    def _append(self, t, acc, gyro, ang) -> None:
        n = len(t)
        if self._n + n > len(self._buf):
            # keep what a look may still need (a burst's first contacts too), moved to the front
            keep = int(np.searchsorted(self._t, t[0] - self.window_s - 1.0))
            kept = self._n - keep
            if kept + n > len(self._buf):     # a burst longer than the buffer: grow it
                self._buf = np.concatenate((self._buf, np.full((kept + n, 10), np.nan)))
            self._buf[:kept] = self._buf[keep: self._n]
            self._n = kept
        rows = self._buf[self._n: self._n + n]
        rows[:, 0] = t
        rows[:, 1:4] = acc
        for col, name, new in ((4, "gyro", gyro), (7, "angles", ang)):
            if new is None:
                rows[:, col: col + 3] = np.nan
            else:
                rows[:, col: col + 3] = np.asarray(new, dtype=np.float64).reshape(n, 3)
                self._has[name] = True
        self._n += n

    def _contacts(self, acc: np.ndarray, t: np.ndarray) -> list[float]:
        """Times at which a contact's steep rise follows a flight in this block: the look triggers."""
        mag = np.sqrt(np.einsum("ij,ij->i", acc, acc))
        out = []
        i, n = 0, len(mag)
        while i < n:   # flight -> rise -> flight ...: a few rounds per block, not one per sample
            if self._flight_min is None:
                f = np.flatnonzero(mag[i:] < FLIGHT_G)
                if len(f) == 0:
                    break
                i += int(f[0])
                self._flight_min = float(mag[i])
            # the flight's minimum so far, then the first sample rising RISE_G above it
            run_min = np.minimum.accumulate(np.minimum(mag[i:], self._flight_min))
            r = np.flatnonzero(mag[i:] > run_min + RISE_G)
            if len(r) == 0:
                self._flight_min = float(run_min[-1])
                break
            i += int(r[0])
            out.append(float(t[i]))
            self._flight_min = None
        return out

    def _look(self, t_contact: float, after_s: float):
        """Run the batch stages on the window ending now; the stride closed by the contact at ``t_contact``
        (None when it closes none, ``_NOT_YET`` when its rise is not all in)."""
        self.looks += 1
        # the window ends just after the contact, also when a burst (backfill) brought later samples
        t = self._t
        i1 = int(np.searchsorted(t, t_contact + after_s, side="right"))
        i0 = int(np.searchsorted(t, t[i1 - 1] - self.window_s))
        b = self._buf[i0:i1]
        rec = Recording(t_s=b[:, 0], acc_g=b[:, 1:4], gyro_dps=b[:, 4:7] if self._has["gyro"] else None,
                        angles_deg=b[:, 7:10] if self._has["angles"] else None)
        if len(rec.t_s) < 4:
            return None
        kin, _ = kinematics(rec, self.config, self.mounting, self.fs_hz, self.first_run_s)
        ev = events.detect_steps(kin)
        if len(ev) < 2 or not np.isfinite(ev.t_to_s[-1]):
            self._closes = None
            return None
        g = events.uniform_grid(kin)
        t_ic = closing_ic(g, float(ev.t_to_s[-1]), t_contact)
        if t_ic is _NOT_YET or t_ic is None:
            self._closes = None if t_ic is None else self._closes
            return t_ic
        if t_ic - ev.t_to_s[-1] > MAX_STEP_S:
            self._closes = None
            return None
        side = "L" if ev.side[-1] == "R" else "R"
        self._closes = side == "R"     # after a left contact the next one (right) closes nothing
        if side != "L" or t_ic <= self._last_end + 0.2:
            return None
        # the last two steps and the closing contact: exactly the one stride they make
        last = slice(len(ev) - 2, None)
        ext = events.StepEvents(
            np.append(ev.t_ic_s[last], t_ic), np.append(ev.t_to_s[last], np.nan), np.append(ev.side[last], side),
            np.append(ev.side_confidence[last], ev.side_confidence[-1]), np.append(ev.chunk[last], ev.chunk[-1]),
            np.append(ev.peak_g[last], np.nan), ev.side_method, np.append(ev.observed[last], True))
        new = metrics.stride_rows(kin, ext, g)   # columns in STRIDES_COLUMNS order
        if len(new) == 0:
            return None
        new[np.ix_(shape_missing(kin, new[:, _T0], new[:, _T1]), _NEEDS_SHAPE)] = np.nan
        self._last_end = t_ic
        self.given += 1
        self.read_s.append(float(rec.t_s[-1]))
        del self.read_s[:-64]
        return new


_NOT_YET = "not yet"   # the contact's rise is not all in the data


def closing_ic(g: events.Grid, t_to_s: float, t_contact: float):
    """Initial contact (s) of the contact at about ``t_contact``, from the samples up to now.

    Read as ``core.events`` reads one: the flight floor after the last toe-off ``t_to_s``, the first rise
    through ``floor + IC_LEVEL_G``, moved later to the tangent at the ``floor + ANCHOR_G`` crossing.
    None when there is no such rise; ``_NOT_YET`` when the anchor crossing (and two samples after it)
    is not in the data yet.
    """
    i_to = int(np.ceil((t_to_s - g.t0) / g.dt))
    i_c = min(int(np.floor((t_contact - g.t0) / g.dt)), g.n - 1)
    if i_to < 0 or i_c - i_to < 3:
        return None
    fs = 1.0 / g.dt
    lo = max(0, i_to - int(0.1 * fs))   # some signal before the toe-off: the filter's edge stays out
    a = events._lowpass(np.ascontiguousarray(g.acc[lo:, 2], dtype=np.float64), events.EDGE_LP_HZ, fs)[i_to - lo:]
    k_floor = int(np.argmin(a[: i_c - i_to + 1]))
    floor = float(a[k_floor])
    rise = a[k_floor:]

    def first_rise(level: float):
        j = np.flatnonzero((rise[:-1] < level) & (rise[1:] >= level))
        if len(j) == 0:
            return None
        j0 = int(j[0])
        return j0 + (level - rise[j0]) / (rise[j0 + 1] - rise[j0])

    anc = first_rise(floor + events.ANCHOR_G)
    if anc is None or int(anc) + 3 > len(rise):
        return _NOT_YET
    ic = first_rise(floor + events.IC_LEVEL_G)
    if ic is None:
        return None
    ai = int(anc)
    if events.TANGENT_IC and ai >= 1:
        slope = max(rise[ai + 1] - rise[ai - 1], rise[ai + 2] - rise[ai]) / 2.0
        if slope > 0:
            ic = max(ic, anc - (events.ANCHOR_G - events.IC_LEVEL_G) / slope)
    return g.t0 + (i_to + k_floor + ic) * g.dt
