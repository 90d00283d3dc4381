"""The rig's static TF tree, computed from the one rig description (pure numpy, no rclpy).

Tree (every frame has one parent, as TF requires)::

    camera_link ──▶ camera_color_optical_frame ──▶ left_base_link
                                                └─▶ right_base_link

* ``camera_link -> camera_color_optical_frame``: the fixed rotation
  realsense2_camera publishes between its body frame (x forward, y left, z up)
  and an optical frame (z forward, x right, y down), no translation (the
  D435's colour-sensor offset is not known here). Leave it out when a
  realsense2_camera driver runs: it publishes its own chain down to the
  optical frame, with the factory extrinsics.
* ``camera_color_optical_frame -> <arm>_base_link``: the inverse of each arm's
  ``camera_pose`` in the rig file (the camera optical frame in that arm's base
  frame, from hand-eye calibration).

The optical frame is the parent of the arm bases (not their child) so that both
arms hang off the one camera without giving a frame two parents, and so the
tree stays valid when the camera driver publishes the frames above it. rviz can
use any of these frames as its fixed frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_stack.rig import RigCamera, RigConfig, matrix_to_pose7
from dkt_stack.transforms import invert_transform, make_transform

#: optical frame axes in camera_link: optical x (right) = -y_link, optical y (down) = -z_link, optical z (forward) = x_link
R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class StaticTransform:
    """``child`` frame in ``parent``: ``p_parent = T @ p_child`` (metres)."""

    parent: str
    child: str
    T: np.ndarray

    @property
    def pose7(self) -> list[float]:
        """``[x, y, z, qx, qy, qz, qw]`` of the child in the parent (m, quaternion)."""
        return matrix_to_pose7(self.T)


def rig_static_transforms(rig: RigConfig | None, camera_link: bool = True, camera: RigCamera | None = None) -> list[StaticTransform]:
    """The static transforms of a rig (see the module docstring); ``rig`` None gives the camera's only.

    Args:
        rig: the rig description (camera pose in each arm base); None: no arms.
        camera_link: include ``camera_link -> optical`` (False when a camera driver publishes it).
        camera: frame names when ``rig`` is None (realsense2_camera's defaults).
    """
    cam = rig.camera if rig is not None else (camera or RigCamera())
    out = []
    if camera_link:
        out.append(StaticTransform(cam.link_frame, cam.optical_frame, make_transform(R_LINK_OPTICAL)))
    for arm in (rig.arms.values() if rig is not None else ()):
        out.append(StaticTransform(cam.optical_frame, arm.base_frame, invert_transform(arm.T_base_camera)))
    check_tree(out)
    return out


def check_tree(transforms: list[StaticTransform]) -> None:
    """Raise ValueError when a frame has two parents or the transforms form a cycle (TF would reject both)."""
    parent_of: dict[str, str] = {}
    for t in transforms:
        if t.parent == t.child:
            raise ValueError(f"static transform from {t.parent} to itself")
        if t.child in parent_of:
            raise ValueError(f"frame {t.child} has two parents ({parent_of[t.child]} and {t.parent}): TF needs a tree")
        parent_of[t.child] = t.parent
    for frame in parent_of:
        seen = {frame}
        while frame in parent_of:
            frame = parent_of[frame]
            if frame in seen:
                raise ValueError(f"static transforms form a cycle through {frame}")
            seen.add(frame)
