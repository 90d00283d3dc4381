"""calibration_node on real rclpy: a synthetic camera and arm publish, the operator's services collect and solve.

The "camera" here renders the synthetic rig's board (real OpenCV tag renders)
at the arm's current joints and publishes color/image_raw + camera_info, as
camera_node does on the rig; joint_states come from the test (manual mode)
or from arm_node with the simulated arm (automatic mode).
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import yaml

from dkt_grasping.calibration.solver import pose_difference
from dkt_grasping.calibration.synthetic import D435_COLOUR
from dkt_stack.config import to_dict
from dkt_stack.rig import ArmMount, RigConfig, load_rig, matrix_to_pose7

pytestmark = pytest.mark.ros

Q_READY = [0.0, 0.8, -0.9, 0.0, 0.5, 0.0]


@pytest.fixture
def setup(tmp_path, rig_and_plan):
    """(synthetic rig at 320x240, its plan, rig file, calibration config file) for eye_in_hand."""
    rig, plan = rig_and_plan("eye_in_hand")
    rig = dataclasses.replace(rig, intrinsics=D435_COLOUR.scaled(320, 240))
    rig_file = tmp_path / "rig.yaml"
    mount = ArmMount(base_frame="base_link", camera_pose=[0.3, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0], wrist_camera_pose=matrix_to_pose7(rig.X_nominal))
    rig_file.write_text(yaml.safe_dump(to_dict(RigConfig(name="test", arms={"left": mount})), sort_keys=False))
    config_file = tmp_path / "calibration.yaml"
    config = {
        "board": to_dict(rig.board),
        "board_pose": matrix_to_pose7(rig.Y_nominal),
        "save_images": False,
        "poses": {"count": 5, "distance_m": list(rig.distance_m), "joint_samples": 3000},
    }
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return rig, plan, rig_file, config_file


class FakeRig:
    """Publishes joint_states (unless an arm node does) and camera images of the board at the current joints."""

    def __init__(self, ros, rig, publish_joints: bool, camera_ns: str = "", arm_ns: str = ""):
        from sensor_msgs.msg import CameraInfo, Image, JointState

        self.ros, self.rig = ros, rig
        self.q = np.array(Q_READY)
        self.motion = 0.0  # rad amplitude of a wobble on joint 1 (an arm that is not still)
        self.image_pub = ros.publisher(Image, f"{camera_ns}/color/image_raw")
        self.info_pub = ros.publisher(CameraInfo, f"{camera_ns}/color/camera_info")
        self.joint_pub = ros.publisher(JointState, f"{arm_ns}/joint_states") if publish_joints else None
        self.arm_states = None if publish_joints else ros.collect(JointState, f"{arm_ns}/joint_states")
        self._stop = threading.Event()
        self._fresh = threading.Condition()
        self._generation, self._fresh_images = 0, 0  # moves so far; images published of the current pose
        self._threads = [threading.Thread(target=self._camera, daemon=True)]
        if publish_joints:
            self._threads.append(threading.Thread(target=self._joints, daemon=True))
        for t in self._threads:
            t.start()

    def move(self, q, images: int = 2, timeout: float = 30.0) -> None:
        """Put the arm at q and wait until ``images`` images of it were published (none of the old pose is in flight)."""
        with self._fresh:
            self.q = np.asarray(q, dtype=np.float64)
            self._generation += 1
            self._fresh_images = 0
            assert self._fresh.wait_for(lambda: self._fresh_images >= images, timeout), "the fake camera stalled"

    def current(self) -> np.ndarray:
        if self.arm_states is not None and self.arm_states.messages:
            return np.array(self.arm_states.messages[-1].position[:6])
        return self.q + np.array([self.motion * np.sin(8.0 * time.monotonic()), 0.0, 0.0, 0.0, 0.0, 0.0])

    def _joints(self):
        from sensor_msgs.msg import JointState

        while not self._stop.wait(0.02):
            self.joint_pub.publish(JointState(name=[f"joint{i}" for i in range(1, 7)], position=self.current().tolist()))

    def _camera(self):
        from dkt_stack import conversions as cv

        rng = np.random.default_rng(0)
        while not self._stop.wait(0.1):
            with self._fresh:
                generation = self._generation
            header = cv.make_header("wrist_camera_color_optical_frame", stamp_ns=time.time_ns())
            image = self.rig.render(self.current(), rng)
            self.info_pub.publish(cv.intrinsics_to_camera_info(self.rig.intrinsics, header.stamp))
            self.image_pub.publish(cv.numpy_to_image(image, "mono8", header))
            with self._fresh:
                if generation == self._generation:  # rendered after the last move: an image of the current pose
                    self._fresh_images += 1
                    self._fresh.notify_all()

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)


def _wait_for_camera(node, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            node.live.intrinsics  # noqa: B018 - raises until camera_info arrived
            return
        except RuntimeError:
            assert time.monotonic() < deadline, "no camera_info reached the node"
            time.sleep(0.05)


def _node(ros, tmp_path, rig_file, config_file):
    from rclpy.parameter import Parameter

    from dkt_grasping.nodes.calibration_node import CalibrationNode

    overrides = [
        Parameter("mode", value="eye_in_hand"), Parameter("arm", value="left"), Parameter("rig", value=str(rig_file)),
        Parameter("config_file", value=str(config_file)), Parameter("session_dir", value=str(tmp_path / "session")),
        Parameter("live.still_window_s", value=0.3), Parameter("live.capture_timeout_s", value=10.0),
        Parameter("live.joint_state_max_age_s", value=2.0),  # the test's publisher threads share two busy cores
    ]  # fmt: skip
    return ros.add_node(CalibrationNode(context=ros.context, parameter_overrides=overrides))


@pytest.fixture
def ros3():
    from dkt_stack.ros.harness import RosHarness

    harness = RosHarness(threads=3)  # a capture waits for images while the node's subscriptions keep flowing
    try:
        yield harness
    finally:
        harness.close()


def test_manual_capture_and_solve_over_services(ros3, tmp_path, setup):
    from std_srvs.srv import Trigger

    rig, plan, rig_file, config_file = setup
    ros = ros3
    node = _node(ros, tmp_path, rig_file, config_file)
    fake = FakeRig(ros, rig, publish_joints=True)
    try:
        _wait_for_camera(node)
        capture = ros.probe.create_client(Trigger, "/calibration/capture")
        solve = ros.probe.create_client(Trigger, "/calibration/solve")
        # no samples yet: solve refuses and says why
        reply = ros.call(solve, Trigger.Request(), timeout=30)
        assert not reply.success and "needs at least 3" in reply.message, reply.message
        # an arm that is not still gives no sample
        fake.q, fake.motion = plan.qs[0], 0.05
        reply = ros.call(capture, Trigger.Request(), timeout=30)
        assert not reply.success and "the arm is moving" in reply.message
        fake.motion = 0.0
        for q in plan.qs[:8]:
            fake.move(q)
            reply = ros.call(capture, Trigger.Request(), timeout=30)
            assert reply.success, reply.message
            assert reply.message.startswith("sample ") and "rotation spans" in reply.message
        reply = ros.call(solve, Trigger.Request(), timeout=60)
        assert reply.success and "wrote wrist_camera_pose of arm left" in reply.message, reply.message
    finally:
        fake.close()
    mm, deg = pose_difference(load_rig(rig_file).arm("left").T_flange_wrist_camera, rig.X_true)
    assert mm < 2.0 and deg < 0.2, (mm, deg)
    assert (tmp_path / "session" / "result.json").is_file()


def test_automatic_collection_with_the_planner_and_a_simulated_arm(ros3, tmp_path, setup):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from std_srvs.srv import Trigger

    from dkt_grasping.nodes.arm_node import ArmNode

    rig, _, rig_file, config_file = setup
    ros = ros3
    ros.add_node(ArmNode(context=ros.context, parameter_overrides=[Parameter("simulated.initial_q", value=Q_READY)]))
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    node = _node(ros, tmp_path, rig_file, config_file)
    fake = FakeRig(ros, rig, publish_joints=False)
    try:
        fake.arm_states.wait(5, timeout=20)
        _wait_for_camera(node)
        auto = ros.probe.create_client(Trigger, "/calibration/collect_auto")
        reply = ros.call(auto, Trigger.Request())
        assert not reply.success and "confirm_workspace_clear" in reply.message  # nothing moves without the operator
        assert ros.call(ros.probe.create_client(Trigger, "/calibration/confirm_workspace_clear"), Trigger.Request()).success
        assert ros.call(auto, Trigger.Request()).success

        def finished(ms):
            return any(s.name.startswith("calibration") and "automatic collection" in s.message and ("done" in s.message or "stopped" in s.message)
                       for m in ms for s in m.status)  # fmt: skip

        msgs = diags.wait(predicate=finished, timeout=240)
        final = [s.message for m in msgs for s in m.status if "automatic collection" in s.message][-1]
        assert "done: 5 accepted" in final, final
        reply = ros.call(ros.probe.create_client(Trigger, "/calibration/solve"), Trigger.Request(), timeout=60)
        assert reply.success, reply.message
    finally:
        fake.close()
    mm, deg = pose_difference(load_rig(rig_file).arm("left").T_flange_wrist_camera, rig.X_true)
    assert mm < 2.0 and deg < 0.2, (mm, deg)


def test_cli_collect_manual_then_solve_and_write(ros3, tmp_path, setup):
    """`dkt-stack calibrate collect` as the operator runs it: Enter per pose on stdin, then solve and write."""
    import os
    import subprocess
    import sys

    rig, plan, rig_file, config_file = setup
    fake = FakeRig(ros3, rig, publish_joints=True, camera_ns="/wrist", arm_ns="/arm1")
    cmd = [sys.executable, "-m", "dkt_stack.cli", "calibrate", "collect", "--mode", "eye_in_hand", "--arm", "left",
           "--rig", str(rig_file), "--config", str(config_file), "--session", str(tmp_path / "session"),
           "--camera-ns", "/wrist", "--arm-ns", "/arm1", "--poses", "6"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    output = []
    try:
        fake.move(plan.qs[0])
        poses = iter(plan.qs[1:])
        proc.stdin.write("\n")
        proc.stdin.flush()
        for line in proc.stdout:
            output.append(line)
            if "sample " in line and "board fit" in line:  # a capture was answered: move on to the next pose
                fake.move(next(poses))
                if proc.poll() is None:
                    proc.stdin.write("\n")
                    proc.stdin.flush()
            elif "rejected:" in line or "no capture:" in line:
                proc.stdin.write("\n")
                proc.stdin.flush()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        fake.close()
    text = "".join(output)
    assert proc.returncode == 0, text
    assert "collected: 6 accepted" in text and "wrote wrist_camera_pose of arm left" in text
    mm, deg = pose_difference(load_rig(rig_file).arm("left").T_flange_wrist_camera, rig.X_true)
    assert mm < 2.0 and deg < 0.2, (mm, deg)
