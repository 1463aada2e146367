"""Encode PROTOCOL.md frames into preallocated buffers (no heap allocation per sample or frame).

Times are 48-bit microseconds passed as two small ints: t_us = t_hi << 24 | t_lo (each < 2**24),
so nothing becomes a heap-allocated big int on a 32-bit port.
"""

import struct
import micropython
import wire

_HDR = wire.DATA_HDR_SIZE
_VER = wire.PROTOCOL_VERSION << 4


@micropython.viper
def crc16(buf, n: int) -> int:
    """CRC-16/CCITT-FALSE of buf[0:n]."""
    p = ptr8(buf)
    c = 0xFFFF
    i = 0
    while i < n:
        c ^= p[i] << 8
        j = 0
        while j < 8:
            if c & 0x8000:
                c = ((c << 1) ^ 0x1021) & 0xFFFF
            else:
                c = (c << 1) & 0xFFFF
            j += 1
        i += 1
    return c


@micropython.viper
def _copy_i16(dst, off: int, src, k: int):
    # k int16 values of array('h') src -> little-endian bytes at dst[off:]
    d = ptr8(dst)
    s = ptr16(src)
    i = 0
    while i < k:
        v = s[i]
        d[off] = v & 0xFF
        d[off + 1] = (v >> 8) & 0xFF
        off += 2
        i += 1


def put_u48(buf, off, t_hi, t_lo):
    """Write t_hi << 24 | t_lo as a u48 (three little-endian u16 words)."""
    struct.pack_into("<3H", buf, off, t_lo & 0xFFFF, (t_lo >> 16) | ((t_hi & 0xFF) << 8), t_hi >> 8)


def seal(buf, n):
    """Append the CRC over buf[0:n]; return the frame length n + 2."""
    struct.pack_into("<H", buf, n, crc16(buf, n))
    return n + 2


def check(buf, n):
    """True if buf[0:n] is a version-1 frame whose CRC checks."""
    if n < 3 or (buf[0] >> 4) != wire.PROTOCOL_VERSION:
        return False
    return crc16(buf, n - 2) == (buf[n - 2] | (buf[n - 1] << 8))


class DataEncoder:
    """Batch samples into one data frame sized to the MTU.

    begin(seq, t_hi, t_lo, period_q); add(...) until it returns True (frame full) or the frame is
    due; finish() returns a memoryview of the sealed frame, valid until the next begin().
    """

    def __init__(self, mode=wire.MODE_COMPACT, mtu=wire.MTU_MAX, log=False):
        self.buf = bytearray(wire.MAX_FRAME)
        mv = memoryview(self.buf)
        # one view per possible frame length, made once: finish() must not allocate
        self._views_c = [mv[: wire.DATA_OVERHEAD + n * wire.SAMPLE_COMPACT_SIZE] for n in range(wire.MAX_SAMPLES_COMPACT + 1)]
        self._views_f = [mv[: wire.DATA_OVERHEAD + n * wire.SAMPLE_FULL_SIZE] for n in range(wire.MAX_SAMPLES_FULL + 1)]
        self.log = log
        self.n = 0
        self.mtu = mtu
        self.set_mode(mode)

    def set_mode(self, mode):
        self.mode = mode
        self.size = wire.sample_size(mode)
        self.set_mtu(self.mtu)

    def set_mtu(self, mtu):
        self.mtu = mtu
        self.cap = wire.samples_per_frame(mtu, self.mode)

    def begin(self, seq, t_hi, t_lo, period_q):
        if self.mode == wire.MODE_FULL:
            t = wire.T_LOG_FULL if self.log else wire.T_DATA_FULL
        else:
            t = wire.T_LOG_COMPACT if self.log else wire.T_DATA_COMPACT
        b = self.buf
        struct.pack_into("<BI", b, 0, _VER | t, seq)
        put_u48(b, 5, t_hi, t_lo)
        struct.pack_into("<BH", b, 11, 0, period_q)
        self.n = 0

    def add(self, tilt, obl, rot, ax, ay, az, gx=0, gy=0, gz=0):
        """Append one sample in wire units (ints); return True when the frame is full."""
        off = _HDR + self.n * self.size
        if self.size == wire.SAMPLE_FULL_SIZE:
            struct.pack_into("<9h", self.buf, off, tilt, obl, rot, ax, ay, az, gx, gy, gz)
        else:
            struct.pack_into("<6h", self.buf, off, tilt, obl, rot, ax, ay, az)
        self.n += 1
        return self.n >= self.cap

    def add_array(self, values):
        """Append one sample from an array('h') of 6 (compact) or 9 (full) values."""
        _copy_i16(self.buf, _HDR + self.n * self.size, values, self.size >> 1)
        self.n += 1
        return self.n >= self.cap

    def finish(self):
        n = self.n
        self.buf[11] = n
        seal(self.buf, _HDR + n * self.size)
        return self._views_f[n] if self.size == wire.SAMPLE_FULL_SIZE else self._views_c[n]


