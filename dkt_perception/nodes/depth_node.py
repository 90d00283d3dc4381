"""depth_node: colour frames in, relative disparity out, the model on a worker thread.

Subscribes (best effort, small queue: any publisher matches; relative to the
node's namespace ``camera``, i.e. realsense-ros 4.x's ``/camera/camera/...``):
camera/color/image_raw (rgb8/bgr8/mono8...), and
camera/aligned_depth_to_color/image_raw (16UC1/32FC1) when the backend uses
the sensor's depth (``raw``).
Publishes (reliable by default, ``qos``): depth/relative (32FC1 relative
disparity, the source's stamp and frame), depth/relative_preview (rgb8),
/diagnostics (input rates and ages, frames lost in transport, dropped in the
worker queue and unmatched, latency, backend, device; WARN/ERROR when the
input goes silent).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from dkt_perception.depth import DepthConfig, create_backend
from dkt_perception.depth.interface import DepthFrame, DepthResult
from dkt_perception.frame_worker import FrameWorker
from dkt_perception.visualization import colorize
from dkt_stack import conversions as cv
from dkt_stack.config import param
from dkt_stack.ros import topics
from dkt_stack.ros.diagnostics import ERROR, OK, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import publisher_qos
from dkt_stack.stamp_sync import StampSynchronizer

BACKENDS_USING_SENSOR_DEPTH = ("raw",)


@dataclass
class DepthNodeParams:
    queue_size: int = param(2, help="frames waiting for the model at most; the oldest is dropped first")
    qos: Literal["reliable", "sensor_data"] = param("reliable", help="publisher QoS: reliable (serves reliable and best-effort subscribers) or sensor_data (best effort); subscriptions are always best effort")
    publish_preview: bool = param(True, help="publish depth/relative_preview, a colourised rgb8 image for rviz, while someone subscribes")
    sync_slop_s: float = param(0.005, help="raw backend: largest stamp difference between colour and depth (s)")
    engine: DepthConfig = param(default_factory=DepthConfig, help="depth engine: backend, weights, device, steps, window")
    diagnostics: DiagnosticsConfig = param(default_factory=DiagnosticsConfig, help="staleness thresholds and rate window of /diagnostics")


class DepthNode(Node):
    def __init__(self) -> None:
        super().__init__("depth")
        self.params = p = declare_and_read(self, DepthNodeParams)
        self.backend = create_backend(p.engine.backend, p.engine)
        self.diagnostics = d = NodeDiagnostics(self, hardware_id=f"depth:{p.engine.backend}", config=p.diagnostics)
        d.set(OK, "waiting for frames", backend=self.backend.name, device=self.backend.device)
        qos = publisher_qos(p.qos)
        self._pub = d.publisher(Image, topics.RELATIVE_DEPTH, qos)
        self._pub_preview = d.publisher(Image, topics.RELATIVE_PREVIEW, qos) if p.publish_preview else None
        self._frame_id = ""
        self._arrival: dict[int, float] = {}
        self._latency_ms: deque[float] = deque(maxlen=100)
        self._out_times: deque[float] = deque(maxlen=100)
        self.worker = FrameWorker(self.backend.stream, self._on_result, self._on_error, self.backend.reset, p.queue_size)
        self._sync = None
        if p.engine.backend in BACKENDS_USING_SENSOR_DEPTH:
            self._sync = StampSynchronizer(["rgb", "depth"], slop_ns=int(p.sync_slop_s * 1e9))
            d.subscribe(Image, topics.IN_ALIGNED_DEPTH, self._on_depth)
        d.subscribe(Image, topics.IN_COLOR, self._on_color)

    def _on_color(self, msg: Image) -> None:
        try:
            rgb = cv.image_to_rgb8(msg)
        except cv.ConversionError as exc:
            self.diagnostics.set(ERROR, f"color/image_raw: {exc}")
            return
        self._frame_id = msg.header.frame_id
        stamp = cv.stamp_to_ns(msg.header.stamp)
        if self._sync is None:
            self._submit(DepthFrame(rgb=rgb, stamp_ns=stamp))
        else:
            self._matched(self._sync.add("rgb", stamp, rgb))

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = cv.depth_to_metres(cv.image_to_numpy(msg), msg.encoding)
        except cv.ConversionError as exc:
            self.diagnostics.set(ERROR, f"aligned_depth_to_color/image_raw: {exc}")
            return
        self._matched(self._sync.add("depth", cv.stamp_to_ns(msg.header.stamp), depth))

    def _matched(self, match) -> None:
        if match is not None:
            stamp, items = match
            self._submit(DepthFrame(rgb=items["rgb"], stamp_ns=stamp, raw_depth_m=items["depth"]))

    def _submit(self, frame: DepthFrame) -> None:
        self._arrival[frame.stamp_ns] = time.monotonic()
        if len(self._arrival) > 256:  # frames the backend dropped never come back
            for key in sorted(self._arrival)[:128]:
                del self._arrival[key]
        self.worker.submit(frame)

    def _on_result(self, result: DepthResult) -> None:
        header = cv.make_header(self._frame_id, stamp_ns=result.stamp_ns)
        disparity = np.ascontiguousarray(result.disparity, dtype=np.float32)
        self._pub.publish(cv.numpy_to_image(disparity, "32FC1", header))
        if self._pub_preview is not None and self._pub_preview.get_subscription_count() > 0:  # colourising costs ~3 ms
            self._pub_preview.publish(cv.numpy_to_image(colorize(disparity), "rgb8", header))
        now = time.monotonic()
        arrived = self._arrival.pop(result.stamp_ns, None)
        if arrived is not None:
            self._latency_ms.append((now - arrived) * 1000.0)
        self._out_times.append(now)
        s = self.worker.stats
        rate = (len(self._out_times) - 1) / (self._out_times[-1] - self._out_times[0]) if len(self._out_times) > 1 else 0.0
        level_message = (OK, "publishing") if self.diagnostics.level != ERROR or s.errors == 0 else (OK, "recovered: publishing")
        self.diagnostics.set(*level_message)
        self.diagnostics.update(
            rate_hz=rate,
            latency_ms_p50=float(np.percentile(self._latency_ms, 50)) if self._latency_ms else 0.0,
            latency_ms_p95=float(np.percentile(self._latency_ms, 95)) if self._latency_ms else 0.0,
            frames_in=s.submitted,
            frames_dropped=s.dropped,
            frames_unmatched=self._sync.dropped if self._sync is not None else 0,
            frames_out=s.results,
            errors=s.errors,
            **{f"ms_{k}": v for k, v in result.timings_ms.items()},
        )

    def _on_error(self, exc: Exception) -> None:
        self.diagnostics.set(ERROR, f"depth backend failed on a frame: {exc}", errors=self.worker.stats.errors)

    def close(self) -> None:
        self.worker.close()


def main(args: list[str] | None = None) -> int:
    return run_node(DepthNode, args)
