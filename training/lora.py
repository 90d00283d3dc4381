"""LoRA on the DKT DiT with peft, and adapter export in two formats the engine loads.

* :func:`add_lora` freezes the DiT and adds one peft adapter (``LoraConfig(r,
  lora_alpha, target_modules)``) through diffusers' ``add_adapter``; only the
  ``lora_A``/``lora_B`` weights train.
* diffusers/peft format: ``save_lora_adapter`` output, a folder with
  ``pytorch_lora_weights.safetensors`` (keys ``blocks.N.attn1.to_q.lora_A.weight``,
  the LoraConfig in the file's metadata).
* DiffSynth format (the DKT release's): original Wan module names,
  ``blocks.N.self_attn.q.lora_A.default.weight`` / ``lora_B``, merged by the engine
  as ``W += B @ A`` with scale 1 — so the export folds peft's ``alpha / r``
  scaling into ``lora_B``. Names are the inverse of the converter
  :func:`dkt_perception.depth.wan_model.merge_dkt_lora` uses, and each one is
  checked by running that converter forward.

Both load into the engine with ``DepthConfig(lora_path=...)``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from dkt_stack.atomic_files import atomic_path
from dkt_training.config import LoraSettings

ADAPTER_FILE = "pytorch_lora_weights.safetensors"  # diffusers' name for save_lora_adapter output

# diffusers -> original Wan names for the modules a LoRA can target (order matters: longest first)
_TO_WAN = [
    (".attn1.", ".self_attn."),
    (".attn2.", ".cross_attn."),
    (".to_out.0", ".o"),
    (".to_q", ".q"),
    (".to_k", ".k"),
    (".to_v", ".v"),
    (".add_k_proj", ".k_img"),
    (".add_v_proj", ".v_img"),
    (".ffn.net.0.proj", ".ffn.0"),
    (".ffn.net.2", ".ffn.2"),
]
_TO_WAN_TOP = {"proj_out": "head.head", "condition_embedder.time_proj": "time_projection.1",
               "condition_embedder.time_embedder.linear_1": "time_embedding.0", "condition_embedder.time_embedder.linear_2": "time_embedding.2",
               "condition_embedder.text_embedder.linear_1": "text_embedding.0", "condition_embedder.text_embedder.linear_2": "text_embedding.2",
               "patch_embedding": "patch_embedding"}


class AdapterError(ValueError):
    """An adapter file or folder that is not what was expected."""


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.target_modules),
                      lora_dropout=settings.dropout, init_lora_weights=True)


def add_lora(transformer, settings: LoraSettings) -> list[str]:
    """Freeze the DiT, add the adapter (float32 LoRA weights), return the trainable parameter names."""
    transformer.requires_grad_(False)
    try:
        transformer.add_adapter(lora_config(settings))
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        raise AdapterError(f"cannot add LoRA with target_modules {settings.target_modules}: {exc}") from exc
    names = []
    for name, p in transformer.named_parameters():
        if "lora_" in name:
            p.data = p.data.float()  # trainable weights in float32 even on a bf16 base (autocast computes in bf16)
            p.requires_grad_(True)
            names.append(name)
        elif p.requires_grad:
            raise AdapterError(f"{name} would train but is not a LoRA weight")
    return names


def _plain_key(name: str) -> str:
    """peft parameter name -> saved key (drop the adapter name: ``.lora_A.default.weight`` -> ``.lora_A.weight``)."""
    return re.sub(r"\.(lora_[AB])\.[^.]+\.weight$", r".\1.weight", name)


def lora_state_dict(transformer) -> dict[str, torch.Tensor]:
    """The adapter weights (float32 CPU copies) under the diffusers/peft keys ``...lora_A.weight``."""
    return {_plain_key(n): p.detach().float().cpu().clone() for n, p in transformer.named_parameters() if "lora_" in n}


def load_lora_state_dict(transformer, state: dict[str, torch.Tensor]) -> None:
    """Copy saved adapter weights into an adapter added with :func:`add_lora` (exact; every key must match)."""
    params = {_plain_key(n): p for n, p in transformer.named_parameters() if "lora_" in n}
    if set(params) != set(state):
        missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        raise AdapterError(f"adapter does not match the model's LoRA: {len(missing)} missing (e.g. {missing[:2]}), "
                           f"{len(extra)} unexpected (e.g. {extra[:2]}); were rank/targets changed?")
    with torch.no_grad():
        for k, p in params.items():
            if tuple(p.shape) != tuple(state[k].shape):
                raise AdapterError(f"{k}: saved shape {tuple(state[k].shape)}, model {tuple(p.shape)} (different rank?)")
            p.copy_(state[k].to(p.device, p.dtype))


def adapter_metadata(settings: LoraSettings) -> dict:
    """The part of the peft LoraConfig the exports need (rank, alpha, targets)."""
    return {"r": settings.rank, "lora_alpha": settings.alpha, "target_modules": list(settings.target_modules), "use_rslora": False,
            "rank_pattern": {}, "alpha_pattern": {}, "peft_type": "LORA", "lora_dropout": settings.dropout, "init_lora_weights": True,
            "bias": "none", "use_dora": False}


def _atomic_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return path


def save_diffusers_adapter(state: dict[str, torch.Tensor], settings_or_meta: LoraSettings | dict, out_dir: str | Path) -> Path:
    """Write ``out_dir/pytorch_lora_weights.safetensors`` exactly as ``save_lora_adapter`` does (keys + LoraConfig metadata)."""
    meta = adapter_metadata(settings_or_meta) if isinstance(settings_or_meta, LoraSettings) else dict(settings_or_meta)
    path = Path(out_dir) / ADAPTER_FILE
    return _atomic_safetensors(state, path, {"format": "pt", "lora_adapter_metadata": json.dumps(meta, indent=2, sort_keys=True)})


def read_diffusers_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state, LoraConfig metadata) of a diffusers/peft adapter folder or its safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    file = path / ADAPTER_FILE if path.is_dir() else path
    if not file.is_file():
        raise AdapterError(f"no adapter at {path} (expected a folder with {ADAPTER_FILE} or that file)")
    with safe_open(str(file), framework="pt") as f:
        meta_text = (f.metadata() or {}).get("lora_adapter_metadata")
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if not meta_text:
        raise AdapterError(f"{file} has no lora_adapter_metadata (rank/alpha unknown); was it written by save_lora_adapter?")
    return state, json.loads(meta_text)


def _scaling(meta: dict, module: str, rank: int) -> float:
    """peft's scaling for one module: alpha / r (alpha / sqrt(r) with rsLoRA), honouring rank/alpha patterns."""
    r = next((v for k, v in meta.get("rank_pattern", {}).items() if re.search(k, module)), meta.get("r", rank))
    alpha = next((v for k, v in meta.get("alpha_pattern", {}).items() if re.search(k, module)), meta["lora_alpha"])
    if r != rank:
        raise AdapterError(f"{module}: LoRA weights have rank {rank}, metadata says {r}")
    return alpha / math.sqrt(r) if meta.get("use_rslora") else alpha / r


