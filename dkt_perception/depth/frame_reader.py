"""Frames from a video file or an image folder, read lazily, with errors that name the file and the fix.

:func:`open_frames` checks what it can up front (the path exists; a folder
holds images; a video opens) and then yields ``(name, rgb)`` one frame at a
time, so memory does not depend on the video's length. ``rgb`` is uint8
(H, W, 3) RGB. Every frame has the first frame's size: a different one is
refused, or resized to it with ``on_size="resize"``. An image that cannot be
decoded is refused by name, or skipped (and listed in ``skipped``) with
``on_corrupt="skip"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from dkt_perception.depth.interface import DepthInputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class FrameReader:
    """A lazy source of frames; iterate it once. ``count_hint``: frames expected (None when a video does not say)."""

    path: Path
    kind: Literal["video", "folder"]
    count_hint: int | None
    on_corrupt: Literal["refuse", "skip"] = "refuse"
    on_size: Literal["refuse", "resize"] = "refuse"
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  #: corrupt images left out (on_corrupt="skip")
    resized: list[str] = field(default_factory=list)  #: frames resized to the first frame's size (on_size="resize")
    size: tuple[int, int] | None = None  #: (height, width) of the first frame

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        frames = self._video() if self.kind == "video" else self._folder()
        for name, bgr in frames:
            yield name, self._fit(name, bgr)

    def _video(self) -> Iterator[tuple[str, np.ndarray]]:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield f"{self.path.stem}_{index:06d}", frame
                index += 1
        finally:
            cap.release()
        if index == 0:
            raise DepthInputError(f"{self.path}: no frame could be decoded (not a video, or a codec OpenCV lacks)",
                                  fix="convert it, e.g. `ffmpeg -i IN -c:v libx264 out.mp4`, or extract the frames to a folder")

    def _folder(self) -> Iterator[tuple[str, np.ndarray]]:
        import cv2

        for path in self.files:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                if self.on_corrupt == "skip":
                    log.warning("skipping %s: cannot decode it (corrupt or not an image)", path)
                    self.skipped.append(path.name)
                    continue
                raise DepthInputError(f"{path}: cannot decode the image (corrupt or not an image)",
                                      fix="remove or replace it, or pass --skip-corrupt to leave such images out")
            yield path.name, bgr
        if len(self.skipped) == len(self.files):
            raise DepthInputError(f"{self.path}: none of the {len(self.files)} images could be decoded", fix="check the files")

    def _fit(self, name: str, bgr: np.ndarray) -> np.ndarray:
        import cv2

        h, w = bgr.shape[:2]
        if self.size is None:
            self.size = (h, w)
        elif (h, w) != self.size:
            H, W = self.size
            if self.on_size != "resize":
                raise DepthInputError(f"{name} is {w}x{h} but the first frame is {W}x{H}; all frames of a sequence must have one size",
                                      fix=f"pass --resize to resize every frame to {W}x{H}, or remove the odd ones")
            shrink = h * w > H * W
            bgr = cv2.resize(bgr, (W, H), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            self.resized.append(name)
        return np.ascontiguousarray(bgr[:, :, ::-1])


def open_frames(path: str | Path, *, on_corrupt: Literal["refuse", "skip"] = "refuse",
                on_size: Literal["refuse", "resize"] = "refuse") -> FrameReader:
    """A :class:`FrameReader` over a video file or a folder of images (sorted by name).

    Raises DepthInputError at once for a path that does not exist, a folder
    without images, or a video OpenCV cannot open.
    """
    import cv2

    path = Path(path)
    if not path.exists():
        raise DepthInputError(f"{path}: not found", fix="check the path (a video file or a folder of images)")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DepthInputError(f"{path}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})",
                                  fix="give a folder of images or a video file")
        return FrameReader(path, "folder", len(files), on_corrupt, on_size, files)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DepthInputError(f"{path}: cannot open it as a video (not a video, or a codec OpenCV lacks)",
                                  fix="convert it, e.g. `ffmpeg -i IN -c:v libx264 out.mp4`, or extract the frames to a folder")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return FrameReader(path, "video", count if count > 0 else None, on_corrupt, on_size)