def status_body(buf, off, state, battery_pct, battery_mv, log_fill_pct, mode, rate_hz, next_seq, dropped, log_lost, log_first_seq, t_hi, t_lo):
    """Pack the 30-byte status body at buf[off:] (status frame and get_status reply)."""
    struct.pack_into("<BBHBBHIIII", buf, off, state, battery_pct, battery_mv, log_fill_pct, mode, rate_hz, next_seq, dropped, log_lost, log_first_seq)
    put_u48(buf, off + 24, t_hi, t_lo)


def encode_status(buf, state, battery_pct, battery_mv, log_fill_pct, mode, rate_hz, next_seq, dropped, log_lost, log_first_seq, t_hi, t_lo):
    """Status frame into buf; returns its length (33)."""
    buf[0] = _VER | wire.T_STATUS
    status_body(buf, 1, state, battery_pct, battery_mv, log_fill_pct, mode, rate_hz, next_seq, dropped, log_lost, log_first_seq, t_hi, t_lo)
    return seal(buf, 1 + wire.STATUS_SIZE)


def encode_event(buf, code, seq, t_hi, t_lo, value):
    """Event frame into buf; returns its length (18)."""
    struct.pack_into("<BBI", buf, 0, _VER | wire.T_EVENT, code, seq)
    put_u48(buf, 6, t_hi, t_lo)
    struct.pack_into("<i", buf, 12, value)
    return seal(buf, wire.EVENT_SIZE)


def encode_reply(buf, token, cmd, err, payload_len=0):
    """Reply frame into buf. The payload must already be at buf[4:4 + payload_len] (pack it
    there with struct.pack_into); error replies pass payload_len=0. Returns the frame length."""
    struct.pack_into("<BBBB", buf, 0, _VER | wire.T_REPLY, token, cmd, err)
    return seal(buf, wire.REPLY_HDR_SIZE + (0 if err else payload_len))


def encode_command(buf, token, cmd, args_len=0):
    """Command frame into buf (args already at buf[3:3 + args_len]); returns its length."""
    struct.pack_into("<BBB", buf, 0, _VER | wire.T_COMMAND, token, cmd)
    return seal(buf, wire.CMD_HDR_SIZE + args_len)


class Segmenter:
    """Split a frame longer than MTU-3 into notifications (PROTOCOL.md 1.2); tiny MTUs only."""

    def __init__(self):
        self.buf = bytearray(wire.MTU_MAX - wire.ATT_HEADER)
        mv = memoryview(self.buf)
        self._views = [mv[:i] for i in range(len(self.buf) + 1)]
        self.frame = None
        self.pos = 0
        self.total = 0
        self.count = 0
        self.chunk = 0

    def start(self, frame, n, mtu):
        self.frame = frame
        self.total = n
        self.pos = 0
        self.count = 0
        self.chunk = mtu - wire.ATT_HEADER - 1

    def next(self):
        """The next segment as a memoryview, or None when the frame is done."""
        if self.frame is None or self.pos >= self.total:
            self.frame = None
            return None
        k = min(self.chunk, self.total - self.pos)
        seg = self.count & wire.SEG_COUNTER_MASK
        if self.pos == 0:
            seg |= wire.SEG_FIRST
        if self.pos + k >= self.total:
            seg |= wire.SEG_LAST
        b = self.buf
        b[0] = seg
        f = self.frame
        p = self.pos
        for i in range(k):
            b[1 + i] = f[p + i]
        self.pos = p + k
        self.count += 1
        return self._views[k + 1]
