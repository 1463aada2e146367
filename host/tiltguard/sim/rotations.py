"""Rotation helpers for the simulator, vectorised over samples.

Frames follow ``docs/conventions.md``: the level world frame is (forward, left, up); the pelvis and
device frames are (x up, y left, z backward). ``M`` relabels pelvis axes into (forward, left, up).
Pelvis orientation: ``R = R_up(heading) @ R_down(rotation) @ R_forward(obliquity) @ R_left(tilt) @ M``
(pelvis vector -> world vector). Angles in radians unless the name says ``_deg``.
"""

from __future__ import annotations

import numpy as np

# pelvis (x up, y left, z back) -> level (forward, left, up): x->up, y->left, z->-forward
M = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def _stack(rows) -> np.ndarray:
    out = np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)
    return out


def rot_x(a) -> np.ndarray:
    """Rotation about the first axis (forward in the level frame); shape (..., 3, 3)."""
    a = np.asarray(a, dtype=float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return _stack([[o, z, z], [z, c, -s], [z, s, c]])


def rot_y(a) -> np.ndarray:
    """Rotation about the second axis (left)."""
    a = np.asarray(a, dtype=float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return _stack([[c, z, s], [z, o, z], [-s, z, c]])


def rot_z(a) -> np.ndarray:
    """Rotation about the third axis (up)."""
    a = np.asarray(a, dtype=float)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return _stack([[c, -s, z], [s, c, z], [z, z, o]])


def pelvis_to_level(tilt, obliquity, rotation, heading=0.0) -> np.ndarray:
    """Pelvis -> world rotation matrices (..., 3, 3) from the convention angles (rad)."""
    return rot_z(np.asarray(heading) - np.asarray(rotation)) @ rot_x(obliquity) @ rot_y(tilt) @ M


def angles_from_level(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pelvis_to_level` without heading: (..., 3) [tilt, obliquity, rotation] rad.

    ``R`` may carry a heading; it is then folded into ``rotation`` (rotation = -yaw).
    """
    A = R @ M.T  # = Rz(yaw) Rx(o) Ry(t)
    o = np.arcsin(np.clip(A[..., 2, 1], -1.0, 1.0))
    t = np.arctan2(-A[..., 2, 0], A[..., 2, 2])
    yaw = np.arctan2(-A[..., 0, 1], A[..., 1, 1])
    return np.stack([t, o, -yaw], axis=-1)


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
