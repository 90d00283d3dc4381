"""``dkt-stack bench depth``: DKT ms/frame per stage and peak memory (random weights or real ones).

The networks are built once; the inference runs ``--runs`` times (medians with
min/max, see :func:`dkt_stack.cli.bench.median_of_runs`). Peak memory is the
whole process's (so that of the largest run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.dkt_backend import DKTBackend
from dkt_perception.depth.interface import DepthFrame
from dkt_stack.cli.bench import add_runs_argument, median_of_runs, peak_memory_mb

#: figures that vary from run to run (medians printed, min/max beside them)
FIGURES = ("ms_per_frame", "max_latency_ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", choices=["tiny", "1.3b"], default="tiny", help="architecture")
    parser.add_argument("--random-weights", action="store_true", help="random weights (no download); always on for tiny")
    parser.add_argument("--weights-dir", default="", help="weights folder (real weights)")
    parser.add_argument("--frames", type=int, default=9, help="input frames")
    parser.add_argument("--height", type=int, default=128, help="model height (multiple of 16)")
    parser.add_argument("--width", type=int, default=224, help="model width (multiple of 16)")
    parser.add_argument("--mode", choices=["offline", "streaming"], default="offline", help="infer_video over all frames, or frames pushed one at a time")
    parser.add_argument("--steps", type=int, default=5, help="denoising steps (default 5)")
    parser.add_argument("--window", type=int, default=21, help="offline DiT window (latents)")
    parser.add_argument("--stream-window", type=int, default=6, help="streaming DiT window (latents)")
    parser.add_argument("--stream-stride", type=int, default=1, help="streaming: new latents between DiT runs")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="single-line JSON")
    add_runs_argument(parser)


def run(args: argparse.Namespace) -> dict:
    cfg = DepthConfig(model=args.config, random_weights=args.random_weights or args.config == "tiny", weights_dir=args.weights_dir,
                      steps=args.steps, window=args.window, stream_window=args.stream_window, stream_stride=args.stream_stride,
                      height=args.height, width=args.width, device=args.device)
    t_load = time.perf_counter()
    backend = DKTBackend(cfg)
    load_s = time.perf_counter() - t_load
    if backend.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rgb = np.random.default_rng(0).integers(0, 256, (args.frames, args.height, args.width, 3), dtype=np.uint8)
    n = args.frames

    def measure() -> dict:
        t0 = time.perf_counter()
        if args.mode == "offline":
            timings = backend.infer_video(rgb).timings_ms
            latency = None
        else:
            backend.reset()
            backend._stream.stage_ms.clear()
            results = []
            for i, frame in enumerate(rgb):
                results += backend.stream(DepthFrame(frame, i))
            results += backend.flush()
            timings = dict(backend._stream.stage_ms)
            latency = round(float(np.max([r.timings_ms["latency"] for r in results])), 1)
        total_ms = (time.perf_counter() - t0) * 1e3
        out = {"ms_per_frame": {k: round(timings[k] / n, 2) for k in ("encode", "denoise", "decode")} | {"total": round(total_ms / n, 2)}}
        if latency is not None:
            out["max_latency_ms"] = latency
        return out

    figures = median_of_runs(measure, args.runs, FIGURES)
    return {
        "config": args.config,
        "mode": args.mode,
        "device": backend.device,
        "dtype": str(backend.engine.dtype).removeprefix("torch."),
        "frames": n,
        "height": args.height,
        "width": args.width,
        "steps": args.steps,
        **figures,
        "peak_memory_mb": round(peak_memory_mb(backend.device), 1),
        # offline: frames encoded per input frame after padding to 4N+1; streaming encodes each frame once
        "frames_encoded_per_frame": 1.0 if args.mode == "streaming" else round(((n - 1) // 4 * 4 + 5 if (n - 1) % 4 else n) / n, 3),
        "load_s": round(load_s, 2),
        "torch_threads": torch.get_num_threads(),
    }
