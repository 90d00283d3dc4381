"""The sensor's own depth, passed through in the common disparity convention.

Output = ``1 / z`` in 1/m (metric inverse depth: scale 1, shift 0), NaN where
the sensor has no depth (z <= 0 or non-finite). Ready immediately: one result
per pushed frame.
"""

from __future__ import annotations

import time

import numpy as np

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import (
    DepthFrame,
    DepthInputError,
    DepthResult,
    VideoDepth,
    check_raw_depth,
    check_rgb_frame,
    check_rgb_video,
)


def inverse_depth(depth_m: np.ndarray) -> np.ndarray:
    """float32 1/z (1/m) from depth in metres; NaN where z is not a positive finite number."""
    z = depth_m.astype(np.float32, copy=False)
    ok = np.isfinite(z) & (z > 0)
    out = np.full(z.shape, np.nan, dtype=np.float32)
    np.divide(np.float32(1.0), z, out=out, where=ok)
    return out


class RawDepthBackend:
    name = "raw"
    video_context = False
    device = "cpu"

    def __init__(self, config: DepthConfig | None = None) -> None:
        self.config = config or DepthConfig(backend="raw")

    def stream(self, frame: DepthFrame) -> list[DepthResult]:
        check_rgb_frame(frame.rgb)
        if frame.raw_depth_m is None:
            raise DepthInputError("the raw backend needs DepthFrame.raw_depth_m (sensor depth in metres)")
        t0 = time.perf_counter()
        disp = inverse_depth(check_raw_depth(frame.raw_depth_m, frame.rgb.shape[:2]))
        return [DepthResult(frame.stamp_ns, disp, {"total": (time.perf_counter() - t0) * 1e3}, self.name)]

    def flush(self) -> list[DepthResult]:
        return []

    def reset(self) -> None:
        """Nothing to reset: each frame is passed through on its own."""

    def infer_video(self, rgb: np.ndarray, raw_depth_m: np.ndarray | None = None) -> VideoDepth:
        check_rgb_video(rgb)
        if raw_depth_m is None:
            raise DepthInputError("the raw backend needs raw_depth_m (N, H, W) sensor depth in metres")
        t0 = time.perf_counter()
        disp = inverse_depth(check_raw_depth(raw_depth_m, rgb.shape[:3]))
        return VideoDepth(disp, {"total": (time.perf_counter() - t0) * 1e3})
