"""Streaming decoder counters and sample assembly (dedupe, backfill, wrap, reboot)."""

import numpy as np
import pytest

from tiltguard.protocol import frames as fr, wire as w
from tiltguard.protocol.stream import SeqTracker, StreamDecoder


def _frames(n, seq0=0, t0=10**6, log=False):
    vals = (np.arange(n * 6).reshape(n, 6) % 3000).astype(np.int64)
    return fr.encode_data_frames(vals, seq0, t0 + np.arange(n) * 5000, 20000, w.MODE_COMPACT, log=log)


def test_decoder_counts_loss_reordering_and_backfill():
    f = _frames(19 * 10)
    dec = StreamDecoder()
    for i in [0, 1, 3, 2, 4, 7, 8, 9]:  # 2 late, 5 and 6 lost
        assert dec.feed(f[i]) is not None
    s = dec.stats()
    assert s["samples_lost"] == 38 and s["samples_reordered"] == 19 and s["frames_ok"] == 8
    assert dec.seq.missing == [[95, 133]]
    for g in _frames(19 * 10, log=True)[5:7]:
        dec.feed(g)
    dec.feed(f[9])
    s = dec.stats()
    assert s["samples_lost"] == 0 and s["samples_backfilled"] == 38 and s["samples_duplicate"] == 19
    dec.feed(b"\x11garbage")
    assert dec.stats()["rejected_truncated"] + dec.stats()["rejected_bad_crc"] == 1


def test_seq_wraps_at_u32():
    t = SeqTracker()
    t.add(2**32 - 19, 19)
    t.add(19, 19)  # frame 0..18 after the wrap lost
    assert t.lost == 19 and t.missing == [[2**32, 2**32 + 19]]


def test_to_arrays_sorts_dedupes_and_unwraps():
    f = _frames(19 * 6, seq0=2**32 - 38)
    b = fr.decode_data_frames([f[3], f[0], f[1], f[2], f[1], f[5], f[4]])
    a = fr.to_arrays(b)
    assert len(a["seq"]) == 19 * 6
    assert (np.diff(a["seq"]) == 1).all() and a["seq"][0] == 2**32 - 38
    np.testing.assert_allclose(np.diff(a["t_s"]), 0.005)


def test_reboot_reanchors_time():
    before = _frames(95, seq0=0, t0=50 * 10**6)
    after = _frames(95, seq0=95, t0=2 * 10**6)  # clock restarted, seq continued
    a = fr.to_arrays(fr.decode_data_frames(before + after))
    assert (np.diff(a["t_s"]) > 0).all()
    np.testing.assert_allclose(np.diff(a["t_s"]), 0.005, atol=1e-9)


def test_missing_angles_become_nan():
    vals = np.zeros((3, 6), np.int64)
    vals[1, :3] = w.ANGLE_MISSING
    f = fr.encode_data(0, 0, 20000, vals, w.MODE_COMPACT)
    a = fr.to_arrays(fr.decode_data_frames([f]))
    assert np.isnan(a["angles_deg"][1]).all() and not np.isnan(a["angles_deg"][[0, 2]]).any()


def test_reboot_uses_host_receive_times():
    before = _frames(95, seq0=0, t0=50 * 10**6)
    after = _frames(95, seq0=70_000, t0=2 * 10**6)  # rebooted: index jumped, clock restarted
    host = [100 * i for i in range(5)] + [30_000 + 100 * i for i in range(5)]  # 29.6 s later
    a = fr.to_arrays(fr.decode_data_frames(before + after, host_ms=host))
    jump = np.diff(a["t_s"])
    assert (jump > 0).all()
    assert jump[94] == pytest.approx(29.6, abs=1e-6)


def test_small_overlap_between_frames_stays_increasing():
    f1 = fr.encode_data(0, 1_000_000, 20000, np.zeros((19, 6)), w.MODE_COMPACT)
    f2 = fr.encode_data(19, 1_000_000 + 18 * 5000 - 30, 20000, np.zeros((19, 6)), w.MODE_COMPACT)
    a = fr.to_arrays(fr.decode_data_frames([f1, f2]))
    assert (np.diff(a["t_s"]) > 0).all() and len(a["t_s"]) == 38


def test_abandon_missing_range():
    t = SeqTracker()
    t.add(0, 19)
    t.add(70_000, 19)  # a reboot jumped the index
    assert t.lost == 70_000 - 19
    assert t.abandon(19, 70_000) == 70_000 - 19
    assert t.lost == 0 and t.abandoned == 70_000 - 19
