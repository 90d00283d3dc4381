"""Grasp frame conventions: GraspNet/AnyGrasp versus the PiPER gripper.

GraspNet (and AnyGrasp) gripper frame: **x = approach**, **y = closing
direction** (finger motion), z = x cross y; the origin is the grasp point and
the fingertips reach ``depth`` beyond it along x.

PiPER gripper frame used everywhere in this package (as the gripper link of
the PiPER URDF, whose z axis leaves the flange): **z = approach**, **y =
closing direction**, x = y cross z; same origin, fingertips at z = +depth.

So ``R_piper = R_graspnet @ GRASPNET_TO_PIPER`` with the columns of
``GRASPNET_TO_PIPER`` being the PiPER axes written in the GraspNet frame:
x_p = -z_g, y_p = y_g, z_p = x_g.
"""

from __future__ import annotations

import numpy as np

#: Rotation from the PiPER gripper frame to the GraspNet gripper frame (R_graspnet_piper).
GRASPNET_TO_PIPER = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def graspnet_to_piper(T: np.ndarray) -> np.ndarray:
    """Pose(s) of GraspNet gripper frames (4x4 or Nx4x4) -> the same grasps as PiPER gripper frames."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"expected 4x4 pose(s), got shape {T.shape}")
    out = T.copy()
    out[..., :3, :3] = T[..., :3, :3] @ GRASPNET_TO_PIPER
    return out


def piper_to_graspnet(T: np.ndarray) -> np.ndarray:
    """Inverse of :func:`graspnet_to_piper`."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"expected 4x4 pose(s), got shape {T.shape}")
    out = T.copy()
    out[..., :3, :3] = T[..., :3, :3] @ GRASPNET_TO_PIPER.T
    return out


def gripper_frame_from_axes(approach: np.ndarray, closing: np.ndarray) -> np.ndarray:
    """3x3 rotation of a PiPER gripper frame from an approach and a closing direction (base frame).

    The closing direction is made orthogonal to the approach (Gram-Schmidt);
    raises ValueError when the two are (nearly) parallel.
    """
    z = np.asarray(approach, dtype=np.float64)
    z = z / np.linalg.norm(z)
    y = np.asarray(closing, dtype=np.float64)
    y = y - (y @ z) * z
    n = np.linalg.norm(y)
    if n < 1e-6:
        raise ValueError(f"closing direction {closing} is parallel to the approach {approach}")
    y /= n
    return np.column_stack([np.cross(y, z), y, z])
