"""Pure parts of the AnyGrasp adapter: GraspGroup row parsing, None results, config, missing SDK."""

import importlib.util

import numpy as np
import pytest

from dkt_grasping.grasp_detection import create_grasp_detector
from dkt_grasping.grasp_detection.anygrasp import (
    AnyGraspConfig,
    AnyGraspUnavailable,
    build_sdk_config,
    grasp_array_from_result,
    grasps_from_array,
)
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.config import ConfigError, from_dict
from dkt_stack.transforms import xyz_rpy_to_transform


def _row(score, width, depth, R, t, obj=3):
    return np.concatenate([[score, width, 0.02, depth], np.asarray(R).reshape(9), t, [obj]])


def test_rows_become_base_frame_piper_grasps():
    T_base_cam = xyz_rpy_to_transform((0.1, 0.0, 0.5), (np.pi, 0.0, 0.0))  # camera looking down
    # Camera-frame GraspNet grasp approaching along camera +z (= base -z), closing along camera x.
    R = np.column_stack([[0, 0, 1], [1, 0, 0], np.cross([0, 0, 1], [1, 0, 0])])
    array = np.stack([_row(0.4, 0.05, 0.01, R, [0.0, 0.0, 0.45]), _row(0.8, 0.03, 0.02, R, [0.05, 0.02, 0.4], obj=7)])
    grasps = grasps_from_array(grasp_array_from_result((array, None)), T_base_cam)  # as `gg, cloud = get_grasp(...)`
    assert [g.score for g in grasps] == [0.4, 0.8]
    g = grasps[1]
    assert (g.width, g.depth, g.object_id) == (0.03, 0.02, 7)
    np.testing.assert_allclose(g.position, [0.15, -0.02, 0.1], atol=1e-12)
    np.testing.assert_allclose(g.approach, [0, 0, -1], atol=1e-12)  # camera +z is base -z
    np.testing.assert_allclose(g.closing, [1, 0, 0], atol=1e-12)


def test_empty_and_none_results():
    for result in (None, (None, None), np.zeros((0, 17)), ()):
        assert grasp_array_from_result(result).shape == (0, 17)
    with pytest.raises(ValueError, match="Kx17"):
        grasp_array_from_result(np.zeros((2, 5)))


def test_sdk_config_and_validation():
    cfg = from_dict(AnyGraspConfig, {"checkpoint_path": "/ckpt/a.tar", "max_gripper_width": 0.07, "top_down_grasp": True})
    ns = build_sdk_config(cfg)
    assert (ns.checkpoint_path, ns.max_gripper_width, ns.gripper_height, ns.top_down_grasp, ns.debug) == (
        "/ckpt/a.tar",
        0.07,
        0.03,
        True,
        False,
    )
    with pytest.raises(ConfigError, match="max_gripper_width"):
        from_dict(AnyGraspConfig, {"max_gripper_width": 0.15})


def test_workspace_limits_in_camera_frame_contain_the_box():
    ws = WorkspaceLimits(0.2, 0.4, -0.1, 0.1, 0.0, 0.2)
    T = xyz_rpy_to_transform((0.3, 0.0, 0.6), (np.pi, 0.0, 0.0))
    lims = ws.camera_frame_limits(T)
    np.testing.assert_allclose(lims, [-0.1, 0.1, -0.1, 0.1, 0.4, 0.6], atol=1e-12)


@pytest.mark.skipif(importlib.util.find_spec("gsnet") is not None, reason="AnyGrasp SDK installed")
def test_missing_sdk_names_the_package():
    with pytest.raises(AnyGraspUnavailable, match="gsnet"):
        create_grasp_detector("anygrasp", {"checkpoint_path": "x"})


def test_unknown_detector():
    with pytest.raises(ValueError, match="antipodal"):
        create_grasp_detector("graspnet")
