"""RGB + ground-truth depth sequences from dataset folders, for ``dkt-stack eval``.

Supported layouts (exactly these; anything else is rejected with a message naming what was looked for):

ClearPose (``clearpose``)::

    <root>/<set>/<scene>/<frame:06d>-color.png        RGB (8-bit, 3 channels)
    <root>/<set>/<scene>/<frame:06d>-depth_true.png   ground-truth depth, uint16, depth units (optional, see below)
    <root>/<set>/<scene>/<frame:06d>-depth.png        raw sensor depth, uint16, depth units
    <root>/<set>/<scene>/<frame:06d>-meta.mat         optional; its ``factor_depth`` is the depth scale

  One sequence per scene folder (``<set>/<scene>``); ``root`` may also be a set
  or a scene folder. Ground truth is ``-depth_true.png`` when the scene has it
  (then ``-depth.png`` is the raw depth the ``raw`` backend uses), else
  ``-depth.png``. Depth in metres = value / depth scale: ``factor_depth`` from
  the first frame's ``-meta.mat`` (read with scipy), else ``depth_scale``
  (1000, ClearPose's value). 0 = no depth.

DREDS (``dreds``), the per-scene layout of the DREDS renderer output::

    <root>/<scene>/<frame:04d>_color.png              RGB
    <root>/<scene>/<frame:04d>_depth_120.{npy,exr}    ground-truth depth, float metres
    <root>/<scene>/<frame:04d>_simDepthImage.{npy,exr} simulated sensor depth, float metres (optional; first channel)

  One sequence per scene folder; ``root`` may also be a single scene folder.
  ``.npy`` (float32 (H, W) or (H, W, C) metres) is always supported. ``.exr``
  is read with OpenCV only when its build has the OpenEXR codec (the
  opencv-python-headless 5.0 wheel used here has none): convert EXR depth to
  ``.npy`` with the same stem otherwise; the error says so.

Frames are sorted by their numeric prefix. Arrays: ``rgb`` uint8 (N, H, W, 3)
RGB; ``gt_depth_m`` / ``raw_depth_m`` float32 (N, H, W) z-depth in metres along
the camera's optical axis, NaN = no value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Layout = Literal["clearpose", "dreds"]
LAYOUTS: tuple[str, ...] = ("clearpose", "dreds")

CLEARPOSE_COLOR = re.compile(r"^(\d+)-color\.png$")
DREDS_COLOR = re.compile(r"^(\d+)_color\.png$")


class DatasetError(ValueError):
    """A dataset folder that does not match the layout asked for, or an unreadable file."""


@dataclass
class DepthSequence:
    """One sequence: colour frames, ground-truth depth and, if the dataset has it, raw sensor depth."""

    name: str
    rgb: np.ndarray
    gt_depth_m: np.ndarray
    raw_depth_m: np.ndarray | None
    frame_names: list[str]


@dataclass
class SequenceFiles:
    """Paths of one sequence before loading (cheap to list a whole dataset)."""

    name: str
    color: list[Path]
    gt: list[Path]
    raw: list[Path] | None
    depth_scale: float = 1.0  #: stored value / depth_scale = metres (1 for float depth files)


def _frames(folder: Path, pattern: re.Pattern) -> list[tuple[str, Path]]:
    found = [(m.group(1), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return sorted(found, key=lambda item: int(item[0]))


def _scene_folders(root: Path, pattern: re.Pattern, depth: int) -> list[Path]:
    """Folders at most ``depth`` levels below ``root`` (root included) holding colour frames."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    levels, out = [root], []
    for _ in range(depth + 1):
        next_levels = []
        for folder in levels:
            if any(pattern.match(p.name) for p in folder.iterdir() if p.is_file()):
                out.append(folder)
            else:
                next_levels.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
        levels = next_levels
    return sorted(out)


def _clearpose_scale(first_meta: Path, default: float) -> float:
    if not first_meta.exists():
        return default
    try:
        from scipy.io import loadmat
    except ImportError:  # scipy is optional: fall back to ClearPose's documented factor
        return default
    meta = loadmat(str(first_meta))
    if "factor_depth" not in meta:
        return default
    return float(np.asarray(meta["factor_depth"]).reshape(-1)[0])


def list_clearpose(root: str | Path, depth_scale: float = 1000.0) -> list[SequenceFiles]:
    root = Path(root)
    out = []
    for folder in _scene_folders(root, CLEARPOSE_COLOR, depth=2):
        frames = _frames(folder, CLEARPOSE_COLOR)
        stems = [p.name.removesuffix("-color.png") for _, p in frames]
        true = [folder / f"{s}-depth_true.png" for s in stems]
        raw = [folder / f"{s}-depth.png" for s in stems]
        has_true = all(p.exists() for p in true)
        gt = true if has_true else raw
        missing = [p.name for p in gt if not p.exists()]
        if missing:
            raise DatasetError(f"ClearPose scene {folder}: no ground-truth depth for {len(missing)} frame(s) (expected e.g. {missing[0]} or -depth_true.png)")
        name = str(folder.relative_to(root)) if folder != root else folder.name
        scale = _clearpose_scale(folder / f"{stems[0]}-meta.mat", depth_scale)
        out.append(SequenceFiles(name, [p for _, p in frames], gt, raw if has_true and all(p.exists() for p in raw) else None, scale))
    if not out:
        raise DatasetError(f"{root}: no ClearPose scene found (expected <set>/<scene>/<frame:06d>-color.png with -depth.png beside it)")
    return out


