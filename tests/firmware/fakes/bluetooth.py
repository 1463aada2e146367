"""Fake of MicroPython's low-level ``bluetooth`` module (peripheral/GATT-server side).

Follows the documented API (docs.micropython.org/en/latest/library/bluetooth.html): ``BLE()`` singleton,
``active``, ``config``, ``irq`` with the documented event codes and data tuples, ``gap_advertise``,
``gatts_register_services`` returning value handles, ``gatts_read/write/notify/indicate/set_buffer``,
``gattc_exchange_mtu``, ``gap_disconnect``, ``gap_pair`` and ``UUID``.

Like NimBLE on the ESP32: a notification carries at most MTU-3 bytes (silently truncated), each
notification takes one of a few controller buffers that come back over time, and ``gatts_notify``
raises ``OSError(ENOMEM)`` when none is free; no "sent" event exists. Subscriptions (CCCD writes)
are not reported to Python.

Test hooks simulate a central: ``central = BLE().sim_connect(...)``, then ``central.write(h, data)``,
``central.read(h)``, ``central.exchange_mtu(n)``, ``central.pair()``, ``central.disconnect()``;
``central.notifications`` collects ``(value_handle, bytes)``, ``central.notify_ms`` their ``time.ticks_ms()``.
Events are delivered synchronously.
"""

import time

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_READ_REQUEST = 4
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_CONNECTION_UPDATE = 27
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30
_IRQ_PASSKEY_ACTION = 31

FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020

_ENOMEM = 12
_ENOTCONN = 107
_GATTS_ERROR_READ_NOT_PERMITTED = 0x02


class UUID:
    def __init__(self, value):
        if isinstance(value, UUID):
            self._b = value._b
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._b = bytes((value & 0xFF, value >> 8))
        elif isinstance(value, str):
            h = value.replace("-", "")
            if len(h) != 32:
                raise ValueError("invalid UUID")
            raw = bytes(int(h[i : i + 2], 16) for i in range(0, 32, 2))
            self._b = bytes(reversed(raw))  # stored little-endian, like the real module
        elif isinstance(value, (bytes, bytearray, memoryview)) and len(value) in (2, 4, 16):
            self._b = bytes(value)
        else:
            raise ValueError("invalid UUID")

    def __bytes__(self):
        return self._b

    def __eq__(self, other):
        return isinstance(other, UUID) and other._b == self._b

    def __hash__(self):
        return hash(self._b)

    def __str__(self):
        if len(self._b) == 2:
            return "0x%04x" % (self._b[0] | self._b[1] << 8)
        h = "".join("%02x" % c for c in reversed(self._b))
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def __repr__(self):
        return "UUID(%s)" % str(self)


class Central:
    """A simulated central connected to the fake peripheral (test hook)."""

    def __init__(self, ble, conn_handle, addr, mtu, bonded):
        self.ble = ble
        self.conn_handle = conn_handle
        self.addr = addr
        self.mtu = 23  # until an exchange happens
        self.max_mtu = mtu  # what this central accepts in an exchange
        self.bonded = bonded
        self.encrypted = False
        self.connected = True
        self.notifications = []  # (value_handle, bytes)
        self.notify_ms = []  # time.ticks_ms() of each notification (the asyncio clock), same order
        self.indications = []
        self.denied_reads = 0

    def write(self, handle, data):
        if not self.connected:
            raise OSError(_ENOTCONN)
        self.ble._central_write(handle, bytes(data))
        self.ble._fire(_IRQ_GATTS_WRITE, (self.conn_handle, handle))

    def read(self, handle):
        r = self.ble._fire(_IRQ_GATTS_READ_REQUEST, (self.conn_handle, handle))
        if r:
            self.denied_reads += 1
            return None
        return self.ble.gatts_read(handle)[: self.mtu - 1]

    def exchange_mtu(self, mtu=None):
        """Central-initiated exchange; the result is the smaller of both sides' MTU."""
        if mtu is not None:
            self.max_mtu = mtu
        self.mtu = min(self.max_mtu, self.ble._cfg["mtu"])
        self.ble._fire(_IRQ_MTU_EXCHANGED, (self.conn_handle, self.mtu))
        return self.mtu

    def pair(self):
        """Encrypt the link; bond if both sides want it (firmware config ``bond=True``)."""
        self.encrypted = True
        want_bond = self.ble._cfg["bond"]
        if want_bond and not self.bonded:
            key = b"ltk:" + self.addr
            self.ble._fire(_IRQ_SET_SECRET, (1, key, b"secret-" + self.addr))
            self.bonded = True
        elif self.bonded:
            got = self.ble._fire(_IRQ_GET_SECRET, (1, 0, b"ltk:" + self.addr))
            self.bonded = got is not None
        self.ble._fire(
            _IRQ_ENCRYPTION_UPDATE,
            (self.conn_handle, True, bool(self.ble._cfg["mitm"]), self.bonded, 16),
        )

    def disconnect(self):
        if self.connected:
            self.connected = False
            self.ble._conns.pop(self.conn_handle, None)
            self.ble._fire(_IRQ_CENTRAL_DISCONNECT, (self.conn_handle, 0, self.addr))

    @property
    def payloads(self):
        return [d for _, d in self.notifications]


