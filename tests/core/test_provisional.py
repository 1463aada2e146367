"""Provisional strides (core.provisional): each stride right after its closing contact, close to the final one."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiltguard.core.pipeline import AnalysisConfig, analyze
from tiltguard.core.provisional import ProvisionalStrides
from tiltguard.formats.raw import Recording
from tiltguard.formats.session import STRIDES_COLUMNS
from tiltguard.sim import SimConfig, simulate

CORE = Path(__file__).resolve().parents[2] / "host" / "tiltguard" / "core"
FRAME = 12          # samples per full-mode frame at 200 Hz (the clip sends them one by one)
START_S = 60.0      # feed from here on (the mounting is known from the batch call)


def _session(**kw) -> Recording:
    res = simulate(SimConfig(minutes=3.5, seed=5, rate_hz=200, scenario="steady", **kw))
    k = res.keep
    return Recording(t_s=res.t_s[k], acc_g=res.acc_g[k], gyro_dps=None if res.gyro_dps is None else res.gyro_dps[k])


def _feed(rec: Recording, batch, blocks) -> tuple[pd.DataFrame, ProvisionalStrides]:
    """Feed blocks of the given sizes from START_S - window; returns the strides with the newest sample
    time at which each was given (``t_given_s``)."""
    run = batch.kinematics.t_s[batch.kinematics.running]
    p = ProvisionalStrides(AnalysisConfig(), batch.mounting, batch.kinematics.fs_hz, float(run[0]))
    i = int(np.searchsorted(rec.t_s, START_S - 12.0))
    out, k = [], 0
    while i < len(rec.t_s):
        n = blocks[k % len(blocks)]
        k += 1
        g = None if rec.gyro_dps is None else rec.gyro_dps[i:i + n]
        new = p.feed(rec.t_s[i:i + n], rec.acc_g[i:i + n], g)
        if len(new):
            out.append(pd.DataFrame(new, columns=STRIDES_COLUMNS).assign(t_given_s=rec.t_s[i:i + n][-1]))
        i += n
    return pd.concat(out, ignore_index=True), p


def _match(prov: pd.DataFrame, final: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    fe = final["t_end_s"].to_numpy(float)
    pe = prov["t_end_s"].to_numpy(float)
    j = np.clip(np.searchsorted(fe, pe), 1, len(fe) - 1)
    j = np.where(np.abs(fe[j - 1] - pe) < np.abs(fe[j] - pe), j - 1, j)
    ok = np.abs(fe[j] - pe) < 0.04
    return prov[ok].reset_index(drop=True), final.iloc[j[ok]].reset_index(drop=True)


@pytest.fixture(scope="module")
def steady():
    rec = _session()
    batch = analyze(rec)
    prov, p = _feed(rec, batch, [FRAME])
    return rec, batch, prov, p


def test_every_stride_soon_after_its_closing_contact(steady):
    rec, batch, prov, p = steady
    final = batch.strides[batch.strides["t_start_s"] >= START_S]
    prov = prov[prov["t_start_s"] >= START_S]
    pm, fm = _match(prov, final)
    # (nearly) every final stride was given provisionally, and nothing else was
    assert len(pm) >= 0.97 * len(final) and len(pm) == len(prov)
    # given within the frame holding the closing contact's steep rise: about 0.1 s of samples after it ends
    wait = prov["t_given_s"].to_numpy() - prov["t_end_s"].to_numpy()
    assert wait.min() > 0 and np.percentile(wait, 95) < 0.11 and wait.max() < 0.2
    # one look per stride, give or take (every other contact closes a stride; the rest are skipped)
    assert p.looks <= 1.3 * len(prov) + 10


def test_timing_columns_equal_the_final_strides(steady):
    _, batch, prov, _ = steady
    pm, fm = _match(prov, batch.strides)
    for col, tol_med, tol_p95 in (("t_start_s", 1e-3, 3e-3), ("t_end_s", 1e-3, 3e-3), ("cadence_spm", 0.2, 0.5),
                                  ("gct_l_ms", 1.0, 3.0), ("gct_r_ms", 1.0, 3.0)):
        d = np.abs(pm[col].to_numpy(float) - fm[col].to_numpy(float))
        assert np.median(d) <= tol_med and np.percentile(d, 95) <= tol_p95, (col, np.median(d), np.percentile(d, 95))


def test_angles_close_to_the_final_strides(steady):
    """The window's end sees one side of the tilt low-pass: a degree or so, not more (cues use final)."""
    _, batch, prov, _ = steady
    pm, fm = _match(prov, batch.strides)
    for col, tol in (("tilt_mean_deg", 2.5), ("tilt_rom_deg", 1.0), ("obliquity_rom_deg", 1.5),
                     ("rotation_rom_deg", 1.5)):
        d = np.abs(pm[col].to_numpy(float) - fm[col].to_numpy(float))
        assert np.nanmedian(d) <= tol, (col, np.nanmedian(d))


