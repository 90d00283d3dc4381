"""Single-file loading, DKT LoRA merge, export round trip, and weight errors (tiny configs)."""

import copy
import re

import pytest
import torch
from safetensors.torch import save_file

from dkt_perception.depth import MissingWeightsError, WeightsError, wan_model
from dkt_perception.depth.conditioning import random_text_context
from dkt_perception.depth.weights import runtime_weights

# diffusers name -> original Wan name (inverse of diffusers' converter, written out plainly)
_TO_ORIGINAL = [
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("attn1", "self_attn"),
    ("attn2", "cross_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    (".add_k_proj.", ".k_img."),
    (".add_v_proj.", ".v_img."),
    (".norm_added_k.", ".norm_k_img."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
]


def to_original(sd):
    out = {}
    for key, value in sd.items():
        new = key
        for a, b in _TO_ORIGINAL:
            new = new.replace(a, b)
        new = re.sub(r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.norm3.", new)  # cross-attention norm is norm3 in Wan
        new = re.sub(r"^blocks\.(\d+)\.scale_shift_table$", r"blocks.\1.modulation", new)
        new = "head.modulation" if new == "scale_shift_table" else new
        out[new] = value.clone().contiguous()
    return out


def _forward(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 48, 2, 4, 6, generator=g)
    text = random_text_context(net.config.text_dim, seed=seed)
    img = torch.zeros(1, 257, net.config.image_dim)
    return net(x, torch.tensor([952.0]), text, img, return_dict=False)[0]


def test_single_file_dit_equals_direct(tiny_networks, tmp_path):
    net, _, _ = tiny_networks
    original = to_original(net.state_dict())
    assert "blocks.0.self_attn.q.weight" in original and "head.head.weight" in original
    path = tmp_path / "dit.safetensors"
    save_file(original, str(path))
    loaded = wan_model.load_transformer_single_file(path, "tiny")
    assert set(loaded.state_dict()) == set(net.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # weights are bit-identical; the forward may differ by float32 rounding (different tensor layouts after loading)
    assert torch.allclose(_forward(loaded), _forward(net), atol=1e-5)


def test_wrong_shape_checkpoint_is_a_clear_error(tiny_networks, tmp_path):
    net, _, _ = tiny_networks
    original = to_original(net.state_dict())
    original["blocks.0.self_attn.q.weight"] = torch.zeros(8, 8)
    path = tmp_path / "bad.safetensors"
    save_file(original, str(path))
    with pytest.raises(WeightsError, match=r"wrong shape.*attn1\.to_q\.weight"):
        wan_model.load_transformer_single_file(path, "tiny")
    # the real 1.3B config refuses the tiny checkpoint up front (no 1.5 B allocation)
    save_file(to_original(net.state_dict()), str(tmp_path / "tiny.safetensors"))
    with pytest.raises(WeightsError, match="does not match the 1.3b DiT"):
        wan_model.load_transformer_single_file(tmp_path / "tiny.safetensors", "1.3b")


def test_lora_merge_equals_w_plus_ba(tiny_networks, tmp_path):
    net, _, _ = tiny_networks
    g = torch.Generator().manual_seed(3)
    rank = 4
    targets = {  # original module -> diffusers module
        "blocks.0.self_attn.q": "blocks.0.attn1.to_q",
        "blocks.0.self_attn.o": "blocks.0.attn1.to_out.0",
        "blocks.1.cross_attn.k": "blocks.1.attn2.to_k",
        "blocks.1.cross_attn.k_img": "blocks.1.attn2.add_k_proj",
        "blocks.1.ffn.0": "blocks.1.ffn.net.0.proj",
        "blocks.0.ffn.2": "blocks.0.ffn.net.2",
    }
    lora, expected = {}, {}
    merged = copy.deepcopy(net)
    for i, (orig, diff) in enumerate(targets.items()):
        w = net.get_submodule(diff).weight
        a = torch.randn(rank, w.shape[1], generator=g)
        b = torch.randn(w.shape[0], rank, generator=g)
        # both spellings the release uses: with/without "diffusion_model." and ".default"
        prefix = "diffusion_model." if i % 2 else ""
        suffix = ".default" if i % 3 == 0 else ""
        lora[f"{prefix}{orig}.lora_A{suffix}.weight"] = a
        lora[f"{prefix}{orig}.lora_B{suffix}.weight"] = b
        expected[diff] = w + b @ a
    path = tmp_path / "dkt_lora.safetensors"
    save_file(lora, str(path))
    counts = wan_model.merge_dkt_lora(merged, path)
    assert sum(counts.values()) == len(targets)
    for diff, w in expected.items():
        assert torch.allclose(merged.get_submodule(diff).weight, w, atol=1e-6), diff
    untouched = "blocks.0.attn1.to_k"
    assert torch.equal(merged.get_submodule(untouched).weight, net.get_submodule(untouched).weight)


def test_lora_errors(tiny_networks):
    net = copy.deepcopy(tiny_networks[0])
    with pytest.raises(WeightsError, match="lacks lora_A or lora_B"):
        wan_model.merge_dkt_lora(net, {"blocks.0.self_attn.q.lora_A.weight": torch.zeros(2, 48)})
    with pytest.raises(WeightsError, match="does not have"):
        wan_model.merge_dkt_lora(net, {"blocks.9.self_attn.q.lora_A.weight": torch.zeros(2, 48), "blocks.9.self_attn.q.lora_B.weight": torch.zeros(48, 2)})


def test_export_round_trip(tiny_networks, tmp_path):
    net, vae, _ = tiny_networks
    wan_model.export_diffusers(net, vae, tmp_path / "diffusers")
    net2, vae2 = wan_model.load_diffusers_folder(tmp_path / "diffusers")
    assert torch.allclose(_forward(net2), _forward(net), atol=1e-5)
    assert all(torch.equal(vae2.state_dict()[k], v) for k, v in vae.state_dict().items())


def test_missing_weights_one_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        runtime_weights(tmp_path)
    msg = str(info.value)
    for name in ("diffusion_pytorch_model.safetensors", "Wan2.1_VAE.pth", "DKT-Depth-1-3B-v1.1/*.safetensors", "dkt_text_depth.safetensors"):
        assert name in msg
    assert f"dkt-stack weights fetch --dir {tmp_path}" in msg


def test_latent_normalisation_round_trip(tiny_networks):
    _, vae, _ = tiny_networks
    z = torch.randn(1, 16, 2, 3, 3, generator=torch.Generator().manual_seed(4))
    n = wan_model.normalize_latents(vae, z)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    assert torch.allclose(n, (z - mean) / std)
    assert torch.allclose(wan_model.denormalize_latents(vae, n), z, atol=1e-6)


def vae_to_original(sd):
    """diffusers AutoencoderKLWan keys -> Wan2.1_VAE.pth keys (inverse of diffusers' converter, written out)."""
    res = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma", "conv2": "residual.6",
           "conv_shortcut": "shortcut"}

    def resnet_part(rest):
        for a, b in res.items():
            if rest.startswith(a + ".") or rest == a:
                return b + rest[len(a):]
        raise AssertionError(rest)

    out = {}
    for key, value in sd.items():
        if m := re.match(r"^(encoder|decoder)\.conv_in\.(.+)$", key):
            new = f"{m[1]}.conv1.{m[2]}"
        elif m := re.match(r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)$", key):
            new = f"{m[1]}.middle.{2 * int(m[2])}.{resnet_part(m[3])}"
        elif m := re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(.+)$", key):
            new = f"{m[1]}.middle.1.{m[2]}"
        elif m := re.match(r"^(encoder|decoder)\.norm_out\.(.+)$", key):
            new = f"{m[1]}.head.0.{m[2]}"
        elif m := re.match(r"^(encoder|decoder)\.conv_out\.(.+)$", key):
            new = f"{m[1]}.head.2.{m[2]}"
        elif m := re.match(r"^(quant_conv|post_quant_conv)\.(.+)$", key):
            new = f"{'conv1' if m[1] == 'quant_conv' else 'conv2'}.{m[2]}"
        elif m := re.match(r"^encoder\.down_blocks\.(\d+)\.(resample|time_conv)(.*)$", key):
            new = f"encoder.downsamples.{m[1]}.{m[2]}{m[3]}"
        elif m := re.match(r"^encoder\.down_blocks\.(\d+)\.(.+)$", key):
            new = f"encoder.downsamples.{m[1]}.{resnet_part(m[2])}"
        elif m := re.match(r"^decoder\.up_blocks\.(\d)\.resnets\.(\d)\.(.+)$", key):
            new = f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.{resnet_part(m[3])}"
        elif m := re.match(r"^decoder\.up_blocks\.(\d)\.upsamplers\.0\.(.+)$", key):
            new = f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
        else:
            raise AssertionError(f"unmapped VAE key {key}")
        out[new] = value.clone()
    return out


def test_single_file_vae_equals_direct(tiny_networks, tmp_path):
    _, vae, _ = tiny_networks
    path = tmp_path / "Wan2.1_VAE.pth"
    torch.save(vae_to_original(vae.state_dict()), path)
    loaded = wan_model.load_vae_single_file(path, "tiny")
    assert set(loaded.state_dict()) == set(vae.state_dict())
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in vae.state_dict().items())
    x = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(loaded.encode(x).latent_dist.mode(), vae.encode(x).latent_dist.mode(), atol=1e-5)
    bad = vae_to_original(vae.state_dict())
    bad["conv2.weight"] = torch.zeros(16, 16, 1, 1, 2)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="post_quant_conv.weight"):
        wan_model.load_vae_single_file(tmp_path / "bad.pth", "tiny")
