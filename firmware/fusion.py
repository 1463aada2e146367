"""Pelvic angles on the device: an allocation-free, fixed-point orientation filter.

Input: raw samples from an ``imu`` driver (int16 counts, device frame, 6 per sample).
Output: tilt, obliquity, rotation in centidegrees (int16, 3 per sample), relative to the
standing calibration, with the signs and composition of docs/conventions.md.

The filter (read it next to the code; every line of ``_fuse`` is one of these):

  frames   device --M--> pelvis --q--> W, where W is the pelvis frame while standing
           (x up, y left, z back). M is the mounting rotation from calibration; q(t) is the
           pelvis orientation. At standing q = 1.
  gyro     w_p = M w_d - b                     (b: gyro bias from calibration)
           h = w_p dt / 2                      (half-angle increment)
  accel    f_p = M f_d;  f_W = R(q) f_p        (specific force in W)
           m = LPF_tau(f_W)                    (tau ~ 1.3 s: over a stride the runner's
                                                 accelerations average out, m -> gravity = +x)
           c = (m x x) k = (0, m_z, -m_y) k    (half-angle correction that turns m back to +x;
                                                 k sets a ~5 s levelling time constant)
  turns    while the heading turns faster than ~5 deg/s (and 1 s after) m = 0 and i is held:
           the centripetal force of a turn would read as a lean (gyro only for a few seconds)
  bias     i <- i + R^T c;  h <- h + i / 2^KI      (integral term: gyro bias that drifted since
                                                 calibration, learnt with tau ~ 25 s)
  update   q <- q + q (x) (0, h) + (0, c) (x) q    (body-frame gyro step, world-frame levelling)
              i.e. dq_w = -v.(h + c),  dq_v = w (h + c) + v x (h - c)   with q = (w, v)
           q <- q (1 - (|q|^2 - 1) / 2)           (first-order renormalisation)
  angles   with R = R(q) (pelvis -> W) and the conventions' R = R_down(rot) R_fwd(obl) R_left(tilt)
           written in W axes (fwd = -z, left = y, up = x):
           tilt = atan2(R_xz, R_xx)
           obl  = atan2(R_xy, sqrt(R_xz^2 + R_xx^2))
           rot  = atan2(-R_zy, R_yy) - heading,  heading = LPF(rot) (tau ~ 1.3 s), so turns
                  and the running direction do not show up as pelvic rotation.
           atan2 and the hypotenuse come from one CORDIC (vectoring mode, 16 steps).
  start    reset(): q from the accelerometer (or q = 1 when standing); the first 2 s level 8x faster.

Calibration (Calibrator, 3 s standing): M = the smallest rotation taking the mean specific force
to +x (pelvis up), b = the mean gyro. The clip's yaw about the vertical cannot be seen while
standing: YawEstimator finds it from running (the fore-aft axis carries braking/propulsion, so it
is the long axis of the horizontal specific-force scatter) and Fusion.apply_yaw turns M without
restarting. calibration_to_dict/from_dict give the small dict the app stores in its config.

Limits: an accelerometer bias tips the standing vertical by bias / 1 g (0.015 g ~ 0.9 deg); that
is invisible until the runner turns about the true vertical, so a fast 180 deg turn shows up to
twice that for 5-10 s, until the levelling catches up. Tests: tests/firmware/test_fusion*.py.

Why not a plain Mahony filter: its accelerometer term sees 2-3 g of running acceleration at
every step; levelling toward the stride-mean of the world-frame specific force uses only what
averages to gravity, and the gyro alone carries the within-stride motion (the tilt ROM).

Fixed point (32-bit safe on the ESP32-S3; bounds in brackets):
  q Q29 (|q| <= 2^29) in state, Q15 copies for products [Q15 x Q15 <= 2^30];
  h, c Q19 rad (clamped to 2^15 ~ 1400 dps at 200 Hz; the sacrum stays < 600 dps) [Q15 x Q19 -> Q34 >> 5 = Q29];
  M Q14 [Q14 x counts <= 2^29.8]; R Q15; m counts << 6; angles in mdeg inside, cdeg out.
The state lives in an array('i') read and written once per batch as Python ints (sign-correct
on every port); the loop itself is viper on machine words: no heap, no floats.
"""

