"""The DKT backend: loads the networks per :class:`DepthConfig` and serves the depth interface."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.engine import DKTDepthEngine, Progress
from dkt_perception.depth.interface import DepthFrame, DepthResult, VideoDepth

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """'auto' -> CUDA bf16 when available, else CPU float32."""
    dev = torch.device("cuda" if (device == "auto" and torch.cuda.is_available()) else ("cpu" if device == "auto" else device))
    if dtype == "auto":
        return dev, torch.bfloat16 if dev.type == "cuda" else torch.float32
    return dev, getattr(torch, dtype)


def load_networks(config: DepthConfig, device: torch.device, dtype: torch.dtype):
    """(transformer, vae, text_context) per config: random weights, a diffusers export, or original files + LoRA."""
    from dkt_perception.depth import wan_model
    from dkt_perception.depth.conditioning import load_text_cache, random_text_context
    from dkt_perception.depth.weights import runtime_weights

    if config.random_weights:
        if config.lora_path:  # merge in float32 before casting, as for real weights
            net = wan_model.build_transformer(config.model, dtype=torch.float32, device="cpu", seed=config.seed)
            merge_extra_lora(net, config)
            net = wan_model.cast_model(net, dtype, device)
        else:
            net = wan_model.build_transformer(config.model, dtype=dtype, device=device, seed=config.seed)
        vae = wan_model.build_vae(config.model, dtype=torch.float32 if device.type == "cpu" else dtype, device=device, seed=config.seed + 1)
        return net, vae, random_text_context(net.config.text_dim, seed=config.seed)
    paths = runtime_weights(config.weights_dir or None)  # raises one clear MissingWeightsError
    if paths.diffusers_dir is not None:
        net, vae = wan_model.load_diffusers_folder(paths.diffusers_dir, dtype=torch.float32, device="cpu")
    else:
        net = wan_model.load_transformer_single_file(paths.dit, config.model, dtype=torch.float32)
        counts = wan_model.merge_dkt_lora(net, paths.lora)
        log.info("DKT LoRA %s: %d tensors merged", paths.lora.name, sum(counts.values()))
        vae = wan_model.load_vae_single_file(paths.vae, config.model, dtype=torch.float32)
    merge_extra_lora(net, config)
    net = wan_model.cast_model(net, dtype, device)
    vae = wan_model.cast_model(vae, dtype, device)
    text = load_text_cache(paths.text_cache, net.config.text_dim)
    return net, vae, text


def merge_extra_lora(net, config: DepthConfig) -> None:
    """Merge ``config.lora_path`` (a fine-tuned adapter, either format) into the float32 DiT before casting."""
    from dkt_perception.depth import wan_model

    if config.lora_path:
        counts = wan_model.merge_lora_adapter(net, config.lora_path, scale=config.lora_scale)
        log.info("extra LoRA %s (scale %g): %d tensors merged", config.lora_path, config.lora_scale, sum(counts.values()))


def apply_speed_options(net, config: DepthConfig) -> None:
    if config.attention_backend:
        net.set_attention_backend(config.attention_backend)  # note: diffusers also changes its global default
    if config.compile:
        net.compile_repeated_blocks(fullgraph=True)


class DKTBackend:
    """DKT-1.3B (or the tiny config) behind the depth interface."""

    name = "dkt"
    video_context = True

    def __init__(self, config: DepthConfig | None = None, *, networks=None) -> None:
        self.config = config or DepthConfig()
        dev, dtype = resolve_device(self.config.device, self.config.dtype)
        self.device = str(dev)
        net, vae, text = networks if networks is not None else load_networks(self.config, dev, dtype)
        apply_speed_options(net, self.config)
        c = self.config
        self.engine = DKTDepthEngine(net, vae, text, steps=c.steps, shift=c.shift, window=c.window, overlap=c.overlap,
                                     height=c.height, width=c.width, seed=c.seed, rotate_portrait=c.rotate_portrait,
                                     zero_noise=c.zero_noise)
        self._stream = self.engine.stream(stride=c.stream_stride, window=c.stream_window)

    def _results(self, items) -> list[DepthResult]:
        return [DepthResult(stamp, disp, timings, self.name) for stamp, disp, timings in items]

    def stream(self, frame: DepthFrame) -> list[DepthResult]:
        return self._results(self._stream.push(frame.rgb, frame.stamp_ns))

    def flush(self) -> list[DepthResult]:
        return self._results(self._stream.flush())

    def reset(self) -> None:
        self._stream.reset()

    @property
    def frames_encoded_per_frame(self) -> float:
        s = self._stream
        return s.frames_encoded / max(s.frames_pushed, 1)

    def infer_video(self, rgb: np.ndarray, raw_depth_m: np.ndarray | None = None) -> VideoDepth:
        disparity, timings = self.engine.infer_video(rgb)
        return VideoDepth(disparity, timings)

    def infer_frames(self, frames: Iterable[np.ndarray], *, timings: dict[str, float] | None = None,
                     progress: Progress | None = None) -> Iterator[np.ndarray]:
        """:meth:`infer_video`'s result frame by frame, from frames read lazily (see ``DKTDepthEngine.infer_frames``)."""
        return self.engine.infer_frames(frames, timings=timings, progress=progress)
