"""Running simulator with exact truth, and scoring of analyses against it.

>>> from tiltguard.sim import SimConfig, simulate, write_session, preset
>>> res = simulate(preset("hills", seed=3, minutes=8, rate_hz=100, misalign_deg=15))
>>> write_session(res, "out/sim-hills")            # raw.csv.gz, session.json, truth/

Modules: ``config`` (parameters, presets), ``gait`` (timing and force shapes from speed), ``body`` (pelvis
motion), ``sensor`` (mounting and IMU errors), ``truth`` (truth tables), ``engine`` (``simulate``), ``io``
(``write_session``), ``score`` (``score``, ``score_many``), ``cli`` / ``score_cli`` (commands).
Sources of every number: docs/simulator.md.
"""

from __future__ import annotations

from tiltguard.sim.config import SCENARIOS, Segment, SimConfig, Turn
from tiltguard.sim.engine import SimResult, simulate


def preset(name: str, seed: int = 0, **overrides) -> SimConfig:
    """A :class:`SimConfig` for scenario ``name`` (see ``SCENARIOS``) with any field overridden."""
    return SimConfig(scenario=name, seed=seed, **overrides).validate()


def write_session(result: SimResult, out_dir, gzip: bool = True):
    """Write ``raw.csv[.gz]``, ``session.json`` and ``truth/`` for a simulated session."""
    from tiltguard.sim.io import write_session as _write

    return _write(result, out_dir, gzip=gzip)


def simulate_session(out_dir, gzip: bool = True, **config):
    """Simulate with ``SimConfig(**config)`` and write the session folder; returns its path."""
    return write_session(simulate(SimConfig(**config)), out_dir, gzip=gzip)


def score(output_dir, truth_dir, tol_s: float = 0.040) -> dict:
    """Scores of one analysis output folder against a simulated session (see ``tiltguard.sim.score``)."""
    from tiltguard.sim.score import score as _score

    return _score(output_dir, truth_dir, tol_s)


__all__ = ["SCENARIOS", "Segment", "SimConfig", "SimResult", "Turn", "preset", "score", "simulate", "simulate_session",
           "write_session"]
