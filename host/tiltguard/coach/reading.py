"""What changed with fatigue, early vs late in the run, in plain words.

Every number is computed from the session; sentences are picked by thresholds (``THRESHOLDS``). The
links to low back pain are the usual ones in runners: anterior tilt (tight or tired hip flexors, lumbar
extension), pelvic drop (weak or tired hip abductors), overstriding and braking, more pelvic rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Changes (late minus early) that count as real; below them the reading says "steady".
THRESHOLDS = {
    "tilt_clear_deg": 3.0, "tilt_some_deg": 1.5,
    "drop_deg": 1.0, "rotation_deg": 2.0,
    "cadence_spm": 3.0, "gct_pct": 5.0, "braking_pct": 10.0, "vo_cm": 0.8,
    "asym_pct": 5.0, "side_drop_deg": 1.0,
}
WINDOW = 0.2            # early = first 20 % of running strides, late = last 20 %
MIN_STRIDES = 20        # fewer in total and the run is too short to compare

NOT_A_DIAGNOSIS = ("This reading describes how your pelvis moved; it is not a diagnosis. Back pain has many causes. "
                   "If you have pain, numbness or pain that wakes you at night, see a physiotherapist or doctor.")


@dataclass
class Change:
    name: str
    unit: str
    early: float
    late: float

    @property
    def delta(self) -> float:
        return self.late - self.early

    @property
    def pct(self) -> float:
        return 100.0 * self.delta / self.early if self.early else float("nan")


@dataclass
class Reading:
    changes: dict[str, Change] = field(default_factory=dict)
    findings: list[tuple[str, str]] = field(default_factory=list)   # (level: flag|fine|info, sentence)
    early_span_s: tuple[float, float] | None = None
    late_span_s: tuple[float, float] | None = None


def _windows(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(t)
    k = max(MIN_STRIDES // 2, int(round(WINDOW * n)))
    order = np.argsort(t)
    early = np.zeros(n, bool)
    late = np.zeros(n, bool)
    early[order[:k]] = True
    late[order[-k:]] = True
    return early, late


def _mean(a) -> float:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else float("nan")


def compare(strides: pd.DataFrame, steps: pd.DataFrame) -> Reading:
    """Early vs late means of the metrics the reading talks about."""
    r = Reading()
    if len(strides) < MIN_STRIDES:
        return r
    t = strides["t_start_s"].to_numpy(float)
    e, l = _windows(t)
    r.early_span_s = (float(t[e].min()), float(t[e].max()))
    r.late_span_s = (float(t[l].min()), float(t[l].max()))

    def add(key, name, unit, values, early_mask=e, late_mask=l):
        v = np.asarray(values, float)
        r.changes[key] = Change(name, unit, _mean(v[early_mask]), _mean(v[late_mask]))

    add("tilt", "mean anterior tilt", "deg", strides["tilt_mean_deg"])
    add("tilt_max", "peak anterior tilt", "deg", strides["tilt_max_deg"])
    add("drop_l", "pelvic drop, left stance", "deg", strides["pelvic_drop_l_deg"])
    add("drop_r", "pelvic drop, right stance", "deg", strides["pelvic_drop_r_deg"])
    add("drop", "pelvic drop (mean of sides)", "deg",
        np.nanmean(strides[["pelvic_drop_l_deg", "pelvic_drop_r_deg"]].to_numpy(float), axis=1))
    add("rotation", "rotation range", "deg", strides["rotation_rom_deg"])
    add("obliquity", "obliquity range", "deg", strides["obliquity_rom_deg"])
    add("cadence", "cadence", "spm", strides["cadence_spm"])
    add("asym", "contact-time asymmetry", "%", strides["gct_asymmetry_pct"])
    if len(steps):
        ts = steps["t_ic_s"].to_numpy(float)
        se = (ts >= r.early_span_s[0]) & (ts <= r.early_span_s[1] + 2.0)
        sl = (ts >= r.late_span_s[0]) & (ts <= r.late_span_s[1] + 2.0)
        add("gct", "ground contact time", "ms", steps["gct_ms"], se, sl)
        add("braking", "braking peak", "g", steps["braking_peak_g"], se, sl)
        add("vo", "vertical oscillation", "cm", steps["vertical_oscillation_cm"], se, sl)
    else:
        add("gct", "ground contact time", "ms",
            np.nanmean(strides[["gct_l_ms", "gct_r_ms"]].to_numpy(float), axis=1))
    return r


def read(strides: pd.DataFrame, steps: pd.DataFrame, summary: dict, alerts: pd.DataFrame) -> Reading:
    """Compare early and late and pick the sentences."""
    r = compare(strides, steps)
    T = THRESHOLDS
    say = r.findings.append
    if not r.changes:
        say(("info", f"The run has fewer than {MIN_STRIDES} running strides, too few to compare early and late."))
        return r
    c = r.changes

    d = c["tilt"].delta
    if d >= T["tilt_clear_deg"]:
        say(("flag", f"Your pelvis tipped forward as you tired: mean anterior tilt rose by {d:.1f}° from the "
                     f"first to the last part of the run (peak tilt {c['tilt_max'].delta:+.1f}°). More anterior tilt "
                     "arches the lower back (lumbar extension). It often goes with tight or tired hip flexors and "
                     "tired glutes and trunk muscles, a common pattern in runners with low back pain. Hip flexor "
                     "mobility and glute/core strength work are the usual starting points."))
    elif d >= T["tilt_some_deg"]:
        say(("flag", f"Anterior tilt crept up by {d:.1f}° late in the run: a mild forward tip of the pelvis, the "
                     "early sign of hip flexor tightness or tiring glutes and trunk muscles. Worth watching over "
                     "the next runs."))
    elif d <= -T["tilt_some_deg"]:
        say(("info", f"Anterior tilt fell by {-d:.1f}° late in the run (the pelvis tipped back, e.g. a more "
                     "upright or slumped posture)."))
    else:
        say(("fine", f"Anterior tilt held steady (change {d:+.1f}°, within ±{T['tilt_some_deg']:.1f}°)."))

    onset = summary.get("drift_onset_s")
    kinds = list(alerts["kind"]) if len(alerts) else []
    n_drift = sum(k == "anterior_tilt_drift" for k in kinds)
    if onset is not None:
        say(("flag" if n_drift else "info",
             f"The tilt drift started at {int(onset // 60)}:{int(onset % 60):02d} into the run"
             + (f" and triggered {n_drift} alert{'s' if n_drift != 1 else ''}." if n_drift else ".")))

    dd = c["drop"].delta
    if dd >= T["drop_deg"]:
        side = ""
        gap = c["drop_l"].late - c["drop_r"].late
        if abs(gap) >= T["side_drop_deg"]:
            side = (f" It drops more while standing on the {'left' if gap > 0 else 'right'} leg "
                    f"({abs(gap):.1f}° more), which points at the {'left' if gap > 0 else 'right'} hip's abductors.")
        say(("flag", f"Pelvic drop grew by {dd:.1f}° (from {c['drop'].early:.1f}° to {c['drop'].late:.1f}°): the "
                     "hip on the swing side sags more as the run goes on. This usually means the gluteus medius "
                     "and other hip abductors are weak or tiring; the sideways sag bends the lower back "
                     "sideways at every step." + side))
    else:
        say(("fine", f"Pelvic drop stayed steady ({dd:+.1f}°)."))

    dr = c["rotation"].delta
    if dr >= T["rotation_deg"]:
        say(("flag", f"Pelvic rotation range grew by {dr:.1f}°. Runners with low back pain tend to rotate the "
                     "pelvis more and move trunk and pelvis more as one block; trunk rotation control helps."))

    gct_pct = c["gct"].pct
    brk_pct = c["braking"].pct if "braking" in c else float("nan")
    cad_d = c["cadence"].delta
    signs = []
    if cad_d <= -T["cadence_spm"]:
        signs.append(f"cadence fell by {-cad_d:.0f} steps/min")
    if gct_pct >= T["gct_pct"]:
        signs.append(f"contact time rose by {gct_pct:.0f}%")
    if brk_pct >= T["braking_pct"]:
        signs.append(f"braking peak rose by {brk_pct:.0f}%")
    if len(signs) >= 2:
        say(("flag", "Signs of overstriding as you tired: " + ", ".join(signs) + ". Landing with the foot further "
                     "ahead of the hips brakes each step and sends more load through the hips and lower back; a "
                     "slightly higher cadence usually shortens the stride."))
    elif signs:
        say(("info", "One sign of a longer, heavier stride late in the run: " + signs[0] + "."))
    else:
        say(("fine", f"Cadence ({cad_d:+.0f} steps/min) and contact time ({gct_pct:+.0f}%) held up: no sign "
                     "of overstriding."))

    asym = c["asym"].late
    if np.isfinite(asym) and abs(asym) >= T["asym_pct"]:
        say(("info", f"Late in the run the {'left' if asym > 0 else 'right'} foot stayed on the ground "
                     f"{abs(asym):.0f}% longer than the other."))
    return r
