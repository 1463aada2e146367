"""Fusion under MicroPython, fed a simulated run through the fake IMU (fake I2C + chip FIFO).

The run is made here (numpy): a standing calibration, then running with a 2-peak tilt cycle,
obliquity and rotation swings, a slow anterior-tilt drift, a gentle turn, 1-2 g vertical and
braking accelerations with impact peaks, gyro bias and noise, and a clip worn as designed or
15 deg off. The firmware calibrates on the standing part and its angles are compared with the
truth per stride.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation


FS = 200
STRIDE_HZ = 1.4
STAND_S = 4.0

# pelvis (x up, y left, z back) -> world (forward, left, up) while standing
R0 = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def _rot(axis, ang_rad):
    return Rotation.from_rotvec(np.outer(ang_rad, axis)).as_matrix()


def simulate_run(path: Path, run_s: float, mount_deg=(0.0, 0.0, 0.0), bias_drift_dps=(0.0, 0.0, 0.0), seed=1):
    """Write a raw CSV (docs/formats.md) and return truth dict (t_s, tilt/obliquity/rotation_deg)."""
    rng = np.random.default_rng(seed)
    n = int((STAND_S + run_s) * FS)
    t = np.arange(n) / FS

    def angles(tt):
        tr = np.clip(tt - STAND_S, 0, None)
        env = np.clip(tr / 2.0, 0, 1)  # 2 s from standing to full running
        ph = 2 * np.pi * STRIDE_HZ * tr
        tilt = env * (8.0 + 0.02 * tr + 3.0 * np.sin(2 * ph + 0.3))
        obl = env * 4.0 * np.sin(ph)
        rot = env * 6.0 * np.sin(ph + 1.0)
        heading = env * 30.0 * np.sin(2 * np.pi * tr / 60.0)
        return tilt, obl, rot, heading, ph, env

    def r_dw(tt):
        tilt, obl, rot, heading, _, _ = angles(tt)
        r = (
            _rot([0, 0, 1], np.radians(heading))
            @ _rot([0, 0, -1], np.radians(rot))
            @ _rot([1, 0, 0], np.radians(obl))
            @ _rot([0, 1, 0], np.radians(tilt))
            @ R0
        )
        mount = Rotation.from_euler("xyz", mount_deg, degrees=True).as_matrix()  # device -> pelvis
        return r @ mount

    dt = 1.0 / FS
    ra = Rotation.from_matrix(r_dw(t - dt / 2))
    rb = Rotation.from_matrix(r_dw(t + dt / 2))
    gyro_dps = np.degrees((ra.inv() * rb).as_rotvec() / dt)  # device frame
    tilt, obl, rot, heading, ph, env = angles(t)
    # world linear acceleration (g): vertical bounce with impact peaks, braking, sway
    step_ph = np.mod(2 * ph, 2 * np.pi)
    impact = np.exp(-0.5 * ((step_ph - 0.3) / 0.12) ** 2) * 1.2
    vert = -1.2 * np.sin(2 * ph) + impact - impact.mean()
    fwd = 0.35 * np.sin(2 * ph + 1.0)
    hd = np.radians(heading)
    lat = 0.25 * np.sin(ph) + 3.5 * np.gradient(hd, t) / 9.80665  # sway + centripetal at 3.5 m/s
    acc_w = env[:, None] * np.stack(
        [fwd * np.cos(hd) - lat * np.sin(hd), fwd * np.sin(hd) + lat * np.cos(hd), vert], axis=1
    )
    acc_w[:, 2] += 1.0  # specific force: + gravity reaction
    rd = r_dw(t)
    acc_d = np.einsum("nji,nj->ni", rd, acc_w)
    acc_d += rng.normal(0, 0.005, acc_d.shape)
    gyro_dps += np.array([0.4, -0.3, 0.25]) + rng.normal(0, 0.05, gyro_dps.shape)
    # bias drift after calibration (warming up): ramps in between 20 s and 50 s of running
    ramp = np.clip((t - STAND_S - 20.0) / 30.0, 0, 1)
    gyro_dps += ramp[:, None] * np.asarray(bias_drift_dps)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t_s", "ax_g", "ay_g", "az_g", "gx_dps", "gy_dps", "gz_dps"])
        for i in range(n):
            w.writerow([f"{t[i]:.4f}"] + [f"{v:.5f}" for v in acc_d[i]] + [f"{v:.4f}" for v in gyro_dps[i]])
    stride_starts = STAND_S + np.arange(0, run_s * STRIDE_HZ) / STRIDE_HZ
    return {"t_s": t, "tilt_deg": tilt, "obliquity_deg": obl, "rotation_deg": rot, "strides": stride_starts}


RUNNER = r"""
import sys, time
from array import array
import fake_imu
from fake_imu import CLOCK, Source, LSM6DSV16XModel, MPU6886Model, attach, reset_bus, I2C
import board
from imu import open_imu, sample_buffer
from fusion import Fusion, Calibrator, YawEstimator, calibration_to_dict, calibration_from_dict

