"""Logged runs downloaded over the serial link: `micropython firmware/main.py` logs three runs
(three boots), the last one torn by a power cut, then serves list_logs/download_log over a pty."""

import os
import struct
import subprocess

import numpy as np

from tests.firmware.test_fw_serial import _clip, _collect
from tests.mpy import FIRMWARE, micropython_exe, mpy_env
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import serial as pserial
from tiltguard.protocol import wire


def _log_run(tmp_path, seconds):
    env = mpy_env()
    env.update({
        "TILTGUARD_LINK": "none", "TILTGUARD_RECORD": "1", "TILTGUARD_RUN_S": str(seconds),
        "TILTGUARD_LOG_DIR": str(tmp_path / "log"), "TILTGUARD_CONFIG": str(tmp_path / "config.json"),
        "TILTGUARD_FAKE_SPEED": "20", "TILTGUARD_LINGER_S": "0",
    })
    subprocess.run([micropython_exe(), str(FIRMWARE / "main.py")], env=env, check=True, timeout=60,
                   capture_output=True)


def _done(raw):
    # EV_DOWNLOAD_DONE ends a download
    return any(f[0] == 0x18 and f[1] == wire.EV_DOWNLOAD_DONE for f in raw[-4:])


def _ask(port, proc, de, *cmds, wait_s=30):
    for c in cmds:
        port.write(pserial.frame_serial(c))
    raw, _ = _collect(port, proc, wait_s, stop=_done, de=de)  # one deframer: no frame is cut in two
    out, bad = [], []
    for f in raw:
        try:
            out.append(fr.decode_frame(f))
        except fr.FrameError:
            bad.append(f)  # a torn record the clip set aside at boot is sent as it is; its CRC fails
    return out, bad


def test_three_runs_download_with_a_torn_tail_and_resume(tmp_path):
    for seconds in (6, 4, 5):
        _log_run(tmp_path, seconds)
    segs = sorted((tmp_path / "log").glob("*.seg"))
    runs = sorted({p.name[:5] for p in segs})
    assert len(runs) == 3
    newest = segs[-1]
    size = newest.stat().st_size
    os.truncate(newest, size - 128 + 20)  # power cut 20 bytes into the last record: its samples are torn

    with _clip(tmp_path) as (proc, port):
        de = pserial.Deframer()
        got, bad = _ask(port, proc, de, commands.encode("list_logs", 1),
                        commands.encode("download_log", 2, from_seq=0))
        got2, bad2 = _ask(port, proc, de, commands.encode("download_log", 3, from_seq=1500, count=400))
    lst = next(f for f in got if isinstance(f, fr.Reply) and f.token == 1)
    first, end, lost, nseg, fill, mode, rate = struct.unpack("<IIIHBBH", lst.payload)
    assert (first, lost, mode, rate) == (0, 0, 0, 200)
    # the three runs are back to back in one sequence space: 6 + 4 + 5 s at 200 Hz, minus the torn record
    assert abs(end - 15 * 200) <= 3 * 40
    dl = next(f for f in got if isinstance(f, fr.Reply) and f.token == 2)
    assert dl.err == 0 and struct.unpack("<II", dl.payload) == (0, end)
    data = [f for f in got if isinstance(f, fr.DataFrame)]
    assert data and all(f.is_log for f in data)
    done = [f for f in got if isinstance(f, fr.Event) and f.code == wire.EV_DOWNLOAD_DONE]
    assert len(done) == 1 and done[0].value == sum(f.n for f in data)
    batch = fr.decode_data_frames([fr.encode_frame(f) for f in data])
    assert np.array_equal(batch.seq, np.arange(0, end))  # verified by CRC, nothing missing or doubled
    # each boot restarts the device clock: two backward jumps split the three runs
    assert int((np.diff(batch.t_us) < 0).sum()) == 2
    # the torn record reaches the host as it is on flash, so the host reports it (its CRC fails)
    assert len(bad) == 1 and bad[0][0] == 0x13 and int.from_bytes(bad[0][1:5], "little") == end
    assert bad2 == []
    # resumed download: exactly the records that hold samples [1500, 1900)
    part = [f for f in got2 if isinstance(f, fr.DataFrame)]
    seqs = np.concatenate([np.arange(f.seq, f.seq + f.n) for f in part])
    assert seqs[0] <= 1500 < seqs[0] + 9 and 1899 <= seqs[-1] < 1899 + 9
