"""Geometry of the PiPER parallel gripper, used for grasp collision checks and planning.

Frame (the PiPER gripper convention, see :mod:`dkt_grasping.grasp_frames`):
origin at the grasp centre between the finger pads, z = approach (from the
palm towards the object), y = closing direction (the fingers move along +-y),
x = y cross z. With a grasp depth ``depth`` the fingertips end at z = +depth;
the fingers reach back to z = depth - finger_length, the palm sits behind them
and the gripper body continues back to the flange.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_stack.config import param


@dataclass
class GripperConfig:
    """Dimensions of the PiPER gripper (metres)."""

    max_opening: float = param(0.07, help="largest distance between the finger pads (m)")
    finger_length: float = param(0.045, help="finger length along the approach axis (m)")
    finger_thickness: float = param(0.008, help="finger thickness along the closing axis (m)")
    finger_width: float = param(0.018, help="finger width along the gripper x axis (m)")
    palm_depth: float = param(0.02, help="palm thickness along the approach axis, behind the fingers (m)")
    palm_width: float = param(0.04, help="palm extent along the gripper x axis (m)")
    body_length: float = param(0.07, help="gripper body from the palm back to the arm flange (m)")
    body_half_extent: float = param(0.033, help="half size of the gripper body cross-section (m)")

    def __post_init__(self):
        for name in ("max_opening", "finger_length", "finger_thickness", "finger_width", "palm_depth", "palm_width", "body_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"gripper {name} must be > 0 m, got {getattr(self, name)}")
        if self.max_opening > 0.2:
            raise ValueError(f"gripper max_opening {self.max_opening} m is implausible for the PiPER gripper (<= 0.2 m)")

    @property
    def flange_to_fingertip(self) -> float:
        """Distance from the arm flange to the fingertips along the approach axis (m)."""
        return self.body_length + self.palm_depth + self.finger_length

    def collision_boxes(self, opening: float, depth: float, *, include_body: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned boxes of the gripper in the gripper frame for a finger opening and grasp depth (m).

        Returns ``(centres, half_extents)``, both Kx3 float64 in the gripper frame:
        the two fingers, the palm and (optionally) the body up to the flange.
        """
        if not 0.0 <= opening <= self.max_opening + 1e-9:
            raise ValueError(f"opening must be in [0, {self.max_opening}] m, got {opening}")
        L, t = self.finger_length, self.finger_thickness
        z_finger = depth - L / 2
        y_finger = opening / 2 + t / 2
        half_finger = [self.finger_width / 2, t / 2, L / 2]
        span = self.max_opening / 2 + t
        z_palm = depth - L - self.palm_depth / 2
        centres = [[0.0, y_finger, z_finger], [0.0, -y_finger, z_finger], [0.0, 0.0, z_palm]]
        halves = [half_finger, half_finger, [self.palm_width / 2, span, self.palm_depth / 2]]
        if include_body:
            centres.append([0.0, 0.0, depth - L - self.palm_depth - self.body_length / 2])
            halves.append([self.body_half_extent, self.body_half_extent, self.body_length / 2])
        return np.asarray(centres, dtype=np.float64), np.asarray(halves, dtype=np.float64)

    def closing_region(self, opening: float, depth: float) -> tuple[np.ndarray, np.ndarray]:
        """The box swept by the finger pads when closing (gripper frame): ``(centre(3), half_extents(3))``."""
        return (
            np.array([0.0, 0.0, depth - self.finger_length / 2]),
            np.array([self.finger_width / 2, opening / 2, self.finger_length / 2]),
        )


def points_in_boxes(points: np.ndarray, centres: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """Boolean (..., K) mask: is each point (..., 3) strictly inside each axis-aligned box (K, 3)?"""
    d = np.abs(points[..., None, :] - centres) - halves
    return np.all(d < 0.0, axis=-1)


def distance_to_boxes(points: np.ndarray, centres: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """Euclidean distance (..., K) from points (..., 3) to axis-aligned boxes (K, 3); 0 inside (m)."""
    d = np.maximum(np.abs(points[..., None, :] - centres) - halves, 0.0)
    return np.sqrt(np.sum(d * d, axis=-1))
