"""Fake I2C bus with register-level models of the LSM6DSV16X and the MPU6886 (MicroPython).

``machine.I2C``/``machine.SoftI2C`` (tests/firmware/fakes/machine.py) are the classes here, so
firmware code talks to these models exactly as it would to the chips:

- every register write is recorded (``model.writes``: list of (reg, value)) so tests can assert
  the init sequence against the datasheet;
- WHO_AM_I, FIFO status/count, the timestamp and the FIFO data registers are served like the
  chips do (LSM6DSV16X: 7-byte tagged words, little endian, TAG_CNT per ODR slot, continuous
  mode overwrites the oldest word and sets FIFO_OVR_IA/LATCHED; MPU6886: 14-byte big-endian
  records, FIFO_MODE=1 stops writing when full, byte by byte, and sets INT_STATUS.FIFO_OFLOW);
- the FIFO fills at the configured ODR from a ``Source`` (a raw CSV in docs/formats.md format,
  e.g. from ``tiltguard simulate``, or a synthetic signal), converted to the chip's axes and
  counts, as time passes on ``CLOCK``: real time by default (optionally sped up), or manual
  (``CLOCK.manual()``, then ``CLOCK.advance_us(n)``) for tests.

Nothing on the read path allocates, so firmware heap measurements through this bus are honest.

Environment (read when the module is imported, for whole-app runs): TILTGUARD_FAKE_RAW = path
of a raw CSV to play (loops), TILTGUARD_FAKE_SPEED = clock speed factor.
"""

import os
import time
import micropython
from array import array

# ---------------------------------------------------------------- clock


class Clock:
    """Monotonic microseconds: real time x speed, or manual."""

    def __init__(self):
        self._manual = False
        self.speed = 1
        self._t = 0
        self._last = time.ticks_us()

    def manual(self, t0_us=0):
        self._manual = True
        self._t = t0_us

    def realtime(self, speed=1):
        self._manual = False
        self.speed = speed
        self._last = time.ticks_us()

    def advance_us(self, dt_us):
        self._t += dt_us

    def now_us(self):
        if not self._manual:
            now = time.ticks_us()
            self._t += int(time.ticks_diff(now, self._last) * self.speed)
            self._last = now
        return self._t


CLOCK = Clock()


def ticks_us():
    """The fake's clock as an MCU tick counter (for drivers that take clock_us=...)."""
    return CLOCK.now_us()


# ---------------------------------------------------------------- data source


class Source:
    """Device-frame samples (g, dps) at rate_hz: ax, ay, az, gx, gy, gz per sample."""

    def __init__(self, data, rate_hz, loop=False):
        self.data = data  # array('f'), 6 per sample
        self.n = len(data) // 6
        self.rate_hz = rate_hz
        self.loop = loop

    @classmethod
    def from_csv(cls, path, loop=False):
        """Read a raw CSV or .csv.gz (docs/formats.md): t_s, ax_g, ay_g, az_g[, gx/gy/gz_dps]."""
        data = array("f")
        t0 = t1 = None
        rows = 0
        for k, line in enumerate(_lines(path)):
            if k == 0:
                head = line.strip().split(",")
                want = ("ax_g", "ay_g", "az_g", "gx_dps", "gy_dps", "gz_dps")
                try:
                    it = head.index("t_s")
                    cols = [head.index(c) if c in head else -1 for c in want]
                except ValueError:
                    raise ValueError("not a raw CSV (no t_s column): %s" % path)
                continue
            f = line.split(",")
            if len(f) < len(head):
                continue
            t = float(f[it])
            if t0 is None:
                t0 = t
            t1 = t
            for c in cols:
                v = float(f[c]) if c >= 0 and f[c].strip() else 0.0
                data.append(v if v == v else 0.0)  # NaN (no gyro value) -> 0
            rows += 1
        if rows < 2:
            raise ValueError("raw CSV has fewer than 2 samples: %s" % path)
        rate = (rows - 1) / (t1 - t0)
        if abs(rate - round(rate)) < 1e-3 * rate:
            rate = int(round(rate))  # integer rates keep the model's sample picking exact
        return cls(data, rate, loop)

    @classmethod
    def synthetic(cls, seconds=60, rate_hz=200, loop=True):
        """Standing 3 s, then a running-like bounce: tilt 3 deg twice per stride (1.4 Hz strides),
        obliquity 4 deg once, 0.8 g vertical bounce; gyro and accelerometer agree (device frame)."""
        import math

        n = int(seconds * rate_hz)
        data = array("f", bytes(24 * n))
        w = 2 * math.pi * 1.4
        d2r = math.pi / 180
        for i in range(n):
            t = i / rate_hz - 3
            on = 1.0 if t > 0 else 0.0
            tilt = on * 3 * math.sin(2 * w * t) * d2r  # about +Y
            obl = on * 4 * math.sin(w * t) * d2r  # about -Z
            up = 1.0 + on * 0.8 * math.sin(2 * w * t)
            o = 6 * i
            # gravity reaction in the device frame after tilt about +Y then obliquity about -Z
            data[o] = up * math.cos(tilt) * math.cos(obl)
            data[o + 1] = -up * math.sin(obl)
            data[o + 2] = up * math.sin(tilt)
            data[o + 4] = on * 3 * 2 * w * math.cos(2 * w * t)  # d(tilt)/dt, dps about +Y
            data[o + 5] = -on * 4 * w * math.cos(w * t)  # d(obl)/dt about -Z
        return cls(data, rate_hz, loop)


