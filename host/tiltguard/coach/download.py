"""Download logged runs from the clip's flash log into session folders (firmware/PROTOCOL.md 3, log commands).

The clip's log is one range of sample indices ``[first_seq, end_seq)`` (``list_logs``); ``download_log``
replays the stored log frames in order. Runs are told apart on the host: a run ends where the next
log frame does not continue it in time (the device clock restarted, or samples are missing for longer
than ``MAX_HOLE_S``). Each run becomes ``DIR/<start>-s<first_seq>/`` holding ``stream.tgl`` (the log
frames exactly as received, damaged ones too) and ``session.json`` (``source: "download"``).

Everything is rebuilt from ``stream.tgl`` on the next run, so an interrupted download continues where
the file ends, and a second download of the same clip finds every run in place and creates nothing.
"""

from __future__ import annotations

import datetime as dt
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tiltguard.errors import TiltguardError
from tiltguard.formats.session import LOG_NAME, META_FILE, read_json, write_session_meta
from tiltguard.formats.sessionlog import SessionLogWriter, read_sessionlog
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w

MAX_HOLE_S = 10.0  # missing samples inside a run for at most this long; a longer silence starts a new run
STALL_S = 5.0  # no log frame for this long during a transfer = stalled
REPLY_TIMEOUT_S = 1.0
REPLY_TRIES = 3
CHECKPOINT_S = 1.0  # session.json / stream.tgl flushed at least this often during a transfer
PROGRESS_S = 5.0  # a progress line this often during a long transfer
BOARDS = {0: "ref", 1: "m5"}  # get_info board ids (firmware/app.py BOARD_IDS)
IMUS = {0: "LSM6DSV16X", 1: "MPU6886"}
ESPRESSIF_VIDS = (0x303A, 0x1A86, 0x10C4)  # ESP32-S3 USB (XIAO), CH9102 (M5StickC Plus2), CP210x


class ClipError(TiltguardError):
    """The clip is missing, silent, not a tiltguard, refuses a command, or the transfer stalled."""


Item = tuple[bytes, "fr.Frame | fr.FrameError"]


# ---- links ------------------------------------------------------------------------------------
class SerialLink:
    """Command frames out, decoded frames in, over a serial port (COBS framing, PROTOCOL.md 1.3).

    Rejected chunks are returned as FrameError items (not dropped) so damaged log records are seen.
    """

    def __init__(self, port: str, baud: int = 115200, ser=None):
        """Open ``port`` with pyserial (or use ``ser``, any object with pyserial's read/write/in_waiting)."""
        import serial

        from tiltguard.protocol.serial import Deframer

        try:
            self.ser = ser if ser is not None else serial.Serial(port, baud, timeout=0.1, write_timeout=2)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ClipError(f"{port}: cannot open the serial port ({_short(exc)})") from None
        self.name = port
        self.kind = "serial"
        self.tail = b""
        self.deframer = Deframer()
        self.rx_bytes = 0
        self.serial_number = None if ser is not None else _usb_serial_number(port)
        self.device_extra = {"serial_number": self.serial_number} if self.serial_number else {}

    def send(self, frame: bytes) -> None:
        from tiltguard.protocol.serial import frame_serial

        try:
            self.ser.write(frame_serial(frame))
        except Exception as exc:  # noqa: BLE001 - pyserial raises several types for a vanished port
            raise ClipError(f"{self.name}: write failed ({_short(exc)})") from None

    def recv(self, timeout_s: float) -> list[Item]:
        """Frames (or rejections) that arrived within timeout_s (returns early once something came)."""
        try:
            self.ser.timeout = max(0.0, timeout_s)
            data = self.ser.read(1)
            if data:
                data += self.ser.read(self.ser.in_waiting)
        except Exception as exc:  # noqa: BLE001
            raise ClipError(f"{self.name}: read failed ({_short(exc)}); was the clip unplugged?") from None
        self.rx_bytes += len(data)
        if data:
            self.tail = (self.tail + data)[-256:]  # what a foreign device said, for the error message
        out: list[Item] = []
        before = self.deframer.rejects
        for chunk in self.deframer.feed(data):
            try:
                out.append((chunk, fr.decode_frame(chunk)))
            except fr.FrameError as exc:
                out.append((chunk, exc))
        if self.deframer.rejects > before:
            out.append((b"", fr.FrameError("truncated", "undecodable serial chunk")))
        return out

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # noqa: BLE001
            pass


