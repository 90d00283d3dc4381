"""Time parameterisation of joint waypoint paths with ruckig (jerk-limited, velocity/acceleration bounded).

Each waypoint-to-waypoint piece is a rest-to-rest ruckig motion with phase
synchronisation, so every joint moves in proportion and the motion stays on
the straight joint-space segment that the collision checker verified.
"""

from __future__ import annotations

import itertools

import numpy as np
from ruckig import InputParameter, Result, Ruckig, Synchronization, Trajectory

from dkt_grasping.planning.base import JointTrajectory


def time_parameterize(
    waypoints: np.ndarray, max_velocity: np.ndarray, max_acceleration: np.ndarray, max_jerk: np.ndarray, dt: float = 0.01
) -> JointTrajectory:
    """Sample a rest-to-rest motion through joint waypoints (K x dof, rad) every ``dt`` seconds.

    Limits are per joint: rad/s, rad/s^2, rad/s^3.
    """
    waypoints = np.asarray(waypoints, dtype=np.float64)
    if waypoints.ndim != 2 or len(waypoints) < 1:
        raise ValueError(f"waypoints must be K x dof with K >= 1, got {waypoints.shape}")
    dof = waypoints.shape[1]
    limits = [np.broadcast_to(np.asarray(v, float), (dof,)) for v in (max_velocity, max_acceleration, max_jerk)]
    if any(np.any(v <= 0) for v in limits):
        raise ValueError("velocity, acceleration and jerk limits must be > 0")
    times, pos, vel, acc = [0.0], [waypoints[0]], [np.zeros(dof)], [np.zeros(dof)]
    t0 = 0.0
    otg = Ruckig(dof)
    for a, b in itertools.pairwise(waypoints):
        if np.allclose(a, b, atol=1e-9):
            continue
        inp = InputParameter(dof)
        inp.current_position, inp.target_position = a.tolist(), b.tolist()
        inp.current_velocity = inp.current_acceleration = inp.target_velocity = inp.target_acceleration = [0.0] * dof
        inp.max_velocity, inp.max_acceleration, inp.max_jerk = (v.tolist() for v in limits)
        inp.synchronization = Synchronization.Phase
        traj = Trajectory(dof)
        result = otg.calculate(inp, traj)
        if result not in (Result.Working, Result.Finished):
            raise ValueError(f"ruckig could not time the segment {a.round(4).tolist()} -> {b.round(4).tolist()}: {result}")
        duration = traj.duration
        steps = np.arange(1, int(np.ceil(duration / dt)) + 1) * dt
        for t in [*steps[steps < duration - 1e-9], duration]:
            p, v, ac = traj.at_time(t)
            times.append(t0 + t)
            pos.append(np.asarray(p))
            vel.append(np.asarray(v))
            acc.append(np.asarray(ac))
        t0 += duration
    if len(times) == 1:  # nothing to move: a single-sample trajectory needs two distinct times
        times.append(dt)
        pos.append(waypoints[-1])
        vel.append(np.zeros(dof))
        acc.append(np.zeros(dof))
    return JointTrajectory(np.array(times), np.array(pos), np.array(vel), np.array(acc))
