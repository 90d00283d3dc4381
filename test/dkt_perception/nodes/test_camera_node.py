"""camera_node as a real ROS process: synthetic frames on realsense2_camera's topics."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from dkt_stack import conversions as cv
from dkt_stack.graph import ResolvedNode
from dkt_stack.runner import NodeProcess

pytestmark = pytest.mark.ros


def camera(tmp_path, **params) -> NodeProcess:
    node = ResolvedNode("camera", "camera_node", "dkt_stack", "cam", {"source": "synthetic", **params}, {})
    return NodeProcess(node, tmp_path, log_path=tmp_path / "camera.log")


def test_synthetic_frames_on_realsense_topics(ros, tmp_path):
    """realsense-ros 4.x names under the node (``/<ns>/camera/...``); reliable publishers serve default-QoS subscribers."""
    qos = 10  # rclpy's default profile (reliable), as rviz2 and image_view subscribe
    color = ros.collect(Image, "/cam/camera/color/image_raw", qos)
    depth = ros.collect(Image, "/cam/camera/aligned_depth_to_color/image_raw", qos)
    info = ros.collect(CameraInfo, "/cam/camera/color/camera_info", qos)
    gt = ros.collect(Image, "/cam/camera/ground_truth/depth", qos)
    proc = camera(tmp_path, synthetic={"width": 160, "height": 120, "fps": 20.0})
    try:
        color.wait(25, timeout=30)
        depth.wait(5, timeout=10)
        info.wait(5, timeout=10)
        gt.wait(5, timeout=10)
    finally:
        assert proc.stop() == 0, proc.output()
    c, d, i, g = color.messages[-1], depth.messages[-1], info.messages[-1], gt.messages[-1]
    assert (c.encoding, d.encoding, g.encoding) == ("rgb8", "16UC1", "32FC1")
    assert {m.header.frame_id for m in (c, d, i, g)} == {"camera_color_optical_frame"}
    # one capture: colour, depth and info carry the same stamp
    def stamps(c):
        return {cv.stamp_to_ns(m.header.stamp) for m in c.messages}

    assert len(stamps(color) & stamps(depth) & stamps(info) & stamps(gt)) >= 3
    assert (i.distortion_model, list(i.d)) == ("plumb_bob", [0.0] * 5)  # as realsense2_camera: 5 coefficients (an ideal pinhole here)
    intr = cv.camera_info_to_intrinsics(i)
    assert (intr.width, intr.height) == (160, 120) == (c.width, c.height)
    raw_m = cv.depth_to_metres(cv.image_to_numpy(d), "16UC1")
    gt_m = cv.image_to_numpy(g)
    good = np.isfinite(raw_m) & np.isfinite(gt_m)
    assert good.mean() > 0.5
    # the simulated sensor is right on most diffuse pixels and wrong on some (transparent/reflective)
    err = np.abs(raw_m[good] - gt_m[good])
    assert np.median(err) < 0.005 and err.max() > 0.02
    # frames keep coming at roughly the configured rate (skip the first ones: discovery delivers them in a burst)
    t = color.receive_times[5:]
    assert 10 < (len(t) - 1) / (t[-1] - t[0]) < 30


def test_bad_parameter_fails_at_start_with_a_clear_message(tmp_path):
    proc = camera(tmp_path, qos="fast", source="webcam")
    code = proc.proc.wait(30)
    assert code == 2
    assert "parameters: key 'source': expected one of 'realsense', 'bag', 'synthetic', got 'webcam'" in proc.output()


def test_missing_bag_is_reported_and_retried(ros, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    diags = ros.collect(DiagnosticArray, "/diagnostics")
    proc = camera(tmp_path, source="bag", realsense={"bag_path": str(tmp_path / "missing.bag")}, reconnect_min_s=0.1)
    try:
        diags.wait(predicate=lambda ms: any(s.level == DiagnosticStatus.ERROR and "retrying" in s.message for m in ms for s in m.status), timeout=30)
        assert proc.alive()
    finally:
        proc.stop()
