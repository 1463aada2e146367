"""The live pipeline: transport frames -> session log -> in-order samples -> incremental analysis -> cues.

Data flow per received frame:

1. append it to ``stream.tgl``, flushed when a frame comes ``flush_s`` (<= 1 s) after the last flush and
   by a once-a-second tick (a stalled link), so a killed host loses at most ``flush_s`` of samples;
2. count its samples by index (``StreamDecoder``/``SeqTracker``): holes are asked back from the clip's
   flash log (``download_log``) when the transport can, or given up (``abandon``) when it cannot;
3. feed the analyser only samples below the first open hole, in index order, so a backfilled stretch is
   analysed where it belongs; strides/steps/alerts the analyser makes final are appended to the CSVs at once;
4. the same samples go to ``core.provisional``: the stride that just ended reaches the dashboard a few tens
   of milliseconds after its closing contact (the final one follows ``margin_s`` later);
5. steps 3 and 4 run when there is something to do: at once when a provisional stride may be given
   (``ProvisionalStrides.wants``, asked with the frame's raw ``|a|`` extremes), else once per ``hop_s`` (the
   analyser's step) or 16 frames. Decoding a frame at a time costs several times more CPU at real time.
6. alerts become a buzz command to the clip (and an optional host sound) per ``live.config.AlertPolicy``.

Restarting on an existing session folder rebuilds everything from the log first (nothing is re-sent).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import time
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

from tiltguard.core.provisional import ProvisionalStrides
from tiltguard.core.stream import StreamAnalyzer
from tiltguard.errors import InputError
from tiltguard.formats import session as sf
from tiltguard.formats.sessionlog import SessionLogWriter, read_sessionlog
from tiltguard.live.alerts import Cues
from tiltguard.live.config import LiveConfig
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.protocol.stream import StreamDecoder
from tiltguard.transport.base import LinkEvent, Received, Transport

LOG_NAME = sf.LOG_NAME
_WAKE = object()   # queue item: look at the stop conditions again
MESSAGES_NAME = "live.log"


class _Table:
    """Append-only CSV (header once); rewritten whole on resume."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        self._fh = None

    def rewrite(self, df: pd.DataFrame) -> None:
        if self._fh:
            self._fh.close()
        sf.write_table(self.path, df.reindex(columns=self.columns))
        self._fh = open(self.path, "a", encoding="utf-8", newline="")

    def append(self, df: pd.DataFrame) -> None:
        if self._fh is None:
            self.rewrite(pd.DataFrame(columns=self.columns))
        if len(df):
            df.reindex(columns=self.columns).to_csv(self._fh, header=False, index=False, lineterminator="\n")

    def flush(self) -> None:
        if self._fh:
            self._fh.flush()

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


