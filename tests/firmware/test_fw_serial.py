"""The firmware's serial link over a real pseudo-terminal: `micropython firmware/main.py` on one
end (fake IMU, sped up), pyserial + the host deframer on the other."""

import contextlib
import json
import os
import select
import struct
import subprocess
import time
import tty

import numpy as np
import serial

from tests.mpy import FIRMWARE, micropython_exe, mpy_env
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import serial as pserial
from tiltguard.protocol import wire


HEAP = os.environ.get("TG_HEAP", "2M")


@contextlib.contextmanager
def _clip(tmp_path, **env_extra):
    """The firmware running on a pty: yields (process, host-side port); killed on the way out if still up."""
    master, slave = os.openpty()
    tty.setraw(slave)
    env = mpy_env()
    env.update({
        "TILTGUARD_SERIAL": f"fd:{master}",
        "TILTGUARD_LINK": "serial",
        "TILTGUARD_LOG_DIR": str(tmp_path / "log"),
        "TILTGUARD_CONFIG": str(tmp_path / "config.json"),
        "TILTGUARD_FAKE_SPEED": "10",
        **env_extra,
    })
    proc = subprocess.Popen([micropython_exe(), "-X", "heapsize=" + HEAP, str(FIRMWARE / "main.py")], env=env,
                            pass_fds=(master,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(master)
    port = serial.Serial(os.ttyname(slave), timeout=0)
    try:
        yield proc, port
    finally:
        port.close()
        os.close(slave)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _collect(port, proc, until_s, stop=None, de=None):
    """Frames read until ``until_s`` passes, the process ends, or ``stop(frames)`` is true."""
    de = de or pserial.Deframer()
    got = []
    end = time.monotonic() + until_s
    while time.monotonic() < end and not (stop and stop(got)):
        r, _, _ = select.select([port.fileno()], [], [], 0.1)
        if r:
            try:
                data = port.read(4096)
            except serial.SerialException:
                break
            got.extend(de.feed(data))
        elif proc.poll() is not None:
            break
    return got, de


def test_serial_round_trip_with_cobs(tmp_path):
    # 2x speed: the synthetic run's 3 s of standing still must cover boot + the calibration
    with _clip(tmp_path, TILTGUARD_RUN_S="8", TILTGUARD_FAKE_SPEED="2") as (proc, port):
        time.sleep(0.2)
        port.write(b"garbage\x00\x01\x02" + pserial.frame_serial(commands.encode("get_info", 1)))
        # the fake IMU's synthetic run stands still for its first 3 s: calibrate on it, then stream
        port.write(pserial.frame_serial(commands.encode("calibrate", 3, still_s=1)))
        port.write(pserial.frame_serial(commands.encode("start_stream", 2)))
        raw, de = _collect(port, proc, 20)
        proc.wait(timeout=20)
    assert proc.returncode == 0, proc.stderr.read().decode()
    got = [fr.decode_frame(f) for f in raw]
    reps = [(f.token, f.cmd, f.err) for f in got if isinstance(f, fr.Reply)]
    assert reps[:3] == [(1, wire.CMD_GET_INFO, 0), (3, wire.CMD_CALIBRATE, 0), (2, wire.CMD_START_STREAM, 0)]
    cal = [f for f in got if isinstance(f, fr.Event) and f.code == wire.EV_CALIBRATION_DONE]
    assert len(cal) == 1 and cal[0].value == wire.ERR_OK
    assert (tmp_path / "config.json").read_text().count("mount_q") == 1  # stored atomically
    start = next(f for f in got if isinstance(f, fr.Reply) and f.token == 2)
    next_seq = int.from_bytes(start.payload[:4], "little")
    data = [f for f in got if isinstance(f, fr.DataFrame)]
    seqs = np.concatenate([np.arange(f.seq, f.seq + f.n) for f in data])
    assert seqs[0] == next_seq
    assert np.array_equal(seqs, np.arange(next_seq, next_seq + len(seqs)))  # nothing lost or doubled
    assert 0 <= len(seqs) - (8 * 200 - next_seq) < 32  # the run stops after 8 s of IMU time (one FIFO read)
    assert max(f.n for f in data) == wire.samples_per_frame(247, 0)  # serial uses MTU-247 sizing
    # device timestamps come from the IMU period, not the loop: exactly 5000 us apart at 200 Hz
    batch = fr.decode_data_frames(raw)
    assert np.allclose(np.diff(batch.t_us), 5000, atol=1)
    # angles are sent once calibrated (wire.ANGLE_MISSING before): standing still reads ~0 deg
    after = batch.seq >= cal[0].seq
    assert np.all(batch.values[after, :3] != wire.ANGLE_MISSING)
    assert np.all(batch.values[~after, :3] == wire.ANGLE_MISSING)
    still = after & (batch.t_us < 2.95e6)
    assert still.sum() > 20 and np.abs(batch.values[still, 0]).max() < 100  # < 1 deg tilt at rest


def test_ten_minute_stream_decodes_with_zero_loss(tmp_path):
    """10 minutes at 200 Hz (sped up 20x) streamed from boot (TILTGUARD_STREAM=1): every sample arrives."""
    with _clip(tmp_path, TILTGUARD_RUN_S="600", TILTGUARD_STREAM="1", TILTGUARD_FAKE_SPEED="20") as (proc, port):
        raw, de = _collect(port, proc, 60)
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read().decode()
    batch = fr.decode_data_frames(raw)
    assert sum(batch.rejects.values()) == 0 and de.rejects == 0
    status = [fr.decode_frame(f) for f in raw if f[0] == 0x17]
    final = status[-1]  # sent after the last data frame
    assert batch.seq[-1] + 1 == final.next_seq >= 600 * 200
    # the link lost nothing: every index is there once, except the samples the clip itself reports
    # as dropped (FIFO overflows when this busy machine deschedules the 20x-sped-up process)
    assert np.all(np.diff(batch.seq) >= 1)
    assert len(batch) + final.dropped == final.next_seq - batch.seq[0]
    assert final.dropped <= 0.1 * final.next_seq
    # across every jump, device time moves on by exactly the missing samples
    assert np.allclose(np.diff(batch.t_us) / np.diff(batch.seq), 5000, atol=1)


def test_link_switch_takes_effect_at_once(tmp_path):
    """set_config link=BLE over serial: the reply still arrives on serial, then serial goes quiet
    (the BLE link opened instead, here on the fake bluetooth module)."""
    with _clip(tmp_path) as (proc, port):
        time.sleep(0.2)
        port.write(pserial.frame_serial(commands.encode("set_config", 1, key="link", value=wire.LINK_BLE)))
        first, _ = _collect(port, proc, 10, stop=lambda g: any(f[0] == 0x16 for f in g))
        time.sleep(0.5)
        port.write(pserial.frame_serial(commands.encode("get_status", 2)))
        later, _ = _collect(port, proc, 1.5)
    reps = [fr.decode_frame(f) for f in first if f[0] == 0x16]
    assert [(r.token, r.cmd, r.err) for r in reps] == [(1, wire.CMD_SET_CONFIG, 0)]
    assert not [f for f in later if f[0] == 0x16]  # no reply on serial any more
    assert '"link": 0' in (tmp_path / "config.json").read_text()  # and it sticks across boots


def test_host_that_dies_mid_stream_is_backfilled(tmp_path):
    """The host stops reading (killed) while the clip streams over a pty; a new host later sends
    start_stream and download_log from the last sample it has: nothing is missing."""
    with _clip(tmp_path, TILTGUARD_FAKE_SPEED="2") as (proc, port):
        time.sleep(0.2)
        port.write(pserial.frame_serial(commands.encode("start_stream", 1)))
        before, _ = _collect(port, proc, 1.5)
        time.sleep(8)  # dead host: nobody reads, the pty buffer fills, the clip must not stall
        de = pserial.Deframer()
        port.write(pserial.frame_serial(commands.encode("start_stream", 2)))
        seen = data_seq_max(before)
        port.write(pserial.frame_serial(commands.encode("download_log", 3, from_seq=seen + 1)))
        after, _ = _collect(port, proc, 20, stop=lambda g: any(f[0] == 0x18 and f[1] == wire.EV_DOWNLOAD_DONE
                                                               for f in g), de=de)
        tail, _ = _collect(port, proc, 0.5, de=de)
    frames_ = [fr.decode_frame(f) for f in before + after + tail if f[0] != 0x00]
    reps = {f.token: f for f in frames_ if isinstance(f, fr.Reply)}
    assert reps[2].err == 0 and reps[3].err == 0
    restart = int.from_bytes(reps[2].payload[:4], "little")
    assert restart > seen + 2000  # the clip went on sampling while the host was gone
    first, count = struct.unpack("<II", reps[3].payload)
    assert count > 500  # ...and logged what the link could no longer take (the link counted as lost)
    data = [f for f in frames_ if isinstance(f, fr.DataFrame)]
    seqs = np.unique(np.concatenate([np.arange(f.seq, f.seq + f.n) for f in data]))
    missing = np.setdiff1d(np.arange(seqs[0], seqs[-1] + 1), seqs)
    logged = [(f.seq, f.n) for f in data if f.is_log]
    assert missing.size == 0, (missing, seen, restart, logged[:2], logged[-2:], reps[3].payload)
    assert seqs[-1] > restart  # and the live stream resumed


def data_seq_max(raw):
    return max(f.seq + f.n - 1 for f in (fr.decode_frame(x) for x in raw) if isinstance(f, fr.DataFrame))


# -- the same backfill, deterministic (manual IMU clock, the app driven tick by tick) --------------

def _backfill(tmp_path, check):
    from tests.mpy import run_mpy

    out = run_mpy(FIRMWARE.parent / "tests" / "firmware" / "mpy_app_check.py", check, str(tmp_path), "1",
                  timeout=120)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    frames_ = [fr.decode_frame(bytes.fromhex(h)) for h in r["frames"]]
    reps = {f.token: f for f in frames_ if isinstance(f, fr.Reply)}
    data = [f for f in frames_ if isinstance(f, fr.DataFrame)]
    return r, reps, data


def _seqs(data):
    return np.concatenate([np.arange(f.seq, f.seq + f.n) for f in data])


def test_backfill_includes_the_samples_the_log_writer_still_holds(tmp_path):
    """The host comes back 37 ms after the log writer last ran (samples unpacked, a partial record
    pending) and its link takes the whole download before the writer runs again: the reply counts up
    to the restart point and every one of those samples arrives (the download waits for the writer)."""
    r, reps, data = _backfill(tmp_path, "backfill_fast")
    unpacked, partial, committed_end, next_seq = r["pending"]
    assert unpacked > 0 and partial > 0 and committed_end < next_seq  # the case that lost samples
    assert reps[2].err == 0 and reps[3].err == 0
    restart = int.from_bytes(reps[2].payload[:4], "little")
    first, count = struct.unpack("<II", reps[3].payload)
    assert first + count >= restart > committed_end  # promised up to the restart, not the last record
    seqs = np.unique(_seqs(data))
    assert np.array_equal(seqs, np.arange(seqs[0], seqs[-1] + 1))  # nothing missing...
    assert seqs[-1] > restart + 100  # ...and the live stream resumed
    logged = _seqs([f for f in data if f.is_log])
    assert logged.size == np.unique(logged).size and logged.max() < first + count + 9  # once, bounded
    assert not r["download_left"]


def test_backfill_while_the_log_writer_goes_on(tmp_path):
    """A slow link (1 frame per tick, the writer logs 1.1 records per tick): blocks reach flash and
    segments roll over while the download is read; no record is skipped or sent twice."""
    r, reps, data = _backfill(tmp_path, "backfill_slow")
    assert r["writes_during"] >= 4 and not r["download_left"]
    restart = int.from_bytes(reps[2].payload[:4], "little")
    first, count = struct.unpack("<II", reps[3].payload)
    assert first + count >= restart
    seqs = np.unique(_seqs(data))
    assert np.array_equal(seqs, np.arange(seqs[0], seqs[-1] + 1)) and seqs[-1] > restart + 1000
    logged = _seqs([f for f in data if f.is_log])
    assert logged.size == np.unique(logged).size
    assert np.isin(np.arange(first, restart), logged).all()


def test_log_read_follows_the_writer(tmp_path):
    """firmware/log.py Log.read consumed while records keep being committed (random pacing, block
    writes, segment roll-over and rotation between two yields): the requested range comes whole, once."""
    from tests.mpy import run_mpy

    out = run_mpy(FIRMWARE.parent / "tests" / "firmware" / "mpy_log_check.py", "read_while_writing",
                  str(tmp_path), "3", timeout=120)
    trials = json.loads(out.stdout.strip().splitlines()[-1])
    assert [t for t in trials if not t["ok"]] == []
    assert sum(t["flushes"] for t in trials) > 2 * len(trials) and sum(t["rotations"] for t in trials) > 0
