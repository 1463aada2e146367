"""Run tests/firmware/mpy_app_check.py under MicroPython and decode what the fake central got."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.mpy import run_mpy
from tiltguard.protocol import ble as pble
from tiltguard.protocol import frames as fr

HERE = Path(__file__).parent


def run_check(check: str, tmp_path, seed: int = 1) -> dict:
    out = run_mpy(HERE / "mpy_app_check.py", check, str(tmp_path), str(seed), timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def decode_notifications(hexes: list[str]):
    """Reassemble BLE notifications (segments too) and decode every frame."""
    ra = pble.Reassembler()
    out = []
    for h in hexes:
        f = ra.feed(bytes.fromhex(h))
        if f is not None:
            out.append(fr.decode_frame(f))
    return out


def data_seqs(frames_) -> np.ndarray:
    seqs = [np.arange(f.seq, f.seq + f.n) for f in frames_ if isinstance(f, fr.DataFrame)]
    return np.concatenate(seqs) if seqs else np.zeros(0, int)


def replies(frames_):
    return [(f.token, f.cmd, f.err) for f in frames_ if isinstance(f, fr.Reply)]
