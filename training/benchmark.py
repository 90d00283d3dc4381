"""``dkt-stack bench train``: training steps per second and peak memory for the tiny config (CPU by default).

Generates the tiny dataset in a temporary folder, runs a few warm-up steps
(not timed), then times ``--steps`` optimizer steps of the tiny config
(training/configs/tiny_cpu.yaml unless ``--config`` is given).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dkt_stack.cli.bench import add_runs_argument, median_of_runs, peak_memory_mb

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


#: figures that vary from run to run (medians printed, min/max beside them)
FIGURES = ("steps_per_second", "ms_per_step", "setup_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(CONFIG_DIR / "tiny_cpu.yaml"), help="training config (its data is replaced by the tiny dataset)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    parser.add_argument("--json", action="store_true", help="single-line JSON")
    add_runs_argument(parser)


def run(args: argparse.Namespace) -> dict:
    """``--runs`` measurements: medians, with min/max beside them (:func:`dkt_stack.cli.bench.median_of_runs`)."""
    return median_of_runs(lambda: _run_once(args), args.runs, FIGURES)


def _run_once(args: argparse.Namespace) -> dict:
    from dkt_training.config import load_train_config
    from dkt_training.tiny_dataset import make_tiny_dataset
    from dkt_training.trainer import LoraTrainer

    cfg = load_train_config(args.config)
    with tempfile.TemporaryDirectory(prefix="dkt_bench_train_") as tmp:
        cfg.data = str(make_tiny_dataset(Path(tmp) / "data"))
        cfg.val_data = ""
        cfg.device = args.device
        cfg.max_steps = args.warmup + args.steps
        cfg.checkpoint_every = cfg.max_steps  # only the run-end checkpoint (one small adapter save inside the timed window)
        t0 = time.perf_counter()
        trainer = LoraTrainer(cfg, output_dir=Path(tmp) / "out")
        setup_s = time.perf_counter() - t0
        trainer.train(stop_at=args.warmup)
        device = str(trainer.acc.device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t1 = time.perf_counter()
        result = trainer.train(stop_at=args.warmup + args.steps)
        seconds = time.perf_counter() - t1
        trainable = sum(p.numel() for p in trainer.transformer.parameters() if p.requires_grad)
    return {
        "config": Path(args.config).name,
        "device": device,
        "steps": args.steps,
        "steps_per_second": round(args.steps / seconds, 3),
        "ms_per_step": round(1e3 * seconds / args.steps, 1),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "batch_size": cfg.batch_size,
        "max_frames": 4 * cfg.max_latent_n + 1,
        "height": cfg.height,
        "width": cfg.width,
        "lora_rank": cfg.lora.rank,
        "trainable_params": trainable,
        "final_loss": round(result.losses[result.last_step], 5),
        "setup_s": round(setup_s, 2),
        "torch_threads": torch.get_num_threads(),
    }