def _float_depth_path(folder: Path, stem: str) -> Path | None:
    for ext in (".npy", ".exr"):
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    return None


def list_dreds(root: str | Path) -> list[SequenceFiles]:
    root = Path(root)
    out = []
    for folder in _scene_folders(root, DREDS_COLOR, depth=1):
        frames = _frames(folder, DREDS_COLOR)
        ids = [p.name.removesuffix("_color.png") for _, p in frames]
        gt = [_float_depth_path(folder, f"{i}_depth_120") for i in ids]
        if any(p is None for p in gt):
            missing = ids[[p is None for p in gt].index(True)]
            raise DatasetError(f"DREDS scene {folder}: frame {missing} has no ground truth {missing}_depth_120.npy or .exr")
        raw = [_float_depth_path(folder, f"{i}_simDepthImage") for i in ids]
        name = str(folder.relative_to(root)) if folder != root else folder.name
        out.append(SequenceFiles(name, [p for _, p in frames], gt, raw if all(p is not None for p in raw) else None, 1.0))
    if not out:
        raise DatasetError(f"{root}: no DREDS scene found (expected <scene>/<frame:04d>_color.png with _depth_120.npy/.exr beside it)")
    return out


def detect_layout(root: str | Path) -> Layout:
    """``clearpose`` or ``dreds`` from the file names under ``root`` (up to two folders deep)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    for layout, pattern in (("clearpose", CLEARPOSE_COLOR), ("dreds", DREDS_COLOR)):
        if _scene_folders(root, pattern, depth=2):
            return layout  # type: ignore[return-value]
    raise DatasetError(f"{root}: neither a ClearPose (<frame>-color.png) nor a DREDS (<frame>_color.png) layout")


def list_sequences(root: str | Path, layout: Layout | Literal["auto"] = "auto", depth_scale: float = 1000.0) -> list[SequenceFiles]:
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "clearpose":
        return list_clearpose(root, depth_scale)
    if layout == "dreds":
        return list_dreds(root)
    raise DatasetError(f"unknown dataset layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read colour image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_depth_m(path: Path, depth_scale: float = 1.0) -> np.ndarray:
    """Depth file -> float32 (H, W) metres, NaN where 0 or non-finite.

    ``.png`` uint16 (divided by ``depth_scale``), ``.npy`` float metres, ``.exr`` float metres (OpenEXR-enabled OpenCV only).
    """
    if path.suffix == ".npy":
        depth = np.load(path)
    elif path.suffix == ".png":
        import cv2

        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16:
            raise DatasetError(f"{path}: expected a 16-bit depth PNG, got {'unreadable' if depth is None else depth.dtype}")
        depth = depth.astype(np.float32) / np.float32(depth_scale)
    elif path.suffix == ".exr":
        import os

        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
        import cv2

        try:
            depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            depth = None
        if depth is None:
            raise DatasetError(
                f"cannot read {path}: unreadable, or this OpenCV build has no OpenEXR codec; "
                f"convert it to {path.with_suffix('.npy').name} (float32 metres)"
            )
    else:
        raise DatasetError(f"{path}: unsupported depth file (expected .png, .npy or .exr)")
    depth = np.asarray(depth)
    if depth.ndim == 3:
        depth = depth[:, :, 0]  # DREDS stores depth in every channel
    if depth.ndim != 2 or depth.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: expected (H, W) depth, got {depth.dtype} {depth.shape}")
    depth = depth.astype(np.float32, copy=False)
    return np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)


def load_sequence(files: SequenceFiles, max_frames: int = 0, stride: int = 1) -> DepthSequence:
    """Read every ``stride``-th frame (at most ``max_frames``; 0 = all) of one sequence."""
    if stride < 1:
        raise DatasetError(f"stride must be >= 1, got {stride}")
    idx = list(range(0, len(files.color), stride))
    idx = idx[:max_frames] if max_frames else idx
    rgb = np.stack([read_rgb(files.color[i]) for i in idx])
    gt = np.stack([read_depth_m(files.gt[i], files.depth_scale) for i in idx])
    raw = np.stack([read_depth_m(files.raw[i], files.depth_scale) for i in idx]) if files.raw else None
    if gt.shape != rgb.shape[:3] or (raw is not None and raw.shape != rgb.shape[:3]):
        raise DatasetError(f"sequence {files.name}: colour {rgb.shape[1:3]} and depth {gt.shape[1:]} sizes differ")
    return DepthSequence(files.name, rgb, gt, raw, [files.color[i].name for i in idx])


def iter_sequences(root: str | Path, layout: Layout | Literal["auto"] = "auto", *, max_frames: int = 0, stride: int = 1,
                   depth_scale: float = 1000.0) -> Iterator[DepthSequence]:
    """Sequences one at a time (only one is in memory)."""
    for files in list_sequences(root, layout, depth_scale):
        yield load_sequence(files, max_frames, stride)
