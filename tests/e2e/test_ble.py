"""Unmodified bleak end to end: ``tiltguard live --ble`` and ``tiltguard devices`` against a fake org.bluez on a
private dbus-daemon (tests/e2e/fake_bluez.py) whose notifications carry frames from the real firmware encoder.

A 3.5-minute simulated run (200 Hz, full samples, tilt drifting up from 70 s) streams at 10 x real time; the
fake drops the link for 20 simulated seconds at 100 s. Also: MTU 23 (every frame segmented) over StartNotify,
damaged and foreign notifications, a wrong device, and `tiltguard devices` with and without Bluetooth.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.e2e.fake_bluez import ADDRESS, NAME, ClipSim, FakeBluez, PrivateBus, firmware_frames, wire_values
from tiltguard.formats.raw import read_raw
from tiltguard.formats.session import read_outputs
from tiltguard.formats.sessionlog import read_sessionlog
from tiltguard.protocol import frames as fr


RATE = 200
SPEED = 10.0
DROP_AT_S, DROP_FOR_S = 100.0, 20.0
CONFIG = "[drift]\nwarmup_s = 30.0\nbaseline_s = 60.0\n\n[alerts]\nmin_interval_s = 30.0\n\n[live]\nbackfill_timeout_s = 60.0\n"


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """Wire values of the simulated run and the clip's frames, encoded by firmware/frames.py."""
    from tiltguard.sim import simulate_session

    d = tmp_path_factory.mktemp("blesim")
    simulate_session(d / "run", gzip=False, minutes=3.5, seed=31, rate_hz=RATE, scenario="drift", drift_deg=5.0,
                     drift_onset_s=70.0, drift_rate_deg_per_min=4.0)
    values = wire_values(read_raw(d / "run" / "raw.csv"))
    (d / "live.toml").write_text(CONFIG)
    return values, firmware_frames(values, rate_hz=RATE), d / "live.toml"


@pytest.fixture()
def bus(tmp_path):
    b = PrivateBus(tmp_path / "bus")
    yield b
    b.close()


