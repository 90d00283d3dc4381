"""Where things stand in the simulated Cobot Magic: arm bases, table, AprilTags, the front D435, a viewing camera.

World frame (the platform's): origin on the floor under the platform centre,
x forward (towards the table), y left, z up, metres. Arm base frames are the
PiPER ``base_link`` (joint 1 axis at the origin, z up), turned by ``yaw``
about z. Camera poses are the D435 colour *optical* frame (REP 103).

Sources for the dimensions (nominal values; a real rig is measured with hand-eye calibration):

* Arm bases 0.2305 m in front of the platform centre, 0.297 m either side of
  it, 0.782 m above the floor: the left follower arm's fixed joint in
  RoboTwin 2.0's ``aloha-agilex`` embodiment (the AgileX Cobot Magic), as read
  by HorizonRobotics' robo_orchard_lab test of its cuRobo base transform
  (``xyz (0.2305, 0.297, 0.782)``; its 0.02 rad yaw is dropped here).
* The front camera sits on the platform's aluminium-profile mast *between*
  the two arms, looking down at the table (dexmal/opendm, ``docs/zh/robot_platforms.md``:
  "原厂位于两条执行臂之间的铝型材主视角相机架"; that project raised it to 1.772 m
  and tilted it 27.5 deg from the mast). Here it is 0.18 m behind the arm bases,
  0.56 m above the table top, pitched about 50 deg down at the middle of the
  workspace: the same stand-off as the project's synthetic tabletop (0.42 m
  behind, 0.55 m above its target).
* D435 colour stream at 640x480 with the synthetic scene's intrinsics: square
  pixels, 55 deg horizontal field of view (fx = fy = 614.7 px, principal point
  at the image centre); the datasheet's 69 x 42 deg is the 16:9 1920x1080 mode,
  the 4:3 640x480 mode crops it to about 55 deg.
* Table top 2.2 cm below the arm mounting plane (a 0.76 m table in front of a
  0.78 m platform), its front edge 0.1 m in front of the arm bases.
* AprilTags (tag36h11, 6 cm black square: the metric node's default) on the
  table: two at the far corners of the workspace and one near the platform,
  at different distances so that the scale *and* shift of relative depth are observable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_perception.synthetic_scene import look_at_transform
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.rig import ArmMount, RigCamera, RigConfig, matrix_to_pose7
from dkt_stack.transforms import invert_transform, xyz_rpy_to_transform


@dataclass(frozen=True)
class ArmPlacement:
    """One PiPER follower arm: its name in the rig, base frame id, base origin in the world (m) and yaw about z (rad)."""

    name: str
    base_frame: str
    position: tuple[float, float, float]
    yaw: float = 0.0

    @property
    def T_world_base(self) -> np.ndarray:  # noqa: N802 - conventional transform name
        return xyz_rpy_to_transform(self.position, (0.0, 0.0, self.yaw))


@dataclass(frozen=True)
class TagPlacement:
    """An AprilTag lying on the table: id, black-square edge (m), centre x, y (world, m), yaw (rad)."""

    id: int
    size_m: float
    x: float
    y: float
    yaw: float = 0.0


@dataclass(frozen=True)
class CobotMagicGeometry:
    """The simulated rig (see the module docstring for the sources)."""

    arms: tuple[ArmPlacement, ...] = (
        ArmPlacement("left", "left_base_link", (0.2305, 0.297, 0.782)),
        ArmPlacement("right", "right_base_link", (0.2305, -0.297, 0.782)),
    )
    platform_top_z: float = 0.782
    table_top_z: float = 0.76
    table_x: tuple[float, float] = (0.33, 1.08)  # near and far edge (world x, m)
    table_half_width: float = 0.6
    camera_position: tuple[float, float, float] = (0.05, 0.0, 1.32)
    camera_look_at: tuple[float, float, float] = (0.52, 0.0, 0.76)
    hfov_deg: float = 55.0
    width: int = 640
    height: int = 480
    #: A viewing camera for the picture strips (front right, above the table), looking at the workspace.
    external_position: tuple[float, float, float] = (1.15, -0.75, 1.35)
    external_look_at: tuple[float, float, float] = (0.5, 0.0, 0.8)
    tags: tuple[TagPlacement, ...] = (
        TagPlacement(0, 0.06, 0.93, 0.27, 0.3),
        TagPlacement(1, 0.06, 0.93, -0.27, -0.2),
        TagPlacement(2, 0.06, 0.385, 0.0, 0.0),
    )
    #: Where objects may stand (world x range, |y| bound, m) and how far from the nearest arm base (horizontal, m).
    object_x: tuple[float, float] = (0.44, 0.72)
    object_y_max: float = 0.33
    object_reach: tuple[float, float] = (0.2, 0.46)
    #: Joint angles (rad) the arms rest at between grasps: folded up beside the workspace, clear of the camera's view.
    home_q: tuple[float, ...] = (0.0, 0.35, -0.45, 0.0, 0.55, 0.0)

    def arm(self, name: str) -> ArmPlacement:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"the simulated rig has no arm {name!r} (arms: {', '.join(a.name for a in self.arms)})")

    @property
    def T_world_camera(self) -> np.ndarray:  # noqa: N802
        """The D435 colour optical frame in the world (4x4, m)."""
        return look_at_transform(self.camera_position, self.camera_look_at)

    @property
    def T_world_external(self) -> np.ndarray:  # noqa: N802
        """The viewing camera's optical frame in the world (4x4, m)."""
        return look_at_transform(self.external_position, self.external_look_at)

    def T_base_camera(self, arm: str) -> np.ndarray:  # noqa: N802
        """The camera optical frame in an arm's base frame (4x4, m): what hand-eye calibration measures on the rig."""
        return invert_transform(self.arm(arm).T_world_base) @ self.T_world_camera

    def intrinsics(self, width: int | None = None, height: int | None = None) -> CameraIntrinsics:
        """The D435 colour intrinsics at ``width`` x ``height`` (default 640x480): square pixels, centred principal point."""
        return CameraIntrinsics.from_fov(width or self.width, height or self.height, self.hfov_deg, frame_id="camera_color_optical_frame")

    def rig_config(self) -> RigConfig:
        """The rig description (:mod:`dkt_stack.rig`) of this geometry: camera pose per arm."""
        arms = {
            a.name: ArmMount(base_frame=a.base_frame, camera_pose=[round(v, 9) for v in matrix_to_pose7(self.T_base_camera(a.name))])
            for a in self.arms
        }
        return RigConfig(name="cobot_magic_sim", arms=arms, camera=RigCamera(), description="the MuJoCo Cobot Magic of dkt_sim")

    def nearest_base_distance(self, xy_world: np.ndarray) -> np.ndarray:
        """Horizontal distance (m) from world points (..., 2) to the nearest arm base."""
        xy = np.asarray(xy_world, dtype=np.float64)
        return np.min([np.linalg.norm(xy - np.asarray(a.position[:2]), axis=-1) for a in self.arms], axis=0)


