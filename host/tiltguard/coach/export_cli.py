"""`tiltguard export SESSION [--what ...] [--format ...] [-o FILE]`."""

from __future__ import annotations

import argparse

from tiltguard.coach.export import FORMATS, WHATS, export, sidecar_path
from tiltguard.coach.session import add_watch_arguments, load_session, with_watch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", help="session folder")
    p.add_argument("--what", choices=WHATS, default="strides", help="table to export (default: strides)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="csv",
                   help="csv (default), parquet, xlsx (spreadsheet-safe workbook) or fit (per-stride activity)")
    p.add_argument("-o", "--output", help="output file (default: SESSIONNAME-WHAT.FORMAT here)")
    add_watch_arguments(p)


def run(args: argparse.Namespace) -> int:
    session = with_watch(load_session(args.session), args.watch, args.watch_offset_s)
    out = export(session, args.what, args.fmt, args.output)
    extra = "" if args.fmt == "fit" else f" (metadata: {sidecar_path(out)})"
    print(f"wrote {out}{extra}")
    return 0
