"""Reachability: the batched check agrees with the planner, drops what the arm cannot execute, and leaning approaches help."""

import numpy as np
import pytest

from dkt_grasping.collision import SceneCollision
from dkt_grasping.grasp import Grasp
from dkt_grasping.grasp_detection import create_grasp_detector
from dkt_grasping.grasp_detection.antipodal import AntipodalConfig
from dkt_grasping.grasp_detection.executable import ExecutableGraspDetector
from dkt_grasping.planning import PlanningError, create_planner
from dkt_grasping.reachability import DROP_REASONS, ReachabilityChecker
from dkt_grasping.tabletop_clouds import Box, Cylinder, look_at_camera, tabletop_cloud, to_camera_frame
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.transforms import make_transform, transform_points

Q_READY = np.array([0.0, 0.8, -0.9, 0.0, 0.5, 0.0])


def grasp_at(position, tilt_deg: float, yaw_deg: float = 0.0, closing_radial: bool = False) -> Grasp:
    """A grasp at ``position`` (base frame, m) approaching down, tilted by ``tilt_deg`` to point away from the base.

    The closing axis is horizontal and across the radial direction (or along it with ``closing_radial``).
    """
    p = np.asarray(position, dtype=np.float64)
    away = np.array([p[0], p[1], 0.0]) / np.hypot(p[0], p[1])
    t = np.deg2rad(tilt_deg)
    z = np.array([0.0, 0.0, -np.cos(t)]) + away * np.sin(t)
    across = np.cross([0.0, 0.0, 1.0], away)
    y = np.cross(z, across) if closing_radial else across
    y /= np.linalg.norm(y)
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    y = c * y + s * np.cross(z, y)  # turn the closing axis about the approach
    R = np.column_stack([np.cross(y, z), y, z])
    return Grasp(pose=make_transform(R, p), width=0.04, score=0.5, depth=0.02)


def fixed_grasp_set() -> list[Grasp]:
    """Grasp poses across the workspace: positions x 0.15-0.50 m, heights, approach tilts 0-60 deg, both closing axes."""
    out = []
    for x in (0.15, 0.25, 0.35, 0.45, 0.5):
        for y in (-0.15, 0.0, 0.2):
            for z in (0.02, 0.1):
                for tilt in (0.0, 30.0, 60.0):
                    out.append(grasp_at((x, y, z), tilt, closing_radial=(len(out) % 2 == 1)))
    return out


def test_reachability_agrees_with_the_full_planner_on_a_fixed_set_of_poses():
    checker = ReachabilityChecker()
    planner = create_planner("cpu")
    grasps = fixed_grasp_set()
    verdicts = checker.check(grasps)
    reachable = [v.reachable for v in verdicts]
    planned = []
    for g in grasps:
        try:
            planner.plan_grasp(Q_READY, [g], None)
            planned.append(True)
        except PlanningError:
            planned.append(False)
    assert reachable == planned
    assert 0.2 < np.mean(reachable) < 0.9  # a set with both answers, so the agreement means something
    for v in verdicts:
        assert v.reachable == (v.reason == "")
        assert v.reason in ("", *DROP_REASONS)
        for goal in v.goals:  # every goal is a real IK solution within the limits
            np.testing.assert_allclose(checker.kin.fk(goal.q_grasp), goal.T_tcp, atol=1e-8)
            assert checker.kin.within_limits(goal.q_pre) and checker.kin.within_limits(goal.q_lift)


def test_reasons_name_what_fails():
    checker = ReachabilityChecker()
    far = grasp_at((0.9, 0.0, 0.05), 30.0)
    down_far = grasp_at((0.5, 0.0, 0.02), 0.0)  # in reach, but joint 5 cannot point the tool straight down there
    near = grasp_at((0.3, 0.0, 0.05), 30.0)
    reasons = [r.reason for r in checker.check([far, down_far, near])]
    assert reasons == ["out_of_reach", "joint_limits", ""]
    ranked = checker.rank([far, down_far, near])
    assert ranked.dropped == {"out_of_reach": 1, "joint_limits": 1}
    assert len(ranked.grasps) == 1 and "kept 1 of 3" in ranked.summary()
    # the combined score blends the detector's quality with the reach score
    w = checker.config.margin_weight
    assert ranked.grasps[0].score == pytest.approx((1 - w) * 0.5 + w * ranked.reaches[0].reach_score)


