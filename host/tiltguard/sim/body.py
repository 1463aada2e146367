"""The simulated runner: time-continuous pelvis motion with exact derivatives.

Everything is a function of time evaluated in bulk (``searchsorted`` into the step table and the smooth
profiles), so the body does not depend on the sample rate: the sensor samples it at any instants.
"""

from __future__ import annotations

import numpy as np

from tiltguard.sim import gait
from tiltguard.sim.config import ACTIVITIES, MOVING, Runner, Segment, Turn
from tiltguard.sim.smooth import Profile

ACT_CODE = {a: i for i, a in enumerate(ACTIVITIES)}   # standing 0, walking 1, running 2, stopped 3
D2R = np.pi / 180.0

# pelvis-angle waveforms over the stride phase phi (0 = left IC, 0.5 = right IC)
TILT_PHASE = 0.20       # anterior-tilt peaks at phi = 0.20 and 0.70 (two cycles per stride; Schache 1999)
OBL_PHASE = -0.07       # left side highest at phi = 0.18, mid left stance (contralateral drop)
ROT_PHASE = 0.0         # left side most forward at left initial contact
WALK_ROM_DEG = (3.0, 7.0, 8.0)   # tilt, obliquity, rotation while walking (smaller than running)
SPEED_TILT_DEG_PER_MPS = 0.6     # more anterior tilt when faster (assumption, see docs/simulator.md)
GRADE_TILT_DEG_PER_PCT = 0.12    # more anterior tilt uphill (assumption)


def _ramp_edges(segs: list[Segment], width: float) -> np.ndarray:
    """Segment edges shifted so ramps next to a still period lie inside the moving part."""
    edges = np.cumsum([s.duration_s for s in segs])[:-1]
    out = edges.copy()
    for i in range(len(edges)):   # once per segment edge, not per sample
        a, b = segs[i].activity in MOVING, segs[i + 1].activity in MOVING
        if a and not b:
            out[i] -= width / 2
        elif b and not a:
            out[i] += width / 2
    return out


