"""Protocol speed and size figures (prints them; compare within one run, not across machines).

    python benchmarks/protocol_speed.py [--minutes 60]

Host: decoding one hour of 200 Hz compact frames with the vectorised decoder vs a per-frame
decode_frame loop; serial de-framing; session-log write/read; bytes per sample.
Firmware (MicroPython unix port): encode + CRC + COBS per sample with frames.py vs a naive
encoder (float scaling, bytes concatenation), and heap bytes per sample for each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.mpy when run as a script
from tests.mpy import run_mpy_code  # noqa: E402
from tiltguard.formats import sessionlog as sl
from tiltguard.protocol import frames as fr
from tiltguard.protocol import serial as ser
from tiltguard.protocol import wire as w


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


FW = r"""
import time, gc, struct, array
import frames, cobs, wire
N = 200 * 60
out = bytearray(wire.SERIAL_MAX_ENCODED)
e = frames.DataEncoder(wire.MODE_COMPACT, 247)
def ours():
    i = 0
    while i < N:
        e.begin(i, 0, i * 5000 & 0xFFFFFF, 20000)
        while True:
            full = e.add(i & 0x3FF, -200, 300, 2048, -5, 7)
            i += 1
            if full or i >= N:
                break
        f = e.finish()
        cobs.frame_into(f, len(f), out)

def naive_crc(b):
    c = 0xFFFF
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c

def naive():
    # what one writes first: floats in, scale per sample, build bytes by concatenation
    i = 0
    while i < N:
        body = struct.pack("<BI3HBH", 0x11, i, 0, 0, 0, 19, 20000)
        for k in range(19):
            v = (i & 0x3FF) * 0.01
            body += struct.pack("<6h", int(v / 0.01), -200, 300, int(1.0 * 2048), -5, 7)
            i += 1
        body += struct.pack("<H", naive_crc(body))
        enc = bytearray()
        for part in body.split(b"\x00"):
            enc.append(len(part) + 1)
            enc += part
        _ = b"\x00" + bytes(enc) + b"\x00"

for name, fn in (("ours", ours), ("naive", naive)):
    fn()
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    t0 = time.ticks_us()
    fn()
    dt = time.ticks_diff(time.ticks_us(), t0)
    m1 = gc.mem_alloc()
    gc.enable()
    print(name, dt / N, (m1 - m0) / N)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    args = ap.parse_args()
    n = int(args.minutes * 60 * 200)
    rng = np.random.default_rng(0)
    vals = rng.integers(-3000, 3000, (n, 6))
    frames = fr.encode_data_frames(vals, 0, np.arange(n) * 5000, 20000, w.MODE_COMPACT, 247)
    print(f"stream: {args.minutes:g} min at 200 Hz compact = {n} samples in {len(frames)} frames (MTU 247)")

    t_vec, batch = timed(lambda: fr.to_arrays(fr.decode_data_frames(frames)))
    def per_frame():  # the obvious alternative: decode each frame, then stack
        fs = [fr.decode_frame(f) for f in frames]
        return np.concatenate([f.values for f in fs]), np.concatenate([f.seq + np.arange(f.n) for f in fs])

    t_loop, _ = timed(per_frame, repeat=1)
    print(f"host decode, vectorised decode_data_frames+to_arrays: {t_vec * 1e3:.0f} ms "
          f"({t_vec / n * 1e9:.0f} ns/sample); per-frame decode_frame loop + stack: {t_loop * 1e3:.0f} ms; "
          f"ratio {t_loop / t_vec:.1f}x")
    blob = b"".join(ser.frame_serial(f) for f in frames)
    t_ser, _ = timed(lambda: ser.SerialDecoder().feed(blob), repeat=1)
    print(f"host serial de-frame+decode: {t_ser * 1e3:.0f} ms for {len(blob) / 1e6:.1f} MB "
          f"({t_ser / (args.minutes * 60) * 100:.3f} % of real time)")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "stream.tgl"

        def write():
            with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
                for i, f in enumerate(frames):
                    wr.append(f, host_unix_ms=i * 95)

        p.unlink(missing_ok=True)
        t_w, _ = timed(write, repeat=1)
        size = p.stat().st_size
        t_r, rec = timed(lambda: sl.read_recording(p), repeat=1)
        print(f"session log: {size / n:.2f} bytes/sample ({size / 1e6 * 60 / args.minutes:.1f} MB per hour), "
              f"write {t_w * 1e3:.0f} ms, read+assemble {t_r * 1e3:.0f} ms")
    air = (3 + 244) / 19
    print(f"on air, compact 200 Hz MTU 247: {air:.2f} bytes/sample (budget 13)")

    out = run_mpy_code(FW, timeout=600).stdout.split()
    ours_us, ours_b, naive_us, naive_b = float(out[1]), float(out[2]), float(out[4]), float(out[5])
    print(f"firmware (unix port) encode+CRC+COBS: frames.py {ours_us:.2f} us/sample, {ours_b:.1f} heap B/sample; "
          f"naive {naive_us:.2f} us/sample, {naive_b:.1f} heap B/sample; speed-up {naive_us / ours_us:.1f}x")


if __name__ == "__main__":
    main()
