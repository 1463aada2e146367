"""`tiltguard download` host logic against a CPython stand-in of the clip's serial side.

The stand-in plays pyserial's part (write/read/in_waiting) and answers with frames from the host's own
encoders, so interruptions, stalls, silent and foreign devices can be staged exactly. The real firmware
is exercised in test_download.py.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import pytest

from tiltguard import cli
from tiltguard.coach import download as dl
from tiltguard.formats.session import read_session_meta
from tiltguard.formats.sessionlog import read_sessionlog
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.protocol.serial import Deframer, frame_serial

PERIOD_Q = w.period_q(200)
LOG_MTU = 3 + w.DATA_OVERHEAD + 9 * w.SAMPLE_COMPACT_SIZE  # 9 compact / 6 full samples per log frame


def values(n: int, seed: int, k: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).integers(-3000, 3000, (n, k)).astype("<i2")


class StandIn:
    """The clip's serial side: list_logs / download_log / erase_logs over a list of log frames."""

    def __init__(self, runs, t_now_us: int, next_seq: int | None = None, logging: bool = False):
        self.frames: list[tuple[int, bytes]] = []
        for seq0, t0, vals in runs:
            mode = w.MODE_FULL if vals.shape[1] == 9 else w.MODE_COMPACT
            t = t0 + np.arange(len(vals)) * PERIOD_Q // 4
            for f in fr.encode_data_frames(vals, seq0, t, PERIOD_Q, mode, mtu=LOG_MTU, log=True):
                self.frames.append((fr.decode_frame(f).seq, f))
        self.first = self.frames[0][0] if self.frames else 0
        last = fr.decode_frame(self.frames[-1][1]) if self.frames else None
        self.end = last.seq + last.n if last else 0
        self.t_now_us = t_now_us
        self.next_seq = self.end if next_seq is None else next_seq
        self.logging = logging
        self.out = bytearray()
        self.pending = None
        self.deframer = Deframer()
        self.timeout = 0.1
        self.sent = 0  # log frames sent
        self.die_after = self.stall_after = None
        self.lose_every = None  # drop every k-th log frame on the way (a lossy link)
        self.commands: list[str] = []

    # pyserial's surface
    def write(self, data: bytes) -> int:
        for chunk in self.deframer.feed(data):
            self.handle(fr.decode_frame(chunk))
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self.out)

    def read(self, n: int = 1) -> bytes:
        self.produce()
        if not self.out:
            time.sleep(min(self.timeout, 0.05))
            self.produce()
        take = bytes(self.out[:n])
        del self.out[:n]
        return take

    def close(self) -> None:
        pass

    def produce(self) -> None:
        while self.pending is not None and len(self.out) < 4000:
            if self.stall_after is not None and self.sent >= self.stall_after:
                return
            if self.die_after is not None and self.sent >= self.die_after:
                raise OSError(5, "Input/output error")
            f = next(self.pending, None)
            if f is None:
                self.pending = None
                return
            is_log = f[0] & 0x0F in fr.LOG_TYPES
            self.sent += is_log
            if is_log and self.lose_every and self.sent % self.lose_every == 0:
                continue
            self.out += frame_serial(f)

    def reply(self, c: fr.Command, payload: bytes = b"", err: int = 0) -> None:
        self.out += frame_serial(fr.encode_reply(c.token, c.cmd, err, payload))

    def handle(self, c: fr.Command) -> None:
        name = c.name
        self.commands.append(name)
        a = commands.decode_args(c)
        if name == "get_info":
            self.reply(c, commands.encode_reply_payload(c.cmd, protocol=1, board=0, imu=0, firmware="standin"))
        elif name == "get_status":
            st = fr.Status(w.ST_LOGGING if self.logging else 0, 90, 4000, 3, 0, 200, self.next_seq, 0, 0, self.first,
                           self.t_now_us)
            self.reply(c, fr.status_body(st))
        elif name == "list_logs":
            self.reply(c, commands.encode_reply_payload(c.cmd, first_seq=self.first, end_seq=self.end, lost=0,
                                                        segments=1, fill_pct=3, mode=0, rate_hz=200))
        elif name == "download_log":
            lo, cnt = a["from_seq"], a["count"]
            stop = lo + cnt if cnt else 1 << 40
            sel = [f for s, f in self.frames if s + fr.decode_frame(f).n > lo and s < stop] if self.frames else []
            self.reply(c, commands.encode_reply_payload(c.cmd, first_seq=max(lo, self.first),
                                                        count=max(0, min(stop, self.end) - max(lo, self.first))))
            n_sent = sum(fr.decode_frame(f).n for f in sel)
            done = fr.encode_event(fr.Event(w.EV_DOWNLOAD_DONE, self.next_seq, self.t_now_us, n_sent))
            self.pending = iter(sel + [done])
        elif name == "abort_download":
            self.pending = None
            self.reply(c, commands.encode_reply_payload(c.cmd, sent=0))
        elif name == "erase_logs":
            self.frames = []
            self.first = self.end
            self.reply(c)
        else:
            self.reply(c, err=w.ERR_UNKNOWN_COMMAND)


