"""GraspNet (x approach, y closing) <-> PiPER gripper (z approach, y closing) on known poses."""

import numpy as np
import pytest

from dkt_grasping.grasp import Grasp, grasp_nms, rotation_distance, sort_grasps
from dkt_grasping.grasp_frames import graspnet_to_piper, gripper_frame_from_axes, piper_to_graspnet
from dkt_stack.transforms import make_transform, xyz_rpy_to_transform


def test_identity_graspnet_pose_becomes_approach_along_z():
    T = graspnet_to_piper(np.eye(4))
    # GraspNet approach (its x) must be our z; closing y stays y; our x = y cross z = -GraspNet z.
    np.testing.assert_array_equal(T[:3, 2], [1, 0, 0])
    np.testing.assert_array_equal(T[:3, 1], [0, 1, 0])
    np.testing.assert_array_equal(T[:3, 0], [0, 0, -1])
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)


def test_top_down_graspnet_grasp():
    # A GraspNet grasp approaching straight down (-z of the world) and closing along world y, at (0.3, 0.1, 0.05).
    R_gn = np.column_stack([[0, 0, -1], [0, 1, 0], np.cross([0, 0, -1], [0, 1, 0])])
    T = graspnet_to_piper(make_transform(R_gn, [0.3, 0.1, 0.05]))
    np.testing.assert_allclose(T[:3, 2], [0, 0, -1])  # approach down
    np.testing.assert_allclose(T[:3, 1], [0, 1, 0])  # closing along y
    np.testing.assert_allclose(T[:3, 0], [-1, 0, 0])  # x = y cross z
    np.testing.assert_allclose(T[:3, 3], [0.3, 0.1, 0.05])  # same origin


def test_round_trip_and_batch():
    rng = np.random.default_rng(0)
    Ts = np.array([xyz_rpy_to_transform(rng.normal(size=3), rng.uniform(-3, 3, 3)) for _ in range(5)])
    np.testing.assert_allclose(piper_to_graspnet(graspnet_to_piper(Ts)), Ts, atol=1e-12)
    for T, P in zip(Ts, graspnet_to_piper(Ts)):
        np.testing.assert_allclose(P[:3, 2], T[:3, 0])  # approach
        np.testing.assert_allclose(P[:3, 1], T[:3, 1])  # closing
    with pytest.raises(ValueError, match="4x4"):
        graspnet_to_piper(np.eye(3))


def test_gripper_frame_from_axes_orthogonalises():
    R = gripper_frame_from_axes([0, 0, -2], [1, 1, 0.5])
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R[:, 2], [0, 0, -1])
    np.testing.assert_allclose(R[:, 1], np.array([1, 1, 0]) / np.sqrt(2))
    with pytest.raises(ValueError, match="parallel"):
        gripper_frame_from_axes([0, 0, 1], [0, 0, 3])


def _grasp(pos, yaw, score):
    return Grasp(pose=xyz_rpy_to_transform(pos, (np.pi, 0, yaw)), width=0.04, score=score, depth=0.02)


def test_sort_and_nms_with_gripper_symmetry():
    a = _grasp((0.3, 0, 0.05), 0.0, 0.5)
    b = _grasp((0.303, 0, 0.05), np.pi, 0.9)  # same grasp turned a half turn: a duplicate of a
    c = _grasp((0.3, 0, 0.05), np.pi / 2, 0.7)  # same place, closing 90 deg apart: distinct
    d = _grasp((0.4, 0, 0.05), 0.0, 0.6)  # elsewhere: distinct
    assert [g.score for g in sort_grasps([a, b, c, d])] == [0.9, 0.7, 0.6, 0.5]
    assert rotation_distance(a.pose[:3, :3], b.pose[:3, :3]) == pytest.approx(0.0, abs=1e-7)
    assert rotation_distance(a.pose[:3, :3], b.pose[:3, :3], gripper_symmetric=False) == pytest.approx(np.pi)
    kept = grasp_nms([a, b, c, d], translation_threshold=0.01, rotation_threshold=np.deg2rad(30))
    assert [g.score for g in kept] == [0.9, 0.7, 0.6]
    assert [g.score for g in grasp_nms([a, b, c, d], max_keep=2)] == [0.9, 0.7]


def test_grasp_rejects_bad_pose():
    with pytest.raises(ValueError, match="rotation"):
        Grasp(pose=np.diag([1.0, 1.0, -1.0, 1.0]), width=0.01, score=1, depth=0)
    g = Grasp(pose=xyz_rpy_to_transform((0.3, 0, 0.1), (np.pi, 0, 0)), width=0.03, score=1, depth=0.02)
    np.testing.assert_allclose(g.fingertip_pose()[:3, 3], [0.3, 0, 0.08], atol=1e-12)
