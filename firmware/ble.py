"""GATT server for the clip on MicroPython's low-level ``bluetooth`` module (PROTOCOL.md 1.1).

Services: tiltguard (stream notify, control write, status read+notify), Device Information,
Battery. One central at a time. IRQ handlers only copy data (``bytes()``) and set flags; the
asyncio side (``Link.pump``) does the work: MTU exchange, advertising, paced notifications.

NimBLE has no "sent" event and raises ``OSError(ENOMEM)`` when its buffers are full: ``send``
then returns False and the caller keeps the frame for the next tick (nothing is lost).
"""

import asyncio
import json

import bluetooth
from micropython import const

import frames
import wire

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_F_READ = const(0x0002)
_F_WRITE_NR = const(0x0004)
_F_WRITE = const(0x0008)
_F_NOTIFY = const(0x0010)
_IO_NO_INPUT_OUTPUT = const(3)
_ENOMEM = const(12)
_ADV_INTERVAL_US = const(250_000)
_INBOX = const(4)  # command writes held until the app takes them


def _adv_field(t, data):
    return bytes((len(data) + 1, t)) + data


def adv_payloads(name):
    """(advertising data, scan response): flags + 128-bit service UUID; the name in the response."""
    h = wire.SERVICE_UUID.replace("-", "")
    le = bytes(int(h[i : i + 2], 16) for i in range(30, -2, -2))  # 128-bit UUIDs go little-endian
    adv = _adv_field(0x01, b"\x06") + _adv_field(0x07, le)
    resp = _adv_field(0x09, name.encode())
    return adv, resp


class BondStore:
    """Bonding keys for NimBLE's _IRQ_GET/SET_SECRET, kept in a small JSON file."""

    def __init__(self, path):
        self.path = path
        self.keys = {}
        try:
            with open(path) as f:
                self.keys = json.load(f)
        except (OSError, ValueError):
            pass

    def _k(self, sec_type, key):
        return "%d:%s" % (sec_type, bytes(key).hex())

    def get(self, sec_type, index, key):
        if key is None:  # enumerate by index
            pre = "%d:" % sec_type
            hits = [v for k, v in sorted(self.keys.items()) if k.startswith(pre)]
            return bytes.fromhex(hits[index]) if index < len(hits) else None
        v = self.keys.get(self._k(sec_type, key))
        return bytes.fromhex(v) if v is not None else None

    def set(self, sec_type, key, value):
        k = self._k(sec_type, key)
        if value is None:
            self.keys.pop(k, None)
        else:
            self.keys[k] = bytes(value).hex()
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.keys, f)
            import os

            os.rename(tmp, self.path)
        except OSError:
            pass
        return True


