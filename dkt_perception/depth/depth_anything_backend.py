"""Depth Anything V2 (transformers ``DepthAnythingForDepthEstimation``) as a per-frame baseline.

Output: relative disparity normalised per frame to [0, 1] (min-max), at the
input size. Preprocessing: resize so the shorter side is ``depth_anything_size``
(both sides multiples of 14, bicubic), ImageNet mean/std. Weights: a HF id
(default ``depth-anything/Depth-Anything-V2-Small-hf``) or a local folder.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import DepthFrame, DepthResult, MissingWeightsError, VideoDepth, check_rgb_frame, check_rgb_video

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_input_size(height: int, width: int, short_side: int, multiple: int = 14) -> tuple[int, int]:
    """Keep the aspect ratio, shorter side ~``short_side``, both sides rounded to multiples of ``multiple``."""
    scale = short_side / min(height, width)
    return (max(multiple, round(height * scale / multiple) * multiple), max(multiple, round(width * scale / multiple) * multiple))


class DepthAnythingBackend:
    name = "depth_anything_v2"
    video_context = False

    def __init__(self, config: DepthConfig | None = None, *, model=None) -> None:
        from dkt_perception.depth.dkt_backend import resolve_device

        self.config = config or DepthConfig(backend=self.name)
        dev, dtype = resolve_device(self.config.device, "float32" if self.config.dtype == "auto" else self.config.dtype)
        self.device, self._dev, self._dtype = str(dev), dev, dtype
        if model is None:
            from transformers import DepthAnythingForDepthEstimation

            try:
                model = DepthAnythingForDepthEstimation.from_pretrained(self.config.depth_anything_model)
            except OSError as exc:
                raise MissingWeightsError(f"cannot load Depth Anything V2 weights {self.config.depth_anything_model!r}: {exc}") from exc
        self.model = model.to(dev, dtype).eval()

    @torch.no_grad()
    def _predict(self, rgb: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) float32 disparity in [0, 1] per frame."""
        _, h, w, _ = rgb.shape
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self._dev).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=model_input_size(h, w, self.config.depth_anything_size), mode="bicubic", align_corners=False).clamp(0, 1)
        mean = torch.tensor(IMAGENET_MEAN, device=self._dev).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self._dev).view(1, 3, 1, 1)
        pred = self.model(pixel_values=((x - mean) / std).to(self._dtype)).predicted_depth.float()
        pred = F.interpolate(pred.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        lo = pred.flatten(1).min(1).values.view(-1, 1, 1)
        hi = pred.flatten(1).max(1).values.view(-1, 1, 1)
        return ((pred - lo) / (hi - lo).clamp_min(1e-12)).cpu().numpy().astype(np.float32)

    def stream(self, frame: DepthFrame) -> list[DepthResult]:
        check_rgb_frame(frame.rgb)
        t0 = time.perf_counter()
        disp = self._predict(frame.rgb[None])[0]
        return [DepthResult(frame.stamp_ns, disp, {"total": (time.perf_counter() - t0) * 1e3}, self.name)]

    def flush(self) -> list[DepthResult]:
        return []

    def reset(self) -> None:
        """Nothing to reset: frames are independent (a per-image model)."""

    def infer_video(self, rgb: np.ndarray, raw_depth_m: np.ndarray | None = None) -> VideoDepth:
        check_rgb_video(rgb)
        t0 = time.perf_counter()
        disp = np.concatenate([self._predict(rgb[i : i + 8]) for i in range(0, len(rgb), 8)])
        return VideoDepth(disp, {"total": (time.perf_counter() - t0) * 1e3})
