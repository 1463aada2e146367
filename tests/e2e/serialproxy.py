"""A cable between the firmware's pseudo-terminal and the host's: records every frame the firmware wrote
and can be "unplugged" on the host side (the host's port vanishes, then comes back under the same name)."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from pathlib import Path

from tiltguard.protocol import serial as pserial


class SerialProxy:
    def __init__(self, device_fd: int, link: Path):
        self.dev = device_fd           # our end of the firmware's pty
        self.link = link               # the name the host opens
        self.frames: list[bytes] = []  # every frame the firmware wrote, in order
        self.forwarded: list[bool] = []  # whether it reached the host
        self._de = pserial.Deframer()
        self._host = None
        self._stop = False
        self.device_gone = threading.Event()
        self._lock = threading.Lock()
        self._plug()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _plug(self) -> None:
        m, s = os.openpty()
        tty.setraw(m)
        tty.setraw(s)
        tmp = self.link.with_suffix(".tmp")
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(os.ttyname(s))
        tmp.replace(self.link)
        self._host = (m, s)

    def unplug(self) -> None:
        with self._lock:
            m, s = self._host
            self._host = None
            os.close(m)
            os.close(s)
            self.link.unlink()

    def replug(self) -> None:
        with self._lock:
            self._plug()

    def close(self) -> None:
        self._stop = True
        self._th.join(2)
        if self._host:
            os.close(self._host[0])
            os.close(self._host[1])

    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                host = self._host[0] if self._host else None
            fds = [self.dev] + ([host] if host is not None else [])
            try:
                r, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                time.sleep(0.01)
                continue
            with self._lock:
                host = self._host[0] if self._host else None
                if self.dev in r:
                    try:
                        data = os.read(self.dev, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        self.device_gone.set()
                        time.sleep(0.05)
                        continue
                    got = self._de.feed(data)
                    self.frames += got
                    self.forwarded += [host is not None] * len(got)
                    if host is not None:
                        try:
                            os.write(host, data)
                        except OSError:
                            pass
                if host is not None and host in r:
                    try:
                        data = os.read(host, 4096)
                        os.write(self.dev, data)
                    except OSError:
                        pass
