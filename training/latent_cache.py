"""On-disk cache of VAE latents per clip, to skip the frozen VAE encoder on repeated clips.

A clip is identified by :func:`dkt_training.datasets.clip_key` (dataset, sequence,
start frame, frame count, flip, model size). With the cache on, random crop and
colour jitter are off (a cached latent cannot be re-augmented) and start frames
snap to ``cache_start_stride`` so clips repeat. Each entry is one safetensors
file (``rgb`` and ``depth``: normalised latents (16, T, h/8, w/8), float32 or
bfloat16 as stored), written atomically, so concurrent writers are safe.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dkt_stack.atomic_files import atomic_path


class LatentCache:
    """``get(key) -> (rgb, depth) | None`` and ``put(key, rgb, depth)``; tensors (16, T, h, w)."""

    def __init__(self, folder: str | Path, dtype: torch.dtype = torch.float32) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dtype = dtype
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        from safetensors.torch import load_file

        p = self.path(key)
        if not p.is_file():
            self.misses += 1
            return None
        t = load_file(str(p))
        self.hits += 1
        return t["rgb"].float(), t["depth"].float()

    def put(self, key: str, rgb: torch.Tensor, depth: torch.Tensor) -> Path:
        from safetensors.torch import save_file

        p = self.path(key)
        with atomic_path(p) as tmp:
            save_file({"rgb": rgb.detach().to("cpu", self.dtype).contiguous(), "depth": depth.detach().to("cpu", self.dtype).contiguous()}, str(tmp))
        return p
