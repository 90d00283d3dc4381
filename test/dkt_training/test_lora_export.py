"""LoRA on the DiT, and adapters in diffusers and DiffSynth format round-tripping into the engine."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dkt_perception.depth import DepthConfig, wan_model
from dkt_perception.depth.conditioning import random_text_context
from dkt_perception.depth.dkt_backend import DKTBackend
from dkt_training.config import LoraSettings
from dkt_training.lora import (
    AdapterError,
    adapter_metadata,
    add_lora,
    export_adapter,
    lora_state_dict,
    read_diffusers_adapter,
    save_diffsynth_adapter,
    save_diffusers_adapter,
    wan_module_name,
)

SETTINGS = LoraSettings(rank=4, alpha=8.0)  # scaling alpha / r = 2


def _trained_like_net(seed=1):
    """The tiny DiT as DepthConfig(seed=1, random_weights=True) builds it, plus a LoRA with non-zero B."""
    net = wan_model.build_transformer("tiny", seed=seed)
    add_lora(net, SETTINGS)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net


def _forward(net):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 48, 2, 4, 6, generator=g)
    with torch.no_grad():
        return net(x, torch.tensor([700.0]), random_text_context(32, seed=1), torch.zeros(1, 257, 16), return_dict=False)[0]


def test_only_lora_weights_train_on_every_attention_and_ffn_projection():
    net = wan_model.build_transformer("tiny", seed=0)
    names = add_lora(net, SETTINGS)
    assert names == [n for n, p in net.named_parameters() if p.requires_grad]
    modules = {n.split(".lora_")[0] for n in names}
    # 2 blocks x (self-attn q,k,v,o + cross-attn q,k,v,o,k_img,v_img + ffn in/out) = 24 modules, A and B each
    assert len(modules) == 24 and len(names) == 48
    assert "blocks.1.attn2.add_v_proj" in modules and "blocks.0.ffn.net.0.proj" in modules
    assert all(p.dtype == torch.float32 for n, p in net.named_parameters() if "lora_" in n)
    with pytest.raises(AdapterError, match="target_modules"):
        add_lora(wan_model.build_transformer("tiny", seed=0), LoraSettings(rank=2, alpha=2.0, target_modules=["no_such_proj"]))


def test_diffsynth_names_invert_the_engine_converter():
    assert wan_module_name("blocks.3.attn1.to_out.0") == "blocks.3.self_attn.o"
    assert wan_module_name("blocks.0.attn2.add_k_proj") == "blocks.0.cross_attn.k_img"
    assert wan_module_name("blocks.2.ffn.net.0.proj") == "blocks.2.ffn.0"
    assert wan_module_name("proj_out") == "head.head"
    with pytest.raises(AdapterError, match="no DiffSynth name"):
        wan_module_name("condition_embedder.image_embedder.ff.net.0.proj")


def test_both_formats_reproduce_the_peft_model_when_merged(tmp_path):
    net = _trained_like_net()
    reference = _forward(net)
    state, meta = lora_state_dict(net), adapter_metadata(SETTINGS)
    folder = save_diffusers_adapter(state, meta, tmp_path / "diffusers").parent
    single = save_diffsynth_adapter(state, meta, tmp_path / "dkt_lora.safetensors")

    ds = load_file(str(single))
    assert "blocks.0.self_attn.q.lora_A.default.weight" in ds and len(ds) == 48
    torch.testing.assert_close(ds["blocks.0.self_attn.q.lora_B.default.weight"], 2.0 * state["blocks.0.attn1.to_q.lora_B.weight"])
    _, read_meta = read_diffusers_adapter(folder)
    assert (read_meta["r"], read_meta["lora_alpha"]) == (4, 8.0)

    merged = {}
    for name, path in (("diffusers", folder), ("diffsynth", single)):
        base = wan_model.build_transformer("tiny", seed=1)
        counts = wan_model.merge_lora_adapter(base, path)
        assert sum(counts.values()) == 24
        assert not any("lora" in n for n, _ in base.named_parameters())
        torch.testing.assert_close(_forward(base), reference, atol=2e-5, rtol=0)
        merged[name] = base.state_dict()
    for k in merged["diffusers"]:
        torch.testing.assert_close(merged["diffusers"][k], merged["diffsynth"][k], atol=1e-6, rtol=0)


def test_exported_adapter_changes_the_engine_output(tmp_path):
    net = _trained_like_net()
    state, meta = lora_state_dict(net), adapter_metadata(SETTINGS)
    folder = save_diffusers_adapter(state, meta, tmp_path / "ckpt" / "adapter").parent
    (tmp_path / "ckpt" / "training_state.pt").write_bytes(b"")  # export_adapter only reads adapter/
    single = export_adapter(tmp_path / "ckpt", "diffsynth", tmp_path / "out.safetensors")
    again = export_adapter(tmp_path / "ckpt", "diffusers", tmp_path / "out_diffusers")
    assert (again / "pytorch_lora_weights.safetensors").is_file() and folder.is_dir()

    rgb = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    common = dict(model="tiny", random_weights=True, height=32, width=48, steps=2, seed=1)
    base = DKTBackend(DepthConfig(**common)).infer_video(rgb).disparity
    outs = {fmt: DKTBackend(DepthConfig(**common, lora_path=str(p))).infer_video(rgb).disparity
            for fmt, p in (("diffusers", again), ("diffsynth", single))}
    # the engine running the unmerged peft model is the reference
    peft_engine = DKTBackend(DepthConfig(**common), networks=(net, wan_model.build_vae("tiny", seed=2), random_text_context(32, seed=1)))
    reference = peft_engine.infer_video(rgb).disparity
    for out in outs.values():
        assert np.abs(out - base).max() > 1e-3
        np.testing.assert_allclose(out, reference, atol=1e-4)


def test_adapter_errors(tmp_path):
    with pytest.raises(AdapterError, match="no adapter"):
        read_diffusers_adapter(tmp_path)
    from safetensors.torch import save_file

    save_file({"blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 48)}, str(tmp_path / "pytorch_lora_weights.safetensors"))
    with pytest.raises(AdapterError, match="lora_adapter_metadata"):
        read_diffusers_adapter(tmp_path)
    with pytest.raises(AdapterError, match=r"\.safetensors"):
        save_diffsynth_adapter({}, adapter_metadata(SETTINGS), tmp_path / "x.bin")
    assert json.loads(json.dumps(adapter_metadata(SETTINGS)))["target_modules"][-1] == "add_v_proj"