def _lines(path):
    """Lines of a text file, gunzipped when the name ends in .gz (MicroPython's deflate)."""
    if path.endswith(".gz"):
        import deflate

        with open(path, "rb") as fh:
            text = deflate.DeflateIO(fh, deflate.GZIP).read().decode()
        for line in text.split("\n"):
            if line:
                yield line
        return
    with open(path) as fh:
        for line in fh:
            yield line


# ---------------------------------------------------------------- helpers (viper, no allocation)


@micropython.viper
def _ring_put(ring: ptr8, cap: int, head: int, level: int, src: ptr8, off: int, n: int, drop_new: int) -> int:
    """Append n bytes to a ring (head = oldest); return new level, or -(dropped+1) encoded.

    Returns level in the low 16 bits and the count of bytes lost (dropped or overwritten) above.
    """
    lost = 0
    for i in range(n):
        if level == cap:
            lost += 1
            if drop_new:
                continue
            head += 1  # overwrite the oldest byte
            if head == cap:
                head = 0
            level -= 1
        pos = head + level
        if pos >= cap:
            pos -= cap
        ring[pos] = src[off + i]
        level += 1
    return (lost << 16) | level


@micropython.viper
def _ring_get(ring: ptr8, cap: int, head: int, dst: ptr8, doff: int, n: int):
    for i in range(n):
        pos = head + i
        if pos >= cap:
            pos -= cap
        dst[doff + i] = ring[pos]


def _chip_counts(src, remap, acc_lsb_per_g, gyro_lsb_per_dps, big_endian, rec_len, layout):
    """Pre-serialise every source sample into chip records (axes and counts of the chip)."""
    n = src.n
    out = bytearray(n * rec_len)
    d = src.data
    chip = [0] * 6
    for i in range(n):
        o = 6 * i
        for dev, a in enumerate(remap):  # device axis dev = sign * chip axis |a|
            k = abs(a) - 1
            s = 1 if a > 0 else -1
            chip[k] = s * d[o + dev] * acc_lsb_per_g
            chip[3 + k] = s * d[o + 3 + dev] * gyro_lsb_per_dps
        for j in range(6):
            v = int(chip[j] + (0.5 if chip[j] >= 0 else -0.5))
            v = 32767 if v > 32767 else (-32768 if v < -32768 else v)
            p = i * rec_len + layout[j]
            if big_endian:
                out[p] = (v >> 8) & 0xFF
                out[p + 1] = v & 0xFF
            else:
                out[p] = v & 0xFF
                out[p + 1] = (v >> 8) & 0xFF
    return out


