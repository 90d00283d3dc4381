"""Text-conditioning cache with a tiny random umT5 built here (nothing downloaded)."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from dkt_perception.depth import MissingWeightsError, WeightsError
from dkt_perception.depth.conditioning import (
    TEXT_TOKENS,
    build_text_cache,
    convert_wan_t5_to_transformers,
    image_context,
    load_text_cache,
    load_umt5_from_wan_checkpoint,
)


@pytest.fixture(scope="module")
def tiny_t5():
    torch.manual_seed(0)
    cfg = UMT5Config(vocab_size=16, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
                     relative_attention_num_buckets=32, relative_attention_max_distance=128)
    model = UMT5EncoderModel(cfg).eval()
    tok = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2, "depth": 3, "of": 4, "glass": 5}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    return model, fast


def test_cache_is_512_tokens_zero_padded(tiny_t5, tmp_path):
    model, tok = tiny_t5
    path = build_text_cache(model, tok, tmp_path / "text.safetensors", prompt="depth")
    text = load_text_cache(path, 16)
    assert text.shape == (1, TEXT_TOKENS, 16)
    with torch.no_grad():
        direct = model(input_ids=torch.tensor([[3, 1]])).last_hidden_state
    assert torch.equal(text[:, :2], direct)
    assert torch.count_nonzero(text[:, 2:]) == 0
    # equals the release's way: pad to 512 with an attention mask, then zero the padded rows
    ids = torch.zeros(1, TEXT_TOKENS, dtype=torch.long)
    ids[0, :2] = torch.tensor([3, 1])
    mask = torch.zeros(1, TEXT_TOKENS, dtype=torch.long)
    mask[0, :2] = 1
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(text[:, :2], padded[:, :2], atol=1e-5)


def test_cache_errors(tmp_path):
    with pytest.raises(MissingWeightsError, match="weights fetch"):
        load_text_cache(tmp_path / "none.safetensors")
    from safetensors.torch import save_file

    save_file({"text": torch.zeros(1, 77, 16)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="512"):
        load_text_cache(tmp_path / "bad.safetensors", 16)


def test_wan_t5_checkpoint_conversion(tiny_t5, tmp_path):
    model, _ = tiny_t5
    sd = model.state_dict()
    wan = {"token_embedding.weight": sd["shared.weight"], "norm.weight": sd["encoder.final_layer_norm.weight"]}
    names = {"norm1.weight": "layer.0.layer_norm.weight", "attn.q.weight": "layer.0.SelfAttention.q.weight",
             "attn.k.weight": "layer.0.SelfAttention.k.weight", "attn.v.weight": "layer.0.SelfAttention.v.weight",
             "attn.o.weight": "layer.0.SelfAttention.o.weight",
             "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
             "norm2.weight": "layer.1.layer_norm.weight", "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
             "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight", "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight"}
    for i in range(2):
        for w, h in names.items():
            wan[f"blocks.{i}.{w}"] = sd[f"encoder.block.{i}.{h}"]
    converted = convert_wan_t5_to_transformers(wan)
    assert all(torch.equal(converted[k], v) for k, v in sd.items())
    torch.save(wan, tmp_path / "t5.pth")
    model.config.save_pretrained(tmp_path / "cfg")
    loaded = load_umt5_from_wan_checkpoint(tmp_path / "t5.pth", tmp_path / "cfg")
    ids = torch.tensor([[3, 4, 5, 1]])
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state)
    with pytest.raises(WeightsError, match="unexpected umT5 key"):
        convert_wan_t5_to_transformers({"blocks.0.foo.weight": torch.zeros(1)})


def test_image_context_is_zeros():
    c = image_context(1280)
    assert c.shape == (1, 257, 1280) and torch.count_nonzero(c) == 0
