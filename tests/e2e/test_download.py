"""`tiltguard download` against the real firmware (firmware/main.py under the MicroPython unix port) over a pty.

The clip's flash log folder is filled with three runs by the firmware's own log.py (download_make_log.py);
the firmware then boots on one end of a pseudo-terminal and the CLI downloads over the other end with
pyserial. Two last records are torn: run 3's by a power cut (the newest segment: the clip's boot recovery
cuts it off and sets it aside) and run 2's on flash (an older segment, read as it is).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.mpy import FIRMWARE, micropython_exe, mpy_env, run_mpy
from tiltguard import cli
from tiltguard.coach import download as dl
from tiltguard.formats.session import read_outputs, read_session_meta
from tiltguard.formats.sessionlog import read_recording, read_sessionlog
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.protocol.serial import SerialDecoder, frame_serial

HERE = Path(__file__).parent
PERIOD_Q = w.period_q(200)  # 20000 quarter-us: 5 ms


@dataclass
class RunSpec:
    seq0: int
    t0_us: int
    mode: int
    values: np.ndarray  # (n, 6|9) int16 in wire units

    @property
    def end(self) -> int:
        return self.seq0 + len(self.values)

    @property
    def t_end_us(self) -> int:
        return self.t0_us + len(self.values) * PERIOD_Q // 4


def sim_values(seconds: float, seed: int, mode: int) -> np.ndarray:
    """Simulated running in wire units: truth angles as the device angles, accelerometer, gyro."""
    from tiltguard.sim import preset, simulate

    res = simulate(preset("steady", seed=seed, minutes=seconds / 60, rate_hz=200))
    rec = res.recording()
    n = int(seconds * 200)
    ang = np.round(res.angles_deg[res.keep][:n] / w.ANGLE_LSB_DEG)
    acc = np.round(rec.acc_g[:n] / w.ACC_LSB_G)
    cols = [ang, acc] + ([np.round(rec.gyro_dps[:n] / w.GYRO_LSB_DPS)] if mode == w.MODE_FULL else [])
    return np.clip(np.hstack(cols), -32767, 32767).astype("<i2")


def write_log(log_dir: Path, runs: list[RunSpec], spec_path: Path) -> list[dict]:
    """Write the runs with the firmware's log.py under MicroPython; returns each run's segment files."""
    parts = [b"TGRS", struct.pack("<H", len(runs))]
    for r in runs:
        parts.append(struct.pack("<IIIHBI", r.seq0, r.t0_us >> 24, r.t0_us & 0xFFFFFF, PERIOD_Q, r.mode, len(r.values)))
        parts.append(np.ascontiguousarray(r.values, "<i2").tobytes())
    spec_path.write_bytes(b"".join(parts))
    out = run_mpy(HERE / "download_make_log.py", str(log_dir), str(spec_path), timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


class FirmwareOnPty:
    """firmware/main.py under the unix port, its serial link on the master side of a pty."""

    def __init__(self, work: Path, log_dir: Path):
        self.master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open so the pty lives as long as the firmware does
        env = mpy_env()
        env.update(TILTGUARD_SERIAL=f"fd:{self.master}", TILTGUARD_LOG_DIR=str(log_dir),
                   TILTGUARD_CONFIG=str(work / "config.json"), TILTGUARD_LINK="serial")
        self.proc = subprocess.Popen(
            [micropython_exe(), "-X", "heapsize=8M", str(FIRMWARE / "main.py")], env=env, cwd=str(FIRMWARE),
            pass_fds=[self.master], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 20) -> None:
        import serial

        end = time.monotonic() + timeout_s
        with serial.Serial(self.path, 115200, timeout=0.2) as s:
            dec = SerialDecoder()
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise AssertionError("firmware exited:\n" + self.proc.stdout.read().decode(errors="replace"))
                s.write(frame_serial(commands.encode("get_info", 1)))
                for _, f in dec.feed(s.read(256)):
                    if isinstance(f, fr.Reply) and f.cmd == w.CMD_GET_INFO:
                        return
        raise AssertionError("firmware did not answer get_info over the pty")

    def close(self) -> str:
        self.proc.kill()
        out = self.proc.communicate(timeout=10)[0].decode(errors="replace")
        os.close(self.master)
        os.close(self._slave)
        return out


def cli_download(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["download", *args])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def tree(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


@pytest.fixture(scope="module")
def clip_runs(tmp_path_factory):
    """Three logged runs: two boots (the clock restarts, the index goes on); runs 2 and 3 torn."""
    work = tmp_path_factory.mktemp("clip")
    r1 = RunSpec(0, 2_000_000, w.MODE_FULL, sim_values(40, 1, w.MODE_FULL))
    r2 = RunSpec(r1.end, 1_500_000, w.MODE_COMPACT, sim_values(20, 2, w.MODE_COMPACT))  # reboot: t restarts
    r3 = RunSpec(r2.end + 30 * 200, r2.t_end_us + 30_000_000, w.MODE_COMPACT,  # 30 s later, same power-on
                 sim_values(15, 3, w.MODE_COMPACT))
    runs = [r1, r2, r3]
    log_dir = work / "log"
    segs = write_log(log_dir, runs, work / "spec.bin")
    per = 9  # compact samples per record
    torn = []
    for spec, seg, keep in ((r2, segs[1], 50), (r3, segs[2], 40)):
        # the file ends `keep` bytes into its last record: inside the frame (4 + 16 + 12 n bytes), a write cut short
        n_last = len(spec.values) % per or per
        assert keep < 4 + w.DATA_OVERHEAD + 12 * n_last
        last = log_dir / seg["segments"][-1]
        with open(last, "r+b") as fh:
            fh.truncate(last.stat().st_size - 128 + keep)
        torn.append((spec.end - n_last, n_last))
    return work, log_dir, runs, torn


def check_run_samples(session: Path, spec: RunSpec, drop_tail: int = 0) -> None:
    log = read_sessionlog(session / "stream.tgl")
    batch = log.samples()
    order = np.argsort(batch.seq, kind="stable")
    seq, vals = batch.seq[order], batch.values[order]
    k = spec.values.shape[1]
    n = len(spec.values) - drop_tail
    assert len(seq) == n and np.array_equal(seq, spec.seq0 + np.arange(n))  # no duplicates, no holes
    assert np.array_equal(vals[:, :k], spec.values[:n])  # sample for sample, every field
    assert np.array_equal(batch.t_us[order], spec.t0_us + np.arange(n) * PERIOD_Q / 4)
    rec = read_recording(session / "stream.tgl")
    assert np.allclose(rec.acc_g, spec.values[:n, 3:6] * w.ACC_LSB_G)
    assert (rec.gyro_dps is not None) == (spec.mode == w.MODE_FULL)


def test_download_three_runs_verified_torn_reported_second_is_noop_then_erase(clip_runs, tmp_path, capsys):
    work, log_dir, runs, torn = clip_runs
    out = tmp_path / "sessions"
    fw = FirmwareOnPty(work, log_dir)
    try:
        code, text = cli_download(capsys, "--serial", fw.path, "-o", str(out))
        assert code == 0, text
        sessions = sorted(p.parent for p in out.glob("*/session.json"))
        assert len(sessions) == 3, text
        metas = [read_session_meta(s) for s in sessions]
        metas, sessions = zip(*sorted(zip(metas, sessions), key=lambda m: m[0]["run"]["first_seq"]))
        for spec, meta, s in zip(runs, metas, sessions):
            assert meta["source"] == "download" and meta["download"]["state"] == "complete"
            assert meta["run"]["first_seq"] == spec.seq0
            assert meta["device"]["firmware"] and meta["device"]["protocol"] == 1
            assert meta["sample_rate_hz"] == pytest.approx(200.0)
            assert meta["mode"] == ("full" if spec.mode == w.MODE_FULL else "compact")
            # recorded before the clip's last power-on: the clip cannot date them, and says so
            assert meta["start_time"] is None and "restarted" in meta["download"]["start_time_source"]
        check_run_samples(sessions[0], runs[0])
        check_run_samples(sessions[1], runs[1], drop_tail=torn[0][1])
        check_run_samples(sessions[2], runs[2], drop_tail=torn[1][1])
        # the torn records are reported, in session.json and on the console, each with its own run
        assert not metas[0]["download"]["damaged_records"]
        for meta, (seq, n) in zip(metas[1:], torn):
            (d,) = meta["download"]["damaged_records"]
            assert d["after_seq"] == seq and d["claimed_seq"] == seq and d["claimed_n"] == n, d
            assert d["reason"] == "bad_crc" and meta["run"]["end_seq"] == seq
            assert f"damaged record at sample {seq} ({n} samples)" in text
        assert metas[1]["download"]["covers"] == [runs[1].seq0, runs[2].seq0]
        # each new session was analysed into the same folder
        for s, meta in zip(sessions, metas):
            assert meta["analysis"]["ok"], meta["analysis"]
            assert read_outputs(s).strides.shape[0] > 5

        before = tree(out)
        code, text2 = cli_download(capsys, "--serial", fw.path, "-o", str(out))
        assert code == 0, text2
        assert "nothing new" in text2 and tree(out) == before  # not one file created or touched

        code, text3 = cli_download(capsys, "--serial", fw.path, "--erase", "-o", str(out))
        assert code == 0 and "erased the clip's log" in text3, text3
        assert tree(out) == before
        clip = dl.Clip(dl.SerialLink(fw.path))
        try:
            logs = clip.request("list_logs")
        finally:
            clip.link.close()
        assert logs["first_seq"] == logs["end_seq"] == torn[1][0]  # the torn record's indices were never kept
        assert not any(log_dir.glob("*.seg"))
    finally:
        fw.close()


def test_resume_after_interrupt_on_real_firmware(clip_runs, tmp_path, capsys):
    """The link dies in the middle of a run; the next download continues that folder, no duplicates."""
    _, _, runs, _ = clip_runs
    log_dir = tmp_path / "log"
    write_log(log_dir, runs[:1], tmp_path / "spec.bin")
    out = tmp_path / "sessions"
    fw = FirmwareOnPty(tmp_path, log_dir)
    try:
        link = dl.SerialLink(fw.path)
        real_recv = link.recv
        got = {"log": 0}

        def dying_recv(timeout_s):
            items = real_recv(timeout_s)
            got["log"] += sum(isinstance(f, fr.DataFrame) for _, f in items)
            if got["log"] > 300:
                raise dl.ClipError("link lost (test)")
            return items

        link.recv = dying_recv
        with pytest.raises(dl.ClipError):
            dl.download(link, out, echo=lambda s: None)
        link.close()
        (part,) = [p.parent for p in out.glob("*/session.json")]
        meta = read_session_meta(part)
        assert meta["download"]["state"] == "partial" and 0 < meta["download"]["samples"] < len(runs[0].values)
        code, text = cli_download(capsys, "--serial", fw.path, "--no-analyze", "-o", str(out))
        assert code == 0 and "resuming" in text, text
        assert [p.parent for p in out.glob("*/session.json")] == [part]
        assert read_session_meta(part)["download"]["state"] == "complete"
        check_run_samples(part, runs[0])
    finally:
        fw.close()


def test_download_through_the_shared_async_transport(clip_runs, tmp_path):
    """The path --ble takes (TransportLink over a tiltguard.transport Transport), here with live's serial one."""
    from tiltguard.transport import open_transport

    _, _, runs, _ = clip_runs
    log_dir = tmp_path / "log"
    write_log(log_dir, runs[2:], tmp_path / "spec.bin")
    fw = FirmwareOnPty(tmp_path, log_dir)
    try:
        link = dl.TransportLink(open_transport("serial", fw.path))
        try:
            res = dl.download(link, tmp_path / "out", analyse_runs=False, echo=lambda s: None)
        finally:
            link.close()
        (run,) = res.new_runs
        assert run.complete and run.meta["device"]["link"] == "serial"
        check_run_samples(run.dir, runs[2])
    finally:
        fw.close()


