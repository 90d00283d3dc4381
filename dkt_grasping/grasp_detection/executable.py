"""Grasps one arm can execute: a detector's candidates, checked for reachability before they are ranked.

:class:`ExecutableGraspDetector` wraps any detector that exposes
``candidates()`` (every checked candidate before non-maximum suppression) and
``select()`` (its final NMS): candidates -> :class:`ReachabilityChecker.rank`
(closed-form IK for pre-grasp, grasp and lift, limits, self- and scene
collision; score = quality blended with the reach margin) -> NMS. It has the
detectors' interface, so nodes, trials and benchmarks use it unchanged, and it
keeps what it dropped and why in :attr:`ExecutableGraspDetector.last`.
"""

from __future__ import annotations

import numpy as np

from dkt_grasping.grasp import Grasp
from dkt_grasping.grasp_detection.base import check_cloud, check_target, check_transform
from dkt_grasping.reachability import RankedGrasps, ReachabilityChecker
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.transforms import transform_points


class ExecutableGraspDetector:
    """``detector``'s grasps that ``checker``'s arm can execute, best combined score first."""

    def __init__(self, detector, checker: ReachabilityChecker):
        for method in ("candidates", "select"):
            if not callable(getattr(detector, method, None)):
                raise TypeError(f"{type(detector).__name__} has no {method}() and cannot be checked for reachability")
        self.detector, self.checker = detector, checker
        self.last: RankedGrasps | None = None  #: the latest ranking: kept grasps and drop counts by reason

    def detect(
        self, points: np.ndarray, colors: np.ndarray | None, T_base_camera: np.ndarray, workspace: WorkspaceLimits, target: np.ndarray | None = None
    ) -> list[Grasp]:
        """Executable grasps (base frame), best first; the same arguments as any detector's ``detect``.

        With a ``target`` (bool (N,) over points: the operator's object) the detector keeps only candidates
        closing on it *before* they are checked and ranked, so the final NMS and its cap see the target's alone;
        and the target is no obstacle to the arm's motions (it goes where the gripper goes): the arm is checked
        against the rest of the scene, the scene to give the planner too (:func:`arm_scene`).
        """
        candidates = self.detector.candidates(points, colors, T_base_camera, workspace, target)
        self.last = self.checker.rank(candidates, arm_scene(points, T_base_camera, target))
        return self.detector.select(self.last.grasps)


def arm_scene(points: np.ndarray, T_base_camera: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """The obstacles for the arm (Kx3, base frame, m): the cloud's valid points (camera frame, Nx3) without the
    target's (bool (N,) or None), which moves with the gripper once grasped."""
    pts, _ = check_cloud(points, None)
    on_target = check_target(target, points)
    scene = transform_points(check_transform(T_base_camera), pts)
    return scene if on_target is None else scene[~on_target]
