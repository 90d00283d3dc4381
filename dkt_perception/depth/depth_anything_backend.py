"""Depth Anything V2 (transformers ``DepthAnythingForDepthEstimation``) as a per-frame baseline.

Output: relative disparity normalised per frame to [0, 1] (min-max), at the
input size. Preprocessing: resize so the shorter side is ``depth_anything_size``
(both sides multiples of 14, bicubic), ImageNet mean/std. Weights: a HF id
(default ``depth-anything/Depth-Anything-V2-Small-hf``) or a local folder;
``DKT_DEPTH_ANYTHING_MODEL`` replaces the default id (e.g. with a local copy).
Loading tries the local Hugging Face cache first (no network needed), then
downloads; without network it fails within seconds (:mod:`.hub`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import DepthFrame, DepthResult, MissingWeightsError, VideoDepth, check_rgb_frame, check_rgb_video

#: replaces the default model id (a local folder, or another HF id)
MODEL_ENV = "DKT_DEPTH_ANYTHING_MODEL"
DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_input_size(height: int, width: int, short_side: int, multiple: int = 14) -> tuple[int, int]:
    """Keep the aspect ratio, shorter side ~``short_side``, both sides rounded to multiples of ``multiple``."""
    scale = short_side / min(height, width)
    return (max(multiple, round(height * scale / multiple) * multiple), max(multiple, round(width * scale / multiple) * multiple))


def model_source(configured: str) -> str:
    """The configured id or folder; ``$DKT_DEPTH_ANYTHING_MODEL`` replaces the default id."""
    if configured == DEFAULT_MODEL and os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    return configured


def load_depth_anything(source: str):
    """``DepthAnythingForDepthEstimation`` from a local folder, the HF cache, or the hub (in that order).

    Raises MissingWeightsError (a missing folder, or nothing cached and no
    network: within seconds, with the command to run online and the env var).
    """
    from dkt_perception.depth.hub import require_hub

    local = Path(source).expanduser()
    looks_local = source.startswith((".", "/", "~")) or local.exists()
    if looks_local:
        from transformers import DepthAnythingForDepthEstimation

        if not local.is_dir():
            raise MissingWeightsError(f"Depth Anything V2 folder {local} not found",
                                      fix=f"point depth_anything_model (or {MODEL_ENV}) at a folder holding config.json and the weights")
        try:
            return DepthAnythingForDepthEstimation.from_pretrained(str(local), local_files_only=True)
        except OSError as exc:
            raise MissingWeightsError(f"cannot load Depth Anything V2 from {local} ({str(exc).splitlines()[0]})",
                                      fix=f"download it with `hf download {DEFAULT_MODEL} --local-dir {local}`") from exc
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    if not cached:  # check the network before importing transformers (tens of seconds on a busy machine)
        require_hub(f"Depth Anything V2 weights {source}", f"hf download {source}", f"set {MODEL_ENV}=/path/to/a/local/copy")
    from transformers import DepthAnythingForDepthEstimation

    if cached:
        try:
            return DepthAnythingForDepthEstimation.from_pretrained(source, local_files_only=True)  # cached: no network at all
        except OSError:
            pass  # partly cached (weights missing): download the rest below
    try:
        return DepthAnythingForDepthEstimation.from_pretrained(source)
    except OSError as exc:
        raise MissingWeightsError(f"cannot load Depth Anything V2 weights {source!r} ({str(exc).splitlines()[0]})",
                                  fix=f"check the id, or set {MODEL_ENV}=/path/to/a/local/copy") from exc


class DepthAnythingBackend:
    name = "depth_anything_v2"
    video_context = False

    def __init__(self, config: DepthConfig | None = None, *, model=None) -> None:
        from dkt_perception.depth.dkt_backend import resolve_device

        self.config = config or DepthConfig(backend=self.name)
        dev, dtype = resolve_device(self.config.device, "float32" if self.config.dtype == "auto" else self.config.dtype)
        self.device, self._dev, self._dtype = str(dev), dev, dtype
        if model is None:
            model = load_depth_anything(model_source(self.config.depth_anything_model))
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
