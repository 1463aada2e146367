"""A fake ``org.bluez`` on a private dbus-daemon that unmodified bleak talks to, emulating a tiltguard clip.

    bus = PrivateBus(tmp_path)                       # dbus-daemon --config-file ... --print-address
    frames = firmware_frames(values, rate_hz=200)     # data + log frames from the REAL firmware encoder
    with FakeBluez(bus.address, ClipSim(frames, speed=20, drop_at_s=60, drop_for_s=20)) as fake:
        ...  # DBUS_SYSTEM_BUS_ADDRESS=bus.address; bleak scans, connects, subscribes, writes

Objects (paths as BlueZ makes them, see ../shared/REFERENCE.md): Adapter1 at /org/bluez/hci0; Device1 at
.../dev_C0_FF_EE_00_12_34 (exported when discovery starts, RSSI re-announced while discovering); GattService1 +
three GattCharacteristic1 (stream notify, control write, status read/notify). Notifications go through an
AcquireNotify SOCK_SEQPACKET socketpair, or as PropertiesChanged(Value) after StartNotify.

The clip (``ClipSim``) runs on a compressed clock (``speed`` x real time): it produces samples from the start of
its first stream, keeps them in a "flash log" of ``log_capacity`` samples, streams them while a host is connected
and streaming, answers commands per firmware/PROTOCOL.md (replies and events are built with the host's encoders;
the data and log frames themselves come from firmware/frames.py run under MicroPython) and can drop the link for
``drop_for_s`` simulated seconds, refusing connections meanwhile.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from tiltguard.protocol import ble as pble
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w

ADDRESS = "C0:FF:EE:00:12:34"
NAME = "tiltguard-1234"
ADAPTER = "/org/bluez/hci0"
DEVICE = f"{ADAPTER}/dev_{ADDRESS.replace(':', '_')}"
SERVICE = f"{DEVICE}/service000a"
BATTERY_SERVICE = f"{DEVICE}/service0011"
SERVICES = {SERVICE: w.SERVICE_UUID, BATTERY_SERVICE: pble.uuid16(0x180F)}
CHARS = {"stream": (f"{SERVICE}/char000b", w.STREAM_UUID, ["notify"]),
         "control": (f"{SERVICE}/char000d", w.CONTROL_UUID, ["write"]),
         "status": (f"{SERVICE}/char000f", w.STATUS_UUID, ["read", "notify"]),
         "battery": (f"{BATTERY_SERVICE}/char0012", pble.BATTERY_LEVEL_UUID, ["read", "notify"])}
LOG_MTU = 3 + w.DATA_OVERHEAD + 6 * w.SAMPLE_FULL_SIZE  # log records of <= 128 bytes, as the firmware's log


# ---------------------------------------------------------------------------------------------- dbus-daemon
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow send_type="*"/>
    <allow receive_type="*"/>
  </policy>
</busconfig>
"""


