"""depth_node as a real ROS process: relative disparity out, bad input reported, recovery."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image

from dkt_stack import conversions as cv
from dkt_stack.graph import ResolvedNode
from dkt_stack.ros.qos import qos_by_name
from dkt_stack.runner import NodeProcess

pytestmark = pytest.mark.ros
H, W = 48, 64


def test_depth_node_raw_backend_bad_input_and_recovery(ros, tmp_path):
    qos = qos_by_name("sensor_data")
    rel = ros.collect(Image, "/cam/depth/relative", qos)
    preview = ros.collect(Image, "/cam/depth/relative_preview", qos)
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    color_pub = ros.publisher(Image, "/cam/camera/color/image_raw", qos)
    depth_pub = ros.publisher(Image, "/cam/camera/aligned_depth_to_color/image_raw", qos)
    node = ResolvedNode("depth", "depth_node", "dkt_stack", "cam", {"engine": {"backend": "raw"}}, {})
    proc = NodeProcess(node, tmp_path, log_path=tmp_path / "depth.log")
    stamp = [2_000_000_000_000_000_000]

    def send(color_encoding="rgb8", depth_shape=(H, W)):
        stamp[0] += 33_000_000
        header = cv.make_header("optical", stamp_ns=stamp[0])
        colour = np.zeros((H, W, 3), np.uint8) if color_encoding == "rgb8" else np.zeros((H, W), np.uint16)
        mm = np.full(depth_shape, 800, np.uint16)
        mm[0, 0] = 0
        color_pub.publish(cv.numpy_to_image(colour, color_encoding, header))
        depth_pub.publish(cv.numpy_to_image(mm, "16UC1", header))
        time.sleep(0.03)

    def errors():
        return [s.message for m in diags.messages for s in m.status if s.level == DiagnosticStatus.ERROR and "depth" in s.name]

    def until(cond, action, timeout=30):
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, (errors(), proc.output())
            action()

    try:
        ros.wait_for_subscribers(color_pub, timeout=30)
        ros.wait_for_subscribers(depth_pub, timeout=30)
        until(lambda: len(rel.messages) >= 3 and preview.messages, send)
        msg = rel.messages[-1]
        assert (msg.encoding, msg.header.frame_id, msg.height, msg.width) == ("32FC1", "optical", H, W)
        d = cv.image_to_numpy(msg)
        assert np.isnan(d[0, 0]) and np.allclose(d[np.isfinite(d)], 1 / 0.8)
        assert preview.messages[-1].encoding == "rgb8"
        until(lambda: any("color/image_raw: cannot convert a 16UC1" in e for e in errors()), lambda: send(color_encoding="16UC1"))
        until(lambda: any("depth backend failed on a frame: expected raw depth of shape" in e for e in errors()), lambda: send(depth_shape=(H, W + 2)))
        n = len(rel.messages)
        until(lambda: len(rel.messages) >= n + 3, send)
        assert proc.alive()
        statuses = [s for m in diags.messages for s in m.status if "depth" in s.name]
        figures = {kv.key: kv.value for kv in statuses[-1].values}
        assert {"rate_hz", "frames_dropped", "frames_in", "errors"} <= figures.keys() and int(figures["errors"]) >= 1
        assert statuses[-1].hardware_id == "depth:raw"
    finally:
        assert proc.stop() == 0, proc.output()
