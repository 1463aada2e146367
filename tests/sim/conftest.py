import pytest

from tiltguard.sim import Segment, SimConfig, Turn, simulate


@pytest.fixture(scope="module")
def clean_run():
    """3.5 min of clean (error-free) 500 Hz data: standing, walking, running with a pace change,
    a hill, a turnaround and a bend, misaligned by 20 deg."""
    segs = [Segment("standing", 12), Segment("walking", 10, 1.4), Segment("running", 60, 3.2),
            Segment("running", 60, 4.0, 5.0), Segment("running", 50, 3.6, -4.0), Segment("walking", 8, 1.3),
            Segment("stopped", 10)]
    turns = [Turn(70.0, 180.0, 4.0), Turn(150.0, -45.0, 10.0)]
    cfg = SimConfig(seed=11, rate_hz=500, clean=True, misalign_deg=20, segments=segs, turns=turns, minutes=3.5)
    return simulate(cfg)