import math
import micropython
from array import array

# state layout (array 'i')
_Q = 0  # 0..3: q (w, x, y, z), Q29
_LPY = 4  # 4, 5: low-passed world specific force, y and z, counts << 6
_HD = 6  # heading low-pass, mdeg << 4
_WARM = 7  # samples left with fast levelling
_M = 8  # 8..16: mounting matrix device -> pelvis, Q14, row major
_G = 17  # gyro counts -> Q19 half angle: h = (w * G - B) >> GS
_GS = 18
_B = 19  # 19..21: gyro bias (pelvis frame) in the same units as w * G
_KC = 22  # levelling shift: c = m >> KC
_NLP = 23  # accel low-pass shift: tau = 2^NLP / rate
_NH = 24  # heading low-pass shift
_IB = 25  # 25..27: integrated correction (pelvis frame) = gyro bias drift, Q19 << KI
_KI = 28  # integral shift: tau_i = 2^KI / rate
_TURN = 29  # low-passed (rotation - heading): ~ heading rate x tau, mdeg << 4
_HOLD = 30  # samples left without levelling (turning)
_HOLDN = 31  # hold time after a turn, samples
_N = 32

ONE_Q29 = 1 << 29

# atan(2^-k) in millidegrees, k = 0..15 (CORDIC vectoring table)
_ATAN = array("i", [round(math.degrees(math.atan(2.0 ** -k)) * 1000) for k in range(16)])


