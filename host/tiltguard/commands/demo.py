"""``tiltguard demo``: replay a bundled (simulated) run through the live pipeline and summarise it.

Works with no hardware and no network: it replays the session bundled with the package (or the repo's
``data/`` folder in a development checkout; simulates one if neither is there) at high speed through
exactly what ``tiltguard live`` runs -- dashboard, alerts as they happen (the buzz goes nowhere) -- then
prints the summary.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tiltguard.errors import InputError

DEMO_SESSION = "sim-demo-drift"


def bundled_session(name: str = DEMO_SESSION) -> Path | None:
    """Path of a bundled session folder: inside the installed package, else in the checkout's data/."""
    here = Path(__file__).resolve()
    for base in (here.parents[1] / "_data", here.parents[3] / "data"):
        cand = base / name
        if (cand / "session.json").exists():
            return cand
    return None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session", type=Path, help="a session folder or raw CSV to use instead of the bundled run")
    p.add_argument("-o", "--out", type=Path, help="write the analysis session folder here (default: a temp folder)")
    p.add_argument("--simulate", action="store_true", help="simulate a fresh run instead of using the bundled one")
    p.add_argument("--seed", type=int, default=7, help="seed for --simulate (default 7)")
    p.add_argument("--speed", default="max", metavar="N|max",
                   help="replay speed, a factor of real time or max (default max)")
    p.add_argument("--no-ui", action="store_true", help="plain log lines instead of the dashboard")


def _source(args) -> Path:
    if args.session is not None:
        if not args.session.exists():
            raise InputError(f"{args.session}: no such file or folder")
        return args.session
    found = None if args.simulate else bundled_session()
    if found is not None:
        return found
    from tiltguard.sim import simulate_session  # noqa: PLC0415 (only needed without bundled data)

    tmp = Path(tempfile.mkdtemp(prefix="tiltguard-demo-sim-"))
    print(f"simulating a 12-minute run with a fatigue drift (seed {args.seed}) ...")
    return simulate_session(tmp, scenario="drift", minutes=12.0, seed=args.seed)


def _fmt(v, unit="", nd=0):
    return "n/a" if v is None else f"{v:.{nd}f}{unit}"


def describe(summary: dict, alerts) -> str:
    """A short human summary of a session's analysis."""
    lines = []
    run_min = (summary.get("running_s") or 0) / 60
    lines.append(f"Running time     {run_min:.1f} min, {summary.get('n_strides', 0)} strides")
    lines.append(f"Cadence          {_fmt(summary.get('cadence_spm'), ' steps/min')}")
    lines.append(f"Contact time     {_fmt(summary.get('gct_ms'), ' ms')}")
    lines.append(f"Tilt baseline    {_fmt(summary.get('tilt_baseline_deg'), ' deg anterior', 1)} (your own early-run posture)")
    onset = summary.get("drift_onset_s")
    if onset is None:
        lines.append("Fatigue drift    none: anterior tilt stayed near your baseline")
    else:
        lines.append(f"Fatigue drift    anterior tilt began creeping up at {onset / 60:.1f} min")
    if len(alerts):
        lines.append("Alerts")
        for row in alerts.itertuples():
            lines.append(f"  {row.t_s / 60:5.1f} min  {row.kind:<20} {row.value:+.1f} deg")
    else:
        lines.append("Alerts           none")
    return "\n".join(lines)


def run(args) -> int:
    from tiltguard.formats.session import read_outputs
    from tiltguard.live.cli import live_main

    src = _source(args)
    out = args.out or Path(tempfile.mkdtemp(prefix="tiltguard-demo-"))
    if (out / "stream.tgl").exists():
        raise InputError(f"{out}: already holds a session; give a new folder with -o")
    live_args = argparse.Namespace(replay=str(src), serial=None, ble=None, speed=args.speed, session=out,
                                   config=None, no_ui=args.no_ui, sound=False, duration=None)
    print(f"tiltguard demo: replaying {src} through the live pipeline")
    sdir, summary = live_main(live_args)
    if not args.no_ui:
        print()
    result = read_outputs(sdir)
    print(describe(summary, result.alerts))
    print(f"Session folder   {sdir}")
    return 0
