"""What every grasp detector takes and returns, and the input checks they share."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dkt_grasping.grasp import Grasp
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
    ) -> list[Grasp]:
        """Grasps sorted by descending score.

        points: float32 Nx3 in the camera optical frame (metres).
        colors: uint8 Nx3 RGB, or None.
        T_base_camera: 4x4 camera-to-base transform (``p_base = T @ p_camera``).
        workspace: box in the base frame where grasp centres may lie.
        """
        ...


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
    finite = np.all(np.isfinite(points), axis=1) & np.any(points != 0.0, axis=1)
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
