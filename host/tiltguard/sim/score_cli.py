"""``tiltguard score OUTPUT_DIR TRUTH_DIR``: accuracy of an analysis against simulator truth."""

from __future__ import annotations

import argparse

from tiltguard.errors import InputError

ROWS = [  # (key, label, format)
    ("ic_f1", "initial contact F1 (+-40 ms)", "{:.4f}"), ("ic_precision", "  precision", "{:.4f}"),
    ("ic_recall", "  recall", "{:.4f}"), ("ic_median_abs_err_ms", "median |IC error|, ms", "{:.1f}"),
    ("ic_p95_abs_err_ms", "p95 |IC error|, ms", "{:.1f}"), ("ic_bias_ms", "IC bias, ms", "{:+.1f}"),
    ("side_accuracy", "side accuracy", "{:.2%}"), ("gct_mae_ms", "contact time MAE, ms", "{:.1f}"),
    ("flight_mae_ms", "flight time MAE, ms", "{:.1f}"), ("vo_mae_cm", "vertical oscillation MAE, cm", "{:.2f}"),
    ("braking_mae_g", "braking peak MAE, g", "{:.3f}"), ("stride_recall", "stride recall", "{:.4f}"),
    ("tilt_mean_mae_deg", "stride tilt mean MAE, deg", "{:.2f}"), ("tilt_rom_mae_deg", "tilt ROM MAE, deg", "{:.2f}"),
    ("tilt_ic_mae_deg", "tilt at IC MAE, deg", "{:.2f}"),
    ("obliquity_rom_mae_deg", "obliquity ROM MAE, deg", "{:.2f}"),
    ("rotation_rom_mae_deg", "rotation ROM MAE, deg", "{:.2f}"), ("cadence_mae_spm", "cadence MAE, spm", "{:.2f}"),
    ("drift_sessions", "drift sessions", "{}"), ("drift_detected_within_90s", "  detected within 90 s", "{}"),
    ("drift_delay_median_s", "  median delay vs +3 deg, s", "{:+.0f}"),
    ("false_alarms", "false drift alarms", "{}"), ("false_alarms_per_hour", "  per hour", "{:.2f}"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="analysis outputs (steps.csv, strides.csv, alerts.csv)")
    p.add_argument("truth_dir", metavar="TRUTH_DIR", help="simulated session folder or its truth/ folder")
    p.add_argument("--tol-ms", default="40", help="initial-contact match tolerance, ms (default 40)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the scores as JSON")


def format_table(res: dict) -> str:
    lines = []
    for key, label, fmt in ROWS:
        v = res.get(key)
        lines.append(f"{label:<34} {'-' if v is None else fmt.format(v)}")
    return "\n".join(lines)


def run(args) -> int:
    from tiltguard.formats.session import write_json_atomic
    from tiltguard.sim.score import score

    try:
        tol = float(args.tol_ms) / 1000.0
    except ValueError:
        raise InputError(f"--tol-ms: {args.tol_ms!r} is not a number") from None
    if not 0 < tol <= 1:
        raise InputError("--tol-ms must be within 0-1000")
    res = score(args.output_dir, args.truth_dir, tol)
    print(format_table(res))
    if args.json:
        write_json_atomic(args.json, res)
    return 0
