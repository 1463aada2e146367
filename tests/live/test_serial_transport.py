"""Serial transport over a pseudo-terminal with a fake clip: garbage, corrupt frames, a vanishing port,
backfill from the clip's log, a log too small to cover the hole, a wrong device, auto-detection."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tty
from types import SimpleNamespace

import numpy as np
import pytest

from tests.live.fakeclip import FakeClip
from tiltguard.errors import InputError
from tiltguard.formats.raw import Recording, read_raw
from tiltguard.formats.session import read_outputs, read_session_meta
from tiltguard.formats.sessionlog import read_sessionlog
from tiltguard.live.config import LiveConfig, load_live_config
from tiltguard.live.pipeline import LiveSession
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.transport import serial as tserial
from tiltguard.transport.replay import encode_recording
from tiltguard.transport.serial import SerialTransport


@pytest.fixture(scope="module")
def frames40(drift_run):
    rec = read_raw(drift_run / "raw.csv")
    k = rec.t_s < 40.0
    part = Recording(t_s=rec.t_s[k], acc_g=rec.acc_g[k], gyro_dps=rec.gyro_dps[k])
    frames, _ = encode_recording(part)
    return frames


def _run(clip: FakeClip, sdir, vanish_at: float | None = None, down_s: float = 1.5, **kw):
    def director():
        if vanish_at is None:
            return
        time.sleep(vanish_at)
        clip.vanish()
        time.sleep(down_s)
        clip.come_back()

    th = threading.Thread(target=director, daemon=True)
    cfg = LiveConfig(backfill_timeout_s=5.0)
    session = LiveSession(sdir, SerialTransport(str(clip.link)), cfg, source="serial", idle_exit_s=2.0, **kw)
    th.start()
    summary = asyncio.run(session.run())
    th.join()
    return session, summary


def _log_seqs(sdir):
    b = read_sessionlog(sdir / "stream.tgl").samples()
    return np.unique(fr.unwrap_seq(b.seq))


def _n(frames):
    return sum(fr.decode_frame(f).n for f in frames)


def test_garbage_corrupt_frames_and_vanishing_port_lose_nothing(frames40, tmp_path):
    clip = FakeClip(frames40, tmp_path / "clip", fps=170, garbage_every=7, corrupt_every=23)
    try:
        session, summary = _run(clip, tmp_path / "s", vanish_at=1.5)
    finally:
        clip.close()
    assert clip.done and clip.dropped > 10          # frames were produced while the port was gone
    assert np.array_equal(_log_seqs(tmp_path / "s"), np.arange(_n(frames40)))  # all of them recorded
    link = summary["link"]
    assert summary["missing_samples"] == 0
    assert link["samples_backfilled"] >= clip.dropped * 12
    assert link["reconnects"] == 1
    assert sum(v for k, v in link.items() if k.startswith("rejected_")) > 0
    text = (tmp_path / "s" / "live.log").read_text()
    assert "vanished" in text and "damaged chunk" in text and "resend" in text


def test_log_too_small_marks_the_gap(frames40, tmp_path):
    clip = FakeClip(frames40, tmp_path / "clip", fps=170, log_keep=600)
    try:
        session, summary = _run(clip, tmp_path / "s", vanish_at=1.5, down_s=2.0)
    finally:
        clip.close()
    seqs = _log_seqs(tmp_path / "s")
    total = _n(frames40)
    hole = np.setdiff1d(np.arange(total), seqs)
    assert len(hole) > 0 and np.all(np.diff(hole) == 1)        # one contiguous hole
    assert summary["missing_samples"] == len(hole)
    assert summary["link"]["samples_backfilled"] > 0            # the log gave what it still had
    out = read_outputs(tmp_path / "s")
    # the gap in the outputs spans exactly the missing samples' neighbours
    t_before = (hole[0] - 1) / 200.0
    t_after = (hole[-1] + 1) / 200.0
    gaps = np.asarray(out.summary["gaps"], float)
    assert any(abs(a - t_before) < 0.02 and abs(b - t_after) < 0.02 for a, b in gaps), gaps
    assert "marked as a gap" in (tmp_path / "s" / "live.log").read_text()


def test_wrong_device_gives_a_clear_message(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def chatter():
        while not stop.is_set():
            os.write(master, b"AT+OK hello from a GPS receiver $GPGGA,123519,4807.038,N\r\n")
            time.sleep(0.05)

    th = threading.Thread(target=chatter, daemon=True)
    th.start()
    try:
        session = LiveSession(tmp_path / "s", SerialTransport(os.ttyname(slave)), LiveConfig(), source="serial",
                              duration_s=3.6)
        summary = asyncio.run(session.run())
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)
    text = (tmp_path / "s" / "live.log").read_text()
    assert "sends no tiltguard frames" in text
    assert summary["link"]["samples_received"] == 0


def test_autodetect_picks_the_clip(monkeypatch):
    ports = [SimpleNamespace(device="/dev/ttyS0", vid=None, description="ttyS0", product=None, manufacturer=None,
                             interface=None),
             SimpleNamespace(device="/dev/ttyACM3", vid=0x303A, description="USB JTAG/serial debug unit",
                             product=None, manufacturer="Espressif", interface=None)]
    import serial.tools.list_ports as lp

    monkeypatch.setattr(lp, "comports", lambda: ports)
    assert tserial.find_clip_ports() == ["/dev/ttyACM3"]
    monkeypatch.setattr(lp, "comports", lambda: ports[:1])
    with pytest.raises(InputError, match="no tiltguard clip found.*ttyS0.*--serial PORT"):
        asyncio.run(SerialTransport(None).open())
    with pytest.raises(InputError, match="cannot open serial port /nonexistent"):
        asyncio.run(SerialTransport("/nonexistent/port").open())


def test_config_errors_are_one_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[alerts]\nmin_interval_s = 10\n[alerts.pelvic_drop]\nbuzz = \"recovered\"\n[drift]\nk_on_deg = 2.0\n")
    cfg = load_live_config(p)
    assert cfg.alerts.min_interval_s == 10 and cfg.alerts.actions["pelvic_drop"].buzz == "recovered"
    assert cfg.analysis.drift.k_on_deg == 2.0
    p.write_text("[live]\nprovisional = false\nhop_s = 10\n")
    cfg = load_live_config(p)
    assert cfg.provisional is False and cfg.hop_s == 10.0
    for text, msg in (("[alerts.nagging]\nbuzz='alert'\n", "not an alert kind"),
                      ("[drift]\nk_on = 1\n", "has no setting"),
                      ("[alerts.recovered]\nbuzz = 'loud'\n", "buzz must be one of"),
                      ("[alerts]\nsound = 'yes'\n", "sound"),
                      ("[live]\nflush_s = 5\n", "flush_s"),
                      ("nonsense [", "not valid TOML")):
        p.write_text(text)
        with pytest.raises(InputError, match=msg):
            load_live_config(p)


def test_replay_of_a_damaged_log_and_bad_files(frames40, tmp_path, capsys):
    from tiltguard.cli import main
    from tiltguard.formats.sessionlog import SessionLogWriter
    from tiltguard.transport.replay import ReplayTransport

    src = tmp_path / "src.tgl"
    with SessionLogWriter(src) as wr:
        for i, f in enumerate(frames40[:400]):
            wr.append(f, 1_000_000 + i * 60)
    data = bytearray(src.read_bytes())
    data[5000:5040] = b"\xff" * 40          # damage in the middle
    src.write_bytes(bytes(data) + b"\x30\x01")  # and a torn tail
    session = LiveSession(tmp_path / "s", ReplayTransport(src), LiveConfig(), source="replay")
    summary = asyncio.run(session.run())
    text = (tmp_path / "s" / "live.log").read_text()
    assert "damaged record(s) in the replayed log skipped" in text and "torn record" in text
    n_good = sum(fr.decode_frame(f).n for f in read_sessionlog(src).frames)
    assert summary["link"]["samples_received"] == n_good and n_good >= 398 * 12 - 24
    # unreadable inputs: one line on stderr, exit code 2
    (tmp_path / "junk.tgl").write_bytes(b"not a log at all")
    for bad, msg in ((tmp_path / "junk.tgl", "not a tiltguard session log"), (tmp_path / "none.csv", "no such file")):
        assert main(["live", "--replay", str(bad), "--no-ui", "--session", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
        assert not (tmp_path / "x").exists()
    assert main(["live", "--replay", str(src), "--speed", "fast", "--session", str(tmp_path / "y")]) == 2
    assert "--speed must be a number or max" in capsys.readouterr().err


def test_killed_host_resumes_and_the_clip_log_fills_the_hole(frames40, tmp_path):
    import signal
    import subprocess
    import sys

    clip = FakeClip(frames40, tmp_path / "clip", fps=120)
    sdir = tmp_path / "s"
    cmd = [sys.executable, "-m", "tiltguard", "live", "--serial", str(clip.link), "--no-ui", "--session", str(sdir)]
    try:
        host = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_end = time.monotonic() + 30
        while len(clip.sent_seqs) < 150 and time.monotonic() < t_end:
            time.sleep(0.05)
        os.kill(host.pid, signal.SIGKILL)   # the host dies mid-run; the clip keeps streaming into the void
        host.wait()
        n_before = len(_log_seqs(sdir))
        time.sleep(1.0)
        out = subprocess.run(cmd + ["--idle-exit", "2"], capture_output=True, text=True, timeout=90)
    finally:
        clip.close()
    assert out.returncode == 0, out.stdout + out.stderr
    assert clip.done
    seqs = _log_seqs(sdir)
    assert 0 < n_before < len(seqs)
    assert np.array_equal(seqs, np.arange(_n(frames40)))     # the hole was filled from the clip's log
    summary = read_outputs(sdir).summary
    assert summary["missing_samples"] == 0 and summary["link"]["samples_backfilled"] > 0
    assert "resumed" in out.stdout and "asking the clip to resend" in out.stdout


class _TrickleSerial:
    """A port whose bytes arrive over time: read(n) returns at most what has arrived (pyserial's blocking
    read with a timeout would wait for all n)."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.waiting = b""
        self.asked = []

    @property
    def in_waiting(self):
        return len(self.waiting)

    def read(self, n):
        self.asked.append((n, len(self.waiting)))
        if not self.waiting:
            if not self.chunks:
                raise OSError("port vanished")
            self.waiting = self.chunks.pop(0)
        out, self.waiting = self.waiting[:n], self.waiting[n:]
        return out