def test_scene_collision_at_the_pregrasp_drops_the_grasp():
    checker = ReachabilityChecker()
    g = grasp_at((0.3, 0.0, 0.05), 30.0)
    assert checker.check([g])[0].reachable
    goal = checker.check([g])[0].goals[0]
    # a block of points around the wrist at the pre-grasp
    wrist = checker.kin.fk(goal.q_pre, "link5")[:3, 3]
    block = wrist + np.stack(np.meshgrid(*[np.linspace(-0.03, 0.03, 7)] * 3), -1).reshape(-1, 3)
    verdict = checker.check([g], block)[0]
    assert not verdict.reachable and verdict.reason == "scene_collision"


def far_scene():
    """A camera view of a table with a box and a cylinder far in front of the base (x 0.42-0.48 m)."""
    objects = [Box(0.45, -0.05, (0.04, 0.05, 0.08), yaw=0.2), Cylinder(0.46, 0.12, 0.025, 0.10)]
    camera = np.array([0.2, 0.0, 0.6])
    T = look_at_camera(camera, [0.45, 0.03, 0.0])
    cloud = tabletop_cloud(objects, table_extent=(0.3, 0.6, -0.2, 0.25), density=2.0e5, camera_position=camera, noise=0.0005, seed=1)
    return to_camera_frame(cloud, T).astype(np.float32), T


def test_leaning_approaches_make_far_objects_executable():
    cloud, T = far_scene()
    ws = WorkspaceLimits(x_max=0.6)

    def executable(**config):
        detector = ExecutableGraspDetector(create_grasp_detector("antipodal", AntipodalConfig(**config)), ReachabilityChecker())
        return detector.detect(cloud, None, T, ws), detector.last

    # approaching only square to the closing axis from above: nothing out there is executable; leaning toward the base is
    down_only, _ = executable(base_lean_deg=[], approach_angles_deg=[0.0])
    leaning, _ = executable(approach_angles_deg=[0.0])
    assert down_only == [] and len(leaning) >= 8  # measured: 0 vs 13
    # with the approaches turned about the closing axis too, the lean still adds executable candidates (before the final NMS)
    _, without = executable(base_lean_deg=[])
    many, with_lean = executable()
    assert len(with_lean.grasps) >= 1.4 * len(without.grasps)  # measured: 83 vs 45
    # the executable ones lean away from the base: approach has a positive radial component
    radial = np.array([[g.position[0], g.position[1], 0.0] / np.hypot(*g.position[:2]) for g in many])
    assert np.median(np.einsum("ij,ij->i", radial, np.array([g.approach for g in many]))) > 0.2


def test_no_published_grasp_is_unreachable():
    cloud, T = far_scene()
    ws = WorkspaceLimits(x_max=0.6)
    detector = ExecutableGraspDetector(create_grasp_detector("antipodal"), ReachabilityChecker())
    grasps = detector.detect(cloud, None, T, ws)
    assert grasps
    planner = create_planner("cpu", {"workspace": {"x_max": 0.6}})
    scene = transform_points(T, cloud.astype(np.float64))
    for g in grasps[:10]:
        plan = planner.plan_grasp(Q_READY, [g], scene)  # raises if one is not executable
        assert plan.grasp_index == 0
    scores = [g.score for g in grasps]
    assert scores == sorted(scores, reverse=True)