class _Model:
    """Common part: registers, write log, FIFO ring, sample generation on CLOCK."""

    FIFO_CAP = 0
    REC = 0  # bytes pushed per sample

    def __init__(self, addr, source, remap):
        self.addr = addr
        self.source = source
        self.remap = tuple(remap)
        self.regs = bytearray(256)
        self.writes = []
        self.ring = bytearray(self.FIFO_CAP)
        self.head = 0
        self.level = 0
        self.lost_bytes = 0  # bytes the FIFO dropped or overwrote (truth for overflow tests)
        self.produced = 0  # samples the sensor made since its ODR was set
        self.batching = False  # FIFO accepting samples (the sensor runs either way)
        self.rate_hz = 0
        self.period_ns = 0
        self._t0 = 0
        self.exhausted = False
        self._reset_regs()

    # sampling ------------------------------------------------------
    def _start(self, rate_hz, period_ns):
        if rate_hz == int(rate_hz):
            rate_hz = int(rate_hz)
        if rate_hz != self.rate_hz:
            self.rate_hz = rate_hz
            self.period_ns = period_ns
            self._t0 = CLOCK.now_us()
            self.produced = 0

    def _stop(self):
        self.rate_hz = 0
        self.batching = False

    def advance(self):
        """Push every sample due by now into the FIFO."""
        if not self.rate_hz or self.source is None:
            return
        due = (CLOCK.now_us() - self._t0) * 1000 // self.period_ns
        src = self.source
        while self.produced < due:
            k = self.produced
            if src.rate_hz != self.rate_hz:  # nearest source sample in time
                k = int(k * src.rate_hz / self.rate_hz + 0.5)
            if k >= src.n:
                if not src.loop:
                    self.exhausted = True
                    self.produced = due
                    return
                k %= src.n
            if self.batching:
                self._push(k)
            self.produced += 1

    def _put(self, buf, off, n, drop_new):
        r = _ring_put(self.ring, self.FIFO_CAP, self.head, self.level, buf, off, n, drop_new)
        lost = r >> 16
        newlevel = r & 0xFFFF
        if lost and not drop_new:
            # the oldest bytes were overwritten: the head moved on by what was lost
            self.head = (self.head + lost) % self.FIFO_CAP
        self.level = newlevel
        self.lost_bytes += lost
        return lost

    def _pop(self, buf, off, n):
        _ring_get(self.ring, self.FIFO_CAP, self.head, buf, off, n)
        self.head = (self.head + n) % self.FIFO_CAP
        self.level -= n

    def clear_fifo(self):
        self.head = 0
        self.level = 0

    # bus -----------------------------------------------------------
    def write(self, reg, data):
        for i in range(len(data)):
            self.writes.append((reg + i, data[i]))
            self.on_write(reg + i, data[i])

    def read_into(self, reg, buf):
        self.advance()
        self.on_read(reg, buf)

    def written(self, reg):
        """Values written to reg, in order."""
        return [v for r, v in self.writes if r == reg]


# ---------------------------------------------------------------- LSM6DSV16X