class BleLink:
    def __init__(self, name, info, bond_path="/bonds.json", mtu=wire.MTU_MAX):
        self.name = name
        self.conn = None
        self.mtu = wire.MTU_MIN
        self.encrypted = False
        self.bonded = False
        self.connects = 0
        self.enomem = 0
        self.sent = 0
        self._mtu_asked = False
        self._readv = False
        self._segf = None  # frame being sent in segments
        self._cur = None
        self._inbox = []
        self._flag = asyncio.ThreadSafeFlag()
        self.on_connect = None  # callbacks set by the app: f(link)
        self.on_disconnect = None
        self.on_mtu = None
        self.bonds = BondStore(bond_path)
        self.seg = frames.Segmenter()
        ble = self.ble = bluetooth.BLE()
        ble.active(True)
        ble.config(gap_name=name)
        for k, v in (("mtu", mtu), ("bond", True), ("le_secure", True), ("mitm", False), ("io", _IO_NO_INPUT_OUTPUT)):
            try:  # pairing options exist on NimBLE ports only (not on BTstack/Pico W)
                ble.config(**{k: v})
            except (ValueError, OSError, TypeError):
                pass
        ble.irq(self._irq)
        U = bluetooth.UUID
        svc = (
            U(wire.SERVICE_UUID),
            (
                (U(wire.STREAM_UUID), _F_NOTIFY),
                (U(wire.CONTROL_UUID), _F_WRITE | _F_WRITE_NR),
                (U(wire.STATUS_UUID), _F_READ | _F_NOTIFY),
            ),
        )
        dis = (
            U(wire.DIS_UUID16),
            tuple((U(u), _F_READ) for u in (
                wire.DIS_MANUFACTURER_UUID16, wire.DIS_MODEL_UUID16, wire.DIS_SERIAL_UUID16, wire.DIS_FIRMWARE_UUID16)),
        )
        bat = (U(wire.BATTERY_UUID16), ((U(wire.BATTERY_LEVEL_UUID16), _F_READ | _F_NOTIFY),))
        ((self.h_stream, self.h_control, self.h_status), dis_h, (self.h_battery,)) = ble.gatts_register_services(
            (svc, dis, bat))
        ble.gatts_set_buffer(self.h_control, wire.MAX_COMMAND * 2)  # longer writes are cut, then refused by CRC
        for h, key in zip(dis_h, ("manufacturer", "model", "serial", "firmware")):
            ble.gatts_write(h, str(info.get(key, "")).encode())
        ble.gatts_write(self.h_battery, b"\xff")
        self.advertise()

    # -- IRQ: runs on the BLE stack's schedule; copy, flag, return -------------------------
    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            if self.conn is not None:  # one host at a time
                self.ble.gap_disconnect(data[0])
                return
            self.conn = data[0]
            self.mtu = wire.MTU_MIN
            self.encrypted = self.bonded = False
            self._mtu_asked = False
            self.connects += 1
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self.conn:
                self.conn = None
                self.encrypted = self.bonded = False
                self._inbox.clear()
                self._segf = None
                self._readv = True  # NimBLE stopped advertising at the connection
        elif event == _IRQ_GATTS_WRITE:
            if data[0] == self.conn and data[1] == self.h_control and len(self._inbox) < _INBOX:
                self._inbox.append(bytes(self.ble.gatts_read(self.h_control)))
        elif event == _IRQ_GATTS_READ_REQUEST:
            return 0
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self.conn:
                self.mtu = data[1]
        elif event == _IRQ_ENCRYPTION_UPDATE:
            if data[0] == self.conn:
                self.encrypted, self.bonded = bool(data[1]), bool(data[3])
        elif event == _IRQ_GET_SECRET:
            return self.bonds.get(data[0], data[1], data[2])
        elif event == _IRQ_SET_SECRET:
            return self.bonds.set(data[0], data[1], data[2])
        self._flag.set()
        return None

    # -- app side --------------------------------------------------------------------------
    @property
    def connected(self):
        return self.conn is not None

    @property
    def trusted(self):
        """Bonded (or at least encrypted by a bonded key) connection."""
        return self.conn is not None and self.bonded and self.encrypted

    def advertise(self):
        adv, resp = adv_payloads(self.name)
        self.ble.gap_advertise(_ADV_INTERVAL_US, adv, resp_data=resp)

    def poll(self):
        """Handle what the IRQs flagged: returns the next command frame (bytes) or None."""
        if self._readv and self.conn is None:
            self._readv = False
            self.advertise()
        if self.conn is not None and not self._mtu_asked:
            self._mtu_asked = True
            try:
                self.ble.gattc_exchange_mtu(self.conn)  # peripheral-initiated: ask for 247
            except OSError:
                pass
        if self._inbox:
            return self._inbox.pop(0)
        return None

    def room(self):
        """Payload bytes per notification now."""
        return self.mtu - wire.ATT_HEADER

    def send(self, frame, n):
        """Notify frame[:n] on the stream characteristic; False when the stack had no buffer.

        A frame longer than MTU-3 goes out in segments (PROTOCOL.md 1.2). After an ENOMEM the
        next call for the same frame resumes at the segment that failed, so a tiny MTU with few
        stack buffers still makes progress.
        """
        if self.conn is None:
            return False
        try:
            if n <= self.mtu - wire.ATT_HEADER:
                self.ble.gatts_notify(self.conn, self.h_stream, frame[:n] if n < len(frame) else frame)
            else:
                if self._segf is not frame:
                    self.seg.start(frame, n, self.mtu)
                    self._segf = frame
                    self._cur = self.seg.next()
                while self._cur is not None:
                    self.ble.gatts_notify(self.conn, self.h_stream, self._cur)
                    self._cur = self.seg.next()
                self._segf = None
        except OSError as e:
            if e.args[0] == _ENOMEM:
                self.enomem += 1
                return False
            self._drop()
            return False
        self.sent += 1
        return True

    def _drop(self):
        # ENOTCONN and friends: the link is gone even if the disconnect event is late
        self.conn = None
        self._segf = None
        self._readv = True

    def set_status(self, frame, n, notify=False):
        self.ble.gatts_write(self.h_status, frame[:n])
        if notify and self.conn is not None:
            try:
                if n <= self.mtu - wire.ATT_HEADER:
                    self.ble.gatts_notify(self.conn, self.h_status)
            except OSError:
                pass

    def set_battery(self, pct):
        self.ble.gatts_write(self.h_battery, bytes((min(100, max(0, pct)),)))

    async def wait(self, ms):
        """Sleep until an IRQ flagged something or ``ms`` passed."""
        try:
            await asyncio.wait_for_ms(self._flag.wait(), ms)
        except asyncio.TimeoutError:
            pass

    def disconnect(self):
        if self.conn is not None:
            self.ble.gap_disconnect(self.conn)
