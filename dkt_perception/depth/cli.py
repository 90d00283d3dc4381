"""``dkt-stack depth INPUT --out DIR``: float disparity (.npz) and colourised previews for a video or an image folder."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import DepthInputError, WeightsError
from dkt_perception.depth.registry import create_backend

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file or folder of images (sorted by name)")
    parser.add_argument("--out", required=True, help="output folder (depth.npz + preview PNGs)")
    parser.add_argument("--backend", default="dkt", choices=["dkt", "depth_anything_v2"])
    parser.add_argument("--model", default="1.3b", choices=["1.3b", "tiny"])
    parser.add_argument("--random-weights", action="store_true", help="random weights (smoke tests only)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--window", type=int, default=21)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights-dir", default="")
    parser.add_argument("--no-preview", action="store_true")


def read_frames(path: Path) -> tuple[np.ndarray, list[str]]:
    """(N, H, W, 3) uint8 RGB and frame names from a video file or an image folder."""
    import cv2

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
        names = [p.name for p in files]
    else:
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        names = [f"{path.stem}_{i:06d}" for i in range(len(frames))]
    if not frames or any(f is None for f in frames):
        raise DepthInputError(f"no readable frames in {path}")
    if len({f.shape for f in frames}) != 1:
        raise DepthInputError(f"frames in {path} have different sizes")
    return np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]), names


def write_npz_atomic(path: Path, **arrays) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def colourise(disparity: np.ndarray) -> np.ndarray:
    """(H, W) disparity -> BGR uint8 preview (turbo colour map, min-max over finite pixels)."""
    import cv2

    ok = np.isfinite(disparity)
    lo, hi = (disparity[ok].min(), disparity[ok].max()) if ok.any() else (0.0, 1.0)
    norm = np.where(ok, (disparity - lo) / max(hi - lo, 1e-12), 0)
    return cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    cfg = DepthConfig(backend=args.backend, model=args.model, random_weights=args.random_weights, weights_dir=args.weights_dir,
                      steps=args.steps, window=args.window, overlap=args.overlap, height=args.height, width=args.width, device=args.device)
    try:
        rgb, names = read_frames(Path(args.input))
        backend = create_backend(args.backend, cfg)
        result = backend.infer_video(rgb)
    except (DepthInputError, WeightsError) as exc:
        print(f"dkt-stack depth: {exc}")
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_npz_atomic(out / "depth.npz", disparity=result.disparity, names=np.array(names))
    if not args.no_preview:
        for name, d in tqdm(list(zip(names, result.disparity)), desc="previews", unit="frame"):
            cv2.imwrite(str(out / f"{Path(name).stem}_disparity.png"), colourise(d))
    print(f"{len(names)} frames -> {out / 'depth.npz'} ({', '.join(f'{k} {v:.0f} ms' for k, v in result.timings_ms.items())})")
    return 0