class Body:
    def __init__(self, segs: list[Segment], turns: list[Turn], runner: Runner, rng: np.random.Generator) -> None:
        self.segs, self.turns, self.runner = segs, turns, runner
        self.seg_end = np.cumsum([s.duration_s for s in segs])
        self.duration_s = float(self.seg_end[-1])
        self.seg_act = np.array([ACT_CODE[s.activity] for s in segs])
        w = 3.0
        e_w = _ramp_edges(segs, w)
        r = runner
        run_amp = np.array([r.tilt_rom_deg, r.obliquity_rom_deg, r.rotation_rom_deg]) / 2
        walk_amp = np.array(WALK_ROM_DEG) / 2
        # posture offset: running tilts the pelvis forward; a stop leaves a small random posture change
        rows = []
        for s in segs:   # per segment: speed, tilt/obliquity/rotation amplitude, running envelope, posture
            amp = run_amp if s.activity == "running" else walk_amp if s.activity == "walking" else np.zeros(3)
            post = (r.tilt_run_offset_deg if s.activity == "running" else 0.3 * r.tilt_run_offset_deg
                    if s.activity == "walking" else rng.uniform(-0.5, 0.5) if s.activity == "stopped" else 0.0)
            rows.append([s.speed_mps, *amp, 1.0 if s.activity == "running" else 0.0, post])
        self.slow = Profile(e_w, np.array(rows), w)
        self.grade = Profile(e_w, [s.grade_pct for s in segs], 12.0)
        tt = np.array([t.t_s for t in turns]) if turns else np.zeros(0)
        self.heading = Profile(tt, np.concatenate([[0.0], np.cumsum([t.delta_deg * D2R for t in turns])]),
                               np.array([t.duration_s for t in turns]) if turns else 1.0)
        self.steps = self._make_steps(rng)

    def speed(self, t):
        v, dv = self.slow(t)
        return v[..., 0], dv[..., 0]

    # ------------------------------------------------------------ step timeline
    def activity_at(self, t) -> np.ndarray:
        j = np.minimum(np.searchsorted(self.seg_end, t, side="right"), len(self.segs) - 1)
        return self.seg_act[j]

    def _make_steps(self, rng) -> gait.Steps:
        r = self.runner
        dt = 0.01
        grid = np.arange(0.0, self.duration_s + dt, dt)
        v, _ = self.speed(grid)
        gr, _ = self.grade(grid)
        act = self.activity_at(grid)
        f = np.where(act == ACT_CODE["running"], gait.run_step_hz(v, gr, r.cadence_offset_hz),
                     np.where(act == ACT_CODE["walking"], gait.walk_step_hz(v), 0.0))
        phase = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * dt)])
        # moving bouts = maximal runs of walking/running segments
        moving = np.isin(self.seg_act, [ACT_CODE[a] for a in MOVING])
        starts = np.concatenate([[0.0], self.seg_end[:-1]])
        bouts, i = [], 0
        while i < len(self.segs):   # per segment, not per sample
            if moving[i]:
                j = i
                while j + 1 < len(self.segs) and moving[j + 1]:
                    j += 1
                bouts.append((starts[i], self.seg_end[j]))
                i = j + 1
            else:
                i += 1
        t_ic, t_end, side, bout_id, last = [], [], [], [], []
        for b, (a, e) in enumerate(bouts):
            pa, pe = np.interp([a, e], grid, phase)
            n = int(round(pe - pa))
            if n < 2:
                continue
            # times where the bout's phase (stretched to n whole steps) crosses each integer
            ph = (phase - pa) * n / (pe - pa)
            sel = (grid >= a) & (grid <= e)
            ics = np.interp(np.arange(n + 1), ph[sel], grid[sel])
            ics[0], ics[-1] = a, e
            d = np.diff(ics) * (1 + 0.012 * rng.standard_normal(n))   # stride-to-stride variability ~1-2 %
            d *= (e - a) / d.sum()
            ics = a + np.concatenate([[0.0], np.cumsum(d)])
            s0 = int(rng.integers(0, 2))
            t_ic.append(ics[:-1])
            t_end.append(ics[1:])
            side.append((s0 + np.arange(n)) % 2)
            bout_id.append(np.full(n, b))
            last.append(np.arange(n) == n - 1)
        cat = (lambda xs, dt_: np.concatenate(xs) if xs else np.zeros(0, dt_))
        t_ic, t_end = cat(t_ic, float), cat(t_end, float)
        act_ic = self.activity_at(t_ic)
        kind = np.where(act_ic == ACT_CODE["running"], gait.RUN, gait.WALK)
        speed, _ = self.speed(t_ic)
        grade, _ = self.grade(t_ic)
        return gait.Steps(t_ic, t_end, cat(side, int), kind, cat(bout_id, int), cat(last, bool), speed, grade,
                          self.runner, rng)

    def locate(self, t):
        """Step index k, time into the step tau, and whether t is inside a step."""
        st = self.steps
        k = np.searchsorted(st.t_ic, t, side="right") - 1
        kc = np.clip(k, 0, max(len(st.t_ic) - 1, 0))
        inside = (k >= 0) & (t < st.t_end[kc]) if len(st.t_ic) else np.zeros(np.shape(t), bool)
        tau = np.where(inside, t - st.t_ic[kc], 0.0) if len(st.t_ic) else np.zeros(np.shape(t))
        return kc, tau, inside

    # ------------------------------------------------------------ drift
    def drift(self, t):
        """Fatigue drift of anterior tilt (deg) and its rate (deg/s), before the running envelope."""
        r = self.runner
        if r.drift_deg <= 0 or r.drift_onset_s is None:
            z = np.zeros(np.shape(t))
            return z, z
        rate = r.drift_rate_deg_per_min / 60.0
        x = rate * (np.asarray(t) - r.drift_onset_s)
        d = np.clip(x, 0.0, r.drift_deg)
        dd = np.where((x > 0) & (x < r.drift_deg), rate, 0.0)
        return d, dd

    def cross3_s(self) -> float | None:
        r = self.runner
        if r.drift_deg < 3.0 or r.drift_onset_s is None:
            return None
        return float(r.drift_onset_s + 3.0 / (r.drift_rate_deg_per_min / 60.0))

    # ------------------------------------------------------------ pelvis angles
    def angles(self, t):
        """[tilt, obliquity, rotation] (rad) and their time derivatives (rad/s), each (N, 3)."""
        t = np.asarray(t, dtype=float)
        st, r = self.steps, self.runner
        k, tau, inside = self.locate(t)
        if len(st.t_ic):
            T = st.T[k]
            phi = np.where(inside, 0.5 * (st.side[k] + tau / T), 0.0)
            dphi = np.where(inside, 0.5 / T, 0.0)
        else:
            phi = dphi = np.zeros_like(t)
        two_pi = 2 * np.pi
        # tilt: two cycles per stride + a small one-cycle left/right difference
        a2 = r.tilt_asym_deg / max(r.tilt_rom_deg / 2, 1e-6)
        wt = np.cos(2 * two_pi * (phi - TILT_PHASE)) + a2 * np.cos(two_pi * (phi - TILT_PHASE))
        dwt = -2 * two_pi * np.sin(2 * two_pi * (phi - TILT_PHASE)) - a2 * two_pi * np.sin(two_pi * (phi - TILT_PHASE))
        s = np.sin(two_pi * (phi - OBL_PHASE))
        ko = np.where(s > 0, 1 + r.obliquity_asymmetry, 1 - r.obliquity_asymmetry)
        wo, dwo = ko * s, ko * two_pi * np.cos(two_pi * (phi - OBL_PHASE))
        c = np.cos(two_pi * (phi - ROT_PHASE))
        kr = np.where(c > 0, 1 + r.rotation_asymmetry, 1 - r.rotation_asymmetry)
        wr, dwr = kr * c, -kr * two_pi * np.sin(two_pi * (phi - ROT_PHASE))
        sl, dsl = self.slow(t)
        w = np.column_stack([wt, wo, wr])
        dw = np.column_stack([dwt, dwo, dwr])
        out = sl[:, 1:4] * w
        der = dsl[:, 1:4] * w + sl[:, 1:4] * dw * dphi[:, None]
        # slow tilt terms: posture, speed, grade, fatigue drift (the last three while running)
        v, dv, e, de, p, dp = sl[:, 0], dsl[:, 0], sl[:, 4], dsl[:, 4], sl[:, 5], dsl[:, 5]
        g, dg = self.grade(t)
        d, dd = self.drift(t)
        ref = r.speed_mps
        x = SPEED_TILT_DEG_PER_MPS * (v - ref) + GRADE_TILT_DEG_PER_PCT * g + d
        dx = SPEED_TILT_DEG_PER_MPS * dv + GRADE_TILT_DEG_PER_PCT * dg + dd
        out[:, 0] += p + e * x
        der[:, 0] += dp + de * x + e * dx
        return out * D2R, der * D2R

    # ------------------------------------------------------------ everything at the instants t
    def evaluate(self, t) -> dict:
        t = np.asarray(t, dtype=float)
        st = self.steps
        k, tau, inside = self.locate(t)
        n = len(t)
        f_level = np.zeros((n, 3))
        pos = np.zeros(n)
        if len(st.t_ic):
            fv, _, p = st.vertical(tau, k)
            f_level[:, 2] = np.where(inside, fv, 1.0)
            pos = np.where(inside, p, 0.0)
            f_level[:, 0] = np.where(inside, st.forward(tau, k), 0.0)
            f_level[:, 1] = np.where(inside, st.lateral(tau, k), 0.0)
        else:
            f_level[:, 2] = 1.0
        v, dv = self.speed(t)
        psi, dpsi = self.heading(t)
        f_level[:, 0] += dv / gait.G
        f_level[:, 1] += v * dpsi / gait.G     # centripetal acceleration in turns
        ang, rate = self.angles(t)
        g, _ = self.grade(t)
        return {"f_level_g": f_level, "pos_up_m": pos, "angles": ang, "rates": rate, "heading": psi,
                "heading_rate": dpsi, "speed_mps": v, "grade_pct": g, "activity": self.activity_at(t)}
