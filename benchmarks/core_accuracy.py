"""Accuracy of the whole analysis on a suite of simulated sessions, scored against the simulator's truth.

    python benchmarks/core_accuracy.py [--quick] [--workers N]

Every session goes raw samples (device frame, sensor errors, lost packets removed) ->
``tiltguard.core.pipeline.analyze`` -> ``tiltguard.sim.score.score_arrays``; groups are pooled with
``tiltguard.sim.score.summarise``. Prints each issue-3 target next to the measured figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tiltguard.formats.raw import Recording  # noqa: E402
from tiltguard.sim import SimConfig, simulate  # noqa: E402
from tiltguard.sim.score import score_arrays, summarise  # noqa: E402


def suite(quick: bool) -> dict[str, list[SimConfig]]:
    """Named groups of sessions. Minutes are kept short for the event/metric groups (thousands of steps
    in total); drift and false-alarm groups need long sessions."""
    m = 4.0 if quick else 8.0
    seeds = range(2) if quick else range(3)
    g: dict[str, list[SimConfig]] = {}
    g["speeds"] = [SimConfig(minutes=m, seed=100 + i, scenario="steady", rate_hz=200, speed_mps=v)
                   for i, v in enumerate((2.5, 3.3, 4.2, 5.2, 6.0))]
    g["hills"] = [SimConfig(minutes=m, seed=200 + s, scenario="hills", rate_hz=100) for s in seeds]
    g["stops"] = [SimConfig(minutes=m, seed=300 + s, scenario="stops", rate_hz=200) for s in seeds]
    g["pace changes"] = [SimConfig(minutes=m, seed=400 + s, scenario="intervals", rate_hz=100) for s in seeds]
    g["mixed"] = [SimConfig(minutes=m, seed=450 + s, scenario="mixed", rate_hz=200) for s in seeds]
    g["asymmetry"] = [SimConfig(minutes=m, seed=500 + s, scenario="steady", rate_hz=200,
                                gct_asymmetry_pct=(-10.0, 8.0, 12.0)[s % 3], obliquity_asymmetry=0.3,
                                rotation_asymmetry=0.2) for s in seeds]
    g["misaligned 10-20 deg"] = [SimConfig(minutes=m, seed=600 + s, scenario="hills", rate_hz=(100, 200)[s % 2],
                                           misalign_deg=(10.0, 20.0)[s % 2]) for s in seeds]
    g["upside-down + 15 deg"] = [SimConfig(minutes=m, seed=700 + s, scenario="steady", rate_hz=200,
                                           misalign_deg=15.0, upside_down=True) for s in seeds]
    g["packet loss 2-5 %"] = [SimConfig(minutes=m, seed=800 + s, scenario="intervals", rate_hz=(200, 100)[s % 2],
                                        loss=(0.02, 0.05)[s % 2]) for s in seeds]
    g["knocks on the clip"] = [SimConfig(minutes=m, seed=850 + s, scenario="mixed", rate_hz=200, knocks_per_min=3.0)
                               for s in seeds]
    g["drift"] = [SimConfig(minutes=25.0 if quick else 35.0, seed=900 + s, scenario="drift", rate_hz=100)
                  for s in range(4 if quick else 10)]
    g["long no-drift"] = [SimConfig(minutes=30.0 if quick else 60.0, seed=1000 + s, scenario="long_no_drift",
                                    rate_hz=100) for s in range(2 if quick else 5)]
    g["accelerometer only"] = [SimConfig(minutes=m, seed=1100 + s, scenario="steady", rate_hz=200, gyro=False)
                               for s in seeds]
    return g


def run_one(cfg: SimConfig):
    from tiltguard.core.pipeline import analyze

    res = simulate(cfg)
    k = res.keep
    rec = Recording(t_s=res.t_s[k], acc_g=res.acc_g[k], gyro_dps=None if res.gyro_dps is None else res.gyro_dps[k])
    t = time.perf_counter()
    try:
        an = analyze(rec)
    except Exception as e:  # noqa: BLE001 -- report and go on: one failing session must not hide the rest
        return None, f"{type(e).__name__}: {e}", 0.0
    el = time.perf_counter() - t
    sc = score_arrays(an.steps, an.strides, an.alerts, res.steps, res.strides, res.drift,
                      float(res.body.duration_s), res.gaps())
    return sc, None, el


TARGETS = [  # (label, key, comparison, target, unit)
    ("IC F1 (+/-40 ms)", "ic_f1", ">=", 0.99, ""),
    ("median |IC error|", "ic_median_abs_err_ms", "<=", 10.0, "ms"),
    ("side accuracy", "side_accuracy", ">=", 0.97, ""),
    ("contact time MAE", "gct_mae_ms", "<=", 15.0, "ms"),
    ("vertical oscillation MAE", "vo_mae_cm", "<=", 1.0, "cm"),
    ("stride tilt-mean MAE", "tilt_mean_mae_deg", "<=", 0.5, "deg"),
    ("tilt ROM MAE", "tilt_rom_mae_deg", "<=", 0.7, "deg"),
    ("obliquity ROM MAE", "obliquity_rom_mae_deg", "<=", 0.7, "deg"),
    ("rotation ROM MAE", "rotation_rom_mae_deg", "<=", 0.7, "deg"),
]


def _fmt(v, unit=""):
    if v is None:
        return "n/a"
    return f"{v:.4f}" if unit == "" else f"{v:.2f} {unit}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter sessions")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    groups = suite(args.quick)
    jobs = [(name, cfg) for name, cfgs in groups.items() for cfg in cfgs]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as ex:
        results = list(ex.map(run_one, [c for _, c in jobs]))
    by_group: dict[str, list] = {}
    failures = []
    analysis_s = 0.0
    for (name, cfg), (sc, err, el) in zip(jobs, results):
        analysis_s += el
        if sc is None:
            failures.append((name, cfg.seed, err))
        else:
            by_group.setdefault(name, []).append(sc)
    hours = sum(c.minutes for _, c in jobs) / 60.0
    print(f"{len(jobs)} simulated sessions, {hours:.1f} h of recording, wall {time.perf_counter() - t0:.0f} s "
          f"(analysis {analysis_s:.0f} s)")
    if failures:
        print(f"FAILED sessions: {failures}")
    print(f"\n{'group':24s} {'steps':>6s} {'F1':>7s} {'|IC| ms':>7s} {'side':>6s} {'GCT ms':>6s} {'VO cm':>6s} "
          f"{'tiltM':>6s} {'tiltR':>6s} {'oblR':>6s} {'rotR':>6s} {'cad':>5s}")
    for name, scs in by_group.items():
        s = summarise(scs)
        v = [s["ic_f1"], s["ic_median_abs_err_ms"], s["side_accuracy"], s["gct_mae_ms"], s["vo_mae_cm"],
             s["tilt_mean_mae_deg"], s["tilt_rom_mae_deg"], s["obliquity_rom_mae_deg"], s["rotation_rom_mae_deg"],
             s["cadence_mae_spm"]]
        txt = " ".join("   n/a" if x is None else f"{x:6.3f}" if i in (0, 2) else f"{x:6.2f}" for i, x in enumerate(v))
        print(f"{name:24s} {s['n_true_steps']:6d} {txt}")
    events_groups = [g for g in by_group if g not in ("accelerometer only",)]
    pooled = summarise([s for g in events_groups for s in by_group[g]])
    print("\nPooled over all sessions with a gyro (accelerometer-only shown above, not pooled):")
    for label, key, cmp, target, unit in TARGETS:
        v = pooled.get(key)
        ok = v is not None and (v >= target if cmp == ">=" else v <= target)
        print(f"  {label:28s} {_fmt(v, unit):>12s}   target {cmp} {target:g} {unit:4s} {'ok' if ok else 'MISSED'}")
    print(f"  (steps true {pooled['n_true_steps']}, predicted {pooled['n_pred_steps']}, matched {pooled['n_matched']}, "
          f"hidden in gaps {pooled['n_true_hidden_in_gaps']}; IC bias {pooled['ic_bias_ms']:+.1f} ms, "
          f"p95 {pooled['ic_p95_abs_err_ms']:.1f} ms; pelvic drop L/R MAE {pooled['pelvic_drop_l_mae_deg']:.2f}/"
          f"{pooled['pelvic_drop_r_mae_deg']:.2f} deg; GCT asymmetry MAE {pooled['gct_asymmetry_mae_pct']:.2f} %; "
          f"braking MAE {pooled['braking_mae_g']:.3f} g)")
    d = summarise(by_group.get("drift", []))
    f = summarise(by_group.get("long no-drift", []) + by_group.get("hills", []) + by_group.get("stops", [])
                  + by_group.get("pace changes", []))
    rate = d.get("drift_detection_rate_90s")
    print(f"  {'drift detected <= 90 s':28s} {_fmt(rate):>12s}   target >= 0.95      "
          f"{'ok' if rate is not None and rate >= 0.95 else 'MISSED'}  "
          f"({d['drift_detected_within_90s']}/{d['drift_sessions']} sessions; delays vs 3-deg crossing "
          f"{[round(x) for x in d['drift_delays_s']]} s)")
    fa = f.get("false_alarms_per_hour")
    print(f"  {'false alarms per hour':28s} {_fmt(fa):>12s}   target <= 0.2       "
          f"{'ok' if fa is not None and fa <= 0.2 else 'MISSED'}  ({f['false_alarms']} alarms in "
          f"{f['hours_outside_drift']:.1f} h without drift: long no-drift, hills, stops, pace changes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
