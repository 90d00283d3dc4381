"""Snapshots saved with a trial (colour PNG, depth and cloud NPZ), each written atomically.

A file is written to a temporary name in its destination folder and moved
into place with ``os.replace``: a reader (or a resumed session) never sees a
half-written file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dkt_stack.atomic_files import write_bytes_atomic, write_npz_atomic

__all__ = ["write_bytes_atomic", "write_npz_atomic", "write_png_atomic"]


def write_png_atomic(path: str | Path, rgb: np.ndarray) -> Path:
    """Save a uint8 (H, W, 3) RGB image (or (H, W) grey) as PNG, atomically."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W, 3) RGB or (H, W) grey image, got {rgb.dtype} {rgb.shape}")
    ok, encoded = cv2.imencode(".png", rgb[:, :, ::-1] if rgb.ndim == 3 else rgb)
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {rgb.shape}")
    return write_bytes_atomic(path, encoded.tobytes())


