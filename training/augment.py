"""Augmentations that keep RGB and depth registered.

* horizontal flip: RGB, depth and validity mask together, the whole clip;
* random crop: one box (same aspect ratio as the frame, side = ``scale`` x the
  frame side) for every frame of the clip, RGB and depth alike; the shared
  preprocessing then resizes to the model size (aspect not kept, as inference);
* colour jitter: brightness, contrast and saturation on RGB only, one draw per clip.

Parameters are drawn once per clip from its own seed (:func:`draw_augmentation`),
so a clip's augmentation does not depend on worker order: runs are reproducible.
Crop offsets are fractions of the free margin, so a draw is independent of the
frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dkt_training.config import AugmentSettings


@dataclass(frozen=True)
class ClipAugmentation:
    """One clip's augmentation. crop_scale in (0, 1] (1 = none); crop_y/crop_x in [0, 1] of the free margin."""

    flip: bool = False
    crop_scale: float = 1.0
    crop_y: float = 0.0
    crop_x: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0


def draw_augmentation(rng: np.random.Generator, settings: AugmentSettings, *, crop: bool = True, photometric: bool = True) -> ClipAugmentation:
    """Draw a clip's augmentation. The draw order is fixed (flip first), so disabling crop/jitter keeps the flip."""
    flip = bool(rng.random() < settings.hflip_prob)
    scale, cy, cx = float(rng.uniform(settings.crop_min_scale, 1.0)), float(rng.random()), float(rng.random())
    b, c, s = (float(rng.uniform(1 - v, 1 + v)) for v in (settings.brightness, settings.contrast, settings.saturation))
    if not crop:
        scale, cy, cx = 1.0, 0.0, 0.0
    if not photometric:
        b = c = s = 1.0
    return ClipAugmentation(flip, scale, cy, cx, b, c, s)


def crop_box(height: int, width: int, aug: ClipAugmentation) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) in pixels for a frame of ``height`` x ``width``."""
    ch, cw = max(1, round(height * aug.crop_scale)), max(1, round(width * aug.crop_scale))
    top, left = round((height - ch) * aug.crop_y), round((width - cw) * aug.crop_x)
    return top, left, ch, cw


def apply_geometry(rgb: np.ndarray, depth_m: np.ndarray, valid: np.ndarray, aug: ClipAugmentation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop and flip RGB (F, H, W, 3), depth (F, H, W) metres and valid (F, H, W) identically (pixel-exact, no resampling)."""
    top, left, ch, cw = crop_box(rgb.shape[1], rgb.shape[2], aug)
    sl = (slice(None), slice(top, top + ch), slice(left, left + cw))
    rgb, depth_m, valid = rgb[sl], depth_m[sl], valid[sl]
    if aug.flip:
        rgb, depth_m, valid = rgb[:, :, ::-1], depth_m[:, :, ::-1], valid[:, :, ::-1]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(depth_m), np.ascontiguousarray(valid)


def jitter_rgb(x: torch.Tensor, aug: ClipAugmentation) -> torch.Tensor:
    """Colour jitter of model-ready RGB (1, 3, F, h, w) in [-1, 1]; stays in [-1, 1]. Identity for factors of 1."""
    if aug.brightness == aug.contrast == aug.saturation == 1.0:
        return x
    y = (x + 1.0) * 0.5
    y = y * aug.brightness
    gray = (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)  # ITU-R 601 luma
    y = (y - gray.mean()) * aug.contrast + gray.mean()
    gray = (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)
    y = gray + (y - gray) * aug.saturation
    return y.clamp(0.0, 1.0) * 2.0 - 1.0
