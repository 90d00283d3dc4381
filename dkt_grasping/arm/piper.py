"""PiPER arm driver over piper-sdk 0.6.2 (``C_PiperInterface_V2``), CAN bus at 1 Mbit/s.

Units on the wire (the SDK's): joints in 0.001 deg (``JointCtrl``, frames
0x155-0x157, feedback 0x2A5-0x2A7), gripper opening in 0.001 mm and effort
in 0.001 N*m (``GripperCtrl``, 0x159; feedback 0x2A8). Joint mode is
``MotionCtrl_2(0x01 CAN control, 0x01 MOVE J, speed %, 0x00 position-velocity)``
(0x151), enable/disable is 0x471, quick stop ``EmergencyStop(0x01)`` (0x150).

Trajectories are streamed as position setpoints at ``rate_hz`` through a
limiter (joint limits, velocity bound). A watchdog stops the arm when joint
feedback is older than ``watchdog_timeout`` (bus lost, arm silent) and raises
:class:`ArmFeedbackLost`. ``bustype="virtual"`` runs the real SDK over
python-can's virtual bus (tests, dry runs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from piper_sdk import C_PiperInterface_V2

from dkt_grasping.arm.base import ArmError, ArmFeedbackLost, ArmState, SetpointLimiter
from dkt_grasping.piper_model import DEFAULT_DH_IS_OFFSET, DH_IS_OFFSET_HELP, JOINT_LOWER, JOINT_UPPER
from dkt_grasping.planning.base import JointTrajectory
from dkt_stack.config import param

#: rad -> SDK joint units (0.001 deg)
RAD_TO_MDEG = 180000.0 / math.pi


@dataclass
class PiperArmConfig:
    """PiPER driver settings."""

    can_name: str = param("can0", help="CAN interface of this arm (e.g. can0, can_left_slave, can_right_slave)")
    bustype: str = param("socketcan", help="python-can interface: socketcan on the robot, virtual for tests")
    check_can_port: bool = param(True, help="check that the socketcan port exists, is up and runs at 1 Mbit/s")
    speed_percent: int = param(50, help="MotionCtrl_2 speed percentage (0-100)")
    rate_hz: float = param(100.0, help="setpoint streaming rate (Hz)")
    max_velocity: list[float] = param(default_factory=lambda: [1.5] * 6, help="bound on setpoint speed (rad/s)")
    watchdog_timeout: float = param(0.25, help="joint feedback older than this stops the arm (s)")
    connect_timeout: float = param(2.0, help="wait this long for the first joint feedback (s)")
    enable_timeout: float = param(3.0, help="wait this long for all motors to report enabled (s)")
    settle_tolerance: float = param(0.02, help="joint error accepted at the end of a trajectory (rad)")
    settle_timeout: float = param(2.0, help="time allowed after the last setpoint to reach it (s)")
    gripper_max_opening: float = param(0.07, help="largest gripper opening (m)")
    gripper_max_effort: float = param(5.0, help="largest gripper effort (N*m); the SDK accepts 0-5")
    dh_is_offset: int = param(DEFAULT_DH_IS_OFFSET, help=DH_IS_OFFSET_HELP + "; passed to piper-sdk for its end-pose FK")

    def __post_init__(self):
        if not 0 <= self.speed_percent <= 100:
            raise ValueError(f"speed_percent must be in [0, 100], got {self.speed_percent}")
        if self.rate_hz <= 0 or self.watchdog_timeout <= 0:
            raise ValueError("rate_hz and watchdog_timeout must be > 0")
        if self.dh_is_offset not in (0, 1):
            raise ValueError(f"dh_is_offset must be 0 (firmware before S-V1.6-3) or 1 (S-V1.6-3 and later), got {self.dh_is_offset}")
        if len(self.max_velocity) != 6 or min(self.max_velocity) <= 0:
            raise ValueError(f"max_velocity must be 6 positive numbers (rad/s), got {self.max_velocity}")


def joints_to_sdk(q: np.ndarray) -> list[int]:
    """Joint angles (rad) -> SDK integers (0.001 deg)."""
    return [int(np.rint(v * RAD_TO_MDEG)) for v in q]


def joints_from_sdk(values) -> np.ndarray:
    """SDK integers (0.001 deg) -> joint angles (rad)."""
    return np.asarray(values, dtype=np.float64) / RAD_TO_MDEG


class PiperArm:
    """PiPER over piper-sdk; use as a context manager so that it is disabled and disconnected on exit."""

    def __init__(self, config: PiperArmConfig | None = None):
        self.config = config or PiperArmConfig()
        self.sdk: C_PiperInterface_V2 | None = None
        self.enabled = False
        self.stopped = False
        self._last_stamp = None
        self._last_change = 0.0

    # -- connection ------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the CAN bus, start the SDK's reader and wait for joint feedback."""
        cfg = self.config
        # The SDK keeps one instance per CAN name; we create the bus ourselves so that any python-can interface works.
        sdk = C_PiperInterface_V2(cfg.can_name, judge_flag=False, can_auto_init=False, dh_is_offset=cfg.dh_is_offset)
        try:
            sdk.CreateCanBus(cfg.can_name, bustype=cfg.bustype, judge_flag=cfg.check_can_port and cfg.bustype == "socketcan")
        except ConnectionError as exc:
            raise ArmError(f"cannot open CAN interface '{cfg.can_name}' ({cfg.bustype}): is it up at 1 Mbit/s? ({exc})") from exc
        sdk.ConnectPort()
        self.sdk = sdk
        deadline = time.monotonic() + cfg.connect_timeout
        while time.monotonic() < deadline:
            if self._poll_feedback():
                return
            time.sleep(0.01)
        raise ArmFeedbackLost(
            f"no joint feedback from the PiPER on CAN '{cfg.can_name}' within {cfg.connect_timeout} s: "
            "is the arm powered and the CAN adapter connected?"
        )

    def _require_sdk(self) -> C_PiperInterface_V2:
        if self.sdk is None:
            raise ArmError("PiPER not connected: call connect() first")
        return self.sdk

    def _poll_feedback(self) -> bool:
        """Record when the joint feedback last changed; True once any feedback arrived."""
        stamp = self._require_sdk().GetArmJointMsgs().time_stamp
        if stamp and stamp != self._last_stamp:
            self._last_stamp = stamp
            self._last_change = time.monotonic()
        return self._last_stamp is not None

    def feedback_age(self) -> float:
        """Seconds since joint feedback last changed (inf before any)."""
        self._poll_feedback()
        return time.monotonic() - self._last_change if self._last_stamp is not None else math.inf

    def read_state(self) -> ArmState:
        sdk = self._require_sdk()
        js = sdk.GetArmJointMsgs().joint_state
        gs = sdk.GetArmGripperMsgs().gripper_state
        q = joints_from_sdk([js.joint_1, js.joint_2, js.joint_3, js.joint_4, js.joint_5, js.joint_6])
        return ArmState(q, gs.grippers_angle * 1e-6, gs.grippers_effort * 1e-3, time.monotonic())

    # -- enable / stop ---------------------------------------------------------------------
    def enable(self) -> None:
        """Enable all motors and the gripper; waits until the drivers report enabled."""
        sdk = self._require_sdk()
        deadline = time.monotonic() + self.config.enable_timeout
        while time.monotonic() < deadline:
            sdk.EnableArm(7)
            sdk.GripperCtrl(0, 1000, 0x01, 0)
            if all(sdk.GetArmEnableStatus()):
                self.enabled, self.stopped = True, False
                return
            time.sleep(0.02)
        raise ArmError(f"PiPER motors did not report enabled within {self.config.enable_timeout} s (status {sdk.GetArmEnableStatus()})")

    def stop(self) -> None:
        """Quick stop (EmergencyStop 0x01); execute() is refused until enable() again."""
        self.stopped = True
        if self.sdk is not None:
            self.sdk.EmergencyStop(0x01)

    def disable(self) -> None:
        """Disable the gripper and all motors (the arm goes limp: have it resting first)."""
        if self.sdk is not None:
            self.sdk.GripperCtrl(0, 0, 0x00, 0)
            self.sdk.DisableArm(7)
        self.enabled = False

    def close(self) -> None:
        """Disable (if enabled) and release the CAN bus."""
        if self.sdk is None:
            return
        try:
            if self.enabled:
                self.disable()
        finally:
            self.sdk.DisconnectPort()
            self.sdk = None

    def __enter__(self) -> PiperArm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- motion ----------------------------------------------------------------------------
    def _require_ready(self) -> C_PiperInterface_V2:
        sdk = self._require_sdk()
        if not self.enabled:
            raise ArmError("PiPER is not enabled: call enable() first")
        if self.stopped:
            raise ArmError("PiPER was stopped; call enable() again before moving")
        return sdk

    def _watchdog(self) -> None:
        age = self.feedback_age()
        if age > self.config.watchdog_timeout:
            self.stop()
            raise ArmFeedbackLost(
                f"PiPER joint feedback on CAN '{self.config.can_name}' is {age:.2f} s old (limit {self.config.watchdog_timeout} s): "
                "CAN bus lost or arm silent; the arm was stopped"
            )

    def execute(self, trajectory: JointTrajectory) -> ArmState:
        """Stream a joint trajectory (rad) at ``rate_hz``; returns the state once the last setpoint is reached."""
        sdk = self._require_ready()
        cfg = self.config
        self._watchdog()
        dt = 1.0 / cfg.rate_hz
        limiter = SetpointLimiter(JOINT_LOWER, JOINT_UPPER, cfg.max_velocity, self.read_state().q)
        q_final = np.clip(trajectory.positions[-1], JOINT_LOWER, JOINT_UPPER)
        start = time.monotonic()
        end_of_stream = start + trajectory.duration
        tick = 0
        while True:
            now = time.monotonic()
            q_cmd = limiter.step(trajectory.sample(trajectory.times[0] + (now - start)), dt)
            # Repeating the mode command with every setpoint is what the SDK's joint control demo does.
            sdk.MotionCtrl_2(0x01, 0x01, cfg.speed_percent, 0x00)
            sdk.JointCtrl(*joints_to_sdk(q_cmd))
            self._watchdog()
            if now >= end_of_stream and np.allclose(q_cmd, q_final, atol=1e-9):
                state = self.read_state()
                if np.abs(state.q - q_final).max() <= cfg.settle_tolerance:
                    return state
                if now > end_of_stream + cfg.settle_timeout:
                    raise ArmError(
                        f"PiPER did not reach the trajectory's end within {cfg.settle_timeout} s "
                        f"(joint error {np.rad2deg(np.abs(state.q - q_final).max()):.2f} deg)"
                    )
            tick += 1
            time.sleep(max(0.0, start + tick * dt - time.monotonic()))

    def set_gripper(self, width: float, effort: float) -> None:
        """Command the gripper opening (m, clamped to [0, max]) with an effort limit (N*m)."""
        sdk = self._require_ready()
        width = float(np.clip(width, 0.0, self.config.gripper_max_opening))
        effort = float(np.clip(effort, 0.0, self.config.gripper_max_effort))
        sdk.GripperCtrl(int(np.rint(width * 1e6)), int(np.rint(effort * 1e3)), 0x01, 0)
