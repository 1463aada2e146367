"""`tiltguard download --ble` with unmodified bleak against the live helper's fake org.bluez (tests/e2e/fake_bluez.py).

The fake clip holds one logged run whose log frames come from the real firmware encoder (firmware/frames.py
under MicroPython); it answers the download commands and sends the log as notifications.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from tests.e2e import fake_bluez  # noqa: E402  (dbus-daemon and micropython come from tests/run.sh)

from tiltguard.formats.session import read_session_meta  # noqa: E402
from tiltguard.formats.sessionlog import read_sessionlog  # noqa: E402
from tiltguard.protocol import commands  # noqa: E402
from tiltguard.protocol import frames as fr  # noqa: E402
from tiltguard.protocol import wire as w  # noqa: E402


class LoggedClip(fake_bluez.ClipSim):
    """The fake clip after a button run: everything is in its log, nothing streams, downloads flow."""

    def __post_init__(self):
        super().__post_init__()
        self.t0_wall = time.monotonic() - (self.total / self.frames.rate_hz) / self.speed - 1.0
        self.erased = False

    def command(self, frame: bytes):
        c = fr.decode_frame(frame)
        if c.cmd == w.CMD_GET_INFO:
            self.commands.append((self.now_s(), "get_info", {}))
            return fr.encode_reply(c.token, c.cmd, w.ERR_OK, commands.encode_reply_payload(
                c.cmd, protocol=w.PROTOCOL_VERSION, board=0, imu=0, firmware="fake")), []
        if c.cmd == w.CMD_ERASE_LOGS:
            self.erased = True
            return fr.encode_reply(c.token, c.cmd, w.ERR_OK), []
        return super().command(frame)

    def _status(self) -> fr.Status:
        s = super()._status()
        s.state &= ~w.ST_LOGGING  # the run is over
        return s

    def tick(self, connected: bool):
        if connected and self.download and not self.streaming:
            out = self.download[:40]
            del self.download[:40]
            if not self.download:
                out.append(fr.encode_event(fr.Event(w.EV_DOWNLOAD_DONE, self._next_seq(), 0, self.dl_count)))
            return out, False
        return super().tick(connected)


def test_download_over_ble_with_bleak(tmp_path):
    n = 60 * 200  # a one-minute run, full samples
    values = np.random.default_rng(4).integers(-4000, 4000, (n, 9)).astype("<i2")
    frames = fake_bluez.firmware_frames(values, rate_hz=200)
    bus = fake_bluez.PrivateBus(tmp_path / "bus")
    out = tmp_path / "out"
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "tiltguard", "download", "--ble", fake_bluez.NAME, "--no-analyze", "-o", str(out)]
    try:
        clip = LoggedClip(frames, speed=20.0)
        with fake_bluez.FakeBluez(bus.address, clip) as fake:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
            p2 = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
        assert not fake.errors, fake.errors
    finally:
        bus.close()
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (s,) = [q.parent for q in out.glob("*/session.json")]
    meta = read_session_meta(s)
    assert meta["device"]["link"] == "ble" and meta["download"]["state"] == "complete"
    assert meta["device"]["name"] == fake_bluez.NAME and meta["device"]["address"] == fake_bluez.ADDRESS
    b = read_sessionlog(s / "stream.tgl").samples()
    assert np.array_equal(b.seq, frames.seq0 + np.arange(n))
    assert np.array_equal(b.values, values)
    assert p2.returncode == 0 and "nothing new" in p2.stdout, p2.stdout + p2.stderr
