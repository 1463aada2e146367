"""Byte budgets from the issue, measured on real encoded frames (not just the table in PROTOCOL.md)."""

import numpy as np
import pytest

from tiltguard.formats import sessionlog as sl
from tiltguard.protocol import ble, frames as fr, wire as w


def _stream(seconds: float, mode: int, mtu: int, rate: int = 200) -> list[bytes]:
    n = int(seconds * rate)
    vals = np.random.default_rng(3).integers(-3000, 3000, (n, 9 if mode else 6))
    t = (np.arange(n) * 1e6 / rate).astype(np.int64)
    return fr.encode_data_frames(vals, 0, t, w.period_q(rate), mode, mtu)


def _air_bytes_per_sample(mode: int, mtu: int) -> float:
    frames = _stream(60, mode, mtu)[:-1]  # steady state: the last, partial frame is left out
    notes = [n for f in frames for n in ble.segment(f, mtu)]
    assert all(len(n) <= mtu - w.ATT_HEADER for n in notes)
    samples = sum(f[11] for f in frames)
    return sum(len(n) + w.ATT_HEADER for n in notes) / samples


def test_compact_200hz_mtu247_costs_at_most_13_bytes_per_sample_on_air():
    cost = _air_bytes_per_sample(w.MODE_COMPACT, 247)
    assert cost <= 13.0
    assert cost == pytest.approx(247 / 19)  # ATT 3 + header 14 + 19 x 12 + CRC 2


@pytest.mark.parametrize("mtu", [23, 27, 31, 64, 100, 185, 247])
@pytest.mark.parametrize("mode", [w.MODE_COMPACT, w.MODE_FULL])
def test_every_mtu_works(mtu, mode):
    frames = _stream(2, mode, mtu)
    r = ble.Reassembler()
    out = [x for f in frames for n in ble.segment(f, mtu) if (x := r.feed(n)) is not None]
    assert out == frames
    assert len(fr.decode_data_frames(out)) == 400
    cost = _air_bytes_per_sample(mode, mtu) if mtu in (23, 247) else None
    if cost is not None:
        assert cost < 25


def test_sessionlog_costs_at_most_20_bytes_per_sample(tmp_path):
    for mode, limit in ((w.MODE_COMPACT, 13.3), (w.MODE_FULL, 20.0)):
        p = tmp_path / f"m{mode}.tgl"
        frames = _stream(300, mode, 247)
        with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
            for i, f in enumerate(frames):
                wr.append(f, host_unix_ms=i * 60)
        per_sample = (p.stat().st_size - sl.HEADER_SIZE) / (300 * 200)
        assert per_sample <= limit <= 20.0, (mode, per_sample)
