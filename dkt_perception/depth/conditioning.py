"""DKT's constant conditioning: the prompt "depth" through umT5, and the all-zero image context.

The text context is computed ONCE (``dkt-stack weights fetch`` does it) and
cached as a small safetensors file, ``(1, 512, 4096)`` with zeros after the
real tokens (exactly what the release feeds the DiT: it encodes a 512-token
padded prompt with an attention mask and zeroes the padded positions). At run
time the engine loads the cache and never loads the 11 GB T5.

The image-branch context is ``zeros(1, 257, image_dim)`` (1280 for the real
model). diffusers' attention processor splits image/text context assuming 512
text tokens, so the padding to 512 is required, not cosmetic.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dkt_perception.depth.interface import MissingWeightsError, WeightsError
from dkt_stack.atomic_files import atomic_path

TEXT_TOKENS = 512
IMAGE_TOKENS = 257
DEFAULT_PROMPT = "depth"
UMT5_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs" / "umt5_xxl"


@torch.no_grad()
def encode_prompt(text_encoder, tokenizer, prompt: str = DEFAULT_PROMPT) -> torch.Tensor:
    """(1, 512, d_model) float32 umT5 embedding of ``prompt``; rows after the real tokens (incl. EOS) are zero.

    The real tokens are encoded without padding: with T5's attention mask the
    padded positions never influence the real ones, so this equals the
    release's masked 512-token pass.
    """
    ids = tokenizer(prompt, add_special_tokens=True, return_tensors="pt").input_ids[:, :TEXT_TOKENS]
    param = next(text_encoder.parameters())
    hidden = text_encoder(input_ids=ids.to(param.device)).last_hidden_state.float().cpu()
    out = torch.zeros(1, TEXT_TOKENS, hidden.shape[-1], dtype=torch.float32)
    out[:, : hidden.shape[1]] = hidden
    return out


def save_text_cache(embedding: torch.Tensor, path: str | Path, prompt: str = DEFAULT_PROMPT) -> Path:
    """Write the (1, 512, D) embedding atomically as safetensors (key ``text``, prompt in the metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    if embedding.ndim != 3 or embedding.shape[:2] != (1, TEXT_TOKENS):
        raise WeightsError(f"text embedding must be (1, {TEXT_TOKENS}, D), got {tuple(embedding.shape)}")
    n_tokens = int((embedding[0].abs().sum(-1) > 0).sum())
    with atomic_path(path) as tmp:
        save_file({"text": embedding.float().contiguous()}, str(tmp), metadata={"prompt": prompt, "tokens": str(n_tokens)})
    return path


def build_text_cache(text_encoder, tokenizer, path: str | Path, prompt: str = DEFAULT_PROMPT) -> Path:
    """Encode ``prompt`` with a loaded umT5 encoder and cache it at ``path``."""
    return save_text_cache(encode_prompt(text_encoder, tokenizer, prompt), path, prompt)


def load_text_cache(path: str | Path, text_dim: int | None = None, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The cached (1, 512, D) text context; checks the shape (and ``D == text_dim`` when given)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"missing text-conditioning cache {path}", fix=f"run `dkt-stack weights fetch --dir {path.parent}`")
    text = load_file(str(path)).get("text")
    if text is None or text.ndim != 3 or text.shape[:2] != (1, TEXT_TOKENS) or (text_dim is not None and text.shape[2] != text_dim):
        got = None if text is None else tuple(text.shape)
        raise WeightsError(f"{path}: expected a 'text' tensor of shape (1, {TEXT_TOKENS}, {text_dim or 'D'}), got {got}")
    return text.to(device=device, dtype=dtype)


def image_context(image_dim: int, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The image-branch context DKT uses: zeros (1, 257, image_dim)."""
    return torch.zeros(1, IMAGE_TOKENS, image_dim, device=device, dtype=dtype)


def random_text_context(text_dim: int, n_tokens: int = 2, seed: int = 0) -> torch.Tensor:
    """A stand-in text context for random-weight runs (benchmarks, tests): real-looking layout, seeded values."""
    gen = torch.Generator("cpu").manual_seed(seed)
    out = torch.zeros(1, TEXT_TOKENS, text_dim)
    out[:, :n_tokens] = torch.randn(1, n_tokens, text_dim, generator=gen) * 0.1
    return out


# ---------------------------------------------------------------- umT5 from the Wan release's .pth


def convert_wan_t5_to_transformers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Wan's umT5 encoder keys (``models_t5_umt5-xxl-enc-bf16.pth``) -> transformers ``UMT5EncoderModel`` keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if key == "token_embedding.weight":
            out["shared.weight"] = value
            out["encoder.embed_tokens.weight"] = value
        elif key == "norm.weight":
            out["encoder.final_layer_norm.weight"] = value
        elif parts[0] == "blocks":
            i, rest = parts[1], ".".join(parts[2:])
            names = {
                "norm1.weight": "layer.0.layer_norm.weight",
                "attn.q.weight": "layer.0.SelfAttention.q.weight",
                "attn.k.weight": "layer.0.SelfAttention.k.weight",
                "attn.v.weight": "layer.0.SelfAttention.v.weight",
                "attn.o.weight": "layer.0.SelfAttention.o.weight",
                "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
                "norm2.weight": "layer.1.layer_norm.weight",
                "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
                "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
                "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
            }
            if rest not in names:
                raise WeightsError(f"unexpected umT5 key {key!r}")
            out[f"encoder.block.{i}.{names[rest]}"] = value
        else:
            raise WeightsError(f"unexpected umT5 key {key!r}")
    return out


def load_umt5_from_wan_checkpoint(path: str | Path, config_dir: str | Path = UMT5_CONFIG_DIR, *, dtype: torch.dtype = torch.float32):
    """A transformers ``UMT5EncoderModel`` holding the weights of Wan's ``.pth`` umT5 encoder (eval mode)."""
    from accelerate import init_empty_weights
    from transformers import UMT5Config, UMT5EncoderModel

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"missing umT5 encoder {path}", fix=f"run `dkt-stack weights fetch --dir {path.parent.parent}`")
    config = UMT5Config.from_pretrained(str(config_dir), local_files_only=True)
    raw = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    converted = convert_wan_t5_to_transformers(raw)
    with init_empty_weights():
        model = UMT5EncoderModel(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in converted]
    wrong = [k for k in expected if k in converted and tuple(converted[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        raise WeightsError(f"{path} does not match the umT5 config: {len(missing)} missing, {len(wrong)} wrong-shape tensors "
                           f"(e.g. {(missing + wrong)[:3]})")
    model.load_state_dict({k: converted[k].to(dtype) for k in expected}, assign=True, strict=True)
    return model.eval().requires_grad_(False)
