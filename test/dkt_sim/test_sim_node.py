"""sim_node on real rclpy: the D435's and the arms' topics under the rig's names, trajectories executed in physics,
bad trajectories refused while the simulation keeps running, stop/enable and reset."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.piper_model import JOINT_NAMES
from dkt_grasping.planning.base import GRIPPER_JOINT

pytestmark = pytest.mark.ros


@pytest.fixture
def sim(ros):
    from rclpy.parameter import Parameter

    from dkt_sim.nodes.sim_node import SimNode

    overrides = [Parameter("sim.width", value=96), Parameter("sim.height", value=72), Parameter("fps", value=4.0), Parameter("sim.seed", value=3)]
    node = SimNode(context=ros.context, parameter_overrides=overrides)
    for n in (node, *node.children):
        ros.add_node(n)
    return node


def _trajectory(q0, q1, opening, duration=1.0, n=26):
    from dkt_stack import conversions as cv

    times = np.linspace(0.0, duration, n)
    s = 3 * (times / duration) ** 2 - 2 * (times / duration) ** 3
    pos = np.column_stack([q0 + s[:, None] * (np.asarray(q1) - q0), np.full(n, opening)])
    return cv.arrays_to_joint_trajectory([*JOINT_NAMES, GRIPPER_JOINT], times, pos, np.zeros_like(pos), np.zeros_like(pos))


def _diagnostic(messages, name):
    return [s for m in messages for s in m.status if s.name.endswith(f": {name}")]


def test_camera_topics_follow_realsense_ros_names(ros, sim):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image

    from dkt_stack import conversions as cv
    from dkt_stack.ros.qos import qos_by_name

    reliable = qos_by_name("reliable")
    colour = ros.collect(Image, "/camera/camera/color/image_raw", reliable)
    info = ros.collect(CameraInfo, "/camera/camera/color/camera_info", reliable)
    depth = ros.collect(Image, "/camera/camera/aligned_depth_to_color/image_raw", reliable)
    depth_info = ros.collect(CameraInfo, "/camera/camera/aligned_depth_to_color/camera_info", reliable)
    truth = ros.collect(Image, "/camera/camera/ground_truth/depth", reliable)
    best_effort = ros.collect(Image, "/camera/camera/color/image_raw", qos_by_name("sensor_data"))  # a best-effort reader of a reliable writer
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    for c in (colour, info, depth, depth_info, truth, best_effort):
        c.wait(2, timeout=60)
    c, d, t = colour.messages[-1], depth.messages[-1], truth.messages[-1]
    assert (c.encoding, c.width, c.height, d.encoding, t.encoding) == ("rgb8", 96, 72, "16UC1", "32FC1")
    assert c.header.frame_id == d.header.frame_id == info.messages[-1].header.frame_id == "camera_color_optical_frame"
    k = info.messages[-1].k
    assert k[0] == pytest.approx(0.5 * 96 / np.tan(np.radians(27.5))) and k[2] == pytest.approx(47.5) and k[5] == pytest.approx(35.5)
    mm, gt = cv.image_to_numpy(d), cv.image_to_numpy(t)
    ok = (mm > 0) & np.isfinite(gt)
    assert ok.mean() > 0.5 and np.median(np.abs(mm[ok] / 1000.0 - gt[ok])) < 0.01  # the table: sensor depth near the truth
    # The nodes of the real rig, by name: the camera driver's and each follower arm's, plus the simulator's own.
    def names(msgs):
        return {s.name.partition(": ")[2]: s.hardware_id for m in msgs for s in m.status}

    found = names(diagnostics.wait(predicate=lambda m: {"/camera/camera", "/left/arm", "/right/arm", "/sim"} <= set(names(m)), timeout=20))
    assert (found["/camera/camera"], found["/left/arm"], found["/sim"]) == ("camera:mujoco", "arm:mujoco", "sim:mujoco")


def test_arms_execute_trajectories_and_refuse_bad_ones(ros, sim):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from dkt_stack.ros.qos import qos_by_name

    reliable = qos_by_name("reliable")
    states = ros.collect(JointState, "/left/joint_states", reliable)
    right = ros.collect(JointState, "/right/joint_states", reliable)
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    first = states.wait(1, timeout=30)[0]
    assert list(first.name) == [*JOINT_NAMES, GRIPPER_JOINT] and right.wait(1, timeout=10)
    q0 = np.array(first.position[:6])
    pub = ros.publisher(JointTrajectory, "/left/joint_trajectory", reliable)
    ros.wait_for_subscribers(pub, timeout=20)

    def rejected(*texts):
        diagnostics.wait(predicate=lambda m: any(all(t in s.message for t in texts) for s in _diagnostic(m, "/left/arm")), timeout=20)

    bad = _trajectory(q0, q0 + np.array([0, 0, 0, 0, np.deg2rad(80), 0]), 0.03)  # joint5 to beyond +70 deg
    pub.publish(bad)
    rejected("joint_trajectory rejected: point ", "joint setpoint outside the joint limits: joint5=", "not in [-69.9, 69.9]")
    nan = _trajectory(q0, q0, 0.03)
    nan.points[3].positions[1] = float("nan")
    pub.publish(nan)
    rejected("non-finite")
    target = q0 + np.array([0.3, 0.1, -0.1, 0.0, 0.1, 0.2])
    pub.publish(_trajectory(q0, target, 0.05))
    arrived = states.wait(predicate=lambda m: np.abs(np.array(m[-1].position[:6]) - target).max() < 0.01 and abs(m[-1].position[6] - 0.05) < 0.003, timeout=60)
    assert arrived and np.abs(np.array(right.messages[-1].position[:6]) - q0).max() < 1e-3  # the other arm stayed home
    diagnostics.wait(predicate=lambda m: any(s.message == "trajectory done" for s in _diagnostic(m, "/left/arm")), timeout=20)
    # ~/stop: trajectories are refused until ~/enable.
    assert ros.call(ros.probe.create_client(Trigger, "/left/arm/stop"), Trigger.Request()).success
    pub.publish(_trajectory(target, q0, 0.05))
    rejected("is stopped; call its ~/enable service first")
    assert ros.call(ros.probe.create_client(Trigger, "/left/arm/enable"), Trigger.Request()).success
    pub.publish(_trajectory(target, q0, 0.0))
    states.wait(predicate=lambda m: np.abs(np.array(m[-1].position[:6]) - q0).max() < 0.01, timeout=60)


def test_reset_draws_the_next_scene(ros, sim):
    from diagnostic_msgs.msg import DiagnosticArray
    from std_srvs.srv import Trigger

    diagnostics = ros.collect(DiagnosticArray, "/diagnostics")
    assert ros.call(ros.probe.create_client(Trigger, "/sim/reset"), Trigger.Request(), timeout=20).success
    diagnostics.wait(predicate=lambda m: any(s.message.startswith("seed 4: target ") for s in _diagnostic(m, "/sim")), timeout=60)
    assert sim.runtime.seed == 4
