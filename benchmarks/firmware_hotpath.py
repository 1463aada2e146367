"""Firmware hot path under the MicroPython unix port: heap bytes and microseconds per sample.

    python benchmarks/firmware_hotpath.py        (re-runs itself under `micropython`, fakes first
                                                  on the path, as tests/mpy.py does)

Per sample, with gc.disable(): read (LSM6DSV16X driver over the fake I2C bus and FIFO), fuse
(fusion.Fusion, fixed point), encode (frames.DataEncoder, MTU-sized BLE frames and 9-sample log
frames) and log (log.Log, 4 kB blocks into a temp directory) -- next to a naive float Madgwick
filter in plain MicroPython fed the same samples, measured in the same run. Prints the ratios and
the ESP32-S3 budget at 208 Hz (the arithmetic and what its scale factor rests on are printed too).
"""

import sys

if sys.implementation.name != "micropython":  # launcher (CPython)
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.mpy import run_mpy

    r = run_mpy(__file__, heap="32M", check=False)
    print(r.stdout, end="")
    print(r.stderr, end="", file=sys.stderr)
    raise SystemExit(r.returncode)

import gc
import math
import os
import time
import micropython
from array import array

import fake_imu
from fake_imu import CLOCK, Source, LSM6DSV16XModel, attach, reset_bus, I2C
import board
from imu import open_imu, sample_buffer
from fusion import Fusion

try:
    import frames
    import wire
except ImportError:
    frames = None
try:
    import log as fwlog
except ImportError:
    fwlog = None

RATE = 200
BATCH = 32
BATCHES = 150  # 4800 samples = 24 s of data
REPEATS = 5


@micropython.viper
def pack(ang: ptr16, raw: ptr16, i: int, out: ptr16, amul: int):
    """Sample i -> wire compact sample: tilt, obl, rot (0.01 deg), ax, ay, az (1/2048 g)."""
    for j in range(3):
        out[j] = ang[i * 3 + j]
        a = (raw[i * 6 + j] ^ 0x8000) - 0x8000
        out[3 + j] = (a * amul + 8192) >> 14


def madgwick_naive(q, ax, ay, az, gx, gy, gz, dt, beta=0.1):
    """Plain-float Madgwick IMU update (the textbook form), returns the new quaternion list."""
    q0, q1, q2, q3 = q
    qd0 = 0.5 * (-q1 * gx - q2 * gy - q3 * gz)
    qd1 = 0.5 * (q0 * gx + q2 * gz - q3 * gy)
    qd2 = 0.5 * (q0 * gy - q1 * gz + q3 * gx)
    qd3 = 0.5 * (q0 * gz + q1 * gy - q2 * gx)
    n = math.sqrt(ax * ax + ay * ay + az * az)
    if n > 0:
        ax /= n
        ay /= n
        az /= n
        f1 = 2 * (q1 * q3 - q0 * q2) - ax
        f2 = 2 * (q0 * q1 + q2 * q3) - ay
        f3 = 2 * (0.5 - q1 * q1 - q2 * q2) - az
        s0 = -2 * q2 * f1 + 2 * q1 * f2
        s1 = 2 * q3 * f1 + 2 * q0 * f2 - 4 * q1 * f3
        s2 = -2 * q0 * f1 + 2 * q3 * f2 - 4 * q2 * f3
        s3 = 2 * q1 * f1 + 2 * q2 * f2
        sn = math.sqrt(s0 * s0 + s1 * s1 + s2 * s2 + s3 * s3)
        if sn > 0:
            qd0 -= beta * s0 / sn
            qd1 -= beta * s1 / sn
            qd2 -= beta * s2 / sn
            qd3 -= beta * s3 / sn
    q0 += qd0 * dt
    q1 += qd1 * dt
    q2 += qd2 * dt
    q3 += qd3 * dt
    n = math.sqrt(q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3)
    return [q0 / n, q1 / n, q2 / n, q3 / n]


def naive_angles(q):
    w, x, y, z = q
    tilt = math.degrees(math.atan2(2 * (x * z + w * y), 1 - 2 * (y * y + z * z)))
    obl = math.degrees(math.asin(max(-1.0, min(1.0, 2 * (x * y - w * z)))))
    rot = math.degrees(math.atan2(-2 * (y * z + w * x), 1 - 2 * (x * x + z * z)))
    return tilt, obl, rot


def setup():
    CLOCK.manual()
    reset_bus()
    attach(LSM6DSV16XModel(0x6A, Source.synthetic(BATCHES * BATCH / RATE + 10, RATE, loop=True)))
    imu = open_imu(I2C(0), board.REFERENCE)
    imu.init(RATE)
    return imu


