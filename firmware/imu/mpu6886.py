"""MPU6886 driver (M5StickC Plus2): accelerometer + gyroscope through the 1 kB FIFO.

Written from the TDK InvenSense MPU-6886 datasheet (DS-000193) register map; section names
are quoted in the comments. Same interface as imu.lsm6dsv16x (see imu/__init__.py).

FIFO records (section "FIFO_EN"/"FIFO_R_W"): with accel and gyro enabled the chip writes
14 bytes per sample, big endian: ACCEL_X/Y/Z, TEMP, GYRO_X/Y/Z. 1024 bytes hold 73 samples,
0.36 s at 200 Hz, so the app must read at least every ~300 ms.

Timing: the sample rate is 1 kHz / (1 + SMPLRT_DIV) (DLPF on), so sample k of the session is
at k * period_ns. The chip has no timestamp; after an overflow the number of lost samples is
estimated from the MCU clock (the only clock there is), the samples themselves keep ODR times.
"""

from micropython import const
import micropython
import time

from imu import FifoImu

WHO_AM_I_VALUE = const(0x19)

_SMPLRT_DIV = const(0x19)
_CONFIG = const(0x1A)  # FIFO_MODE bit6 | EXT_SYNC_SET[5:3] | DLPF_CFG[2:0]
_GYRO_CONFIG = const(0x1B)  # FS_SEL[4:3] | FCHOICE_B[1:0]
_ACCEL_CONFIG = const(0x1C)  # ACCEL_FS_SEL[4:3]
_ACCEL_CONFIG2 = const(0x1D)  # DEC2_CFG[5:4] | ACCEL_FCHOICE_B bit3 | A_DLPF_CFG[2:0]
_FIFO_EN = const(0x23)  # GYRO_FIFO_EN bit4 | ACC_FIFO_EN bit3
_INT_ENABLE = const(0x38)  # FIFO_OFLOW_EN bit4
_INT_STATUS = const(0x3A)  # FIFO_OFLOW_INT bit4, cleared by reading
_USER_CTRL = const(0x6A)  # FIFO_EN bit6 | FIFO_RST bit2
_PWR_MGMT_1 = const(0x6B)  # DEVICE_RESET bit7 | SLEEP bit6 | CLKSEL[2:0]
_PWR_MGMT_2 = const(0x6C)
_FIFO_COUNTH = const(0x72)  # FIFO_COUNT[12:8], then FIFO_COUNTL
_FIFO_R_W = const(0x74)
_WHO_AM_I = const(0x75)

PWR1_RESET = const(0x80)
PWR1_CLK_PLL = const(0x01)  # CLKSEL = 1: best available clock (gyro PLL), awake
CONFIG_VALUE = const(0x42)  # FIFO_MODE = 1 (full FIFO keeps old data: records stay aligned), DLPF_CFG = 2 (92 Hz)
GYRO_FS_2000DPS = const(0x18)  # FS_SEL = 3, FCHOICE_B = 00 (DLPF used)
ACCEL_FS_16G = const(0x18)  # ACCEL_FS_SEL = 3
ACCEL_CONFIG2_VALUE = const(0x02)  # A_DLPF_CFG = 2: 99 Hz bandwidth, below Nyquist at 200 Hz
FIFO_EN_ACC_GYRO = const(0x18)
INT_FIFO_OFLOW = const(0x10)
USER_FIFO_RST = const(0x04)
USER_FIFO_EN = const(0x40)

FIFO_BYTES = const(1024)
RECORD_BYTES = const(14)
ACC_G_PER_LSB = 1 / 2048
GYRO_DPS_PER_LSB = 1 / 16.4


@micropython.viper
def _parse(src: ptr8, n: int, dst: ptr16, rm: ptr8):
    """14-byte big-endian records -> ax..gz in device axes (rm as in imu.remap_code)."""
    for i in range(n):
        p = i * 14
        o = i * 6
        for d in range(3):
            k = int(rm[2 * d]) * 2
            a = (src[p + k] << 8) | src[p + k + 1]
            g = (src[p + 8 + k] << 8) | src[p + 9 + k]
            if rm[2 * d + 1]:
                a = (65536 - a) & 0xFFFF
                g = (65536 - g) & 0xFFFF
            dst[o + d] = a
            dst[o + 3 + d] = g


