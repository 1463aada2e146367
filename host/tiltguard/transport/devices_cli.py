"""``tiltguard devices [--timeout S]``: list tiltguard clips in Bluetooth range (name, address, RSSI)."""

from __future__ import annotations

import argparse
import asyncio

from tiltguard.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="scan this long (default 5 s)")


def run(args) -> int:
    from tiltguard.transport.ble import scan

    if not args.timeout > 0:
        raise InputError(f"--timeout must be > 0 (got {args.timeout})")
    clips = asyncio.run(scan(args.timeout))
    if not clips:
        print(f"no tiltguard clip heard in {args.timeout:g} s (is it on, charged and not connected elsewhere?)")
        return 1
    print(f"{'name':<20} {'address':<20} {'RSSI':>8}")
    for c in clips:
        rssi = f"{c.rssi_dbm} dBm" if c.rssi_dbm is not None else "?"
        print(f"{c.name:<20} {c.address:<20} {rssi:>8}")
    return 0