class TransportLink:
    """Any ``tiltguard.transport`` Transport (BLE, serial) behind the same send/recv, on its own event loop.

    The transports are async (bleak); a download is request/response, so a background thread runs the
    loop and hands frames over through a queue. Rejected chunks come as FrameError items without bytes.
    """

    def __init__(self, transport, open_timeout_s: float = 30.0):
        import asyncio
        import queue
        import threading

        self.t = transport
        self.kind = getattr(transport, "kind", "link")
        self.q: queue.Queue = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.rx_bytes = 0
        self.serial_number = None
        try:
            self._call(transport.open(), open_timeout_s)
        except BaseException:
            self._stop()
            raise
        self.name = getattr(transport, "description", self.kind)
        ad = getattr(transport, "clip", None)  # BLE: the advertisement it connected to
        self.device_extra = {"name": ad.name, "address": ad.address} if ad is not None else {}
        self._pump = asyncio.run_coroutine_threadsafe(self._consume(), self.loop)

    def _call(self, coro, timeout_s: float):
        import asyncio

        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)
        except TiltguardError:
            raise
        except TimeoutError:
            raise ClipError(f"{self.kind}: no answer within {timeout_s:.0f} s") from None
        except Exception as exc:  # noqa: BLE001 - bleak/dbus errors become one line
            raise ClipError(f"{self.kind}: {_short(exc)}") from None

    async def _consume(self) -> None:
        try:
            async for item in self.t.frames():
                self.q.put(item)
        except Exception as exc:  # noqa: BLE001
            self.q.put(exc)
        self.q.put(None)

    def send(self, frame: bytes) -> None:
        if not self._call(self.t.send_command(frame), 10.0):
            raise ClipError(f"{self.name}: the link is down (command not sent)")

    def recv(self, timeout_s: float) -> list[Item]:
        import queue

        from tiltguard.transport.base import LinkEvent, Received

        items = []
        try:
            items.append(self.q.get(timeout=max(0.0, timeout_s)))
            while True:
                items.append(self.q.get_nowait())
        except queue.Empty:
            pass
        out: list[Item] = []
        for it in items:
            if isinstance(it, Received):
                self.rx_bytes += len(it.raw)
                out.append((it.raw, it.frame))
            elif isinstance(it, LinkEvent):
                if it.kind in ("disconnected", "end"):
                    raise ClipError(f"{self.name}: link lost ({it.message or it.kind})")
                if it.kind == "bad_input" and it.data.get("reason") not in (None, "no_frames"):
                    self.rx_bytes += 1
                    for _ in range(max(1, int(it.data.get("count", 1)))):
                        out.append((b"", fr.FrameError(str(it.data["reason"]), it.message)))
            elif isinstance(it, Exception):
                raise ClipError(f"{self.name}: {_short(it)}")
            elif it is None:
                raise ClipError(f"{self.name}: link closed")
        return out

    def close(self) -> None:
        import concurrent.futures

        try:
            self._call(self.t.close(), 5.0)
        except TiltguardError:
            pass
        self._pump.cancel()  # ends the frames() iteration inside the loop, then the loop itself
        concurrent.futures.wait([self._pump], 2.0)
        self._stop()

    def _stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2.0)
        if not self.thread.is_alive():
            self.loop.close()


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def _usb_serial_number(port: str) -> str | None:
    try:
        from serial.tools import list_ports

        for p in list_ports.comports():
            if p.device == port:
                return p.serial_number
    except Exception:  # noqa: BLE001
        pass
    return None


def find_serial_port() -> str:
    """The one serial port that looks like a clip (Espressif / CH9102 / CP210x USB), else a one-line error."""
    from serial.tools import list_ports

    ports = list(list_ports.comports())
    clips = [p for p in ports if p.vid in ESPRESSIF_VIDS]
    if len(clips) == 1:
        return clips[0].device
    if not clips:
        seen = ", ".join(p.device for p in ports) or "none"
        raise ClipError(f"no clip found on any serial port (ports seen: {seen}); plug it in or give --serial PORT")
    raise ClipError("several possible clips: " + ", ".join(p.device for p in clips) + "; pick one with --serial PORT")


