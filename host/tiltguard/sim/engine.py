"""simulate(config) -> SimResult: the body sampled by the IMU, with exact truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tiltguard.sim import sensor, truth
from tiltguard.sim.body import ACTIVITIES, Body
from tiltguard.sim.config import SimConfig, build_scenario, draw_runner
from tiltguard.sim.rotations import M, angles_from_level

R2D = 180.0 / np.pi


@dataclass
class SimResult:
    """Samples at every instant (``keep`` marks those that survived packet loss) plus truth."""

    config: SimConfig
    body: Body
    t_s: np.ndarray                 # (N,) sample instants, s
    keep: np.ndarray                # (N,) bool, False = lost in a packet gap
    acc_g: np.ndarray               # (N, 3) device-frame specific force as recorded
    gyro_dps: np.ndarray | None     # (N, 3) device-frame angular velocity as recorded (None: accel-only)
    device_angles_deg: np.ndarray | None
    angles_deg: np.ndarray          # (N, 3) truth [tilt, obliquity, rotation]
    pos_up_m: np.ndarray            # (N,) vertical oscillation of the sacrum (0 at each IC)
    speed_mps: np.ndarray
    grade_pct: np.ndarray
    activity: np.ndarray            # (N,) codes into ACTIVITIES
    heading_rad: np.ndarray
    f_level_g: np.ndarray           # (N, 3) true specific force in the level heading frame [fwd, left, up]
    gyro_body_dps: np.ndarray       # (N, 3) true pelvis-frame angular velocity
    mount: np.ndarray               # (3, 3) sensor -> pelvis
    steps: pd.DataFrame
    strides: pd.DataFrame
    drift: dict
    mounting: dict
    meta: dict = field(default_factory=dict)

    def recording(self):
        """The samples that survived packet loss as a :class:`tiltguard.formats.raw.Recording`."""
        from tiltguard.formats.raw import Recording

        k = self.keep
        return Recording(t_s=self.t_s[k], acc_g=self.acc_g[k],
                         gyro_dps=None if self.gyro_dps is None else self.gyro_dps[k],
                         angles_deg=None if self.device_angles_deg is None else self.device_angles_deg[k])

    def samples_df(self) -> pd.DataFrame:
        return pd.DataFrame({
            "t_s": self.t_s, "tilt_deg": self.angles_deg[:, 0], "obliquity_deg": self.angles_deg[:, 1],
            "rotation_deg": self.angles_deg[:, 2], "pos_up_m": self.pos_up_m, "speed_mps": self.speed_mps,
            "grade_pct": self.grade_pct, "activity": np.asarray(ACTIVITIES)[self.activity],
        })

    def gaps(self) -> list[list[float]]:
        """[t_start_s, t_end_s] spans with no samples (last kept sample before, first after)."""
        lost = ~self.keep
        if not lost.any():
            return []
        d = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
        a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        return [[float(self.t_s[i - 1]), float(self.t_s[min(j, len(self.t_s) - 1)])] for i, j in zip(a, b)]


def _pelvis_vectors(f, ang, rates):
    """Specific force and angular velocity in the pelvis frame (x up, y left, z back)."""
    t, o, r = ang[:, 0], ang[:, 1], ang[:, 2]
    ct, st_, co, so, cr, sr = np.cos(t), np.sin(t), np.cos(o), np.sin(o), np.cos(r), np.sin(r)
    # f_p = M^T Ry(t)^T Rx(o)^T Rz(r) f_level
    a0 = cr * f[:, 0] - sr * f[:, 1]
    a1 = sr * f[:, 0] + cr * f[:, 1]
    a2 = f[:, 2]
    b1, b2 = co * a1 + so * a2, -so * a1 + co * a2
    c0, c2 = ct * a0 - st_ * b2, st_ * a0 + ct * b2
    fp = np.column_stack([c2, b1, -c0])
    # omega (level-style components) = yaw' (-st co, so, ct co) + o' (ct, 0, st) + t' (0, 1, 0)
    return fp, ct, st_, co, so


def simulate(cfg: SimConfig) -> SimResult:
    """Simulate one session (deterministic for a given config, seed included)."""
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    rng_body, rng_sensor, rng_scn = (np.random.default_rng(s) for s in rng.integers(0, 2**63 - 1, 3))
    base_speed = float(cfg.speed_mps if cfg.speed_mps is not None else rng_scn.uniform(2.8, 4.2))
    if cfg.segments is not None:
        segs, turns = list(cfg.segments), list(cfg.turns or [])
    else:
        segs, turns = build_scenario(cfg, rng_scn, base_speed)
    edges = np.cumsum([0.0] + [s.duration_s for s in segs])
    run_idx = [i for i, s in enumerate(segs) if s.activity == "running"]
    window = (edges[run_idx[0]], edges[run_idx[-1] + 1]) if run_idx else (0.0, edges[-1])
    cfg_r = cfg if cfg.speed_mps is not None else SimConfig(**{**cfg.to_dict(), "speed_mps": base_speed,
                                                               "segments": cfg.segments, "turns": cfg.turns})
    runner = draw_runner(cfg_r, rng_body, window)
    body = Body(segs, turns, runner, rng_body)

    jitter = 0.0 if cfg.clean else cfg.jitter_frac
    t = sensor.sample_times(body.duration_s, cfg.rate_hz, jitter, rng_sensor)
    ev = body.evaluate(t)
    ang, rates = ev["angles"], ev["rates"]
    fp, ct, st_, co, so = _pelvis_vectors(ev["f_level_g"], ang, rates)
    yaw_d = ev["heading_rate"] - rates[:, 2]
    w_f = -yaw_d * st_ * co + rates[:, 1] * ct
    w_l = yaw_d * so + rates[:, 0]
    w_u = yaw_d * ct * co + rates[:, 1] * st_
    wp = np.column_stack([w_u, w_l, -w_f]) * R2D

    Rm, axis = sensor.mounting(cfg.misalign_deg, cfg.upside_down, rng_sensor)
    acc = fp @ Rm            # row-vector form of Rm^T @ v
    gyr = wp @ Rm
    n = len(t)
    if not cfg.clean:
        acc = acc * (1 + cfg.scale_error * rng_sensor.standard_normal(3))
        acc = (acc + cfg.acc_bias_g * rng_sensor.standard_normal(3) + cfg.acc_noise_g * rng_sensor.standard_normal((n, 3))
               + sensor.slow_wander(t, cfg.acc_bias_drift_g, rng_sensor))
        gyr = gyr * (1 + cfg.scale_error * rng_sensor.standard_normal(3))
        gyr = (gyr + cfg.gyro_bias_dps * rng_sensor.standard_normal(3)
               + sensor.slow_wander(t, cfg.gyro_bias_drift_dps, rng_sensor)
               + cfg.gyro_noise_dps * rng_sensor.standard_normal((n, 3)))
    acc, knocks = sensor.add_knocks(t, acc, cfg.knocks_per_min, rng_sensor)
    if not cfg.clean or cfg.knocks_per_min > 0:
        acc, sat_a = sensor.quantise(acc, sensor.ACC_LSB_G)
        gyr, sat_g = sensor.quantise(gyr, sensor.GYRO_LSB_DPS)
    else:
        sat_a = sat_g = np.zeros_like(acc, dtype=bool)
    packet = cfg.packet_samples or max(1, int(round(cfg.rate_hz / 20)))
    keep = sensor.packet_loss(n, cfg.loss, packet, rng_sensor)
    ang_deg = ang * R2D
    dev = None
    if cfg.angles:
        dev = ang_deg + (0 if cfg.clean else 0.3 * rng_sensor.standard_normal(3)
                         + 0.1 * rng_sensor.standard_normal((n, 3)))
        dev = np.round(dev, 2)

    steps = truth.step_table(body)
    strides = truth.stride_table(body)
    cross3 = body.cross3_s()
    drift = ({"onset_s": None} if runner.drift_onset_s is None else {
        "onset_s": runner.drift_onset_s, "magnitude_deg": runner.drift_deg,
        "rate_deg_per_min": runner.drift_rate_deg_per_min, "cross3_s": cross3,
        "end_s": float(body.duration_s),
        "note": "tilt rises linearly from onset_s at rate_deg_per_min up to magnitude_deg and stays there "
                "while running (it is absent while walking or standing)"})
    # mounting: matrix and the convention angles of the same rotation (pelvis axes)
    eul = angles_from_level(M @ Rm) * R2D
    mounting = {
        "matrix": Rm.tolist(),
        "convention": "pelvis_vector = matrix @ sensor_vector; euler_deg = docs/conventions.md angles of matrix",
        "euler_deg": {"tilt_deg": float(eul[0]), "obliquity_deg": float(eul[1]), "rotation_deg": float(eul[2])},
        "misalign_deg": cfg.misalign_deg, "misalign_axis": axis.tolist(), "upside_down": cfg.upside_down,
    }
    res = SimResult(
        config=cfg, body=body, t_s=t, keep=keep, acc_g=acc, gyro_dps=gyr if cfg.gyro else None,
        device_angles_deg=dev, angles_deg=ang_deg, pos_up_m=ev["pos_up_m"], speed_mps=ev["speed_mps"],
        grade_pct=ev["grade_pct"], activity=ev["activity"], heading_rad=ev["heading"],
        f_level_g=ev["f_level_g"], gyro_body_dps=wp, mount=Rm, steps=steps, strides=strides,
        drift=drift, mounting=mounting)
    res.meta = {
        "runner": {k: v for k, v in vars(runner).items() if k != "extra"},
        "segments": [vars(s) for s in segs], "turns": [vars(x) for x in turns],
        "n_samples": int(n), "n_lost": int((~keep).sum()),
        "saturated_samples": int((sat_a.any(axis=1) | sat_g.any(axis=1)).sum()),
        "knocks_s": knocks.tolist(),
    }
    return res
