"""Which arm takes the grasp: on a two-arm rig, the arm with the best executable grasp.

Each arm sees the same camera cloud from its own base (its ``T_base_camera``
from the rig description), gets its own candidates (leaning approaches point
away from *its* base), keeps only what it can execute
(:class:`~dkt_grasping.grasp_detection.executable.ExecutableGraspDetector`),
and the arm whose best grasp has the highest combined score (grasp quality
blended with joint-limit margin and manipulability) wins; ties go to the arm
with more executable grasps, then to the first listed. Pure: no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dkt_grasping.grasp import Grasp
from dkt_grasping.grasp_detection.base import EmptyCloudError
from dkt_grasping.grasp_detection.executable import ExecutableGraspDetector
from dkt_grasping.workspace import WorkspaceLimits


@dataclass
class ArmOption:
    """One arm that could take the grasp: its name, where the camera is in its base frame, its detector and workspace."""

    name: str
    T_base_camera: np.ndarray
    detector: ExecutableGraspDetector
    workspace: WorkspaceLimits = field(default_factory=WorkspaceLimits)


@dataclass
class ArmChoice:
    """The chosen arm (None when no arm can execute any grasp), its grasps (its base frame, best first) and why."""

    arm: str | None
    grasps: list[Grasp]
    per_arm: dict[str, dict]
    reason: str


def choose_arm(options: list[ArmOption], points: np.ndarray, colors: np.ndarray | None, target: np.ndarray | None = None) -> ArmChoice:
    """Detect for every arm and pick one (see the module docstring).

    points: float Nx3 camera optical frame (m); colors: uint8 Nx3 or None; target: bool (N,) over points or
    None, the operator's object (each arm's detector returns only grasps closing on it).
    ``per_arm[name]`` = {"executable": n, "best_score": s or None, "dropped": {reason: n}, "message": text}.
    """
    if not options:
        raise ValueError("choose_arm needs at least one arm")
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    results: dict[str, list[Grasp]] = {}
    per_arm: dict[str, dict] = {}
    for option in options:
        try:
            grasps = option.detector.detect(points, colors, option.T_base_camera, option.workspace, target)
            last = option.detector.last
            message = last.summary() if last is not None else f"{len(grasps)} grasps"
            dropped = dict(last.dropped) if last is not None else {}
        except EmptyCloudError as exc:
            grasps, message, dropped = [], str(exc), {}
        results[option.name] = grasps
        per_arm[option.name] = {
            "executable": len(grasps),
            "best_score": round(grasps[0].score, 4) if grasps else None,
            "dropped": dropped,
            "message": message,
        }
    ranked = sorted(
        (o.name for o in options if results[o.name]),
        key=lambda n: (-results[n][0].score, -len(results[n]), names.index(n)),
    )
    if not ranked:
        detail = "; ".join(f"{n}: {per_arm[n]['message']}" for n in names)
        return ArmChoice(None, [], per_arm, f"no arm can execute a grasp ({detail})")
    best = ranked[0]
    others = ", ".join(f"{n} {per_arm[n]['best_score'] if per_arm[n]['best_score'] is not None else 'none'}" for n in names if n != best)
    reason = f"{best}: best executable grasp score {per_arm[best]['best_score']} ({per_arm[best]['executable']} executable)" + (
        f" vs {others}" if others else ""
    )
    return ArmChoice(best, results[best], per_arm, reason)