@micropython.viper
def _fuse(st, src: ptr16, n: int, out: ptr16, tab: ptr32):
    q0 = int(st[0])
    q1 = int(st[1])
    q2 = int(st[2])
    q3 = int(st[3])
    lpy = int(st[4])
    lpz = int(st[5])
    hd = int(st[6])
    warm = int(st[7])
    m00 = int(st[8])
    m01 = int(st[9])
    m02 = int(st[10])
    m10 = int(st[11])
    m11 = int(st[12])
    m12 = int(st[13])
    m20 = int(st[14])
    m21 = int(st[15])
    m22 = int(st[16])
    G = int(st[17])
    gs = int(st[18])
    b0 = int(st[19])
    b1 = int(st[20])
    b2 = int(st[21])
    kc = int(st[22])
    nlp = int(st[23])
    nh = int(st[24])
    ibx = int(st[25])
    iby = int(st[26])
    ibz = int(st[27])
    ki = int(st[28])
    tl = int(st[29])
    hold = int(st[30])
    holdn = int(st[31])
    rki = (1 << ki) >> 1
    one = 32768
    one30 = one * one  # 2^30: written as a literal it would be a big int on 32-bit ports
    rnd = (1 << gs) >> 1
    for i in range(n):
        o = i * 6
        # raw int16 counts (ptr16 loads are unsigned)
        ax = (src[o] ^ 0x8000) - 0x8000
        ay = (src[o + 1] ^ 0x8000) - 0x8000
        az = (src[o + 2] ^ 0x8000) - 0x8000
        gx = (src[o + 3] ^ 0x8000) - 0x8000
        gy = (src[o + 4] ^ 0x8000) - 0x8000
        gz = (src[o + 5] ^ 0x8000) - 0x8000
        # device -> pelvis: f_p = M f_d, w_p = M w_d
        # (every shift rounds: a floor would be a constant gyro bias of half an LSB)
        fx = (m00 * ax + m01 * ay + m02 * az + 8192) >> 14
        fy = (m10 * ax + m11 * ay + m12 * az + 8192) >> 14
        fz = (m20 * ax + m21 * ay + m22 * az + 8192) >> 14
        wx = (m00 * gx + m01 * gy + m02 * gz + 8192) >> 14
        wy = (m10 * gx + m11 * gy + m12 * gz + 8192) >> 14
        wz = (m20 * gx + m21 * gy + m22 * gz + 8192) >> 14
        # h = (w_p - b) dt / 2 + i, Q19 (i: bias drift learnt by the levelling loop)
        hx = ((wx * G - b0 + rnd) >> gs) + ((ibx + rki) >> ki)
        hy = ((wy * G - b1 + rnd) >> gs) + ((iby + rki) >> ki)
        hz = ((wz * G - b2 + rnd) >> gs) + ((ibz + rki) >> ki)
        if hx > 32767:
            hx = 32767
        if hx < -32767:
            hx = -32767
        if hy > 32767:
            hy = 32767
        if hy < -32767:
            hy = -32767
        if hz > 32767:
            hz = 32767
        if hz < -32767:
            hz = -32767
        # q in Q15 for products
        w = (q0 + 8192) >> 14
        x = (q1 + 8192) >> 14
        y = (q2 + 8192) >> 14
        z = (q3 + 8192) >> 14
        # R(q), Q15
        rxx = 32768 - ((y * y + z * z) >> 14)
        rxy = (x * y - w * z) >> 14
        rxz = (x * z + w * y) >> 14
        ryx = (x * y + w * z) >> 14
        ryy = 32768 - ((x * x + z * z) >> 14)
        ryz = (y * z - w * x) >> 14
        rzx = (x * z - w * y) >> 14
        rzy = (y * z + w * x) >> 14
        rzz = 32768 - ((x * x + y * y) >> 14)
        # m = LPF(f_W), horizontal part (y, z) only: gravity is +x
        kl = nlp
        kk = kc
        if warm > 0:
            kl = nlp - 2
            kk = kc - 3
            warm -= 1
        if hold > 0:
            # turning: the centripetal force is not gravity; level again from scratch after
            lpy = 0
            lpz = 0
        else:
            fwy = (ryx * fx + ryy * fy + ryz * fz + 16384) >> 15
            fwz = (rzx * fx + rzy * fy + rzz * fz + 16384) >> 15
            lpy += ((fwy << 6) - lpy) >> kl
            lpz += ((fwz << 6) - lpz) >> kl
        # c = (m x x) k = (0, m_z, -m_y) k, Q19
        cy = (lpz + ((1 << kk) >> 1)) >> kk
        cz = (((1 << kk) >> 1) - lpy) >> kk
        # i += R^T c: the correction seen in the pelvis frame, integrated (Mahony's I term)
        if kk == kc and hold == 0:
            ibx += (ryx * cy + rzx * cz + 16384) >> 15
            iby += (ryy * cy + rzy * cz + 16384) >> 15
            ibz += (ryz * cy + rzz * cz + 16384) >> 15
            if ibx > 16777216:
                ibx = 16777216
            if ibx < -16777216:
                ibx = -16777216
            if iby > 16777216:
                iby = 16777216
            if iby < -16777216:
                iby = -16777216
            if ibz > 16777216:
                ibz = 16777216
            if ibz < -16777216:
                ibz = -16777216
        # q += q (x) (0, h) + (0, c) (x) q:  dw = -v.(h + c), dv = w (h + c) + v x (h - c)
        sx = hx
        sy = hy + cy
        sz = hz + cz
        dx = hx
        dy = hy - cy
        dz = hz - cz
        q0 += (0 - (x * sx + y * sy + z * sz) + 16) >> 5
        q1 += (w * sx + y * dz - z * dy + 16) >> 5
        q2 += (w * sy + z * dx - x * dz + 16) >> 5
        q3 += (w * sz + x * dy - y * dx + 16) >> 5
        # renormalise: q -= q (|q|^2 - 1) / 2
        w = (q0 + 8192) >> 14
        x = (q1 + 8192) >> 14
        y = (q2 + 8192) >> 14
        z = (q3 + 8192) >> 14
        e = w * w + x * x + y * y + z * z - one30
        if e > 32767:
            e = 32767
        if e < -32767:
            e = -32767
        q0 -= (w * e + 65536) >> 17
        q1 -= (x * e + 65536) >> 17
        q2 -= (y * e + 65536) >> 17
        q3 -= (z * e + 65536) >> 17
        # angles: three CORDIC vectorings (inputs Q15 << 4)
        mag = 0
        for j in range(3):
            if j == 0:
                cx = rxx << 4
                cyy = rxz << 4
            elif j == 1:
                cx = (mag * 19898) >> 15  # / CORDIC gain 1.64676
                cyy = rxy << 4
            else:
                cx = ryy << 4
                cyy = (0 - rzy) << 4
            ang = 0
            if cx < 0:
                cx = 0 - cx
                cyy = 0 - cyy
                if cyy <= 0:
                    ang = 180000
                else:
                    ang = -180000
            for k in range(16):
                t = cx
                if cyy > 0:
                    cx += cyy >> k
                    cyy -= t >> k
                    ang += tab[k]
                else:
                    cx -= cyy >> k
                    cyy += t >> k
                    ang -= tab[k]
            if ang > 180000:
                ang -= 360000
            if ang < -180000:
                ang += 360000
            p = i * 3 + j
            if j == 0:
                mag = cx
                out[p] = (ang + 5 + 1000000) // 10 - 100000
            elif j == 1:
                out[p] = (ang + 5 + 1000000) // 10 - 100000
            else:
                # rotation relative to the heading low-pass (wrapped to +-180 deg)
                d = ang - (hd >> 4)
                if d > 180000:
                    d -= 360000
                if d < -180000:
                    d += 360000
                hd += (d << 4) >> nh
                # turning: rotation keeps running ahead of its low-pass (> 6.4 deg ~ 5 dps heading rate)
                tl += ((d << 4) - tl) >> (nh - 1)
                if tl > 102400 or tl < -102400:
                    hold = holdn
                elif hold > 0:
                    hold -= 1
                if hd > 2880000:
                    hd -= 5760000
                if hd < -2880000:
                    hd += 5760000
                out[p] = (d + 5 + 1000000) // 10 - 100000
    st[0] = q0
    st[1] = q1
    st[2] = q2
    st[3] = q3
    st[4] = lpy
    st[5] = lpz
    st[6] = hd
    st[7] = warm
    st[29] = tl
    st[30] = hold
    st[25] = ibx
    st[26] = iby
    st[27] = ibz