raw, out_path, chip = sys.argv[1], sys.argv[2], sys.argv[3]
# mounting yaw: estimate over the window [from, to) s, or from < 0: automatically from `to` s of running
yaw_from, yaw_to = float(sys.argv[4]), float(sys.argv[5])
CLOCK.manual()
reset_bus()
src = Source.from_csv(raw)
if chip == "lsm":
    attach(LSM6DSV16XModel(0x6A, src, freq_fine=0))
    b = board.REFERENCE
else:
    attach(MPU6886Model(0x68, src))
    b = board.M5STICKC_PLUS2
imu = open_imu(I2C(0), b, clock_us=fake_imu.ticks_us)
rate = imu.init(200)
buf = sample_buffer(imu)
ang = array("h", bytes(6 * imu.max_samples))
cal = Calibrator(imu.ACC_G_PER_LSB, imu.GYRO_DPS_PER_LSB)
fus = None
ye = None
yaw = None
yaw_at = 0
res = array("h", bytes(6 * src.n))  # 3 angles per sample, indexed by sample number
resb = memoryview(res)
angb = memoryview(ang)
start = 0
t0 = time.ticks_ms()
fused = 0
while True:
    CLOCK.advance_us(100_000)
    n = imu.read_fifo(buf)
    if n == 0 and fake_imu.DEVICES[b["imu_addr"]].exhausted:
        break
    while n:
        if fus is None:
            cal.add(buf, n)
            if cal.count >= 600:  # 3 s standing
                c = calibration_from_dict(calibration_to_dict(cal.finish()))
                fus = Fusion(200, imu.ACC_G_PER_LSB, imu.GYRO_DPS_PER_LSB)
                st = cal.st
                fus.set_calibration(c, [st[1 + j] / st[0] for j in range(3)])
                start = imu.seq + n
        else:
            t_s = imu.seq * imu.period_ns / 1e9
            if yaw_to > 0 and yaw is None:
                if ye is None:
                    ye = YawEstimator(fus)
                if yaw_from < 0:  # automatic: every batch, the estimator keeps running chunks
                    ye.add(buf, n)
                    if ye.count >= yaw_to * 200:
                        yaw = ye.finish()
                        fus.apply_yaw(yaw)
                        yaw_at = t_s
                elif yaw_from <= t_s < yaw_to:
                    ye.add(buf, n)
                elif t_s >= yaw_to:
                    yaw = ye.finish()
                    fus.apply_yaw(yaw)
                    yaw_at = t_s
            fus.update(buf, n, ang)
            fused += n
            k = 3 * imu.seq
            resb[k : k + 3 * n] = angb[: 3 * n]
        n = imu.read_fifo(buf)
dt = time.ticks_diff(time.ticks_ms(), t0)
with open(out_path, "wb") as fh:
    fh.write(resb[3 * start : 3 * (start + fused)])
