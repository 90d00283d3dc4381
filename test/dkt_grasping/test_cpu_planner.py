"""CPU planner: timed trajectories within limits, obstacle avoidance, grasp sequences and clear refusals."""

import itertools

import numpy as np
import pytest

from dkt_grasping.grasp import Grasp
from dkt_grasping.grasp_detection import create_grasp_detector
from dkt_grasping.grasp_detection.executable import ExecutableGraspDetector
from dkt_grasping.planning import GripperCommand, JointTrajectory, PlanningError, create_planner
from dkt_grasping.planning.cpu_planner import CpuPlannerConfig
from dkt_grasping.planning.time_parameterization import time_parameterize
from dkt_grasping.reachability import ReachabilityChecker
from dkt_grasping.tabletop_clouds import Box, Cylinder, look_at_camera, tabletop_cloud, to_camera_frame
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.transforms import xyz_rpy_to_transform

VMAX, AMAX = 1.0, 2.0
Q_READY = np.array([0.0, 0.8, -0.9, 0.0, 0.5, 0.0])


def planner(**kw):
    return create_planner("cpu", CpuPlannerConfig(max_velocity=[VMAX] * 6, max_acceleration=[AMAX] * 6, **kw))


def wall_points(x=(0.22, 0.40), y=(-0.04, 0.04), z=(0.0, 0.30), step=0.01):
    g = np.stack(np.meshgrid(*(np.arange(lo, hi + 1e-9, step) for lo, hi in (x, y, z)), indexing="ij"), -1).reshape(-1, 3)
    return g


def assert_within_limits(traj: JointTrajectory, kin):
    assert np.all(traj.positions >= kin.lower - 1e-9) and np.all(traj.positions <= kin.upper + 1e-9)
    assert np.abs(traj.velocities).max() <= VMAX + 1e-6
    assert np.abs(traj.accelerations).max() <= AMAX + 1e-6
    # Sampled positions agree with the reported velocities (no jumps between samples).
    dt = np.diff(traj.times)[:, None]
    assert np.abs(np.diff(traj.positions, axis=0) / dt).max() <= VMAX + 1e-3


def test_time_parameterization_respects_limits_and_stops_at_waypoints():
    wps = np.array([[0, 0.5, -0.5, 0, 0, 0], [0.5, 1.0, -0.8, 0.2, 0.3, -0.4], [0.4, 1.2, -1.2, 0.0, 0.1, 0.2]])
    traj = time_parameterize(wps, [VMAX] * 6, [AMAX] * 6, [20.0] * 6, dt=0.01)
    assert np.abs(traj.velocities).max() <= VMAX + 1e-9
    assert np.abs(traj.accelerations).max() <= AMAX + 1e-9
    np.testing.assert_allclose(traj.positions[0], wps[0])
    np.testing.assert_allclose(traj.positions[-1], wps[-1], atol=1e-9)
    # Phase synchronisation keeps every sample on the straight joint segments between waypoints.
    for p in traj.positions:
        seg_dist = []
        for a, b in itertools.pairwise(wps):
            u = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
            seg_dist.append(np.linalg.norm(p - (a + u * (b - a))))
        assert min(seg_dist) < 1e-6


def test_plan_to_pose_in_free_space():
    pl = planner()
    target = xyz_rpy_to_transform((0.25, 0.1, 0.08), (np.pi, 0.0, np.pi))  # tool pointing down, closing along y
    traj = pl.plan_to_pose(Q_READY, target, None)
    assert_within_limits(traj, pl.kin)
    np.testing.assert_allclose(traj.positions[0], Q_READY)
    reached = pl.kin.fk(traj.positions[-1])
    assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-3
    assert np.rad2deg(np.arccos(np.clip((np.trace(reached[:3, :3].T @ target[:3, :3]) - 1) / 2, -1, 1))) < 0.1


def test_path_around_a_box_obstacle():
    pl = planner(ompl_time_limit=5.0)
    q_a = np.array([-0.8, 1.2, -1.0, 0.0, 0.5, 0.0])
    q_b = np.array([0.8, 1.2, -1.0, 0.0, 0.5, 0.0])
    wall = wall_points()
    target = pl.kin.fk(q_b)
    from dkt_grasping.collision import SceneCollision

    scene = SceneCollision(wall, pl.config.collision.voxel_size)
    assert pl.collision.path_in_collision(q_a, q_b, scene)  # the straight sweep hits the wall
    traj = pl.plan_to_pose(q_a, target, wall)
    assert_within_limits(traj, pl.kin)
    np.testing.assert_allclose(pl.kin.fk(traj.positions[-1])[:3, 3], target[:3, 3], atol=1e-3)
    lo, hi = wall.min(axis=0), wall.max(axis=0)
    for q in traj.positions:
        assert not pl.collision.in_collision(q, scene)
        # Independently of the capsule model: the tool point and the wrist never enter the box.
        for p in pl.kin.chain_points(q)[[4, 6, 7]]:
            assert not np.all((p > lo - 0.01) & (p < hi + 0.01)), p


