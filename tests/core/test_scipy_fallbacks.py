"""The core calls a few private scipy C routines directly (their wrappers cost more than the work on a live
window). Each is checked at import; without them the public wrappers must give the very same results."""

from __future__ import annotations

import numpy as np

from tiltguard.core import activity, events, orientation
from tiltguard.core.pipeline import analyze
from tiltguard.formats.raw import Recording
from tiltguard.sim import SimConfig, simulate


def test_public_wrappers_give_the_same_analysis(monkeypatch):
    res = simulate(SimConfig(minutes=1.5, seed=4, rate_hz=200, loss=0.02))
    k = res.keep
    rec = Recording(t_s=res.t_s[k], acc_g=res.acc_g[k], gyro_dps=res.gyro_dps[k])
    fast = analyze(rec)     # with the private routines this scipy passed the import check for
    monkeypatch.setattr(events, "_sosfilt", None)
    monkeypatch.setattr(orientation, "_nd_image", None)
    monkeypatch.setattr(activity, "_nd_image", None)
    slow = analyze(rec)
    assert len(fast.strides) > 20
    for a, b in ((fast.steps, slow.steps), (fast.strides, slow.strides)):
        num = a.select_dtypes("number").columns
        assert np.array_equal(a[num].to_numpy(float), b[num].to_numpy(float), equal_nan=True)
    assert np.array_equal(fast.kinematics.angles_deg, slow.kinematics.angles_deg, equal_nan=True)
