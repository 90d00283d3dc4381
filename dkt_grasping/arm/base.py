"""The arm interface every backend implements, its errors, and the setpoint limiter they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dkt_grasping.planning.base import JointTrajectory


class ArmError(RuntimeError):
    """The arm cannot do what was asked (not connected, not enabled, stopped, did not settle)."""


class ArmFeedbackLost(ArmError):
    """Joint feedback went stale (CAN bus lost or arm silent); the arm was stopped."""


@dataclass
class ArmState:
    """Measured arm state: joints q (6,) rad, gripper opening (m) and effort (N*m), host time (s, monotonic)."""

    q: np.ndarray
    gripper_width: float
    gripper_effort: float
    stamp: float


class Arm(Protocol):
    def connect(self) -> None: ...
    def enable(self) -> None: ...
    def read_state(self) -> ArmState: ...
    def execute(self, trajectory: JointTrajectory) -> ArmState: ...
    def set_gripper(self, width: float, effort: float) -> None: ...
    def stop(self) -> None: ...
    def disable(self) -> None: ...
    def close(self) -> None: ...


class SetpointLimiter:
    """Clamps streamed joint setpoints to the joint limits and a per-tick velocity bound.

    lower/upper: (6,) rad; max_velocity: (6,) rad/s. ``step(q_desired, dt)``
    returns the next setpoint from the previous one.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray, max_velocity: np.ndarray, q_initial: np.ndarray):
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.max_velocity = np.asarray(max_velocity, float)
        self.q = np.clip(np.asarray(q_initial, float), self.lower, self.upper)

    def step(self, q_desired: np.ndarray, dt: float) -> np.ndarray:
        target = np.clip(np.asarray(q_desired, float), self.lower, self.upper)
        bound = self.max_velocity * dt
        self.q = self.q + np.clip(target - self.q, -bound, bound)
        return self.q.copy()