class BLE:
    _instance = None

    def __new__(cls, *a):
        if cls._instance is None:
            o = object.__new__(cls)
            o._reset()
            cls._instance = o
        return cls._instance

    def __init__(self, *a):
        pass

    # -- test hooks -------------------------------------------------------------------------
    def _reset(self):
        self._active = False
        self._handler = None
        self._cfg = {
            "mac": (0, b"\xaa\xbb\xcc\xdd\xee\xff"),
            "gap_name": "MPY ESP32",
            "mtu": 23,
            "bond": False,
            "mitm": False,
            "le_secure": False,
            "io": 3,
            "addr_mode": 0,
            "rxbuf": 256,
        }
        self._values = {}  # handle -> bytes
        self._bufsize = {}  # handle -> (len, append)
        self._flags = {}  # handle -> flags
        self._uuids = {}  # handle -> UUID
        self._conns = {}  # conn_handle -> Central
        self._next_conn = 0
        self.adv = None  # (interval_us, adv_data, resp_data, connectable) or None when stopped
        self.adv_history = []
        self.tx_buffers = 8  # controller notification buffers
        self.tx_refill_per_s = 200  # buffers returned per second (about 3 per 15 ms connection event)
        self._credits = self.tx_buffers
        self._last_refill = time.ticks_ms()
        self.enomem_count = 0
        self.notify_calls = 0
        self.irq_errors = []

    @classmethod
    def sim_reset(cls):
        """Forget everything (a fresh radio)."""
        if cls._instance is not None:
            cls._instance._reset()

    def sim_connect(self, addr=b"\x11\x22\x33\x44\x55\x66", mtu=247, bonded=False):
        """A central connects (advertising stops, like NimBLE after a connection)."""
        h = self._next_conn
        self._next_conn += 1
        c = Central(self, h, bytes(addr), mtu, bonded)
        self._conns[h] = c
        self.adv = None
        self._fire(_IRQ_CENTRAL_CONNECT, (h, 0, c.addr))
        return c

    def sim_refill(self, n=None):
        """Give back controller buffers (as if packets went out)."""
        self._credits = self.tx_buffers if n is None else min(self.tx_buffers, self._credits + n)

    def sim_handle(self, uuid):
        """The value handle registered for a characteristic UUID (first match)."""
        u = UUID(uuid)
        for h, v in self._uuids.items():
            if v == u:
                return h
        raise KeyError(uuid)

    def _fire(self, event, data):
        if self._handler is None:
            return None
        try:
            return self._handler(event, data)
        except Exception as e:  # real port prints and carries on; keep the error for tests
            self.irq_errors.append((event, repr(e)))
            raise

    def _central_write(self, handle, data):
        if handle not in self._values:
            raise ValueError("no such handle")
        size, append = self._bufsize.get(handle, (20, False))
        if append:
            data = (self._values[handle] + data)[:size]
        else:
            data = data[:size]
        self._values[handle] = data

    def _refill(self):
        now = time.ticks_ms()
        dt = time.ticks_diff(now, self._last_refill)
        n = dt * self.tx_refill_per_s // 1000
        if n > 0:
            self._credits = min(self.tx_buffers, self._credits + n)
            self._last_refill = now

    # -- documented API ---------------------------------------------------------------------
    def active(self, active=None):
        if active is not None:
            self._active = bool(active)
            if not active:
                self.adv = None
        return self._active

    def config(self, *args, **kw):
        if args:
            if len(args) != 1 or kw:
                raise TypeError("one parameter at a time")
            k = args[0]
            if k not in self._cfg:
                raise ValueError("unknown config param")
            return self._cfg[k]
        for k, v in kw.items():
            if k not in self._cfg or k == "mac":
                raise ValueError("unknown config param")
            if k == "mtu" and not 23 <= v <= 517:
                raise ValueError("mtu")
            self._cfg[k] = v

    def irq(self, handler):
        self._handler = handler

    def _need_active(self):
        if not self._active:
            raise OSError(1)  # EPERM, as the real module when the radio is off

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self._need_active()
        if interval_us is None:
            self.adv = None
        else:
            if adv_data is not None and len(adv_data) > 31:
                raise OSError(22)
            prev = self.adv
            self.adv = (
                interval_us,
                bytes(adv_data) if adv_data is not None else (prev[1] if prev else b""),
                bytes(resp_data) if resp_data is not None else (prev[2] if prev else b""),
                connectable,
            )
        self.adv_history.append(self.adv)

    def gatts_register_services(self, services_definition):
        self._need_active()
        if self._conns:
            raise OSError(16)  # EBUSY
        self._values.clear()
        handle = 0
        out = []
        for service in services_definition:
            uuid, chars = service[0], service[1]
            if not isinstance(uuid, UUID):
                raise TypeError("UUID")
            handle += 1  # service declaration
            hs = []
            for ch in chars:
                cu, flags = ch[0], ch[1]
                handle += 2  # characteristic declaration + value
                self._values[handle] = b""
                self._flags[handle] = flags
                self._uuids[handle] = cu
                hs.append(handle)
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    handle += 1  # CCCD, not returned
                for d in ch[2] if len(ch) > 2 else ():
                    handle += 1
                    self._values[handle] = b""
                    self._uuids[handle] = d[0]
                    hs.append(handle)
            out.append(tuple(hs))
        return tuple(out)

    def gatts_read(self, value_handle):
        return self._values[value_handle]

    def gatts_write(self, value_handle, data, send_update=False):
        if value_handle not in self._values:
            raise OSError(22)
        self._values[value_handle] = bytes(data)
        if send_update:
            for c in self._conns.values():
                self.gatts_notify(c.conn_handle, value_handle)

    def gatts_set_buffer(self, value_handle, len, append=False):
        self._bufsize[value_handle] = (len, append)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self.notify_calls += 1
        c = self._conns.get(conn_handle)
        if c is None or not c.connected:
            raise OSError(_ENOTCONN)
        self._refill()
        if self._credits <= 0:
            self.enomem_count += 1
            raise OSError(_ENOMEM)
        self._credits -= 1
        payload = self._values[value_handle] if data is None else bytes(data)
        c.notifications.append((value_handle, payload[: c.mtu - 3]))
        c.notify_ms.append(time.ticks_ms())

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        c = self._conns.get(conn_handle)
        if c is None:
            raise OSError(_ENOTCONN)
        payload = self._values[value_handle] if data is None else bytes(data)
        c.indications.append((value_handle, payload[: c.mtu - 3]))
        self._fire(_IRQ_GATTS_INDICATE_DONE, (conn_handle, value_handle, 0))

    def gattc_exchange_mtu(self, conn_handle):
        """Peripheral-initiated exchange: both sides agree on min(local, central)."""
        c = self._conns.get(conn_handle)
        if c is None:
            raise OSError(_ENOTCONN)
        c.mtu = min(c.max_mtu, self._cfg["mtu"])
        self._fire(_IRQ_MTU_EXCHANGED, (conn_handle, c.mtu))

    def gap_disconnect(self, conn_handle):
        c = self._conns.get(conn_handle)
        if c is None:
            return False
        c.disconnect()
        return True

    def gap_pair(self, conn_handle):
        c = self._conns.get(conn_handle)
        if c is None:
            raise OSError(_ENOTCONN)
        c.pair()

    def gap_passkey(self, conn_handle, action, passkey):
        pass
