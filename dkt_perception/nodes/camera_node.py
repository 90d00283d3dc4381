"""camera_node: D435 / .bag / synthetic frames on realsense2_camera's topics.

Publishes on its private names, like realsense-ros 4.x (node ``camera`` in
namespace ``camera`` gives ``/camera/camera/...``; see dkt_stack/ros/topics.py):
  ~/color/image_raw (rgb8), ~/color/camera_info (plumb_bob, 5 coefficients),
  ~/aligned_depth_to_color/image_raw (16UC1, mm), ~/aligned_depth_to_color/camera_info,
  ~/ground_truth/depth (32FC1, m; synthetic source only), /diagnostics.
Publishers are reliable by default (``qos``), as realsense-ros's: they serve
reliable and best-effort subscribers. A lost camera is reopened with
exponential back-off; the node keeps running.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from dkt_perception.camera.frames import CameraError, EndOfStream
from dkt_perception.camera.realsense import RealSenseConfig
from dkt_perception.camera.sources import SourceName, SyntheticSourceConfig, open_source
from dkt_stack import conversions as cv
from dkt_stack.config import param
from dkt_stack.ros import topics
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import publisher_qos


@dataclass
class CameraNodeParams:
    source: SourceName = param("realsense", help="realsense (live D435), bag (RealSense .bag) or synthetic (tabletop scene with ground truth)")
    frame_id: str = param("camera_color_optical_frame", help="optical frame id of every published image")
    qos: Literal["reliable", "sensor_data"] = param("reliable", help="publisher QoS: reliable (serves reliable and best-effort subscribers) or sensor_data (best effort)")
    publish_ground_truth: bool = param(True, help="synthetic source: also publish ground_truth/depth (32FC1, m) while someone subscribes")
    reconnect_min_s: float = param(0.5, help="first retry delay after losing the camera (s); doubles up to reconnect_max_s")
    reconnect_max_s: float = param(10.0, help="longest retry delay (s)")
    realsense: RealSenseConfig = param(default_factory=RealSenseConfig, help="live camera and .bag settings")
    synthetic: SyntheticSourceConfig = param(default_factory=SyntheticSourceConfig, help="synthetic scene settings")
    diagnostics: DiagnosticsConfig = param(default_factory=DiagnosticsConfig, help="staleness thresholds and rate window of /diagnostics")


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        self.params = declare_and_read(self, CameraNodeParams)
        p = self.params
        qos = publisher_qos(p.qos)
        self.diagnostics = d = NodeDiagnostics(self, hardware_id=f"camera:{p.source}", config=p.diagnostics)
        self._pub_color = d.publisher(Image, topics.COLOR, qos, stale=True)  # a camera that stops publishing is the fault to report
        self._pub_color_info = d.publisher(CameraInfo, topics.COLOR_INFO, qos)
        self._pub_depth = d.publisher(Image, topics.ALIGNED_DEPTH, qos)
        self._pub_depth_info = d.publisher(CameraInfo, topics.ALIGNED_DEPTH_INFO, qos)
        with_gt = p.source == "synthetic" and p.publish_ground_truth
        self._pub_gt = d.publisher(Image, topics.GROUND_TRUTH_DEPTH, qos) if with_gt else None
        self._source = open_source(p.source, p.realsense, p.synthetic, p.frame_id)
        self._period = 1.0 / (p.synthetic.fps if p.source == "synthetic" else p.realsense.fps)
        self._stop = threading.Event()
        self._published = 0
        self._thread = threading.Thread(target=self._capture_loop, name="camera-capture", daemon=True)
        self._thread.start()

    def _capture_loop(self) -> None:
        backoff = self.params.reconnect_min_s
        next_due = time.monotonic()
        opened = False
        while not self._stop.is_set():
            try:
                if not opened:
                    self._source.open()
                    opened = True
                    self.get_logger().info(f"streaming from {self._source.description}")
                    self.diagnostics.set(OK, f"streaming from {self._source.description}")
                    backoff = self.params.reconnect_min_s
                frame = self._source.read()
                self._publish(frame)
            except EndOfStream as exc:
                self.diagnostics.set(WARN, str(exc))
                self.get_logger().info(f"{exc}; no more frames")
                return
            except (CameraError, RuntimeError, ValueError) as exc:
                self.diagnostics.set(ERROR, f"camera: {exc}; retrying in {backoff:.1f} s")
                self._source.close()
                opened = False
                self._stop.wait(backoff)
                backoff = min(2.0 * backoff, self.params.reconnect_max_s)
                continue
            if self.params.source == "synthetic":  # a device paces itself; the scene needs a clock
                next_due += self._period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_due = time.monotonic()

    def _publish(self, frame) -> None:
        stamp = self.get_clock().now().to_msg()
        header = cv.make_header(self.params.frame_id, stamp=stamp)
        info = cv.intrinsics_to_camera_info(frame.intrinsics, stamp=stamp)
        info.header.frame_id = self.params.frame_id
        self._pub_color.publish(cv.numpy_to_image(frame.rgb, "rgb8", header))
        self._pub_color_info.publish(info)
        if frame.depth_mm is not None:
            self._pub_depth.publish(cv.numpy_to_image(frame.depth_mm, "16UC1", header))
            self._pub_depth_info.publish(info)
        if self._pub_gt is not None and frame.depth_gt_m is not None and self._pub_gt.get_subscription_count() > 0:
            self._pub_gt.publish(cv.numpy_to_image(frame.depth_gt_m, "32FC1", header))
        self._published += 1
        self.diagnostics.update(frames_published=self._published, width=frame.intrinsics.width, height=frame.intrinsics.height)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._source.close()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)
