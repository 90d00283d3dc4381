"""Snapshots saved with a trial (colour PNG, depth and cloud NPZ), each written atomically.

A file is written to a temporary name in its destination folder and moved
into place with ``os.replace``: a reader (or a resumed session) never sees a
half-written file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_png_atomic(path: str | Path, rgb: np.ndarray) -> Path:
    """Save a uint8 (H, W, 3) RGB image (or (H, W) grey) as PNG, atomically."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W, 3) RGB or (H, W) grey image, got {rgb.dtype} {rgb.shape}")
    ok, encoded = cv2.imencode(".png", rgb[:, :, ::-1] if rgb.ndim == 3 else rgb)
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {rgb.shape}")
    return write_bytes_atomic(path, encoded.tobytes())


def write_npz_atomic(path: str | Path, **arrays: np.ndarray) -> Path:
    """Save named arrays as a compressed .npz, atomically."""
    if not arrays:
        raise ValueError("write_npz_atomic needs at least one array")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes_atomic(path, buffer.getvalue())
