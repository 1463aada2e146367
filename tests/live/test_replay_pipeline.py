"""Replay through the live pipeline: the session folder equals a batch analysis of what was recorded."""

from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from tests.live.conftest import live_args
from tiltguard.core.pipeline import analyze
from tiltguard.formats.session import read_outputs, read_session_meta
from tiltguard.formats.sessionlog import read_recording, read_sessionlog
from tiltguard.live.cli import live_main
from tiltguard.live.config import load_live_config
from tiltguard.protocol import commands
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w


def close(a: pd.DataFrame, b: pd.DataFrame, time_cols, tol_deg=0.05):
    assert len(a) == len(b) and len(a) > 0
    for c in time_cols:
        assert np.abs(a[c].to_numpy(float) - b[c].to_numpy(float)).max() <= 1e-5, c
    for c in a.columns:
        if c.endswith("_deg"):
            x, y = a[c].to_numpy(float), b[c].to_numpy(float)
            assert (np.isnan(x) == np.isnan(y)).all(), c
            assert np.nanmax(np.abs(x - y), initial=0) <= tol_deg, c


@pytest.fixture(scope="module")
def replayed(drift_run, fast_config, tmp_path_factory):
    sdir = tmp_path_factory.mktemp("replay") / "s"
    _, summary = live_main(live_args(replay=str(drift_run / "raw.csv"), session=sdir, config=str(fast_config)))
    return sdir, summary


def test_replay_equals_batch_and_buzzes(replayed, drift_run, fast_config):
    sdir, summary = replayed
    out = read_outputs(sdir)
    cfg = load_live_config(fast_config)
    batch = analyze(read_recording(sdir / "stream.tgl"), cfg.analysis)
    # the recording holds every sample of the source (re-encoded in wire units)
    n_src = len(pd.read_csv(drift_run / "raw.csv", usecols=["t_s"]))
    assert summary["link"]["samples_received"] == n_src
    assert summary["missing_samples"] == 0
    close(out.strides, batch.strides, ("t_start_s", "t_end_s"))
    close(out.steps, batch.steps, ("t_ic_s", "t_to_s"))
    assert out.alerts.kind.tolist() == batch.alerts.kind.tolist()
    assert "anterior_tilt_drift" in out.alerts.kind.tolist()
    assert np.allclose(out.alerts.t_s.to_numpy(float), batch.alerts.t_s.to_numpy(float), atol=1e-5)
    for k in ("n_steps", "n_strides", "drift_onset_s"):
        assert out.summary[k] == batch.summary[k], k
    # once calibrated, every stride also went to the dashboard provisionally, right after its closing contact
    live = out.summary["live"]
    n_after = int((out.strides["t_end_s"] >= live["from_s"]).sum())
    assert live["from_s"] < 180.0 and n_after >= 0.3 * len(out.strides)
    assert 0.95 * n_after <= live["provisional_strides"] <= n_after + 2
    assert 0 < live["wait_ms_p50"] < 150
    # the drift alert became a buzz written to the link and logged with what was sent
    row = out.alerts[out.alerts.kind == "anterior_tilt_drift"].iloc[0]
    assert row.sent == "buzz:alert"
    cmds = [fr.decode_frame(f) for f in read_sessionlog(sdir / "stream.tgl").frames if f[0] & 0x0F == w.T_COMMAND]
    buzz = [commands.decode_args(c) for c in cmds if c.cmd == w.CMD_BUZZ]
    assert [b["pattern"] for b in buzz][:1] == [w.BUZZ_ALERT]
    assert cmds[0].cmd == w.CMD_START_STREAM
    meta = read_session_meta(sdir)
    assert meta["source"] == "replay" and meta["mode"] == "full" and meta["sample_rate_hz"] == 200.0
    assert "live.log" in {p.name for p in sdir.iterdir()}


def test_provisional_off_gives_the_same_session_without_live_strides(replayed, drift_run, fast_config, tmp_path):
    cfg = tmp_path / "off.toml"
    cfg.write_text(fast_config.read_text() + "\n[live]\nprovisional = false\n")
    _, summary = live_main(live_args(replay=str(drift_run / "raw.csv"), session=tmp_path / "s", config=str(cfg)))
    assert summary["live"]["provisional_strides"] == 0
    close(read_outputs(tmp_path / "s").strides, read_outputs(replayed[0]).strides, ("t_start_s", "t_end_s"), 1e-9)


def test_fast_frame_path_equals_the_general_decoder(replayed, drift_run, fast_config, tmp_path, monkeypatch):
    """Frames that just continue the stream skip the general decoder; without that shortcut the session is
    the same (samples, strides, alerts)."""
    from tiltguard.live.pipeline import LiveSession

    monkeypatch.setattr(LiveSession, "_continuing", lambda self, frames: None)
    _, summary = live_main(live_args(replay=str(drift_run / "raw.csv"), session=tmp_path / "s",
                                     config=str(fast_config)))
    slow, fast = read_outputs(tmp_path / "s"), read_outputs(replayed[0])
    assert summary["link"]["samples_received"] == replayed[1]["link"]["samples_received"]
    close(slow.strides, fast.strides, ("t_start_s", "t_end_s"), 1e-9)
    close(slow.steps, fast.steps, ("t_ic_s", "t_to_s"), 1e-9)
    assert slow.alerts.kind.tolist() == fast.alerts.kind.tolist()
    assert summary["live"]["provisional_strides"] == replayed[1]["live"]["provisional_strides"] > 0