class LiveSession:
    """One live run into ``session_dir``. ``await run()`` returns the summary dict.

    The dashboard reads its attributes. ``stop()`` ends the run cleanly (Ctrl-C). ``duration_s`` ends it after
    that much wall time (looked at once a second).
    """

    def __init__(self, session_dir: str | Path, transport: Transport, config: LiveConfig | None = None,
                 source: str = "replay", meta: dict | None = None, duration_s: float | None = None,
                 printer=None, idle_exit_s: float | None = None, mode: str | None = None,
                 calibrate: bool = False):
        self.dir = Path(session_dir)
        self.t = transport
        self.cfg = config or LiveConfig()
        self.source = source
        self.meta_extra = meta or {}
        self.duration_s = duration_s
        self.printer = printer  # callable(str) for plain log lines, or None
        self.idle_exit_s = idle_exit_s
        self.mode = mode
        self.calibrate = calibrate   # ask the clip to calibrate (runner standing still) once, at connect
        self._calibration_asked = False
        self._last_rx = self._flushed = time.monotonic()
        self.decoder = StreamDecoder()
        self.analyzer = StreamAnalyzer(self.cfg.analysis, margin_s=self.cfg.margin_s, hop_s=self.cfg.hop_s)
        self.cues = Cues(self.cfg.alerts)
        self.provisional: ProvisionalStrides | None = None   # once the analyser has calibrated
        self._provisional_rows: list[np.ndarray] = []   # (k, STRIDES_COLUMNS) float rows: a frame each would
                                                         # cost kilobytes per stride over a long run
        self.resumed = False
        self.messages: list[str] = []
        self.status: fr.Status | None = None
        self.connected = False
        self.reconnects = 0
        self.alert_rows: list[dict] = []
        self.last_stride: dict | None = None
        self.last_gct_ms: float | None = None
        self.t_stream_s = 0.0
        self.started = time.monotonic()
        self.rx_samples = 0
        self.latency_stride_s: list[float] = []   # frame handled -> provisional stride given (processing)
        # per provisional stride: (t_end_s, newest sample its look used, and the ends of the blocks that
        # brought its last sample and that one (stream time, s), processing s)
        self.stride_timing: list[tuple] = []
        self._frame_ends: deque[float] = deque(maxlen=128)  # stream time of the last sample of recent frames
        self._urgent = True         # analyse the pending frames at once (else at the next hop)
        self.latency_final_s: list[float] = []    # frame handled -> final stride written (when a frame made it final)
        self.latency_buzz_s: list[float] = []     # alert made final -> buzz command written
        self._pending: list[bytes] = []
        self._pending_dec: list[fr.DataFrame] = []   # the same frames decoded, while in step with _pending
        self._origin_us: float | None = None
        self._fed_seq = -1          # highest sample index fed to the analyser
        self._t_fed = -np.inf
        self._ready: list[tuple] = []   # in-order samples not yet handed to the analyser
        self._t_analyser = -np.inf      # newest sample time the analyser has
        self._dropped_time = 0      # samples not fed: device time went backwards (reboot)
        self._queue: list[tuple[int, int]] = []   # holes to ask the clip's log for, one download at a time
        self._download: dict | None = None        # the download in progress: range, token, started
        self._closing_token: int | None = None
        self._tokens = 0
        self._replies: dict[int, asyncio.Future] = {}
        self._stop = asyncio.Event()
        self._items: asyncio.Queue | None = None   # transport items waiting for the consumer
        self._closing = False
        self._writer: SessionLogWriter | None = None
        self._msg_fh = None
        self._tables: dict[str, _Table] = {}
        self.summary: dict | None = None

    # ------------------------------------------------------------------ public
    def stop(self) -> None:
        self._stop.set()
        self._wake()

    def _wake(self) -> None:
        """Let the consumer look at its stop conditions again (it waits on the queue without a timeout)."""
        if self._items is not None and not self._items.full():
            self._items.put_nowait(_WAKE)

    def message(self, text: str) -> None:
        """A line for the dashboard, the plain log and the session's live.log."""
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        line = f"{stamp} {text}"
        self.messages.append(line)
        del self.messages[:-50]
        if self._msg_fh:
            self._msg_fh.write(line + "\n")
            self._msg_fh.flush()
        if self.printer:
            self.printer(line)

    def live_figures(self) -> dict:
        """How live the run was: provisional strides given and how soon (summary.json ``live``)."""
        tim = np.array(self.stride_timing).reshape(-1, 5)
        wait_ms = (tim[:, 1] - tim[:, 0]) * 1000.0     # samples needed after the stride's end
        return {"provisional_strides": int(len(tim)),
                "from_s": round(float(tim[0, 0]), 2) if len(tim) else None,
                "wait_ms_p50": round(float(np.median(wait_ms)), 1) if len(tim) else None,
                "processing_ms_p50": round(float(np.median(tim[:, 4]) * 1000.0), 2) if len(tim) else None}

    @property
    def provisional_rows(self) -> pd.DataFrame:
        """Every provisional stride given so far (the dashboard shows the last)."""
        rows = np.concatenate(self._provisional_rows) if self._provisional_rows else np.zeros((0, len(sf.STRIDES_COLUMNS)))
        return pd.DataFrame(rows, columns=sf.STRIDES_COLUMNS)

    def stats(self) -> dict:
        s = self.decoder.stats()
        s["reconnects"] = self.reconnects
        s["samples_out_of_order_time"] = self._dropped_time
        return s

    async def run(self) -> dict:
        ticker = None
        try:
            async with self.t:  # open the link first: a bad source leaves no session folder behind
                self._setup()
                items: asyncio.Queue = asyncio.Queue(maxsize=4096)
                self._items = items
                ticker = asyncio.create_task(self._tick())
                pump = asyncio.create_task(self._pump(self.t.frames(), items))
                ended = await self._consume(items, self._stop.is_set)
                if not ended and self.connected and self.t.kind != "replay" and self.decoder.counters.frames_ok:
                    # closing: stop the stream, learn where it ended, fetch what is still missing
                    await self.command("stop_stream")
                    self._closing_token = self._tokens
                    t0 = time.monotonic()
                    await self._consume(items, lambda: time.monotonic() > t0 + self.cfg.backfill_timeout_s or (
                        self._closing_token is not None and time.monotonic() > t0 + 3.0) or (
                        self._closing_token is None and self._download is None and not self._queue))
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        finally:
            if ticker is not None:
                ticker.cancel()
            self._closing = True
        await self._drain(final=True)
        return self._finish()

    @staticmethod
    async def _pump(frames, items: asyncio.Queue) -> None:
        """Move the transport's items into a queue (so waiting on it can time out without ending it)."""
        try:
            async for item in frames:
                if items.full():
                    await items.put(item)
                else:
                    items.put_nowait(item)   # the usual case: no coroutine per frame
        finally:
            items.put_nowait(None) if not items.full() else None

    async def _consume(self, items: asyncio.Queue, done) -> bool:
        """Handle items until done() is true; returns True when the source ended."""
        while not done():
            # no timeout (a timer and a task per frame): the ticker and stop() put _WAKE in the queue instead
            item = items.get_nowait() if not items.empty() else await items.get()
            if item is _WAKE:
                if self._pending and self._urgent:
                    await self._drain()
                continue
            if item is None:
                return True
            if isinstance(item, Received):
                await self._on_frame(item)
            else:
                await self._on_link(item)
                if item.kind == "end":
                    return True
            # a burst of frames (max-speed replay, a backfill) is drained in batches; otherwise when wanted
            if len(self._pending) >= 16 or (self._urgent and items.empty()):
                await self._drain()
        return False

    # ------------------------------------------------------------------ setup / resume
    def _setup(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._msg_fh = open(self.dir / MESSAGES_NAME, "a", encoding="utf-8")
        log_path = self.dir / LOG_NAME
        old_alerts = None
        if log_path.exists() and log_path.stat().st_size > 0:
            self.resumed = True
            if (self.dir / "alerts.csv").exists():
                try:
                    old_alerts = pd.read_csv(self.dir / "alerts.csv", keep_default_na=False)
                except Exception:  # noqa: BLE001 - a torn CSV: the cues are re-derived, "sent" unknown
                    old_alerts = None
        self._writer = SessionLogWriter(log_path)
        if self._writer.truncated_bytes:
            self.message(f"session log: dropped a torn tail of {self._writer.truncated_bytes} bytes")
        meta_path = self.dir / sf.META_FILE
        if meta_path.exists():
            meta = sf.read_session_meta(self.dir)
            meta = {k: v for k, v in meta.items() if k != "format"}
            meta.setdefault("resumed", []).append(_now_iso())
        else:
            meta = {"start_time": _dt.datetime.fromtimestamp(self._writer.start_unix_ms / 1000,
                                                             _dt.timezone.utc).isoformat(timespec="seconds"),
                    "source": self.source, "sample_rate_hz": None, "mode": None, "simulated": False,
                    "device": {"link": self.t.description}, **self.meta_extra}
        self.meta = meta
        sf.write_session_meta(self.dir, meta)
        for name, cols in (("steps", sf.STEPS_COLUMNS), ("strides", sf.STRIDES_COLUMNS),
                           ("alerts", sf.ALERTS_COLUMNS)):
            self._tables[name] = _Table(self.dir / f"{name}.csv", cols)
        if self.resumed:
            self._rebuild(old_alerts)
        else:
            for tab in self._tables.values():
                tab.rewrite(pd.DataFrame(columns=tab.columns))

    def _rebuild(self, old_alerts: pd.DataFrame | None) -> None:
        """Continue a session: counters and analysis state from its log; cues are not sent again."""
        log = read_sessionlog(self.dir / LOG_NAME)
        for raw in log.frames:
            f = self.decoder.feed(raw)
            if isinstance(f, fr.DataFrame) and self.meta.get("mode") is None:
                self.meta["mode"] = "full" if f.full else "compact"
        self._pending = [f for f in log.frames if (f[0] & 0x0F) in fr.DATA_TYPES]
        n_alerts = len(self.alert_rows)
        self._drain_sync(final=False, replay=True, ignore_holes=True)
        sent = {}
        if old_alerts is not None and len(old_alerts):
            for r in old_alerts.itertuples():
                sent[(str(r.kind), round(float(r.t_s), 2))] = str(r.sent)
        for row in self.alert_rows[n_alerts:]:
            row["sent"] = sent.get((row["kind"], round(float(row["t_s"]), 2)), "")
        self._tables["steps"].rewrite(self.analyzer.steps)
        self._tables["strides"].rewrite(self.analyzer.strides)
        self._tables["alerts"].rewrite(pd.DataFrame(self.alert_rows, columns=sf.ALERTS_COLUMNS))
        self.message(f"resumed {self.dir}: {self.decoder.seq.received} samples in the log, "
                     f"{len(self.analyzer.strides)} strides rebuilt, {self.decoder.seq.lost} missing")

    # ------------------------------------------------------------------ frames
    async def _on_frame(self, item: Received) -> None:
        f = item.frame
        self._writer.append(item.raw, item.host_unix_ms)
        now = time.monotonic()
        if now - self._flushed >= self.cfg.flush_s:   # here, not on a timer: a wake-up costs CPU of its own
            self.flush()
        self.decoder.counters.frames_ok += 1
        if isinstance(f, fr.DataFrame):
            seq = self.decoder.seq
            before = [tuple(m) for m in seq.missing] if seq.missing else []
            seq.add(f.seq, f.n, backfill=f.is_log)
            if f.is_log and self._download is not None:  # a download that progresses has not timed out
                self._download["t0"] = time.monotonic()
            self.rx_samples += f.n
            self._last_rx = now
            self._pending.append(item.raw)
            self._pending_dec.append(f)
            if not self._urgent and f.n:     # (a frame of no samples, however odd, asks for nothing)
                self._urgent = self._wanted_now(f)
            if self.meta.get("mode") is None:
                self.meta["mode"] = "full" if f.full else "compact"
                self.meta["sample_rate_hz"] = round(1e6 / (f.period_q * w.PERIOD_LSB_US), 3)
                sf.write_session_meta(self.dir, self.meta)
                if not f.full and f.n and (f.values[:, 0] == w.ANGLE_MISSING).all() and not self.calibrate:
                    self.message("the clip sends no angles (not calibrated): in compact mode the ROMs and pelvic "
                                 "drop stay empty; stand still and long-press its button, or start with "
                                 "--calibrate (or --mode full)")
            if (seq.missing or before) and [tuple(m) for m in seq.missing] != before:
                await self._handle_holes()
        elif isinstance(f, fr.Reply):
            fut = self._replies.pop(f.token, None)
            if fut is not None and not fut.done():
                fut.set_result(f)
            if not f.ok:
                self.message(f"clip refused {w.CMD_NAMES.get(f.cmd, f.cmd)}: {f.error}")
            d = self._download
            if f.cmd == w.CMD_DOWNLOAD_LOG and d is not None and f.token == d["token"]:
                await self._download_reply(f, *d["range"])
            if f.cmd == w.CMD_STOP_STREAM and f.token == self._closing_token:
                await self._stream_end(f)
        elif isinstance(f, fr.Status):
            self.status = f
        elif isinstance(f, fr.Event):
            await self._on_event(f)

    async def _on_event(self, e: fr.Event) -> None:
        if e.code == w.EV_DOWNLOAD_DONE:
            if self._download is not None:
                a, b = self._download["range"]
                gone = self.decoder.seq.abandon(a, b)
                if gone:
                    self.message(f"clip log could not resend {gone} samples of [{a}, {b}): marked as a gap")
                self._download = None
            await self._drain()
            await self._next_download()
        elif e.code == w.EV_CALIBRATION_DONE:
            self.message("clip calibrated" if e.value == w.ERR_OK else
                         "clip calibration failed (it moved or saw no steady 1 g): stand still and try again")
        elif e.code == w.EV_BOOT:
            self.message(f"clip rebooted (cause {e.value}); sample index now {e.seq}")
        elif e.code == w.EV_LOG_ROTATED:
            self.message(f"clip log full: {e.value} old samples dropped from its flash")
        elif e.code == w.EV_LOW_BATTERY:
            self.message(f"clip battery low ({e.value} mV)")

    async def _on_link(self, ev: LinkEvent) -> None:
        if ev.kind == "connected":
            if self.connected is False and self.decoder.seq.next is not None:
                self.reconnects += 1
            self.connected = True
            self._last_rx = time.monotonic()
            self.message(f"connected: {ev.message}")
            if self.mode:
                await self.command("set_mode", mode=self.mode)
            await self.command("start_stream")
            if self.calibrate and not self._calibration_asked:
                self._calibration_asked = True
                if self.t.kind == "replay":
                    self.message("--calibrate ignored: a replay has no clip to calibrate")
                else:
                    self.message("calibrating the clip: stand still for 3 s")
                    await self.command("calibrate", still_s=3)
            await self._handle_holes()
        elif ev.kind == "disconnected":
            self.connected = False
            if self._download is not None:  # its answer is lost with the link: ask again later
                self._queue.insert(0, self._download["range"])
                self._download = None
            self.message(f"link lost: {ev.message} (recording continues when it is back)")
        elif ev.kind == "bad_input":
            self.decoder.counters.rejects[ev.data.get("reason", "bad_crc")] = \
                self.decoder.counters.rejects.get(ev.data.get("reason", "bad_crc"), 0) + int(ev.data.get("count", 1))
            self.message(f"bad input: {ev.message}")
        elif ev.kind in ("info", "end"):
            self.message(ev.message)

    async def command(self, name: str, wait_s: float = 0.0, **args) -> fr.Reply | None:
        """Send a command (also logged); with wait_s > 0 wait that long for its reply."""
        self._tokens = (self._tokens + 1) & 0xFF
        frame = commands.encode(name, self._tokens, **args)
        ok = await self.t.send_command(frame)
        self._writer.append(frame)
        if not ok:
            return None
        if wait_s <= 0:
            return None
        fut = asyncio.get_running_loop().create_future()
        self._replies[self._tokens] = fut
        try:
            return await asyncio.wait_for(fut, wait_s)
        except asyncio.TimeoutError:
            return None

    async def _handle_holes(self) -> None:
        """Queue every new hole for the clip's log; without a clip log give them up at once."""
        seq = self.decoder.seq
        if not seq.missing:
            return
        if not self.t.can_backfill:
            for a, b in [tuple(m) for m in seq.missing]:
                seq.abandon(a, b)
            return
        active = [self._download["range"]] if self._download else []
        for a, b in [tuple(m) for m in seq.missing]:
            if any(ra <= a and b <= rb for ra, rb in self._queue + active):
                continue
            self._queue.append((a, b))
        await self._next_download()

    async def _next_download(self) -> None:
        """Start the next queued download when none is running (the clip serves one at a time)."""
        if self._download is not None or not self.connected:
            return
        seq = self.decoder.seq
        while self._queue:
            a, b = self._queue.pop(0)
            # only what is still missing of it
            open_ = [(max(a, x), min(b, y)) for x, y in seq.missing if max(a, x) < min(b, y)]
            if not open_:
                continue
            a, b = open_[0][0], open_[-1][1]
            self.message(f"asking the clip to resend samples [{a}, {b}) ({b - a})")
            await self.command("download_log", from_seq=a & 0xFFFFFFFF, count=b - a)
            self._download = {"range": (a, b), "token": self._tokens, "t0": time.monotonic()}
            return

    async def _download_reply(self, f: fr.Reply, a: int, b: int) -> None:
        """What the clip's log cannot resend is given up at once (the rest comes, then download_done)."""
        seq = self.decoder.seq
        if not f.ok:
            gone = seq.abandon(a, b)
            self._download = None
            if gone:
                self.message(f"clip cannot resend [{a}, {b}) ({f.error}): {gone} samples marked as a gap")
            await self._next_download()
            return
        try:
            r = commands.parse_reply(f)
        except fr.FrameError:
            return
        first, count = int(r.get("first_seq", a)), int(r.get("count", 0))
        lo, hi = (first, first + count) if count else (b, b)
        gone = seq.abandon(a, min(max(lo, a), b)) + seq.abandon(max(min(hi, b), a), b)
        if gone:
            self.message(f"clip log holds only [{lo}, {hi}) of [{a}, {b}): {gone} samples marked as a gap")

    async def _stream_end(self, f: fr.Reply) -> None:
        """stop_stream's reply says where the stream ended: a tail the link lost becomes a hole too."""
        self._closing_token = None
        if not f.ok:
            return
        try:
            end = int(commands.parse_reply(f)["next_seq"])
        except (fr.FrameError, KeyError):
            return
        seq = self.decoder.seq
        if seq.next is not None and end > seq.next:
            seq.missing.append([seq.next, end])
            seq.next = end
            await self._handle_holes()

    async def _expire_requests(self) -> None:
        d = self._download
        if d is not None and time.monotonic() - d["t0"] > self.cfg.backfill_timeout_s:
            a, b = d["range"]
            gone = self.decoder.seq.abandon(a, b)
            self._download = None
            if gone:
                self.message(f"no answer for samples [{a}, {b}): {gone} marked as a gap")
            await self._next_download()

    # ------------------------------------------------------------------ analysis
    def _wanted_now(self, f: fr.DataFrame) -> bool:
        """Must the pending frames be analysed now that ``f`` came? When a provisional stride may be given
        (``ProvisionalStrides.wants``, from the frame's raw ``|a|`` extremes), when the analyser's next hop is
        due, or to start the provisional strides. Two numpy calls a frame: after a sleep each costs ~20 us here."""
        prov = self.provisional
        if prov is None:
            if self.cfg.provisional and self.analyzer.mounting is not None:
                return True
        else:
            a = f.values[:, 3:6]
            m2 = np.einsum("ij,ij->i", a, a, dtype=np.int64).tolist()   # |a|^2, wire units, exact
            if prov.wants(min(m2) ** 0.5 * w.ACC_LSB_G, max(m2) ** 0.5 * w.ACC_LSB_G):
                return True
        if self._origin_us is None:
            return True
        t_last_us = f.t_us - self._origin_us + (f.n - 1) * f.period_q * w.PERIOD_LSB_US
        return t_last_us / 1e6 - self._t_analyser >= self.cfg.hop_s

    async def _drain(self, final: bool = False) -> None:
        updates = self._drain_sync(final=final)
        self._urgent = False
        for alert in updates:
            await self._cue(alert)

    def _drain_sync(self, final: bool = False, replay: bool = False, ignore_holes: bool = False) -> list[dict]:
        """Feed the analyser every pending sample below the first open hole (all of them when final)."""
        if not self._pending:
            return self._feed(time.perf_counter(), final or replay, replay)
        t_rx = time.perf_counter()
        seq = self.decoder.seq
        if final or ignore_holes or not seq.missing:
            safe = np.inf
        else:
            safe = min(a for a, _ in seq.missing)
        dec = self._pending_dec if len(self._pending_dec) == len(self._pending) else None
        self._pending_dec = []
        if np.isfinite(safe):  # hold back whole frames at or after the hole (a frame never straddles one)
            ready = [r for r in self._pending if int.from_bytes(r[1:5], "little") < safe]
            self._pending = [r for r in self._pending if int.from_bytes(r[1:5], "little") >= safe]
            dec = None
        else:
            ready, self._pending = self._pending, []
        block = self._continuing(dec) if dec else None
        if block is not None:   # the usual live case: frames that just continue the stream
            self._take(block, t_rx, replay)
            return self._feed(t_rx, final or replay, replay)
        batch = fr.decode_data_frames(ready)
        if not len(batch):
            return self._feed(t_rx, final or replay, replay)
        if self._origin_us is None:
            self._origin_us = float(batch.t_us[np.argmin(fr.unwrap_seq(batch.seq))])
        a = fr.to_arrays(batch, t0_us=self._origin_us)
        sel = (a["seq"] > self._fed_seq) & (a["t_s"] > self._t_fed)
        self._dropped_time += int(((a["seq"] > self._fed_seq) & ~sel).sum())
        if sel.any():
            t = a["t_s"][sel]
            self._fed_seq = int(a["seq"][sel][-1])
            self._t_fed = float(t[-1])
            gyro = a["gyro_dps"][sel] if batch.has_gyro.any() else None
            ang = a["angles_deg"][sel]
            self._take((t, a["acc_g"][sel], gyro, None if np.isnan(ang).all() else ang), t_rx, replay)
        return self._feed(t_rx, final or replay, replay)

    def _take(self, block: tuple, t_rx: float, replay: bool) -> None:
        """In-order samples (t_s, acc_g, gyro_dps, angles_deg) for the analysers."""
        self._ready.append(block)
        self.t_stream_s = float(block[0][-1])
        if not replay:
            self._provisional(block, t_rx)

    def _continuing(self, frames: list[fr.DataFrame]) -> tuple | None:
        """Samples of frames that exactly continue what the analysers have (next index, later time, one
        mode), straight from the transport's decoded frames; None sends them through the general decoder
        (holes, backfill, reboots, overlaps), which gives the same values."""
        if self._origin_us is None:
            return None
        nxt, full = self._fed_seq + 1, frames[0].full
        ts, vals = [], []
        for f in frames:   # per frame (one, live)
            if f.full != full or f.seq != nxt & 0xFFFFFFFF or f.n == 0 or f.period_q <= 0:
                return None
            # times from the origin, us: whole and quarter microseconds well below 2**53, so every sum is
            # exact and the order of the additions does not matter (one array operation instead of two)
            ts.append(_offsets_us(f.n, f.period_q) + (f.t_us - self._origin_us))   # increasing within a frame
            vals.append(f.values)
            nxt += f.n
        if len(frames) == 1:
            t_us, v = ts[0], vals[0]
        else:
            t_us, v = np.concatenate(ts), np.concatenate(vals)
            if any(a[0] <= b[-1] for a, b in zip(ts[1:], ts[:-1])):   # frames overlap in time
                return None
        t = t_us / 1e6
        if t[0] <= self._t_fed:
            return None
        x = v * (_SCALE if full else _SCALE[:6])          # one pass to physical units
        ang = x[:, 0:3]
        if v[:, 0:3].min() == w.ANGLE_MISSING:          # the int16 minimum: a quick test first
            miss = v[:, 0:3] == w.ANGLE_MISSING
            if miss.all():
                ang = None
            else:
                ang[miss] = np.nan
        self._fed_seq, self._t_fed = nxt - 1, float(t[-1])
        self._frame_ends.extend(x[-1] / 1e6 for x in ts)   # (latency bookkeeping: the frames fed)
        return t, x[:, 3:6], x[:, 6:9] if full else None, ang

    def _provisional(self, block: tuple, t_rx: float) -> None:
        """The stride that just ended, for the dashboard (``core.provisional``); never the cues or CSVs."""
        an = self.analyzer
        if self.provisional is None:
            if an.mounting is None or not self.cfg.provisional:
                return
            self.provisional = ProvisionalStrides(an.config, an.mounting, an.fs_hz, an.first_run_s)
        newest = float(block[0][-1])
        if not self._frame_ends or self._frame_ends[-1] < newest:   # a block the general decoder made
            self._frame_ends.append(newest)
        new = self.provisional.feed(*block)
        if len(new):   # (k, STRIDES_COLUMNS) float rows
            self._provisional_rows.append(new)
            self.last_stride = dict(zip(sf.STRIDES_COLUMNS, new[-1].tolist()))
            g = [x for x in (self.last_stride["gct_l_ms"], self.last_stride["gct_r_ms"]) if np.isfinite(x)]
            if g:
                self.last_gct_ms = sum(g) / len(g)
            took = time.perf_counter() - t_rx
            self.latency_stride_s.append(took)
            ends = np.array(self._frame_ends)
            reads = self.provisional.read_s[-len(new):]
            for te, rd in zip(new[:, _T_END].tolist(), reads):  # the stride's last sample is just before t_end
                held, got = ends[ends >= te - 0.5 / an.fs_hz], ends[ends >= rd]
                self.stride_timing.append((te, rd, float(held[0]) if len(held) else newest,
                                           float(got[0]) if len(got) else newest, took))

    def _feed(self, t_rx: float, force: bool, replay: bool) -> list[dict]:
        """Hand the in-order samples to the analyser in blocks of about ``hop_s``: it only analyses once
        per hop anyway, so this adds no delay and saves a call (and its empty result) per frame."""
        if not self._ready:
            return []
        t_end = self._ready[-1][0][-1]
        if not force and t_end - self._t_analyser < self.cfg.hop_s:
            return []
        parts, self._ready = self._ready, []
        t = np.concatenate([p[0] for p in parts])
        acc = np.concatenate([p[1] for p in parts])
        opt = []
        for k in (2, 3):
            if all(p[k] is None for p in parts):
                opt.append(None)
            else:
                opt.append(np.concatenate([np.full((len(p[0]), 3), np.nan) if p[k] is None else p[k] for p in parts]))
        self._t_analyser = float(t[-1])
        if not replay and self._writer is not None:
            self._writer.flush()  # what arrived is on disk before the (longer) analysis step
        upd = self.analyzer.feed(t, acc, opt[0], opt[1])
        return self._emit(upd, t_rx, replay)

    def _emit(self, upd, t_rx: float, replay: bool) -> list[dict]:
        if len(upd.steps):
            self._tables["steps"].append(upd.steps)
            g = pd.to_numeric(upd.steps["gct_ms"], errors="coerce").dropna()
            if len(g):
                self.last_gct_ms = float(g.iloc[-4:].mean())
        if len(upd.strides):
            self._tables["strides"].append(upd.strides)
            if self.provisional is None:   # not calibrated yet (or switched off): the final strides are the latest
                self.last_stride = upd.strides.iloc[-1].to_dict()
            if not replay:
                self.latency_final_s.append(time.perf_counter() - t_rx)
        new = []
        for al in upd.alerts:
            row = {k: al.get(k, "") for k in sf.ALERTS_COLUMNS}
            row["_t_rx"] = t_rx
            self.alert_rows.append(row)
            if not replay:
                new.append(row)
        return new

    async def _cue(self, row: dict) -> None:
        args = self.cues.plan(row)
        sent = []
        if args is not None:
            self._tokens = (self._tokens + 1) & 0xFF
            frame = self.cues.command(self._tokens, args)
            ok = await self.t.send_command(frame)
            self._writer.append(frame)
            self.latency_buzz_s.append(time.perf_counter() - row["_t_rx"])
            sent.append(f"buzz:{args['pattern']}" if ok else f"buzz:{args['pattern']}:link-down")
        snd = self.cues.sound(row)
        if snd:
            sent.append(snd)
        row["sent"] = "+".join(sent)
        self._tables["alerts"].append(pd.DataFrame([row], columns=sf.ALERTS_COLUMNS))
        self._tables["alerts"].flush()
        self.message(f"ALERT {row['kind']} at {row['t_s'] / 60:.1f} min ({row['value']:+.1f} deg)"
                     f"{' -> ' + row['sent'] if row['sent'] else ''}")

    # ------------------------------------------------------------------ periodic
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self.flush()
            await self._expire_requests()
            now = time.monotonic()
            if self.duration_s is not None and now - self.started >= self.duration_s:
                self.stop()
            if self.idle_exit_s is not None and self.connected and now - self._last_rx >= self.idle_exit_s \
                    and self.rx_samples and not self._stop.is_set():  # said once, not on every tick
                self.message(f"no samples for {self.idle_exit_s:g} s: ending the session")
                self.stop()
            self._wake()

    def flush(self) -> None:
        self._flushed = time.monotonic()
        if self._writer:
            self._writer.flush()
        for tab in self._tables.values():
            tab.flush()

    # ------------------------------------------------------------------ end
    def _finish(self) -> dict:
        self.flush()
        seq = self.decoder.seq
        open_holes = [tuple(m) for m in seq.missing]
        for a, b in open_holes:
            seq.abandon(a, b)
        try:
            res = self.analyzer.finish()
        except InputError as exc:
            self.message(f"no analysis: {exc}")
            res = None
        for tab in self._tables.values():
            tab.close()
        self._writer.close()
        st = self.stats()
        if res is not None:
            # alerts the analyser made final only now, at the end: recorded, but the run is over (not sent)
            for row in res.alerts.iloc[len(self.alert_rows):].to_dict("records"):
                row["sent"] = ""
                self.alert_rows.append(row)
                self.message(f"alert {row['kind']} at {row['t_s'] / 60:.1f} min became final as the session ended")
            alerts = pd.DataFrame(self.alert_rows, columns=sf.ALERTS_COLUMNS)
            summary = dict(res.summary)
            summary["alerts"] = int(len(alerts))
            summary["link"] = st
            summary["missing_samples"] = int(seq.abandoned)
            summary["source"] = self.source
            summary["live"] = self.live_figures()
            sf.write_outputs(self.dir, res.steps, res.strides, alerts, summary, res.curves)
            self.summary = summary
        else:
            self.summary = {"link": st, "missing_samples": int(seq.abandoned)}
            sf.write_json_atomic(self.dir / "summary.json", self.summary)
        self.meta["end_time"] = _now_iso()
        sf.write_session_meta(self.dir, self.meta)
        self.message(f"session saved in {self.dir}: {st['samples_received']} samples, "
                     f"{st['samples_backfilled']} backfilled, {seq.abandoned} missing")
        if self._msg_fh:
            self._msg_fh.close()
        return self.summary


_T_END = sf.STRIDES_COLUMNS.index("t_end_s")
_TICK_S = 1.0     # stop conditions, request timeouts and the flush of a stalled link are looked at this often
_SCALE = np.array([w.ANGLE_LSB_DEG] * 3 + [w.ACC_LSB_G] * 3 + [w.GYRO_LSB_DPS] * 3)   # wire units -> deg, g, dps


@functools.lru_cache(maxsize=64)
def _offsets_us(n: int, period_q: int) -> np.ndarray:
    """Sample times within a frame after its first, us (the same arithmetic as frames.decode_data_frames)."""
    out = np.arange(n) * (period_q * w.PERIOD_LSB_US)
    out.flags.writeable = False
    return out


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
