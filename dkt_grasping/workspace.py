"""The robot's workspace box in the base frame, shared by grasp detection and planning."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from dkt_stack.config import param
from dkt_stack.transforms import invert_transform, transform_points


@dataclass
class WorkspaceLimits:
    """Axis-aligned box in the robot base frame (metres) where grasps may lie."""

    x_min: float = param(0.15, help="base frame x lower bound (m)")
    x_max: float = param(0.55, help="base frame x upper bound (m)")
    y_min: float = param(-0.3, help="base frame y lower bound (m)")
    y_max: float = param(0.3, help="base frame y upper bound (m)")
    z_min: float = param(-0.05, help="base frame z lower bound (m); just below the table top")
    z_max: float = param(0.35, help="base frame z upper bound (m)")

    def __post_init__(self):
        for axis in "xyz":
            lo, hi = getattr(self, f"{axis}_min"), getattr(self, f"{axis}_max")
            if not lo < hi:
                raise ValueError(f"workspace {axis}_min ({lo}) must be < {axis}_max ({hi})")

    @property
    def lower(self) -> np.ndarray:
        return np.array([self.x_min, self.y_min, self.z_min])

    @property
    def upper(self) -> np.ndarray:
        return np.array([self.x_max, self.y_max, self.z_max])

    def contains(self, points_base: np.ndarray) -> np.ndarray:
        """Mask of which Nx3 base-frame points (m) lie inside the box (bounds included)."""
        p = np.asarray(points_base)
        return np.all((p >= self.lower) & (p <= self.upper), axis=-1)

    def corners(self) -> np.ndarray:
        """8x3 corners in the base frame (m)."""
        return np.array(list(itertools.product(*zip(self.lower, self.upper))))

    def camera_frame_limits(self, T_base_camera: np.ndarray) -> list[float]:
        """AnyGrasp-style ``[xmin, xmax, ymin, ymax, zmin, zmax]`` in the camera frame.

        The axis-aligned hull of the box's corners seen from the camera: it
        contains the workspace (results are filtered in the base frame again).
        """
        c = transform_points(invert_transform(T_base_camera), self.corners())
        lo, hi = c.min(axis=0), c.max(axis=0)
        return [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])]
