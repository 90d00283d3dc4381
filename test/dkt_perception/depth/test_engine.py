"""DKT engine on the tiny config: determinism, shapes, windowing, streaming, input errors."""

import numpy as np
import pytest
import torch

from dkt_perception.depth import DepthConfig, DepthFrame, DepthInputError
from dkt_perception.depth.dkt_backend import DKTBackend
from dkt_perception.depth.engine import DKTDepthEngine, fit_scale_shift
from dkt_perception.depth.preprocess import padded_frame_count, rgb_to_model
from dkt_perception.depth.sampler import initial_noise, sample_flow_euler
from dkt_perception.depth.vae_stream import CausalEncoderStream
from dkt_perception.depth.wan_model import normalize_latents


def _video(n, h=24, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _backend(tiny_networks, **kw):
    args = dict(model="tiny", height=32, width=48, steps=2, window=3, overlap=1, stream_window=3, device="cpu")
    cfg = DepthConfig(**{**args, **kw})
    return DKTBackend(cfg, networks=tiny_networks)


@pytest.mark.parametrize("n,h,w", [(1, 24, 40), (5, 17, 31), (8, 24, 40), (30, 9, 13)])
def test_output_has_input_length_and_size(tiny_networks, n, h, w):
    out = _backend(tiny_networks).infer_video(_video(n, h, w))
    assert out.disparity.shape == (n, h, w) and out.disparity.dtype == np.float32
    assert np.isfinite(out.disparity).all() and out.disparity.min() >= 0 and out.disparity.max() <= 1
    assert set(out.timings_ms) >= {"encode", "denoise", "decode", "total"}


def test_seeded_runs_identical_and_seed_matters(tiny_networks):
    v = _video(6)
    a = _backend(tiny_networks).infer_video(v).disparity
    b = _backend(tiny_networks).infer_video(v).disparity
    c = _backend(tiny_networks, seed=7).infer_video(v).disparity
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_output_not_quantised(tiny_networks):
    d = _backend(tiny_networks).infer_video(_video(5, 32, 48)).disparity
    assert len(np.unique(d)) > 1000
    frac = d * 255 - np.round(d * 255)
    assert np.mean(np.abs(frac) > 1e-3) > 0.9  # not multiples of 1/255


def _direct_latents(engine, rgb):
    """Reference: whole-video VAE encode, one DiT call per step over all latents (no windows)."""
    video, _ = rgb_to_model(rgb, engine.height, engine.width)
    idx = list(range(len(rgb))) + [len(rgb) - 1] * (padded_frame_count(len(rgb)) - len(rgb))
    z = engine.vae.encode(video[:, :, idx]).latent_dist.mode()
    cond = normalize_latents(engine.vae, z)
    noise = initial_noise(tuple(cond.shape), engine.seed)
    return cond, noise, sample_flow_euler(lambda x, s: engine.velocity(x, cond, s), noise, engine.sigmas)


def test_one_window_equals_unwindowed(tiny_networks):
    net, vae, text = tiny_networks
    engine = DKTDepthEngine(net, vae, text, steps=3, window=21, overlap=3, height=32, width=48)
    rgb = _video(9)
    cond, noise, ref = _direct_latents(engine, rgb)
    enc = CausalEncoderStream(vae).encode_video(rgb_to_model(rgb, 32, 48)[0])
    assert torch.equal(normalize_latents(vae, enc), cond)
    assert torch.equal(engine.sample_depth_latents(cond, noise), ref)


def test_windowed_blend_on_long_video_matches_reference(tiny_networks):
    net, vae, text = tiny_networks
    engine = DKTDepthEngine(net, vae, text, steps=2, window=3, overlap=1, height=32, width=48)
    g = torch.Generator().manual_seed(5)
    cond, noise = torch.randn(1, 16, 8, 4, 6, generator=g), torch.randn(1, 16, 8, 4, 6, generator=g)
    x = noise.clone()
    sig = engine.sigmas
    for i in range(len(sig) - 1):  # plain re-statement: windows [0,3) [2,5) [4,7) [6,8), ramp 0.5 on interior edges
        total, weight = torch.zeros_like(x), torch.zeros(8)
        for s, e in [(0, 3), (2, 5), (4, 7), (6, 8)]:
            w = torch.ones(e - s)
            if s > 0:
                w[0] = 0.5
            if e < 8:
                w[-1] = 0.5
            total[:, :, s:e] += engine.velocity(x[:, :, s:e], cond[:, :, s:e], sig[i]) * w.view(1, 1, -1, 1, 1)
            weight[s:e] += w
        x = x + total / weight.view(1, 1, -1, 1, 1) * float(sig[i + 1] - sig[i])
    assert torch.allclose(engine.sample_depth_latents(cond, noise), x, atol=1e-5)


def test_streaming_emits_every_frame_once_and_encodes_once(tiny_networks):
    b = _backend(tiny_networks)
    v = _video(11)
    got = []
    per_push = []
    for i, f in enumerate(v):
        r = b.stream(DepthFrame(f, 1000 + i))
        per_push.append(len(r))
        got += r
    assert per_push[0] == 1  # frame 1 alone is the first latent
    assert per_push[1:5] == [0, 0, 0, 4]  # then one result batch per 4-frame chunk
    got += b.flush()
    assert [r.stamp_ns for r in got] == [1000 + i for i in range(11)]
    assert all(r.disparity.shape == (24, 40) and r.disparity.dtype == np.float32 and r.backend == "dkt" for r in got)
    assert b._stream.frames_encoded == 0  # flush resets for the next sequence
    for i, f in enumerate(v[:5]):
        b.stream(DepthFrame(f, i))
    assert b.frames_encoded_per_frame == 1.0


def test_stream_encode_matches_offline_encode(tiny_networks):
    b = _backend(tiny_networks)
    v = _video(9)
    for i, f in enumerate(v):
        b.stream(DepthFrame(f, i))
    streamed = torch.cat([lat.rgb for lat in b._stream._latents], 2)
    full = normalize_latents(b.engine.vae, CausalEncoderStream(b.engine.vae).encode_video(rgb_to_model(v, 32, 48)[0]))
    assert torch.equal(streamed, full)


def test_fit_scale_shift_exact():
    p = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    s, t = fit_scale_shift(p, 2.5 * p - 0.3)
    assert abs(s - 2.5) < 1e-6 and abs(t + 0.3) < 1e-6


def test_bad_inputs(tiny_networks):
    b = _backend(tiny_networks)
    with pytest.raises(DepthInputError, match="non-empty"):
        b.infer_video(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(DepthInputError, match="uint8"):
        b.infer_video(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(DepthInputError, match="grayscale"):
        b.infer_video(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DepthInputError, match="grayscale"):
        b.stream(DepthFrame(np.zeros((8, 8, 1), np.uint8), 0))
    with pytest.raises(DepthInputError, match=r"\(N, H, W, 3\)"):
        b.infer_video(np.zeros((2, 8, 8, 4), np.uint8))
    b.stream(DepthFrame(_video(1)[0], 0))
    with pytest.raises(DepthInputError, match="size changed"):
        b.stream(DepthFrame(_video(1, 20, 40)[0], 1))
    with pytest.raises(DepthInputError, match="multiples of 16"):
        _backend(tiny_networks, height=30)
