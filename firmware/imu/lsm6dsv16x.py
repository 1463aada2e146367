"""LSM6DSV16X driver: accelerometer + gyroscope through the on-chip FIFO (I2C, burst reads).

Written from the ST LSM6DSV16X datasheet (DS13510) register map; section names are quoted in
the comments. Samples leave ``read_fifo`` as raw int16 counts in the *device* frame
(docs/conventions.md), 6 per sample: ax, ay, az, gx, gy, gz. Scales: +-16 g (0.488 mg/LSB,
~2049 LSB/g) and +-2000 dps (70 mdps/LSB).

Timing comes from the chip, never from the MCU loop: sample k of the session is at
``k * period_ns`` where the period is the ODR corrected by INTERNAL_FREQ (0x4F, FREQ_FINE:
0.13 % per LSB). ``seq`` is the index of the first sample of the last read and counts lost
samples too, so a FIFO overflow leaves a gap of the right length in the timeline.
"""

from micropython import const
import micropython
import time
from array import array

from imu import FifoImu

WHO_AM_I_VALUE = const(0x70)

# Register addresses (datasheet section "Register mapping").
_FIFO_CTRL1 = const(0x07)  # WTM[7:0]: watermark in FIFO words
_FIFO_CTRL3 = const(0x09)  # BDR_GY[7:4] | BDR_XL[3:0]: batch data rates
_FIFO_CTRL4 = const(0x0A)  # DEC_TS_BATCH[7:6] | ODR_T_BATCH[5:4] | FIFO_MODE[2:0]
_INT1_CTRL = const(0x0D)  # bit3 INT1_FIFO_TH
_WHO_AM_I = const(0x0F)
_CTRL1 = const(0x10)  # OP_MODE_XL[6:4] | ODR_XL[3:0]
_CTRL2 = const(0x11)  # OP_MODE_G[6:4] | ODR_G[3:0]
_CTRL3 = const(0x12)  # BOOT bit7 | BDU bit6 | IF_INC bit2 | SW_RESET bit0
_CTRL6 = const(0x15)  # LPF1_G_BW[6:4] | FS_G[3:0]
_CTRL8 = const(0x17)  # HP_LPF2_XL_BW[7:5] | XL_DUALC_EN bit3 | FS_XL[1:0]
_FIFO_STATUS1 = const(0x1B)  # DIFF_FIFO[7:0]: unread words
_TIMESTAMP0 = const(0x40)  # TIMESTAMP[31:0], 21.75 us/LSB typical
_INTERNAL_FREQ = const(0x4F)  # FREQ_FINE[7:0], two's complement, 0.13 %/LSB
_FUNCTIONS_ENABLE = const(0x50)  # bit6 TIMESTAMP_EN
_HAODR_CFG = const(0x62)  # HAODR_SEL[1:0]: high-accuracy ODR table
_FIFO_DATA_OUT_TAG = const(0x78)  # TAG_SENSOR[7:3] | TAG_CNT[2:1]; then 6 data bytes

# Register values written by init(), named so the tests compare them with the datasheet.
CTRL3_SW_RESET = const(0x01)
CTRL3_BDU_IF_INC = const(0x44)  # block data update + register address auto-increment
CTRL6_FS_2000DPS = const(0x04)  # FS_G = 0100: +-2000 dps
CTRL8_FS_16G = const(0x03)  # FS_XL = 11: +-16 g
FIFO_MODE_BYPASS = const(0x00)  # FIFO_MODE = 000: bypass, empties the FIFO
FIFO_MODE_CONTINUOUS = const(0x06)  # FIFO_MODE = 110: continuous, newest data overwrites oldest
INT1_FIFO_TH = const(0x08)
TIMESTAMP_EN = const(0x40)
WATERMARK_WORDS = const(64)  # 32 samples (G + XL word each): INT1 fires every 160 ms at 200 Hz

# FIFO_DATA_OUT_TAG sensor codes (section "FIFO tag").
TAG_GY_NC = const(0x01)
TAG_XL_NC = const(0x02)

