"""What every camera source returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_stack.intrinsics import CameraIntrinsics


class CameraError(RuntimeError):
    """A camera problem the node reports and retries (no device, device lost, bad bag)."""


class NoCameraError(CameraError):
    """No device matches the request (none plugged in, or the serial is wrong)."""


class CameraLost(CameraError):
    """Frames stopped arriving from a device that was streaming."""


class EndOfStream(CameraError):
    """A recording (or finite source) has no more frames."""


@dataclass
class CameraFrame:
    """One synchronised colour + depth capture.

    rgb: uint8 (H, W, 3) RGB colour image.
    depth_mm: uint16 (H, W) sensor depth in millimetres registered (aligned) to the
        colour image, 0 = no measurement; None when depth is disabled.
    intrinsics: colour camera intrinsics (the depth image shares them after alignment).
    stamp_ns: capture time in ns (device clock mapped to system time for a live camera).
    frame_number: the source's frame counter.
    depth_gt_m: float32 (H, W) exact depth in metres (NaN = nothing hit), synthetic scene only.
    """

    rgb: np.ndarray
    depth_mm: np.ndarray | None
    intrinsics: CameraIntrinsics
    stamp_ns: int
    frame_number: int = 0
    depth_gt_m: np.ndarray | None = None