# ---- request / response -----------------------------------------------------------------------
class Clip:
    """Commands with token-matched replies; everything else that arrives waits in ``backlog``."""

    def __init__(self, link):
        self.link = link
        self.backlog: deque[Item] = deque()
        self._token = 0
        self.valid_frames = 0

    def request(self, name: str, timeout_s: float | None = None, tries: int | None = None, **args) -> dict:
        """Send a command and return its parsed OK reply; raise ClipError (one line) otherwise."""
        timeout_s = REPLY_TIMEOUT_S if timeout_s is None else timeout_s
        for _ in range(REPLY_TRIES if tries is None else tries):
            self._token = (self._token + 1) & 0xFF
            tok = self._token
            self.link.send(commands.encode(name, tok, **args))
            end = time.monotonic() + timeout_s
            while (left := end - time.monotonic()) > 0:
                items = self.link.recv(min(left, 0.2))
                for i, (raw, f) in enumerate(items):
                    if isinstance(f, fr.Reply) and f.token == tok and f.cmd == commands.CODES[name]:
                        self.valid_frames += 1
                        self.backlog.extend(items[i + 1 :])  # frames right behind the reply (a download)
                        if not f.ok:
                            raise ClipError(f"the clip refused {name}: {f.error}")
                        try:
                            return commands.parse_reply(f)
                        except fr.FrameError as exc:
                            raise ClipError(f"bad {name} reply from the clip ({exc})") from None
                    if not isinstance(f, fr.FrameError):
                        self.valid_frames += 1
                    if not isinstance(f, fr.Reply):  # stale replies are dropped
                        self.backlog.append((raw, f))
        raise ClipError(f"{self.link.name}: no reply to {name} (clip not answering)")

    def next_items(self, timeout_s: float) -> list[Item]:
        if self.backlog:
            out = list(self.backlog)
            self.backlog.clear()
            return out
        return self.link.recv(timeout_s)

    def drain(self, quiet_s: float = 0.15) -> None:
        """Throw away whatever is still arriving (frames of a download another host left running)."""
        end = time.monotonic() + 2.0
        self.backlog.clear()
        while time.monotonic() < end and self.link.recv(quiet_s):
            pass


@dataclass
class ClipInfo:
    info: dict
    status: dict
    logs: dict
    host_now_s: float  # host unix time when the status was taken

    @property
    def device(self) -> dict:
        i = self.info
        return {"name": "tiltguard", "firmware": i["firmware"], "board": BOARDS.get(i["board"], i["board"]),
                "imu": IMUS.get(i["imu"], i["imu"]), "protocol": i["protocol"]}

    @property
    def logging(self) -> bool:
        return bool(self.status["state"] & w.ST_LOGGING)


def identify(clip: Clip) -> ClipInfo:
    """get_info + get_status + list_logs; tells "not answering" from "not a tiltguard"."""
    try:
        clip.request("abort_download", tries=1)  # a download a previous host left running would mix in
    except ClipError:
        pass
    clip.drain()
    try:
        info = clip.request("get_info")
    except ClipError:
        if clip.link.rx_bytes and not clip.valid_frames:
            hint = ""
            if b">>>" in getattr(clip.link, "tail", b""):
                hint = "; it shows a MicroPython prompt: a clip whose link is set to BLE only, or no firmware"
            raise ClipError(f"{clip.link.name}: the device there is not a tiltguard clip "
                            f"({clip.link.rx_bytes} bytes received, none of them a tiltguard frame{hint})") from None
        raise ClipError(f"{clip.link.name}: the clip is not answering (is it switched on, with its link set to "
                        "serial or both?)") from None
    if info["protocol"] != w.PROTOCOL_VERSION:
        raise ClipError(f"{clip.link.name}: clip speaks protocol {info['protocol']}, this tiltguard speaks "
                        f"{w.PROTOCOL_VERSION}; update one of them")
    t0 = time.time()
    status = clip.request("get_status")
    host_now = (t0 + time.time()) / 2
    logs = clip.request("list_logs")
    return ClipInfo(info, status, logs, host_now)


# ---- what a stream.tgl holds ----------------------------------------------------------------------
@dataclass
class Damaged:
    """A log record that arrived but failed its checks (torn or corrupt on the clip, or hit on the link)."""

    reason: str
    after_seq: int  # one past the last good sample before it
    claimed_seq: int | None = None  # from its (unverified) header
    claimed_n: int | None = None

    def as_dict(self) -> dict:
        return {"reason": self.reason, "after_seq": self.after_seq, "claimed_seq": self.claimed_seq,
                "claimed_n": self.claimed_n}


def _claimed(raw: bytes) -> tuple[int | None, int | None]:
    if len(raw) >= w.DATA_HDR_SIZE and (raw[0] & 0x0F) in fr.LOG_TYPES:
        return struct.unpack_from("<I", raw, 1)[0], raw[11]
    return None, None


