"""Sampler sigmas and the sliding-window velocity blend, against plain reference code."""

import pytest
import torch

from dkt_perception.depth.sampler import DKT_SIGMAS_5, blended_velocity, dkt_sigmas, sample_flow_euler, window_starts


def test_sigmas_match_dkt_release():
    s = dkt_sigmas(5, 5.0)
    assert len(s) == 6 and s[-1] == 0.0
    assert torch.allclose(s[:-1], torch.tensor(DKT_SIGMAS_5, dtype=torch.float64), atol=5e-5)
    assert [round(float(v), 4) for v in s[:-1]] == [1.0, 0.9524, 0.8824, 0.7692, 0.5556]
    assert torch.allclose(dkt_sigmas(5, 5.0)[:-1] * 1000, torch.tensor([1000.0, 952.381, 882.353, 769.231, 555.556], dtype=torch.float64), atol=1e-3)


def test_sigmas_match_diffusers_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=5.0)
    sched.set_timesteps(sigmas=[1.0, 0.8, 0.6, 0.4, 0.2])
    assert torch.allclose(sched.sigmas.double(), dkt_sigmas(5, 5.0), atol=1e-6)


@pytest.mark.parametrize("steps", [0, 51])
def test_steps_out_of_range(steps):
    with pytest.raises(ValueError, match="1..50"):
        dkt_sigmas(steps)


def test_window_spans_like_release():
    # release: for t in range(0, T, stride): skip if the previous window already reached T
    for T in range(1, 80):
        ref = []
        for t in range(0, T, 18):
            if t - 18 >= 0 and t - 18 + 21 >= T:
                continue
            ref.append((t, min(t + 21, T)))
        assert window_starts(T, 21, 3) == ref


def _reference_blend(fn, x, cond, window, overlap):
    """Plain re-statement of DKT's blend: ramps (arange(o)+0.5)/o on interior edges, sum / weight sum."""
    T = x.shape[2]
    stride = window - overlap
    value = torch.zeros_like(x)
    weight = torch.zeros(T)
    t = 0
    while True:
        e = min(t + window, T)
        m = torch.ones(e - t)
        ramp = (torch.arange(overlap) + 0.5) / overlap
        if t > 0:
            m[:overlap] = ramp
        if e < T:
            m[-overlap:] = torch.flip(ramp, (0,))
        value[:, :, t:e] += fn(x[:, :, t:e], cond[:, :, t:e]) * m.view(1, 1, -1, 1, 1)
        weight[t:e] += m
        if e >= T:
            break
        t += stride
    return value / weight.view(1, 1, -1, 1, 1)


def _position_dependent_fn(xs, cs):
    # depends on the position inside the window, like the DiT's rotary embedding
    pos = torch.arange(xs.shape[2], dtype=xs.dtype).view(1, 1, -1, 1, 1)
    return torch.sin(xs * 3 + cs) + pos * 0.1


@pytest.mark.parametrize("T,window,overlap", [(30, 21, 3), (47, 21, 3), (13, 5, 2), (9, 4, 1)])
def test_blend_matches_reference(T, window, overlap):
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(1, 2, T, 3, 4, generator=g), torch.randn(1, 2, T, 3, 4, generator=g)
    got = blended_velocity(_position_dependent_fn, x, cond, window, overlap)
    ref = _reference_blend(_position_dependent_fn, x, cond, window, overlap)
    assert torch.allclose(got, ref, atol=1e-6)


def test_one_window_is_a_plain_call():
    g = torch.Generator().manual_seed(1)
    x, cond = torch.randn(1, 2, 21, 3, 4, generator=g), torch.randn(1, 2, 21, 3, 4, generator=g)
    assert torch.equal(blended_velocity(_position_dependent_fn, x, cond, 21, 3), _position_dependent_fn(x, cond))


def test_euler_integrates_constant_velocity_exactly():
    # x_t = (1 - s) x0 + s * noise has velocity noise - x0: Euler lands on x0 exactly
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(1, 2, 3, 4, 4, generator=g), torch.randn(1, 2, 3, 4, 4, generator=g)
    out = sample_flow_euler(lambda x, s: noise - x0, noise, dkt_sigmas(5))
    assert torch.allclose(out, x0, atol=1e-6)
