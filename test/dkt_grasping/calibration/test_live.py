"""LiveRig without ROS: captures pair a fresh image with a still arm; motions wait for arrival."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dkt_grasping.calibration.collection import CaptureError, MotionError
from dkt_grasping.calibration.live import LiveRig, LiveRigConfig
from dkt_grasping.calibration.synthetic import D435_COLOUR
from dkt_grasping.planning.base import JointTrajectory

FAST = LiveRigConfig(still_window_s=0.1, capture_timeout_s=1.0, settle_timeout_s=1.0, joint_state_max_age_s=0.2)
IMAGE = np.zeros((480, 640), np.uint8)


def _feed(rig: LiveRig, q_of_t, stop: threading.Event, image_every: float = 0.03):
    t0 = time.monotonic()
    last_image = 0.0
    while not stop.wait(0.005):
        t = time.monotonic() - t0
        rig.on_joints(q_of_t(t), 0.02)
        if t - last_image >= image_every:
            rig.on_image(IMAGE, int(t * 1e9))
            last_image = t


def _running(rig, q_of_t):
    stop = threading.Event()
    thread = threading.Thread(target=_feed, args=(rig, q_of_t, stop), daemon=True)
    thread.start()
    return stop, thread


def test_capture_needs_camera_info_a_fresh_image_and_a_still_arm():
    rig = LiveRig(FAST)
    with pytest.raises(CaptureError, match="no camera_info"):
        rig.intrinsics  # noqa: B018
    rig.on_camera_info(D435_COLOUR)
    assert rig.intrinsics is D435_COLOUR
    q_still = np.array([0.1, 0.8, -0.9, 0.0, 0.5, 0.2])
    stop, thread = _running(rig, lambda t: q_still)
    try:
        time.sleep(0.15)
        cap = rig.capture()
        np.testing.assert_allclose(cap.q, q_still)
        assert cap.image is IMAGE
    finally:
        stop.set()
        thread.join()
    with pytest.raises(CaptureError, match="no image since the request"):
        rig.capture()  # nothing arrives any more


def test_moving_arm_gives_no_capture():
    rig = LiveRig(FAST)
    stop, thread = _running(rig, lambda t: np.array([0.2 * np.sin(5 * t), 0.8, -0.9, 0.0, 0.5, 0.0]))
    try:
        with pytest.raises(CaptureError, match="the arm is moving"):
            rig.capture()
    finally:
        stop.set()
        thread.join()


class _Planner:
    def __init__(self, fail: bool = False):
        self.fail = fail

    def plan_to_pose(self, q_start, T_target, scene_points):
        from dkt_grasping.planning import PlanningError

        if self.fail:
            raise PlanningError("collision", "the arm collides at the target (gripper)")
        self.goal = np.array([0.3, 0.7, -0.8, 0.1, 0.4, 0.0])
        return JointTrajectory([0.0, 0.2], [q_start, self.goal], np.zeros((2, 6)), np.zeros((2, 6)))


class _Kin:
    def fk(self, q, frame="tcp"):
        return np.eye(4)


def test_move_to_waits_for_arrival_and_reports_failures():
    sent = []
    q = {"now": np.array([0.0, 0.8, -0.9, 0.0, 0.5, 0.0])}
    rig = LiveRig(FAST, planner=_Planner(), kinematics=_Kin(), send_trajectory=lambda traj, g: (sent.append((traj, g)), q.update(now=traj.positions[-1])))
    stop, thread = _running(rig, lambda t: q["now"])
    try:
        time.sleep(0.05)
        reached = rig.move_to(np.zeros(6))
        np.testing.assert_allclose(reached, [0.3, 0.7, -0.8, 0.1, 0.4, 0.0])
        assert len(sent) == 1 and sent[0][1] == pytest.approx(0.02)  # the gripper opening is kept
        rig.planner = _Planner(fail=True)
        with pytest.raises(MotionError, match="no plan: the arm collides"):
            rig.move_to(np.zeros(6))
        rig.planner = _Planner()
        rig.send_trajectory = lambda traj, g: None  # the arm ignores the command
        q["now"] = np.zeros(6)
        with pytest.raises(MotionError, match="did not arrive and settle"):
            rig.move_to(np.zeros(6))
    finally:
        stop.set()
        thread.join()
    time.sleep(FAST.joint_state_max_age_s + 0.05)  # the arm went silent
    with pytest.raises(MotionError, match="no recent joint_states"):
        rig.move_to(np.zeros(6))