@dataclass
class Run:
    """One run's download state; rebuilt from its stream.tgl on resume."""

    dir: Path
    first_seq: int
    first_t_us: int
    fingerprint: str  # CRC of the run's first log frame: tells this clip's run from another's
    end_seq: int = 0  # one past the newest sample received
    last_seq: int = 0  # first sample of the newest frame, with its time, period and type
    last_t_us: int = 0
    period_q: int = 0
    type: int = 0
    samples: int = 0
    records: int = 0
    holes: list[list[int]] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    complete: bool = False
    covers_end: int = 0  # this run accounts for indices [first_seq, covers_end) of the clip's log
    writer: SessionLogWriter | None = None
    new: bool = False  # created or extended in this download

    @property
    def run_id(self) -> str:
        return f"s{self.first_seq}-{self.fingerprint}"

    @property
    def rate_hz(self) -> float:
        return 4e6 / self.period_q if self.period_q else float("nan")

    def continues(self, f: fr.DataFrame) -> bool:
        """Does log frame f belong to this run (same rate and mode, time consistent, hole short enough)?"""
        if f.period_q != self.period_q or f.type != self.type or f.seq + f.n <= self.end_seq:
            return False
        period_us = self.period_q * w.PERIOD_LSB_US
        span_us = (f.seq - self.last_seq) * period_us
        err_us = f.t_us - (self.last_t_us + span_us)
        hole_s = (f.seq - self.end_seq) * period_us / 1e6
        return abs(err_us) <= 2 * period_us + 1e-3 * span_us and hole_s <= MAX_HOLE_S

    def add(self, f: fr.DataFrame) -> None:
        if f.seq > self.end_seq and self.samples:
            self.holes.append([self.end_seq, f.seq])
        self.last_seq, self.last_t_us, self.period_q, self.type = f.seq, f.t_us, f.period_q, f.type
        self.samples += f.seq + f.n - max(f.seq, self.end_seq)  # an overlap is not counted twice
        self.end_seq = f.seq + f.n
        self.records += 1


def _subtract(holes: list[list[int]], a: int, b: int) -> int:
    """Remove [a, b) from the hole list in place; returns how many missing indices it filled."""
    out, filled = [], 0
    for lo, hi in holes:
        x, y = max(lo, a), min(hi, b)
        if x >= y:
            out.append([lo, hi])
            continue
        filled += y - x
        out += [[lo, x]] if lo < x else []
        out += [[y, hi]] if y < hi else []
    holes[:] = out
    return filled


def scan_run(d: Path) -> Run | None:
    """A run folder's state from its stream.tgl (log frames only; None when it holds none)."""
    log = read_sessionlog(d / LOG_NAME)
    good: list[tuple[fr.DataFrame, bytes]] = []
    damaged: list[Damaged] = []
    end = -1
    for raw in log.frames:
        try:
            f = fr.decode_frame(raw)
        except fr.FrameError as exc:
            damaged.append(Damaged(exc.reason, end, *_claimed(raw)))
            continue
        if isinstance(f, fr.DataFrame) and f.is_log:
            good.append((f, raw))
            end = max(end, f.seq + f.n)
    if not good:
        return None
    good.sort(key=lambda x: x[0].seq)  # holes filled later were appended after later frames
    f, raw = good[0]
    run = Run(d, f.seq, f.t_us, f"{fr.crc16(raw):04x}", end_seq=f.seq, period_q=f.period_q, type=f.type)
    for f, _ in good:
        if f.seq >= run.end_seq:  # else a duplicate: the reader keeps the first
            run.add(f)
    run.damaged = damaged
    return run


def local_runs(out_dir: Path) -> list[Run]:
    """Runs downloaded before into out_dir (folders whose session.json says source "download")."""
    runs = []
    if not out_dir.is_dir():
        return runs
    for meta_path in sorted(out_dir.glob(f"*/{META_FILE}")):
        try:
            meta = read_json(meta_path)
        except TiltguardError:
            continue
        if not isinstance(meta, dict) or meta.get("source") != "download" or not (meta_path.parent / LOG_NAME).exists():
            continue
        try:
            run = scan_run(meta_path.parent)
        except TiltguardError:
            continue
        if run is None:
            continue
        dl = meta.get("download", {})
        run.meta = meta
        run.complete = dl.get("state") == "complete"
        run.covers_end = int(dl.get("covers", [run.first_seq, run.end_seq])[1]) if run.complete else run.end_seq
        runs.append(run)
    return runs


# ---- the download ---------------------------------------------------------------------------------
@dataclass
class Result:
    runs: list[Run]  # every run of this clip in out_dir (old and new)
    new_runs: list[Run]
    erased: bool = False

    @property
    def nothing_new(self) -> bool:
        return not self.new_runs


def _iso(t_s: float | None) -> str | None:
    if t_s is None:
        return None
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).isoformat(timespec="milliseconds")


def _folder_name(start_s: float | None, first_seq: int) -> str:
    if start_s is None:
        return f"run-s{first_seq}"
    return dt.datetime.fromtimestamp(start_s, dt.timezone.utc).strftime("%Y%m%d-%H%M%S") + f"-s{first_seq}"


