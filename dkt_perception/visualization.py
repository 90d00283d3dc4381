"""Colourised previews of depth and disparity (rviz images, demo PNGs, CLI previews)."""

from __future__ import annotations

import cv2
import numpy as np


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None, invalid_rgb=(0, 0, 0)) -> np.ndarray:
    """float (H, W) -> uint8 (H, W, 3) RGB with the turbo colour map; NaN pixels get ``invalid_rgb``.

    Without explicit limits the 2nd and 98th percentiles of the finite values
    are used, so a few outliers do not wash the image out.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected a (H, W) array, got shape {values.shape}")
    finite = np.isfinite(values)
    if not finite.any():
        return np.broadcast_to(np.asarray(invalid_rgb, np.uint8), (*values.shape, 3)).copy()
    # percentiles of a 1/16 subsample: the same limits to within a level, 16x cheaper (a 30 Hz preview)
    sample = values[::4, ::4][finite[::4, ::4]]
    lo, hi = np.percentile(sample if sample.size else values[finite], [2, 98]) if vmin is None or vmax is None else (vmin, vmax)
    lo = float(lo if vmin is None else vmin)
    hi = float(hi if vmax is None else vmax)
    scale = 255.0 / max(hi - lo, 1e-12)
    u8 = np.clip((np.where(finite, values, lo) - lo) * scale, 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_TURBO)[:, :, ::-1]
    rgb[~finite] = invalid_rgb
    return np.ascontiguousarray(rgb)
