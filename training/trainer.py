"""The LoRA training loop: data plan -> latents -> objective -> AdamW, with exact resume.

    from dkt_training.config import load_train_config
    from dkt_training.trainer import LoraTrainer
    result = LoraTrainer(load_train_config("training/configs/tiny_cpu.yaml")).train()

* The VAE and the base DiT are frozen; only the peft LoRA weights train
  (AdamW, float32 master weights; bf16 autocast on CUDA through ``accelerate``).
* ``accelerate`` runs it on one device or many (DDP; see
  ``training/configs/accelerate_fsdp.yaml`` for FSDP): process ``rank`` of
  ``world`` trains micro-batch ``(step * grad_accum + micro) * world + rank`` of
  the co-training plan, so every process sees different, reproducible data.
* Everything random in a step (the batch plan, augmentation, noise, sigmas) is a
  pure function of the seed and the plan index, so a run resumed from a
  checkpoint reproduces the uninterrupted run's losses exactly. Checkpoints
  (``OUTPUT/checkpoints/step_NNNNNNN/``: ``adapter/`` in diffusers/peft format,
  ``training_state.pt`` with optimizer, LR schedule, sampler position and the
  python/numpy/torch RNG states) are written to a temporary folder and renamed
  into place; ``checkpoints/latest`` names the newest.
* Logs: ``OUTPUT/metrics.csv`` (step, loss, lr, frames, grad norm, s/step) and
  ``OUTPUT/val_metrics.csv`` (the paper's metrics per validation); TensorBoard
  too when the ``tensorboard`` package is importable.
* At the end the adapter is exported to ``OUTPUT/export/`` in both formats
  (``adapter_diffusers/`` and ``dkt_lora_diffsynth.safetensors``).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dkt_stack.atomic_files import atomic_path, write_text_atomic
from dkt_stack.config import to_dict
from dkt_training.config import TrainConfig
from dkt_training.cotrain_sampler import CoTrainingSampler
from dkt_training.datasets import ClipBatches, identity_collate, index_manifest, load_clip, load_manifest, sources_of
from dkt_training.latent_cache import LatentCache
from dkt_training.lora import (
    adapter_metadata,
    add_lora,
    load_lora_state_dict,
    lora_state_dict,
    save_diffsynth_adapter,
    save_diffusers_adapter,
)
from dkt_training.objective import encode_latents, training_loss

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ("step", "loss", "lr", "frames", "grad_norm", "seconds")
VAL_COLUMNS = ("step", "delta_1.05", "delta_1.10", "delta_1.25", "rel_pct", "rmse_cm", "temporal_err_cm", "sequences")
STATE_FILE = "training_state.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing or does not fit this run."""


