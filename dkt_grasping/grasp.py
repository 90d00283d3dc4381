"""The grasp result type shared by every detector and planner, with sorting and non-maximum suppression."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A parallel gripper is symmetric under a half turn about its approach axis (the fingers swap).
_HALF_TURN_Z = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Grasp:
    """One grasp in the robot base frame.

    pose: 4x4 ``T_base_grasp`` in the PiPER gripper convention (z = approach,
        y = closing, origin at the grasp centre between the finger pads; metres).
    width: finger opening the grasp needs (m), object width plus margins.
    score: quality in [0, 1] (detector-specific scale, higher is better).
    depth: how far the fingertips reach beyond the grasp centre along z (m).
    object_id: segment id when the detector knows it, else -1.
    """

    pose: np.ndarray
    width: float
    score: float
    depth: float
    object_id: int = -1

    def __post_init__(self):
        self.pose = np.asarray(self.pose, dtype=np.float64)
        if self.pose.shape != (4, 4):
            raise ValueError(f"grasp pose must be 4x4, got {self.pose.shape}")
        R = self.pose[:3, :3]
        if np.abs(R.T @ R - np.eye(3)).max() > 1e-5 or np.linalg.det(R) < 0:
            raise ValueError("grasp pose rotation is not a proper rotation matrix")
        if not np.isfinite(self.width) or self.width < 0:
            raise ValueError(f"grasp width must be >= 0 m, got {self.width}")

    @property
    def position(self) -> np.ndarray:
        return self.pose[:3, 3]

    @property
    def approach(self) -> np.ndarray:
        """Unit approach direction (base frame)."""
        return self.pose[:3, 2]

    @property
    def closing(self) -> np.ndarray:
        """Unit closing direction (base frame)."""
        return self.pose[:3, 1]

    def fingertip_pose(self) -> np.ndarray:
        """``T_base_fingertips``: the grasp frame moved forward by ``depth`` to the fingertip centre."""
        T = self.pose.copy()
        T[:3, 3] += self.depth * self.approach
        return T


def sort_grasps(grasps: list[Grasp]) -> list[Grasp]:
    """Grasps by descending score (stable for ties)."""
    return sorted(grasps, key=lambda g: -g.score)


def rotation_distance(R1: np.ndarray, R2: np.ndarray, *, gripper_symmetric: bool = True) -> float:
    """Angle (rad) between two gripper orientations; with symmetry a half turn about z counts as 0."""

    def angle(Ra, Rb):
        c = (np.trace(Ra.T @ Rb) - 1.0) / 2.0
        return float(np.arccos(np.clip(c, -1.0, 1.0)))

    a = angle(R1, R2)
    return min(a, angle(R1, R2 @ _HALF_TURN_Z)) if gripper_symmetric else a


def grasp_nms(
    grasps: list[Grasp], translation_threshold: float = 0.01, rotation_threshold: float = np.deg2rad(30.0), max_keep: int | None = None
) -> list[Grasp]:
    """Non-maximum suppression: keep the best grasp of each cluster, sorted by score.

    Two grasps are duplicates when their centres are closer than
    ``translation_threshold`` (m) and their orientations differ by less than
    ``rotation_threshold`` (rad), counting the gripper's half-turn symmetry.
    """
    order = sort_grasps(grasps)
    if not order:
        return []
    pos = np.array([g.position for g in order])
    rot = np.array([g.pose[:3, :3] for g in order])
    cos_thr = np.cos(rotation_threshold)
    kept: list[int] = []
    for i in range(len(order)):
        if kept:
            k = np.asarray(kept)
            close = np.linalg.norm(pos[k] - pos[i], axis=1) < translation_threshold
            # trace(Rk^T Ri) and its half-turn twin trace(Rk^T Ri diag(-1,-1,1)), as column dot products.
            dots = np.einsum("kij,ij->kj", rot[k], rot[i])
            cos_a = (dots.sum(axis=1) - 1) / 2
            cos_b = (-dots[:, 0] - dots[:, 1] + dots[:, 2] - 1) / 2
            if np.any(close & (np.maximum(cos_a, cos_b) > cos_thr)):
                continue
        kept.append(i)
        if max_keep is not None and len(kept) >= max_keep:
            break
    return [order[i] for i in kept]
