"""Host cost of the BLE transport: unmodified bleak + BleTransport against the fake org.bluez (tests/e2e).

Streams 60 s of 200 Hz full samples (firmware-encoded frames) at N x real time and measures, on the host's
event-loop thread only (the fake runs in another thread, dbus-daemon in its own process): wall time, CPU
time, and CPU per hour of 200 Hz streaming as a fraction of the hour. Baseline, same run: decoding the same
frames with ``protocol.frames.decode_frame`` alone (what any transport must do).

    python benchmarks/ble_transport.py [--seconds 60] [--speed 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.fake_bluez import ADDRESS, ClipSim, FakeBluez, PrivateBus, firmware_frames  # noqa: E402
from tiltguard.protocol import commands  # noqa: E402
from tiltguard.protocol import frames as fr  # noqa: E402
from tiltguard.transport.base import Received  # noqa: E402
from tiltguard.transport.ble import BleTransport  # noqa: E402

RATE = 200


async def receive(n_samples: int, use_start_notify: bool) -> tuple[float, float, int]:
    t = BleTransport(ADDRESS, use_start_notify=use_start_notify)
    got = 0
    async with t:
        it = t.frames()
        c0 = w0 = None
        async for item in it:
            if not isinstance(item, Received):
                if item.kind == "connected":
                    await t.send_command(commands.encode("start_stream", 1))
                continue
            if isinstance(item.frame, fr.DataFrame):
                if c0 is None:
                    c0, w0 = time.thread_time(), time.perf_counter()
                got += item.frame.n
                if got >= n_samples:
                    break
        await it.aclose()
    return time.perf_counter() - w0, time.thread_time() - c0, got


def run_case(bus, frames, speed, mtu, start_notify, n):
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
    clip = ClipSim(frames, speed=speed, mtu=mtu)
    with FakeBluez(bus.address, clip, signals_per_tick=10**6 if not start_notify else 24) as fake:
        wall, cpu, got = asyncio.run(receive(n, start_notify))
    return wall, cpu, got, fake.notifications


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=20.0)
    a = ap.parse_args()
    vals = np.random.default_rng(0).integers(-3000, 3000, (int(a.seconds * RATE), 9)).astype("<i2")
    n = len(vals) - 12 * 20  # leave the tail: the stream's last frames need not arrive for the figure
    bus = PrivateBus()
    try:
        rows = []
        for mtu, start_notify in ((247, False), (247, True), (23, False)):
            frames = firmware_frames(vals, rate_hz=RATE, mtu=mtu)
            t0 = time.thread_time()
            for f in frames.live:
                fr.decode_frame(f)
            base = time.thread_time() - t0
            wall, cpu, got, notes = run_case(bus, frames, a.speed, mtu, start_notify, n)
            data_s = got / RATE
            rows.append((mtu, "StartNotify" if start_notify else "AcquireNotify", got, notes, wall, data_s / wall,
                         cpu, cpu / data_s * 100, cpu / max(base * got / len(vals), 1e-9)))
        print(f"{a.seconds:g} s of 200 Hz full samples streamed at {a.speed:g} x real time through the fake org.bluez")
        print(f"{'MTU':>4} {'notify':<13} {'samples':>8} {'notifs':>7} {'wall s':>7} {'x real':>7} "
              f"{'host CPU s':>10} {'CPU % of hour':>13} {'x decode-only':>13}")
        for r in rows:
            print(f"{r[0]:>4} {r[1]:<13} {r[2]:>8} {r[3]:>7} {r[4]:>7.2f} {r[5]:>7.1f} {r[6]:>10.3f} "
                  f"{r[7]:>13.3f} {r[8]:>13.1f}")
    finally:
        bus.close()


if __name__ == "__main__":
    main()
