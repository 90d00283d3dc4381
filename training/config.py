"""TrainConfig: every knob of DKT LoRA fine-tuning, loaded with the stack's one config loader.

    from dkt_training.config import load_train_config
    cfg = load_train_config("training/configs/dkt_1.3b_paper.yaml")

Relative paths in a train config (``data``, ``val_data``) are resolved against
the config file's folder; ``output_dir`` is relative to the working directory.
The dataset manifest format is described in :mod:`dkt_training.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dkt_stack.config import ConfigError, from_dict, load_yaml, param

#: LoRA targets (diffusers module-name suffixes): every attention and FFN projection of the DiT blocks.
ATTENTION_FFN_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
#: the image branch's extra cross-attention projections (Wan2.1-Fun-Control has them; DKT feeds zeros there)
IMAGE_BRANCH_TARGETS = ["add_k_proj", "add_v_proj"]
DEFAULT_TARGETS = ATTENTION_FFN_TARGETS + IMAGE_BRANCH_TARGETS


@dataclass
class LoraSettings:
    rank: int = param(128, help="LoRA rank r (the DKT release's run name suggests 128)")
    alpha: float = param(128.0, help="LoRA alpha; the adapter's update is scaled by alpha / rank")
    target_modules: list[str] = param(default_factory=lambda: list(DEFAULT_TARGETS),
                                      help="diffusers module-name suffixes that get a LoRA (default: all attention + FFN projections)")
    dropout: float = param(0.0, help="LoRA dropout probability")

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"must be >= 1, got {self.rank}", key="lora.rank")
        if self.alpha <= 0:
            raise ConfigError(f"must be > 0, got {self.alpha}", key="lora.alpha")
        if not self.target_modules:
            raise ConfigError("needs at least one module name", key="lora.target_modules")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.dropout}", key="lora.dropout")


#: named LoRA presets (``lora_preset:`` in a config fills ``lora:`` fields that the config does not set)
LORA_PRESETS: dict[str, dict] = {
    "rank128": {"rank": 128, "alpha": 128.0, "target_modules": list(DEFAULT_TARGETS)},
    "rank32": {"rank": 32, "alpha": 32.0, "target_modules": list(DEFAULT_TARGETS)},
    "attention_only": {"rank": 64, "alpha": 64.0, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]},
}


@dataclass
class AugmentSettings:
    hflip_prob: float = param(0.5, help="probability of a horizontal flip (RGB and depth together, whole clip)")
    crop_min_scale: float = param(0.8, help="random crop side as a fraction of the frame side, drawn in [this, 1]; 1 = no crop")
    brightness: float = param(0.2, help="colour jitter on RGB only: brightness factor drawn in [1 - b, 1 + b]")
    contrast: float = param(0.2, help="colour jitter on RGB only: contrast factor drawn in [1 - c, 1 + c]")
    saturation: float = param(0.2, help="colour jitter on RGB only: saturation factor drawn in [1 - s, 1 + s]")
    disparity_percentiles: tuple[float, float] = param((2.0, 98.0), help="masked percentiles mapped to -1 / +1 when normalising a clip's disparity")

    def __post_init__(self) -> None:
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {self.hflip_prob}", key="augment.hflip_prob")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {self.crop_min_scale}", key="augment.crop_min_scale")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"must be in [0, 1), got {getattr(self, name)}", key=f"augment.{name}")
        lo, hi = self.disparity_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ConfigError(f"need 0 <= low < high <= 100, got {self.disparity_percentiles}", key="augment.disparity_percentiles")


@dataclass
class TrainConfig:
    data: str = param(help="dataset manifest (YAML); relative to this config file")
    val_data: str = param("", help="validation manifest (sequences with metric depth); empty = no validation")
    output_dir: str = param("runs/dkt_lora", help="checkpoints, exported adapters and the metrics log go here")
    model: Literal["1.3b", "tiny"] = param("1.3b", help="DiT/VAE architecture: the real 1.3B model or the tiny test config")
    weights_dir: str = param("", help="DKT weights folder (see dkt_perception.depth.weights); empty = the default location")
    random_weights: bool = param(False, help="random base weights (tests, benchmarks); output is meaningless")
    start_from: Literal["dkt", "base"] = param("dkt", help="'dkt': base + the release LoRA merged (fine-tune DKT); 'base': Wan2.1-Fun-1.3B-Control only")
    objective: Literal["flow", "one_step"] = param("flow", help="'flow': flow matching (noise - x0, MSE); 'one_step': deterministic t=T, zero noise, x0 loss")
    shift: float = param(5.0, help="sigma shift of the timestep distribution (same family as the sampler's, DKT uses 5)")
    height: int = param(480, help="training frame height in pixels (multiple of 16)")
    width: int = param(832, help="training frame width in pixels (multiple of 16)")
    max_latent_n: int = param(5, help="frames per batch F = 4N + 1 with N ~ U{0..max_latent_n} (paper: 5, i.e. 1..21 frames)")
    batch_size: int = param(1, help="clips per micro-batch per process")
    grad_accum: int = param(1, help="micro-batches per optimizer step (effective batch = batch_size * grad_accum * processes)")
    max_steps: int = param(70000, help="optimizer steps (defines the LR schedule; --max-steps only stops early)")
    lr: float = param(1e-5, help="AdamW learning rate")
    weight_decay: float = param(0.0, help="AdamW weight decay")
    betas: tuple[float, float] = param((0.9, 0.999), help="AdamW betas")
    lr_schedule: Literal["constant", "cosine", "linear"] = param("constant", help="LR schedule after warm-up")
    warmup_steps: int = param(0, help="linear LR warm-up steps")
    max_grad_norm: float = param(1.0, help="gradient clipping norm (0 = off)")
    mixed_precision: Literal["auto", "no", "bf16"] = param("auto", help="'auto' = bf16 autocast on CUDA, float32 on CPU")
    gradient_checkpointing: bool = param(True, help="recompute DiT block activations in the backward pass")
    seed: int = param(0, help="seed of the batch plan, augmentations, noise and timesteps (runs are deterministic)")
    num_workers: int = param(2, help="data-loading worker processes (0 = load in the main process)")
    lora_preset: str = param("", help=f"named LoRA preset filling unset lora fields: {', '.join(LORA_PRESETS)}; empty = none")
    lora: LoraSettings = param(default_factory=LoraSettings, help="LoRA rank, alpha, targets")
    augment: AugmentSettings = param(default_factory=AugmentSettings, help="geometry-preserving augmentations")
    cache_latents: bool = param(False, help="store VAE latents per clip on disk and reuse them (crop and colour jitter are then off)")
    latent_cache_dir: str = param("", help="latent cache folder; empty = OUTPUT_DIR/latent_cache")
    cache_start_stride: int = param(8, help="with cache_latents: clip start frames are multiples of this (more cache hits)")
    log_every: int = param(10, help="steps between progress-bar/metrics-log updates")
    checkpoint_every: int = param(1000, help="steps between checkpoints (the final step is always saved)")
    keep_checkpoints: int = param(3, help="checkpoints kept on disk (oldest deleted first)")
    val_every: int = param(1000, help="steps between validations (0 = only at the end)")
    val_steps: int = param(5, help="sampler steps used by validation inference")
    val_max_frames: int = param(21, help="frames per validation sequence (from its start)")
    val_depth_min_m: float = param(0.1, help="validation: GT depth below this (metres) is ignored")
    val_depth_max_m: float = param(10.0, help="validation: GT depth above this (metres) is ignored")
    device: str = param("auto", help="'auto' (accelerate's device), 'cpu' or 'cuda'")

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if v <= 0 or v % 16:
                raise ConfigError(f"must be a positive multiple of 16, got {v}", key=name)
        positive = ("batch_size", "grad_accum", "max_steps", "log_every", "checkpoint_every", "keep_checkpoints", "val_steps",
                    "val_max_frames", "cache_start_stride")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        for name in ("warmup_steps", "val_every", "num_workers", "max_latent_n"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", key=name)
        if self.max_latent_n > 20:
            raise ConfigError(f"must be <= 20 (81 frames), got {self.max_latent_n}", key="max_latent_n")
        if self.lr <= 0:
            raise ConfigError(f"must be > 0, got {self.lr}", key="lr")
        if self.shift <= 0:
            raise ConfigError(f"must be > 0, got {self.shift}", key="shift")
        if self.lora_preset and self.lora_preset not in LORA_PRESETS:
            raise ConfigError(f"unknown preset {self.lora_preset!r}; expected one of {', '.join(LORA_PRESETS)}", key="lora_preset")


def load_train_config(path: str | Path) -> TrainConfig:
    """Load a train config; relative ``data``/``val_data`` are resolved against the file's folder.

    A ``lora_preset`` fills the ``lora`` fields the file does not set itself.
    """
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}", source=path)
    preset = raw.get("lora_preset") or ""
    if preset:
        if preset not in LORA_PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(LORA_PRESETS)}", source=path, key="lora_preset")
        lora = raw.get("lora") or {}
        if not isinstance(lora, dict):
            raise ConfigError(f"expected a mapping, got {type(lora).__name__}", source=path, key="lora")
        raw = {**raw, "lora": {**LORA_PRESETS[preset], **lora}}
    try:
        cfg = from_dict(TrainConfig, raw, source=path)
    except ConfigError as exc:
        if exc.source is None:  # raised inside a __post_init__: add the file name
            raise ConfigError(str(exc).split(": ", 1)[-1], source=path, key=exc.key) from exc
        raise
    base = path.resolve().parent
    for name in ("data", "val_data"):
        value = getattr(cfg, name)
        if value and not Path(value).is_absolute():
            setattr(cfg, name, str(base / value))
    return cfg


__all__ = ["DEFAULT_TARGETS", "LORA_PRESETS", "AugmentSettings", "LoraSettings", "TrainConfig", "load_train_config"]
