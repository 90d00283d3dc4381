"""A tiny synthetic training set in the documented layouts, generated locally (never downloaded).

``make_tiny_dataset(DIR)`` writes (sizes in pixels, depth in metres):

* ``DIR/video/seq_NN/{rgb,depth}/NNNNNN.png``: video sequences, RGB + 16-bit PNG
  depth in millimetres (TransPhy3D-style layout), a tilted plane with a moving
  bump; some pixels invalid (0).
* ``DIR/images/{rgb,depth}/img_NN.{png,npy}``: RGB + float32 ``.npy`` depth in
  metres (ClearGrasp/DREDS-style pairs).
* ``DIR/val/seq_00/...``: one validation sequence.
* ``DIR/manifest.yaml`` and ``DIR/val_manifest.yaml`` in the manifest format of
  :mod:`dkt_training.datasets`.

RGB is a shaded texture whose brightness follows the depth, so the depth is
learnable from it. Used by the tests, ``bench train`` and the tiny CPU config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dkt_training.depth_io import write_depth_png16, write_rgb


def synthetic_frame(rng: np.random.Generator, height: int, width: int, t: float, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """One frame: RGB uint8 (H, W, 3) and depth float32 (H, W) in metres (0.4 .. 1.4 m)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    depth = 0.8 + tilt * (u - 0.5) + 0.2 * v
    cx, cy = 0.3 + 0.4 * t, 0.5
    depth -= 0.25 * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / 0.02)  # an object nearer than the plane
    texture = 0.75 + 0.25 * np.sin(18 * u + 3 * tilt) * np.cos(14 * v)
    shade = np.clip(1.3 - depth, 0.05, 1.0) * texture
    colour = np.array([1.0, 0.85, 0.7]) + rng.normal(0, 0.02, 3)
    rgb = np.clip(shade[..., None] * colour * 255.0, 0, 255).astype(np.uint8)
    return rgb, depth.astype(np.float32)


def _write_video(root: Path, rng: np.random.Generator, n_seq: int, frames: int, height: int, width: int) -> None:
    for s in range(n_seq):
        tilt = float(rng.uniform(-0.3, 0.3))
        for f in range(frames):
            rgb, depth = synthetic_frame(rng, height, width, f / max(frames - 1, 1), tilt)
            depth[: 2, : 3] = np.nan  # a few invalid pixels (stored as 0 mm)
            write_rgb(root / f"seq_{s:02d}" / "rgb" / f"{f:06d}.png", rgb)
            write_depth_png16(root / f"seq_{s:02d}" / "depth" / f"{f:06d}.png", depth)


def make_tiny_dataset(folder: str | Path, *, seed: int = 0, sequences: int = 2, frames: int = 13, images: int = 4,
                      height: int = 40, width: int = 56) -> Path:
    """Write the tiny dataset under ``folder``; returns the path of its training manifest."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    _write_video(folder / "video", rng, sequences, frames, height, width)
    _write_video(folder / "val", rng, 1, min(frames, 5), height, width)
    for i in range(images):
        rgb, depth = synthetic_frame(rng, height, width, float(rng.random()), float(rng.uniform(-0.3, 0.3)))
        write_rgb(folder / "images" / "rgb" / f"img_{i:02d}.png", rgb)
        (folder / "images" / "depth").mkdir(parents=True, exist_ok=True)
        np.save(folder / "images" / "depth" / f"img_{i:02d}.npy", depth)
    (folder / "manifest.yaml").write_text(
        "datasets:\n"
        "  - {name: tiny_video, kind: video, root: video, weight: 1.0, depth_format: png16, depth_scale: 0.001}\n"
        "  - {name: tiny_images, kind: image, root: images, weight: 0.5, depth_format: npy}\n")
    (folder / "val_manifest.yaml").write_text("datasets:\n  - {name: tiny_val, kind: video, root: val, depth_format: png16}\n")
    return folder / "manifest.yaml"