def _quat_between(a, b):
    """Unit quaternion (w, x, y, z) of the smallest rotation taking unit vector a to b."""
    c = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    ax = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    if c < -0.999999:  # opposite: any perpendicular axis, 180 deg
        p = (0.0, 0.0, 1.0) if abs(a[2]) < 0.9 else (0.0, 1.0, 0.0)
        ax = (a[1] * p[2] - a[2] * p[1], a[2] * p[0] - a[0] * p[2], a[0] * p[1] - a[1] * p[0])
        s = math.sqrt(sum(v * v for v in ax))
        return (0.0, ax[0] / s, ax[1] / s, ax[2] / s)
    w = 1.0 + c
    s = math.sqrt(w * w + ax[0] ** 2 + ax[1] ** 2 + ax[2] ** 2)
    return (w / s, ax[0] / s, ax[1] / s, ax[2] / s)


def _qmul(a, b):
    return (
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    )


def quat_to_matrix(q):
    w, x, y, z = q
    return (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )


def _norm3(v):
    s = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return (v[0] / s, v[1] / s, v[2] / s), s


class Calibration:
    """Mounting rotation (device -> pelvis quaternion) and gyro bias (dps, device frame)."""

    def __init__(self, mount_q=(1.0, 0.0, 0.0, 0.0), gyro_bias_dps=(0.0, 0.0, 0.0)):
        self.mount_q = tuple(float(v) for v in mount_q)
        self.gyro_bias_dps = tuple(float(v) for v in gyro_bias_dps)

    def with_yaw(self, yaw_deg):
        """Add a mounting yaw about the pelvis up axis (e.g. estimated by the host)."""
        h = math.radians(yaw_deg) / 2
        return Calibration(_qmul((math.cos(h), math.sin(h), 0.0, 0.0), self.mount_q), self.gyro_bias_dps)


def calibration_to_dict(cal):
    """Small JSON-able dict for config storage."""
    return {
        "mount_q": [round(v, 6) for v in cal.mount_q],
        "gyro_bias_dps": [round(v, 4) for v in cal.gyro_bias_dps],
    }