class Downloader:
    """Pull the clip's runs into out_dir; see download()."""

    def __init__(self, clip: Clip, out_dir: Path, echo: Callable[[str], None] = print, stall_s: float = STALL_S):
        self.clip = clip
        self.out = Path(out_dir)
        self.echo = echo
        self.stall_s = stall_s
        self.ci = identify(clip)
        self.runs: list[Run] = []

    # -- start time: only knowable for runs recorded since the clip last started ----------------------
    def start_time(self, run: Run, last_power_on: bool) -> tuple[float | None, str]:
        """Wall-clock start of a run from the clip's clock (microseconds since power-on), when knowable.

        ``last_power_on``: no later run in the log shows a restart (a clock that starts again lower)."""
        st = self.ci.status
        t_now, next_seq = st["t_us"], st["next_seq"]
        period_us = run.period_q * w.PERIOD_LSB_US
        start = self.ci.host_now_s - (t_now - run.first_t_us) / 1e6
        if run.last_t_us > t_now or not last_power_on:
            return None, "unknown: the clip restarted after this run (its clock counts from power-on)"
        # the index kept pace with the clock ever since (sampling went on; dropped samples skip indices too)
        expect = (t_now - run.first_t_us) / period_us
        if abs((next_seq - run.first_seq) - expect) <= 0.01 * expect + 2.0 * 1e6 / period_us:  # 1 % + 2 s
            return start, "clip clock, same power-on as the download"
        if next_seq == self.ci.logs["end_seq"]:  # idle since the last logged sample: the clock ran on alone
            return start, "clip clock, assuming the clip was not switched off after this run"
        return None, "unknown: the clip may have restarted after this run"

    def _date(self, runs: list[Run]) -> None:
        """Start times and dated folder names for new runs, once every run is known (a later run can
        reveal a restart: its clock starts below where the one before ended)."""
        ordered = sorted(runs, key=lambda r: r.first_seq)
        last_boot = 0
        for i in range(1, len(ordered)):
            if ordered[i].first_t_us < ordered[i - 1].last_t_us:
                last_boot = i
        for i, r in enumerate(ordered):
            if not r.new or r.meta.get("start_time"):
                continue
            start_s, how = self.start_time(r, i >= last_boot)
            r.meta["start_time"], r.meta["start_time_source"] = _iso(start_s), how
            if start_s is not None and r.dir.name.startswith("run-s") and r.writer is None:
                d = self.out / _folder_name(start_s, r.first_seq)
                if not d.exists():
                    r.dir.rename(d)
                    r.dir = d

    def since_seq(self, since: str | int | None) -> tuple[int, str]:
        """First sample index to consider for --since (an index, or an ISO date within this power-on)."""
        first = self.ci.logs["first_seq"]
        if since is None:
            return first, ""
        if isinstance(since, int):
            return max(first, since), ""
        when = _parse_date(since)
        st = self.ci.status
        rate = self.ci.logs["rate_hz"] or 200
        boot_s = self.ci.host_now_s - st["t_us"] / 1e6
        if when.timestamp() < boot_s:
            return first, (f"--since {since}: runs recorded before the clip last started have no known date; "
                           "they are included")
        back = int((self.ci.host_now_s - when.timestamp()) * rate)
        return max(first, st["next_seq"] - back), ""

    # -- ownership: a local run is this clip's when the clip's record at its start matches the file ---
    def owned(self, run: Run) -> bool:
        lo, hi = self.ci.logs["first_seq"], self.ci.logs["end_seq"]
        if not lo <= run.first_seq < hi:
            return False
        got, _ = self._fetch(run.first_seq, 1, lambda raw, f: None, probe=True)
        return bool(got) and f"{fr.crc16(got[0]):04x}" == run.fingerprint

    # -- transfers ---------------------------------------------------------------------------------
    def _fetch(self, from_seq: int, count: int, on_frame, probe: bool = False) -> tuple[list[bytes], int]:
        """download_log(from_seq, count): feed (raw, frame-or-error) to on_frame until download_done.

        Returns the first log frame (probe) and the samples the clip says it sent (download_done)."""
        self.clip.request("download_log", from_seq=from_seq, count=count)
        first: list[bytes] = []
        last_rx = time.monotonic()
        while True:
            items = self.clip.next_items(0.2)
            now = time.monotonic()
            if items:
                last_rx = now
            for raw, f in items:
                if isinstance(f, fr.Event) and f.code == w.EV_DOWNLOAD_DONE:
                    return first, f.value
                if isinstance(f, (fr.Event, fr.Status, fr.Reply)):
                    continue
                if isinstance(f, fr.DataFrame) and not f.is_log:
                    continue  # a live stream someone left running
                if probe:
                    if isinstance(f, fr.DataFrame) and not first:
                        first.append(raw)
                    continue
                on_frame(raw, f)
            if now - last_rx > self.stall_s:
                try:
                    self.clip.request("abort_download", tries=1)
                except ClipError:
                    pass
                raise ClipError(f"transfer stalled: no data from the clip for {self.stall_s:.0f} s (run the same "
                                "command again to continue where it stopped)")

    def _open(self, f: fr.DataFrame, raw: bytes) -> Run:
        name = _folder_name(None, f.seq)  # dated at the end of the download (_date)
        d = self.out / name
        k = 1
        while d.exists():  # another clip's run with the same index
            k += 1
            d = self.out / f"{name}-{k}"
        run = Run(d, f.seq, f.t_us, f"{fr.crc16(raw):04x}", end_seq=f.seq, period_q=f.period_q, type=f.type)
        run.meta = {"start_time": None, "start_time_source": "not known yet (download interrupted)"}
        run.new = True
        self.runs.append(run)
        return run

    def _writer(self, run: Run) -> SessionLogWriter:
        if run.writer is None:
            run.writer = SessionLogWriter(run.dir / LOG_NAME)
        return run.writer

    def write_meta(self, run: Run) -> None:
        """session.json from what the run holds (atomic; also the checkpoint a resume starts from)."""
        ci = self.ci
        m = run.meta
        hole_n = sum(b - a for a, b in run.holes)
        meta = {
            "start_time": m.get("start_time"),
            "source": "download",
            "sample_rate_hz": round(run.rate_hz, 3),
            "mode": "full" if run.type in fr.FULL_TYPES else "compact",
            "simulated": False,
            "device": {**ci.device, "link": getattr(self.clip.link, "kind", "serial"), "port": self.clip.link.name,
                       **getattr(self.clip.link, "device_extra", {})},
            "notes": m.get("notes") or "downloaded from the clip's flash log",
            **{k: v for k, v in m.items() if k in ("athlete",)},
            "run": {"id": run.run_id, "first_seq": run.first_seq, "end_seq": run.end_seq,
                    "first_t_us": run.first_t_us, "fingerprint": run.fingerprint},
            "download": {
                "state": "complete" if run.complete else "partial",
                "covers": [run.first_seq, run.covers_end if run.complete else run.end_seq],
                "samples": run.samples, "records": run.records, "duration_s": round(
                    (run.end_seq - run.first_seq) * run.period_q * w.PERIOD_LSB_US / 1e6, 3),
                "holes": run.holes, "hole_samples": hole_n,
                "damaged_records": [x.as_dict() for x in run.damaged],
                "verified": run.complete,
                "start_time_source": m.get("start_time_source") or m.get("download", {}).get("start_time_source"),
                "downloaded_at": _iso(time.time()),
                "clip_log_lost_samples": ci.logs["lost"],
            },
        }
        for k in ("analysis",):
            if k in m:
                meta[k] = m[k]
        run.meta = {**m, **meta}
        write_session_meta(run.dir, meta)

    def pull(self, since=None) -> Result:
        """Plan what is missing, transfer it, finish runs; returns every run of this clip in out_dir."""
        logs = self.ci.logs
        lo, note = self.since_seq(since)
        if note:
            self.echo(note)
        hi = logs["end_seq"]
        mine = [r for r in local_runs(self.out) if self.owned(r)]
        self.runs = list(mine)
        covered = sorted([r.first_seq, r.covers_end] for r in mine)
        todo, cur = [], lo
        for a, b in covered:
            if b <= cur:
                continue
            if a > cur:
                todo.append([cur, min(a, hi)])
            cur = max(cur, b)
        if cur < hi:
            todo.append([cur, hi])
        todo = [[a, b] for a, b in todo if b > a]
        for a, b in todo:
            self._transfer(a, b, mine)
        # the run at the end of the log is finished unless the clip is still recording it
        for r in self.runs:
            if not r.complete and r.new and r.end_seq >= hi and not self.ci.logging:
                r.complete, r.covers_end = True, hi
        for r in self.runs:
            if r.new and r.writer is not None:
                r.writer.close()
                r.writer = None
        self._date(self.runs)
        for r in self.runs:
            if r.new:
                self.write_meta(r)
        self.runs.sort(key=lambda r: r.first_seq)
        return Result(self.runs, [r for r in self.runs if r.new])

    def _transfer(self, a: int, b: int, mine: list[Run]) -> None:
        run = next((r for r in mine if not r.complete and r.end_seq == a), None)
        now = time.monotonic()
        state = {"run": run, "pending": [], "last_flush": now, "last_echo": now, "got": 0, "touched": []}
        hi = self.ci.logs["end_seq"]
        if run is not None:
            run.new = True
            self.echo(f"resuming {run.dir.name} at sample {a}")

        def on_frame(raw: bytes, f) -> None:
            cur: Run | None = state["run"]
            if isinstance(f, fr.FrameError):
                after = cur.end_seq if cur else a
                state["pending"].append((raw, Damaged(f.reason, after, *_claimed(raw))))
                return
            if cur is not None and f.seq + f.n <= cur.end_seq:
                return  # already have it
            if cur is None or not cur.continues(f):
                if cur is not None:
                    self._close(cur, f.seq, state)
                cur = state["run"] = self._open(f, raw)
            if cur not in state["touched"]:
                state["touched"].append(cur)
            state["got"] += f.n
            for praw, dmg in state["pending"]:  # damage seen inside this run
                cur.damaged.append(dmg)
                if 5 <= len(praw) <= w.MAX_FRAME:
                    self._writer(cur).append(praw)
            state["pending"] = []
            self._writer(cur).append(raw)
            cur.add(f)
            now = time.monotonic()
            if now - state["last_flush"] > CHECKPOINT_S:
                state["last_flush"] = now
                cur.writer.flush()
                self.write_meta(cur)
            if now - state["last_echo"] > PROGRESS_S:
                state["last_echo"] = now
                pct = 100 * (cur.end_seq - a) / max(1, hi - a)
                self.echo(f"  ... {cur.dir.name}: {cur.samples} samples so far ({min(pct, 100):.0f}% of this transfer)")

        try:
            # to the end of the log: count 0, which also brings a torn record the clip set aside past end_seq
            _, sent = self._fetch(a, 0 if b >= self.ci.logs["end_seq"] else b - a, on_frame)
            if sent > state["got"]:  # frames lost on the link: ask again for exactly the holes
                self._refill(state["touched"], a)
        except BaseException:
            cur = state["run"]
            if cur is not None and cur.writer is not None:  # keep what arrived: the next run resumes from it
                cur.writer.close()
                cur.writer = None
                self.write_meta(cur)
            try:  # best effort: stop the clip sending (the next download also aborts first)
                self.clip.request("abort_download", tries=1, timeout_s=0.3)
            except Exception:  # noqa: BLE001 - the link may be gone
                pass
            raise
        cur = state["run"]
        if cur is not None:
            for praw, dmg in state["pending"]:  # damage after the last good record: the run's torn tail
                cur.damaged.append(dmg)
                if 5 <= len(praw) <= w.MAX_FRAME:
                    self._writer(cur).append(praw)
            if state["pending"]:
                self.write_meta(cur)
            if b < self.ci.logs["end_seq"]:  # a run already on disk follows: this one ended
                self._close(cur, b, state)

    def _refill(self, runs: list[Run], since: int) -> None:
        for run in runs:
            for h0, h1 in [h for h in run.holes if h[0] >= since]:
                def fill(raw: bytes, f, run=run, h0=h0, h1=h1) -> None:
                    if isinstance(f, fr.DataFrame) and f.seq < h1 and f.seq + f.n > h0:
                        new = _subtract(run.holes, f.seq, f.seq + f.n)
                        if new:
                            self._writer(run).append(raw)
                            run.samples += new
                            run.records += 1

                self._fetch(h0, h1 - h0, fill)
            if run.writer is not None:
                run.writer.flush()
            self.write_meta(run)

    def _close(self, run: Run, covers_end: int, state) -> None:
        for praw, dmg in state["pending"]:
            run.damaged.append(dmg)
            if 5 <= len(praw) <= w.MAX_FRAME:
                self._writer(run).append(praw)
        state["pending"] = []
        run.complete, run.covers_end = True, covers_end
        if run.writer is not None:
            run.writer.close()
            run.writer = None
        self.write_meta(run)

    # -- erase -------------------------------------------------------------------------------------
    def erase_if_verified(self, res: Result) -> str:
        """Erase the clip's log only when every index it holds is accounted for by a complete run on disk."""
        logs = self.clip.request("list_logs")
        status = self.clip.request("get_status")
        if status["state"] & w.ST_LOGGING:
            raise ClipError("not erasing: the clip is recording a run right now")
        if logs["end_seq"] != self.ci.logs["end_seq"] or logs["first_seq"] != self.ci.logs["first_seq"]:
            raise ClipError("not erasing: the clip logged more since the download started; download again first")
        cur = logs["first_seq"]
        for r in sorted(res.runs, key=lambda r: r.first_seq):
            if r.covers_end <= cur:
                continue
            if r.first_seq > cur or not r.complete:
                raise ClipError(f"not erasing: samples from {cur} on are not safely downloaded")
            disk = scan_run(r.dir)  # what is on disk now against what session.json says was received
            said = r.meta.get("download", {})
            if disk is None or disk.samples != said.get("samples") or disk.end_seq != r.meta.get("run", {}).get("end_seq"):
                raise ClipError(f"not erasing: {r.dir.name}/stream.tgl does not hold what was received")
            cur = r.covers_end
        if cur < logs["end_seq"]:
            raise ClipError(f"not erasing: samples from {cur} on are not safely downloaded")
        self.clip.request("erase_logs", magic=w.ERASE_MAGIC)
        after = self.clip.request("list_logs")
        return f"erased the clip's log ({len(res.runs)} run(s) verified on disk; log now {after['fill_pct']}% full)"


