"""What every grasp detector takes and returns, and the input checks they share."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dkt_grasping.grasp import Grasp
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.workspace import WorkspaceLimits


class CloudError(ValueError):
    """A point cloud argument has the wrong shape, type or values."""


class EmptyCloudError(CloudError):
    """No usable points (empty cloud, all invalid, or none inside the workspace)."""


class GraspDetector(Protocol):
    """Finds grasps in one camera point cloud."""

    def detect(
        self,
        points: np.ndarray,
        colors: np.ndarray | None,
        T_base_camera: np.ndarray,
        workspace: WorkspaceLimits,
        target: np.ndarray | None = None,
    ) -> list[Grasp]:
        """Grasps sorted by descending score.

        points: float32 Nx3 in the camera optical frame (metres).
        colors: uint8 Nx3 RGB, or None.
        T_base_camera: 4x4 camera-to-base transform (``p_base = T @ p_camera``).
        workspace: box in the base frame where grasp centres may lie.
        target: bool (N,) over ``points``, or None: the object the operator wants (a clicked or segmented
            region); only grasps that close on it are returned, and the detector spends its effort there.
        """
        ...


def valid_points(points: np.ndarray) -> np.ndarray:
    """Mask (N,) of the usable points of an Nx3 cloud: finite and not all zero (the "no depth" marker)."""
    return np.all(np.isfinite(points), axis=1) & np.any(points != 0.0, axis=1)


def check_target(target: np.ndarray | None, points: np.ndarray) -> np.ndarray | None:
    """The operator's target mask (N,) over ``points`` restricted to the points :func:`check_cloud` keeps; None stays None.

    Raises :class:`CloudError` for a mask of the wrong shape or type and :class:`EmptyCloudError` when none of
    the target's points is usable (nothing measured on the object).
    """
    if target is None:
        return None
    target = np.asarray(target)
    points = np.asarray(points)
    if target.dtype != bool or target.shape != (len(points),):
        raise CloudError(f"target must be a bool mask over the {len(points)} points, got dtype {target.dtype} shape {target.shape}")
    kept = target[valid_points(points)]
    if not kept.any():
        raise EmptyCloudError(f"none of the target's {int(target.sum())} points has a valid depth")
    return kept


def target_share(grasps: list[Grasp], points_base: np.ndarray, target: np.ndarray, gripper: GripperConfig) -> np.ndarray:
    """For each grasp, the share (0..1) of the points between its finger pads that belong to the target.

    points_base: Mx3 base frame (m); target: bool (M,). The region is the box the pads sweep when closing
    (:meth:`GripperConfig.closing_region` at the grasp's width and depth); 0 where it holds no point.
    """
    out = np.zeros(len(grasps))
    P = np.asarray(points_base, dtype=np.float64)
    for i, g in enumerate(grasps):
        centre, half = gripper.closing_region(min(g.width, gripper.max_opening), g.depth)
        local = (P - g.position) @ g.pose[:3, :3]
        inside = np.all(np.abs(local - centre) < half, axis=1)
        if inside.any():
            out[i] = float(target[inside].mean())
    return out


def check_cloud(points: np.ndarray, colors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a camera cloud; returns its finite points (float64) and matching colours.

    Raises :class:`CloudError` for a wrong shape or colour count and
    :class:`EmptyCloudError` when no finite point is left.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or points.dtype.kind != "f":
        raise CloudError(f"points must be a float Nx3 array in metres, got dtype {points.dtype} shape {points.shape}")
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != points.shape:
            raise CloudError(f"colors must be Nx3 like points {points.shape}, got {colors.shape}")
        if colors.dtype != np.uint8:
            raise CloudError(f"colors must be uint8 RGB, got {colors.dtype}")
    finite = valid_points(points)
    if not finite.any():
        raise EmptyCloudError(f"the point cloud has no finite non-zero points (got {len(points)} points)")
    return points[finite].astype(np.float64), (colors[finite] if colors is not None else None)


def check_transform(T: np.ndarray, name: str = "T_base_camera") -> np.ndarray:
    """Validate a rigid 4x4 transform."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{name} must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-4) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ValueError(f"{name} is not a rigid transform (rotation not orthonormal or last row not [0 0 0 1])")
    return T