def calibration_from_dict(d):
    """Inverse of calibration_to_dict; ValueError on a malformed entry."""
    try:
        q = [float(v) for v in d["mount_q"]]
        b = [float(v) for v in d.get("gyro_bias_dps", (0, 0, 0))]
    except (KeyError, TypeError):
        raise ValueError("calibration needs mount_q (4 numbers) and gyro_bias_dps (3 numbers)")
    if len(q) != 4 or len(b) != 3:
        raise ValueError("calibration needs mount_q (4 numbers) and gyro_bias_dps (3 numbers)")
    s = math.sqrt(sum(v * v for v in q))
    if not 0.9 < s < 1.1:
        raise ValueError("calibration mount_q is not a unit quaternion")
    return Calibration([v / s for v in q], b)


@micropython.viper
def _accumulate(st, src: ptr16, n: int):
    """Sums and ranges for calibration: st = [count, sum ax..gz (6), min ax..gz (6), max (6)]."""
    cnt = int(st[0])
    for j in range(6):
        s = int(st[1 + j])
        lo = int(st[7 + j])
        hi = int(st[13 + j])
        for i in range(n):
            v = (src[i * 6 + j] ^ 0x8000) - 0x8000
            s += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        st[1 + j] = s
        st[7 + j] = lo
        st[13 + j] = hi
    st[0] = cnt + n


class Calibrator:
    """Stand still ~3 s: gravity direction gives the mounting tilt, mean gyro the bias.

    Yaw of the clip about the vertical cannot be seen while standing; it stays 0 here (the
    host estimates it from running and may send it back: Calibration.with_yaw).
    """

    MAX_ACC_RANGE_G = 0.15  # more than this peak-to-peak on any axis = the wearer moved
    MAX_GYRO_RANGE_DPS = 15.0

    def __init__(self, acc_g_per_lsb, gyro_dps_per_lsb):
        self.acc = acc_g_per_lsb
        self.gyro = gyro_dps_per_lsb
        self.st = array("i", [0] * 19)
        self.reset()

    def reset(self):
        st = self.st
        for j in range(19):
            st[j] = 0
        for j in range(6):
            st[7 + j] = 32767
            st[13 + j] = -32768

    @property
    def count(self):
        return self.st[0]

    def add(self, buf, n):
        if self.st[0] + n > 16000:  # keeps the sums small ints on every port
            raise ValueError("calibration window too long")
        _accumulate(self.st, buf, n)

    def finish(self, min_samples=100):
        """Return a Calibration; ValueError if too short, moving, or not ~1 g."""
        st = self.st
        n = st[0]
        if n < min_samples:
            raise ValueError("calibration needs at least %d samples, got %d" % (min_samples, n))
        for j in range(3):
            if (st[13 + j] - st[7 + j]) * self.acc > self.MAX_ACC_RANGE_G:
                raise ValueError("moved during calibration: stand still")
            if (st[16 + j] - st[10 + j]) * self.gyro > self.MAX_GYRO_RANGE_DPS:
                raise ValueError("moved during calibration: stand still")
        g = [st[1 + j] / n * self.acc for j in range(3)]
        up, mag = _norm3(g)
        if not 0.8 < mag < 1.2:
            raise ValueError("calibration saw %.2f g, expected 1 g" % mag)
        mount = _quat_between(up, (1.0, 0.0, 0.0))  # device up -> pelvis up (+x)
        bias = [st[4 + j] / n * self.gyro for j in range(3)]
        return Calibration(mount, bias)