FIFO_WORDS = const(512)  # 4.5 kB FIFO holds 512 words (DIFF_FIFO has 9 bits)
WORD_BYTES = const(7)

# ODR choices near 100-250 Hz (section "CTRL1"/"HAODR_CFG"): rate -> (HAODR_SEL, ODR code,
# OP_MODE). OP_MODE 001 = high-accuracy ODR mode, needed for the 100/125/200/250 Hz tables.
RATES = {
    100: (2, 0x6, 1),
    120: (0, 0x6, 0),
    125: (1, 0x6, 1),
    200: (2, 0x7, 1),
    240: (0, 0x7, 0),
    250: (1, 0x7, 1),
}

TS_LSB_NS = const(21750)  # TIMESTAMP resolution, typical (section "Timestamp")
ACC_G_PER_LSB = 0.000488
GYRO_DPS_PER_LSB = 0.070


@micropython.viper
def _parse(src: ptr8, nwords: int, dst: ptr16, pend: ptr16, rm: ptr8) -> int:
    """Pair tagged G/XL words by TAG_CNT into samples ax..gz (device axes); return count.

    pend holds a half sample across calls: [have_g, cnt_g, gx, gy, gz, have_a, cnt_a, ax, ay, az].
    rm is the axis remap: for device axis d, chip axis rm[2d] with sign (rm[2d+1] == 1 -> minus).
    Unknown tags (temperature, timestamp, config change) are skipped.
    """
    n = 0
    i = 0
    while i < nwords:
        p = i * 7
        tag = src[p] >> 3
        cnt = (src[p] >> 1) & 3
        slot = -1
        if tag == 1:  # TAG_GY_NC
            slot = 0
        elif tag == 2:  # TAG_XL_NC
            slot = 5
        if slot >= 0:
            pend[slot] = 1
            pend[slot + 1] = cnt
            pend[slot + 2] = src[p + 1] | (src[p + 2] << 8)  # little endian (section "FIFO_DATA_OUT")
            pend[slot + 3] = src[p + 3] | (src[p + 4] << 8)
            pend[slot + 4] = src[p + 5] | (src[p + 6] << 8)
            if pend[0] and pend[5]:
                if pend[1] == pend[6]:
                    o = n * 6
                    for d in range(3):
                        k = int(rm[2 * d])
                        a = pend[7 + k]
                        g = pend[2 + k]
                        if rm[2 * d + 1]:
                            a = (65536 - a) & 0xFFFF
                            g = (65536 - g) & 0xFFFF
                        dst[o + d] = a
                        dst[o + 3 + d] = g
                    n += 1
                    pend[0] = 0
                    pend[5] = 0
                else:  # halves from different ODR slots: keep the newer one
                    pend[5 - slot] = 0
        i += 1
    return n