def test_alerts_final_only_at_the_end_are_recorded_not_sent(replayed, drift_run, fast_config, tmp_path):
    """With a hop longer than the run, every alert becomes final in finish(): alerts.csv still has them all."""
    cfg = tmp_path / "late.toml"
    cfg.write_text(fast_config.read_text() + "\n[live]\nhop_s = 1000\nprovisional = false\n")
    _, summary = live_main(live_args(replay=str(drift_run / "raw.csv"), session=tmp_path / "s", config=str(cfg)))
    late, first = read_outputs(tmp_path / "s"), read_outputs(replayed[0])
    assert late.alerts.kind.tolist() == first.alerts.kind.tolist() and len(late.alerts) >= 1
    assert np.allclose(late.alerts.t_s.to_numpy(float), first.alerts.t_s.to_numpy(float), atol=1e-5)
    assert late.alerts.sent.isna().all() and summary["alerts"] == len(late.alerts)   # an empty field: nothing sent
    assert "became final as the session ended" in (tmp_path / "s" / "live.log").read_text()


def test_tgl_replay_reproduces_the_session(replayed, fast_config, tmp_path):
    """Replaying a recorded stream.tgl (not the CSV) gives the same strides as the first run."""
    first, second = replayed[0], tmp_path / "b"
    live_main(live_args(replay=str(first / "stream.tgl"), session=second, config=str(fast_config)))
    a, b = read_outputs(first), read_outputs(second)
    close(a.strides, b.strides, ("t_start_s", "t_end_s"), tol_deg=0.05)
    assert a.alerts.kind.tolist() == b.alerts.kind.tolist()


def test_compact_stream_gives_rom_from_the_clip_angles(drift_run, fast_config, tmp_path):
    """Compact mode (the clip's default: accelerometer + its own angles, no gyro): the live session equals a
    batch analysis of what it recorded, and the dashboard's obliquity/rotation ROM come from the clip's
    angles (here the simulator's true pelvic angles with a sensor's noise stand in for the clip's fusion)."""
    import asyncio

    from tiltguard.formats.raw import Recording, read_raw, write_raw
    from tiltguard.live.dashboard import snapshot
    from tiltguard.live.pipeline import LiveSession
    from tiltguard.sim.io import stand_in_clip_angles
    from tiltguard.transport.replay import ReplayTransport

    raw = read_raw(drift_run / "raw.csv")
    ang = stand_in_clip_angles(drift_run, raw.t_s, seed=5)
    src = write_raw(tmp_path / "compact.csv", Recording(t_s=raw.t_s, acc_g=raw.acc_g, angles_deg=ang))
    cfg = load_live_config(fast_config)
    session = LiveSession(tmp_path / "s", ReplayTransport(src, speed=None), cfg, source="replay")
    summary = asyncio.run(session.run())
    out = read_outputs(tmp_path / "s")
    assert read_session_meta(tmp_path / "s")["mode"] == "compact" and summary["missing_samples"] == 0
    batch = analyze(read_recording(tmp_path / "s" / "stream.tgl"), cfg.analysis)
    assert batch.summary["shape_from"] == "clip"
    close(out.strides, batch.strides, ("t_start_s", "t_end_s"))
    for col in ("tilt_rom_deg", "obliquity_rom_deg", "rotation_rom_deg", "pelvic_drop_l_deg"):
        assert out.strides[col].notna().mean() > 0.99, col
    live = session.provisional_rows
    assert len(live) > 50 and live["rotation_rom_deg"].notna().all() and live["obliquity_rom_deg"].notna().all()
    s = snapshot(session)
    assert s["obliquity_rom_deg"] > 0 and s["rotation_rom_deg"] > 0


@pytest.mark.parametrize("mode, per_burst", [(w.MODE_COMPACT, 2), (w.MODE_FULL, 3)])
def test_csv_replay_sends_frames_in_the_clips_notification_bursts(drift_run, mode, per_burst):
    """A re-encoded CSV arrives as a clip sends it (PROTOCOL.md 1.1): each frame at the first burst after its
    last sample, the frames of a burst together, so a paced replay wakes the host once a burst."""
    from tiltguard.formats.raw import read_raw
    from tiltguard.transport.replay import encode_recording

    rec = read_raw(drift_run / "raw.csv")
    frames, pace = encode_recording(rec, mode)
    assert len(frames) == len(pace)
    dec = [fr.decode_frame(f) for f in frames]
    last_s = np.array([(f.t_us - dec[0].t_us + (f.n - 1) * f.period_q * w.PERIOD_LSB_US) / 1e6 for f in dec])
    burst_s = w.NOTIFY_BURST_MS / 1000
    assert (np.diff(pace) >= 0).all()
    assert (pace >= last_s - 1e-9).all() and (pace < last_s + burst_s).all()    # never before, never a burst late
    k = np.round(pace / burst_s)
    assert np.allclose(pace, k * burst_s)                                       # only at burst times
    counts = np.unique(k, return_counts=True)[1]
    # 12-sample full frames (60 ms) and 19-sample compact ones (95 ms) at 200 Hz: 3 / 2 a burst, one more or
    # one fewer where the frame and burst phases slip
    assert abs(np.median(counts) - per_burst) < 0.6 and counts.max() <= per_burst + 1
    assert len(counts) == pytest.approx(rec.t_s[-1] / burst_s, rel=0.01, abs=2)