def wan_module_name(module: str) -> str:
    """diffusers module name of the DiT -> original Wan name (DiffSynth LoRA keys), verified by the forward converter."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    if module in _TO_WAN_TOP:
        wan = _TO_WAN_TOP[module]
    else:
        wan = module
        for a, b in _TO_WAN:
            wan = wan.replace(a, b)
    back = list(convert_wan_transformer_to_diffusers({f"{wan}.weight": torch.empty(0, device="meta")}))
    if back != [f"{module}.weight"] or (wan == module and module not in _TO_WAN_TOP):
        raise AdapterError(f"no DiffSynth name for DiT module {module!r} (tried {wan!r}, which converts to {back})")
    return wan


def to_diffsynth(state: dict[str, torch.Tensor], meta: dict) -> dict[str, torch.Tensor]:
    """diffusers/peft adapter -> DiffSynth keys with the peft scaling folded into lora_B (so ``W += B @ A`` is exact)."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in state.items():
        m = re.match(r"^(?:transformer\.)?(?P<module>.+)\.(?P<kind>lora_A|lora_B)\.weight$", key)
        if m is None:
            raise AdapterError(f"unexpected adapter key {key!r} (expected MODULE.lora_A.weight / MODULE.lora_B.weight)")
        pairs.setdefault(m["module"], {})[m["kind"]] = t
    out = {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            raise AdapterError(f"{module}: needs both lora_A and lora_B")
        a, b = ab["lora_A"].float(), ab["lora_B"].float()
        wan = wan_module_name(module)
        out[f"{wan}.lora_A.default.weight"] = a.contiguous()
        out[f"{wan}.lora_B.default.weight"] = (b * _scaling(meta, module, a.shape[0])).contiguous()
    return out


def save_diffsynth_adapter(state: dict[str, torch.Tensor], meta: dict, path: str | Path) -> Path:
    """Write the DiffSynth-format adapter (a single safetensors file) atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterError(f"DiffSynth adapters are single .safetensors files, got {path}")
    return _atomic_safetensors(to_diffsynth(state, meta), path, {"format": "pt", "source": "dkt_training", "rank": str(meta.get("r"))})


def export_adapter(source: str | Path, fmt: str, out: str | Path) -> Path:
    """Export a checkpoint's (or any diffusers-format) adapter as ``fmt`` ('diffusers' folder or 'diffsynth' file)."""
    source = Path(source)
    adapter = source / "adapter" if (source / "adapter" / ADAPTER_FILE).is_file() else source
    state, meta = read_diffusers_adapter(adapter)
    if fmt == "diffusers":
        return save_diffusers_adapter(state, meta, out).parent
    if fmt == "diffsynth":
        return save_diffsynth_adapter(state, meta, out)
    raise AdapterError(f"export format must be 'diffusers' or 'diffsynth', got {fmt!r}")
