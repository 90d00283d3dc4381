"""The generated MJCF against its sources: the planner's PiPER kinematics, the rig file, the camera intrinsics."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.kinematics import PiperKinematics
from dkt_grasping.piper_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from dkt_grasping.reachability import ArmModelConfig
from dkt_sim.mjcf import FINGER_TRAVEL
from dkt_sim.objects import single_object_scene
from dkt_sim.rig_geometry import COBOT_MAGIC, rig_yaml
from dkt_sim.world import SimWorld
from dkt_stack.rig import load_rig, rig_path
from dkt_stack.transforms import invert_transform, make_transform


@pytest.fixture(scope="module")
def world():
    return SimWorld(single_object_scene("soda_can", 0.5, -0.2), width=160, height=120)


@pytest.mark.parametrize("dh_is_offset", [1, 0])
def test_tcp_site_is_the_planners_forward_kinematics(dh_is_offset):
    """For either PiPER zero convention, and a non-default tool, the MuJoCo tcp is PiperKinematics' tcp."""
    arm_model = ArmModelConfig(dh_is_offset=dh_is_offset, tcp_offset=0.14)
    world = SimWorld(single_object_scene("soda_can", 0.5, -0.2), width=96, height=72, arm_model=arm_model)
    kin = PiperKinematics(0.14, dh_is_offset=dh_is_offset)
    rng = np.random.default_rng(7)
    for arm in world.arms:
        for _ in range(25):
            q = rng.uniform(kin.lower, kin.upper)
            world.data.qpos[world.arms[arm].qpos] = q
            world.mj.mj_kinematics(world.model, world.data)
            T_base_tcp = invert_transform(world.T_world_base(arm)) @ world.tcp_pose(arm)
            np.testing.assert_allclose(T_base_tcp, kin.fk(q), atol=1e-6)


def test_joint_ranges_and_fingers_come_from_the_piper_model(world):
    m = world.model
    for arm in world.arms:
        for i, name in enumerate(JOINT_NAMES):
            jid = world._id("joint", f"{arm}_{name}")
            np.testing.assert_allclose(m.jnt_range[jid], [JOINT_LOWER[i], JOINT_UPPER[i]], atol=1e-9)
        for side in ("left", "right"):
            np.testing.assert_allclose(m.jnt_range[world._id("joint", f"{arm}_finger_{side}")], [0.0, FINGER_TRAVEL])
    assert FINGER_TRAVEL == 0.038


def test_rig_file_equals_the_simulated_geometry(world):
    """config/rig/cobot_magic_sim.yaml is what the MJCF builds: the camera's optical frame in each arm's base frame."""
    assert rig_path("cobot_magic_sim").read_text() == rig_yaml()  # regenerate with python -m dkt_sim.rig_geometry
    rig = load_rig("cobot_magic_sim")
    cam = world.mj.mj_name2id(world.model, world.mj.mjtObj.mjOBJ_CAMERA, "d435")
    # MuJoCo cameras look along -z with y up: the optical frame is the camera frame with y and z flipped.
    T_world_optical = make_transform(world.data.cam_xmat[cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0]), world.data.cam_xpos[cam])
    assert set(rig.arms) == set(world.arms) == {"left", "right"}
    for arm, mount in rig.arms.items():
        T = invert_transform(world.T_world_base(arm)) @ T_world_optical
        np.testing.assert_allclose(mount.T_base_camera, T, atol=1e-6)
        assert mount.base_frame == f"{arm}_base_link"
    # The two arms stand side by side at the front, the camera behind and above them, looking down at the table.
    left, right = world.T_world_base("left")[:3, 3], world.T_world_base("right")[:3, 3]
    assert left[1] - right[1] == pytest.approx(0.594) and left[0] == right[0] and left[2] == right[2]
    assert T_world_optical[0, 3] < left[0] and T_world_optical[2, 3] > left[2] + 0.4 and T_world_optical[2, 2] < -0.7


def test_render_follows_the_d435_intrinsics(world):
    """A point of the scene lands on the pixel CameraIntrinsics.project gives (MuJoCo's fovy and principal point)."""
    from dkt_sim.camera import SimCamera

    cam = SimCamera(world, seed=0)
    try:
        cam.snapshot()
        frame = cam.capture()
        assert frame.intrinsics == COBOT_MAGIC.intrinsics(160, 120)
        rows, cols = np.nonzero(frame.labels == 1)
        # The can's top face: the top cap's pixels' depth against the projection of its centre.
        top = world.object_pose(0) @ np.array([0.0, 0.0, world.scene.objects[0].size[2], 1.0])
        p = (invert_transform(frame.T_world_camera) @ top)[:3]
        u, v = frame.intrinsics.project(p[None])[0]
        near = (np.abs(cols - u) <= 1) & (np.abs(rows - v) <= 1)
        assert near.any()  # the cap's centre is on the can's pixels
        assert np.nanmedian(frame.depth_gt_m[rows[near], cols[near]]) == pytest.approx(p[2], abs=2e-3)
        # Ground-truth depth of the table against the ray-plane intersection (z-depth, metres).
        xs, ys = frame.intrinsics.pixel_rays()
        rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ frame.T_world_camera[:3, :3].T
        z_table = (COBOT_MAGIC.table_top_z - frame.T_world_camera[2, 3]) / rays[..., 2]
        table = frame.labels == 0
        assert table.mean() > 0.3
        assert np.median(np.abs(frame.depth_gt_m[table] - z_table[table])) < 1e-4
    finally:
        cam.close()