class LSM6DSV16XModel(_Model):
    """LSM6DSV16X: 512-word FIFO of 7-byte tagged words; G and XL batched at the same BDR."""

    FIFO_CAP = 512 * 7
    REC = 14
    WHO = 0x70

    def __init__(self, addr=0x6A, source=None, remap=(1, 2, 3), freq_fine=0):
        self.freq_fine = freq_fine
        super().__init__(addr, source, remap)
        self._recs = None
        if source is not None:
            # FIFO word layout: [tag][X_L X_H Y_L Y_H Z_L Z_H]; gyro word first, then accel.
            recs = _chip_counts(source, self.remap, 1 / 0.000488, 1 / 0.070, False, 14, (8, 10, 12, 1, 3, 5))
            for i in range(source.n):
                cnt = (i & 3) << 1  # TAG_CNT: the same for the G and XL word of one ODR slot
                recs[14 * i] = (0x01 << 3) | cnt  # TAG_GY_NC
                recs[14 * i + 7] = (0x02 << 3) | cnt  # TAG_XL_NC
            self._recs = recs
        self.ovr = False
        self.ovr_latched = False

    def _reset_regs(self):
        self.regs[:] = bytes(256)
        self.regs[0x0F] = self.WHO
        self.regs[0x12] = 0x04  # CTRL3 default: IF_INC = 1
        self.regs[0x4F] = self.freq_fine & 0xFF
        self.clear_fifo()
        self.ovr = self.ovr_latched = False
        self._stop()

    def _odr_hz(self, code, sel):
        if code == 0:
            return 0
        if sel == 0:
            return 1.875 if code == 1 else 7.5 * (1 << (code - 2))
        base = 15.625 if sel == 1 else 12.5
        return base * (1 << code) / 8

    def _reconfigure(self):
        r = self.regs
        sel = r[0x62] & 3
        odr_xl, odr_g = r[0x10] & 0x0F, r[0x11] & 0x0F
        bdr = r[0x09]
        mode = r[0x0A] & 7
        if mode == 0:  # bypass: FIFO off and empty
            self.clear_fifo()
            self.ovr = False
        # this model runs G and XL at one common ODR and batches both at it, in continuous mode
        if odr_xl and odr_xl == odr_g:
            hz = self._odr_hz(odr_xl, sel)
            real = hz * (1 + 0.0013 * self.freq_fine_signed())
            self._start(hz, int(1e9 / real + 0.5))
            self.batching = mode == 6 and bdr == (odr_g << 4) | odr_xl
        else:
            self._stop()

    def freq_fine_signed(self):
        v = self.regs[0x4F]
        return v - 256 if v > 127 else v

    def on_write(self, reg, val):
        self.advance()
        if reg == 0x12 and val & 0x01:  # SW_RESET
            self._reset_regs()
            return
        if reg == 0x62 and (self.regs[0x10] & 0x0F or self.regs[0x11] & 0x0F):
            raise OSError(5)  # HAODR_CFG may only change while both sensors are off
        self.regs[reg] = val
        if reg in (0x09, 0x0A, 0x10, 0x11, 0x62):
            self._reconfigure()

    def _push(self, k):
        if self._put(self._recs, k * 14, 14, 0):  # continuous mode: overwrite the oldest words
            self.ovr = True
            self.ovr_latched = True

    def timestamp(self):
        # 21.75 us per LSB, running at the same (trimmed) oscillator as the ODR
        t = CLOCK.now_us()
        f = self.freq_fine_signed()
        if f:
            t = t * (10000 + 13 * f) // 10000
        return (t * 1000 // 21750) & 0xFFFFFFFF

    def on_read(self, reg, buf):
        n = len(buf)
        if reg == 0x78:  # FIFO_DATA_OUT_TAG: pops whole words; the address wraps 0x7E -> 0x78
            words = n // 7
            have = self.level // 7
            k = words if words < have else have
            self._pop(buf, 0, 7 * k)
            for i in range(7 * k, n):
                buf[i] = 0  # reading an empty FIFO gives tag 0 (empty)
            return
        for i in range(n):
            r = reg + i
            if r == 0x1B:
                v = self.level // 7
                v = 511 if v > 511 else v
                buf[i] = v & 0xFF
            elif r == 0x1C:
                v = self.level // 7
                v = 511 if v > 511 else v
                s = (v >> 8) & 1
                if self.ovr:
                    s |= 0x40 | 0x20  # FIFO_OVR_IA, FIFO_FULL_IA
                if self.ovr_latched:
                    s |= 0x08
                    self.ovr_latched = False  # FIFO_OVR_LATCHED clears on reading STATUS2
                if v >= self.regs[0x07] and self.regs[0x07]:
                    s |= 0x80  # FIFO_WTM_IA
                buf[i] = s
            elif 0x40 <= r <= 0x43:
                buf[i] = (self.timestamp() >> (8 * (r - 0x40))) & 0xFF
            elif r == 0x12:
                buf[i] = self.regs[r] & ~0x01  # SW_RESET self-clears
            else:
                buf[i] = self.regs[r & 0xFF]


# ---------------------------------------------------------------- MPU6886


class MPU6886Model(_Model):
    """MPU6886: 1 kB byte FIFO of 14-byte big-endian records (accel, temp, gyro)."""

    FIFO_CAP = 1024
    REC = 14
    WHO = 0x19

    def __init__(self, addr=0x68, source=None, remap=(2, -1, 3)):
        super().__init__(addr, source, remap)
        self._recs = None
        if source is not None:
            self._recs = _chip_counts(source, self.remap, 2048, 16.4, True, 14, (0, 2, 4, 8, 10, 12))
        self.int_status = 0

    def _reset_regs(self):
        self.regs[:] = bytes(256)
        self.regs[0x75] = self.WHO
        self.regs[0x6B] = 0x41  # PWR_MGMT_1 default: SLEEP, CLKSEL=1
        self.regs[0x1A] = 0x80
        self.int_status = 0
        self.clear_fifo()
        self._stop()

    def _reconfigure(self):
        r = self.regs
        awake = not r[0x6B] & 0x40
        fifo_on = r[0x6A] & 0x40 and (r[0x23] & 0x18) == 0x18
        dlpf = 1 <= (r[0x1A] & 7) <= 6 and not r[0x1B] & 3
        if awake and dlpf:
            div = r[0x19]
            self._start(1000 / (1 + div), 1_000_000 * (1 + div))
            self.batching = bool(fifo_on)
        else:
            self._stop()

    def on_write(self, reg, val):
        self.advance()
        if reg == 0x6B and val & 0x80:  # DEVICE_RESET
            self._reset_regs()
            return
        if reg == 0x6A and val & 0x04:  # FIFO_RST (self-clearing)
            self.clear_fifo()
            val &= ~0x04
        self.regs[reg] = val
        self._reconfigure()

    def _push(self, k):
        drop_new = 1 if self.regs[0x1A] & 0x40 else 0  # CONFIG.FIFO_MODE
        if self._put(self._recs, k * 14, 14, drop_new):
            self.int_status |= 0x10  # FIFO_OFLOW_INT

    def on_read(self, reg, buf):
        n = len(buf)
        if reg == 0x74:  # FIFO_R_W: burst reads stay on this register
            k = n if n < self.level else self.level
            self._pop(buf, 0, k)
            for i in range(k, n):
                buf[i] = 0xFF
            return
        for i in range(n):
            r = reg + i
            if r == 0x72:
                buf[i] = (self.level >> 8) & 0x1F
            elif r == 0x73:
                buf[i] = self.level & 0xFF
            elif r == 0x3A:
                buf[i] = self.int_status
                self.int_status = 0  # cleared by reading
            elif r == 0x6B:
                buf[i] = self.regs[r] & 0x7F
            else:
                buf[i] = self.regs[r & 0xFF]


# ---------------------------------------------------------------- the bus

DEVICES = {}  # addr -> model, shared by every I2C instance (one physical bus)


def attach(model):
    DEVICES[model.addr] = model
    return model


def reset_bus():
    DEVICES.clear()


class I2C:
    """machine.I2C look-alike over DEVICES."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400_000, timeout=50000):
        self.id = id
        self.freq = freq

    def init(self, *a, **kw):
        pass

    def deinit(self):
        pass

    def scan(self):
        return sorted(DEVICES)

    def _dev(self, addr):
        d = DEVICES.get(addr)
        if d is None:
            raise OSError(19)  # ENODEV: no ACK
        return d

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).read_into(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        b = bytearray(nbytes)
        self._dev(addr).read_into(memaddr, b)
        return bytes(b)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).write(memaddr, buf)

    def writeto(self, addr, buf, stop=True):
        d = self._dev(addr)
        if len(buf) > 1:
            d.write(buf[0], buf[1:])
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._dev(addr).read_into(0, buf)


SoftI2C = I2C


def _default_bus():
    """Both chips on the bus, playing TILTGUARD_FAKE_RAW (or a synthetic run), looping."""
    path = os.getenv("TILTGUARD_FAKE_RAW") if hasattr(os, "getenv") else None
    speed = os.getenv("TILTGUARD_FAKE_SPEED") if hasattr(os, "getenv") else None
    if speed:
        CLOCK.realtime(float(speed))
    src = Source.from_csv(path, loop=True) if path else Source.synthetic(20, 200, loop=True)
    attach(LSM6DSV16XModel(0x6A, src))
    attach(MPU6886Model(0x68, src))


_default_bus()
