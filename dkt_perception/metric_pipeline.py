"""Relative disparity -> metric depth -> point cloud: the one step the metric node and the replay share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dkt_perception.metric_scale import MetricDepthEstimator, MetricResult, MetricScaleConfig
from dkt_perception.pointcloud import CloudBuilder, CloudConfig, PointCloud
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics


class FrameMismatchError(ValueError):
    """Images of one frame that do not fit together (sizes, camera_info)."""


@dataclass
class MetricPipelineConfig:
    metric: MetricScaleConfig = param(default_factory=MetricScaleConfig, help="tags, scale/shift fit, raw anchors, temporal filter")
    cloud: CloudConfig = param(default_factory=CloudConfig, help="point cloud: crop, voxel size, outliers, normals")


@dataclass
class MetricFrame:
    """One frame's outputs: the metric result and, when the scale is valid, the cloud."""

    result: MetricResult
    cloud: PointCloud | None
    timings_ms: dict[str, float] = field(default_factory=dict)  #: "metric" (tags + fit + depth) and "cloud", ms

    def figures(self) -> dict[str, float | int | bool | str]:
        """The per-frame figures the node and the replay publish on /diagnostics (NaN when there is no fit)."""
        result, fit = self.result, self.result.fit
        return {
            "valid": result.valid,
            "scale": result.scale if result.scale is not None else float("nan"),
            "shift": result.shift if result.shift is not None else float("nan"),
            "tags_seen": len(result.tags),
            "fit_mode": fit.mode if fit else "none",
            "residual_median_mm": fit.residual_median_mm if fit else float("nan"),
            "inlier_ratio": fit.inlier_ratio if fit else float("nan"),
            "cloud_points": len(self.cloud) if self.cloud is not None else 0,
        }


class MetricPipeline:
    """Tags + scale fit + temporal filter (:meth:`scale`), then the point cloud (:meth:`add_cloud`); :meth:`process` does both."""

    def __init__(self, config: MetricPipelineConfig | None = None):
        self.config = config or MetricPipelineConfig()
        self.estimator = MetricDepthEstimator(self.config.metric)
        self.clouds = CloudBuilder(self.config.cloud)

    def reset(self) -> None:
        self.estimator.reset()

    def state(self) -> dict:
        """The temporal state (the scale filter's), JSON-safe; :meth:`restore` continues from it exactly."""
        return self.estimator.filter.state()

    def restore(self, state: dict) -> None:
        self.estimator.filter.restore(state)

    def process(
        self,
        disparity: np.ndarray,
        rgb: np.ndarray,
        intrinsics: CameraIntrinsics,
        stamp_ns: int,
        raw_depth_m: np.ndarray | None = None,
    ) -> MetricFrame:
        """One frame; an invalid scale gives ``cloud=None`` (never a cloud at a wrong scale).

        Args:
            disparity: (H, W) float32 relative disparity of the depth backend.
            rgb: (H, W, 3) uint8 colour the tags are detected in.
            intrinsics: of ``rgb`` (the disparity and raw depth are aligned to it).
            stamp_ns: frame stamp in ns (drives the temporal filter and its timeout).
            raw_depth_m: optional (H, W) float32 sensor depth in metres.
        """
        return self.add_cloud(self.scale(disparity, rgb, intrinsics, stamp_ns, raw_depth_m), rgb, intrinsics)

    def scale(
        self,
        disparity: np.ndarray,
        rgb: np.ndarray,
        intrinsics: CameraIntrinsics,
        stamp_ns: int,
        raw_depth_m: np.ndarray | None = None,
    ) -> MetricFrame:
        """The first half of :meth:`process` (tags, fit, filter, metric depth); ``cloud`` stays None.

        Frames must come in order (the temporal filter); :meth:`add_cloud` may then
        run on another thread, as the replay does.
        """
        size = (intrinsics.height, intrinsics.width)
        if disparity.shape != size or rgb.shape[:2] != size:
            raise FrameMismatchError(
                f"image sizes do not match camera_info ({intrinsics.width}x{intrinsics.height}): "
                f"disparity {disparity.shape[1]}x{disparity.shape[0]}, colour {rgb.shape[1]}x{rgb.shape[0]}"
            )
        if raw_depth_m is not None and raw_depth_m.shape != size:
            raise FrameMismatchError(f"raw depth {raw_depth_m.shape[1]}x{raw_depth_m.shape[0]} does not match camera_info {intrinsics.width}x{intrinsics.height}")
        t0 = time.perf_counter()
        result = self.estimator.update(disparity, rgb, intrinsics, stamp_ns, raw_depth_m)
        return MetricFrame(result, None, {"metric": (time.perf_counter() - t0) * 1e3})

    def add_cloud(self, frame: MetricFrame, rgb: np.ndarray, intrinsics: CameraIntrinsics) -> MetricFrame:
        """The second half of :meth:`process`: the cloud of a valid frame (stateless: any thread)."""
        t0 = time.perf_counter()
        result = frame.result
        cloud = self.clouds.build(result.depth_m, intrinsics, rgb) if result.valid and result.depth_m is not None else None
        return MetricFrame(result, cloud, {**frame.timings_ms, "cloud": (time.perf_counter() - t0) * 1e3})
