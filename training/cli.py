"""``dkt-stack train``: LoRA fine-tuning of DKT, adapter export, and the tiny dataset.

    dkt-stack train CONFIG.yaml [--resume DIR|auto] [--max-steps N] [--output DIR] [--data M.yaml] [--val-data M.yaml]
    dkt-stack train --export CHECKPOINT --format diffusers|diffsynth --out PATH
    dkt-stack train --make-tiny-dataset DIR

``--resume auto`` continues from ``OUTPUT/checkpoints/latest`` when there is one.
``--max-steps N`` stops after step N (the LR schedule still follows the config's
``max_steps``), which is how a run is split into several jobs. Multi-GPU:
``accelerate launch [--config_file training/configs/accelerate_fsdp.yaml] $(which dkt-stack) train CONFIG.yaml``.
An exported adapter (either format) runs in the engine with
``DepthConfig(lora_path=PATH)``; a DiffSynth export can also replace the release
LoRA file in the weights folder when the run used ``start_from: base``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dkt_stack.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="training config (YAML), e.g. training/configs/dkt_1.3b_paper.yaml")
    parser.add_argument("--resume", default="", help="checkpoint folder, output folder, or 'auto' (OUTPUT/checkpoints/latest if any)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this optimizer step (schedule unchanged)")
    parser.add_argument("--output", default="", help="output folder (overrides the config's output_dir)")
    parser.add_argument("--data", default="", help="dataset manifest (overrides the config's data)")
    parser.add_argument("--val-data", default=None, help="validation manifest (overrides the config's val_data; '' = none)")
    parser.add_argument("--export", metavar="CHECKPOINT", default="", help="export the adapter of a checkpoint (or output folder)")
    parser.add_argument("--format", choices=["diffusers", "diffsynth"], default="diffsynth", help="export format")
    parser.add_argument("--out", default="", help="export target: a folder (diffusers) or a .safetensors file (diffsynth)")
    parser.add_argument("--make-tiny-dataset", metavar="DIR", default="", help="write the tiny synthetic dataset + manifests to DIR")


def _export(args: argparse.Namespace) -> int:
    from dkt_training.lora import export_adapter
    from dkt_training.trainer import resolve_checkpoint

    if not args.out:
        print("dkt-stack train --export: --out PATH is required", file=sys.stderr)
        return 2
    try:
        source = resolve_checkpoint(args.export)
    except ValueError:
        source = Path(args.export)  # an adapter folder/file in diffusers format
    path = export_adapter(source, args.format, args.out)
    print(f"wrote {args.format} adapter: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.make_tiny_dataset:
        from dkt_training.tiny_dataset import make_tiny_dataset

        manifest = make_tiny_dataset(args.make_tiny_dataset)
        val = manifest.with_name("val_manifest.yaml")
        print(f"wrote {manifest} and {val}\nrun: dkt-stack train training/configs/tiny_cpu.yaml --data {manifest} --val-data {val}")
        return 0
    if args.export:
        try:
            return _export(args)
        except ValueError as exc:
            print(f"dkt-stack train --export: {exc}", file=sys.stderr)
            return 2
    if not args.config:
        print("dkt-stack train: give a CONFIG.yaml, --export CHECKPOINT or --make-tiny-dataset DIR", file=sys.stderr)
        return 2
    from dkt_training.config import load_train_config
    from dkt_training.trainer import CheckpointError, LoraTrainer, resolve_checkpoint

    try:
        cfg = load_train_config(args.config)
    except ConfigError as exc:
        print(f"dkt-stack train: {exc}", file=sys.stderr)
        return 2
    if args.data:
        cfg.data = str(Path(args.data).resolve())
    if args.val_data is not None:
        cfg.val_data = str(Path(args.val_data).resolve()) if args.val_data else ""
    if args.output:
        cfg.output_dir = args.output
    resume = args.resume
    if resume == "auto":
        try:
            resume = str(resolve_checkpoint(cfg.output_dir))
        except CheckpointError:
            resume = ""
    trainer = LoraTrainer(cfg)
    result = trainer.train(resume=resume or None, stop_at=args.max_steps)
    last = result.losses.get(result.last_step)
    print(f"step {result.last_step}/{cfg.max_steps}" + (f", loss {last:.5f}" if last is not None else "") +
          f", checkpoint {result.checkpoint}, {result.seconds:.1f} s")
    if result.last_step == cfg.max_steps:
        print(f"adapters: {Path(cfg.output_dir) / 'export'} (adapter_diffusers/, dkt_lora_diffsynth.safetensors)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``accelerate launch -m dkt_training.cli CONFIG.yaml``: errors end as one line, as with ``dkt-stack train``."""
    from dkt_stack.cli import CommandParser, add_debug_option, debug_environment, report_error

    parser = CommandParser(prog="dkt-stack train")
    add_arguments(parser)
    add_debug_option(parser)
    args = parser.parse_args(argv)
    with debug_environment(bool(getattr(args, "debug", False))):
        try:
            return run(args)
        except Exception as exc:  # missing weights, bad data, ...: `dkt-stack train: <what> — <fix>` (--debug: traceback)
            return report_error("dkt-stack train", exc)


if __name__ == "__main__":
    sys.exit(main())
