"""Which arm executes a trial: the one decision a dual-arm rig makes before detecting grasps.

Today: the arm whose base is nearest the target, measured horizontally in each
arm's own base frame, so it needs nothing but the rig description
(``T_base_camera`` per arm, :mod:`dkt_stack.rig`) and the target's position
seen by the camera. A reachability-based choice (issue 13: the arm that can
execute the best grasp) replaces :func:`choose_arm` here and nowhere else.
"""

from __future__ import annotations

import numpy as np

from dkt_stack.transforms import transform_points


def choose_arm(target_camera: np.ndarray, T_base_camera: dict[str, np.ndarray]) -> str:
    """Name of the arm for a target at ``target_camera`` (3,) in the camera optical frame (m).

    T_base_camera: arm name -> 4x4 camera optical frame in that arm's base frame (m).
    Ties go to the first arm in the mapping's order.
    """
    if not T_base_camera:
        raise ValueError("choose_arm needs at least one arm")
    p = np.asarray(target_camera, dtype=np.float64).reshape(1, 3)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"target position must be finite (camera frame, m), got {p.ravel().tolist()}")
    distance = {name: float(np.linalg.norm(transform_points(T, p)[0, :2])) for name, T in T_base_camera.items()}
    return min(distance, key=lambda name: distance[name])