@dataclass
class TrainResult:
    """What a call to :meth:`LoraTrainer.train` did: per-step mean loss, last step, last checkpoint, validations."""

    losses: dict[int, float] = field(default_factory=dict)
    last_step: int = 0
    checkpoint: Path | None = None
    validations: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def lr_factor(step: int, config: TrainConfig) -> float:
    """LR multiplier after ``step`` optimizer steps: linear warm-up, then constant / cosine / linear decay to 0 at max_steps."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    if config.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.lr_schedule == "linear":
        return 1.0 - progress
    return 1.0


def step_seed(seed: int, plan_index: int) -> int:
    """Seed of the noise and sigmas of one micro-batch (independent of any global RNG)."""
    return int(np.random.SeedSequence([seed, plan_index, 0x5EED]).generate_state(1, dtype=np.uint64)[0] >> 1)


def load_training_networks(config: TrainConfig, device: torch.device, dtype: torch.dtype):
    """(transformer, vae, text context) for training, per ``config.start_from`` (float32 VAE on CPU)."""
    from dkt_perception.depth import wan_model
    from dkt_perception.depth.config import DepthConfig
    from dkt_perception.depth.dkt_backend import load_networks
    from dkt_perception.depth.interface import WeightsError

    if config.random_weights or config.start_from == "dkt":
        cfg = DepthConfig(model=config.model, weights_dir=config.weights_dir, random_weights=config.random_weights, seed=config.seed)
        return load_networks(cfg, device, dtype)
    from dkt_perception.depth.conditioning import load_text_cache
    from dkt_perception.depth.weights import runtime_weights

    paths = runtime_weights(config.weights_dir or None)
    if paths.diffusers_dir is not None:
        raise WeightsError(f"{paths.diffusers_dir} has the release LoRA merged; start_from: base needs the original DiT file "
                           "(remove the diffusers export or use start_from: dkt)")
    net = wan_model.load_transformer_single_file(paths.dit, config.model, dtype=torch.float32)
    vae = wan_model.load_vae_single_file(paths.vae, config.model, dtype=torch.float32)
    text = load_text_cache(paths.text_cache, net.config.text_dim)
    return wan_model.cast_model(net, dtype, device), wan_model.cast_model(vae, dtype, device), text


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or an output folder (its ``checkpoints/latest``)."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    latest = path / "checkpoints" / "latest"
    if latest.is_file():
        ckpt = path / "checkpoints" / latest.read_text().strip()
        if (ckpt / STATE_FILE).is_file():
            return ckpt
    raise CheckpointError(f"no checkpoint at {path} (expected {STATE_FILE} there, or checkpoints/latest under an output folder)")


class LoraTrainer:
    """One training run. ``networks=(transformer, vae, text)`` skips weight loading (tests, benchmarks)."""

    def __init__(self, config: TrainConfig, *, output_dir: str | Path | None = None, networks=None) -> None:
        from accelerate import Accelerator

        self.config = c = config
        self.out = Path(output_dir or c.output_dir)
        cpu = c.device == "cpu" or (c.device == "auto" and not torch.cuda.is_available())
        use_bf16 = c.mixed_precision == "bf16" or (c.mixed_precision == "auto" and not cpu)
        self.acc = Accelerator(mixed_precision="bf16" if use_bf16 else "no", cpu=cpu)
        device = self.acc.device
        base_dtype = torch.bfloat16 if use_bf16 else torch.float32
        net, self.vae, self.text = networks if networks is not None else load_training_networks(c, device, base_dtype)
        self.vae.requires_grad_(False).eval()
        self.image = None
        if net.config.image_dim:
            from dkt_perception.depth.conditioning import image_context

            self.image = image_context(net.config.image_dim, device=device)
        torch.manual_seed(c.seed)  # the LoRA A matrices are initialised from the global RNG
        self.trainable = add_lora(net, c.lora)
        if c.gradient_checkpointing:
            net.enable_gradient_checkpointing()
        net.train()
        self.text = self.text.to(device)
        self.vae.to(device)

        datasets = index_manifest(load_manifest(c.data))
        self.datasets = datasets
        stride = c.cache_start_stride if c.cache_latents else 1
        self.sampler = CoTrainingSampler(sources_of(datasets), c.batch_size, c.max_latent_n, c.seed, start_stride=stride)
        self.cache = LatentCache(c.latent_cache_dir or self.out / "latent_cache") if c.cache_latents else None
        self.batches = ClipBatches(datasets, self.sampler, c.height, c.width, c.augment, latent_cache=self.cache)
        self.val_datasets = index_manifest(load_manifest(c.val_data)) if c.val_data else []

        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay)
        # stepped by hand once per optimizer step (accelerate's wrapper would step it once per process)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, c))
        self.net, self.optimizer = self.acc.prepare(net, opt)
        self.step = 0
        self._tb = None

    # ------------------------------------------------------------ one step

    @property
    def transformer(self):
        return self.acc.unwrap_model(self.net)

    def plan_indices(self, step: int) -> list[int]:
        """Plan indices of this process's micro-batches for optimizer step ``step`` (0-based)."""
        w, r, a = self.acc.num_processes, self.acc.process_index, self.config.grad_accum
        return [(step * a + m) * w + r for m in range(a)]

    def latents_for(self, item: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth latents, RGB latents) of a loaded batch: cached ones reused, the rest encoded (and cached)."""
        device = self.acc.device
        keys, cached = item["keys"], item["latents"]
        todo = [i for i, k in enumerate(keys) if k not in cached]
        rgb_l, depth_l = [None] * len(keys), [None] * len(keys)
        if todo:
            rgb_z = encode_latents(self.vae, item["rgb"][todo].to(device))
            depth_z = encode_latents(self.vae, item["depth"][todo].to(device))
            for j, i in enumerate(todo):
                rgb_l[i], depth_l[i] = rgb_z[j], depth_z[j]
                if self.cache is not None:
                    self.cache.put(keys[i], rgb_z[j], depth_z[j])
        for i, k in enumerate(keys):
            if k in cached:
                rgb_l[i], depth_l[i] = (t.to(device) for t in cached[k])
        return torch.stack(depth_l), torch.stack(rgb_l)

    def micro_loss(self, item: dict) -> torch.Tensor:
        depth_z, rgb_z = self.latents_for(item)
        gen = torch.Generator("cpu").manual_seed(step_seed(self.config.seed, item["index"]))
        with self.acc.autocast():
            return training_loss(self.config.objective, self.net, depth_z, rgb_z, self.text, self.image, shift=self.config.shift, generator=gen)

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """Write checkpoint ``step_NNNNNNN`` atomically (main process), prune old ones; returns its folder."""
        root = self.out / "checkpoints"
        final = root / f"step_{self.step:07d}"
        if self.acc.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp_{final.name}_"))
            save_diffusers_adapter(lora_state_dict(self.transformer), self.config.lora, tmp / "adapter")
            sampler_state = self.sampler.state_dict() | {"position": self.step}
            torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                        "sampler": sampler_state, "rng": _rng_state(), "config": to_dict(self.config),
                        "lora": adapter_metadata(self.config.lora), "world_size": self.acc.num_processes}, tmp / STATE_FILE)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            write_text_atomic(root / "latest", final.name + "\n")
            kept = sorted(p for p in root.glob("step_*") if p.is_dir())
            for old in kept[: max(0, len(kept) - self.config.keep_checkpoints)]:
                shutil.rmtree(old)
        self.acc.wait_for_everyone()
        return final

    def load_checkpoint(self, path: str | Path) -> Path:
        """Restore adapter, optimizer, LR schedule, sampler position and RNG states; returns the checkpoint folder."""
        from dkt_training.lora import read_diffusers_adapter

        ckpt = resolve_checkpoint(path)
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)  # our own file: holds RNG tuples
        if state.get("world_size", 1) != self.acc.num_processes:
            raise CheckpointError(f"{ckpt} was written by {state.get('world_size')} processes, this run has {self.acc.num_processes}: "
                                  "the data order would differ")
        adapter, _ = read_diffusers_adapter(ckpt / "adapter")
        load_lora_state_dict(self.transformer, adapter)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        return ckpt

    # ------------------------------------------------------------ logs

    def _prepare_logs(self) -> None:
        if not self.acc.is_main_process:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        for name, cols in (("metrics.csv", TRAIN_COLUMNS), ("val_metrics.csv", VAL_COLUMNS)):
            path = self.out / name
            rows = []
            if path.is_file():  # resumed: drop rows the interrupted run wrote after the checkpoint
                with path.open(newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                w.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self._tb = None

    def _log_row(self, name: str, cols: tuple[str, ...], row: dict) -> None:
        if not self.acc.is_main_process:
            return
        with (self.out / name).open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=cols).writerow({k: row.get(k, "") for k in cols})
        if self._tb is not None:
            prefix = "val" if name.startswith("val") else "train"
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{k}", v, row["step"])

    # ------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The paper's metrics (one scale + shift per sequence, disparity space) over the validation manifest."""
        from dkt_perception.depth.engine import DKTDepthEngine
        from dkt_perception.evaluation.metrics import evaluate_sequence, mean_over_sequences

        c = self.config
        net = self.transformer
        net.eval()
        one_step = c.objective == "one_step"
        engine = DKTDepthEngine(net, self.vae, self.text, steps=1 if one_step else c.val_steps, shift=c.shift, height=c.height,
                                width=c.width, seed=c.seed, zero_noise=one_step)
        results = []
        try:
            with self.acc.autocast():
                for ds in self.val_datasets:
                    for s, length in enumerate(ds.lengths):
                        rgb, depth_m, _ = load_clip(ds, s, 0, min(length, c.val_max_frames))
                        pred, _ = engine.infer_video(rgb)
                        results.append(evaluate_sequence(pred, depth_m, "disparity", c.val_depth_min_m, c.val_depth_max_m))
        finally:
            net.train()
        return mean_over_sequences(results) | {"sequences": len(results)}

    # ------------------------------------------------------------ loop

    def train(self, *, resume: str | Path | None = None, stop_at: int | None = None) -> TrainResult:
        """Train until ``config.max_steps`` (or ``stop_at``, which only stops early: the LR schedule is unchanged)."""
        from tqdm.auto import tqdm

        c = self.config
        if resume:
            ckpt = self.load_checkpoint(resume)
            log.info("resumed from %s at step %d", ckpt, self.step)
        end = min(c.max_steps, stop_at if stop_at is not None else c.max_steps)
        self._prepare_logs()
        result = TrainResult(last_step=self.step)
        indices = [i for s in range(self.step, end) for i in self.plan_indices(s)]
        loader = torch.utils.data.DataLoader(self.batches, batch_size=None, sampler=indices, num_workers=c.num_workers,
                                             collate_fn=identity_collate)
        items = iter(loader)
        bar = tqdm(total=end, initial=self.step, desc="train", unit="step", disable=not self.acc.is_main_process, dynamic_ncols=True)
        t_run = time.perf_counter()
        try:
            while self.step < end:
                t0 = time.perf_counter()
                total, frames = 0.0, []
                for m in range(c.grad_accum):
                    item = next(items)
                    frames.append(item["frames"])
                    ctx = self.acc.no_sync(self.net) if m < c.grad_accum - 1 else contextlib.nullcontext()
                    with ctx:
                        loss = self.micro_loss(item)
                        self.acc.backward(loss / c.grad_accum)
                    total += float(loss.detach()) / c.grad_accum
                grad_norm = float(self.acc.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)) if c.max_grad_norm > 0 else float("nan")
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                mean_loss = float(self.acc.reduce(torch.tensor(total, device=self.acc.device), reduction="mean"))
                result.losses[self.step] = mean_loss
                bar.update(1)
                if self.step % c.log_every == 0 or self.step == end:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", F=frames[-1])
                self._log_row("metrics.csv", TRAIN_COLUMNS, {"step": self.step, "loss": mean_loss, "lr": lr, "frames": frames[-1],
                                                            "grad_norm": grad_norm, "seconds": round(time.perf_counter() - t0, 4)})
                if self.val_datasets and ((c.val_every and self.step % c.val_every == 0) or self.step == c.max_steps):
                    metrics = self.validate()
                    result.validations[self.step] = metrics
                    self._log_row("val_metrics.csv", VAL_COLUMNS, {"step": self.step, **metrics})
                if self.step % c.checkpoint_every == 0 or self.step == end:
                    result.checkpoint = self.save_checkpoint()
        except KeyboardInterrupt:
            if self.step > 0:
                result.checkpoint = self.save_checkpoint()  # keep the work done so far; resume continues exactly
            raise
        finally:
            bar.close()
            if self._tb is not None:
                self._tb.close()
        result.last_step = self.step
        result.seconds = time.perf_counter() - t_run
        if self.step == c.max_steps and self.acc.is_main_process:
            self.export(self.out / "export")
        return result

    def export(self, folder: str | Path) -> tuple[Path, Path]:
        """Write the current adapter as ``adapter_diffusers/`` and ``dkt_lora_diffsynth.safetensors`` under ``folder``."""
        folder = Path(folder)
        state, meta = lora_state_dict(self.transformer), adapter_metadata(self.config.lora)
        return (save_diffusers_adapter(state, meta, folder / "adapter_diffusers").parent,
                save_diffsynth_adapter(state, meta, folder / "dkt_lora_diffsynth.safetensors"))

