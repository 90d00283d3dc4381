"""The causal chunked VAE equals the full diffusers pass."""

import torch

from dkt_perception.depth.vae_stream import CausalDecoderStream, CausalEncoderStream


def test_stream_encode_equals_full_encode(tiny_networks):
    _, vae, _ = tiny_networks
    x = torch.rand(1, 3, 9, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    full = vae.encode(x).latent_dist.mode()
    enc = CausalEncoderStream(vae)
    pieces = [enc.push(x[:, :, :1])] + [enc.push(x[:, :, i : i + 4]) for i in (1, 5)]
    assert torch.equal(torch.cat(pieces, 2), full)
    # a prefix gives the same leading latents (causality)
    assert torch.equal(CausalEncoderStream(vae).encode_video(x[:, :, :5]), full[:, :, :2])


def test_stream_decode_equals_full_decode_and_fork(tiny_networks):
    _, vae, _ = tiny_networks
    z = torch.randn(1, 16, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    full = vae.decode(z).sample
    dec = CausalDecoderStream(vae)
    assert torch.equal(torch.cat(list(dec.decode_video(z)), 2), full)
    dec.reset()
    dec.push(z[:, :, :1])
    snap = dec.snapshot()
    a = dec.push(z[:, :, 1:2])
    dec.restore(snap)
    assert torch.equal(dec.push(z[:, :, 1:2]), a)
    assert torch.equal(dec.push(z[:, :, 2:3]), full[:, :, 5:9])
