"""Events on REAL sacral running against force plates (Alcantara et al.; read in place, never copied).

Truth and edge rule are those of benchmarks/core_real.py (imported, so the test and the printed figures
cannot disagree): a stance counts when its IC and TO both lie inside the trial with the detector's margins
(EDGE_BEFORE_S before the IC, EDGE_AFTER_S after the TO); any detection not within 40 ms of a force-plate
IC (cut stances included) is an extra step.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core_real():
    spec = importlib.util.spec_from_file_location("core_real", ROOT / "benchmarks" / "core_real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def trials(alcantara_dir, core_real):
    return core_real.load_trials(alcantara_dir)


@pytest.fixture(scope="module")
def scored(trials, core_real):
    vert, ap, grf, _ = trials
    return core_real.score_trials(vert, ap, grf)


def test_real_trials_are_all_there(trials):
    vert, ap, grf, info = trials
    assert vert.shape == ap.shape == grf.shape == (31, 2480) and len(info) == 31


def test_real_every_stance_found_no_extra_in_any_trial(scored):
    assert scored["stances"] >= 400          # ~15 steps x 31 trials
    bad = [p for p in scored["per_trial"] if p[3] or p[4]]
    assert bad == [], f"(trial, stances, detected, missed, extra): {bad}"


def test_real_initial_contact_within_15_ms_median(scored):
    assert scored["ic_median_abs_ms"] <= 15.0, scored


def test_real_contact_time_mae_within_20_ms(scored):
    assert scored["gct_mae_ms"] <= 20.0, scored


def test_real_force_plate_truth_is_sane(trials, core_real):
    _, _, grf, _ = trials
    t_ic, t_to, complete = core_real.force_plate_stances(grf[5])
    gct = (t_to - t_ic)[complete]
    assert 10 <= complete.sum() <= 20
    assert np.all((gct > 0.15) & (gct < 0.40))


def test_real_sample_clip_cadence(alcantara_dir, core_real):
    """Raw 3-axis clip as worn (gravity on -X, no calibration): cadence 162.5 +/- 2 steps/min."""
    cad, path, n = core_real.sample_cadence(alcantara_dir)
    assert n >= 8, path
    assert path.startswith("tiltguard.core.pipeline.analyze"), path     # the full analysis path
    assert abs(cad - 162.5) <= 2.0, (cad, path)
