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

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import numpy as np

from dkt_stack.errors import UserError


class DepthInputError(UserError):
    """Input the depth engine cannot use (empty, wrong dtype or shape, size change mid-stream)."""


class WeightsError(UserError):
    """Weights missing or not matching the expected architecture."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """One or more weight files are missing; the message names them, the fix gives the fetch command."""


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


#: frames per ``infer_video`` call when a per-image backend runs over a lazily read sequence
PER_IMAGE_BATCH = 8


def infer_frames(backend: DepthBackend, frames: Iterable[np.ndarray], *, timings: dict[str, float] | None = None,
                 progress: Callable[[str, int, int | None], None] | None = None) -> Iterator[np.ndarray]:
    """Disparity (float32 (H, W)) per frame, in order, for uint8 (H, W, 3) RGB frames read lazily: bounded memory.

    A backend with its own ``infer_frames`` (DKT: windows over the whole
    sequence) uses it; a per-image backend (``video_context`` False) runs
    ``infer_video`` on batches of :data:`PER_IMAGE_BATCH` frames, which gives the
    same result as one call over everything. ``timings`` gets the ms totals per
    stage; ``progress(stage, done, total)`` counts frames ("depth") or the
    backend's own stages.
    """
    if hasattr(backend, "infer_frames"):
        yield from backend.infer_frames(frames, timings=timings, progress=progress)
        return
    if getattr(backend, "video_context", True):  # a video backend without infer_frames: whole sequence at once
        batches: Iterable[list[np.ndarray]] = [list(frames)]
    else:
        it = iter(frames)
        batches = iter(lambda: list(islice(it, PER_IMAGE_BATCH)), [])
    done = 0
    for batch in batches:
        if not batch:
            continue
        t0 = time.perf_counter()
        video = backend.infer_video(np.stack(batch))
        if timings is not None:
            for stage, ms in video.timings_ms.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            timings.setdefault("total", 0.0)
            if "total" not in video.timings_ms:
                timings["total"] += (time.perf_counter() - t0) * 1e3
        done += len(batch)
        if progress is not None:
            progress("depth", done, None)
        yield from video.disparity


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