print("lost", imu.lost, "fused", fused, "start", start, "ms", dt, "yaw", yaw, "yaw_at", yaw_at)
"""


def run_firmware(raw: Path, out: Path, chip="lsm", yaw_window_s=(0.0, 0.0)):
    script = out.with_suffix(".py")
    script.write_text(RUNNER)
    from tests.mpy import run_mpy

    t0 = time.perf_counter()
    res = run_mpy(script, str(raw), str(out), chip, *map(str, yaw_window_s), heap="64M")
    wall = time.perf_counter() - t0
    start = int(res.stdout.split("start")[1].split()[0])
    ang = np.fromfile(out, dtype="<i2").reshape(-1, 3).astype(np.int64)
    est = np.column_stack([start + np.arange(len(ang)), ang])
    return est, res.stdout, wall


def stride_errors(truth, est, settle_s=10.0):
    """Per stride: (mean tilt error, tilt ROM error, obliquity ROM error), degrees."""
    idx = est[:, 0]
    tilt_e = est[:, 1] / 100.0
    obl_e = est[:, 2] / 100.0
    t = truth["t_s"][idx]
    tilt_t = truth["tilt_deg"][idx]
    obl_t = truth["obliquity_deg"][idx]
    out = []
    s = truth["strides"]
    for a, b in zip(s[:-1], s[1:]):
        if a < STAND_S + settle_s:
            continue
        m = (t >= a) & (t < b)
        if m.sum() < 0.9 * FS / STRIDE_HZ:
            continue
        out.append(
            (
                tilt_e[m].mean() - tilt_t[m].mean(),
                np.ptp(tilt_e[m]) - np.ptp(tilt_t[m]),
                np.ptp(obl_e[m]) - np.ptp(obl_t[m]),
            )
        )
    return np.array(out)


@pytest.mark.parametrize(
    "chip,mount,drift",
    [
        ("lsm", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ("lsm", (0.0, 15.0, 0.0), (0.0, 0.0, 0.0)),
        ("mpu", (0.0, 0.0, 15.0), (0.0, 0.0, 0.0)),
        ("lsm", (0.0, 15.0, 0.0), (0.1, 0.25, -0.2)),
    ],
    ids=["lsm-as-designed", "lsm-15deg-pitched", "mpu-15deg-rolled", "lsm-15deg-bias-drift"],
)
def test_fusion_matches_truth(tmp_path, chip, mount, drift):
    truth = simulate_run(tmp_path / "raw.csv", run_s=150.0, mount_deg=mount, bias_drift_dps=drift)
    est, out, wall = run_firmware(tmp_path / "raw.csv", tmp_path / "est.csv", chip)
    assert "lost 0 " in out, out
    err = stride_errors(truth, est)
    assert len(err) > 100
    print(f"{chip} {mount}: max |mean tilt err| {np.abs(err[:, 0]).max():.3f}, "
          f"max |tilt ROM err| {np.abs(err[:, 1]).max():.3f}, max |obl ROM err| {np.abs(err[:, 2]).max():.3f} "
          f"deg over {len(err)} strides; {out.strip()} wall {wall:.1f}s")
    assert np.abs(err[:, 0]).max() <= 1.0
    assert np.abs(err[:, 1]).max() <= 1.0


def test_read_and_fuse_allocate_nothing_per_sample(tmp_path):
    """gc.disable(); heap bytes before/after 2000 samples of read_fifo + Fusion.update = 0."""
    raw = tmp_path / "raw.csv"
    simulate_run(raw, run_s=20.0)
    code = RUNNER.split("cal = Calibrator")[0].replace(
        "raw, out_path, chip = sys.argv[1], sys.argv[2], sys.argv[3]", f"raw, chip = {str(raw)!r}, 'lsm'"
    ).replace("# mounting yaw: estimate over the window [from, to) s, or from < 0: automatically from `to` s of running\nyaw_from, yaw_to = float(sys.argv[4]), float(sys.argv[5])", "")
    code += r"""
import gc
fus = Fusion(200, imu.ACC_G_PER_LSB, imu.GYRO_DPS_PER_LSB)

def loop(batches):
    done = 0
    for i in range(batches):
        CLOCK.advance_us(160_000)
        n = imu.read_fifo(buf)
        fus.update(buf, n, ang)
        done += n
    return done

loop(5)  # warm up: first calls may create caches
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
done = loop(60)
a1 = gc.mem_alloc()
gc.enable()
print("samples", done, "bytes", a1 - a0)
"""
    from tests.mpy import run_mpy_code

    out = run_mpy_code(code, heap="64M").stdout.split()
    samples, nbytes = int(out[1]), int(out[3])
    assert samples == 60 * 32
    assert nbytes == 0, f"{nbytes} bytes for {samples} samples"


SIGNS = r"""
import json, math
from array import array
from fusion import Fusion, Calibrator, Calibration, calibration_to_dict, calibration_from_dict, quat_to_matrix

G = 2048
fus = Fusion(200, 1 / 2048, 0.070)
buf = array("h", bytes(12 * 32))
ang = array("h", bytes(6 * 32))