def link_to(standin) -> dl.SerialLink:
    return dl.SerialLink("standin", ser=standin)


def run_download(standin, out, **kw):
    lines: list[str] = []
    res = dl.download(link_to(standin), out, echo=lines.append, analyse_runs=False, **kw)
    return res, "\n".join(lines)


def log_seqs(session) -> np.ndarray:
    return read_sessionlog(session / "stream.tgl").samples().seq


@pytest.fixture(autouse=True)
def quick_timeouts(monkeypatch):
    monkeypatch.setattr(dl, "REPLY_TIMEOUT_S", 0.3)


def test_resume_after_the_link_dies_mid_run_completes_without_duplicates(tmp_path):
    vals = values(3000, 1)
    clip = StandIn([(500, 1_000_000, vals)], t_now_us=900_000)
    clip.die_after = 120  # frames of 9 samples: the link dies 1080 samples into the run
    with pytest.raises(dl.ClipError, match="read failed"):
        run_download(clip, tmp_path)
    (part,) = [p.parent for p in tmp_path.glob("*/session.json")]
    meta = read_session_meta(part)
    assert meta["download"]["state"] == "partial"
    got = meta["download"]["samples"]
    assert 0 < got < 3000 and got % 9 == 0
    # the host died too, half-way through appending a record: the resume cuts the torn tail
    with open(part / "stream.tgl", "ab") as fh:
        fh.write(b"\x50\x01\x02\x03")

    clip2 = StandIn([(500, 1_000_000, vals)], t_now_us=900_000)
    res, text = run_download(clip2, tmp_path)
    assert f"resuming {part.name} at sample {500 + got}" in text
    assert [p.parent for p in tmp_path.glob("*/session.json")] == [part]
    assert len(res.new_runs) == 1 and res.new_runs[0].complete
    seqs = log_seqs(part)
    assert np.array_equal(seqs, 500 + np.arange(3000))  # every sample once, in order
    assert np.array_equal(read_sessionlog(part / "stream.tgl").samples().values[:, :6], vals)
    assert clip2.sent == 1 + -(-(3000 - got) // 9)  # the first record (is it this clip's run?) + the missing part
    assert read_session_meta(part)["download"]["state"] == "complete"


def test_a_stalled_transfer_is_one_line_and_resumable(tmp_path, capsys):
    vals = values(900, 2)
    clip = StandIn([(0, 1_000_000, vals)], t_now_us=500_000)
    clip.stall_after = 40
    t0 = time.monotonic()
    with pytest.raises(dl.ClipError, match="transfer stalled: no data from the clip for 1 s"):
        run_download(clip, tmp_path, stall_s=0.6)
    assert time.monotonic() - t0 < 5
    res, _ = run_download(StandIn([(0, 1_000_000, vals)], t_now_us=500_000), tmp_path)
    (s,) = [p.parent for p in tmp_path.glob("*/session.json")]
    assert np.array_equal(log_seqs(s), np.arange(900))


def test_silent_port_and_foreign_device_are_told_apart(tmp_path):
    class Silent:
        timeout = 0.1
        in_waiting = 0

        def write(self, data):
            return len(data)

        def read(self, n=1):
            time.sleep(0.02)
            return b""

        def close(self):
            pass

    class Repl(Silent):  # a board at the MicroPython prompt, or any other device
        def __init__(self):
            self.buf = b""

        def write(self, data):
            self.buf += b"\r\nTraceback (most recent call last):\r\nSyntaxError: invalid syntax\r\n>>> "
            return len(data)

        @property
        def in_waiting(self):
            return len(self.buf)

        def read(self, n=1):
            out, self.buf = self.buf[:n], self.buf[n:]
            return out

    with pytest.raises(dl.ClipError, match="the clip is not answering"):
        dl.download(dl.SerialLink("ttyX", ser=Silent()), tmp_path, echo=lambda s: None)
    with pytest.raises(dl.ClipError, match="not a tiltguard clip .*MicroPython prompt"):
        dl.download(dl.SerialLink("ttyY", ser=Repl()), tmp_path, echo=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_no_port_found_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert cli.main(["download", "--serial", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tiltguard: error: no clip found on any serial port") and "\n" not in err
    assert cli.main(["download", "--serial", str(tmp_path / "no-such-tty"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot open the serial port" in err and "\n" not in err


def test_runs_split_holes_start_times_and_since(tmp_path):
    """Current power-on: run A (a 2 s hole inside it), 60 s idle, run B; start times follow the clip clock."""
    a1, a2, b = values(1000, 3), values(600, 4), values(800, 5)
    hole = 400  # 2 s at 200 Hz: FIFO overflow inside a run
    t_a = 10_000_000
    seq_a2 = 1000 + hole
    t_a2 = t_a + seq_a2 * 5000  # the clock keeps pace with the index across the hole
    seq_b = seq_a2 + 600 + 60 * 200
    t_b = t_a + seq_b * 5000
    next_seq = seq_b + 800 + 200 * 100  # 100 s after run B ended
    t_now = t_a + next_seq * 5000
    clip = StandIn([(0, t_a, a1), (seq_a2, t_a2, a2), (seq_b, t_b, b)], t_now_us=t_now, next_seq=next_seq)
    host_before = time.time()
    res, text = run_download(clip, tmp_path)
    assert len(res.new_runs) == 2
    ra, rb = res.new_runs
    assert ra.holes == [[1000, seq_a2]] and "400 samples missing in 1 hole" in text
    assert ra.covers_end == seq_b and rb.first_seq == seq_b
    for r, t0 in ((ra, t_a), (rb, t_b)):
        meta = read_session_meta(r.dir)
        start = datetime.fromisoformat(meta["start_time"]).timestamp()
        assert abs(start - (host_before - (t_now - t0) / 1e6)) < 1.0
        assert "same power-on" in meta["download"]["start_time_source"]
        assert r.dir.name.startswith(datetime.fromtimestamp(start, timezone.utc).strftime("%Y%m%d-"))
    # --since: only what was logged from an index, or from a time, on
    res2, _ = run_download(StandIn([(0, t_a, a1), (seq_a2, t_a2, a2), (seq_b, t_b, b)], t_now_us=t_now,
                                   next_seq=next_seq), tmp_path / "since_seq", since=seq_b)
    assert [r.first_seq for r in res2.new_runs] == [seq_b]
    mid = datetime.fromtimestamp(host_before - (t_now - t_b) / 1e6 - 30, timezone.utc).isoformat()
    res3, _ = run_download(StandIn([(0, t_a, a1), (seq_a2, t_a2, a2), (seq_b, t_b, b)], t_now_us=t_now,
                                   next_seq=next_seq), tmp_path / "since_date", since=dl.parse_since(mid))
    assert [r.first_seq for r in res3.new_runs] == [seq_b]


def test_erase_only_after_everything_is_verified_on_disk(tmp_path):
    runs = [(0, 1_000_000, values(500, 6)), (500, 700_000, values(450, 7))]  # a reboot between them
    clip = StandIn(runs, t_now_us=400_000)
    clip.die_after = 70
    with pytest.raises(dl.ClipError):
        run_download(clip, tmp_path, erase=True)
    assert "erase_logs" not in clip.commands
    # the run is complete now, but its file on disk was damaged since: refuse
    clip = StandIn(runs, t_now_us=400_000)
    res, _ = run_download(clip, tmp_path)
    victim = res.runs[1].dir / "stream.tgl"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(dl.ClipError, match="not erasing"):
        run_download(clip, tmp_path, erase=True)
    assert "erase_logs" not in clip.commands and clip.frames
    # while the clip records, never erase
    clip = StandIn(runs, t_now_us=400_000, logging=True)
    with pytest.raises(dl.ClipError, match="not erasing"):
        run_download(clip, tmp_path / "fresh", erase=True)
    assert "erase_logs" not in clip.commands


def test_a_second_clip_into_the_same_folder_keeps_both(tmp_path):
    """Sample indices are per clip: another clip's runs with the same indices are not mistaken for downloaded."""
    a = StandIn([(0, 1_000_000, values(300, 8))], t_now_us=500_000)
    b = StandIn([(0, 1_000_000, values(300, 9))], t_now_us=500_000)
    run_download(a, tmp_path)
    res, _ = run_download(b, tmp_path)
    assert len(res.new_runs) == 1 and len(list(tmp_path.glob("*/session.json"))) == 2
    again, text = run_download(StandIn([(0, 1_000_000, values(300, 8))], t_now_us=500_000), tmp_path)
    assert again.nothing_new and "nothing new" in text


def test_frames_lost_on_the_link_are_asked_for_again(tmp_path):
    """download_done says how many samples left the clip; fewer arrived, so the holes are requested again."""
    vals = values(2000, 10)
    clip = StandIn([(100, 1_000_000, vals)], t_now_us=500_000)
    clip.lose_every = 37
    res, text = run_download(clip, tmp_path)
    (run,) = res.new_runs
    assert clip.commands.count("download_log") > 1 + 1  # the pass, then one request per hole
    assert run.holes == [] and run.samples == 2000 and "hole" not in text
    assert np.array_equal(np.unique(log_seqs(run.dir)), 100 + np.arange(2000))
    again = dl.scan_run(run.dir)  # what a resume would rebuild from the file: the same
    assert again.samples == 2000 and again.holes == [] and again.end_seq == 2100


def test_start_times_of_an_idle_clip_and_across_a_restart(tmp_path):
    """The firmware stops the index while idle: runs after the last restart are dated by the clock alone
    (said so in session.json); a run before a restart cannot be dated."""
    a, b = values(900, 11), values(600, 12)
    t_b = 40_000_000  # run B starts 40 s after its power-on; run A's clock ran past that: a restart between
    t_now = t_b + 600 * 5000 + 300_000_000  # five idle minutes after B
    clip = StandIn([(0, 50_000_000, a), (900, t_b, b)], t_now_us=t_now, next_seq=1500)
    host_before = time.time()
    res, _ = run_download(clip, tmp_path)
    ra, rb = res.new_runs
    ma, mb = read_session_meta(ra.dir), read_session_meta(rb.dir)
    assert ma["start_time"] is None and "restarted" in ma["download"]["start_time_source"]
    assert ra.dir.name == "run-s0"
    start = datetime.fromisoformat(mb["start_time"]).timestamp()
    assert abs(start - (host_before - (t_now - t_b) / 1e6)) < 1.0
    assert "not switched off" in mb["download"]["start_time_source"]
    assert rb.dir.name.endswith("-s900") and rb.dir.name[:8].isdigit()  # dated folder
    assert np.array_equal(log_seqs(rb.dir), 900 + np.arange(600))
