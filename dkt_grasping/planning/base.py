"""Plan types shared by every planner: joint trajectories, gripper commands, grasp plans, planning errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from dkt_grasping.grasp import Grasp

PlanningFailure = Literal["start_invalid", "workspace", "joint_limits", "unreachable", "collision", "no_path", "backend"]


class PlanningError(ValueError):
    """A goal the planner refuses or cannot reach.

    ``kind`` is one of :data:`PlanningFailure`; ``reason`` a sentence saying
    what was asked and why it cannot be done.
    """

    def __init__(self, kind: PlanningFailure, reason: str):
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


@dataclass
class JointTrajectory:
    """Time-parameterised joint motion sampled at fixed steps.

    times: (T,) seconds from the segment start; positions, velocities,
    accelerations: (T, 6) in rad, rad/s, rad/s^2 (joint1..joint6).
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray

    def __post_init__(self):
        self.times = np.asarray(self.times, dtype=np.float64)
        n = len(self.times)
        for name in ("positions", "velocities", "accelerations"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"trajectory {name} must be ({n}, dof), got {arr.shape}")
            setattr(self, name, arr)
        if n == 0 or np.any(np.diff(self.times) <= 0):
            raise ValueError("trajectory times must be non-empty and strictly increasing")

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])

    def sample(self, t: float) -> np.ndarray:
        """Joint positions at time t (s), linearly interpolated and clamped to the ends."""
        return np.array([np.interp(t, self.times, self.positions[:, j]) for j in range(self.positions.shape[1])])


@dataclass
class GripperCommand:
    """Open or close the gripper: finger opening (m) and effort (N*m) limits."""

    width: float
    effort: float = 1.0


@dataclass
class PlanStep:
    """One named step of a grasp plan: a trajectory or a gripper command."""

    name: str
    action: JointTrajectory | GripperCommand


@dataclass
class GraspPlan:
    """approach -> grasp -> close -> lift, as steps to execute in order."""

    grasp: Grasp
    steps: list[PlanStep] = field(default_factory=list)
    q_grasp: np.ndarray | None = None
    planning_time: float = 0.0
    grasp_index: int = 0  #: which of the planner's input grasps (0 = the best ranked) this plan executes

    def trajectories(self) -> list[JointTrajectory]:
        return [s.action for s in self.steps if isinstance(s.action, JointTrajectory)]

    @property
    def duration(self) -> float:
        return sum(t.duration for t in self.trajectories())


class GraspPlanner(Protocol):
    def plan_grasp(self, q_start: np.ndarray, grasps: list[Grasp], scene_points: np.ndarray | None) -> GraspPlan:
        """Plan for the best feasible grasp of the goal set ``grasps`` (best first); the plan names it (``grasp_index``).

        q_start rad (6,); scene_points Nx3 base frame (m) or None.
        """
        ...


#: Name of the gripper opening (m) in combined arm + gripper joint arrays and messages.
GRIPPER_JOINT = "gripper"


def plan_to_arrays(plan: GraspPlan, gripper_dwell: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A grasp plan as one timed sequence of arm + gripper points (e.g. one trajectory_msgs/JointTrajectory).

    Returns ``times`` (T,) s, ``positions`` (T, 7) rad and, in the last column,
    the gripper opening (m), ``velocities`` (T, 7) and ``efforts`` (T, 7) whose
    last column is the gripper effort (N*m). A gripper command becomes a point
    ``gripper_dwell`` seconds after the previous one with the arm held still.
    """
    if gripper_dwell <= 0:
        raise ValueError(f"gripper_dwell must be > 0 s, got {gripper_dwell}")
    trajs = plan.trajectories()
    if not trajs:
        raise ValueError("the plan has no joint trajectory")
    q = trajs[0].positions[0]
    width, effort = 0.0, 0.0
    for s in plan.steps:  # the gripper state before the first motion: the first command, if it comes first
        if isinstance(s.action, GripperCommand):
            width, effort = s.action.width, s.action.effort
            break
        if isinstance(s.action, JointTrajectory):
            break
    times, pos, vel, eff = [0.0], [[*q, width]], [[0.0] * 7], [[0.0] * 6 + [effort]]
    t = 0.0
    first_gripper_done = False
    for s in plan.steps:
        a = s.action
        if isinstance(a, GripperCommand):
            if not first_gripper_done and len(times) == 1:
                first_gripper_done = True  # already the initial state
                continue
            width, effort = a.width, a.effort
            t += gripper_dwell
            times.append(t)
            pos.append([*q, width])
            vel.append([0.0] * 7)
            eff.append([0.0] * 6 + [effort])
            continue
        first_gripper_done = True
        for k in range(1, len(a.times)):
            times.append(t + a.times[k] - a.times[0])
            pos.append([*a.positions[k], width])
            vel.append([*a.velocities[k], 0.0])
            eff.append([0.0] * 6 + [effort])
        t = times[-1]
        q = a.positions[-1]
    return np.array(times), np.array(pos), np.array(vel), np.array(eff)


def steps_from_arrays(
    times: np.ndarray, positions: np.ndarray, velocities: np.ndarray, efforts: np.ndarray | None = None
) -> list[PlanStep]:
    """Inverse of :func:`plan_to_arrays`: split a 7-column sequence into arm trajectories and gripper commands.

    A change of the gripper column is a gripper command (effort from the last
    effort column, 1 N*m when absent); the arm samples between changes form
    trajectories (accelerations are not carried and come back as zeros).
    """
    times, positions, velocities = (np.asarray(a, dtype=np.float64) for a in (times, positions, velocities))
    if positions.ndim != 2 or positions.shape[1] != 7 or len(times) != len(positions) or velocities.shape != positions.shape:
        raise ValueError(
            f"expected times (T,) and positions/velocities (T, 7) (6 joints + gripper), got {times.shape}, {positions.shape}, {velocities.shape}"
        )
    efforts = np.ones_like(positions) if efforts is None or len(efforts) == 0 else np.asarray(efforts, dtype=np.float64)
    steps: list[PlanStep] = []
    segment = [0]

    def flush():
        if len(segment) >= 2:
            idx = np.array(segment)
            traj = JointTrajectory(times[idx] - times[idx[0]], positions[idx, :6], velocities[idx, :6], np.zeros((len(idx), 6)))
            steps.append(PlanStep(f"segment_{len(steps)}", traj))

    steps.append(PlanStep("gripper_0", GripperCommand(float(positions[0, 6]), float(efforts[0, 6]))))
    for i in range(1, len(times)):
        if abs(positions[i, 6] - positions[i - 1, 6]) > 1e-9:
            flush()
            steps.append(PlanStep(f"gripper_{len(steps)}", GripperCommand(float(positions[i, 6]), float(efforts[i, 6]))))
            segment = [i]
        else:
            segment.append(i)
    flush()
    return steps
