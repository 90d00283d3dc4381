"""One configuration for a calibration run: the board, the rough mount geometry, detection, solver and pose settings.

Shipped per mode in ``config/calibration/<mode>.yaml``; ``dkt-stack calibrate
--config FILE`` and the node's ``config_file`` parameter take your own.
Poses are ``x y z qx qy qz qw`` (m, quaternion as in ROS), like the rig file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dkt_grasping.calibration.board import BoardConfig
from dkt_grasping.calibration.detection import DetectionConfig
from dkt_grasping.calibration.poses import PosePlanConfig
from dkt_grasping.calibration.samples import check_mode
from dkt_grasping.calibration.solver import SolverConfig
from dkt_grasping.reachability import ArmModelConfig
from dkt_stack.config import ConfigError, load_config, param
from dkt_stack.rig import RigConfig, pose7_to_matrix


@dataclass
class CalibrationConfig:
    """Everything a calibration run needs besides the rig file (see the module docstring)."""

    board: BoardConfig = param(default_factory=BoardConfig, help="the calibration target: its tags, sizes and layout")
    arm: ArmModelConfig = param(
        default_factory=ArmModelConfig, help="the arm's kinematic model (zero convention: must be the firmware's, or every flange pose is off)"
    )
    board_pose: list[float] = param(
        default_factory=lambda: [0.07, 0.0, 0.03, 0.0, 0.0, 0.0, 1.0],
        help="rough board pose, only used to choose automatic poses: in the flange frame for eye_to_hand (board on the gripper), "
        "in the arm's base frame for eye_in_hand (board on the table); x y z (m) qx qy qz qw",
    )
    wrist_camera_pose: list[float] = param(
        default_factory=lambda: [-0.07, 0.0, 0.03, 0.0, 0.258819, 0.0, 0.965926],
        help="eye_in_hand: rough wrist camera optical frame in the flange frame, used to choose automatic poses when the rig "
        "file has no wrist_camera_pose yet; x y z (m) qx qy qz qw",
    )
    detection: DetectionConfig = param(default_factory=DetectionConfig, help="tag detection and sample checks")
    solver: SolverConfig = param(default_factory=SolverConfig, help="hand-eye methods, refinement and outlier rejection")
    poses: PosePlanConfig = param(default_factory=PosePlanConfig, help="automatic pose generation")
    save_images: bool = param(True, help="keep every accepted image in the session folder (PNG) for later inspection")
    verify_max_mm: float = param(3.0, help="--verify passes when the median board position error is at most this, mm")
    verify_max_deg: float = param(0.5, help="--verify passes when the median board rotation error is at most this, deg")

    def __post_init__(self) -> None:
        pose7_to_matrix(self.board_pose, "board_pose")
        pose7_to_matrix(self.wrist_camera_pose, "wrist_camera_pose")


def config_dir() -> Path:
    from dkt_stack.graph import config_dir as root

    return root() / "calibration"


def load_calibration_config(path_or_mode: str | os.PathLike) -> CalibrationConfig:
    """A YAML file, or a mode name for the shipped ``config/calibration/<mode>.yaml``."""
    text = str(path_or_mode)
    if text in ("eye_to_hand", "eye_in_hand"):
        return load_config(CalibrationConfig, config_dir() / f"{text}.yaml")
    return load_config(CalibrationConfig, Path(text))


def nominal_geometry(mode: str, rig: RigConfig, arm: str, config: CalibrationConfig) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) to plan poses with: the rig file's current camera pose and the configured rough board pose.

    eye_to_hand: X = the arm's ``camera_pose`` (T_base_camera); eye_in_hand: X = the
    arm's ``wrist_camera_pose`` when the rig has one, else ``config.wrist_camera_pose``.
    """
    mount = rig.arm(arm)
    if check_mode(mode) == "eye_to_hand":
        X = mount.T_base_camera
    else:
        X = mount.T_flange_wrist_camera if mount.wrist_camera_pose is not None else pose7_to_matrix(config.wrist_camera_pose)
    return X, pose7_to_matrix(config.board_pose, "board_pose")


def output_key(mode: str) -> str:
    """The rig-file key a calibration in ``mode`` writes."""
    return "camera_pose" if check_mode(mode) == "eye_to_hand" else "wrist_camera_pose"


__all__ = ["CalibrationConfig", "ConfigError", "config_dir", "load_calibration_config", "nominal_geometry", "output_key"]