@pytest.fixture(scope="module")
def tabletop():
    objects = [Box(0.32, 0.0, (0.04, 0.05, 0.08), yaw=0.2), Cylinder(0.28, 0.14, 0.025, 0.10)]
    cam = np.array([0.05, 0.0, 0.6])
    T = look_at_camera(cam, [0.32, 0.0, 0.0])
    pts = tabletop_cloud(objects, density=4e4, table_extent=(0.15, 0.5, -0.25, 0.25))
    # the grasps the planner gets on the robot: the detector's, checked for what this arm can execute (issue 13)
    detector = ExecutableGraspDetector(create_grasp_detector("antipodal"), ReachabilityChecker())
    grasps = detector.detect(to_camera_frame(pts, T), None, T, WorkspaceLimits())
    return pts, grasps


def test_grasp_plan_sequence(tabletop):
    pts, grasps = tabletop
    pl = planner()
    plan = pl.plan_grasp(Q_READY, grasps, pts)
    assert [s.name for s in plan.steps] == ["open", "move_to_pregrasp", "approach", "close", "lift"]
    open_cmd, close_cmd = plan.steps[0].action, plan.steps[3].action
    assert isinstance(open_cmd, GripperCommand) and open_cmd.width == pytest.approx(min(plan.grasp.width, 0.07))
    assert close_cmd.width == 0.0
    trajs = plan.trajectories()
    np.testing.assert_allclose(trajs[0].positions[0], Q_READY)
    for a, b in itertools.pairwise(trajs):
        np.testing.assert_allclose(a.positions[-1], b.positions[0], atol=1e-9)  # continuous
    for t in trajs:
        assert_within_limits(t, pl.kin)
    # The approach ends with the fingertips at the grasp (or its half-turn twin: same grasp for a parallel gripper).
    T = pl.kin.fk(trajs[1].positions[-1])
    want = plan.grasp.fingertip_pose()
    assert np.linalg.norm(T[:3, 3] - want[:3, 3]) < 1e-3
    np.testing.assert_allclose(T[:3, 2], want[:3, 2], atol=2e-3)
    assert abs(abs(T[:3, 1] @ want[:3, 1]) - 1) < 1e-5
    # Pre-grasp is approach_distance back along the approach axis; the lift goes straight up.
    T_pre = pl.kin.fk(trajs[1].positions[0])
    np.testing.assert_allclose(T_pre[:3, 3], want[:3, 3] - pl.config.motion.approach_distance * want[:3, 2], atol=1e-3)
    T_lift = pl.kin.fk(trajs[2].positions[-1])
    np.testing.assert_allclose(T_lift[:3, 3], T[:3, 3] + [0, 0, pl.config.motion.lift_height], atol=1e-3)


def test_refusals_have_reasons(tabletop):
    pts, grasps = tabletop
    pl = planner()
    outside = Grasp(pose=xyz_rpy_to_transform((0.9, 0.0, 0.1), (np.pi, 0, 0)), width=0.03, score=1.0, depth=0.02)
    with pytest.raises(PlanningError) as exc:
        pl.plan_grasp(Q_READY, [outside], pts)
    assert exc.value.kind == "workspace" and "outside the workspace" in exc.value.reason
    wide = create_planner("cpu", {"workspace": {"x_min": -1.0, "x_max": 1.5, "y_min": -1.0, "y_max": 1.0, "z_min": -0.1, "z_max": 1.0}})
    with pytest.raises(PlanningError) as exc:
        wide.plan_grasp(Q_READY, [outside], None)
    assert exc.value.kind == "unreachable" and "out of reach" in exc.value.reason
    with pytest.raises(PlanningError) as exc:
        pl.plan_grasp(np.deg2rad([0, 0, 10, 0, 0, 0]), grasps, pts)  # joint3 must be <= 0
    assert exc.value.kind == "joint_limits" and "joint3" in exc.value.reason
    with pytest.raises(PlanningError, match="no grasp candidates"):
        pl.plan_grasp(Q_READY, [], pts)
    inside_wall = xyz_rpy_to_transform((0.25, 0.0, 0.08), (np.pi, 0.0, np.pi))
    with pytest.raises(PlanningError) as exc:
        pl.plan_to_pose(Q_READY, inside_wall, wall_points())
    assert exc.value.kind == "collision"


def test_plan_as_one_arm_and_gripper_sequence(tabletop):
    from dkt_grasping.planning.base import plan_to_arrays, steps_from_arrays

    pts, grasps = tabletop
    plan = planner().plan_grasp(Q_READY, grasps, pts)
    times, pos, vel, eff = plan_to_arrays(plan, gripper_dwell=0.5)
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(plan.duration + 0.5)  # one dwell for closing; the opening is the initial state
    np.testing.assert_allclose(pos[0], [*Q_READY, plan.steps[0].action.width])
    assert pos[-1, 6] == 0.0 and eff[-1, 6] == plan.steps[3].action.effort
    steps = steps_from_arrays(times, pos, vel, eff)
    kinds = ["G" if isinstance(s.action, GripperCommand) else "T" for s in steps]
    assert kinds == ["G", "T", "G", "T"]
    moves = plan.trajectories()
    np.testing.assert_allclose(steps[1].action.positions, np.concatenate([moves[0].positions, moves[1].positions[1:]]))
    np.testing.assert_allclose(steps[3].action.positions[1:], moves[2].positions[1:])
    assert steps[2].action.width == 0.0
