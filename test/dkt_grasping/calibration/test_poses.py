"""Automatic pose generation: reachable, collision-free, the board in view, rotations covering two axes."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.calibration.poses import (
    OCCLUDING_LINKS,
    PosePlanConfig,
    _segment_distances,
    board_in_view,
    board_occluded,
    correct_view,
    generate_pose_plan,
    table_points,
)
from dkt_grasping.calibration.samples import FLANGE_FRAME
from dkt_grasping.calibration.solver import motion
from dkt_grasping.collision import ArmCollisionModel, SceneCollision
from dkt_stack.transforms import invert_transform, xyz_rpy_to_transform


def test_plan_is_feasible_and_covers_two_axes(mode, rig_and_plan):
    rig, plan = rig_and_plan(mode)
    kin = rig.kinematics
    assert len(plan.qs) == 15 and plan.feasible >= 15
    collision = ArmCollisionModel(kin)
    scene = SceneCollision(table_points(PosePlanConfig()))
    for q, F in zip(plan.qs, plan.T_base_flange):
        assert kin.within_limits(q)
        assert not collision.in_collision(q, scene)
        np.testing.assert_allclose(kin.fk(q, frame=FLANGE_FRAME), F, atol=1e-12)
        # fully in view (with the margin) under the nominal geometry the plan was made with ...
        C = invert_transform(rig.X_nominal) @ motion(mode, F) @ rig.Y_nominal
        assert board_in_view(C, rig.model, rig.intrinsics, PosePlanConfig().image_margin_px)
        # ... and at least half the tags under the truth, 15 mm and 3 deg away from it
        assert len(rig.project(q, 0.0, np.random.default_rng(0))) >= len(rig.model.ids) / 2
    # the coverage target for automatic collection: at least 30 deg about two axes
    assert plan.coverage.usable and min(plan.coverage.rotation_span_deg[:2]) >= 30.0, plan.coverage.rotation_span_deg
    # consecutive poses are ordered for short travel: no worse than visiting them in generation order
    steps = [np.max(np.abs(a - b)) for a, b in zip(plan.qs, plan.qs[1:])]
    assert np.median(steps) < np.radians(90)


def test_segment_distances_match_brute_force():
    rng = np.random.default_rng(3)
    p0, p1 = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    s = np.linspace(0.0, 1.0, 401)
    A = p0[:, None, :] + s[None, :, None] * (p1 - p0)[:, None, :]
    for k in range(6):
        a = rng.normal(size=3)
        b = a if k == 0 else rng.normal(size=3)  # a degenerate (point) segment too
        d = _segment_distances(p0, p1, a, b)
        brute = np.linalg.norm(A[:, :, None, :] - (a + s[:, None] * (b - a))[None, None], axis=-1).min(axis=(1, 2))
        assert np.all(d <= brute + 1e-12) and np.all(brute - d < 0.01)


def test_board_hidden_behind_the_forearm_is_occluded(rig_and_plan):
    """A camera placed on the line from the board through the forearm sees the forearm; moved clear of the arm, it does not."""
    rig, plan = rig_and_plan("eye_to_hand")
    kin, collision = rig.kinematics, ArmCollisionModel(rig.kinematics)
    q = plan.qs[0]
    assert not board_occluded("eye_to_hand", q, rig.X_nominal, rig.Y_nominal, rig.model, kin, collision, 0.01)  # the plan checked it
    a, b, _ = collision.capsules(q)["forearm"]
    board_centre = (kin.fk(q, frame=FLANGE_FRAME) @ rig.Y_nominal)[:3, 3]
    middle = (a + b) / 2
    behind = rig.X_nominal.copy()
    behind[:3, 3] = middle + 0.5 * (middle - board_centre) / np.linalg.norm(middle - board_centre)
    assert board_occluded("eye_to_hand", q, behind, rig.Y_nominal, rig.model, kin, collision, 0.01)
    assert "forearm" in OCCLUDING_LINKS and "gripper" not in OCCLUDING_LINKS


def test_correct_view_meets_the_limits():
    config = PosePlanConfig(distance_m=[0.3, 0.4], max_view_angle_deg=30.0, view_cone=0.5)
    half_fov = 0.37
    rng = np.random.default_rng(0)
    for _ in range(50):
        C = xyz_rpy_to_transform(rng.uniform([-0.3, -0.3, 0.1], [0.3, 0.3, 0.8]), rng.uniform(-1.0, 1.0, 3))
        V = correct_view(C, config, half_fov)
        d = np.linalg.norm(V[:3, 3])
        assert 0.3 - 1e-9 <= d <= 0.4 + 1e-9
        assert np.arccos(V[2, 3] / d) <= 0.5 * half_fov + 1e-9
        assert np.degrees(np.arccos(np.clip(V[:3, 2] @ V[:3, 3] / d, -1, 1))) <= 30.0 + 1e-6
        np.testing.assert_allclose(V[:3, :3] @ V[:3, :3].T, np.eye(3), atol=1e-12)


def test_unreachable_geometry_says_so(rig_and_plan):
    rig, _ = rig_and_plan("eye_in_hand")
    far = rig.Y_nominal.copy()
    far[:3, 3] = [1.5, 0.0, 0.0]  # a board 1.5 m away: no view the arm can reach
    plan = generate_pose_plan("eye_in_hand", rig.X_nominal, far, rig.model, rig.intrinsics, PosePlanConfig(count=5, joint_samples=500),
                              kinematics=rig.kinematics)  # fmt: skip
    assert not plan.qs and "check the nominal camera pose and board mount" in plan.notes[0]
    assert not plan.coverage.usable


@pytest.mark.parametrize("bad", [{"count": 0}, {"distance_m": [0.5, 0.2]}, {"view_cone": 1.5}])
def test_bad_plan_config_refused(bad):
    from dkt_stack.config import ConfigError, from_dict

    with pytest.raises(ConfigError):
        from_dict(PosePlanConfig, bad)
