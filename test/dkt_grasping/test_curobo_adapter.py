"""Pure parts of the cuRobo adapter: wxyz pose conversion, robot and scene dicts, missing package."""

import importlib.util

import numpy as np
import pytest

from dkt_grasping.kinematics import PiperKinematics
from dkt_grasping.planning import create_planner
from dkt_grasping.planning.curobo import (
    CuroboConfig,
    CuroboUnavailable,
    pose_from_curobo,
    pose_to_curobo,
    robot_config_dict,
    scene_config_dict,
)
from dkt_stack.transforms import xyz_rpy_to_transform


def test_pose_is_scalar_first():
    T = xyz_rpy_to_transform((0.1, 0.2, 0.3), (0.0, 0.0, np.pi / 2))  # 90 deg about z
    v = pose_to_curobo(T)
    np.testing.assert_allclose(v, [0.1, 0.2, 0.3, np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)], atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        T = xyz_rpy_to_transform(rng.normal(size=3), rng.uniform(-3, 3, 3))
        np.testing.assert_allclose(pose_from_curobo(pose_to_curobo(T)), T, atol=1e-12)


def test_robot_spheres_follow_the_arm():
    cfg = CuroboConfig(spheres_per_link=3)
    robot = robot_config_dict(cfg)["robot_cfg"]["kinematics"]
    assert robot["ee_link"] == "tcp" and robot["base_link"] == "base_link"
    assert robot["cspace"]["joint_names"] == [f"joint{i}" for i in range(1, 7)]
    kin = PiperKinematics(cfg.arm.tcp_offset, dh_is_offset=cfg.arm.dh_is_offset)
    q = np.array([0.3, 1.0, -1.1, 0.4, 0.5, -0.2])
    # Each link's last sphere sits at the next link's origin: check in the base frame with Pinocchio FK.
    nxt = {"link1": "link1", "link2": "link3", "link3": "link4", "link5": "link6"}
    for link, child in nxt.items():
        T_link = kin.fk(q, link)
        end = T_link[:3, :3] @ robot["collision_spheres"][link][-1]["center"] + T_link[:3, 3]
        np.testing.assert_allclose(end, kin.fk(q, child)[:3, 3], atol=1e-5)
    assert len(robot["collision_spheres"]["link6"]) == 3


def test_scene_cuboids_cover_occupied_voxels():
    pts = np.array([[0.301, 0.001, 0.001], [0.305, 0.009, 0.009], [0.35, 0.0, 0.0]])
    scene = scene_config_dict(pts, 0.02)["cuboid"]
    assert len(scene) == 2
    centres = sorted(tuple(v["pose"][:3]) for v in scene.values())
    np.testing.assert_allclose(centres, [(0.31, 0.01, 0.01), (0.35, 0.01, 0.01)], atol=1e-9)
    assert all(v["pose"][3:] == [1.0, 0.0, 0.0, 0.0] and v["dims"] == [0.02] * 3 for v in scene.values())
    assert scene_config_dict(None, 0.02) == {"cuboid": {}}


@pytest.mark.skipif(importlib.util.find_spec("curobo") is not None, reason="cuRobo installed")
@pytest.mark.parametrize("api", ["v2", "v1"])
def test_missing_curobo_is_a_clear_error(api):
    with pytest.raises(CuroboUnavailable, match="cuRobo .* not installed"):
        create_planner("curobo", {"api": api})
