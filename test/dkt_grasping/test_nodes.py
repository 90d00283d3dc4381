"""grasp_node -> planner_node -> arm_node (simulated) in one process on real rclpy."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

Q_READY = [0.0, 0.8, -0.9, 0.0, 0.5, 0.0]


def test_cloud_to_grasp_to_plan_to_arm(ros):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState, PointCloud2
    from trajectory_msgs.msg import JointTrajectory

    from dkt_grasping.nodes.arm_node import ArmNode
    from dkt_grasping.nodes.grasp_node import GraspNode
    from dkt_grasping.nodes.planner_node import PlannerNode
    from dkt_grasping.tabletop_clouds import Box, Cylinder, look_at_camera, tabletop_cloud, to_camera_frame
    from dkt_stack import conversions as cv
    from dkt_stack.ros.diagnostics import OK
    from dkt_stack.transforms import matrix_to_quat

    cam = np.array([0.05, 0.0, 0.6])
    T = look_at_camera(cam, [0.3, 0.0, 0.0])
    pts = tabletop_cloud(
        [Box(0.3, 0.0, (0.04, 0.05, 0.08), yaw=0.2), Cylinder(0.27, 0.13, 0.025, 0.1)], density=4e4, table_extent=(0.15, 0.5, -0.25, 0.25)
    )
    camera_pose = [*T[:3, 3].tolist(), *matrix_to_quat(T[:3, :3]).tolist()]
    grasp = ros.add_node(GraspNode(context=ros.context, parameter_overrides=[Parameter("camera_pose", value=camera_pose)]))
    ros.add_node(PlannerNode(context=ros.context))
    arm = ros.add_node(ArmNode(context=ros.context, parameter_overrides=[Parameter("simulated.initial_q", value=Q_READY)]))
    grasps = ros.collect(PoseArray, "/grasps")
    trajs = ros.collect(JointTrajectory, "/joint_trajectory")
    states = ros.collect(JointState, "/joint_states")
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    states.wait(1, timeout=10)
    pub = ros.publisher(PointCloud2, "/points")
    ros.wait_for_subscribers(pub)
    from std_msgs.msg import Float32MultiArray
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import MarkerArray

    markers = ros.collect(MarkerArray, "/grasps/markers")
    infos = ros.collect(Float32MultiArray, "/grasp_info")
    detect = ros.probe.create_client(Trigger, "/grasp/detect")
    assert not ros.call(detect, Trigger.Request()).success  # no cloud yet: refused, with a reason
    pub.publish(cv.points_to_cloud(to_camera_frame(pts, T), header=cv.make_header("camera_color_optical_frame")))
    time.sleep(0.5)
    assert not grasps.messages  # on-request mode (the default): a cloud alone moves nothing
    reply = ros.call(detect, Trigger.Request(), timeout=30)
    poses = grasps.wait(1, timeout=30)[0]
    # the reply and grasp_info say how many candidates the arm could not execute, and why
    assert reply.success and reply.message.startswith(f"{len(poses.poses)} grasps; kept ")
    label = infos.wait(1, timeout=10)[0].layout.dim[0].label
    assert label.startswith("grasp; dropped ") and "joint_limits=" in label
    assert len(markers.wait(1)[0].markers) == 1 + min(10, len(poses.poses))
    assert poses.header.frame_id == "base_link" and len(poses.poses) > 0
    traj = trajs.wait(1, timeout=30)[0]
    names, times, pos, _, _ = cv.joint_trajectory_to_arrays(traj)
    assert names == ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper"]
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(pos[0, :6], Q_READY, atol=1e-9)
    # The simulated arm runs the plan: it ends at the lifted pose with the gripper closed.
    final = states.wait(predicate=lambda ms: np.allclose(ms[-1].position[:6], pos[-1, :6], atol=1e-6), timeout=30)[-1]
    assert final.position[6] == 0.0
    assert grasp.diagnostics.level == OK and arm.diagnostics.level == OK
    diags.wait(predicate=lambda ms: any("plan published" in s.message for m in ms for s in m.status), timeout=5)


def test_grasp_node_chooses_the_arm_that_can_reach(ros, tmp_path):
    """Two arms from a rig file: the grasps go to the arm that can execute them, in its base frame."""
    from geometry_msgs.msg import PoseArray
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2
    from std_srvs.srv import Trigger

    from dkt_grasping.nodes.grasp_node import GraspNode
    from dkt_grasping.tabletop_clouds import Box, look_at_camera, tabletop_cloud, to_camera_frame
    from dkt_stack import conversions as cv
    from dkt_stack.rig import matrix_to_pose7
    from dkt_stack.transforms import make_transform

    T_world_cam = look_at_camera(np.array([0.25, 0.0, 0.65]), [0.35, 0.0, 0.0])
    poses = {n: matrix_to_pose7(np.linalg.inv(make_transform(None, [0.0, y, 0.0])) @ T_world_cam) for n, y in (("left", 0.3), ("right", -0.3))}
    rig = tmp_path / "rig.yaml"
    rig.write_text(
        "name: two_arms\narms:\n"
        + "".join(f"  {n}:\n    base_frame: {n}_base_link\n    camera_pose: {poses[n]}\n" for n in ("left", "right"))
    )
    node = GraspNode(
        context=ros.context,
        parameter_overrides=[
            Parameter("arms", value=["left", "right"]),
            Parameter("rig", value=str(rig)),
            Parameter("workspace.y_min", value=-0.65),
            Parameter("workspace.y_max", value=0.65),
        ],
    )
    ros.add_node(node)
    left, right = ros.collect(PoseArray, "/left/grasps"), ros.collect(PoseArray, "/right/grasps")
    pub = ros.publisher(PointCloud2, "/points")
    ros.wait_for_subscribers(pub)
    cloud = tabletop_cloud([Box(0.35, -0.25, (0.04, 0.05, 0.08), yaw=0.3)], table_extent=(0.1, 0.6, -0.45, 0.45), density=2e5, seed=2)
    pub.publish(cv.points_to_cloud(to_camera_frame(cloud, T_world_cam).astype(np.float32), header=cv.make_header("camera_color_optical_frame")))
    detect = ros.probe.create_client(Trigger, "/grasp/detect")
    reply = ros.call(detect, Trigger.Request(), timeout=60)
    deadline = time.monotonic() + 5
    while not reply.success and time.monotonic() < deadline:  # the cloud may not have arrived yet
        time.sleep(0.2)
        reply = ros.call(detect, Trigger.Request(), timeout=60)
    assert reply.success and reply.message.startswith("right: "), reply.message
    msg = right.wait(1, timeout=10)[0]
    assert msg.header.frame_id == "right_base_link" and len(msg.poses) > 0
    assert not left.messages
