"""The rig as a sample source and an arm, fed by ROS callbacks (no rclpy here: the node only forwards messages).

:class:`LiveRig` keeps the latest camera image, the camera intrinsics and a
short history of joint states. ``capture()`` waits for an image that arrives
*after* the request while the arm has been still (joint motion below
``still_tolerance_rad`` over ``still_window_s``) and pairs it with the mean
joint state of that window; an image taken while the arm moves would pair
corners and joints from different poses. ``move_to()`` asks the planner for a
collision-free trajectory (``plan_to_pose`` to the tool pose of the goal:
the flange pose, hence the view, is the same for any IK branch), hands it to
``send_trajectory`` (the node publishes it to arm_node) and waits until the
joint states have arrived and settled.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dkt_grasping.calibration.collection import Capture, CaptureError, MotionError
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics


@dataclass
class LiveRigConfig:
    """When the arm counts as still, and how long to wait (seconds, radians)."""

    still_window_s: float = param(0.5, help="the arm must have been still this long before an image counts, s")
    still_tolerance_rad: float = param(0.002, help="largest joint change within the still window, rad")
    capture_timeout_s: float = param(5.0, help="give up a capture after this long without a fresh image of a still arm, s")
    arrive_tolerance_rad: float = param(0.01, help="the arm has arrived when every joint is this close to the goal, rad")
    settle_timeout_s: float = param(15.0, help="extra time beyond the trajectory's duration for the arm to arrive and settle, s")
    joint_state_max_age_s: float = param(0.5, help="joint states older than this are stale: no capture, no motion, s")


class LiveRig:
    """See the module docstring. Thread-safe: callbacks on the executor thread, capture/move from another."""

    def __init__(
        self,
        config: LiveRigConfig | None = None,
        *,
        planner=None,
        kinematics=None,
        send_trajectory: Callable[[object, float], None] | None = None,
        scene_points: np.ndarray | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config or LiveRigConfig()
        self.planner = planner
        self.kin = kinematics
        self.send_trajectory = send_trajectory
        self.scene_points = scene_points
        self.clock = clock
        self._cond = threading.Condition()
        self._intrinsics: CameraIntrinsics | None = None
        self._image: tuple[np.ndarray, int, float] | None = None  # image, stamp ns, arrival time
        self._joints: deque[tuple[float, np.ndarray]] = deque(maxlen=2000)
        self._gripper = 0.0
        self.stopped = False

    # -- fed by the node ---------------------------------------------------------------------
    def on_camera_info(self, intrinsics: CameraIntrinsics) -> None:
        with self._cond:
            self._intrinsics = intrinsics

    def on_image(self, image: np.ndarray, stamp_ns: int) -> None:
        with self._cond:
            self._image = (image, int(stamp_ns), self.clock())
            self._cond.notify_all()

    def on_joints(self, q: np.ndarray, gripper: float | None = None) -> None:
        with self._cond:
            self._joints.append((self.clock(), np.asarray(q, dtype=np.float64).copy()))
            if gripper is not None:
                self._gripper = float(gripper)
            self._cond.notify_all()

    # -- SampleSource ------------------------------------------------------------------------
    @property
    def intrinsics(self) -> CameraIntrinsics:
        with self._cond:
            if self._intrinsics is None:
                raise CaptureError("no camera_info received yet")
            return self._intrinsics

    def _still(self, until: float) -> tuple[bool, np.ndarray | None, str]:
        """Whether the joints were still over [until - window, until]; their mean; else why not."""
        c = self.config
        window = [q for t, q in self._joints if until - c.still_window_s <= t <= until]
        if not self._joints or self.clock() - self._joints[-1][0] > c.joint_state_max_age_s:
            return False, None, "no recent joint_states"
        if len(window) < 2 or self._joints[0][0] > until - c.still_window_s:
            return False, None, f"less than {c.still_window_s:g} s of joint states yet"
        qs = np.array(window)
        motion = float(np.max(qs.max(axis=0) - qs.min(axis=0)))
        if motion > c.still_tolerance_rad:
            return False, None, f"the arm is moving ({np.degrees(motion):.2f} deg within {c.still_window_s:g} s)"
        return True, qs.mean(axis=0), ""

    def capture(self) -> Capture:
        c = self.config
        requested = self.clock()
        deadline = requested + c.capture_timeout_s
        reason = "no image since the request"
        with self._cond:
            while True:
                if self._image is not None and self._image[2] > requested:
                    image, stamp, arrived = self._image
                    ok, q, why = self._still(arrived)
                    if ok:
                        return Capture(image, q, stamp)
                    reason = why
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise CaptureError(f"{reason} (waited {c.capture_timeout_s:g} s)")
                self._cond.wait(min(remaining, 0.1))

    # -- ArmMotion ---------------------------------------------------------------------------
    def current_q(self) -> np.ndarray:
        with self._cond:
            if not self._joints or self.clock() - self._joints[-1][0] > self.config.joint_state_max_age_s:
                raise MotionError("no recent joint_states from the arm")
            return self._joints[-1][1].copy()

    def move_to(self, q_goal: np.ndarray) -> np.ndarray:
        from dkt_grasping.planning import PlanningError

        if self.planner is None or self.send_trajectory is None or self.kin is None:
            raise MotionError("automatic motion needs a planner, the kinematics and a trajectory output")
        if self.stopped:
            raise MotionError("stopped by the operator")
        q_now = self.current_q()
        try:
            traj = self.planner.plan_to_pose(q_now, self.kin.fk(np.asarray(q_goal, dtype=np.float64), frame="tcp"), self.scene_points)
        except PlanningError as exc:
            raise MotionError(f"no plan: {exc.reason}") from exc
        with self._cond:
            gripper = self._gripper
        self.send_trajectory(traj, gripper)
        c = self.config
        sent = self.clock()
        end = traj.positions[-1]
        deadline = sent + traj.duration + c.settle_timeout_s
        with self._cond:
            while True:
                if self.stopped:
                    raise MotionError("stopped by the operator")
                last_t = self._joints[-1][0] if self._joints else -np.inf
                # only joint states of a whole still window after the command count: older ones show where the arm was
                if last_t - c.still_window_s >= sent and np.max(np.abs(self._joints[-1][1] - end)) <= c.arrive_tolerance_rad:
                    ok, q, _ = self._still(last_t)
                    if ok:
                        return q
                remaining = deadline - self.clock()
                if remaining <= 0:
                    last = self._joints[-1][1] if self._joints else None
                    off = "no joint states" if last is None else f"{np.degrees(np.max(np.abs(last - end))):.1f} deg from the goal"
                    raise MotionError(f"the arm did not arrive and settle in {traj.duration + c.settle_timeout_s:.0f} s ({off})")
                self._cond.wait(min(remaining, 0.1))
