"""The small interface every depth backend speaks, and its errors.

Conventions (all backends):

* ``rgb``: uint8 array (H, W, 3), RGB channel order, image pixels of the colour
  camera (optical frame, row 0 at the top).
* ``raw_depth_m``: float32 (H, W) sensor depth along the optical axis in metres,
  registered to the colour image; 0, negative or non-finite = no measurement.
* ``disparity``: float32 (H, W) *relative* disparity (inverse depth up to an
  unknown scale and shift), larger = closer; NaN marks pixels without a value.
  The ``raw`` backend returns exactly ``1 / z`` in 1/m (scale 1, shift 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class DepthInputError(ValueError):
    """Input the depth engine cannot use (empty, wrong dtype or shape, size change mid-stream)."""


class WeightsError(ValueError):
    """Weights missing or not matching the expected architecture."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """One or more weight files are missing; the message names them and the fetch command."""


@dataclass
class DepthFrame:
    """One camera frame pushed into a backend.

    rgb: uint8 (H, W, 3) RGB image. stamp_ns: capture time in ns.
    raw_depth_m: optional float32 (H, W) sensor depth in metres (0/NaN = none).
    """

    rgb: np.ndarray
    stamp_ns: int
    raw_depth_m: np.ndarray | None = None


@dataclass
class DepthResult:
    """Depth for one frame: float32 (H, W) relative disparity (NaN = invalid), timings in ms."""

    stamp_ns: int
    disparity: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)
    backend: str = ""


@dataclass
class VideoDepth:
    """Depth for a whole video: float32 (N, H, W) relative disparity, per-stage timings in ms (totals)."""

    disparity: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class DepthBackend(Protocol):
    """What the ROS depth node, the rosbag replay and the CLI call."""

    name: str
    device: str
    #: True when a frame's output depends on the frames around it (DKT's video window);
    #: False for per-image backends, whose ``infer_video`` equals frame-by-frame ``stream``
    video_context: bool

    def stream(self, frame: DepthFrame) -> list[DepthResult]: ...

    def flush(self) -> list[DepthResult]: ...

    def reset(self) -> None: ...

    def infer_video(self, rgb: np.ndarray, raw_depth_m: np.ndarray | None = None) -> VideoDepth: ...


def check_rgb_video(rgb: np.ndarray) -> np.ndarray:
    """Validate an (N, H, W, 3) uint8 RGB video; returns it unchanged."""
    if not isinstance(rgb, np.ndarray):
        raise DepthInputError(f"expected a numpy array (N, H, W, 3) uint8, got {type(rgb).__name__}")
    if rgb.size == 0:
        raise DepthInputError(f"expected a non-empty video (N, H, W, 3) uint8, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise DepthInputError(f"expected RGB frames of dtype uint8, got {rgb.dtype}")
    if rgb.ndim == 3 or (rgb.ndim == 4 and rgb.shape[-1] == 1):
        raise DepthInputError(f"expected colour frames (N, H, W, 3); got grayscale-looking shape {rgb.shape}")
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise DepthInputError(f"expected shape (N, H, W, 3), got {rgb.shape}")
    return rgb


def check_rgb_frame(rgb: np.ndarray) -> np.ndarray:
    """Validate one (H, W, 3) uint8 RGB frame; returns it unchanged."""
    if not isinstance(rgb, np.ndarray):
        raise DepthInputError(f"expected a numpy array (H, W, 3) uint8, got {type(rgb).__name__}")
    if rgb.size == 0:
        raise DepthInputError(f"expected a non-empty frame (H, W, 3) uint8, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise DepthInputError(f"expected an RGB frame of dtype uint8, got {rgb.dtype}")
    if rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[-1] == 1):
        raise DepthInputError(f"expected a colour frame (H, W, 3); got grayscale shape {rgb.shape}")
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DepthInputError(f"expected shape (H, W, 3), got {rgb.shape}")
    return rgb


def check_raw_depth(raw_depth_m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate sensor depth in metres against the expected shape; returns float32."""
    if not isinstance(raw_depth_m, np.ndarray) or raw_depth_m.dtype.kind != "f":
        got = raw_depth_m.dtype if isinstance(raw_depth_m, np.ndarray) else type(raw_depth_m).__name__
        raise DepthInputError(f"expected raw depth as a float array in metres, got {got}")
    if raw_depth_m.shape != tuple(shape):
        raise DepthInputError(f"expected raw depth of shape {tuple(shape)}, got {raw_depth_m.shape}")
    return raw_depth_m.astype(np.float32, copy=False)
