"""metric_depth_node as a real ROS process: synthetic frames in, metric depth and clouds out."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dkt_perception.synthetic_scene import default_scene
from dkt_stack import conversions as cv
from dkt_stack.graph import ResolvedNode
from dkt_stack.ros.qos import qos_by_name
from dkt_stack.runner import NodeProcess

pytestmark = pytest.mark.ros

FRAME = "camera_color_optical_frame"


@pytest.fixture(scope="module")
def scene():
    return default_scene(seed=3)


class Feeder:
    """Publishes colour, camera_info and a relative disparity (an affine map of the true disparity)."""

    def __init__(self, ros, scene):
        self.ros, self.scene = ros, scene
        qos = qos_by_name("sensor_data")
        self.rgb = ros.publisher(Image, "/cam/camera/color/image_raw", qos)
        self.info = ros.publisher(CameraInfo, "/cam/camera/color/camera_info", qos)
        self.rel = ros.publisher(Image, "/cam/depth/relative", qos)
        self.stamp = 1_800_000_000_000_000_000
        for pub in (self.rgb, self.rel, self.info):
            ros.wait_for_subscribers(pub, timeout=30)

    def frame(self, i, *, with_info=True, rgb=None, relative=None, rel_encoding="32FC1"):
        f = self.scene.render(i)
        self.stamp += 33_000_000
        header = cv.make_header(FRAME, stamp_ns=self.stamp)
        disparity = (0.8 / f.depth_gt_m + 0.3).astype(np.float32) if relative is None else relative
        if with_info:
            self.info.publish(cv.intrinsics_to_camera_info(self.scene.intrinsics, stamp=header.stamp))
        self.rgb.publish(cv.numpy_to_image(f.rgb if rgb is None else rgb, "rgb8", header))
        if rel_encoding == "32FC1":
            self.rel.publish(cv.numpy_to_image(disparity, "32FC1", header))
        else:
            self.rel.publish(cv.numpy_to_image((disparity * 100).astype(np.uint16), rel_encoding, header))
        time.sleep(0.05)  # a camera's pace: best-effort transport drops what a burst overflows
        return self.stamp, f


def start_node(tmp_path, **params):
    node = ResolvedNode("metric_depth", "metric_depth_node", "dkt_stack", "cam", params, {})
    return NodeProcess(node, tmp_path, log_path=tmp_path / "metric.log")


def statuses(diags):
    return [s for m in diags.messages for s in m.status if "metric_depth" in s.name]


def until(condition, action, timeout=30.0):
    """Repeat ``action`` (publish a frame) until ``condition()``: best-effort topics may drop the first frames."""
    deadline = time.monotonic() + timeout
    i = 0
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met after {i} frames")
        action(i)
        i += 1


def test_metric_depth_and_cloud_with_stamps_frames_and_bad_input(ros, tmp_path, scene):
    depth = ros.collect(Image, "/cam/depth/metric", qos_by_name("sensor_data"))
    clouds = ros.collect(PointCloud2, "/cam/points", qos_by_name("sensor_data"))
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    proc = start_node(tmp_path, pipeline={"filter": {"tag_timeout_s": 0.5}})

    def reported(*texts, level=None):
        return lambda: all(any(t in s.message and (level is None or s.level == level) for s in statuses(diags)) for t in texts)

    try:
        feed = Feeder(ros, scene)
        # 1. frames before any camera_info, then an uncalibrated camera_info: errors, no output
        until(reported("no camera_info received yet"), lambda i: feed.frame(i, with_info=False))
        until(reported("camera_info has no camera matrix K"), lambda i: (feed.info.publish(CameraInfo()), feed.frame(i, with_info=False)))
        assert proc.alive() and not depth.messages
        # 2. good frames: metric depth equals the ground truth, stamps and frames kept
        sent = {}

        def good(i):
            stamp, f = feed.frame(i)
            sent[stamp] = f

        until(lambda: len(depth.messages) >= 3 and len(clouds.messages) >= 3, good)
        msg = depth.messages[-1]
        assert msg.encoding == "32FC1" and msg.header.frame_id == FRAME
        f = sent[cv.stamp_to_ns(msg.header.stamp)]
        z = cv.image_to_numpy(msg)
        gt = f.depth_gt_m
        ok = np.isfinite(z) & np.isfinite(gt) & (gt > 0.4) & (gt < 1.0)
        assert ok.mean() > 0.5
        assert np.median(np.abs(z[ok] - gt[ok])) < 0.002
        cloud = clouds.messages[-1]
        assert cloud.header.frame_id == FRAME and cv.stamp_to_ns(cloud.header.stamp) in sent
        xyz, rgb = cv.cloud_to_points(cloud)
        assert len(xyz) > 1000 and rgb is not None and np.nanmax(xyz[:, 2]) <= 2.0
        # 3. bad input: wrong encoding, wrong size, all-NaN disparity -> errors, node keeps running
        until(reported("depth/relative must be 32FC1"), lambda i: feed.frame(i, rel_encoding="16UC1"))
        until(reported("do not match camera_info"), lambda i: feed.frame(i, relative=np.zeros((10, 10), np.float32)))
        nan_rel = np.full((scene.config.height, scene.config.width), np.nan, np.float32)
        for i in range(3):
            feed.frame(i, relative=nan_rel)
        # 4. good frames again: it recovers
        n_depth = len(depth.messages)
        until(lambda: len(depth.messages) >= n_depth + 3, good)
        assert proc.alive()
        # 5. no tag in view (tags painted over): invalid after the timeout, never a cloud
        grey = np.full_like(scene.render(0).rgb, 128)
        until(reported("invalid scale", level=DiagnosticStatus.WARN), lambda i: feed.frame(i, rgb=grey))
        last_valid = max(cv.stamp_to_ns(c.header.stamp) for c in clouds.messages)
        n_clouds = len(clouds.messages)
        for i in range(10):
            feed.frame(i, rgb=grey)
        time.sleep(0.5)
        assert all(cv.stamp_to_ns(c.header.stamp) <= last_valid for c in clouds.messages[n_clouds:]), "a cloud without a valid scale"
        invalid = [s for s in statuses(diags) if s.level == DiagnosticStatus.WARN]
        assert any(kv.key == "valid" and kv.value == "False" for s in invalid for kv in s.values)
        # 6. stamps going back (a bag looped): WARN saying so and that the scale filter was reset
        feed.stamp -= 20 * 10**9
        until(reported("time jumped back", "scale filter reset", level=DiagnosticStatus.WARN), good)
        jump = next(s for s in statuses(diags) if "time jumped back" in s.message)
        assert "on /cam/depth/relative (bag loop or clock reset): scale filter reset" in jump.message
        figures = {kv.key: kv.value for kv in jump.values}
        assert int(figures["in /cam/depth/relative received"]) > 0 and "in /cam/camera/color/image_raw rate_hz" in figures
    finally:
        assert proc.stop() == 0, proc.output()
