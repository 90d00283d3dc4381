"""DKT's flow-matching Euler sampler and the latent sliding window.

Sigmas (DKT release, 5 steps): ``linspace(1, 0, steps + 1)[:-1]`` shifted by
``s' = shift * s / (1 + (shift - 1) * s)`` with shift 5, i.e.
``[1.0, 0.9524, 0.8824, 0.7692, 0.5556]``, then 0. The DiT sees
``timestep = sigma * 1000`` and predicts the velocity ``v = noise - x0``; one
Euler step is ``x <- x + v * (sigma_next - sigma)``.

Long videos: at every step the DiT runs on windows of ``window`` latent frames
(stride ``window - overlap``); each window's velocity is weighted by a ramp
``(arange(overlap) + 0.5) / overlap`` on its interior edges (1 elsewhere) and
the weighted sum is divided by the weight sum. A video that fits in one window
is a single plain DiT call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: DKT's default schedule (5 steps, shift 5), rounded to 4 decimals as in FACTS.
DKT_SIGMAS_5 = (1.0, 0.9524, 0.8824, 0.7692, 0.5556)


def dkt_sigmas(steps: int = 5, shift: float = 5.0) -> torch.Tensor:
    """The ``steps + 1`` sigmas (float64, last one 0) of DKT's shifted flow-matching schedule."""
    if not 1 <= int(steps) <= 50:
        raise ValueError(f"steps must be in 1..50, got {steps}")
    base = torch.linspace(1.0, 0.0, int(steps) + 1, dtype=torch.float64)[:-1]
    shifted = shift * base / (1 + (shift - 1) * base)
    return torch.cat([shifted, torch.zeros(1, dtype=torch.float64)])


def window_starts(length: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) latent index ranges covering ``length`` latents with stride ``window - overlap``.

    The last window ends at ``length`` (it may be shorter than ``window``); a new
    window is only opened while the previous one has not reached the end.
    """
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    stride = window - overlap
    spans = []
    start = 0
    while True:
        end = min(start + window, length)
        spans.append((start, end))
        if end >= length:
            return spans
        start += stride


def window_weights(size: int, left_interior: bool, right_interior: bool, overlap: int) -> torch.Tensor:
    """Per-latent blend weight (float32, ``size``) of one window: ramps on interior edges, 1 elsewhere."""
    w = torch.ones(size, dtype=torch.float32)
    if overlap == 0:
        return w
    ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
    if left_interior:
        w[:overlap] = ramp[: min(overlap, size)]
    if right_interior:
        w[-overlap:] = ramp.flip(0)[-min(overlap, size) :]
    return w


def blended_velocity(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    cond: torch.Tensor,
    window: int,
    overlap: int,
) -> torch.Tensor:
    """Velocity over all latents from per-window calls ``velocity_fn(x[:, :, s:e], cond[:, :, s:e])``, blended."""
    length = x.shape[2]
    if length <= window:
        return velocity_fn(x, cond)
    total = torch.zeros_like(x, dtype=torch.float32)
    weight = torch.zeros(length, dtype=torch.float32, device=x.device)
    for start, end in window_starts(length, window, overlap):
        w = window_weights(end - start, start > 0, end < length, overlap).to(x.device)
        v = velocity_fn(x[:, :, start:end], cond[:, :, start:end]).float()
        total[:, :, start:end] += v * w.view(1, 1, -1, 1, 1)
        weight[start:end] += w
    return (total / weight.view(1, 1, -1, 1, 1)).to(x.dtype)


def initial_noise(shape: tuple[int, ...], seed: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from ``seed`` (device-independent, like the release), then moved."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)


def sample_flow_euler(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    sigmas: torch.Tensor,
) -> torch.Tensor:
    """Euler integration from ``noise`` at ``sigmas[0]`` to ``sigmas[-1]``; ``velocity_fn(x, sigma)``."""
    x = noise
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        v = velocity_fn(x, torch.tensor(sigma, dtype=torch.float64))
        x = (x.float() + v.float() * (sigma_next - sigma)).to(noise.dtype)
    return x