class Fusion:
    """Allocation-free pelvic angles; see the module docstring for the equations."""

    def __init__(self, rate_hz, acc_g_per_lsb, gyro_dps_per_lsb, level_tau_s=5.0, lpf_tau_s=1.3, bias_tau_s=25.0):
        self.acc = acc_g_per_lsb
        self.gyro = gyro_dps_per_lsb
        self.taus = (level_tau_s, lpf_tau_s, bias_tau_s)
        self.st = array("i", [0] * _N)
        self.cal = Calibration()
        self.rate_hz = rate_hz  # sets the rate constants and restarts the filter

    @property
    def rate_hz(self):
        return self._rate

    @rate_hz.setter
    def rate_hz(self, rate_hz):
        """Set the sample rate (Hz): recomputes the fixed-point constants and restarts."""
        self._rate = rate_hz
        st = self.st
        level_tau_s, lpf_tau_s, bias_tau_s = self.taus
        # gyro counts -> Q19 half angle per sample, as G / 2^GS with G in [2^13, 2^14)
        f = self.gyro * math.pi / 180 / (2 * rate_hz) * (1 << 19)
        gs = 0
        while f * (1 << gs) < (1 << 13):
            gs += 1
        st[_G] = int(f * (1 << gs) + 0.5)
        st[_GS] = gs
        # c = m >> KC with m in counts << 6 (2^17 per g): tau_c * rate = 2^(KC + 1) (see docstring)
        st[_KC] = max(3, round(math.log(level_tau_s * rate_hz) / math.log(2)) - 1)
        st[_NLP] = max(2, round(math.log(lpf_tau_s * rate_hz) / math.log(2)))
        st[_NH] = st[_NLP]
        st[_KI] = max(4, round(math.log(bias_tau_s * rate_hz) / math.log(2)))
        st[_HOLDN] = int(rate_hz)
        self.set_calibration(self.cal)

    def set_calibration(self, cal, acc_still=None):
        """Use cal; restart the filter level (standing), or from acc_still = (ax, ay, az) counts."""
        self.cal = cal
        st = self.st
        m = quat_to_matrix(cal.mount_q)
        for r in range(3):
            for c in range(3):
                st[_M + 3 * r + c] = int(round(m[r][c] * 16384))
        b = cal.gyro_bias_dps
        for r in range(3):
            bp = sum(m[r][c] * b[c] for c in range(3)) / self.gyro  # counts, pelvis frame
            st[_B + r] = int(round(bp * st[_G]))
        self.reset(acc_still)

    def reset(self, acc_still=None, warm_s=2.0):
        """Level start: q = 1 (standing pose), or the tilt seen in acc_still (device counts)."""
        q = (1.0, 0.0, 0.0, 0.0)
        if acc_still is not None:
            m = quat_to_matrix(self.cal.mount_q)
            fp = [sum(m[r][c] * acc_still[c] for c in range(3)) for r in range(3)]
            q = _quat_between(_norm3(fp)[0], (1.0, 0.0, 0.0))
        st = self.st
        for j in range(4):
            st[_Q + j] = int(round(q[j] * ONE_Q29))
        st[_LPY] = st[_LPY + 1] = st[_HD] = 0
        st[_IB] = st[_IB + 1] = st[_IB + 2] = 0
        st[_TURN] = st[_HOLD] = 0
        st[_WARM] = int(warm_s * self.rate_hz)

    def update(self, buf, n, out):
        """Fuse n samples of buf (int16, 6 per sample); write n x (tilt, obl, rot) cdeg to out."""
        _fuse(self.st, buf, n, out, _ATAN)

    def apply_yaw(self, yaw_deg):
        """Turn the mounting by yaw_deg about the pelvis up axis without restarting the filter."""
        h = math.radians(yaw_deg) / 2
        r = (math.cos(h), math.sin(h), 0.0, 0.0)
        rc = (r[0], -r[1], 0.0, 0.0)
        q = _qmul(_qmul(r, self.quaternion()), rc)  # the standing frame turns with the pelvis
        st = self.st
        ib = [st[_IB + j] for j in range(3)]
        keep = [st[j] for j in (_HD, _WARM, _TURN, _HOLD)]
        self.set_calibration(self.cal.with_yaw(yaw_deg))
        for j in range(4):
            st[_Q + j] = int(round(q[j] * ONE_Q29))
        c, s_ = math.cos(2 * h), math.sin(2 * h)
        st[_IB] = ib[0]
        st[_IB + 1] = int(round(c * ib[1] - s_ * ib[2]))
        st[_IB + 2] = int(round(s_ * ib[1] + c * ib[2]))
        for j, v in zip((_HD, _WARM, _TURN, _HOLD), keep):
            st[j] = v

    def quaternion(self):
        """Current pelvis orientation (w, x, y, z) relative to standing (floats; not hot path)."""
        return tuple(self.st[_Q + j] / ONE_Q29 for j in range(4))


