"""Camera sources by name: ``realsense`` (live D435), ``bag`` (RealSense .bag), ``synthetic``."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Literal

from dkt_perception.camera.frames import CameraFrame
from dkt_perception.camera.realsense import RealSenseConfig, RealSenseSource
from dkt_stack.config import load_config, param
from dkt_stack.conversions import metres_to_depth16

SourceName = Literal["realsense", "bag", "synthetic"]


@dataclass
class SyntheticSourceConfig:
    scene_file: str = param("", help="YAML SceneConfig (dkt_perception.synthetic_scene); empty = the default tabletop")
    seed: int = param(0, help="scene seed (textures, noise, dropouts)")
    fps: float = param(30.0, help="frame rate (Hz)")
    width: int = param(640, help="image width (px)")
    height: int = param(480, help="image height (px)")
    camera_motion: bool = param(False, help="move the camera a little every frame (slower: re-renders each frame)")


class SyntheticSource:
    """Frames of the synthetic tabletop, with ground truth; never ends (frame index counts up)."""

    description = "synthetic tabletop scene"

    def __init__(self, config: SyntheticSourceConfig, frame_id: str = "camera_color_optical_frame"):
        from dkt_perception.synthetic_scene import SceneConfig, SyntheticScene, default_scene_config

        if config.scene_file:
            scene_config = load_config(SceneConfig, config.scene_file)
        else:
            scene_config = default_scene_config(config.seed)
        scene_config = replace(scene_config, width=config.width, height=config.height, fps=config.fps, camera_motion=config.camera_motion)
        self.scene = SyntheticScene(scene_config)
        # an ideal pinhole: plumb_bob with its 5 coefficients zero, as realsense2_camera publishes D
        self.intrinsics = replace(self.scene.intrinsics, frame_id=frame_id, distortion_model="plumb_bob", distortion=(0.0,) * 5)
        self._index = 0

    def open(self) -> None:
        """Nothing to open: the scene is rendered in memory."""

    def read(self) -> CameraFrame:
        frame = self.scene.render(self._index)
        self._index += 1
        return CameraFrame(
            rgb=frame.rgb,
            depth_mm=metres_to_depth16(frame.raw_depth_m),
            intrinsics=self.intrinsics,
            stamp_ns=time.time_ns(),
            frame_number=frame.frame_index,
            depth_gt_m=frame.depth_gt_m,
        )

    def close(self) -> None:
        """Nothing to close."""


def open_source(name: SourceName, realsense: RealSenseConfig, synthetic: SyntheticSourceConfig, frame_id: str):
    """Build (not yet open) the named source."""
    if name == "synthetic":
        return SyntheticSource(synthetic, frame_id)
    if name == "bag":
        if not realsense.bag_path:
            raise ValueError("source 'bag' needs realsense.bag_path (a RealSense .bag file)")
        return RealSenseSource(replace(realsense, frame_id=frame_id))
    if name == "realsense":
        return RealSenseSource(replace(realsense, bag_path="", frame_id=frame_id))
    raise ValueError(f"unknown camera source '{name}' (choose realsense, bag or synthetic)")
