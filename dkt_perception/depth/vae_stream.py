"""Causal, chunked use of the Wan VAE through its feature cache: the ONE place that touches it.

The Wan VAE is causal in time: frame 0 is encoded alone into latent 0, then
every 4 frames give one more latent, and each chunk only needs a small cache of
the previous chunk's conv inputs. diffusers keeps that cache in private
attributes (``_enc_feat_map``/``_enc_conv_idx`` for the encoder, ``_feat_map``/
``_conv_idx`` for the decoder, reset by ``clear_cache()``). Here each stream owns
its own cache list and calls the VAE's encoder/decoder sub-modules exactly the
way ``AutoencoderKLWan._encode/_decode`` do, so

* encoding a video chunk by chunk equals the full ``vae.encode`` (latent mean),
* decoding latent by latent equals the full ``vae.decode``,
* memory does not grow with video length, and
* several streams (offline, live camera) can share one VAE object.

If diffusers changes its cache layout, this module is what needs updating.
"""

from __future__ import annotations

import torch


def _causal_conv_count(module: torch.nn.Module) -> int:
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    return sum(isinstance(m, WanCausalConv3d) for m in module.modules())


class CausalEncoderStream:
    """Encode RGB video chunk by chunk: first chunk 1 frame, then 4 frames per chunk.

    Input chunks: float (1, 3, F, H, W) in [-1, 1]. Output: the raw latent mean
    (1, 16, 1, H/8, W/8) per chunk (not normalised; see ``normalize_latents``).
    """

    def __init__(self, vae) -> None:
        if getattr(vae.config, "patch_size", None) is not None:
            raise ValueError("patchified (Wan2.2) VAEs are not supported by the causal stream")
        self.vae = vae
        self._count = _causal_conv_count(vae.encoder)
        self.reset()

    def reset(self) -> None:
        self._feat_map: list = [None] * self._count
        self.chunks_done = 0

    @property
    def frames_expected(self) -> int:
        """Frames the next chunk must contain (1 for the very first chunk, 4 afterwards)."""
        return 1 if self.chunks_done == 0 else 4

    @torch.no_grad()
    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        if chunk.shape[2] != self.frames_expected:
            raise ValueError(f"causal VAE chunk {self.chunks_done} needs {self.frames_expected} frames, got {chunk.shape[2]}")
        out = self.vae.encoder(chunk, feat_cache=self._feat_map, feat_idx=[0])
        self.chunks_done += 1
        moments = self.vae.quant_conv(out)
        return moments[:, : self.vae.config.z_dim]  # latent mean (the release uses the mean, no sampling)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """All latents of a (1, 3, 4N+1, H, W) video, chunk by chunk (from a fresh cache)."""
        frames = video.shape[2]
        if (frames - 1) % 4:
            raise ValueError(f"the causal VAE needs 4N+1 frames, got {frames}")
        self.reset()
        latents = [self.push(video[:, :, :1])]
        latents += [self.push(video[:, :, i : i + 4]) for i in range(1, frames, 4)]
        self.reset()
        return torch.cat(latents, dim=2)


class CausalDecoderStream:
    """Decode latents one at a time: latent 0 -> 1 frame, every later latent -> 4 frames.

    Input: raw (de-normalised) latents (1, 16, 1, h, w). Output: (1, 3, F, 8h, 8w)
    clamped to [-1, 1], exactly as ``vae.decode``. ``snapshot()``/``restore()``
    fork the cache (the decoder replaces cache entries, never edits them in
    place, so a shallow copy of the list is a complete snapshot).
    """

    def __init__(self, vae) -> None:
        self.vae = vae
        self._count = _causal_conv_count(vae.decoder)
        self.reset()

    def reset(self) -> None:
        self._feat_map: list = [None] * self._count
        self.latents_done = 0

    def snapshot(self) -> tuple[list, int]:
        return list(self._feat_map), self.latents_done

    def restore(self, state: tuple[list, int]) -> None:
        self._feat_map, self.latents_done = list(state[0]), state[1]

    @torch.no_grad()
    def push(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.shape[2] != 1:
            raise ValueError(f"decode one latent frame at a time, got {latent.shape[2]}")
        x = self.vae.post_quant_conv(latent)
        out = self.vae.decoder(x, feat_cache=self._feat_map, feat_idx=[0], first_chunk=self.latents_done == 0)
        self.latents_done += 1
        return out.clamp(-1.0, 1.0)

    def decode_video(self, latents: torch.Tensor):
        """Yield the decoded frames of each latent of (1, 16, T, h, w) in order (fresh cache)."""
        self.reset()
        for i in range(latents.shape[2]):
            yield self.push(latents[:, :, i : i + 1])
        self.reset()
