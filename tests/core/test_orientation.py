"""Orientation (core.orientation, core.angles): angles vs simulator truth under misalignment, upside-down
mounting, gyro bias, packet loss, long gaps, accelerometer-only data and device-computed angles."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from tiltguard.core import angles as A
from tiltguard.core.pipeline import kinematics
from tiltguard.formats.raw import Recording
from tiltguard.sim import SimConfig, simulate

CORE = Path(A.__file__).parent
RUNNING = 2


def rec_of(res, drop: slice | None = None) -> Recording:
    k = res.keep.copy()
    if drop is not None:
        k[drop] = False
    return Recording(t_s=res.t_s[k], acc_g=res.acc_g[k],
                     gyro_dps=None if res.gyro_dps is None else res.gyro_dps[k],
                     angles_deg=None if res.device_angles_deg is None else res.device_angles_deg[k])


def errors(res, kin, keep=None):
    """Per-sample angle errors (deg) on running samples, away from the first/last 20 s of running."""
    k = res.keep if keep is None else keep
    tr = res.angles_deg[k]
    run = res.activity[k] == RUNNING
    t = res.t_s[k]
    tr_run = t[run]
    inner = run & (t > tr_run[0] + 20) & (t < tr_run[-1] - 20)
    return (kin.angles_deg - tr)[inner], t[inner]


def stride_means(e: np.ndarray, t: np.ndarray, win_s: float = 5.0) -> np.ndarray:
    b = np.floor(t / win_s).astype(int)
    b -= b[0]
    cnt = np.bincount(b)
    return np.stack([np.bincount(b, weights=e[:, j])[cnt > 0] / cnt[cnt > 0] for j in range(e.shape[1])], 1)


def rms(x, axis=0):
    return np.sqrt(np.nanmean(np.asarray(x, float) ** 2, axis=axis))


@pytest.fixture(scope="module")
def mountings():
    out = {}
    for name, kw in {"perfect": {}, "misaligned": dict(misalign_deg=20.0),
                     "upside_down": dict(upside_down=True, misalign_deg=8.0)}.items():
        res = simulate(SimConfig(minutes=3.0, seed=21, rate_hz=200, scenario="hills", **kw))
        kin, _ = kinematics(rec_of(res))
        out[name] = (res, kin)
    return out


def test_angles_match_truth_for_any_mounting(mountings):
    for name, (res, kin) in mountings.items():
        e, t = errors(res, kin)
        slow = stride_means(e, t)
        assert np.all(np.abs(slow[:, :2]).mean(axis=0) < 0.5), (name, np.abs(slow).mean(axis=0))
        # within-stride shape: the error high-passed at 0.5 Hz is tiny
        hp = e - signal.sosfiltfilt(signal.butter(2, 0.5, fs=200, output="sos"), e, axis=0)
        assert np.all(rms(hp) < 0.4), (name, rms(hp))


def test_misaligned_and_upside_down_equal_perfect(mountings):
    base = mountings["perfect"][1].angles_deg
    for name in ("misaligned", "upside_down"):
        other = mountings[name][1].angles_deg
        assert other.shape == base.shape
        run = mountings["perfect"][1].running & mountings[name][1].running
        d = (other - base)[run]
        assert np.all(np.abs(d.mean(axis=0)) < 0.5), (name, d.mean(axis=0))
        assert np.all(rms(d - d.mean(axis=0)) < 0.8), (name, rms(d))


def test_zero_while_standing(mountings):
    res, kin = mountings["misaligned"]
    t = res.t_s[res.keep]
    stand = (res.activity[res.keep] == 0) & (t > 2) & (t < 10)
    assert np.all(np.abs(kin.angles_deg[stand]).mean(axis=0) < 0.6)


def test_acc_level_frame(mountings):
    """acc_level_g is [forward, left, up]: up averages +1 g, forward and left about 0 while running."""
    for name, (res, kin) in mountings.items():
        a = kin.acc_level_g[kin.running]
        assert a[:, 2].mean() == pytest.approx(1.0, abs=0.03), name
        assert abs(a[:, 0].mean()) < 0.03 and abs(a[:, 1].mean()) < 0.03, name
        # matches the simulator's true level-frame specific force sample by sample
        f = res.f_level_g[res.keep][kin.running]
        assert rms(a - f).max() < 0.1, (name, rms(a - f))


def test_large_gyro_bias_and_no_stance():
    res = simulate(SimConfig(minutes=3.0, seed=22, rate_hz=100, gyro_bias_dps=4.0, gyro_bias_drift_dps=0.5,
                             standing_s=0.0))
    kin, m = kinematics(rec_of(res))
    assert m.reference == "running"
    e, t = errors(res, kin)
    e -= np.nanmean(e, axis=0)   # without a stance the zero is the running posture
    assert np.all(np.abs(stride_means(e, t)[:, :2]).mean(axis=0) < 0.6)
    assert rms(e[:, 2]) < 1.0


def test_packet_loss_and_long_gap():
    res = simulate(SimConfig(minutes=3.0, seed=23, rate_hz=200, loss=0.03))
    t = res.t_s
    long_gap = (t > 100.0) & (t < 104.0)          # a 4 s dropout on top of packet loss
    keep = res.keep & ~long_gap
    rec = Recording(t_s=t[keep], acc_g=res.acc_g[keep], gyro_dps=res.gyro_dps[keep])
    kin, _ = kinematics(rec)
    assert np.isfinite(kin.angles_deg).all()
    assert any(a < 100.5 and b > 103.5 for a, b in kin.meta["gaps"])
    e, tt = errors(res, kin, keep)
    assert np.all(np.abs(stride_means(e, tt)[:, :2]).mean(axis=0) < 0.6)
    after = (tt > 104.0) & (tt < 110.0)            # re-anchored right after the dropout
    assert np.all(np.abs(e[after]).mean(axis=0) < 1.5), np.abs(e[after]).mean(axis=0)


def test_accelerometer_only_gives_trends():
    res = simulate(SimConfig(minutes=3.0, seed=24, rate_hz=100, gyro=False, scenario="hills"))
    kin, _ = kinematics(rec_of(res))
    assert kin.gyro_body_dps is None and not kin.meta["gyro"]
    assert np.isnan(kin.angles_deg[:, 2]).all()
    assert "rotation_deg" in kin.meta["unavailable"]
    e, t = errors(res, kin)
    slow = stride_means(e[:, :2], t, win_s=10.0)
    assert np.all(np.abs(slow).mean(axis=0) < 1.5), np.abs(slow).mean(axis=0)


def test_device_angles_agreement_reported():
    res = simulate(SimConfig(minutes=2.0, seed=25, rate_hz=100, angles=True))
    kin, _ = kinematics(rec_of(res))
    da = kin.meta["device_angles"]
    assert da["n"] > 1000
    assert all(r is not None and r < 2.0 for r in da["rms_diff_deg"]), da


@pytest.mark.parametrize("seed", [0, 1])
def test_euler_matrix_round_trip_and_signs(seed):
    rng = np.random.default_rng(seed)
    ang = rng.uniform(-60, 60, (200, 3))
    R = A.euler_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
    assert np.allclose(A.matrix_to_euler(R), ang, atol=1e-9)
    v = rng.normal(size=(200, 3))
    assert np.allclose(A.apply_euler(v, *np.radians(ang.T), out_dtype=float), np.einsum("nij,nj->ni", R, v))
    # conventions: anterior tilt moves up forwards; obliquity lifts the left; rotation brings the left forward
    assert A.r_left(10) @ [0, 0, 1] == pytest.approx([np.sin(np.radians(10)), 0, np.cos(np.radians(10))])
    assert (A.r_forward(10) @ [0, 1, 0])[2] > 0
    assert (A.r_down(10) @ [0, 1, 0])[0] > 0


def test_no_per_sample_python_loops():
    """Loops in these modules may run over channels, sections, strides or the few sample slots of a ~50 Hz
    block (``slots``: one whole-array operation per slot), never over samples."""
    allowed = ("range(cols.shape[1])", "range(x.shape[1])", "range(3)", "data.items()", "values.items()",
               "NEEDS_SHAPE", "curves.columns", "self.blocks", "parts", "cols", "np.unique(fcs)", "enumerate(sel)",
               "slots")
    for name in ("angles.py", "align.py", "orientation.py", "activity.py", "pipeline.py"):
        tree = ast.parse((CORE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.For, ast.While)):
                src = ast.unparse(node.iter) if isinstance(node, ast.For) else "while"
                assert any(src.startswith(a) for a in allowed), f"{name}:{node.lineno}: loop over {src}"


@pytest.fixture(scope="module")
def long_gapless():
    """Long enough (> 8192 samples) for the whole-session code paths; no lost samples, no gaps."""
    res = simulate(SimConfig(minutes=1.5, seed=3, rate_hz=200, scenario="steady"))
    return Recording(t_s=res.t_s, acc_g=res.acc_g, gyro_dps=res.gyro_dps)


def test_regular_block_path_equals_the_general_one(long_gapless, monkeypatch):
    """Without lost samples the angles come from (block, slot) views (_angles_regular); the general path
    (cumsum over samples, gathers) must give the same angles to rounding, or one of them has drifted."""
    from tiltguard.core import orientation as O

    fast, _ = kinematics(long_gapless)
    monkeypatch.setattr(O, "_regular_blocks", lambda *a, **k: False)
    slow, _ = kinematics(long_gapless)
    d = np.abs(fast.angles_deg.astype(float) - slow.angles_deg.astype(float))
    assert np.nanmax(d) < 1e-4, np.nanmax(d, axis=0)
    assert np.allclose(fast.acc_level_g, slow.acc_level_g, atol=1e-5)


def test_rotation_without_threadpoolctl_is_the_same(long_gapless, monkeypatch):
    """The sensor rotations keep BLAS on one thread via threadpoolctl; without it they still work, alike."""
    from tiltguard.core import orientation as O

    with_ctl, _ = kinematics(long_gapless)
    monkeypatch.setattr(O, "_blas_controller", lambda: None)
    without, _ = kinematics(long_gapless)
    assert np.array_equal(with_ctl.angles_deg, without.angles_deg)
    assert np.array_equal(with_ctl.gyro_body_dps, without.gyro_body_dps)
