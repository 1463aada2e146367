"""Rotation helpers for the simulator, vectorised over samples.

Frames follow ``docs/conventions.md``: the level world frame is (forward, left, up); the pelvis and
device frames are (x up, y left, z backward). ``M`` relabels pelvis axes into (forward, left, up).
Pelvis orientation: ``R = R_up(heading) @ R_down(rotation) @ R_forward(obliquity) @ R_left(tilt) @ M``
(pelvis vector -> world vector). Angles in radians unless the name says ``_deg``.
"""

from __future__ import annotations

import numpy as np

from tiltguard.core.angles import P_FLU, euler_rad_to_matrix, matrix_to_euler_rad

# pelvis (x up, y left, z back) -> level (forward, left, up); the one definition is core.angles
M = P_FLU


def pelvis_to_level(tilt, obliquity, rotation, heading=0.0) -> np.ndarray:
    """Pelvis -> world rotation matrices (..., 3, 3) from the convention angles (rad)."""
    return euler_rad_to_matrix(tilt, obliquity, np.asarray(rotation) - np.asarray(heading)) @ M


def angles_from_level(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pelvis_to_level` without heading: (..., 3) [tilt, obliquity, rotation] rad.

    ``R`` may carry a heading; it is then folded into ``rotation`` (rotation = -yaw).
    """
    return matrix_to_euler_rad(R @ M.T)


def axis_angle(axis, angle) -> np.ndarray:
    """Rotation matrix (3, 3) for a unit axis and an angle (rad), Rodrigues."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * (K @ K)


def exp_map(rv: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) from rotation vectors (N, 3) (rad)."""
    rv = np.atleast_2d(rv)
    th = np.linalg.norm(rv, axis=1)
    small = th < 1e-12
    k = rv / np.where(small, 1.0, th)[:, None]
    K = np.zeros((len(rv), 3, 3))
    K[:, 0, 1], K[:, 0, 2] = -k[:, 2], k[:, 1]
    K[:, 1, 0], K[:, 1, 2] = k[:, 2], -k[:, 0]
    K[:, 2, 0], K[:, 2, 1] = -k[:, 1], k[:, 0]
    s, c = np.sin(th)[:, None, None], np.cos(th)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Angle of rotation matrices (..., 3, 3) in degrees."""
    tr = np.trace(R, axis1=-2, axis2=-1)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1.0, 1.0)))
