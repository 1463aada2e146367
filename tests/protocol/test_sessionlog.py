"""stream.tgl: round trip, torn tails, corruption, resume, export to the raw CSV."""

import numpy as np
import pytest

from tiltguard.errors import InputError
from tiltguard.formats import sessionlog as sl
from tiltguard.formats.raw import read_raw
from tiltguard.protocol import commands, frames as fr, wire as w


def _frames(n_samples=2000, seq0=0, mode=w.MODE_COMPACT, log=False, seed=0):
    rng = np.random.default_rng(seed)
    vals = rng.integers(-3000, 3000, (n_samples, 9 if mode else 6))
    t = 1_000_000 + (seq0 + np.arange(n_samples)) * 5000
    return vals, fr.encode_data_frames(vals, seq0, t, 20000, mode, log=log)


def test_round_trip_with_mixed_frames(tmp_path):
    p = tmp_path / "stream.tgl"
    _, data = _frames()
    cmd = commands.encode("buzz", 5, pattern="alert")
    status = fr.encode_status(fr.Status(1, 90, 4000, 3, 0, 200, 10, 0, 0, 0, 123))
    everything = [cmd, *data[:50], status, *data[50:]]
    with sl.SessionLogWriter(p, start_unix_ms=1_700_000_000_000) as wr:
        for i, f in enumerate(everything):
            wr.append(f, host_unix_ms=1_700_000_000_000 + 10 * i)
    log = sl.read_sessionlog(p)
    assert log.frames == everything and log.corrupt == 0 and log.torn_tail_bytes == 0
    assert log.host_ms.tolist() == [10 * i for i in range(len(everything))]
    assert log.start_unix_ms == 1_700_000_000_000
    assert len(log.samples()) == 2000


def test_torn_tail_dropped_and_cut_on_resume(tmp_path):
    p = tmp_path / "stream.tgl"
    _, data = _frames()
    with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
        for f in data[:40]:
            wr.append(f, host_unix_ms=0)
    full = p.read_bytes()
    p.write_bytes(full[:-100])  # the host died mid-write
    log = sl.read_sessionlog(p)
    assert log.frames == data[:39] and log.torn_tail_bytes == len(data[39]) + sl.REC_OVERHEAD - 100
    with sl.SessionLogWriter(p) as wr:  # a restarted host continues the same file
        assert wr.start_unix_ms == 0 and wr.truncated_bytes > 0
        for f in data[39:]:
            wr.append(f, host_unix_ms=5)
    log = sl.read_sessionlog(p)
    assert log.frames == data and log.torn_tail_bytes == 0 and log.corrupt == 0


def test_corrupt_record_in_the_middle_is_skipped_and_counted(tmp_path):
    p = tmp_path / "stream.tgl"
    _, data = _frames()
    with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
        for f in data:
            wr.append(f, host_unix_ms=0)
    b = bytearray(p.read_bytes())
    rec = len(data[0]) + sl.REC_OVERHEAD
    b[sl.HEADER_SIZE + 10 * rec + 30] ^= 0x55
    b[sl.HEADER_SIZE + 20 * rec] ^= 0x01  # a length byte
    p.write_bytes(bytes(b))
    log = sl.read_sessionlog(p)
    assert log.corrupt == 2
    assert log.frames == [f for i, f in enumerate(data) if i not in (10, 20)]


@pytest.mark.parametrize("content", [b"", b"hello world, not a log at all", b"\x89TGL\r\n\x1a\n" + b"\x00" * 16])
def test_not_a_log_is_refused_in_one_line(tmp_path, content):
    p = tmp_path / "stream.tgl"
    p.write_bytes(content)
    with pytest.raises(InputError) as exc:
        sl.read_sessionlog(p)
    assert "\n" not in str(exc.value)


def test_export_csv_merges_live_and_backfilled_samples(tmp_path):
    vals, data = _frames(3800)
    # live stream lost frames 50..99; the backfill (log frames) brings them back, plus duplicates
    _, back = _frames(3800, log=True)
    received = data[:50] + data[100:] + back[45:105]
    p = tmp_path / "stream.tgl"
    with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
        for f in received:
            wr.append(f, host_unix_ms=0)
    out = sl.export_csv(p, tmp_path / "raw.csv")
    rec = read_raw(out)
    assert len(rec) == 3800
    np.testing.assert_allclose(rec.t_s, np.arange(3800) * 0.005, atol=2e-6)
    np.testing.assert_allclose(rec.acc_g, vals[:, 3:6] / 2048, atol=1e-6)
    np.testing.assert_allclose(rec.angles_deg, vals[:, 0:3] * 0.01, atol=1e-6)
    assert rec.gyro_dps is None
    assert rec.fs_hz == pytest.approx(200, rel=1e-3)


def test_export_of_full_mode_has_gyro(tmp_path):
    vals, data = _frames(600, mode=w.MODE_FULL)
    p = tmp_path / "stream.tgl"
    with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
        for f in data:
            wr.append(f)
    rec = sl.read_recording(p)
    np.testing.assert_allclose(rec.gyro_dps, vals[:, 6:9] / 16, atol=1e-9)


def test_log_without_samples_is_refused(tmp_path):
    p = tmp_path / "stream.tgl"
    with sl.SessionLogWriter(p, start_unix_ms=0) as wr:
        wr.append(commands.encode("start_stream", 1))
    with pytest.raises(InputError):
        sl.export_csv(p, tmp_path / "raw.csv")


def test_writer_restarts_a_file_torn_inside_its_header(tmp_path):
    p = tmp_path / "stream.tgl"
    p.write_bytes(sl.MAGIC[:5])
    _, data = _frames(100)
    with sl.SessionLogWriter(p, start_unix_ms=7) as wr:
        wr.append(data[0], host_unix_ms=8)
    log = sl.read_sessionlog(p)
    assert log.start_unix_ms == 7 and log.frames == data[:1]


def test_oversized_frames_never_reach_the_log():
    from tiltguard.protocol import serial as ser

    big = fr.seal(bytes([0x16, 1, 2, 0]) + bytes(range(1, 242)))  # a 247-byte "reply"
    assert len(big) > w.MAX_FRAME
    with pytest.raises(fr.FrameError):
        fr.decode_frame(big)
    d = ser.SerialDecoder()
    assert d.feed(ser.frame_serial(big)) == [] and d.stats()["rejected_oversize"] + d.stats()["rejected_bad_length"] == 1