class MPU6886(FifoImu):
    NAME = "MPU6886"
    ACC_G_PER_LSB = ACC_G_PER_LSB
    GYRO_DPS_PER_LSB = GYRO_DPS_PER_LSB

    def __init__(self, i2c, addr=0x68, remap=(1, 2, 3), max_samples=32, clock_us=None):
        super().__init__(i2c, addr, remap, min(max_samples, FIFO_BYTES // RECORD_BYTES))
        self._clock = clock_us or time.ticks_us
        self._raw = bytearray(self.max_samples * RECORD_BYTES)
        mv = memoryview(self._raw)
        self._views = [mv[: k * RECORD_BYTES] for k in range(self.max_samples + 1)]
        self._cnt = bytearray(2)
        self._t_last = 0
        self._left = 0

    def init(self, rate_hz=200):
        """Reset and configure; return the ODR in Hz (1 kHz / (1 + SMPLRT_DIV))."""
        div = 1000 // rate_hz - 1
        if div < 0 or div > 255 or 1000 % rate_hz:
            raise ValueError("MPU6886 rate must divide 1000 Hz, e.g. 100, 125, 200, 250")
        who = self._r(_WHO_AM_I)
        if who != WHO_AM_I_VALUE:
            raise OSError("MPU6886 not found (WHO_AM_I=0x%02x)" % who)
        self._w(_PWR_MGMT_1, PWR1_RESET)  # section "PWR_MGMT_1": registers to defaults
        time.sleep_ms(10)
        self._w(_PWR_MGMT_1, PWR1_CLK_PLL)
        self._w(_PWR_MGMT_2, 0x00)  # all six axes on
        time.sleep_ms(1)
        self._w(_CONFIG, CONFIG_VALUE)
        self._w(_SMPLRT_DIV, div)
        self._w(_GYRO_CONFIG, GYRO_FS_2000DPS)
        self._w(_ACCEL_CONFIG, ACCEL_FS_16G)
        self._w(_ACCEL_CONFIG2, ACCEL_CONFIG2_VALUE)
        self._w(_INT_ENABLE, INT_FIFO_OFLOW)
        self._w(_USER_CTRL, USER_FIFO_RST)
        self._w(_FIFO_EN, FIFO_EN_ACC_GYRO)
        self._w(_USER_CTRL, USER_FIFO_EN)
        self.rate_hz = 1000 // (1 + div)
        self.period_ns = 1_000_000 * (1 + div)
        self.seq = self._next = self.lost = self.overflows = 0
        self._t_last = self._clock()
        self._left = 0
        return self.rate_hz

    def read_fifo(self, buf):
        """Move up to max_samples samples into buf; 0 and a FIFO reset after an overflow."""
        i2c = self.i2c
        self.overflowed = False
        t = self._clock()
        if self._r(_INT_STATUS) & INT_FIFO_OFLOW:
            self._overflow(t)
            return 0
        c = self._cnt
        i2c.readfrom_mem_into(self.addr, _FIFO_COUNTH, c)
        have = (((c[0] & 0x1F) << 8) | c[1]) // RECORD_BYTES
        n = have if have < self.max_samples else self.max_samples
        self._left = have - n
        self._t_last = t
        self.seq = self._next
        if n:
            i2c.readfrom_mem_into(self.addr, _FIFO_R_W, self._views[n])  # FIFO_R_W bursts stay on 0x74
            _parse(self._raw, n, buf, self._rm)
            self._next += n
        return n

    def _overflow(self, t):
        dt_us = time.ticks_diff(t, self._t_last)
        p_us = self.period_ns // 1000
        lost = self._left + (dt_us + p_us // 2) // p_us
        self._w(_USER_CTRL, USER_FIFO_RST)  # section "USER_CTRL": FIFO_RST empties the FIFO
        self._w(_USER_CTRL, USER_FIFO_EN)
        self._t_last = t
        self._left = 0
        self._lost(lost)
