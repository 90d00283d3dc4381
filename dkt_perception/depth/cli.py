"""``dkt-stack depth INPUT --out DIR``: float disparity (.npz) and colourised previews for a video or an image folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import DepthInputError, WeightsError
from dkt_perception.depth.registry import create_backend
from dkt_perception.visualization import colorize
from dkt_stack.atomic_files import write_npz_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file or folder of images (sorted by name)")
    parser.add_argument("--out", required=True, help="output folder (depth.npz + preview PNGs)")
    parser.add_argument("--backend", default="dkt", choices=["dkt", "depth_anything_v2"], help="depth backend (default dkt)")
    parser.add_argument("--model", default="1.3b", choices=["1.3b", "tiny"], help="DKT architecture (tiny: the test config)")
    parser.add_argument("--random-weights", action="store_true", help="random weights (smoke tests only)")
    parser.add_argument("--steps", type=int, default=5, help="denoising steps, 1..50 (default 5)")
    parser.add_argument("--window", type=int, default=21, help="DiT window in latent frames (default 21 = 81 frames)")
    parser.add_argument("--overlap", type=int, default=3, help="overlap between windows in latent frames (default 3)")
    parser.add_argument("--height", type=int, default=480, help="model input height, multiple of 16 (default 480)")
    parser.add_argument("--width", type=int, default=832, help="model input width, multiple of 16 (default 832)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--weights-dir", default="", help="DKT weights folder (default $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights)")
    parser.add_argument("--lora", default="", help="extra LoRA merged on top (a fine-tuned adapter from `dkt-stack train --export`)")
    parser.add_argument("--lora-scale", type=float, default=1.0, help="scale of --lora (default 1)")
    parser.add_argument("--zero-noise", action="store_true", help="start from zeros (one-step deterministic models, with --steps 1)")
    parser.add_argument("--no-preview", action="store_true", help="write only depth.npz, no PNG previews")


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


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    cfg = DepthConfig(backend=args.backend, model=args.model, random_weights=args.random_weights, weights_dir=args.weights_dir,
                      steps=args.steps, window=args.window, overlap=args.overlap, height=args.height, width=args.width, device=args.device,
                      lora_path=args.lora, lora_scale=args.lora_scale, zero_noise=args.zero_noise)
    try:
        rgb, names = read_frames(Path(args.input))
        backend = create_backend(args.backend, cfg)
        result = backend.infer_video(rgb)
    except (DepthInputError, WeightsError) as exc:
        print(f"dkt-stack depth: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_npz_atomic(out / "depth.npz", disparity=result.disparity, names=np.array(names))
    if not args.no_preview:
        for name, d in tqdm(list(zip(names, result.disparity)), desc="previews", unit="frame"):
            cv2.imwrite(str(out / f"{Path(name).stem}_disparity.png"), colorize(d)[:, :, ::-1])
    print(f"{len(names)} frames -> {out / 'depth.npz'} ({', '.join(f'{k} {v:.0f} ms' for k, v in result.timings_ms.items())})")
    return 0
