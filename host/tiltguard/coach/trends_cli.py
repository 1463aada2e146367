"""`tiltguard trends DIR [-o OUT]`."""

from __future__ import annotations

import argparse

from tiltguard.coach.trends import write_trends


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="folder holding session folders (searched recursively)")
    p.add_argument("-o", "--output", default=".", help="folder for trends.csv and trends.html (default: here)")
    p.add_argument("--no-html", action="store_true", help="write trends.csv only")


def run(args: argparse.Namespace) -> int:
    csv, page = write_trends(args.dir, args.output, html=not args.no_html)
    print(f"wrote {csv}" + (f" and {page}" if page else ""))
    return 0
