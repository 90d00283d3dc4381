"""metric_depth_node: relative disparity + AprilTags -> metric depth and a point cloud.

Subscribes (best effort, small queue; relative to the namespace ``camera``):
depth/relative (32FC1), camera/color/image_raw, camera/color/camera_info, and
camera/aligned_depth_to_color/image_raw when raw-depth anchors are enabled;
frames are matched by stamp and handed to a worker thread (newest first, the
oldest waiting set dropped) so the executor never waits on the fit and the
cloud. Publishes (reliable by default, ``qos``): depth/metric (32FC1, m) with
depth/camera_info, points (PointCloud2 XYZRGB), tags/markers (MarkerArray),
/diagnostics (scale, shift, residual, inliers, valid flag, input rates and
ages; WARN when the stamps jump back, which resets the scale filter). An
invalid scale publishes nothing but diagnostics: never a cloud at a wrong scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from dkt_perception.frame_worker import FrameWorker
from dkt_perception.metric_pipeline import FrameMismatchError, MetricPipeline, MetricPipelineConfig
from dkt_perception.tag_markers import tag_markers
from dkt_perception.tags import TagConfig
from dkt_stack import conversions as cv
from dkt_stack.config import ConfigError, load_config, param
from dkt_stack.ros import topics
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import publisher_qos
from dkt_stack.stamp_sync import StampSynchronizer


@dataclass
class MetricDepthNodeParams:
    tags_config: str = param("", help="YAML TagConfig file (family, ids, sizes_m, ...); empty = the metric.tags parameters")
    base_frame: str = param("base_link", help="frame id of the cloud when cloud.output_frame is base")
    qos: Literal["reliable", "sensor_data"] = param("reliable", help="publisher QoS: reliable (serves reliable and best-effort subscribers) or sensor_data (best effort); subscriptions are always best effort")
    sync_slop_s: float = param(0.0, help="largest stamp difference between relative depth, colour and raw depth (s)")
    queue_size: int = param(1, help="matched frames waiting for the fit and cloud at most; the oldest is dropped first")
    sync_queue_size: int = param(
        30, help="colour frames kept per input while waiting for their relative depth: covers the depth backend's latency (30 = 1 s at 30 Hz)"
    )
    pipeline: MetricPipelineConfig = param(default_factory=MetricPipelineConfig, help="metric scale and point cloud settings")
    diagnostics: DiagnosticsConfig = param(default_factory=DiagnosticsConfig, help="staleness thresholds and rate window of /diagnostics")


class MetricDepthNode(Node):
    def __init__(self) -> None:
        super().__init__("metric_depth")
        self.params = p = declare_and_read(self, MetricDepthNodeParams)
        config = p.pipeline
        if p.tags_config:
            tags = load_config(TagConfig, p.tags_config)
            config = replace(config, metric=replace(config.metric, tags=tags))
        try:
            self.pipeline = MetricPipeline(config)
        except ValueError as exc:
            raise ConfigError(str(exc), source=f"node {self.get_fully_qualified_name()} parameters") from exc
        self.diagnostics = d = NodeDiagnostics(self, hardware_id="metric_depth", config=p.diagnostics)
        qos = publisher_qos(p.qos)
        self._pub_depth = d.publisher(Image, topics.METRIC_DEPTH, qos)
        self._pub_info = d.publisher(CameraInfo, topics.METRIC_INFO, qos)
        self._pub_cloud = d.publisher(PointCloud2, topics.POINTS, qos)
        self._pub_markers = d.publisher(MarkerArray, topics.TAG_MARKERS, publisher_qos(p.qos, depth=10))
        self._info: CameraInfo | None = None
        self.worker = FrameWorker(self._compute, self._publish, self._on_error, queue_size=p.queue_size)
        keys = ["relative", "rgb"] + (["raw"] if config.metric.raw.enabled else [])
        self._sync = StampSynchronizer(keys, slop_ns=int(p.sync_slop_s * 1e9), queue_size=p.sync_queue_size)
        d.subscribe(CameraInfo, topics.IN_COLOR_INFO, self._on_info)
        # the filter resets itself when stamps go back (metric_scale.ScaleFilter); the warning says so
        d.subscribe(Image, topics.RELATIVE_DEPTH, lambda m: self._add("relative", m), jump_note="scale filter reset")
        d.subscribe(Image, topics.IN_COLOR, lambda m: self._add("rgb", m))
        if "raw" in keys:
            d.subscribe(Image, topics.IN_ALIGNED_DEPTH, lambda m: self._add("raw", m))

    def _on_info(self, msg: CameraInfo) -> None:
        self._info = msg

    def _add(self, key: str, msg: Image) -> None:
        match = self._sync.add(key, cv.stamp_to_ns(msg.header.stamp), msg)
        if match is None:
            return
        if self._info is None:
            self.diagnostics.set(ERROR, "no camera_info received yet on color/camera_info: cannot scale depth")
            return
        self.worker.submit((*match, self._info))

    def _on_error(self, exc: Exception) -> None:
        self.diagnostics.set(ERROR, f"metric depth failed on a frame: {exc}")

    def _compute(self, item) -> list:
        """Worker thread: messages -> (header, intrinsics, MetricFrame); bad input is reported, not raised."""
        stamp_ns, msgs, info = item
        try:
            intrinsics = cv.camera_info_to_intrinsics(info)
            rel = msgs["relative"]
            if rel.encoding != "32FC1":
                raise cv.ConversionError(f"depth/relative must be 32FC1 relative disparity, got {rel.encoding}")
            disparity = cv.image_to_numpy(rel)
            rgb = cv.image_to_rgb8(msgs["rgb"])
            raw = msgs.get("raw")
            raw_m = cv.depth_to_metres(cv.image_to_numpy(raw), raw.encoding) if raw is not None else None
            frame = self.pipeline.process(disparity, rgb, intrinsics, stamp_ns, raw_m)
        except (cv.ConversionError, FrameMismatchError) as exc:
            self.diagnostics.set(ERROR, f"bad input: {exc}")
            return []
        return [(cv.make_header(rel.header.frame_id, stamp=rel.header.stamp), intrinsics, frame)]

    def _publish(self, output) -> None:
        header, intrinsics, frame = output
        result = frame.result
        self._pub_markers.publish(tag_markers(result.tags, header))
        w = self.worker.stats
        figures = {**frame.figures(), "frames_in": w.submitted, "frames_dropped": w.dropped, "frames_unmatched": self._sync.dropped}
        if not result.valid:
            self.diagnostics.set(WARN, f"invalid scale: {result.reason}", **figures)
            return
        self.diagnostics.set(OK, result.reason, **figures)
        self._pub_depth.publish(cv.numpy_to_image(result.depth_m, "32FC1", header))
        info = cv.intrinsics_to_camera_info(intrinsics, stamp=header.stamp)
        info.header.frame_id = header.frame_id
        self._pub_info.publish(info)
        if frame.cloud is not None:
            cloud_frame = self.params.base_frame if frame.cloud.frame == "base" else header.frame_id
            self._pub_cloud.publish(cv.points_to_cloud(frame.cloud.xyz, frame.cloud.rgb, cv.make_header(cloud_frame, stamp=header.stamp)))

    def close(self) -> None:
        self.worker.close()


def main(args: list[str] | None = None) -> int:
    return run_node(MetricDepthNode, args)
