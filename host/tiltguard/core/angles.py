"""Pelvic angles <-> rotation matrices, in the one order fixed by ``docs/conventions.md``.

Frames: the pelvis frame has ``x`` up, ``y`` left, ``z`` backward; the level world frame is
``[forward, left, up]``. :data:`P_FLU` takes pelvis coordinates to forward/left/up coordinates of the same
body, so at standing (all angles zero) the pelvis-to-world rotation is ``P_FLU``.

``R = R_down(rotation) @ R_forward(obliquity) @ R_left(tilt)`` maps body vectors (in forward/left/up body
coordinates) to the level world frame. All functions broadcast over leading axes; angles in degrees.
"""

from __future__ import annotations

import numpy as np

# pelvis (x up, y left, z back) -> body forward/left/up: forward = -z, left = y, up = x
P_FLU = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def _rot(axis: int, a_rad: np.ndarray) -> np.ndarray:
    a_rad = np.asarray(a_rad, dtype=float)
    c, s = np.cos(a_rad), np.sin(a_rad)
    out = np.zeros(a_rad.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def r_left(tilt_deg) -> np.ndarray:
    """Rotation about +left (anterior tilt positive: up moves towards forward)."""
    return _rot(1, np.radians(tilt_deg))


def r_forward(obliquity_deg) -> np.ndarray:
    """Rotation about +forward (left side up positive)."""
    return _rot(0, np.radians(obliquity_deg))


def r_down(rotation_deg) -> np.ndarray:
    """Rotation about +down (left side forward positive)."""
    return _rot(2, -np.radians(rotation_deg))


def euler_to_matrix(tilt_deg, obliquity_deg, rotation_deg) -> np.ndarray:
    """``R_down(rotation) @ R_forward(obliquity) @ R_left(tilt)``, shape ``(..., 3, 3)``."""
    return euler_rad_to_matrix(np.radians(tilt_deg), np.radians(obliquity_deg), np.radians(rotation_deg))


def euler_rad_to_matrix(tilt_rad, obliquity_rad, rotation_rad) -> np.ndarray:
    """:func:`euler_to_matrix` with the angles in radians."""
    return _rot(2, -np.asarray(rotation_rad, dtype=float)) @ _rot(0, obliquity_rad) @ _rot(1, tilt_rad)


def matrix_to_euler_rad(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_rad_to_matrix`: ``(..., 3)`` array ``[tilt, obliquity, rotation]`` in radians."""
    R = np.asarray(R, dtype=float)
    tilt = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    obl = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    rot = np.arctan2(R[..., 0, 1], R[..., 1, 1])
    return np.stack([tilt, obl, rot], axis=-1)


def matrix_to_euler(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix`: ``(..., 3)`` array ``[tilt, obliquity, rotation]`` in degrees."""
    return np.degrees(matrix_to_euler_rad(R))


def up_in_body(tilt_rad: np.ndarray, obliquity_rad: np.ndarray) -> np.ndarray:
    """World up seen in body forward/left/up coordinates, i.e. ``R.T @ [0, 0, 1]`` (rotation-free)."""
    ct, st = np.cos(tilt_rad), np.sin(tilt_rad)
    co, so = np.cos(obliquity_rad), np.sin(obliquity_rad)
    return np.stack([-st * co, so, ct * co], axis=-1)


def apply_euler(v: np.ndarray, tilt_rad, obliquity_rad, rotation_rad, out_dtype=np.float32) -> np.ndarray:
    """Rotate body vectors ``v`` (N, 3; forward/left/up) into the level frame, sample by sample.

    Vectorised form of ``euler_to_matrix(...) @ v[n]`` without building (N, 3, 3) matrices; computed in
    ``out_dtype`` with few temporaries.
    """
    dt = np.dtype(out_dtype)
    ct, st = np.cos(np.asarray(tilt_rad, dt)), np.sin(np.asarray(tilt_rad, dt))
    f = np.ascontiguousarray(v[:, 0], dtype=dt)
    l = np.ascontiguousarray(v[:, 1], dtype=dt)
    u = np.ascontiguousarray(v[:, 2], dtype=dt)
    # R_left(tilt): f1 = ct f + st u, u1 = ct u - st f
    f1 = ct * f
    f1 += st * u
    u *= ct
    f *= st
    u -= f                                   # u1
    c, s = np.cos(np.asarray(obliquity_rad, dt)), np.sin(np.asarray(obliquity_rad, dt))
    # R_forward(obliquity): l2 = c l - s u1, u2 = s l + c u1
    l2 = c * l
    l2 -= s * u
    l *= s
    u *= c
    u += l                                   # u2
    c, s = np.cos(np.asarray(rotation_rad, dt)), np.sin(np.asarray(rotation_rad, dt))
    out = np.empty((len(v), 3), dtype=dt)
    # R_down(rotation) = rotation about +up by -rotation
    out[:, 0] = c * f1 + s * l2
    l2 *= c
    f1 *= s
    l2 -= f1
    out[:, 1] = l2
    out[:, 2] = u
    return out


def rotate_rows(x: np.ndarray, M: np.ndarray, out_dtype=np.float32, offset=None) -> np.ndarray:
    """``(x - offset) @ M.T`` for (N, 3) ``x`` and a 3x3 ``M``, column by column.

    Far faster than ``@`` for this shape (numpy's matmul takes a slow path for 3-wide operands).
    """
    dt = np.dtype(out_dtype)
    cols = [np.asarray(x[:, k], dtype=dt) for k in range(3)]
    if offset is not None:
        cols = [c - dt.type(o) for c, o in zip(cols, offset)]
    out = np.empty((len(x), 3), dtype=dt)
    for i in range(3):   # three output axes
        r = cols[0] * dt.type(M[i, 0])
        r += cols[1] * dt.type(M[i, 1])
        r += cols[2] * dt.type(M[i, 2])
        out[:, i] = r
    return out
