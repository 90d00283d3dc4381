"""The one pinhole camera model used everywhere in the stack.

Conventions (REP 103/105 optical frame): x right, y down, z forward, metres.
Pixel (u, v) has its centre at integer coordinates, as in sensor_msgs/CameraInfo.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: Distortion models CameraInfo may carry; we keep D verbatim for any of them.
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant", "")


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one image stream.

    Attributes:
        width, height: image size in pixels.
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels.
        distortion: distortion coefficients D (kept, not applied: the D435's
            colour stream is published rectified enough that the stack ignores it).
        distortion_model: CameraInfo distortion model name.
        frame_id: optical frame of the stream, e.g. ``camera_color_optical_frame``.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = field(default=())
    distortion_model: str = "plumb_bob"
    frame_id: str = "camera_color_optical_frame"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite focal length in pixels, got {value}")
        for name in ("cx", "cy"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        object.__setattr__(self, "distortion", tuple(float(d) for d in self.distortion))

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the standard name of the matrix
        """3x3 camera matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def as_tuple(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy), the form pupil-apriltags and open3d take."""
        return self.fx, self.fy, self.cx, self.cy

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int, **kwargs) -> CameraIntrinsics:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        return cls(width=int(width), height=int(height), fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], **kwargs)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float, **kwargs) -> CameraIntrinsics:
        """Square pixels and a centred principal point from a horizontal field of view."""
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
        return cls(width=width, height=height, fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, **kwargs)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics of the same camera after resizing the image to (width, height).

        Uses the pixel-centre convention: u' + 0.5 = (u + 0.5) * width / self.width.
        """
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            width=width,
            height=height,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
        )

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel normalised ray components (x/z, y/z), each (height, width) float32.

        Cached per instance: back-projection is then two multiplies per pixel.
        """
        cached = _RAY_CACHE.get(self)
        if cached is None:
            u = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
            v = (np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
            xs = np.broadcast_to(u[None, :], (self.height, self.width)).astype(np.float32)
            ys = np.broadcast_to(v[:, None], (self.height, self.width)).astype(np.float32)
            cached = (xs, ys)
            if len(_RAY_CACHE) > 16:
                _RAY_CACHE.clear()
            _RAY_CACHE[self] = cached
        return cached

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project Nx3 points (metres, optical frame) to Nx2 pixel coordinates."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must be Nx3, got shape {points.shape}")
        z = points[:, 2]
        return np.stack([self.fx * points[:, 0] / z + self.cx, self.fy * points[:, 1] / z + self.cy], axis=1)


_RAY_CACHE: dict[CameraIntrinsics, tuple[np.ndarray, np.ndarray]] = {}