def run_pipeline(imu, fus, batches, enc, lenc, lg, buf, ang, smp, amul, acc, track_mem=False):
    """acc[0..3]: us in read, fuse, encode, log; acc[4]: samples; acc[5]: frames; acc[6]: log
    records; acc[7..10]: heap bytes in read, fuse, encode, log (gc is disabled by the caller).
    track_mem: gc.mem_alloc walks the heap (slow), so timing runs leave it out."""
    ticks = time.ticks_us
    diff = time.ticks_diff
    mem = gc.mem_alloc if track_mem else _zero
    for b in range(batches):
        CLOCK.advance_us(BATCH * 5000)
        m0 = mem()
        t0 = ticks()
        n = imu.read_fifo(buf)
        t1 = ticks()
        m1 = mem()
        fus.update(buf, n, ang)
        t2 = ticks()
        m2 = mem()
        tlog = 0
        mlog = 0
        if enc is not None:
            for i in range(n):
                pack(ang, buf, i, smp, amul)
                if enc.add_array(smp):
                    enc.finish()  # the link would notify this memoryview
                    enc.begin(imu.seq + i + 1, 0, 0, 20000)
                    acc[5] += 1
                if lenc.add_array(smp):
                    f = lenc.finish()
                    ma = mem()
                    ta = ticks()
                    if lg is not None:
                        lg.put(f, len(f))
                        acc[6] += 1
                    tlog += diff(ticks(), ta)
                    mlog += mem() - ma
                    lenc.begin(imu.seq + i + 1, 0, 0, 20000)
        t3 = ticks()
        m3 = mem()
        acc[7] += m1 - m0
        acc[8] += m2 - m1
        acc[9] += m3 - m2 - mlog
        acc[10] += mlog
        acc[0] += diff(t1, t0)
        acc[1] += diff(t2, t1)
        acc[2] += diff(t3, t2) - tlog
        acc[3] += tlog
        acc[4] += n


def _zero():
    return 0


def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def run_naive(imu, batches, buf, acc):
    """Read the same way, then float Madgwick + float angles per sample."""
    ticks = time.ticks_us
    q = [1.0, 0.0, 0.0, 0.0]
    ka = imu.ACC_G_PER_LSB
    kg = imu.GYRO_DPS_PER_LSB * math.pi / 180
    dt = 1 / RATE
    for b in range(batches):
        CLOCK.advance_us(BATCH * 5000)
        n = imu.read_fifo(buf)
        t0 = ticks()
        tm = 0
        for i in range(n):
            o = 6 * i
            ta = ticks()
            q = madgwick_naive(q, buf[o] * ka, buf[o + 1] * ka, buf[o + 2] * ka,
                               buf[o + 3] * kg, buf[o + 4] * kg, buf[o + 5] * kg, dt)
            tm += time.ticks_diff(ticks(), ta)
            naive_angles(q)
        acc[1] += time.ticks_diff(ticks(), t0)
        acc[2] += tm
        acc[4] += n


def measure(fn, *args):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    fn(*args)
    a1 = gc.mem_alloc()
    gc.enable()
    return a1 - a0


