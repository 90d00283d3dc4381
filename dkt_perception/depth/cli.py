"""``dkt-stack depth INPUT --out DIR``: float disparity (.npz) and colourised previews for a video or an image folder.

Frames stream through: they are read lazily (:mod:`.frame_reader`), go through
the backend's bounded-memory path (DKT: causal VAE chunks and DiT windows over
the whole sequence; per-image backends: batches of 8), and each result is
appended to ``depth.npz`` (packed atomically at the end) and written as a
preview PNG at once. Peak memory therefore does not grow with the video's
length (see README, "Measured figures"). Progress bars (stderr) follow the
frames through each stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.frame_reader import IMAGE_SUFFIXES, open_frames
from dkt_perception.depth.interface import infer_frames
from dkt_perception.depth.registry import create_backend
from dkt_stack.atomic_files import StackedNpzWriter, write_bytes_atomic

__all__ = ["IMAGE_SUFFIXES", "ProgressBars", "add_arguments", "run"]

#: the preview's colour-bar label: what DKT outputs (not metres)
PREVIEW_LABEL = "relative disparity (no unit; near = high)"


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
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="leave out images that cannot be decoded (each is named in a warning); default: stop at the first, naming it")
    parser.add_argument("--resize", action="store_true",
                        help="resize frames whose size differs from the first frame's to that size; default: stop, naming the frame")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


class ProgressBars:
    """One tqdm bar per stage, created when the stage first reports; a ``progress(stage, done, total)`` callback.

    Stages run one after the other: a new stage closes the bars before it.
    """

    UNITS: ClassVar[dict[str, str]] = {"denoise": "DiT call"}

    def __init__(self, totals: dict[str, int | None] | None = None, disable: bool = False):
        self.totals, self.disable = dict(totals or {}), disable
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():
                other.close()
            bar = self.bars[stage] = tqdm(total=total or self.totals.get(stage), desc=stage, unit=self.UNITS.get(stage, "frame"),
                                          disable=self.disable, dynamic_ncols=True)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self, failed: bool = False) -> None:
        """Close every bar; after a failure erase them, so the error line stands alone."""
        for bar in self.bars.values():
            if failed:
                bar.leave = False
            bar.close()


def _png(rgb) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    if not ok:
        raise ValueError("OpenCV could not encode a preview PNG")
    return buf.tobytes()


def run(args: argparse.Namespace) -> int:
    from dkt_perception.visualization import colorize_with_bar

    cfg = DepthConfig(backend=args.backend, model=args.model, random_weights=args.random_weights, weights_dir=args.weights_dir,
                      steps=args.steps, window=args.window, overlap=args.overlap, height=args.height, width=args.width, device=args.device,
                      lora_path=args.lora, lora_scale=args.lora_scale, zero_noise=args.zero_noise)
    reader = open_frames(args.input, on_corrupt="skip" if args.skip_corrupt else "refuse", on_size="resize" if args.resize else "refuse")
    backend = create_backend(args.backend, cfg)  # weights errors come before anything is written
    out = Path(args.out)
    names: list[str] = []

    def frames():
        for name, rgb in reader:
            names.append(name)
            yield rgb

    timings: dict[str, float] = {}
    n = reader.count_hint
    bars = ProgressBars({"encode": n, "depth": n, "decode": n}, disable=args.quiet)
    npz = StackedNpzWriter(out / "depth.npz", "disparity")  # creates nothing before the first result
    try:
        with npz:
            for i, disparity in enumerate(infer_frames(backend, frames(), timings=timings, progress=bars)):
                npz.append(disparity)
                if not args.no_preview:
                    write_bytes_atomic(out / f"{Path(names[i]).stem}_disparity.png", _png(colorize_with_bar(disparity, PREVIEW_LABEL)))
            npz.close(names=names)
    except BaseException:
        bars.close(failed=True)
        raise
    bars.close()
    notes = []
    if reader.skipped:
        notes.append(f"skipped {len(reader.skipped)} corrupt image(s): {', '.join(reader.skipped[:5])}{' ...' if len(reader.skipped) > 5 else ''}")
    if reader.resized:
        h, w = reader.size
        notes.append(f"resized {len(reader.resized)} frame(s) to {w}x{h}")
    print(f"{len(names)} frames -> {out / 'depth.npz'} ({', '.join(f'{k} {v:.0f} ms' for k, v in timings.items())})")
    for note in notes:
        print(f"note: {note}")
    return 0