@micropython.viper
def _hsums(st, src: ptr16, n: int, out):
    """Sums over n (<= 32) samples of the pelvis-frame fy, fz (counts / 8), their squares and
    product, and of |f|^2 (counts^2 / 2^10): out = [n, sy, sz, syy, szz, syz, sff]."""
    m10 = int(st[11])
    m11 = int(st[12])
    m12 = int(st[13])
    m20 = int(st[14])
    m21 = int(st[15])
    m22 = int(st[16])
    sy = 0
    sz = 0
    syy = 0
    szz = 0
    syz = 0
    for i in range(n):
        o = i * 6
        ax = (src[o] ^ 0x8000) - 0x8000
        ay = (src[o + 1] ^ 0x8000) - 0x8000
        az = (src[o + 2] ^ 0x8000) - 0x8000
        fy = (m10 * ax + m11 * ay + m12 * az + 65536) >> 17
        fz = (m20 * ax + m21 * ay + m22 * az + 65536) >> 17
        sy += fy
        sz += fz
        syy += fy * fy
        szz += fz * fz
        syz += fy * fz
    out[0] = n
    out[1] = sy
    out[2] = sz
    out[3] = syy
    out[4] = szz
    out[5] = syz


class YawEstimator:
    """Mounting yaw from running: the fore-aft axis carries the braking/propulsion swings and the
    tilt-coupled bounce, so it is the long axis of the horizontal specific-force scatter
    (principal axis of cov(f_y, f_z) in the pelvis frame). Assumes the clip is within 45 deg of
    the designed yaw (the axis has no sign). Feed it every batch: only ~step-long windows with a
    running-sized horizontal scatter (> min_rms_g; walking and standing stay below) count.
    Not a hot-path object (Python ints accumulate); run it once, e.g. for the first minute.
    """

    def __init__(self, fusion, min_rms_g=0.15, window=80):
        self.fusion = fusion
        self.tmp = [0] * 6
        self.win = [0] * 6  # sums over the current window (~a step: 80 samples = 0.4 s at 200 Hz)
        self.acc = [0] * 6
        self.window = window
        lsb8 = 8 * fusion.acc  # g per unit of the sums (counts / 8)
        self._min_var = (min_rms_g / lsb8) ** 2

    def add(self, buf, n):
        i = 0
        t = self.tmp
        w = self.win
        mv = memoryview(buf)
        while i < n:
            k = n - i if n - i < 32 else 32
            _hsums(self.fusion.st, mv[6 * i :], k, t)
            i += k
            for j in range(6):
                w[j] += t[j]
            if w[0] >= self.window:
                k = w[0]
                my = w[1] / k
                mz = w[2] / k
                if w[3] / k - my * my + w[4] / k - mz * mz >= self._min_var:  # running
                    for j in range(6):
                        self.acc[j] += w[j]
                for j in range(6):
                    w[j] = 0

    @property
    def count(self):
        """Running samples collected so far."""
        return self.acc[0]

    def finish(self, min_ratio=1.3):
        """Yaw (deg) to pass to Fusion.apply_yaw; ValueError if the scatter has no clear long axis."""
        n, sy, sz, syy, szz, syz = self.acc
        if n < 200:
            raise ValueError("yaw estimate needs running samples")
        cyy = syy / n - (sy / n) ** 2
        czz = szz / n - (sz / n) ** 2
        cyz = syz / n - (sy / n) * (sz / n)
        tr = cyy + czz
        det = cyy * czz - cyz * cyz
        disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
        l1, l2 = tr / 2 + disc, tr / 2 - disc
        if l2 <= 0 or l1 / l2 < min_ratio:
            raise ValueError("running scatter too round to find the forward axis")
        # angle of the long axis from +z toward +y = the yaw that turns it back onto z
        return math.degrees(0.5 * math.atan2(2 * cyz, czz - cyy))