def test_a_burst_gives_the_same_strides_as_frames(steady):
    """A backfilled stretch arrives in big blocks: each look still ends just after its contact."""
    rec, batch, prov, _ = steady
    burst, _ = _feed(rec, batch, [400, FRAME, 1000, 7])
    a, b = prov.drop(columns="t_given_s"), burst.drop(columns="t_given_s")
    assert len(a) == len(b)
    assert np.allclose(a.to_numpy(float), b.to_numpy(float), equal_nan=True, atol=1e-9)


def test_a_caller_that_holds_blocks_until_wanted_gets_each_stride_with_the_same_block(steady):
    """``wants`` (asked with a block's |a| extremes) is never late: holding blocks back until it says yes gives
    every stride at the same block as feeding each block at once, with far fewer feeds."""
    rec, batch, prov, _ = steady
    run = batch.kinematics.t_s[batch.kinematics.running]
    p = ProvisionalStrides(AnalysisConfig(), batch.mounting, batch.kinematics.fs_hz, float(run[0]))
    i0 = int(np.searchsorted(rec.t_s, START_S - 12.0))
    held, out, feeds, blocks = [], [], 0, 0
    for i in range(i0, len(rec.t_s), FRAME):
        sl = slice(i, i + FRAME)
        mag = np.linalg.norm(rec.acc_g[sl], axis=1)
        held.append(sl)
        blocks += 1
        if p.wants(float(mag.min()), float(mag.max())):
            j = slice(held[0].start, sl.stop)
            new = p.feed(rec.t_s[j], rec.acc_g[j], rec.gyro_dps[j])
            feeds += 1
            held = []
            if len(new):
                out.append(pd.DataFrame(new, columns=STRIDES_COLUMNS).assign(t_given_s=rec.t_s[sl][-1]))
    got = pd.concat(out, ignore_index=True)
    assert len(got) == len(prov) > 100
    assert np.allclose(got.to_numpy(float), prov.to_numpy(float), equal_nan=True, atol=1e-9)  # t_given_s too
    assert feeds < 0.4 * blocks


def test_accelerometer_only_gives_timing_and_a_tilt_trend():
    rec = _session(gyro=False)
    batch = analyze(rec)
    prov, _ = _feed(rec, batch, [19])
    pm, fm = _match(prov, batch.strides)
    assert len(pm) >= 0.9 * len(batch.strides[batch.strides["t_start_s"] >= START_S])
    assert pm["tilt_rom_deg"].isna().all() and pm["tilt_mean_deg"].notna().all()
    assert np.median(np.abs(pm["cadence_spm"] - fm["cadence_spm"])) < 0.2


def test_standing_and_bad_samples_give_nothing_and_never_raise(steady):
    rec, batch, _, _ = steady
    run = batch.kinematics.t_s[batch.kinematics.running]
    p = ProvisionalStrides(AnalysisConfig(), batch.mounting, 200.0, float(run[0]))
    t = 1000.0 + np.arange(4000) / 200.0
    still = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    assert len(p.feed(t[:2000], still[:2000])) == 0
    noisy = still[2000:] + np.random.default_rng(0).normal(0, 2.0, (2000, 3))
    noisy[::7] = np.nan                       # a sensor dropping values
    noisy[100:140] = 16.0                     # and saturating
    for i in range(0, 2000, FRAME):
        p.feed(t[2000 + i: 2000 + i + FRAME], noisy[i: i + FRAME])
    assert len(p.feed(t[:0], still[:0])) == 0


def test_no_per_sample_python_loops():
    """Loops here run over the contacts in a block (a few per second of samples), never over samples."""
    tree = ast.parse((CORE / "provisional.py").read_text())
    loops = [ast.unparse(n.iter) if isinstance(n, ast.For) else ast.unparse(n.test)
             for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]
    allowed = ("self._queue and", "i < n", "((4, 'gyro', gyro), (7, 'angles', ang))")
    assert loops and all(src.startswith(allowed) for src in loops), loops
