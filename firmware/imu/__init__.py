"""IMU drivers behind one small interface.

Every driver has:
  init(rate_hz) -> actual ODR (Hz)       reset, configure +-16 g / +-2000 dps, start the FIFO
  read_fifo(buf) -> n                    move n samples into buf (array('h'), 6 per sample:
                                          ax, ay, az, gx, gy, gz raw counts, device axes)
  seq, period_ns, sample_period_us       sample k of the last read is at (seq + k) * period_ns
  lost, overflows, overflowed            FIFO overflow accounting (lost samples are in seq)
  ACC_G_PER_LSB, GYRO_DPS_PER_LSB        scales
  max_samples                            buf must hold 6 * max_samples int16

Axis remap: chip axes -> device axes (docs/conventions.md: +X up, +Y left, +Z out of the back),
a tuple of three signed 1-based chip axes, e.g. (2, -1, 3) = device X is chip +Y, device Y is
chip -X, device Z is chip +Z. It must be a proper rotation (det +1).
"""

from array import array

# How each board carries its chip (checked on the bench with the stand-still test: worn as
# designed, the device must read ax = +1 g).
# ref: the LSM6DSV16X breakout sits flat in the clip, parts side out, pin header down, so the
#      chip axes are the device axes (chip +Z out of the back, +X up).
# m5:  M5StickC Plus2 worn upright, screen out, USB down: the MPU6886 +Y points up and +X to
#      the runner's right; +Z comes out of the screen.
REMAPS = {"LSM6DSV16X": (1, 2, 3), "MPU6886": (2, -1, 3)}


def remap_code(remap):
    """(2, -1, 3) -> bytes for the parsers: per device axis, chip axis index and a minus flag."""
    if sorted(abs(a) for a in remap) != [1, 2, 3]:
        raise ValueError("remap must use each chip axis once: %r" % (remap,))
    m = [[0] * 3 for _ in range(3)]
    for d, a in enumerate(remap):
        m[d][abs(a) - 1] = 1 if a > 0 else -1
    det = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
           - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
           + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    if det != 1:
        raise ValueError("remap must be a rotation, not a mirror: %r" % (remap,))
    out = bytearray(6)
    for d, a in enumerate(remap):
        out[2 * d] = abs(a) - 1
        out[2 * d + 1] = 1 if a < 0 else 0
    return out


class FifoImu:
    """What the drivers share: register access through one preallocated byte, and the
    sequence/overflow bookkeeping (seq counts lost samples too, so a gap keeps its length)."""

    def __init__(self, i2c, addr, remap, max_samples):
        self.i2c = i2c
        self.addr = addr
        self.max_samples = max_samples
        self._rm = remap_code(remap)
        self._b1 = bytearray(1)
        self.rate_hz = 0
        self.period_ns = 0
        self.seq = 0  # index of the first sample returned by the last read_fifo
        self._next = 0  # index of the next sample to come out of the FIFO
        self.lost = 0  # samples lost to FIFO overflows, total
        self.overflows = 0  # overflow events
        self.overflowed = False  # the last read_fifo found an overflow

    @property
    def sample_period_us(self):
        """Sample interval in microseconds (float; period_ns is the exact integer)."""
        return self.period_ns / 1000

    def _w(self, reg, val):
        self._b1[0] = val
        self.i2c.writeto_mem(self.addr, reg, self._b1)

    def _r(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._b1)
        return self._b1[0]

    def _lost(self, lost):
        # after an overflow: count the samples that are gone and skip them in the timeline
        self.lost += lost
        self.overflows += 1
        self.overflowed = True
        self._next += lost
        self.seq = self._next


def sample_buffer(driver):
    """A buffer read_fifo can fill: array('h') of 6 * max_samples."""
    return array("h", bytes(12 * driver.max_samples))


def open_imu(i2c, board, **kw):
    """The driver for board['imu'] at board['imu_addr'] (not yet initialised)."""
    chip = board["imu"]
    kw.setdefault("remap", REMAPS[chip])
    if chip == "LSM6DSV16X":
        from imu.lsm6dsv16x import LSM6DSV16X

        return LSM6DSV16X(i2c, board["imu_addr"], **kw)
    if chip == "MPU6886":
        from imu.mpu6886 import MPU6886

        return MPU6886(i2c, board["imu_addr"], **kw)
    raise ValueError("no driver for IMU %r" % chip)
