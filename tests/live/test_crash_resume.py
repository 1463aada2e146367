"""Crash safety: SIGKILL the live process at random moments; the folder stays readable, loses at most the
last second of samples, and a restart with the same folder completes the session."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd

from tiltguard.formats.session import read_outputs, read_session_meta
from tiltguard.formats.sessionlog import read_sessionlog
from tiltguard.protocol import frames as fr

SPEED = 30.0


def _start(src, sdir, cfg):
    cmd = [sys.executable, "-m", "tiltguard", "live", "--replay", str(src), "--speed", str(SPEED),
           "--session", str(sdir), "--no-ui", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[tuple[float, str]] = []

    def reader():
        for line in proc.stdout:
            lines.append((time.monotonic(), line))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    return proc, lines, th


def _seqs(sdir) -> np.ndarray:
    b = read_sessionlog(sdir / "stream.tgl").samples()
    return np.unique(fr.unwrap_seq(b.seq))


def test_sigkill_at_random_moments_then_resume(drift_run, fast_config, tmp_path):
    src = drift_run / "raw.csv"
    n_src = len(pd.read_csv(src, usecols=["t_s"]))
    sdir = tmp_path / "session"
    rng = random.Random(5)
    kills = 0
    prev_end = 0
    for _ in range(3):
        proc, lines, th = _start(src, sdir, fast_config)
        # wait until samples flow, then a random moment later
        t_end = time.monotonic() + 30
        while not any("next_seq=" in ln for _, ln in lines) and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.3, 2.5))
        t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        th.join(2)
        kills += 1
        # the folder opens
        assert read_session_meta(sdir)["source"] == "replay"
        read_outputs(sdir)
        seqs = _seqs(sdir)
        # every sample reported received at least one second before the kill is in the log
        old = [int(ln.split("next_seq=")[1].split()[0]) for t, ln in lines
               if t <= t_kill - 1.0 and "next_seq=" in ln and "None" not in ln.split("next_seq=")[1]]
        if old:
            assert len(seqs) >= max(old), (len(seqs), max(old))
        assert np.array_equal(seqs, np.arange(len(seqs)))  # a prefix, no holes
        assert len(seqs) >= prev_end
        prev_end = len(seqs)
        if len(seqs) >= n_src:
            break
    assert kills >= 1
    proc, lines, th = _start(src, sdir, fast_config)
    assert proc.wait(timeout=120) == 0
    th.join(2)
    text = "".join(ln for _, ln in lines)
    assert "resumed" in text
    seqs = _seqs(sdir)
    assert np.array_equal(seqs, np.arange(n_src))  # complete, nothing doubled
    out = read_outputs(sdir)
    assert out.summary["missing_samples"] == 0
    assert out.summary["n_strides"] > 300 and len(out.strides) == out.summary["n_strides"]
    assert "anterior_tilt_drift" in out.alerts.kind.tolist()
    assert len(read_session_meta(sdir)["resumed"]) == kills  # every restart after a kill


def test_ctrl_c_ends_the_session_cleanly(drift_run, fast_config, tmp_path):
    sdir = tmp_path / "s"
    proc, lines, th = _start(drift_run / "raw.csv", sdir, fast_config)
    t_end = time.monotonic() + 30
    while not any("next_seq=" in ln for _, ln in lines) and time.monotonic() < t_end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    th.join(2)
    text = "".join(ln for _, ln in lines)
    assert "session saved" in text and "Traceback" not in text
    out = read_outputs(sdir)
    n = len(_seqs(sdir))
    assert out.summary["link"]["samples_received"] == n > 0
    assert "end_time" in read_session_meta(sdir)
