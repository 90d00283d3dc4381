"""The one description of a rig's geometry: which arms there are and where the front camera sits for each.

A rig file (``config/rig/<name>.yaml``) is read by everything that needs the
camera-to-arm geometry: grasp nodes (grasps in an arm's base frame), the TF
publisher, the dual-arm choice, the simulator, and hand-eye calibration, which
writes its result back into it. Poses are ``x y z qx qy qz qw`` (metres,
quaternion as in ROS): ``camera_pose`` is the camera's colour *optical* frame
(REP 103: z forward, x right, y down) expressed in the arm's base frame, i.e.
``p_base = T_base_camera @ p_camera``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dkt_stack.config import ConfigError, load_config, param
from dkt_stack.transforms import make_transform, matrix_to_quat, quat_to_matrix


def pose7_to_matrix(pose: list[float] | tuple[float, ...], what: str = "pose") -> np.ndarray:
    """``[x, y, z, qx, qy, qz, qw]`` (m, unit quaternion) -> 4x4 transform; a clear error for anything else."""
    values = np.asarray(pose, dtype=np.float64).reshape(-1)
    if values.shape != (7,) or not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be 7 finite numbers x y z qx qy qz qw (m, quaternion), got {list(pose)}")
    if abs(np.linalg.norm(values[3:]) - 1.0) > 1e-3:
        raise ValueError(f"{what}: the quaternion {values[3:].tolist()} is not unit length (norm {np.linalg.norm(values[3:]):.4f})")
    return make_transform(quat_to_matrix(values[3:]), values[:3])


def matrix_to_pose7(T: np.ndarray) -> list[float]:
    """4x4 rigid transform -> ``[x, y, z, qx, qy, qz, qw]`` (qw >= 0)."""
    T = np.asarray(T, dtype=np.float64)
    return [*map(float, T[:3, 3]), *map(float, matrix_to_quat(T[:3, :3]))]


@dataclass
class RigCamera:
    """The front camera's frame names (realsense2_camera's defaults)."""

    optical_frame: str = param("camera_color_optical_frame", help="frame_id of the colour images and clouds (REP 103 optical frame)")
    link_frame: str = param("camera_link", help="the camera body frame (x forward, z up), as realsense2_camera names it")


@dataclass
class ArmMount:
    """One arm of the rig: its base frame, CAN interface, and where the camera is seen from its base."""

    base_frame: str = param(help="TF frame of the arm's base (joint1 axis at its origin)")
    camera_pose: list[float] = param(
        help="camera colour optical frame in this arm's base frame: x y z (m) qx qy qz qw; from hand-eye calibration"
    )
    can_name: str = param("", help="SocketCAN interface of the arm (empty: not a CAN arm, e.g. in simulation)")

    def __post_init__(self):
        pose7_to_matrix(self.camera_pose, f"camera_pose of {self.base_frame}")

    @property
    def T_base_camera(self) -> np.ndarray:  # noqa: N802 - conventional transform name
        """4x4 ``T_base_camera`` (camera optical frame -> arm base frame, m)."""
        return pose7_to_matrix(self.camera_pose)


@dataclass
class RigConfig:
    """A rig: one front camera and named arms (``left``, ``right`` on the Cobot Magic)."""

    name: str = param(help="rig name")
    arms: dict[str, ArmMount] = param(help="arms by name; each says where the camera is in its base frame")
    camera: RigCamera = param(default_factory=RigCamera, help="the front camera's frame names")
    description: str = param("", help="free text")

    def __post_init__(self):
        if not self.arms:
            raise ValueError("a rig needs at least one arm")

    def arm(self, name: str) -> ArmMount:
        if name not in self.arms:
            raise ConfigError(f"rig '{self.name}' has no arm '{name}' (arms: {', '.join(self.arms)})", key="arms")
        return self.arms[name]


def rig_dir() -> Path:
    """Folder of the shipped rig files."""
    from dkt_stack.graph import config_dir

    return config_dir() / "rig"


def rig_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped rig by name (``cobot_magic``) or a path to a rig YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        return Path(text)
    shipped = rig_dir() / f"{text}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in rig_dir().glob("*.yaml"))
        raise ConfigError(f"no shipped rig '{text}' (shipped: {', '.join(names)}); pass a path to your own rig file")
    return shipped


def load_rig(name_or_path: str | os.PathLike) -> RigConfig:
    """Load a rig file (see the module docstring) with the one config loader's checks."""
    return load_config(RigConfig, rig_path(name_or_path))