class LSM6DSV16X(FifoImu):
    NAME = "LSM6DSV16X"
    ACC_G_PER_LSB = ACC_G_PER_LSB
    GYRO_DPS_PER_LSB = GYRO_DPS_PER_LSB

    def __init__(self, i2c, addr=0x6A, remap=(1, 2, 3), max_samples=32, clock_us=None):
        super().__init__(i2c, addr, remap, max_samples)
        self._raw = bytearray(2 * max_samples * WORD_BYTES)
        mv = memoryview(self._raw)
        # One view per word count, made once: slicing in read_fifo would allocate.
        self._views = [mv[: k * WORD_BYTES] for k in range(2 * max_samples + 1)]
        self._st = bytearray(2)
        self._ts = bytearray(3)
        self._pend = array("H", bytes(20))  # half-sample carried between reads, see _parse
        self._ts_last = 0
        self._left_words = 0
        self._period_nom_ns = 0

    def init(self, rate_hz=200):
        """Reset and configure; return the actual ODR in Hz (float, from FREQ_FINE)."""
        if rate_hz not in RATES:
            raise ValueError("LSM6DSV16X rate must be one of %s" % sorted(RATES))
        who = self._r(_WHO_AM_I)
        if who != WHO_AM_I_VALUE:
            raise OSError("LSM6DSV16X not found (WHO_AM_I=0x%02x)" % who)
        haodr, odr, op = RATES[rate_hz]
        self._w(_CTRL3, CTRL3_SW_RESET)  # section "CTRL3": SW_RESET self-clears in ~50 us
        for _ in range(10):
            time.sleep_ms(1)
            if not self._r(_CTRL3) & CTRL3_SW_RESET:
                break
        self._w(_CTRL3, CTRL3_BDU_IF_INC)
        self._w(_HAODR_CFG, haodr)  # only while both sensors are powered down (after reset)
        self._w(_CTRL6, CTRL6_FS_2000DPS)
        self._w(_CTRL8, CTRL8_FS_16G)
        self._w(_FIFO_CTRL1, WATERMARK_WORDS)
        self._w(_FIFO_CTRL3, (odr << 4) | odr)  # batch G and XL at the ODR
        self._w(_FIFO_CTRL4, FIFO_MODE_CONTINUOUS)
        self._w(_INT1_CTRL, INT1_FIFO_TH)
        self._w(_FUNCTIONS_ENABLE, TIMESTAMP_EN)
        self._w(_CTRL1, (op << 4) | odr)
        self._w(_CTRL2, (op << 4) | odr)
        fine = self._r(_INTERNAL_FREQ)
        if fine > 127:
            fine -= 256
        actual = rate_hz * (1.0 + 0.0013 * fine)
        self.rate_hz = rate_hz
        self.period_ns = int(1e9 / actual + 0.5)
        self.seq = self._next = self.lost = self.overflows = 0
        self._pend[0] = self._pend[5] = 0
        self._period_nom_ns = 1_000_000_000 // rate_hz
        self._ts_last = self._read_ts()
        return actual

    def _read_ts(self):
        # Low 24 bits of TIMESTAMP (365 s wrap): enough to time the gap between two reads
        # and a small int on every port, so reading it allocates nothing.
        b = self._ts
        self.i2c.readfrom_mem_into(self.addr, _TIMESTAMP0, b)
        return b[0] | (b[1] << 8) | (b[2] << 16)

    def read_fifo(self, buf):
        """Move up to max_samples samples from the FIFO into buf (int16, 6 per sample).

        Returns the number of samples written. On overflow the FIFO is emptied and restarted,
        the lost samples are counted from the chip timestamp, and 0 is returned.
        """
        i2c = self.i2c
        st = self._st
        i2c.readfrom_mem_into(self.addr, _FIFO_STATUS1, st)  # FIFO_STATUS1, FIFO_STATUS2
        ts = self._read_ts()
        self.overflowed = False
        if st[1] & 0x48:  # FIFO_OVR_IA (bit6) or FIFO_OVR_LATCHED (bit3)
            self._overflow(ts)
            return 0
        words = st[0] | ((st[1] & 1) << 8)
        if words > 2 * self.max_samples:
            words = 2 * self.max_samples
        self._left_words = (st[0] | ((st[1] & 1) << 8)) - words
        self._ts_last = ts
        if words == 0:
            self.seq = self._next
            return 0
        i2c.readfrom_mem_into(self.addr, _FIFO_DATA_OUT_TAG, self._views[words])
        n = _parse(self._raw, words, buf, self._pend, self._rm)
        self.seq = self._next
        self._next += n
        return n

    def _overflow(self, ts):
        # Everything since the last read is gone: what was left in the FIFO then, plus what
        # the chip produced since (timestamp difference / period).
        # Timestamp and ODR share the chip oscillator, so nominal/nominal is the exact ratio.
        dt_ns = ((ts - self._ts_last) & 0xFFFFFF) * TS_LSB_NS
        p = self._period_nom_ns
        lost = self._left_words // 2 + (dt_ns + p // 2) // p
        self._w(_FIFO_CTRL4, FIFO_MODE_BYPASS)  # section "FIFO modes": bypass empties the FIFO
        self._w(_FIFO_CTRL4, FIFO_MODE_CONTINUOUS)
        self._pend[0] = self._pend[5] = 0
        self._ts_last = ts
        self._left_words = 0
        self._lost(lost)