def _parse_date(text: str) -> dt.datetime:
    try:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TiltguardError(f"--since {text!r}: give a sample index or an ISO-8601 date/time") from None
    return d if d.tzinfo else d.astimezone()  # a bare date is local time


def parse_since(text: str | None) -> str | int | None:
    if text is None:
        return None
    t = text.strip()
    if t.isdigit():
        return int(t)
    _parse_date(t)
    return t


# ---- analysis ------------------------------------------------------------------------------------
def analyse(run: Run) -> str:
    """Run `tiltguard analyze` on the run's folder; returns a one-line outcome (never raises)."""
    import argparse

    try:
        from tiltguard.core import cli as core_cli
    except ImportError:
        run.meta["analysis"] = {"ok": False, "error": "analysis not installed"}
        return "analysis not available"
    args = argparse.Namespace(input=str(run.dir), out=None, config=None, no_curves=False, quiet=True)
    try:
        core_cli.run(args)
        outcome = {"ok": True}
        text = "analysed"
    except TiltguardError as exc:
        outcome = {"ok": False, "error": str(exc)}
        text = f"not analysed: {exc}"
    except Exception as exc:  # noqa: BLE001 - a broken analysis must not lose a finished download
        outcome = {"ok": False, "error": f"{exc.__class__.__name__}: {_short(exc)}"}
        text = f"analysis failed: {outcome['error']}"
    meta = read_json(run.dir / META_FILE)  # analyze may rewrite session.json: keep its version
    meta.pop("format", None)
    meta["analysis"] = outcome
    run.meta = meta
    write_session_meta(run.dir, meta)
    return text