def seg_records(log_dir: Path) -> dict[int, list[bytes]]:
    """The log frames on 'flash', grouped by the run number each 128-byte record carries (the truth the
    host's run splitting must reproduce without seeing it)."""
    runs: dict[int, list[bytes]] = {}
    for seg in sorted(log_dir.glob("*.seg")):
        data = seg.read_bytes()
        for o in range(0, len(data) - 127, 128):
            rec = data[o : o + 128]
            try:
                f = fr.decode_frame(rec[4 : 4 + w.DATA_OVERHEAD + rec[15] * (18 if rec[4] & 0x0F == 4 else 12)])
            except fr.FrameError:
                continue
            runs.setdefault(rec[2] | rec[3] << 8, []).append(f)
    return runs


def test_runs_logged_by_the_firmware_itself_are_split_as_on_flash(tmp_path, capsys):
    """Three button runs logged by firmware/main.py (three power-ons, fake IMU at 20x speed), downloaded."""
    log_dir = tmp_path / "log"
    for seconds in (6, 4, 5):
        env = mpy_env()
        env.update(TILTGUARD_LINK="none", TILTGUARD_RECORD="1", TILTGUARD_RUN_S=str(seconds),
                   TILTGUARD_LOG_DIR=str(log_dir), TILTGUARD_CONFIG=str(tmp_path / "config.json"),
                   TILTGUARD_FAKE_SPEED="20")
        subprocess.run([micropython_exe(), str(FIRMWARE / "main.py")], env=env, check=True, timeout=60,
                       capture_output=True, cwd=str(FIRMWARE))
    truth = seg_records(log_dir)
    assert len(truth) == 3
    fw = FirmwareOnPty(tmp_path, log_dir)
    try:
        code, text = cli_download(capsys, "--serial", fw.path, "--no-analyze", "-o", str(tmp_path / "out"))
    finally:
        fw.close()
    assert code == 0, text
    sessions = sorted((p.parent for p in (tmp_path / "out").glob("*/session.json")),
                      key=lambda s: read_session_meta(s)["run"]["first_seq"])
    assert len(sessions) == 3, text
    for s, (run, frames) in zip(sessions, sorted(truth.items())):
        got = read_sessionlog(s / "stream.tgl").samples()
        want = fr.decode_data_frames([fr.encode_frame(f) for f in frames])
        assert np.array_equal(got.seq, want.seq) and np.array_equal(got.values, want.values)
        # samples the firmware itself dropped (an IMU FIFO overflow on a loaded machine) are holes on flash too
        jumps = np.flatnonzero(np.diff(want.seq) > 1)
        holes = [[int(want.seq[j] + 1), int(want.seq[j + 1])] for j in jumps]
        assert read_session_meta(s)["download"]["holes"] == holes
