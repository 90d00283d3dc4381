"""The rig's static TF tree: exact transforms from the one rig file, a valid tree, and the graph's static_tf node."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_stack.config import ConfigError
from dkt_stack.graph import resolve_graph
from dkt_stack.rig import load_rig, pose7_to_matrix
from dkt_stack.static_transforms import R_LINK_OPTICAL, StaticTransform, check_tree, rig_static_transforms
from dkt_stack.transforms import make_transform


def test_camera_link_to_optical_is_realsense_rotation():
    (t,) = rig_static_transforms(None)
    assert (t.parent, t.child) == ("camera_link", "camera_color_optical_frame")
    # optical z (forward) is link x, optical x (right) is link -y, optical y (down) is link -z; no translation
    np.testing.assert_array_equal(t.T[:3, :3] @ [0, 0, 1], [1, 0, 0])
    np.testing.assert_array_equal(t.T[:3, :3] @ [1, 0, 0], [0, -1, 0])
    np.testing.assert_array_equal(t.T[:3, :3] @ [0, 1, 0], [0, 0, -1])
    assert t.pose7 == [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]  # realsense2_camera's quaternion for this rotation
    assert rig_static_transforms(None, camera_link=False) == []


def test_optical_to_each_arm_base_inverts_the_rig_camera_pose():
    rig = load_rig("cobot_magic")
    transforms = rig_static_transforms(rig)
    assert [(t.parent, t.child) for t in transforms] == [
        ("camera_link", "camera_color_optical_frame"),
        ("camera_color_optical_frame", "left_base_link"),
        ("camera_color_optical_frame", "right_base_link"),
    ]
    for t, arm in zip(transforms[1:], rig.arms.values(), strict=True):
        # T_camera_base @ T_base_camera = I: a point in the camera frame comes back unchanged
        np.testing.assert_allclose(t.T @ pose7_to_matrix(arm.camera_pose), np.eye(4), atol=1e-12)
    # the shipped pose: camera 0.55 m above the left base looking down -> the base is 0.55 m along the optical z
    np.testing.assert_allclose(transforms[1].T[:3, 3], [-0.30, -0.10, 0.55], atol=1e-12)


def test_frames_must_form_a_tree():
    T = make_transform(R_LINK_OPTICAL)
    with pytest.raises(ValueError, match="frame b has two parents \\(a and c\\)"):
        check_tree([StaticTransform("a", "b", T), StaticTransform("c", "b", T)])
    with pytest.raises(ValueError, match="cycle"):
        check_tree([StaticTransform("a", "b", T), StaticTransform("b", "a", T)])
    with pytest.raises(ValueError, match="to itself"):
        check_tree([StaticTransform("a", "a", T)])


def test_graphs_start_a_static_tf_node_from_their_rig_argument():
    rig_graph = resolve_graph("cobot_magic", {"arms": "false"})
    node = rig_graph.node("static_tf")
    assert (node.executable, node.namespace, node.respawn) == ("static_tf_node", "", True)
    assert node.parameters["rig"].endswith("config/rig/cobot_magic.yaml") and node.parameters["camera_link"] is True
    assert [t.child for t in rig_graph.static_transforms] == ["camera_color_optical_frame", "left_base_link", "right_base_link"]
    # an external driver (camera:=false) publishes camera_link itself; without a rig nothing is left: no node
    external = resolve_graph("cobot_magic", {"arms": "false", "camera": "false"})
    assert [(t.parent, t.child) for t in external.static_transforms] == [
        ("camera_color_optical_frame", "left_base_link"), ("camera_color_optical_frame", "right_base_link"),
    ]  # fmt: skip
    assert external.node("static_tf").parameters["camera_link"] is False
    assert "static_tf" not in [n.name for n in resolve_graph("perception", {"camera": "false"}).nodes]
    assert "static_tf" not in [n.name for n in resolve_graph("perception", {"tf": "false"}).nodes]
    with pytest.raises(ConfigError, match="static_transforms.rig 'no_such_rig': no shipped rig 'no_such_rig'"):
        resolve_graph("perception", {"rig": "no_such_rig"})
