"""One-line meaning of every exported column (the sidecar JSON and docs/formats.md say the same)."""

from __future__ import annotations

DESCRIPTIONS = {
    # samples
    "t_s": "seconds from session start",
    "ax_g": "specific force along device +X (up), g", "ay_g": "specific force along device +Y (left), g",
    "az_g": "specific force along device +Z (backward), g",
    "gx_dps": "angular velocity about device X, deg/s (empty when not recorded)",
    "gy_dps": "angular velocity about device Y, deg/s", "gz_dps": "angular velocity about device Z, deg/s",
    "tilt_deg": "device-computed pelvic tilt, deg, + = anterior (empty when not sent)",
    "obliquity_deg": "device-computed obliquity, deg, + = left side up",
    "rotation_deg": "device-computed rotation, deg, + = left side forward",
    # steps
    "time_utc": "wall-clock time of the row's start (ISO-8601, UTC); empty when the session has no start_time",
    "t_ic_s": "initial contact, s from session start", "side": "foot on the ground: L or R",
    "t_to_s": "toe-off, s", "gct_ms": "ground contact time, ms", "flight_ms": "flight time after this step, ms",
    "step_time_s": "initial contact to next initial contact, s",
    "vertical_oscillation_cm": "peak-to-peak vertical sacrum displacement over the step, cm",
    "braking_peak_g": "most negative forward specific force in stance, as a positive number, g",
    "side_confidence": "confidence in the L/R label, 0..1",
    # strides
    "t_start_s": "left initial contact starting the stride, s", "t_end_s": "next left initial contact, s",
    "tilt_mean_deg": "mean anterior tilt over the stride, deg", "tilt_min_deg": "minimum tilt, deg",
    "tilt_max_deg": "maximum tilt, deg", "tilt_rom_deg": "tilt range of motion, deg",
    "tilt_ic_deg": "tilt at left initial contact, deg", "obliquity_rom_deg": "obliquity range of motion, deg",
    "rotation_rom_deg": "transverse rotation range of motion, deg",
    "pelvic_drop_l_deg": "pelvic drop during left stance (right side falls), deg",
    "pelvic_drop_r_deg": "pelvic drop during right stance (left side falls), deg",
    "cadence_spm": "steps per minute (120 / stride time)", "gct_l_ms": "left ground contact time, ms",
    "gct_r_ms": "right ground contact time, ms",
    "gct_asymmetry_pct": "100 (L - R) / mean of L and R contact time, % (+ = left longer)",
    "obliquity_asymmetry_pct": "100 (L - R) / mean of left- and right-stance pelvic drop, %",
    "speed_mps": "running speed from a watch FIT, m/s (empty without watch data)",
    "grade_pct": "slope from the watch's altitude and distance, % (+ = uphill; empty without watch data)",
    "hr_bpm": "heart rate from a watch FIT, beats/min (empty without watch data)",
    # summary
    "session": "session folder name", "athlete": "athlete named in session.json (empty when none)",
    "start_time": "session start, ISO-8601 with UTC offset", "duration_s": "session length, s",
    "running_s": "time spent running, s", "n_steps": "running steps", "n_strides": "running strides",
    "tilt_baseline_deg": "the runner's early-run tilt baseline, deg",
    "drift_onset_s": "start of anterior tilt drift, s (empty when none)", "alerts_n": "number of alerts",
    "gaps_n": "number of gaps with no samples", "gaps_s": "total gap length, s",
}
# Keys that mean different things per table.
_BY_TABLE = {("summary", "gct_ms"): "median ground contact time, ms",
             ("summary", "cadence_spm"): "median cadence, steps/min"}


def describe(column: str, what: str | None = None) -> str:
    return _BY_TABLE.get((what, column)) or DESCRIPTIONS.get(column, "")
