"""Simulation parameters and scenario presets.

A session is a list of :class:`Segment` (activity, duration, speed, grade) plus heading changes
(:class:`Turn`). Presets build them from a seed so a benchmark suite is a list of (preset, seed) pairs.
Where the numbers come from: ``docs/simulator.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tiltguard.errors import InputError

ACTIVITIES = ("standing", "walking", "running", "stopped")
MOVING = ("walking", "running")
SCENARIOS = ("steady", "hills", "intervals", "stops", "drift", "long_no_drift", "mixed")


@dataclass
class Segment:
    activity: str          # one of ACTIVITIES
    duration_s: float
    speed_mps: float = 0.0
    grade_pct: float = 0.0


@dataclass
class Turn:
    t_s: float             # centre of the heading change
    delta_deg: float       # + = turn left
    duration_s: float = 4.0


@dataclass
class SimConfig:
    """Everything that defines a simulated session; ``None`` means "drawn from the seed"."""

    minutes: float = 10.0
    seed: int = 0
    rate_hz: float = 200.0
    scenario: str = "steady"
    standing_s: float = 15.0
    # runner (None: drawn from the seed within the REFERENCE.md ranges)
    speed_mps: float | None = None
    cadence_offset_hz: float | None = None
    tilt_rom_deg: float | None = None
    obliquity_rom_deg: float | None = None
    rotation_rom_deg: float | None = None
    gct_asymmetry_pct: float | None = None
    obliquity_asymmetry: float | None = None   # fraction: left half-wave (1+a), right (1-a)
    rotation_asymmetry: float | None = None
    tilt_run_offset_deg: float | None = None   # mean anterior tilt while running vs standing
    # fatigue drift of anterior tilt (drift_deg None: the preset decides; 0: none)
    drift_deg: float | None = None
    drift_onset_s: float | None = None
    drift_rate_deg_per_min: float | None = None
    # mounting
    misalign_deg: float = 0.0
    upside_down: bool = False
    # sensor
    gyro: bool = True
    angles: bool = False          # add device-computed angle columns (truth + small error)
    clean: bool = False           # no sensor errors at all (noise, bias, scale, quantisation, jitter)
    acc_noise_g: float = 0.015    # white noise incl. soft-tissue vibration, sd
    gyro_noise_dps: float = 0.3
    acc_bias_g: float = 0.015     # per-axis turn-on bias, sd
    gyro_bias_dps: float = 0.8
    acc_bias_drift_g: float = 0.003    # slow thermal wander amplitude
    gyro_bias_drift_dps: float = 0.2   # slow thermal wander amplitude
    scale_error: float = 0.005    # per-axis, sd (fraction)
    jitter_frac: float = 0.05     # sample instants wander by up to this fraction of the interval
    loss: float = 0.0             # fraction of samples lost in packet gaps
    packet_samples: int = 0       # samples per packet (0: rate/20, i.e. 50 ms)
    knocks_per_min: float = 0.0   # short bumps beyond full scale (exercise saturation)
    segments: list[Segment] | None = None   # explicit session instead of a preset
    turns: list[Turn] | None = None

    def validate(self) -> "SimConfig":
        if not (50.0 <= self.rate_hz <= 1000.0):
            raise InputError(f"rate {self.rate_hz:g} Hz is outside 50-1000 Hz")
        if not (0.1 <= self.minutes <= 600):
            raise InputError(f"minutes must be between 0.1 and 600, got {self.minutes:g}")
        if self.segments is None and self.scenario not in SCENARIOS:
            raise InputError(f"unknown scenario {self.scenario!r} (choose from {', '.join(SCENARIOS)})")
        if not (0.0 <= self.loss < 0.5):
            raise InputError(f"loss must be a fraction in [0, 0.5), got {self.loss:g}")
        if not (0.0 <= self.misalign_deg <= 90.0):
            raise InputError(f"misalign-deg must be within 0-90, got {self.misalign_deg:g}")
        if self.drift_deg is not None and not (0.0 <= self.drift_deg <= 30.0):
            raise InputError(f"drift-deg must be within 0-30, got {self.drift_deg:g}")
        if self.drift_rate_deg_per_min is not None and self.drift_rate_deg_per_min <= 0:
            raise InputError("drift rate must be positive")
        if self.segments is not None:
            for s in self.segments:
                if s.activity not in ACTIVITIES:
                    raise InputError(f"unknown activity {s.activity!r}")
                if s.duration_s <= 0:
                    raise InputError("segment durations must be positive")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Runner:
    """Per-session body parameters (drawn once from the seed)."""

    speed_mps: float
    cadence_offset_hz: float
    tilt_rom_deg: float
    obliquity_rom_deg: float
    rotation_rom_deg: float
    gct_asymmetry_pct: float
    obliquity_asymmetry: float
    rotation_asymmetry: float
    tilt_asym_deg: float
    tilt_run_offset_deg: float
    impact_scale: float
    drift_deg: float
    drift_onset_s: float | None
    drift_rate_deg_per_min: float
    extra: dict = field(default_factory=dict)


def draw_runner(cfg: SimConfig, rng: np.random.Generator, run_window: tuple[float, float]) -> Runner:
    """Runner parameters: cfg values where given, else drawn within the published ranges."""

    def pick(v, draw):
        return float(draw if v is None else v)

    drift = cfg.drift_deg
    if drift is None:
        drift = float(rng.uniform(4.0, 6.0)) if cfg.scenario == "drift" else 0.0
    r0, r1 = run_window
    onset = cfg.drift_onset_s
    if drift > 0 and onset is None:
        onset = r0 + rng.uniform(0.3, 0.45) * (r1 - r0)
    return Runner(
        speed_mps=pick(cfg.speed_mps, rng.uniform(2.8, 4.2)),
        cadence_offset_hz=pick(cfg.cadence_offset_hz, np.clip(rng.normal(0.0, 0.12), -0.25, 0.25)),
        tilt_rom_deg=pick(cfg.tilt_rom_deg, rng.uniform(5.9, 7.4)),
        obliquity_rom_deg=pick(cfg.obliquity_rom_deg, rng.uniform(7.8, 9.6)),
        rotation_rom_deg=pick(cfg.rotation_rom_deg, rng.uniform(9.7, 16.1)),
        gct_asymmetry_pct=pick(cfg.gct_asymmetry_pct, rng.uniform(-6.0, 6.0)),
        obliquity_asymmetry=pick(cfg.obliquity_asymmetry, rng.uniform(-0.15, 0.15)),
        rotation_asymmetry=pick(cfg.rotation_asymmetry, rng.uniform(-0.15, 0.15)),
        tilt_asym_deg=float(rng.uniform(-0.4, 0.4)),
        tilt_run_offset_deg=pick(cfg.tilt_run_offset_deg, rng.uniform(2.0, 8.0)),
        impact_scale=float(rng.uniform(0.85, 1.15)),
        drift_deg=float(drift),
        drift_onset_s=None if drift <= 0 else float(onset),
        drift_rate_deg_per_min=pick(cfg.drift_rate_deg_per_min, rng.uniform(0.6, 1.5)),
    )


# ---------------------------------------------------------------- scenarios

def _stop(rng, segs, v):
    """Traffic light: slow to a walk, stand 15-60 s, walk off again."""
    segs += [Segment("walking", rng.uniform(3, 6), 1.3), Segment("stopped", rng.uniform(15, 60)),
             Segment("walking", rng.uniform(3, 6), 1.4)]


def build_scenario(cfg: SimConfig, rng: np.random.Generator, base_speed: float) -> tuple[list[Segment], list[Turn]]:
    """Segments and turns of a preset, filling ``cfg.minutes`` in total."""
    total = cfg.minutes * 60.0
    segs = [Segment("standing", min(cfg.standing_s, 0.3 * total)) if cfg.standing_s > 0 else None,
            Segment("walking", min(20.0, 0.05 * total), 1.4)]
    segs = [s for s in segs if s is not None]
    tail = [Segment("walking", min(10.0, 0.03 * total), 1.3), Segment("standing", min(5.0, 0.02 * total))]
    budget = total - sum(s.duration_s for s in segs) - sum(s.duration_s for s in tail)
    sc = cfg.scenario
    hills = sc in ("hills", "long_no_drift", "mixed")
    stops = sc in ("stops", "long_no_drift", "mixed")
    pace = sc in ("intervals", "long_no_drift", "mixed", "drift", "steady")
    body: list[Segment] = []
    used = 0.0
    next_stop = rng.uniform(150, 300)
    while used < budget - 1e-6:
        if sc == "intervals":
            fast = len(body) % 2 == 0
            dur = rng.uniform(90, 240) if fast else rng.uniform(60, 120)
            v = base_speed + (rng.uniform(0.6, 1.2) if fast else -rng.uniform(0.5, 0.9))
        else:
            dur = rng.uniform(60, 180)
            v = base_speed + (rng.uniform(-0.3, 0.3) if pace else rng.uniform(-0.05, 0.05))
        if sc == "drift":
            v = base_speed + rng.uniform(-0.15, 0.15)   # mild pace changes only
        grade = 0.0
        if hills and rng.random() < 0.5:
            grade = float(rng.choice([-1, 1]) * rng.uniform(2.0, 8.0))
        elif sc == "drift" and rng.random() < 0.25:
            grade = float(rng.choice([-1, 1]) * rng.uniform(1.0, 3.0))
        dur = min(dur, budget - used)
        body.append(Segment("running", dur, float(np.clip(v, 2.2, 6.5)), grade))
        used += dur
        if stops and used > next_stop and budget - used > 120:
            before = len(body)
            _stop(rng, body, base_speed)
            used += sum(s.duration_s for s in body[before:])
            next_stop = used + rng.uniform(150, 360)
    # trim the last running segment so everything adds up exactly
    excess = used - budget
    if excess > 0 and body:
        body[-1].duration_s = max(1.0, body[-1].duration_s - excess)
    segs = segs + body + tail
    # turns: a turnaround halfway through the running, gentle bends elsewhere
    t_edges = np.cumsum([0.0] + [s.duration_s for s in segs])
    run_spans = [(t_edges[i], t_edges[i + 1]) for i, s in enumerate(segs) if s.activity == "running"]
    turns: list[Turn] = []
    if run_spans:
        r0, r1 = run_spans[0][0], run_spans[-1][1]
        candidates = [t for a, b in run_spans for t in np.arange(a + 20, b - 20, 45.0)]
        if candidates:
            mid = min(candidates, key=lambda t: abs(t - 0.5 * (r0 + r1)))
            turns.append(Turn(float(mid), 180.0 * float(rng.choice([-1, 1])), float(rng.uniform(3.0, 5.0))))
            for t in candidates:
                if abs(t - mid) > 30 and rng.random() < 0.3:
                    turns.append(Turn(float(t), float(rng.uniform(-60, 60)), float(rng.uniform(6.0, 15.0))))
    return segs, sorted(turns, key=lambda x: x.t_s)