#: The simulated Cobot Magic.
COBOT_MAGIC = CobotMagicGeometry()


def rig_yaml(geometry: CobotMagicGeometry = COBOT_MAGIC) -> str:
    """``config/rig/cobot_magic_sim.yaml`` as written by :func:`write_rig_yaml`."""
    rig = geometry.rig_config()
    lines = [
        "# The simulated Cobot Magic (dkt_sim): the D435 colour optical frame in each arm's base frame,",
        "# x y z (m) qx qy qz qw. Generated from dkt_sim/rig_geometry.py (python -m dkt_sim.rig_geometry);",
        "# a test checks it against the MJCF the simulator builds. Do not edit by hand.",
        f"name: {rig.name}",
        f"description: {rig.description}",
        "camera:",
        f"  optical_frame: {rig.camera.optical_frame}",
        f"  link_frame: {rig.camera.link_frame}",
        "arms:",
    ]
    for name, mount in rig.arms.items():
        lines += [f"  {name}:", f"    base_frame: {mount.base_frame}", f"    camera_pose: [{', '.join(repr(v) for v in mount.camera_pose)}]"]
    return "\n".join(lines) + "\n"


def write_rig_yaml(path=None):
    """Write :func:`rig_yaml` to the shipped rig file (atomically); returns the path."""
    from dkt_stack.atomic_files import write_text_atomic
    from dkt_stack.rig import rig_dir

    return write_text_atomic(path or rig_dir() / "cobot_magic_sim.yaml", rig_yaml())


if __name__ == "__main__":
    print(write_rig_yaml())
