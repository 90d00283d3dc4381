"""Scripted grasps: a hand-placed gripper pose turned into a timed sequence without the planner.

For tests of the physics and the judge, and for the benchmark: move (joint
space) to a pre-grasp ``approach_m`` back along the approach axis, go straight
in, close, lift ``lift_m`` along world up. IK is this project's
:class:`~dkt_grasping.kinematics.PiperKinematics`; timing is a smooth
(cubic) profile per segment at a bounded joint speed.
"""

from __future__ import annotations

import numpy as np

from dkt_grasping.kinematics import PiperKinematics
from dkt_sim.execution import TimedSequence


def _segment(q0: np.ndarray, q1: np.ndarray, opening: float, t0: float, speed: float, dt: float):
    duration = max(float(np.abs(q1 - q0).max()) / speed * 1.5, 0.2)
    n = max(int(np.ceil(duration / dt)), 2)
    s = np.linspace(0.0, 1.0, n + 1)[1:]
    blend = 3 * s**2 - 2 * s**3
    rate = (6 * s - 6 * s**2) / duration
    times = t0 + s * duration
    pos = np.column_stack([q0 + blend[:, None] * (q1 - q0), np.full(n, opening)])
    vel = np.column_stack([rate[:, None] * (q1 - q0), np.zeros(n)])
    return times, pos, vel


def grasp_sequence(
    q_start: np.ndarray,
    T_base_tcp: np.ndarray,
    opening: float,
    *,
    approach_m: float = 0.08,
    lift_m: float = 0.08,
    speed: float = 0.8,
    dwell_s: float = 0.6,
    kinematics: PiperKinematics | None = None,
    dt: float = 0.01,
) -> TimedSequence:
    """The sequence for a grasp whose fingertip centre (tcp, PiPER convention) is ``T_base_tcp`` (4x4, base frame, m).

    q_start (6,) rad; opening: the gripper opening during the approach (m); speed: joint speed bound (rad/s).
    """
    kin = kinematics or PiperKinematics()
    T_pre = T_base_tcp.copy()
    T_pre[:3, 3] -= approach_m * T_base_tcp[:3, 2]
    T_lift = T_base_tcp.copy()
    T_lift[2, 3] += lift_m
    q0 = np.asarray(q_start, dtype=np.float64)
    q_pre = kin.ik(T_pre, q0)  # the branch nearest the start, then stay on it
    q_grasp = kin.ik(T_base_tcp, q_pre)
    q_lift = kin.ik(T_lift, q_grasp)
    times, pos, vel = [np.array([0.0])], [np.array([[*q0, 0.0]])], [np.zeros((1, 7))]
    t = 0.0
    pieces = [(q0, q0, opening, dwell_s), (q0, q_pre, opening, None), (q_pre, q_grasp, opening, None),
              (q_grasp, q_grasp, 0.0, dwell_s), (q_grasp, q_lift, 0.0, None)]  # fmt: skip
    for a, b, width, dwell in pieces:
        if dwell is not None:  # a gripper command: one point after the dwell, the arm still
            t += dwell
            times.append(np.array([t]))
            pos.append(np.array([[*b, width]]))
            vel.append(np.zeros((1, 7)))
            continue
        ts, ps, vs = _segment(a, b, width, t, speed, dt)
        times.append(ts)
        pos.append(ps)
        vel.append(vs)
        t = float(ts[-1])
    return TimedSequence(np.concatenate(times), np.concatenate(pos), np.concatenate(vel))


def tangential_grasp_pose(world, arm: str, index: int, *, tilt_deg: float = 20.0, below_top_m: float = 0.03, offset_m: float = 0.0) -> np.ndarray:
    """A hand-placed grasp of scene object ``index``: fingertips ``below_top_m`` under its top, closing across it tangentially
    to ``arm`` (perpendicular to the line from the arm's base), the approach tilted ``tilt_deg`` away from the base.

    Returns ``T_base_tcp`` (4x4, the arm's base frame, m); ``offset_m`` moves it along the closing direction (a miss).
    """
    from dkt_grasping.grasp_frames import gripper_frame_from_axes
    from dkt_stack.transforms import invert_transform, make_transform

    T_base = world.T_world_base(arm)
    obj = world.object_pose(index)[:3, 3]
    radial = obj[:2] - T_base[:2, 3]
    radial /= np.linalg.norm(radial)
    closing = np.array([-radial[1], radial[0], 0.0])
    a = np.deg2rad(tilt_deg)
    R = gripper_frame_from_axes(np.array([*(np.sin(a) * radial), -np.cos(a)]), closing)
    top = obj[2] + world.scene.objects[index].size[2]
    T_world_tcp = make_transform(R, [obj[0] + offset_m * closing[0], obj[1] + offset_m * closing[1], top - below_top_m])
    return invert_transform(T_base) @ T_world_tcp
