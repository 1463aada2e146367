"""Activity segmentation (core.activity) against simulator truth: stops, run-walk, any mounting."""

from __future__ import annotations

import numpy as np
import pytest

from tiltguard.core import activity as act
from tiltguard.sim import Segment, SimConfig, simulate

RUN_WALK = [Segment("standing", 10), Segment("walking", 20, 1.4), Segment("running", 40, 3.0),
            Segment("walking", 30, 1.5), Segment("running", 40, 2.6), Segment("stopped", 20),
            Segment("walking", 10, 1.2), Segment("running", 30, 4.5), Segment("standing", 10)]


def confusion(res, codes):
    tr = res.activity[res.keep]
    cm = np.zeros((4, 4), int)
    np.add.at(cm, (tr, codes), 1)
    return cm


@pytest.mark.parametrize("kw", [dict(scenario="stops", minutes=6.0, rate_hz=100),
                                dict(segments=RUN_WALK, minutes=3.5, rate_hz=200, upside_down=True, misalign_deg=15)])
def test_labels_match_truth(kw):
    res = simulate(SimConfig(seed=3, **kw))
    k = res.keep
    codes = act.classify(res.acc_g[k], res.config.rate_hz)
    cm = confusion(res, codes)
    acc = np.trace(cm) / cm.sum()
    assert acc > 0.96, cm
    recall = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
    precision = np.diag(cm) / np.maximum(cm.sum(axis=0), 1)
    assert recall[act.RUNNING] > 0.99 and precision[act.RUNNING] > 0.98, cm
    for c in (act.STANDING, act.WALKING, act.STOPPED):
        if cm[c].sum():
            assert recall[c] > 0.8, (act.NAMES[c], cm)


def test_running_bouts_follow_run_walk():
    res = simulate(SimConfig(seed=4, rate_hz=100, segments=RUN_WALK, minutes=3.5))
    k = res.keep
    codes = act.classify(res.acc_g[k], 100.0)
    b = act.bouts(codes == act.RUNNING)
    assert len(b) == 3                     # three running bouts, no flicker
    t = res.t_s[k]
    true_b = act.bouts(res.activity[k] == act.RUNNING)
    assert np.abs(t[b] - t[np.minimum(true_b, len(t) - 1)]).max() < 2.0


def test_still_before_first_run_is_standing_after_is_stopped():
    t = np.arange(0, 60, 0.01)
    acc = np.zeros((len(t), 3))
    acc[:, 0] = 1.0
    # a synthetic "run": 2.8 Hz humps with flight between 20 and 40 s
    run = (t > 20) & (t < 40)
    ph = (t * 2.8) % 1.0
    acc[run, 0] = np.where(ph[run] < 0.4, 1.0 + 1.6 * np.sin(np.pi * ph[run] / 0.4) * 1.5, 0.05)
    codes = act.classify(acc, 100.0)
    assert (codes[(t > 2) & (t < 18)] == act.STANDING).all()
    assert (codes[(t > 22) & (t < 38)] == act.RUNNING).all()
    assert (codes[(t > 42) & (t < 58)] == act.STANDING).all()     # after the last run: standing
    # a window of a longer session that knows the first run already: later stills are stops
    late = act.classify(acc, 100.0, first_run_s=5.0, t_s=t)
    assert (late[(t > 8) & (t < 18)] == act.STOPPED).all()


def test_empty_and_tiny_inputs():
    assert len(act.classify(np.zeros((0, 3)), 100.0)) == 0
    assert len(act.classify(np.ones((5, 3)), 100.0)) == 5
