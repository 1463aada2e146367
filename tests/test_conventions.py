"""The sign conventions of docs/conventions.md, checked where they are implemented."""

import numpy as np
import pytest

from tiltguard.core import angles

FWD, LEFT, UP = np.eye(3)


def _body_to_world(tilt=0.0, obl=0.0, rot=0.0):
    return angles.euler_to_matrix(tilt, obl, rot)


def test_anterior_tilt_moves_the_top_of_the_pelvis_forward():
    up = _body_to_world(tilt=10) @ UP
    assert up[0] == pytest.approx(np.sin(np.radians(10)))
    assert up[1] == pytest.approx(0.0)


def test_positive_obliquity_lifts_the_left_side():
    left = _body_to_world(obl=5) @ LEFT
    assert left[2] == pytest.approx(np.sin(np.radians(5)))


def test_positive_rotation_brings_the_left_side_forward():
    left = _body_to_world(rot=8) @ LEFT
    assert left[0] == pytest.approx(np.sin(np.radians(8)))


def test_composition_order_is_rotation_obliquity_tilt():
    t, o, r = 7.0, -4.0, 11.0
    R = _body_to_world(t, o, r)
    expected = angles.r_down(r) @ angles.r_forward(o) @ angles.r_left(t)
    np.testing.assert_allclose(R, expected, atol=1e-12)
    # read back
    np.testing.assert_allclose(angles.matrix_to_euler(R), [t, o, r], atol=1e-9)


def test_pelvis_axes_are_up_left_back():
    # x up, y left, z backward: the pelvis-to-FLU relabelling is a proper rotation
    P = angles.P_FLU
    np.testing.assert_allclose(P @ [1, 0, 0], UP)
    np.testing.assert_allclose(P @ [0, 1, 0], LEFT)
    np.testing.assert_allclose(P @ [0, 0, 1], -FWD)
    assert np.linalg.det(P) == pytest.approx(1.0)


def test_standing_clip_reads_plus_one_g_on_x():
    # Specific force at rest is +1 g along world up; for a perfectly worn clip that is device +X.
    R_world_from_device = _body_to_world() @ angles.P_FLU
    f_device = R_world_from_device.T @ UP
    np.testing.assert_allclose(f_device, [1, 0, 0], atol=1e-12)
