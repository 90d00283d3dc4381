"""Picture strips: the camera's view and a viewing camera's, side by side at a few moments of a trial.

A strip is one uint8 RGB image: a row of D435 views over a row of external
views, one column per moment (capture, grasp, lift), each captioned.
"""

from __future__ import annotations

import cv2
import numpy as np


class PictureStrip:
    """Collects (caption, camera RGB, external RGB) frames and composes them; ``tile_width`` px per column."""

    def __init__(self, tile_width: int = 320):
        if tile_width < 32:
            raise ValueError(f"tile_width must be >= 32 px, got {tile_width}")
        self.tile_width = int(tile_width)
        self.columns: list[tuple[str, np.ndarray, np.ndarray]] = []

    def add(self, caption: str, camera_rgb: np.ndarray, external_rgb: np.ndarray) -> None:
        self.columns.append((caption, np.asarray(camera_rgb, dtype=np.uint8), np.asarray(external_rgb, dtype=np.uint8)))

    def _tile(self, rgb: np.ndarray, caption: str | None) -> np.ndarray:
        h = round(rgb.shape[0] * self.tile_width / rgb.shape[1])
        tile = cv2.resize(rgb, (self.tile_width, h), interpolation=cv2.INTER_AREA)
        if caption:
            cv2.rectangle(tile, (0, 0), (self.tile_width, 18), (0, 0, 0), thickness=-1)
            cv2.putText(tile, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        return tile

    def compose(self) -> np.ndarray | None:
        """The strip (uint8 (H, W, 3) RGB), or None before anything was added."""
        if not self.columns:
            return None
        top = [self._tile(cam, caption) for caption, cam, _ in self.columns]
        bottom = [self._tile(ext, None) for _, _, ext in self.columns]
        height = max(t.shape[0] for t in top)
        top = [cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in top]
        height = max(t.shape[0] for t in bottom)
        bottom = [cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in bottom]
        return np.vstack([np.hstack(top), np.hstack(bottom)])
