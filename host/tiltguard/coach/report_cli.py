"""`tiltguard report SESSION -o report.html`."""

from __future__ import annotations

import argparse

from tiltguard.coach.report import write_report
from tiltguard.coach.session import add_watch_arguments, load_session, with_watch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", help="session folder")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: report.html)")
    add_watch_arguments(p)


def run(args: argparse.Namespace) -> int:
    out = write_report(with_watch(load_session(args.session), args.watch, args.watch_offset_s), args.output)
    print(f"wrote {out}")
    return 0
