"""DKT's training objectives on VAE latents, with the conditioning exactly as at inference.

DiT input: ``cat([noisy depth latent, RGB latent, zeros], channels)`` (48
channels), the cached text context (1, 512, D) and the zero image context
(1, 257, image_dim), timestep ``sigma * 1000`` — the same call as
:meth:`dkt_perception.depth.engine.DKTDepthEngine.velocity`. Latents are the
VAE's latent mean, normalised with :func:`~dkt_perception.depth.wan_model.normalize_latents`.

* ``flow`` (the DKT recipe): ``u ~ U(0, 1)``, ``sigma = shift * u / (1 + (shift - 1) * u)``
  (the family :func:`~dkt_perception.depth.sampler.dkt_sigmas` samples from),
  ``x_t = (1 - sigma) * x0 + sigma * noise``, target ``noise - x0``, MSE.
* ``one_step`` (deterministic single-step fine-tuning, UniGeo sec. 4.4 after
  E2E-FT): sigma fixed at 1 (t = T), the noise replaced by its expectation (zero),
  and the Euler step's result ``x0_hat = x_t - sigma * v = -v`` regressed onto the
  GT latent with MSE. Such a model runs with ``steps=1`` and zero noise.
"""

from __future__ import annotations

import torch

from dkt_perception.depth.wan_model import normalize_latents


def encode_latents(vae, video: torch.Tensor) -> torch.Tensor:
    """Video (B, 3, F, h, w) in [-1, 1], F = 4N+1 -> normalised latent mean (B, 16, N+1, h/8, w/8), float32.

    The VAE is frozen: no gradients. Clips of a batch are independent along
    the batch dimension; the latent mean (no sampling) is used, as the engine does.
    """
    dtype = vae.encoder.conv_in.weight.dtype
    with torch.no_grad():
        z = vae.encode(video.to(dtype)).latent_dist.mode()
    return normalize_latents(vae, z.float())


def shifted_sigmas(batch: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """(batch,) float32 sigmas ``shift * u / (1 + (shift - 1) * u)`` with ``u ~ U(0, 1)`` (drawn on the CPU)."""
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return (shift * u / (1 + (shift - 1) * u)).float()


def dit_velocity(transformer, x: torch.Tensor, rgb_latents: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor,
                 image: torch.Tensor | None) -> torch.Tensor:
    """DiT output for noisy depth latents x and RGB latents (both (B, 16, T, h, w)), sigma (B,)."""
    b = x.shape[0]
    inner = getattr(transformer, "module", transformer)  # DDP/FSDP wrappers hide the DiT's attributes
    dtype = inner.patch_embedding.weight.dtype
    hidden = torch.cat([x, rgb_latents, torch.zeros_like(x)], dim=1).to(dtype)
    t = (sigma.double() * 1000.0).float().to(x.device)
    text_b = text.to(x.device, dtype).expand(b, -1, -1)
    image_b = None if image is None else image.to(x.device, dtype).expand(b, -1, -1)
    out = transformer(hidden_states=hidden, timestep=t, encoder_hidden_states=text_b, encoder_hidden_states_image=image_b, return_dict=False)[0]
    return out.float()


def flow_matching_loss(transformer, depth_latents: torch.Tensor, rgb_latents: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None,
                       *, shift: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE between the DiT velocity at a random shifted sigma and ``noise - x0``; returns (loss, sigmas)."""
    x0 = depth_latents.float()
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
    sigma = shifted_sigmas(x0.shape[0], shift, generator).to(x0.device)
    s = sigma.view(-1, 1, 1, 1, 1)
    x_t = (1.0 - s) * x0 + s * noise
    v = dit_velocity(transformer, x_t, rgb_latents, sigma, text, image)
    return torch.nn.functional.mse_loss(v, noise - x0), sigma


def one_step_loss(transformer, depth_latents: torch.Tensor, rgb_latents: torch.Tensor, text: torch.Tensor,
                  image: torch.Tensor | None) -> torch.Tensor:
    """Deterministic one-step objective: zero input at sigma 1, ``x0_hat = -v``, MSE against the GT latent."""
    x0 = depth_latents.float()
    sigma = torch.ones(x0.shape[0], device=x0.device)
    v = dit_velocity(transformer, torch.zeros_like(x0), rgb_latents, sigma, text, image)
    return torch.nn.functional.mse_loss(-v, x0)


def training_loss(objective: str, transformer, depth_latents: torch.Tensor, rgb_latents: torch.Tensor, text: torch.Tensor,
                  image: torch.Tensor | None, *, shift: float, generator: torch.Generator) -> torch.Tensor:
    """The configured objective's loss ('flow' or 'one_step')."""
    if objective == "flow":
        return flow_matching_loss(transformer, depth_latents, rgb_latents, text, image, shift=shift, generator=generator)[0]
    if objective == "one_step":
        return one_step_loss(transformer, depth_latents, rgb_latents, text, image)
    raise ValueError(f"objective must be 'flow' or 'one_step', got {objective!r}")
