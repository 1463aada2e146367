"""`tiltguard download [--serial [PORT] | --ble [NAME|ADDR]] [--since ISO_DATE|SEQ] [--erase] -o DIR`."""

from __future__ import annotations

import argparse

from tiltguard.errors import TiltguardError


def add_arguments(p: argparse.ArgumentParser) -> None:
    link = p.add_mutually_exclusive_group()
    link.add_argument("--serial", nargs="?", const="", metavar="PORT",
                      help="download over USB serial (default; without PORT the clip's USB port is found)")
    link.add_argument("--ble", nargs="?", const="", metavar="NAME|ADDR",
                      help="download over Bluetooth LE (without NAME|ADDR the first clip heard)")
    p.add_argument("--since", metavar="ISO_DATE|SEQ",
                   help="only samples logged from this sample index, or from this date/time on")
    p.add_argument("--erase", action="store_true",
                   help="erase the clip's log afterwards, only if every run on it is verified on disk")
    p.add_argument("--no-analyze", action="store_true", help="do not analyse the downloaded runs")
    p.add_argument("--stall-s", type=float, default=None, metavar="S",
                   help="give up when the clip sends nothing for this long during a transfer (default 5)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder holding one session folder per run")


def run(args: argparse.Namespace) -> int:
    from tiltguard.coach import download as dl

    since = dl.parse_since(args.since)
    if args.ble is not None:
        link = ble_link(args.ble or None)
    else:
        link = dl.SerialLink(args.serial or dl.find_serial_port())
    try:
        res = dl.download(link, args.out, since=since, erase=args.erase, analyse_runs=not args.no_analyze,
                          stall_s=args.stall_s or dl.STALL_S)
    finally:
        link.close()
    partial = [r for r in res.new_runs if not r.complete]
    return 1 if partial else 0


def ble_link(target: str | None):
    """The BLE transport (tiltguard.transport.ble, shared with `live`) behind the download's link interface."""
    import importlib.util

    from tiltguard.coach import download as dl

    if importlib.util.find_spec("tiltguard.transport.ble") is None:
        raise TiltguardError("download over Bluetooth needs tiltguard.transport.ble, which this installation "
                             "lacks; connect the clip by USB and use --serial")
    from tiltguard.transport import open_transport

    return dl.TransportLink(open_transport("ble", target))
