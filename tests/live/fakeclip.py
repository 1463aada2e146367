"""A fake clip on a pseudo-terminal (host-side encoders): streams frames of a recording, answers commands,
keeps a flash log for download_log, and can inject garbage, corrupt frames or vanish and come back."""

from __future__ import annotations

import os
import select
import struct
import threading
import time
import tty
from pathlib import Path

from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import serial as pserial
from tiltguard.protocol import wire as w


class FakeClip:
    def __init__(self, frames: list[bytes], link: Path, fps: float = 200.0, log_keep: int | None = None,
                 garbage_every: int = 0, corrupt_every: int = 0):
        self.frames = frames                # data frames in seq order
        self.link = link                    # symlink the host opens as its port
        self.fps = fps
        self.log_keep = log_keep            # samples the flash log keeps (None = all)
        self.garbage_every = garbage_every
        self.corrupt_every = corrupt_every
        self.sent_seqs: list[tuple[int, int]] = []   # (seq, n) of data frames written intact
        self.commands: list[fr.Command] = []
        self.streaming = False
        self.pos = 0
        self.dropped = 0                    # frames produced while the port was gone
        self._online = threading.Event()
        self._stop = False
        self._lock = threading.Lock()
        self._fd = None
        self._plug()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    # -- port management
    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        self._slave = slave
        name = os.ttyname(slave)
        tmp = self.link.with_suffix(".tmp")
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(name)
        tmp.replace(self.link)
        self._fd = master
        self._de = pserial.Deframer()
        self._online.set()

    def vanish(self) -> None:
        with self._lock:
            self._online.clear()
            os.close(self._fd)
            os.close(self._slave)
            self._fd = None
            self.link.unlink()

    def come_back(self) -> None:
        with self._lock:
            self._plug()

    def close(self) -> None:
        self._stop = True
        self._th.join(2)
        if self._fd is not None:
            os.close(self._fd)
            os.close(self._slave)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.frames)

    # -- device loop
    def _write(self, data: bytes) -> bool:
        try:
            os.write(self._fd, data)
            return True
        except OSError:
            return False

    def _reply(self, token: int, cmd: int, err: int = 0, payload: bytes = b"") -> None:
        self._write(pserial.frame_serial(fr.encode_reply(token, cmd, err, payload)))

    def _handle(self, c: fr.Command) -> None:
        self.commands.append(c)
        if c.cmd == w.CMD_START_STREAM:
            self.streaming = True
            nxt = fr.decode_frame(self.frames[min(self.pos, len(self.frames) - 1)]).seq
            self._reply(c.token, c.cmd, 0, commands.encode_reply_payload(c.cmd, next_seq=nxt, rate_hz=200, mode=1))
        elif c.cmd == w.CMD_DOWNLOAD_LOG:
            a = commands.decode_args(c)
            lo, hi = a["from_seq"], a["from_seq"] + a["count"]
            produced_end = fr.decode_frame(self.frames[self.pos - 1]).seq + 1 if self.pos else 0
            first_kept = 0 if self.log_keep is None else max(0, produced_end - self.log_keep)
            out = []
            for raw in self.frames[: self.pos]:
                f = fr.decode_frame(raw)
                if f.seq + f.n > max(lo, first_kept) and f.seq < hi and f.seq >= first_kept:
                    out.append(fr.encode_data(f.seq, f.t_us, f.period_q, f.values, f.mode, log=True))
            first = fr.decode_frame(out[0]).seq if out else hi
            cnt = sum(fr.decode_frame(o).n for o in out)
            self._reply(c.token, c.cmd, 0, commands.encode_reply_payload(c.cmd, first_seq=first, count=cnt))
            for o in out:
                self._write(pserial.frame_serial(o))
            ev = fr.encode_event(fr.Event(w.EV_DOWNLOAD_DONE, 0, 0, cnt))
            self._write(pserial.frame_serial(ev))
        elif c.cmd == w.CMD_CALIBRATE:   # accepted, then done (a real clip takes still_s of standing)
            self._reply(c.token, c.cmd, 0)
            self._write(pserial.frame_serial(fr.encode_event(fr.Event(w.EV_CALIBRATION_DONE, 0, 0, w.ERR_OK))))
        elif c.cmd == w.CMD_STOP_STREAM:
            self.streaming = False
            end = fr.decode_frame(self.frames[self.pos - 1]) if self.pos else None
            nxt = end.seq + end.n if end else 0
            self._reply(c.token, c.cmd, 0, commands.encode_reply_payload(c.cmd, next_seq=nxt))
        else:
            self._reply(c.token, c.cmd, 0, b"" if c.cmd not in w.REPLY_PAYLOAD_FMT else
                        b"\x00" * struct.calcsize(w.REPLY_PAYLOAD_FMT[c.cmd]))

    def _run(self) -> None:
        period = 1.0 / self.fps
        t_next = time.monotonic()
        k = 0
        while not self._stop:
            with self._lock:
                online = self._fd is not None
                if online:
                    r, _, _ = select.select([self._fd], [], [], 0)
                    if r:
                        try:
                            data = os.read(self._fd, 4096)
                        except OSError:
                            data = b""
                        for chunk in self._de.feed(data):
                            try:
                                f = fr.decode_frame(chunk)
                            except fr.FrameError:
                                continue
                            if isinstance(f, fr.Command):
                                self._handle(f)
                now = time.monotonic()
                if self.streaming and self.pos < len(self.frames) and now >= t_next:
                    t_next += period
                    raw = self.frames[self.pos]
                    self.pos += 1
                    k += 1
                    if not online:
                        self.dropped += 1
                    else:
                        if self.garbage_every and k % self.garbage_every == 0:
                            self._write(b"boot: rst:0x1 (POWERON)\r\n\x00\x05\x99garbage\x00")
                        if self.corrupt_every and k % self.corrupt_every == 0:
                            bad = bytearray(raw)
                            bad[20] ^= 0x5A
                            self._write(pserial.frame_serial(bytes(bad)))  # lost: the clip's log has it
                            f = fr.decode_frame(raw)
                        elif self._write(pserial.frame_serial(raw)):
                            f = fr.decode_frame(raw)
                            self.sent_seqs.append((f.seq, f.n))
            time.sleep(0.001)
