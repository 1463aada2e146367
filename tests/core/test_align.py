"""Mounting estimation (core.align): misaligned, upside-down and rotated clips, no stance, gaps."""

from __future__ import annotations

import numpy as np
import pytest

from tiltguard.core import activity as act
from tiltguard.core.align import IDENTITY, Mounting, estimate_mounting, find_gaps, gap_list
from tiltguard.core.angles import P_FLU, euler_to_matrix
from tiltguard.formats.raw import Recording
from tiltguard.sim import SimConfig, simulate
from tiltguard.sim.rotations import axis_angle


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a @ b.T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def mounting_of(res) -> Mounting:
    k = res.keep
    t, acc = res.t_s[k], res.acc_g[k]
    gyro = None if res.gyro_dps is None else res.gyro_dps[k]
    fs = res.config.rate_hz
    return estimate_mounting(t, acc, gyro, fs, act.classify(acc, fs))


@pytest.mark.parametrize("kw", [dict(misalign_deg=0.0), dict(misalign_deg=20.0), dict(misalign_deg=12.0, upside_down=True)])
def test_mounting_matches_simulated(kw):
    res = simulate(SimConfig(minutes=2.5, seed=3, rate_hz=100, **kw))
    m = mounting_of(res)
    # accelerometer bias (0.015 g sd per axis) alone tilts "up" by up to ~1 deg
    assert rotation_error_deg(m.matrix, res.mount) < 2.0
    assert m.reference == "standing"
    assert m.upside_down == bool(kw.get("upside_down", False))
    d = m.to_dict()
    assert set(d) >= {"matrix", "tilt_deg", "obliquity_deg", "rotation_deg", "upside_down"}
    # readable angles agree with the simulator's own description of the mounting
    for key in ("tilt_deg", "obliquity_deg", "rotation_deg"):
        diff = (d[key] - res.mounting["euler_deg"][key] + 180.0) % 360.0 - 180.0
        assert abs(diff) < 2.5, key


def test_clip_turned_round_finds_forward_from_running():
    """A clip rotated 180 deg about the vertical (forward = device +Z) is recognised from the braking shape."""
    res = simulate(SimConfig(minutes=2.0, seed=5, rate_hz=100))
    turn = axis_angle([1.0, 0.0, 0.0], np.pi)          # about pelvis x (up)
    k = res.keep
    acc = res.acc_g[k] @ turn.T                          # readings of a clip worn back to front
    gyro = res.gyro_dps[k] @ turn.T
    fs = res.config.rate_hz
    m = estimate_mounting(res.t_s[k], acc, gyro, fs, act.classify(acc, fs))
    assert rotation_error_deg(m.matrix, res.mount @ turn.T) < 2.0
    assert m.forward_confidence > 0.1


def test_no_standing_uses_running_posture():
    res = simulate(SimConfig(minutes=2.0, seed=6, rate_hz=100, standing_s=0.0, misalign_deg=10.0))
    m = mounting_of(res)
    assert m.reference == "running"
    # "up" is now the running posture: off the true mounting by about the runner's running tilt offset
    off = res.body.runner.tilt_run_offset_deg
    err = rotation_error_deg(m.matrix, res.mount)
    assert err < 12.0
    assert abs(err - abs(off)) < 2.5


def test_walk_only_falls_back_to_session_mean():
    t = np.arange(0, 20, 0.01)
    acc = np.column_stack([np.ones_like(t), 0.2 * np.sin(2 * np.pi * 1.8 * t), np.zeros_like(t)])
    m = estimate_mounting(t, acc, None, 100.0, act.classify(acc, 100.0))
    assert m.reference in ("session_mean", "standing")
    assert np.allclose(m.matrix[0], [1, 0, 0], atol=0.05)


def test_gaps_found_and_listed():
    t = np.concatenate([np.arange(0, 1, 0.005), np.arange(1.2, 2, 0.005), np.arange(2.0125, 3, 0.005)])
    gi = find_gaps(t, 200.0)
    assert len(gi) == 2
    spans = gap_list(t, gi)
    assert spans[0][0] == pytest.approx(0.995) and spans[0][1] == pytest.approx(1.2)


def test_identity_and_readable_angles():
    assert not IDENTITY.upside_down
    assert np.allclose(IDENTITY.angles_deg, 0.0)
    # a clip tilted forward by 10 deg on the pelvis reads tilt +10
    R = P_FLU.T @ euler_to_matrix(10.0, 0.0, 0.0) @ P_FLU
    assert np.allclose(Mounting(R).angles_deg, [10.0, 0.0, 0.0], atol=1e-9)


def test_recording_without_gravity_is_refused():
    from tiltguard.errors import InputError

    t = np.arange(0, 10, 0.01)
    acc = np.zeros((len(t), 3))
    with pytest.raises(InputError):
        estimate_mounting(t, acc, None, 100.0, act.classify(acc, 100.0))
    assert Recording(t, acc).fs_hz == pytest.approx(100.0)
