"""The hand-over between orientation and the event/metric stages.

Orientation (``core.orientation``) turns a raw :class:`~tiltguard.formats.raw.Recording` into a
:class:`Kinematics`; events and metrics read only this. All arrays share the sample axis of ``t_s``.
Frames and signs are those of ``docs/conventions.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Kinematics:
    t_s: np.ndarray                 # (N,) seconds from session start, increasing, gaps allowed
    fs_hz: float                    # nominal sample rate (median interval)
    acc_level_g: np.ndarray         # (N, 3) specific force in the level heading frame [forward, left, up];
                                    #   the up column averages +1 g over a stride (gravity included)
    angles_deg: np.ndarray          # (N, 3) [tilt, obliquity, rotation] relative to standing; NaN = unavailable
    gyro_body_dps: np.ndarray | None = None   # (N, 3) angular velocity in the pelvis frame (x up, y left, z back)
    valid: np.ndarray | None = None           # (N,) bool: False in gaps, saturation, dropouts
    running: np.ndarray | None = None         # (N,) bool: sample belongs to a running segment
    activity: np.ndarray | None = None        # (N,) small ints, see core.activity (standing/walking/running/stopped)
    meta: dict = field(default_factory=dict)  # mounting estimate, quality figures, what was unavailable

    def __post_init__(self) -> None:
        n = len(self.t_s)
        if self.valid is None:
            self.valid = np.ones(n, dtype=bool)
        if self.running is None:
            self.running = np.ones(n, dtype=bool)


def shape_missing(kin: Kinematics, t0_s, t1_s) -> np.ndarray:
    """(n,) bool: strides ``[t0, t1]`` whose angles lack the within-stride shape.

    The shape comes from the host's gyro or, in compact mode, from the clip's own angles
    (``kin.meta["shape"]``); a stride is missing it when neither is there, or when the clip sent no angles
    for one of its samples (``kin.meta["shape_missing"]``, e.g. before the clip was calibrated).
    """
    t0 = np.asarray(t0_s, dtype=np.float64)
    if not kin.meta.get("shape", True):
        return np.ones(len(t0), dtype=bool)
    miss = kin.meta.get("shape_missing")
    if miss is None or len(t0) == 0:
        return np.zeros(len(t0), dtype=bool)
    before = np.concatenate(([0], np.cumsum(miss)))      # missing samples before each index
    i0 = np.searchsorted(kin.t_s, t0, side="left")
    i1 = np.searchsorted(kin.t_s, np.asarray(t1_s, dtype=np.float64), side="right")
    return before[i1] > before[i0]
