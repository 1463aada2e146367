"""Real firmware (MicroPython unix port, fake IMU playing a simulated run) on one end of a pseudo-terminal,
``tiltguard live --serial`` on the other: every sample the firmware sent is in the session log, the port
vanishing mid-run is backfilled from the firmware's flash log, and the per-stride results equal a batch
``tiltguard analyze`` of the recorded samples. The clip streams in its default compact mode with a stored
calibration (as after a long press while standing), so the stride shape comes from its own fusion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tty

import numpy as np
import pytest

from tests.e2e.serialproxy import SerialProxy
from tests.mpy import FIRMWARE, micropython_exe, mpy_env
from tiltguard.core.pipeline import AnalysisConfig, analyze
from tiltguard.formats.session import read_outputs
from tiltguard.formats.sessionlog import read_recording, read_sessionlog
from tiltguard.protocol import frames as fr

RUN_S = 150
SPEED = 10


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    from tiltguard.sim import simulate_session

    out = tmp_path_factory.mktemp("e2e") / "steady"
    simulate_session(out, gzip=False, minutes=RUN_S / 60 + 0.2, seed=4, rate_hz=200, scenario="steady")
    return out / "raw.csv"


def _stored_calibration(raw) -> dict:
    """What the clip stores after a long press while standing (``fusion.Calibrator``): the smallest rotation
    taking the mean standing specific force (its first 3 s) to +x, and the mean gyro as its bias."""
    d = np.genfromtxt(raw, delimiter=",", names=True, max_rows=600)
    up = np.array([d["ax_g"].mean(), d["ay_g"].mean(), d["az_g"].mean()])
    up /= np.linalg.norm(up)
    q = np.array([1.0 + up[0], 0.0, up[2], -up[1]])      # (w, up x (1, 0, 0)), normalised
    q /= np.linalg.norm(q)
    return {"mount_q": q.round(6).tolist(),
            "gyro_bias_dps": [round(float(d[c].mean()), 4) for c in ("gx_dps", "gy_dps", "gz_dps")]}


def _firmware(tmp_path, raw, config: dict):
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = mpy_env()
    env.update({"TILTGUARD_SERIAL": f"fd:{master}", "TILTGUARD_LINK": "serial",
                "TILTGUARD_LOG_DIR": str(tmp_path / "flash"), "TILTGUARD_CONFIG": str(tmp_path / "config.json"),
                "TILTGUARD_FAKE_SPEED": str(SPEED), "TILTGUARD_FAKE_RAW": str(raw), "TILTGUARD_RUN_S": str(RUN_S)})
    (tmp_path / "flash").mkdir()
    proc = subprocess.Popen([micropython_exe(), "-X", "heapsize=8M", str(FIRMWARE / "main.py")], env=env,
                            pass_fds=(master,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(master)
    return proc, slave


def test_firmware_over_serial_end_to_end(sim_run, tmp_path):
    proc, dev = _firmware(tmp_path, sim_run, {"always_log": 1, "mount": _stored_calibration(sim_run)})
    proxy = SerialProxy(dev, tmp_path / "clip")
    sdir = tmp_path / "session"
    host = subprocess.Popen([sys.executable, "-m", "tiltguard", "live", "--serial", str(tmp_path / "clip"),
                             "--no-ui", "--session", str(sdir), "--idle-exit", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def unplug_mid_run():
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and sum(1 for f in proxy.frames if f[0] & 0x0F in fr.DATA_TYPES) < 300:
            time.sleep(0.05)
        proxy.unplug()      # the host's port vanishes for a while; the firmware keeps sampling
        time.sleep(1.5)
        proxy.replug()

    th = threading.Thread(target=unplug_mid_run, daemon=True)
    th.start()
    try:
        out, _ = host.communicate(timeout=120)
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()
    finally:
        for p in (host, proc):
            if p.poll() is None:
                p.kill()
        proxy.close()
        os.close(dev)
    th.join(5)
    assert host.returncode == 0, out
    # what the firmware wrote (live data frames), whether or not the host's port was there
    sent = [fr.decode_frame(f) for f in proxy.frames]
    live = [f for f in sent if isinstance(f, fr.DataFrame) and not f.is_log]
    sent_seqs = np.unique(np.concatenate([np.arange(f.seq, f.seq + f.n) for f in live]))
    lost_on_cable = sum(f.n for f, ok in zip(sent, proxy.forwarded) if isinstance(f, fr.DataFrame) and not ok)
    assert lost_on_cable > 100, "the unplug should have cost the host some samples"
    log = read_sessionlog(sdir / "stream.tgl")
    b = log.samples()
    got = np.unique(fr.unwrap_seq(b.seq))
    assert np.isin(sent_seqs, got).all(), f"{np.setdiff1d(sent_seqs, got)[:10]} missing from the log"
    assert b.is_log.sum() >= lost_on_cable  # the hole came back from the firmware's flash log
    res = read_outputs(sdir)
    assert res.summary["missing_samples"] == 0
    assert "vanished" in out and "resend" in out
    # per-stride results equal a batch analysis of the recorded samples
    batch = analyze(read_recording(sdir / "stream.tgl"), AnalysisConfig())
    assert len(res.strides) == len(batch.strides) > 100
    for c in ("t_start_s", "t_end_s"):
        assert np.abs(res.strides[c].to_numpy(float) - batch.strides[c].to_numpy(float)).max() <= 1e-5
    for c in ("tilt_mean_deg", "cadence_spm"):
        d = np.abs(res.strides[c].to_numpy(float) - batch.strides[c].to_numpy(float))
        assert np.nanmax(d) <= 0.05, c
    # compact mode: the ROMs and pelvic drop come from the clip's angles, the same live and in batch
    assert batch.summary["shape_from"] == "clip" and res.summary["shape_from"] == "clip"
    for c in ("tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg", "pelvic_drop_l_deg", "pelvic_drop_r_deg"):
        assert res.strides[c].notna().mean() > 0.95, c
        d = np.abs(res.strides[c].to_numpy(float) - batch.strides[c].to_numpy(float))
        assert np.nanmax(d) <= 0.05, c
    assert "not calibrated" not in out