def test_goal_set_plans_the_best_executable_grasp_and_says_which():
    planner = create_planner("cpu")
    unreachable = grasp_at((0.5, 0.0, 0.02), 0.0)
    good = grasp_at((0.3, 0.05, 0.05), 30.0)
    plan = planner.plan_grasp(Q_READY, [unreachable, good], None)
    assert plan.grasp_index == 1 and plan.grasp is good
    with pytest.raises(PlanningError, match="none of 1 grasps"):
        planner.plan_grasp(Q_READY, [unreachable], None)


def test_goal_set_rrt_reaches_one_of_several_pregrasps_around_a_wall():
    planner = create_planner("cpu")
    grasps = [grasp_at((0.32, y, 0.06), 30.0) for y in (-0.12, 0.12)]
    # two small blocks where the tool passes on straight joint paths from the raised arm down to either pre-grasp
    cube = np.stack(np.meshgrid(*[np.linspace(-0.015, 0.015, 4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    wall = np.concatenate([cube + np.array([0.315, y, 0.267]) for y in (-0.04, 0.04)])
    for g in grasps:
        goal = planner.reachability.check([g], wall)[0].goals[0]  # the goals themselves are free...
        assert planner.collision.path_in_collision(Q_READY, goal.q_pre, SceneCollision(wall))  # ...the straight paths are not
    plan = planner.plan_grasp(Q_READY, grasps, wall)
    assert plan.grasp_index in (0, 1)
    move = plan.steps[1].action
    assert len(move.positions) > 2
    scene = SceneCollision(wall)
    assert not any(planner.collision.in_collision(q, scene) for q in move.positions[::5])
    np.testing.assert_allclose(move.positions[-1], planner.reachability.check([grasps[plan.grasp_index]], wall)[0].goals[0].q_pre, atol=1e-9)


def two_arm_rig():
    """Two arms 0.6 m apart (bases at y = +-0.3 in a shared table frame) and a camera above the table looking down."""
    T_world_cam = look_at_camera(np.array([0.25, 0.0, 0.65]), [0.35, 0.0, 0.0])
    bases = {"left": make_transform(None, [0.0, 0.3, 0.0]), "right": make_transform(None, [0.0, -0.3, 0.0])}
    return T_world_cam, {name: np.linalg.inv(T) @ T_world_cam for name, T in bases.items()}


@pytest.mark.parametrize(("object_y", "expected"), [(0.25, "left"), (-0.25, "right")])
def test_dual_arm_choice_picks_the_arm_that_can_reach(object_y, expected):
    from dkt_grasping.arm_choice import ArmOption, choose_arm

    T_world_cam, T_base_cam = two_arm_rig()
    # one object near one arm's base side, out of the other arm's reach (0.55 m + away)
    cloud_world = tabletop_cloud(
        [Box(0.35, object_y, (0.04, 0.05, 0.08), yaw=0.3)], table_extent=(0.1, 0.6, -0.45, 0.45), density=2e5,
        camera_position=T_world_cam[:3, 3], noise=0.0005, seed=2,
    )  # fmt: skip
    cloud_cam = to_camera_frame(cloud_world, T_world_cam).astype(np.float32)
    ws = WorkspaceLimits(y_min=-0.65, y_max=0.65)
    options = [
        ArmOption(name, T_base_cam[name], ExecutableGraspDetector(create_grasp_detector("antipodal"), ReachabilityChecker()), ws)
        for name in ("left", "right")
    ]
    choice = choose_arm(options, cloud_cam, None)
    assert choice.arm == expected, choice.reason
    other = "right" if expected == "left" else "left"
    assert choice.per_arm[expected]["executable"] > 0
    assert choice.per_arm[other]["best_score"] is None or choice.per_arm[other]["best_score"] < choice.per_arm[expected]["best_score"]
    # the chosen arm's grasps are in its own base frame and executable there
    planner = create_planner("cpu", {"workspace": {"y_min": -0.65, "y_max": 0.65}})
    plan = planner.plan_grasp(Q_READY, choice.grasps, transform_points(T_base_cam[expected], cloud_cam.astype(np.float64)))
    assert plan.grasp_index == 0


def test_dual_arm_choice_says_when_no_arm_can_reach():
    from dkt_grasping.arm_choice import ArmOption, choose_arm

    T_world_cam, T_base_cam = two_arm_rig()
    far = tabletop_cloud([Box(0.95, 0.0, (0.04, 0.05, 0.08))], table_extent=(0.8, 1.1, -0.2, 0.2), density=2e5, seed=3)
    cloud_cam = to_camera_frame(far, T_world_cam).astype(np.float32)
    options = [
        ArmOption(n, T_base_cam[n], ExecutableGraspDetector(create_grasp_detector("antipodal"), ReachabilityChecker()), WorkspaceLimits(x_max=1.2))
        for n in ("left", "right")
    ]
    choice = choose_arm(options, cloud_cam, None)
    assert choice.arm is None and choice.grasps == [] and "no arm can execute" in choice.reason


def test_a_straight_approach_through_the_wrist_singularity_is_one_motion():
    # leaning 50 deg at 0.45 m, joint 5 passes through zero on the way down: the closed-form branch label flips, the
    # arm does not; paired by continuity the grasp is executable, and the planner executes it
    g = grasp_at((0.45, 0.0, 0.04), 50.0)
    checker = ReachabilityChecker()
    verdict = checker.check([g])[0]
    assert verdict.reachable, verdict.reason
    goal = verdict.goals[0]
    assert np.abs(goal.q_grasp - goal.q_pre).max() < 1.0 and np.abs(goal.q_lift - goal.q_grasp).max() < 1.0
    create_planner("cpu").plan_grasp(Q_READY, [g], None)  # raises if it cannot


def test_the_arm_must_clear_the_scene_beyond_the_object_on_approach_and_lift():
    checker = ReachabilityChecker()
    g = grasp_at((0.3, 0.0, 0.05), 30.0)
    goal = checker.check([g])[0].goals[0]
    # a block of points just above the gripper body at the end of the lift, beyond the object's 6 cm, away from the arm
    # at the pre-grasp (which alone would be a scene_collision)
    lifted = checker.collision.capsules(goal.q_lift, include_fingers=False)["gripper"][0]
    body = lifted + np.array([0.0, 0.0, 0.05])
    assert np.linalg.norm(body - g.position) > checker.config.target_clearance_radius
    slab = body + np.stack(np.meshgrid(*[np.linspace(-0.01, 0.01, 3)] * 3), -1).reshape(-1, 3)
    assert not checker.collision.in_collision(goal.q_pre, SceneCollision(slab))
    verdict = checker.check([g], slab)[0]
    assert not verdict.reachable and verdict.reason == "approach_collision"
    with pytest.raises(PlanningError, match="collision"):
        create_planner("cpu").plan_grasp(Q_READY, [g], slab)
    # the same points within the object's radius of the grasp are the object itself: no obstacle
    near = g.position + (slab - body) * 0.5
    assert checker.check([g], near)[0].reachable


def test_the_grasped_target_is_no_obstacle_for_the_arm():
    from dkt_grasping.grasp_detection.executable import arm_scene

    T = look_at_camera(np.array([0.05, 0.0, 0.6]), [0.35, 0.0, 0.0])
    pts = tabletop_cloud([Box(0.35, 0.0, (0.04, 0.05, 0.08))], density=2e4)
    cam = to_camera_frame(pts, T).astype(np.float32)
    cam[0] = np.nan  # an invalid point is dropped either way
    target = pts[:, 2] > 0.01
    scene = arm_scene(cam, T, target)
    assert len(scene) == np.count_nonzero(~target[1:])
    np.testing.assert_allclose(scene, transform_points(T, cam[1:][~target[1:]].astype(np.float64)), atol=1e-6)
    assert len(arm_scene(cam, T)) == len(pts) - 1