class PrivateBus:
    """A private system-style dbus-daemon in a temp folder; ``address`` goes into DBUS_SYSTEM_BUS_ADDRESS."""

    def __init__(self, folder: Path | None = None):
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise RuntimeError("dbus-daemon is missing (Debian package dbus)")
        self.folder = Path(folder or tempfile.mkdtemp(prefix="tgbus"))
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "bus.conf"
        conf.write_text(BUS_CONFIG.format(sock=self.folder / "bus.sock"))
        self.proc = subprocess.Popen([exe, f"--config-file={conf}", "--nofork", "--print-address"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError(f"dbus-daemon did not start: {self.proc.stderr.read()}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------------------------------------- frames
MPY_ENCODE = """
import frames, wire
from array import array
src, dst, n, k, mode, mtu, log, period_q, t0, seq0 = {args!r}
vals = array('h', bytearray(n * k * 2))
with open(src, 'rb') as f:
    f.readinto(vals)
enc = frames.DataEncoder(mode, mtu, log)
out = open(dst, 'wb')
i = 0
while i < n:
    t = t0 + (i * period_q) // 4
    enc.begin(seq0 + i, t >> 24, t & 0xFFFFFF, period_q)
    while i < n:
        j = i * k
        full = enc.add(*vals[j:j + k])
        i += 1
        if full:
            break
    fb = enc.finish()
    out.write(bytes([len(fb)]))
    out.write(fb)
out.close()
"""


def wire_values(rec, mode: int = w.MODE_FULL) -> np.ndarray:
    """(N, 6|9) int16 wire units of a Recording (angles 0.01 deg or 'missing', acc 1/2048 g, gyro 1/16 dps)."""
    n = len(rec.t_s)
    k = 9 if mode == w.MODE_FULL else 6
    v = np.zeros((n, k), np.int64)
    if rec.angles_deg is not None:
        a = np.round(np.asarray(rec.angles_deg, float) / w.ANGLE_LSB_DEG)
        v[:, :3] = np.where(np.isfinite(a), np.clip(np.nan_to_num(a), -32767, 32767), w.ANGLE_MISSING)
    else:
        v[:, :3] = w.ANGLE_MISSING
    v[:, 3:6] = np.clip(np.round(rec.acc_g / w.ACC_LSB_G), -32767, 32767)
    if k == 9:
        v[:, 6:9] = np.clip(np.round(rec.gyro_dps / w.GYRO_LSB_DPS), -32767, 32767)
    return v.astype("<i2")


@dataclass
class ClipFrames:
    live: list[bytes]      # data frames as the clip streams them (MTU sizing)
    log: list[bytes]       # the same samples as log frames (flash records)
    rate_hz: int
    seq0: int

    def head(self, seconds: float) -> "ClipFrames":
        """Only the frames of the first ``seconds`` of the run."""
        end = self.seq0 + seconds * self.rate_hz
        cut = lambda fs: [f for f in fs if int.from_bytes(f[1:5], "little") + f[11] <= end]  # noqa: E731
        return ClipFrames(cut(self.live), cut(self.log), self.rate_hz, self.seq0)

    def span(self, frames: list[bytes]) -> np.ndarray:
        """(F, 2) [seq, n] of frames."""
        return np.array([(int.from_bytes(f[1:5], "little"), f[11]) for f in frames], np.int64)


def firmware_frames(values: np.ndarray, rate_hz: int = 200, mtu: int = 247, seq0: int = 1000,
                    t0_us: int = 2_000_000) -> ClipFrames:
    """Encode wire-unit samples with firmware/frames.py under the MicroPython unix port."""
    from tests.mpy import run_mpy_code

    values = np.ascontiguousarray(values, "<i2")
    n, k = values.shape
    mode = w.MODE_FULL if k == 9 else w.MODE_COMPACT
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "vals.bin")
        values.tofile(src)
        for name, (m, log) in {"live": (mtu, False), "log": (LOG_MTU, True)}.items():
            dst = os.path.join(tmp, f"{name}.bin")
            args = (src, dst, n, k, mode, m, log, w.period_q(rate_hz), t0_us, seq0)
            run_mpy_code(MPY_ENCODE.format(args=args), timeout=120)
            blob = Path(dst).read_bytes()
            frames, pos = [], 0
            while pos < len(blob):
                ln = blob[pos]
                frames.append(blob[pos + 1: pos + 1 + ln])
                pos += 1 + ln
            out[name] = frames
    return ClipFrames(out["live"], out["log"], rate_hz, seq0)


# ---------------------------------------------------------------------------------------------- the clip
@dataclass
class ClipSim:
    """The clip's behaviour on a compressed clock; all times in simulated seconds unless named _wall."""

    frames: ClipFrames
    speed: float = 20.0                 # simulated seconds per wall second
    log_capacity: int | None = None     # samples the flash log keeps (None: everything)
    drop_at_s: float | None = None      # drop the link at this stream time
    drop_for_s: float = 20.0
    mtu: int = 247
    rssi_dbm: int = -58
    battery_pct: int = 87
    corrupt_every: int = 0              # damage every Nth live frame (0: never)
    garbage_every: int = 0              # send a foreign notification after every Nth live frame
    wrong_device: bool = False          # advertise a tiltguard name but serve no tiltguard GATT service
    # what happened (read by tests)
    sent: list[tuple[int, int]] = field(default_factory=list)          # live (seq, n) delivered to the host
    produced_while_down: int = 0
    commands: list[tuple[float, str, dict]] = field(default_factory=list)
    buzzes: list[tuple[float, dict]] = field(default_factory=list)
    log_sent: list[tuple[int, int]] = field(default_factory=list)      # flash-log (seq, n) delivered
    drops: int = 0

    def __post_init__(self):
        f = self.frames
        self.live_span = f.span(f.live)
        self.log_span = f.span(f.log)
        self.total = int(self.live_span[:, 1].sum())
        self.t0_wall: float | None = None
        self.t_end_wall: float | None = None
        self.next_live = 0          # index of the next live frame to produce
        self.streaming = False
        self.down_until_wall = 0.0
        self.dropped_done = False
        self.download: list[bytes] = []
        self.dl_count = 0
        self.config: dict[int, int] = {}
        self._n_live = 0
        self.noise: list[bytes] = []
        self.corrupted = 0

    # -- clock
    def now_s(self) -> float:
        return 0.0 if self.t0_wall is None else (time.monotonic() - self.t0_wall) * self.speed

    def produced(self) -> int:
        """Samples produced so far (the clip samples from its first start_stream on)."""
        return min(self.total, int(self.now_s() * self.frames.rate_hz))

    def down(self) -> bool:
        return time.monotonic() < self.down_until_wall

    def log_range(self) -> tuple[int, int]:
        """[first, end) sample indices the flash log still holds (whole records)."""
        seq0 = self.frames.seq0
        end = seq0 + self.produced()
        first = seq0 if self.log_capacity is None else max(seq0, end - self.log_capacity)
        starts = self.log_span[:, 0]
        k = int(np.searchsorted(starts, first))  # oldest whole record at or after `first`
        first = int(starts[k]) if k < len(starts) else end
        return min(first, end), end

    # -- commands
    def command(self, frame: bytes) -> tuple[bytes, list[bytes]]:
        """A reply frame for one command frame, and data frames to send before it."""
        try:
            c = fr.decode_frame(frame)
            if not isinstance(c, fr.Command):
                raise fr.FrameError("bad_type", "not a command")
            args = commands.decode_args(c)
        except fr.FrameError:
            tok, cmd = (frame[1], frame[2]) if len(frame) >= 3 else (0, 0)
            return fr.encode_reply(tok, cmd, w.ERR_BAD_FRAME), []
        name = w.CMD_NAMES[c.cmd]
        self.commands.append((self.now_s(), name, args))
        ok = lambda **kw: fr.encode_reply(c.token, c.cmd, w.ERR_OK, commands.encode_reply_payload(c.cmd, **kw))
        seq0 = self.frames.seq0
        if name == "start_stream":
            if self.t0_wall is None:
                self.t0_wall = time.monotonic()
            self.produced_while_down += sum(f[11] for f in self._advance())  # not streamed: in the log only
            self.streaming = True
            return ok(next_seq=self._next_seq(), rate_hz=self.frames.rate_hz, mode=self._mode()), []
        if name == "stop_stream":
            last = self._advance() if self.streaming else []  # what was due goes out before the reply
            self.streaming = False
            return ok(next_seq=self._next_seq()), last
        if name == "buzz":
            self.buzzes.append((self.now_s(), args))
            return ok(), []
        if name == "get_status":
            return ok(**self._status().__dict__), []
        if name == "list_logs":
            a, b = self.log_range()
            return ok(first_seq=a, end_seq=b, lost=a - seq0, segments=1, fill_pct=0, mode=self._mode(),
                      rate_hz=self.frames.rate_hz), []
        if name == "download_log":
            if self.download:
                return fr.encode_reply(c.token, c.cmd, w.ERR_BUSY), []
            a, b = self.log_range()
            lo = max(args["from_seq"], a)
            hi = b if not args["count"] else min(b, args["from_seq"] + args["count"])
            s = self.log_span
            pick = np.flatnonzero((s[:, 0] + s[:, 1] > lo) & (s[:, 0] < hi) & (s[:, 0] >= a))
            self.download = [self.frames.log[i] for i in pick]
            self.dl_count = int(s[pick, 1].sum())
            return ok(first_seq=lo, count=max(0, hi - lo)), []
        if name == "abort_download":
            self.download = []
            return ok(sent=0), []
        if name == "set_mode":  # the frames were encoded in one mode: only that one is accepted
            return (ok(mode=args["mode"]) if args["mode"] == self._mode()
                    else fr.encode_reply(c.token, c.cmd, w.ERR_BAD_ARGUMENT)), []
        if name == "set_rate":
            return (ok(rate_hz=args["rate_hz"]) if args["rate_hz"] == self.frames.rate_hz
                    else fr.encode_reply(c.token, c.cmd, w.ERR_BAD_ARGUMENT)), []
        if name == "time_sync":
            return ok(t_us=int(self.now_s() * 1e6) + 2_000_000), []
        if name == "get_info":
            return ok(protocol=w.PROTOCOL_VERSION, board=0, imu=0, firmware="fakebluez"), []
        if name == "set_config":
            self.config[args["key"]] = args["value"]
            return ok(key=args["key"], value=args["value"]), []
        if name == "get_config":
            return ok(key=args["key"], value=self.config.get(args["key"], 0)), []
        if name == "calibrate":
            return ok(), []
        return fr.encode_reply(c.token, c.cmd, w.ERR_UNKNOWN_COMMAND), []  # erase_logs: not emulated

    def _mode(self) -> int:
        return w.MODE_FULL if self.frames.live[0][0] & 0x0F == w.T_DATA_FULL else w.MODE_COMPACT

    def _next_seq(self) -> int:
        k = self.next_live
        return int(self.live_span[k, 0]) if k < len(self.live_span) else self.frames.seq0 + self.total

    def _status(self) -> fr.Status:
        a, b = self.log_range()
        return fr.Status(state=(1 if self.streaming else 0) | 2, battery_pct=self.battery_pct, battery_mv=3990, log_fill_pct=0,
                         mode=self._mode(), rate_hz=self.frames.rate_hz, next_seq=b, dropped=0,
                         log_lost=a - self.frames.seq0, log_first_seq=a, t_us=int(self.now_s() * 1e6) + 2_000_000)

    # -- streaming
    def _advance(self) -> list[bytes]:
        """Frames completed since the last call (for the link when streaming; the log has them anyway)."""
        done = self.frames.seq0 + self.produced()
        out = []
        while self.next_live < len(self.live_span) and self.live_span[self.next_live].sum() <= done:
            out.append(self.frames.live[self.next_live])
            self.next_live += 1
        return out

    def _spoil(self, frame: bytes) -> bytes:
        """Every corrupt_every-th live frame gets a flipped bit (CRC fails); garbage_every adds noise."""
        self._n_live += 1
        if self.corrupt_every and self._n_live % self.corrupt_every == 0:
            self.corrupted += 1
            frame = frame[:20] + bytes([frame[20] ^ 0x10]) + frame[21:]
        if self.garbage_every and self._n_live % self.garbage_every == 0:
            self.noise.append(b"\x9fNMEA,GPGGA,123519,4807.038,N")  # a foreign notification
        return frame

    def tick(self, connected: bool) -> tuple[list[bytes], bool]:
        """Frames to notify now, and whether to drop the link now."""
        drop = False
        if (self.drop_at_s is not None and not self.dropped_done and connected
                and self.now_s() >= self.drop_at_s):
            self.dropped_done = True
            self.drops += 1
            self.streaming = False
            self.download = []
            self.down_until_wall = time.monotonic() + self.drop_for_s / self.speed
            drop = True
        new = self._advance()
        if self.next_live >= len(self.live_span) and self.t_end_wall is None:
            self.t_end_wall = time.monotonic()
        if not (connected and self.streaming) or drop:
            self.produced_while_down += sum(f[11] for f in new)
            return [], drop
        out = [self._spoil(f) for f in new] + self.noise
        self.noise = []
        if self.download:  # interleave the backfill with the live stream, a few records per tick
            out += self.download[:40]
            del self.download[:40]
            if not self.download:
                t = int(self.now_s() * 1e6)
                out.append(fr.encode_event(fr.Event(w.EV_DOWNLOAD_DONE, self._next_seq(), t, self.dl_count)))
        return out, False


# ---------------------------------------------------------------------------------------------- dbus objects
class _Props(ServiceInterface):
    SIGS: dict[str, str] = {}

    def __init__(self, name: str, **props):
        super().__init__(name)
        self.p = props

    def variants(self) -> dict[str, Variant]:
        return {k: Variant(s, self.p[k]) for k, s in self.SIGS.items() if k in self.p}

    def set(self, **kw) -> None:
        self.p.update(kw)
        self.emit_properties_changed(kw)


class Adapter(_Props):
    SIGS = {"Address": "s", "Name": "s", "Alias": "s", "Powered": "b", "Discovering": "b", "Roles": "as"}

    def __init__(self, fake: "FakeBluez"):
        super().__init__("org.bluez.Adapter1", Address="00:1A:7D:DA:71:13", Name="fakehci", Alias="fakehci",
                         Powered=True, Discovering=False, Roles=["central", "peripheral"])
        self.fake = fake

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}"):  # noqa: F821,N802
        pass

    @method()
    def StartDiscovery(self):  # noqa: N802
        self.set(Discovering=True)
        self.fake.discovery_started()

    @method()
    def StopDiscovery(self):  # noqa: N802
        self.set(Discovering=False)

    @method()
    def RemoveDevice(self, device: "o"):  # noqa: F821,N802
        pass

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":  # noqa: F821,N802
        return self.p["Address"]

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":  # noqa: F821,N802
        return self.p["Name"]

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":  # noqa: F821,N802
        return self.p["Alias"]

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> "b":  # noqa: F821,N802
        return self.p["Powered"]

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":  # noqa: F821,N802
        return self.p["Discovering"]

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> "as":  # noqa: F821,N802
        return self.p["Roles"]


class Device(_Props):
    SIGS = {"Address": "s", "AddressType": "s", "Name": "s", "Alias": "s", "Adapter": "o", "Connected": "b",
            "ServicesResolved": "b", "Paired": "b", "Bonded": "b", "Trusted": "b", "RSSI": "n", "UUIDs": "as",
            "ManufacturerData": "a{qv}", "ServiceData": "a{sv}"}

    def __init__(self, fake: "FakeBluez"):
        super().__init__("org.bluez.Device1", Address=ADDRESS, AddressType="random", Name=NAME, Alias=NAME,
                         Adapter=ADAPTER, Connected=False, ServicesResolved=False, Paired=False, Bonded=False,
                         Trusted=False, RSSI=fake.clip.rssi_dbm, UUIDs=[] if fake.clip.wrong_device else [w.SERVICE_UUID], ManufacturerData={},
                         ServiceData={})
        self.fake = fake

    @method()
    async def Connect(self):  # noqa: N802
        await self.fake.connect()

    @method()
    async def Disconnect(self):  # noqa: N802
        self.fake.disconnect("host")

    @method()
    def Pair(self):  # noqa: N802
        raise DBusError("org.bluez.Error.NotSupported", "pairing not emulated")

    for _n, _s in SIGS.items():
        exec(f"@dbus_property(access=PropertyAccess.READ)\ndef {_n}(self) -> {_s!r}:\n    return self.p[{_n!r}]")
    del _n, _s


class Service(_Props):
    SIGS = {"UUID": "s", "Device": "o", "Primary": "b", "Includes": "ao"}

    def __init__(self, path: str):
        super().__init__("org.bluez.GattService1", UUID=SERVICES[path], Device=DEVICE, Primary=True, Includes=[])
        self.path = path

    for _n, _s in SIGS.items():
        exec(f"@dbus_property(access=PropertyAccess.READ)\ndef {_n}(self) -> {_s!r}:\n    return self.p[{_n!r}]")
    del _n, _s


class Characteristic(_Props):
    SIGS = {"UUID": "s", "Service": "o", "Flags": "as", "Value": "ay", "MTU": "q", "Notifying": "b",
            "NotifyAcquired": "b"}

    def __init__(self, fake: "FakeBluez", role: str):
        path, uuid, flags = CHARS[role]
        props = dict(UUID=uuid, Service=path.rsplit("/", 1)[0], Flags=flags, Value=b"", MTU=fake.clip.mtu, Notifying=False,
                     NotifyAcquired=False)
        super().__init__("org.bluez.GattCharacteristic1", **props)
        self.fake, self.role, self.path = fake, role, path
        self.sock: socket.socket | None = None
        self.backlog: collections.deque[tuple[bytes, bytes | None]] = collections.deque()
        self.budget = 1 << 30

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":  # noqa: F821,N802
        self.fake.require_connected()
        if self.role == "status":
            return fr.encode_status(self.fake.clip._status())
        if self.role == "battery":
            return bytes([self.fake.clip.battery_pct])
        raise DBusError("org.bluez.Error.NotPermitted", "Read not permitted")

    @method()
    async def WriteValue(self, value: "ay", options: "a{sv}"):  # noqa: F821,N802
        self.fake.require_connected()
        if self.role != "control":
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        await self.fake.on_command(bytes(value))

    @method()
    def StartNotify(self):  # noqa: N802
        self.fake.require_connected()
        self.set(Notifying=True)

    @method()
    def StopNotify(self):  # noqa: N802
        self.set(Notifying=False)

    @method()
    def AcquireNotify(self, options: "a{sv}") -> "hq":  # noqa: F821,N802
        self.fake.require_connected()
        self.release()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setblocking(False)
        self.sock = mine
        fd = theirs.detach()
        asyncio.ensure_future(self.fake.close_when_sent(fd))
        self.p["NotifyAcquired"] = True
        return [fd, self.fake.clip.mtu]

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.p["NotifyAcquired"] = False

    def notify(self, value: bytes) -> None:
        """One notification (segmented per PROTOCOL.md 1.2 when it does not fit MTU-3)."""
        parts = pble.segment(value, self.fake.clip.mtu)
        self.backlog.extend((p, value if k == len(parts) - 1 else None) for k, p in enumerate(parts))
        self.flush()

    def flush(self) -> None:
        """Send what the host's socket takes; the rest waits (a real link paces itself the same way)."""
        while self.backlog:
            part, whole = self.backlog[0]
            if self.sock is not None:
                try:
                    self.sock.send(part)
                except BlockingIOError:
                    self.fake.stalls += 1
                    return
                except OSError:  # the host closed its end (bleak's _acquire_mtu does right away)
                    self.release()
                    return
            elif self.p.get("Notifying"):
                if self.budget <= 0:  # PropertiesChanged signals: at most signals_per_tick per tick
                    return
                self.budget -= 1
                self.set(Value=part)
            else:
                return
            self.backlog.popleft()
            self.fake.notifications += 1
            kind = whole[0] & 0x0F if whole is not None else 0
            if kind and binascii.crc_hqx(whole[:-2], 0xFFFF) != int.from_bytes(whole[-2:], "little"):
                kind = 0  # a damaged frame was not delivered
            if kind in (w.T_DATA_COMPACT, w.T_DATA_FULL, w.T_LOG_COMPACT, w.T_LOG_FULL):
                span = (int.from_bytes(whole[1:5], "little"), whole[11])
                (self.fake.clip.sent if kind <= w.T_DATA_FULL else self.fake.clip.log_sent).append(span)

    for _n, _s in SIGS.items():
        exec(f"@dbus_property(access=PropertyAccess.READ)\ndef {_n}(self) -> {_s!r}:\n    return self.p[{_n!r}]")
    del _n, _s


class FakeBluez:
    """Serves ``clip`` as org.bluez on ``address`` from a thread with its own event loop."""

    def __init__(self, address: str, clip: ClipSim, tick_s: float = 0.02, status_every_s: float = 1.0,
                 signals_per_tick: int = 24):
        self.address, self.clip, self.tick_s, self.status_every_s = address, clip, tick_s, status_every_s
        self.signals_per_tick = signals_per_tick  # 1200 notifications/s by StartNotify (~20k/s kills dbus-fast)
        self.connected = False
        self.connects = 0
        self.notifications = 0
        self.stalls = 0
        self.errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> "FakeBluez":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"fake bluez did not start: {self.errors}")
        if self.errors:
            raise RuntimeError(self.errors[0])
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 - reported to the test
            self.errors.append(repr(exc))
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM,
                                    negotiate_unix_fd=True).connect()
        # dbus-fast gives up its connection when a send would block: a big buffer, and signals are paced
        sock = getattr(self.bus, "_sock", None)
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.adapter = Adapter(self)
        self.device = Device(self)
        self.services = [Service(p) for p in SERVICES]
        self.chars = {r: Characteristic(self, r) for r in CHARS}
        self.bus.export(ADAPTER, self.adapter)
        await self.bus.request_name("org.bluez")
        self._device_exported = False
        self._ready.set()
        last_status = 0.0
        while not self._stop.is_set():
            await asyncio.sleep(self.tick_s)
            out, drop = self.clip.tick(self.connected)
            if drop:
                self.disconnect("dropped by the fake (out of range)")
            for c in self.chars.values():
                c.budget = self.signals_per_tick
            self.chars["stream"].flush()
            for f in out:
                self.chars["stream"].notify(f)
            if self.connected and time.monotonic() - last_status > self.status_every_s:
                last_status = time.monotonic()
                self.chars["status"].notify(fr.encode_status(self.clip._status()))
            if self.adapter.p["Discovering"] and self._device_exported and not self.connected \
                    and not self.clip.down():
                # advertisements: bleak reports only devices added or changed while it scans
                self.device.set(RSSI=self.clip.rssi_dbm + int(time.monotonic() * 10) % 3 - 1)
        self.bus.disconnect()

    # -- called by the dbus objects
    def discovery_started(self) -> None:
        if not self._device_exported and not self.clip.down():
            self._device_exported = True
            self.bus.export(DEVICE, self.device)
            for sv in self.services:
                if not (self.clip.wrong_device and sv.path == SERVICE):
                    self.bus.export(sv.path, sv)
            for c in self.chars.values():
                if not (self.clip.wrong_device and c.path.startswith(SERVICE + "/")):
                    self.bus.export(c.path, c)

    async def close_when_sent(self, fd: int) -> None:
        """Close our copy of a passed fd once the reply carrying it left (else the host's close goes unseen)."""
        writer = getattr(self.bus, "_writer", None)
        for _ in range(200):
            await asyncio.sleep(0.005)
            if writer is None or (not writer.messages and writer.buf is None):
                break
        os.close(fd)

    def require_connected(self) -> None:
        if not self.connected:
            raise DBusError("org.bluez.Error.NotConnected", "Not connected")

    async def connect(self) -> None:
        await asyncio.sleep(0.05)
        if self.clip.down():
            raise DBusError("org.bluez.Error.Failed", "Page Timeout")
        if not self.connected:
            self.connected = True
            self.connects += 1
            self.device.set(Connected=True)
            await asyncio.sleep(0.02)
            self.device.set(ServicesResolved=True)

    def disconnect(self, why: str) -> None:
        if not self.connected:
            return
        self.connected = False
        self.clip.streaming = False
        self.clip.download = []
        for c in self.chars.values():
            c.release()
            c.backlog.clear()
            if c.p.get("Notifying"):
                c.p["Notifying"] = False
        self.device.set(ServicesResolved=False, Connected=False)

    async def on_command(self, frame: bytes) -> None:
        reply, before = self.clip.command(frame)
        for f in [*before, reply]:
            self.chars["stream"].notify(f)