def _tiltguard(bus: PrivateBus, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tiltguard", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _live(bus, clip: ClipSim, sdir, config) -> tuple[subprocess.CompletedProcess, FakeBluez]:
    with FakeBluez(bus.address, clip) as fake:
        p = _tiltguard(bus, "live", "--ble", NAME, "--no-ui", "--session", str(sdir), "--config", str(config),
                       "--idle-exit", "2")
    assert not fake.errors, fake.errors
    # shown by pytest when an assertion below fails: how fast the fake streamed and what the host said
    print(f"fake: {fake.notifications} notifications, {fake.stalls} socket stalls, stream ended at "
          f"{clip.t_end_wall - clip.t0_wall if clip.t_end_wall else None} s wall; host: {p.stdout[-600:]}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p, fake


def _recorded(sdir):
    """Sample index -> values as stored in stream.tgl (duplicates from backfill must agree)."""
    b = read_sessionlog(sdir / "stream.tgl").samples()
    seq = fr.unwrap_seq(b.seq)
    return seq, b.values, b.is_log


def test_ble_live_reconnects_backfills_and_buzzes(clip_run, bus, tmp_path):
    values, frames, config = clip_run
    clip = ClipSim(frames, speed=SPEED, drop_at_s=DROP_AT_S, drop_for_s=DROP_FOR_S)
    sdir = tmp_path / "s"
    p, fake = _live(bus, clip, sdir, config)

    # the link really dropped mid-run, for the simulated 20 s, and came back
    assert clip.drops == 1 and fake.connects == 2
    assert clip.produced_while_down >= (DROP_FOR_S - 1) * RATE
    # every sample the clip made is in the session log, with the clip's exact values
    seq, vals, is_log = _recorded(sdir)
    idx = seq - frames.seq0
    assert np.array_equal(np.unique(idx), np.arange(len(values)))
    assert np.array_equal(vals[:, :9], values[idx].astype(np.int16))
    assert is_log.sum() >= clip.produced_while_down          # the hole came back from the flash log
    out = read_outputs(sdir)
    link = out.summary["link"]
    assert out.summary["missing_samples"] == 0 and link["samples_lost"] == 0
    live_idx = np.unique(idx[~is_log])
    assert link["samples_backfilled"] == len(values) - len(live_idx) >= clip.produced_while_down
    assert link["reconnects"] == 1
    # the drift alert became a buzz written to the clip over the (reconnected) link
    drift = out.alerts[out.alerts.kind == "anterior_tilt_drift"]
    assert len(drift) >= 1 and drift.iloc[0].sent == "buzz:alert"
    assert len(clip.buzzes) == (out.alerts.sent.astype(str).str.startswith("buzz")).sum()
    t_buzz, args = clip.buzzes[0]
    assert args["pattern"] == 0 and t_buzz > max(DROP_AT_S + DROP_FOR_S, drift.iloc[0].t_s)
    # the backfilled stretch was analysed where it belongs: strides inside the hole, none missing around it
    t0 = out.strides.t_start_s.to_numpy(float)
    assert t0.min() < 40 and t0.max() > 190
    in_hole = (t0 > DROP_AT_S + 1) & (t0 < DROP_AT_S + DROP_FOR_S - 1)
    assert in_hole.sum() >= 0.8 * (DROP_FOR_S - 2) / np.median(np.diff(t0))
    assert np.diff(t0).max() < 2.0
    log = (sdir / "live.log").read_text()
    assert "link lost" in log and "resend" in log


def test_ble_log_too_small_marks_the_gap_exactly(clip_run, bus, tmp_path):
    values, frames, config = clip_run
    frames = frames.head(150.0)                                   # no drift needed here: a shorter run
    values = values[: sum(f[11] for f in frames.live)]
    cap = int(8.0 * RATE)                                         # the flash log keeps 8 s, the hole is 20 s
    clip = ClipSim(frames, speed=SPEED, drop_at_s=DROP_AT_S, drop_for_s=DROP_FOR_S, log_capacity=cap)
    sdir = tmp_path / "s"
    _live(bus, clip, sdir, config)

    seq, vals, _ = _recorded(sdir)
    idx = np.unique(seq - frames.seq0)
    hole = np.setdiff1d(np.arange(len(values)), idx)
    # what is missing is what neither the link nor the clip's log delivered (a frame in flight when the
    # link dropped may be lost too), and never anything the log resent
    def idx_of(spans):
        return np.array(sorted({s - frames.seq0 + i for s, n in spans for i in range(n)}), np.int64)

    never = np.setdiff1d(np.arange(len(values)), idx_of(clip.sent + clip.log_sent))
    assert len(never) and np.isin(never, hole).all() and not np.isin(hole, idx_of(clip.log_sent)).any()
    assert len(hole) > 5 * RATE and np.all(np.diff(hole) == 1)   # one contiguous hole of more than 5 s
    out = read_outputs(sdir)
    assert out.summary["missing_samples"] == len(hole)
    assert out.summary["link"]["samples_backfilled"] > 0          # the log gave what it still had
    gaps = np.asarray(out.summary["gaps"], float)
    t_before, t_after = (hole[0] - 1) / RATE, (hole[-1] + 1) / RATE
    assert any(abs(a - t_before) < 0.02 and abs(b - t_after) < 0.02 for a, b in gaps), gaps
    assert "marked as a gap" in (sdir / "live.log").read_text()


def test_devices_lists_the_fake_clip_and_no_bluetooth_is_one_line(clip_run, bus, tmp_path):
    _, frames, _ = clip_run
    with FakeBluez(bus.address, ClipSim(frames, rssi_dbm=-61)):
        p = _tiltguard(bus, "devices", "--timeout", "1.5")
    assert p.returncode == 0, p.stderr
    row = [ln for ln in p.stdout.splitlines() if NAME in ln]
    assert len(row) == 1 and ADDRESS in row[0] and " dBm" in row[0]
    assert -63 <= int(row[0].split()[-2]) <= -59
    # a clip of another name only: after the scan, one line and no session folder left behind
    with FakeBluez(bus.address, ClipSim(frames, rssi_dbm=-61)):
        p = _tiltguard(bus, "live", "--ble", "tiltguard-nothere", "--no-ui", "--session", str(tmp_path / "none"))
    assert p.returncode != 0 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "no tiltguard clip 'tiltguard-nothere' heard within" in p.stderr and not (tmp_path / "none").exists()
    # a bus with no org.bluez on it, and no bus at all: one line, non-zero exit, no traceback
    p = _tiltguard(bus, "devices", "--timeout", "0.5")
    assert p.returncode != 0 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Bluetooth is not available" in p.stderr
    nobus = PrivateBus.__new__(PrivateBus)
    nobus.address = f"unix:path={tmp_path / 'nothing'}"
    p = _tiltguard(nobus, "live", "--ble", "--no-ui", "--session", str(tmp_path / "x"))
    assert p.returncode != 0 and "Traceback" not in p.stderr and "Bluetooth is not available" in p.stderr


def test_ble_small_mtu_segments_over_start_notify(clip_run, bus, tmp_path, monkeypatch):
    """MTU 23: every frame arrives in 13 segments, as PropertiesChanged signals (StartNotify), in-process."""
    import asyncio

    from tiltguard.live.config import LiveConfig
    from tiltguard.live.pipeline import LiveSession
    from tiltguard.transport.ble import BleTransport

    values, _, _ = clip_run
    values = values[: 30 * RATE]
    frames = firmware_frames(values, rate_hz=RATE, mtu=23)
    assert all(len(f) > 23 - 3 for f in frames.live)             # nothing fits one notification
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    clip = ClipSim(frames, speed=4.0, mtu=23, rssi_dbm=-70, battery_pct=64)
    t = BleTransport(ADDRESS, use_start_notify=True)
    with FakeBluez(bus.address, clip) as fake:
        session = LiveSession(tmp_path / "s", t, LiveConfig(), source="ble", idle_exit_s=2.0)
        summary = asyncio.run(session.run())
    assert not fake.errors and fake.notifications >= 13 * len(frames.live)
    assert t.battery_pct == 64 and session.status is not None and session.status.battery_pct == 64
    assert t.mtu == 23 and t.rssi_dbm is not None and -72 <= t.rssi_dbm <= -68 and t.segments_lost == 0
    seq, vals, _ = _recorded(tmp_path / "s")
    idx = seq - frames.seq0
    assert np.array_equal(np.unique(idx), np.arange(len(values)))
    assert np.array_equal(vals[:, :9], values[idx].astype(np.int16))
    assert summary["missing_samples"] == 0 and summary["link"]["rejected_truncated"] == 0


def _in_process(bus, clip: ClipSim, sdir, monkeypatch, **kw):
    import asyncio

    from tiltguard.live.config import LiveConfig
    from tiltguard.live.pipeline import LiveSession
    from tiltguard.transport.ble import BleTransport

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    t = BleTransport(NAME, reconnect_max_s=1.0)
    with FakeBluez(bus.address, clip) as fake:
        session = LiveSession(sdir, t, LiveConfig(backfill_timeout_s=20.0), source="ble", **kw)
        summary = asyncio.run(session.run())
    assert not fake.errors, fake.errors
    return summary, t


def test_ble_corrupt_and_foreign_notifications_are_dropped_and_refetched(clip_run, bus, tmp_path, monkeypatch):
    values, frames, _ = clip_run
    frames = frames.head(40.0)
    values = values[: sum(f[11] for f in frames.live)]
    clip = ClipSim(frames, speed=10.0, corrupt_every=50, garbage_every=70)
    summary, _ = _in_process(bus, clip, tmp_path / "s", monkeypatch, idle_exit_s=2.0)
    link = summary["link"]
    assert clip.corrupted >= 5
    assert link["rejected_bad_crc"] == clip.corrupted and link["rejected_bad_version"] >= 5
    # the damaged frames' samples came back from the clip's log: nothing missing, values exact
    seq, vals, is_log = _recorded(tmp_path / "s")
    idx = seq - frames.seq0
    assert np.array_equal(np.unique(idx), np.arange(len(values)))
    assert np.array_equal(vals[:, :9], values[idx].astype(np.int16))
    assert summary["missing_samples"] == 0 and link["samples_backfilled"] == 12 * clip.corrupted
    assert "damaged frame" in (tmp_path / "s" / "live.log").read_text()


def test_ble_wrong_device_is_a_clear_message_not_a_crash(clip_run, bus, tmp_path, monkeypatch):
    _, frames, _ = clip_run
    clip = ClipSim(frames.head(5.0), wrong_device=True)
    summary, t = _in_process(bus, clip, tmp_path / "s", monkeypatch, duration_s=3.0)
    text = (tmp_path / "s" / "live.log").read_text()
    assert "has no tiltguard stream characteristic: wrong device" in text and "Traceback" not in text
    assert summary["link"]["samples_received"] == 0 and t.connects == 0
