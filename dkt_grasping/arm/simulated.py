"""A simulated PiPER with the same interface as the real driver, for machines without the arm.

Setpoints go through the same limiter as the real driver (joint limits,
velocity bound) and the joints follow them exactly; the gripper takes its
commanded opening at once. With ``realtime`` the execution sleeps
like the real stream, otherwise it runs as fast as it can.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dkt_grasping.arm.base import ArmError, ArmState, SetpointLimiter
from dkt_grasping.piper_model import JOINT_LOWER, JOINT_UPPER
from dkt_grasping.planning.base import JointTrajectory
from dkt_stack.config import param


@dataclass
class SimulatedArmConfig:
    initial_q: list[float] = param(default_factory=lambda: [0.0] * 6, help="joint angles at start (rad)")
    max_velocity: list[float] = param(default_factory=lambda: [1.5] * 6, help="joint speed bound of streamed setpoints (rad/s)")
    rate_hz: float = param(100.0, help="setpoint rate (Hz)")
    gripper_max_opening: float = param(0.07, help="largest gripper opening (m)")
    realtime: bool = param(False, help="sleep between setpoints like the real stream")


class SimulatedArm:
    """In-process PiPER stand-in; ``trace`` keeps every streamed setpoint (rad) for inspection."""

    def __init__(self, config: SimulatedArmConfig | None = None):
        self.config = config or SimulatedArmConfig()
        self.q = np.clip(np.array(self.config.initial_q, float), JOINT_LOWER, JOINT_UPPER)
        self.gripper_width, self.gripper_effort = 0.0, 0.0
        self.connected = self.enabled = self.stopped = False
        self.trace: list[np.ndarray] = []

    def connect(self) -> None:
        self.connected = True

    def enable(self) -> None:
        if not self.connected:
            raise ArmError("simulated arm: connect() before enable()")
        self.enabled, self.stopped = True, False

    def read_state(self) -> ArmState:
        return ArmState(self.q.copy(), self.gripper_width, self.gripper_effort, time.monotonic())

    def _require_ready(self) -> None:
        if not self.enabled:
            raise ArmError("simulated arm is not enabled (call connect() and enable())")
        if self.stopped:
            raise ArmError("simulated arm is emergency-stopped; enable() it again first")

    def execute(self, trajectory: JointTrajectory) -> ArmState:
        """Stream the trajectory's positions at ``rate_hz`` through the limiter."""
        self._require_ready()
        dt = 1.0 / self.config.rate_hz
        limiter = SetpointLimiter(JOINT_LOWER, JOINT_UPPER, self.config.max_velocity, self.q)
        n = int(np.ceil(trajectory.duration / dt)) + 1
        for i in range(n + 1):
            self.q = limiter.step(trajectory.sample(trajectory.times[0] + i * dt), dt)
            self.trace.append(self.q.copy())
            if self.config.realtime:
                time.sleep(dt)
        return self.read_state()

    def set_gripper(self, width: float, effort: float) -> None:
        self._require_ready()
        self.gripper_width = float(np.clip(width, 0.0, self.config.gripper_max_opening))
        self.gripper_effort = float(effort)

    def stop(self) -> None:
        self.stopped = True

    def disable(self) -> None:
        self.enabled = False

    def close(self) -> None:
        self.enabled = self.connected = False