def describe(run: Run) -> str:
    dur = (run.end_seq - run.first_seq) * run.period_q * w.PERIOD_LSB_US / 1e6
    start = run.meta.get("start_time") or "start unknown"
    state = "complete, verified (CRC + sequence)" if run.complete else "PARTIAL (run again to continue)"
    out = f"{run.dir.name}: {run.samples} samples, {dur:.1f} s, {start}, {state}"
    if run.holes:
        out += f"; {sum(b - a for a, b in run.holes)} samples missing in {len(run.holes)} hole(s)"
    for d in run.damaged:
        where = f"at sample {d.claimed_seq} ({d.claimed_n} samples)" if d.claimed_seq is not None else \
            f"after sample {d.after_seq}"
        out += f"; damaged record {where}: {d.reason}, dropped"
    return out


def download(link, out_dir: str | Path, since=None, erase: bool = False, analyse_runs: bool = True,
             echo: Callable[[str], None] = print, stall_s: float = STALL_S) -> Result:
    """Download every run not yet in out_dir, analyse the new ones, optionally erase the clip's log."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TiltguardError(f"{out}: exists and is not a folder")
    clip = Clip(link)
    dl = Downloader(clip, out, echo=echo, stall_s=stall_s)
    ci = dl.ci
    echo(f"clip on {link.name}: firmware {ci.info['firmware']}, board {ci.device['board']}, log holds samples "
         f"{ci.logs['first_seq']}..{ci.logs['end_seq']} ({ci.logs['fill_pct']}% full"
         + (f", {ci.logs['lost']} samples lost to rotation" if ci.logs["lost"] else "") + ")")
    res = dl.pull(since)
    for r in res.new_runs:
        line = describe(r)
        if analyse_runs and r.complete:
            line += "; " + analyse(r)
        echo(line)
    if res.nothing_new:
        echo(f"nothing new: all {len(res.runs)} run(s) on the clip are already in {out}")
    else:
        echo(f"{len(res.new_runs)} run(s) downloaded or continued into {out}")
    if erase:
        echo(dl.erase_if_verified(res))
        res.erased = True
    return res
