"""Shared fixtures for the live tests: a short simulated run with a drift the detector catches."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

FAST_TOML = """
[drift]
warmup_s = 30.0
baseline_s = 60.0

[alerts]
min_interval_s = 30.0
"""


@pytest.fixture(scope="session")
def drift_run(tmp_path_factory) -> Path:
    """A 5-minute simulated run (200 Hz, gyro, no packet loss) whose tilt drifts up from 100 s."""
    from tiltguard.sim import simulate_session

    out = tmp_path_factory.mktemp("sim") / "drift5"
    simulate_session(out, gzip=False, minutes=5.0, seed=31, rate_hz=200, scenario="drift", drift_deg=5.0,
                     drift_onset_s=100.0, drift_rate_deg_per_min=2.5)
    return out


@pytest.fixture(scope="session")
def fast_config(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "live.toml"
    p.write_text(FAST_TOML)
    return p


def live_args(**kw) -> argparse.Namespace:
    base = dict(replay=None, serial=None, ble=None, speed="max", session=None, config=None, no_ui=True,
                sound=False, duration=None, idle_exit=None, mode=None, baud=921600, calibrate=False)
    base.update(kw)
    return argparse.Namespace(**base)