def main():
    buf = array("h", bytes(12 * BATCH))
    ang = array("h", bytes(6 * BATCH))
    smp = array("h", bytes(12))
    imu = setup()
    fus = Fusion(RATE, imu.ACC_G_PER_LSB, imu.GYRO_DPS_PER_LSB)
    amul = int(imu.ACC_G_PER_LSB * 2048 * 16384 + 0.5)
    enc = lenc = lg = None
    if frames is not None:
        enc = frames.DataEncoder(wire.MODE_COMPACT, 247)
        lenc = frames.DataEncoder(wire.MODE_COMPACT, 247, log=True)
        lenc.set_mtu(128 + 3 - 4)  # 9 compact samples: one 124-byte log record
        enc.begin(0, 0, 0, 20000)
        lenc.begin(0, 0, 0, 20000)
        if fwlog is not None:
            # tmpfs when there is one: the unix file I/O is not the flash cost (counted apart below)
            base = "/dev/shm" if _isdir("/dev/shm") else "/tmp"
            root = base + "/tiltguard-bench-log-%d" % time.ticks_ms()
            lg = fwlog.Log(root=root, max_bytes=64 * 4096)
            lg.start_run()
    acc = array("i", [0] * 11)
    run_pipeline(imu, fus, 5, enc, lenc, lg, buf, ang, smp, amul, acc)  # warm up caches
    # timing: REPEATS runs, median per stage (the host is shared: medians, not means)
    runs = []
    naive = []
    heap_fixed = 0
    heap_naive = 0
    for r in range(REPEATS):
        acc = array("i", [0] * 11)
        heap_fixed = max(heap_fixed, measure(run_pipeline, imu, fus, BATCHES, enc, lenc, lg, buf, ang, smp, amul, acc))
        runs.append([acc[k] / acc[4] for k in range(4)] + [acc[4], acc[5], acc[6]])
        accn = array("i", [0] * 11)
        heap_naive = max(heap_naive, measure(run_naive, setup(), BATCHES // 3, buf, accn))
        naive.append((accn[1] / accn[4], accn[2] / accn[4], accn[4]))
        imu = setup()  # fresh bus for the next pipeline run
        fus = Fusion(RATE, imu.ACC_G_PER_LSB, imu.GYRO_DPS_PER_LSB)
    mem = array("i", [0] * 11)
    measure(run_pipeline, imu, fus, BATCHES, enc, lenc, lg, buf, ang, smp, amul, mem, True)

    def med(v):
        v = sorted(v)
        return v[len(v) // 2]

    st = [med([r[k] for r in runs]) for k in range(4)]
    n = runs[0][4]
    names = ("read (driver + fake I2C)", "fuse (fixed-point viper)", "encode (BLE + log frames)", "log (4 kB blocks)")
    have = (True, True, enc is not None, lg is not None)
    print("firmware hot path, MicroPython unix port, gc.disable(); %d samples x %d runs (medians) at %d Hz" % (n, REPEATS, RATE))
    print("%-30s %10s %10s" % ("stage", "us/sample", "B/sample"))
    total_us = 0
    for k in range(4):
        if not have[k]:
            print("%-30s %10s" % (names[k], "(module missing)"))
            continue
        total_us += st[k]
        print("%-30s %10.2f %10.3f" % (names[k], st[k], mem[7 + k] / mem[4]))
    print("%-30s %10.2f %10.3f   (%d BLE frames, %d log records per run)" % ("read+fuse+encode+log", total_us, heap_fixed / n, runs[0][5], runs[0][6]))
    if mem[10]:
        print("  log heap: %d B over %d records: file I/O in log.py when a 4 kB block/segment is written" % (mem[10], mem[6]))
    naive_us = med([v[0] for v in naive])
    madg_us = med([v[1] for v in naive])
    nn = naive[0][2]
    print("%-30s %10.2f %10.1f   (%d samples; Madgwick alone %.2f us)" % ("naive float Madgwick + angles", naive_us, heap_naive / nn, nn, madg_us))
    print("ratio naive / fixed-point fuse: %.1fx time, %.0f vs %.0f heap B/sample" % (naive_us / st[1], heap_naive / nn, mem[8] / mem[4]))

    # ---- ESP32-S3 budget at 208 Hz --------------------------------------------------------
    # Scale factor unix port -> ESP32-S3, anchored on published figures (../shared/REFERENCE.md):
    # a float Madgwick update in MicroPython took 1.6 ms on a 168 MHz Cortex-M4F (pyboard), and an
    # ESP32-S3 at 240 MHz runs MicroPython ~1.46x faster than a pyboard v1.1 (scruss.com board
    # benchmark, 8.9 s vs 13.0 s). So the textbook Madgwick above would take ~1.1 ms on the S3:
    # factor = 1.1 ms / (its time here). That factor is for bytecode and float boxing; applying it
    # to the viper fuse stage too makes the estimate an upper bound.
    s3_madg_us = 1600 / (13.0 / 8.9)
    factor = s3_madg_us / madg_us
    rate = 208
    cpu_us = total_us * factor
    # Not in the unix timing: the I2C transfer (the CPU waits on it) and the flash writes.
    bus_us = (14 + 12 / BATCH) * 9 / 400e3 * 1e6  # 2 FIFO words + status/timestamp per 32-sample read
    # littlefs 4 kB block: sector erase ~45 ms + 16 page programs x ~0.7 ms (typical SPI NOR), one
    # block per 32 records x 9 samples; the FIFO (1.2 s at 200 Hz on the LSM6DSV16X) rides it out.
    flash_us = (45e3 + 16 * 700) / (32 * 9)
    load = (cpu_us + bus_us + flash_us) * rate / 1e6
    print()
    print("ESP32-S3 at %d Hz (factor %.0fx: S3 Madgwick ~%.0f us [REFERENCE.md, scruss.com] / %.2f us here)" % (rate, factor, s3_madg_us, madg_us))
    print("  CPU   %.2f us x %.0f = %.0f us/sample (viper scaled like bytecode: upper bound)" % (total_us, factor, cpu_us))
    print("  I2C   %.0f us/sample (14 FIFO bytes + status per burst, 9 bits/byte at 400 kHz)" % bus_us)
    print("  flash %.0f us/sample (45 ms erase + 16 x 0.7 ms programs per 4 kB block of 288 samples)" % flash_us)
    print("  total %.0f us x %d Hz = %.1f %% of one core -> headroom %.0f %% (target >= 50 %%)" % (
        cpu_us + bus_us + flash_us, rate, 100 * load, 100 * (1 - load)))
    print("  break-even factor for 50 %% load: %.0fx" % (((0.5e6 / rate) - bus_us - flash_us) / total_us))
    print("  naive float fuse instead of the viper one: +%.0f us/sample and %.0f B/sample to collect" % (
        (naive_us - st[1]) * factor, heap_naive / nn))

main()
