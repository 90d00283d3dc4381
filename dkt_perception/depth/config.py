"""DepthConfig: every knob of the depth backends, loadable with :func:`dkt_stack.config.from_dict`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dkt_stack.config import param


@dataclass
class DepthConfig:
    backend: Literal["dkt", "raw", "depth_anything_v2"] = param("dkt", help="depth backend name (see dkt_perception.depth.registry)")
    model: Literal["1.3b", "tiny"] = param("1.3b", help="DKT architecture: the real 1.3B model or the tiny test config")
    weights_dir: str = param("", help="folder with DKT weights; empty = $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights")
    random_weights: bool = param(False, help="build the DKT networks with random weights (benchmarks/tests; output is meaningless)")
    steps: int = param(5, help="denoising steps, 1..50 (DKT uses 5)")
    shift: float = param(5.0, help="flow-matching sigma shift (DKT uses 5)")
    window: int = param(21, help="offline: DiT window in latent frames (21 latents = 81 RGB frames)")
    overlap: int = param(3, help="offline: overlap between DiT windows in latent frames")
    stream_window: int = param(6, help="streaming: RGB latents the DiT sees per run (1 latent = 4 frames)")
    stream_stride: int = param(1, help="streaming: new latents between DiT runs (latency grows by 4 frames per step)")
    height: int = param(480, help="model input height in pixels (multiple of 16)")
    width: int = param(832, help="model input width in pixels (multiple of 16)")
    lora_path: str = param("", help="extra LoRA merged on top of the loaded weights: a DiffSynth .safetensors or a diffusers/peft adapter folder (dkt-stack train --export)")
    lora_scale: float = param(1.0, help="scale of the extra LoRA (lora_path)")
    zero_noise: bool = param(False, help="start sampling from zeros instead of seeded noise (one-step deterministic models, steps=1)")
    seed: int = param(1, help="noise seed (runs are deterministic for a given seed; the release uses 1)")
    rotate_portrait: bool = param(False, help="rotate portrait frames to landscape before the model (as the release does)")
    device: str = param("auto", help="'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = param("auto", help="'auto' = bfloat16 on CUDA, float32 on CPU")
    attention_backend: str = param("", help="diffusers attention backend ('flash', '_flash_3', 'sage', ...); empty = default SDPA")
    compile: bool = param(False, help="torch.compile the DiT's repeated blocks")
    depth_anything_model: str = param(
        "depth-anything/Depth-Anything-V2-Small-hf", help="HF id or local folder for depth_anything_v2 ($DKT_DEPTH_ANYTHING_MODEL replaces the default)"
    )
    depth_anything_size: int = param(518, help="depth_anything_v2 input size in pixels (shorter side, multiple of 14)")