def hold(acc, gyro_dps, seconds):
    # feed constant samples (device frame): acc in g, gyro in dps
    n = int(seconds * 200)
    for k in range(32):
        for j in range(3):
            buf[6 * k + j] = int(round(acc[j] * G))
            buf[6 * k + 3 + j] = int(round(gyro_dps[j] / 0.070))
    while n > 0:
        m = 32 if n > 32 else n
        fus.update(buf, m, ang)
        n -= m
    return [ang[3 * m - 3] / 100, ang[3 * m - 2] / 100, ang[3 * m - 1] / 100]

def rot(axis, deg, v):
    # rotate vector v about a device axis by deg (right hand)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    x, y, z = v
    if axis == 0:
        return (x, c * y - s * z, s * y + c * z)
    if axis == 1:
        return (c * x + s * z, y, -s * x + c * z)
    return (c * x - s * y, s * x + c * y, z)

out = {}
# worn as designed, standing: device +X up reads +1 g
fus.set_calibration(Calibration(), [G, 0, 0])
out["stand"] = hold((1, 0, 0), (0, 0, 0), 2)
# anterior tilt 10 deg = turn about +Y (left) by +10: gravity reaction seen in the device turns by -10
fus.reset([G, 0, 0])
hold((1, 0, 0), (0, 20, 0), 0.5)                # 20 dps for 0.5 s about +Y
out["tilt"] = hold(rot(1, -10, (1, 0, 0)), (0, 0, 0), 3)
# obliquity 8 deg (left side up) = turn about forward (-Z) by +8, i.e. about +Z by -8
fus.reset([G, 0, 0])
hold((1, 0, 0), (0, 0, -16), 0.5)
out["obl"] = hold(rot(2, 8, (1, 0, 0)), (0, 0, 0), 3)
# rotation (left side forward) = turn about down (-X): shows right away, then fades (heading)
fus.reset([G, 0, 0])
out["rot"] = hold((1, 0, 0), (-20, 0, 0), 0.3)  # 6 deg
out["rot_later"] = hold((1, 0, 0), (0, 0, 0), 10)
# calibration: a clip pitched 15 deg and a gyro bias
cal = Calibrator(1 / 2048, 0.070)
a = rot(1, 15, (1, 0, 0))
for k in range(32):
    for j in range(3):
        buf[6 * k + j] = int(round(a[j] * G))
    buf[6 * k + 3] = 10; buf[6 * k + 4] = -5; buf[6 * k + 5] = 0
for i in range(20):
    cal.add(buf, 32)
c = cal.finish()
d = calibration_to_dict(c)
c2 = calibration_from_dict(d)
m = quat_to_matrix(c2.mount_q)
out["cal"] = {"dict": d, "mx": [sum(m[r][j] * a[j] for j in range(3)) for r in range(3)]}
# moving during calibration is refused
cal2 = Calibrator(1 / 2048, 0.070)
cal2.add(buf, 32)
buf[0] = 3000
cal2.add(buf, 32)
for i in range(5):
    cal2.add(buf, 32)
try:
    cal2.finish()
except ValueError as e:
    out["moved"] = str(e)
for bad in ({"mount_q": [1, 0, 0]}, {"mount_q": [2, 0, 0, 0]}, {}):
    try:
        calibration_from_dict(bad)
    except ValueError as e:
        out.setdefault("bad", []).append(str(e)[:30])
print(json.dumps(out))
"""


def test_angle_signs_follow_conventions_and_calibration_roundtrip():
    import json

    from tests.mpy import run_mpy_code

    r = json.loads(run_mpy_code(SIGNS).stdout.strip().splitlines()[-1])
    assert all(abs(v) < 0.05 for v in r["stand"])
    tilt, obl, rot = r["tilt"]
    assert abs(tilt - 10) < 0.3 and abs(obl) < 0.3  # anterior tilt is positive
    tilt, obl, rot = r["obl"]
    assert abs(obl - 8) < 0.3 and abs(tilt) < 0.3  # left side up is positive
    assert 4.5 < r["rot"][2] < 6.5  # left side forward is positive
    assert abs(r["rot_later"][2]) < 0.5  # relative to the heading: a held turn fades out
    d = r["cal"]["dict"]
    assert d["gyro_bias_dps"] == [0.7, -0.35, 0.0]
    mx = r["cal"]["mx"]
    assert abs(mx[0] - 1) < 1e-4 and abs(mx[1]) < 1e-4 and abs(mx[2]) < 1e-4  # mount maps gravity to +x
    assert r["moved"].startswith("moved during calibration")
    assert len(r["bad"]) == 3