def test_reader_hands_on_each_arrival_without_waiting_for_more():
    # The reader must never ask for more bytes than have arrived (beyond the first one it waits for):
    # otherwise a frame sits in the port until a 4 kB read fills or times out (~100 ms of latency).
    chunks = [bytes([i + 1]) * (40 + i) for i in range(5)]
    port = _TrickleSerial(chunks)
    got = []

    class _Loop:
        def call_soon_threadsafe(self, fn, item):
            fn(item)

    SerialTransport("unused")._reader(port, _Loop(), SimpleNamespace(put_nowait=got.append))
    assert got[:-1] == chunks                      # one hand-over per arrival, nothing held back
    assert isinstance(got[-1], OSError)            # the vanished port is reported, not raised
    assert all(n <= max(1, waiting) for n, waiting in port.asked)


def test_uncalibrated_compact_clip_is_told_and_calibrate_asks_it(drift_run, tmp_path):
    """A compact stream with no angles (the clip was never calibrated): one clear message says why the ROMs
    are empty and how to fix it; ``calibrate=True`` (``--calibrate``) asks the clip instead, and its answer
    is reported."""
    rec = read_raw(drift_run / "raw.csv")
    k = rec.t_s < 25.0
    frames, _ = encode_recording(Recording(t_s=rec.t_s[k], acc_g=rec.acc_g[k]))   # compact, angles missing
    for calibrate, sdir in ((False, tmp_path / "a"), (True, tmp_path / "b")):
        clip = FakeClip(frames, tmp_path / f"clip{int(calibrate)}", fps=2000.0)
        try:
            session, _ = _run(clip, sdir, calibrate=calibrate)
        finally:
            clip.close()
        text = (sdir / "live.log").read_text()
        asked = [c for c in clip.commands if c.cmd == w.CMD_CALIBRATE]
        assert read_session_meta(sdir)["mode"] == "compact"
        if calibrate:
            assert len(asked) == 1 and "stand still" in text and "clip calibrated" in text
            assert "not calibrated" not in text
        else:
            assert not asked and text.count("not calibrated") == 1 and "--calibrate" in text


def test_calibrate_on_a_replay_says_it_is_ignored(drift_run, tmp_path):
    from tiltguard.formats.raw import write_raw
    from tiltguard.transport.replay import ReplayTransport

    rec = read_raw(drift_run / "raw.csv")
    k = rec.t_s < 20.0
    src = write_raw(tmp_path / "in.csv", Recording(t_s=rec.t_s[k], acc_g=rec.acc_g[k], gyro_dps=rec.gyro_dps[k]))
    session = LiveSession(tmp_path / "s", ReplayTransport(src, speed=None), LiveConfig(), source="replay",
                          calibrate=True)
    asyncio.run(session.run())
    cmds = [fr.decode_frame(f) for f in read_sessionlog(tmp_path / "s" / "stream.tgl").frames
            if f[0] & 0x0F == w.T_COMMAND]
    assert cmds and not [c for c in cmds if c.cmd == w.CMD_CALIBRATE]
    assert "--calibrate ignored" in (tmp_path / "s" / "live.log").read_text()
