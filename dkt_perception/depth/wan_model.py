"""DKT's networks: the Wan2.1-Fun-1.3B-Control DiT and the Wan2.1 VAE, through diffusers.

Configs ship in ``model_configs/<name>/{transformer,vae}/config.json`` and are
never fetched from a hub: ``wan2.1_fun_1.3b_control`` (the real model: 30
layers, dim 1536, 48 input channels, image branch) and ``tiny`` (same family,
2 layers, dim 48, VAE base_dim 8) for tests and ``bench --config tiny``.

Weights come from either
* the original single files (DiT safetensors with original Wan key names,
  ``Wan2.1_VAE.pth``) via ``from_single_file(path, config=LOCAL_DIR,
  local_files_only=True)``, plus DKT's LoRA in DiffSynth key format merged as
  ``W += B @ A`` (scale 1), or
* a diffusers folder written by :func:`export_diffusers` (LoRA already merged).

Also here: the VAE latent normalisation (``(z - mean) / std``), which the
diffusers VAE does not apply itself. The training package reuses
:func:`build_transformer`, :func:`build_vae`, :func:`normalize_latents`,
:func:`denormalize_latents` and :func:`merge_dkt_lora`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import torch

from dkt_perception.depth.interface import MissingWeightsError, WeightsError

log = logging.getLogger(__name__)

CONFIG_ROOT = Path(__file__).resolve().parent / "model_configs"
#: model name -> shipped config folder (holds transformer/ and vae/ subfolders)
MODEL_CONFIGS = {"1.3b": "wan2.1_fun_1.3b_control", "tiny": "tiny"}


def config_dir(model: str) -> Path:
    """Folder with ``transformer/config.json`` and ``vae/config.json`` for ``model`` ('1.3b' or 'tiny')."""
    if model not in MODEL_CONFIGS:
        raise WeightsError(f"unknown model config {model!r}; expected one of {sorted(MODEL_CONFIGS)}")
    return CONFIG_ROOT / MODEL_CONFIGS[model]


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def cast_model(net, dtype: torch.dtype | str, device: str | torch.device = "cpu"):
    """Move ``net`` to ``device`` and its parameters to ``dtype``.

    Buffers (the float64 rotary tables) and diffusers' ``_keep_in_fp32_modules``
    (norms, time embedder, modulation tables) keep their precision, as
    ``from_pretrained(torch_dtype=...)`` does.
    """
    dtype = _dtype(dtype)
    net.to(device)
    keep = getattr(net, "_keep_in_fp32_modules", None) or []
    for name, p in net.named_parameters():
        if dtype != torch.float32 and any(part in keep for part in name.split(".")):
            continue
        if p.dtype != dtype:
            p.data = p.data.to(dtype)
    return net


def build_transformer(model: str = "1.3b", *, dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu", seed: int | None = 0):
    """A randomly initialised ``WanTransformer3DModel`` from the shipped config (no download), in eval mode."""
    from diffusers import WanTransformer3DModel

    cfg = WanTransformer3DModel.load_config(str(config_dir(model)), subfolder="transformer", local_files_only=True)
    if seed is not None:
        torch.manual_seed(seed)
    net = WanTransformer3DModel.from_config(cfg)
    return cast_model(net, dtype, device).eval().requires_grad_(False)


def build_vae(model: str = "1.3b", *, dtype: torch.dtype | str = torch.float32, device: str | torch.device = "cpu", seed: int | None = 0):
    """A randomly initialised ``AutoencoderKLWan`` from the shipped config (no download), in eval mode."""
    from diffusers import AutoencoderKLWan

    cfg = AutoencoderKLWan.load_config(str(config_dir(model)), subfolder="vae", local_files_only=True)
    if seed is not None:
        torch.manual_seed(seed)
    vae = AutoencoderKLWan.from_config(cfg)
    return cast_model(vae, dtype, device).eval().requires_grad_(False)


# ---------------------------------------------------------------- latent normalisation


def _latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)
    return mean, std


def normalize_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """Raw VAE latent mean (B, 16, T, h, w) -> the DiT's latent space: ``(z - mean) / std`` per channel."""
    mean, std = _latent_stats(vae, z)
    return ((z.float() - mean) / std).to(z.dtype)


def denormalize_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_latents`: ``z * std + mean``, ready for the VAE decoder."""
    mean, std = _latent_stats(vae, z)
    return (z.float() * std + mean).to(z.dtype)


# ---------------------------------------------------------------- original single files


def _checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    return {k: tuple(v.shape) for k, v in sd.items()}


def _expected_shapes(cls, cfg_dir: Path, subfolder: str) -> dict[str, tuple[int, ...]]:
    from accelerate import init_empty_weights

    cfg = cls.load_config(str(cfg_dir), subfolder=subfolder, local_files_only=True)
    with init_empty_weights():
        net = cls.from_config(cfg)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _check_shapes(path: Path, converted: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], what: str) -> None:
    wrong = [f"{k}: file {converted[k]} vs model {expected[k]}" for k in expected if k in converted and converted[k] != expected[k]]
    missing = [k for k in expected if k not in converted]
    if wrong or missing:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} tensors with the wrong shape (e.g. {'; '.join(wrong[:3])})")
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
        raise WeightsError(f"{path} does not match the {what} architecture: {' and '.join(parts)}")


def _require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"missing {what} weights: {path}", fix=f"run `dkt-stack weights fetch --dir {path.parent}`")
    return path


def load_transformer_single_file(path: str | Path, model: str = "1.3b", *, dtype: torch.dtype | str = torch.float32, device: str = "cpu"):
    """Load the DiT from an original-format file (Wan key names) with the shipped config; shapes are checked first."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    path = _require_file(Path(path), "DiT")
    shapes = convert_wan_transformer_to_diffusers(dict(_checkpoint_shapes(path)))
    _check_shapes(path, shapes, _expected_shapes(WanTransformer3DModel, config_dir(model), "transformer"), f"{model} DiT")
    net = WanTransformer3DModel.from_single_file(
        str(path), config=str(config_dir(model)), subfolder="transformer", local_files_only=True, torch_dtype=_dtype(dtype)
    )
    return net.to(device).eval().requires_grad_(False)


def load_vae_single_file(path: str | Path, model: str = "1.3b", *, dtype: torch.dtype | str = torch.float32, device: str = "cpu"):
    """Load the VAE from ``Wan2.1_VAE.pth`` (original key names) with the shipped config; shapes are checked first."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    path = _require_file(Path(path), "VAE")
    raw = _checkpoint_shapes(path)
    # The VAE converter indexes real tensors; give it zero-size stand-ins of the right rank.
    converted = convert_wan_vae_to_diffusers({k: torch.empty(s, device="meta") for k, s in raw.items()})
    shapes = {k: tuple(v.shape) for k, v in converted.items()}
    _check_shapes(path, shapes, _expected_shapes(AutoencoderKLWan, config_dir(model), "vae"), f"{model} VAE")
    vae = AutoencoderKLWan.from_single_file(
        str(path), config=str(config_dir(model)), subfolder="vae", local_files_only=True, torch_dtype=_dtype(dtype)
    )
    return vae.to(device).eval().requires_grad_(False)


# ---------------------------------------------------------------- DKT LoRA (DiffSynth key format)

_LORA_KEY = re.compile(r"^(?:model\.)?(?:diffusion_model\.)?(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(?:\.default)?\.weight$")


def lora_pairs(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """DiffSynth LoRA tensors -> {original Wan module name: (B (out, r), A (r, in))}."""
    found: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, tensor in state_dict.items():
        m = _LORA_KEY.match(key)
        if m is None:
            unknown.append(key)
            continue
        kind = {"lora_down": "lora_A", "lora_up": "lora_B"}.get(m["kind"], m["kind"])
        found.setdefault(m["module"], {})[kind] = tensor
    if unknown:
        raise WeightsError(f"LoRA file has {len(unknown)} keys that are not lora_A/lora_B weights (e.g. {unknown[:3]})")
    incomplete = [k for k, v in found.items() if len(v) != 2]
    if incomplete:
        raise WeightsError(f"LoRA file lacks lora_A or lora_B for {len(incomplete)} modules (e.g. {incomplete[:3]})")
    return {k: (v["lora_B"], v["lora_A"]) for k, v in found.items()}


@torch.no_grad()
def merge_dkt_lora(transformer, lora: dict[str, torch.Tensor] | str | Path, scale: float = 1.0) -> dict[str, int]:
    """Merge a DiffSynth-format LoRA into a diffusers Wan DiT in place: ``W += scale * B @ A``.

    Module names are translated with the same converter the single-file loader
    uses, so any module the file contains is handled. The product is formed in
    float32 and added to the weight in float32 before casting back. Returns a
    count of merged tensors per module kind (e.g. ``{'attn1.to_q': 30}``), which
    is also logged.
    """
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    if not isinstance(lora, dict):
        from safetensors.torch import load_file

        lora = load_file(str(_require_file(Path(lora), "DKT LoRA")))
    deltas = {}
    for module, (b, a) in lora_pairs(lora).items():
        b32, a32 = b.float(), a.float()
        if b32.ndim == 4:  # 1x1 conv LoRA
            delta = (b32.flatten(1) @ a32.flatten(1)).view(b32.shape[0], a32.shape[1], 1, 1)
        else:
            delta = b32 @ a32
        deltas[f"{module}.weight"] = delta
    converted = convert_wan_transformer_to_diffusers(dict(deltas))
    params = dict(transformer.named_parameters())
    missing = [k for k in converted if k not in params]
    if missing:
        raise WeightsError(f"LoRA targets {len(missing)} modules the DiT does not have (e.g. {missing[:3]})")
    counts: Counter[str] = Counter()
    for name, delta in converted.items():
        p = params[name]
        if tuple(p.shape) != tuple(delta.shape):
            raise WeightsError(f"LoRA delta for {name} has shape {tuple(delta.shape)}, the weight has {tuple(p.shape)}")
        p.copy_((p.float() + scale * delta.to(p.device)).to(p.dtype))
        counts[re.sub(r"^blocks\.\d+\.", "", name.removesuffix(".weight"))] += 1
    log.info("merged DKT LoRA: %d tensors (%s)", sum(counts.values()), ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    return dict(counts)


def _is_diffusers_lora(keys: list[str]) -> bool:
    """diffusers/peft adapter keys use diffusers module names (attn1/attn2/ffn.net); DiffSynth ones use Wan's."""
    return any(re.search(r"(^|\.)(attn1|attn2|ffn\.net)\.", k) for k in keys)


@torch.no_grad()
def merge_lora_adapter(transformer, path: str | Path, scale: float = 1.0) -> dict[str, int]:
    """Merge an extra LoRA into the DiT in place, from either format; returns merged tensors per module kind.

    * DiffSynth format (a ``.safetensors`` file with Wan names, like the DKT
      release or ``dkt-stack train --export ... --format diffsynth``): merged by
      :func:`merge_dkt_lora` (``W += scale * B @ A``).
    * diffusers/peft format (a ``save_lora_adapter`` folder or its
      ``pytorch_lora_weights.safetensors``): loaded with ``load_lora_adapter``,
      fused with ``fuse_lora(lora_scale=scale)`` (peft's alpha / r included) and unloaded.
    """
    from safetensors import safe_open

    path = Path(path)
    file = path / "pytorch_lora_weights.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise MissingWeightsError(f"missing LoRA adapter {path}", fix="pass a .safetensors file or a folder with pytorch_lora_weights.safetensors (`dkt-stack train --export`)")
    with safe_open(str(file), framework="pt") as f:
        keys = list(f.keys())
    if not _is_diffusers_lora(keys):
        return merge_dkt_lora(transformer, file, scale=scale)
    prefix = "transformer" if all(k.startswith("transformer.") for k in keys) else None
    before = {n for n, _ in transformer.named_parameters()}
    try:
        # folder + weight_name: diffusers reads the LoraConfig (alpha) from the file's metadata only this way
        transformer.load_lora_adapter(str(file.parent), weight_name=file.name, use_safetensors=True, prefix=prefix,
                                      adapter_name="dkt_extra_lora")
    except (ValueError, RuntimeError, KeyError) as exc:
        raise WeightsError(f"LoRA adapter {file} does not fit this DiT: {exc}") from exc
    added = [n for n, _ in transformer.named_parameters() if n not in before and ".lora_A." in n]
    if not added:
        raise WeightsError(f"LoRA adapter {file} matched no module of this DiT")
    transformer.fuse_lora(lora_scale=scale)
    transformer.unload_lora()
    counts: Counter[str] = Counter(re.sub(r"^blocks\.\d+\.", "", n.split(".lora_A.")[0]) for n in added)
    log.info("merged LoRA adapter %s: %d modules", file, sum(counts.values()))
    return dict(counts)


# ---------------------------------------------------------------- diffusers folder


def export_diffusers(transformer, vae, out_dir: str | Path) -> Path:
    """Write ``transformer/`` and ``vae/`` (safetensors + config.json) under ``out_dir``; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(str(out_dir / "transformer"), safe_serialization=True)
    vae.save_pretrained(str(out_dir / "vae"), safe_serialization=True)
    return out_dir


def is_diffusers_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / "transformer" / "config.json").is_file() and (path / "vae" / "config.json").is_file()


def load_diffusers_folder(path: str | Path, *, dtype: torch.dtype | str = torch.float32, device: str = "cpu"):
    """(transformer, vae) from a folder written by :func:`export_diffusers`."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    path = Path(path)
    if not is_diffusers_folder(path):
        raise MissingWeightsError(f"{path} is not an exported diffusers folder (needs transformer/ and vae/)", fix="run `dkt-stack weights export`")
    net = WanTransformer3DModel.from_pretrained(str(path), subfolder="transformer", local_files_only=True, torch_dtype=_dtype(dtype))
    vae = AutoencoderKLWan.from_pretrained(str(path), subfolder="vae", local_files_only=True, torch_dtype=_dtype(dtype))
    return net.to(device).eval().requires_grad_(False), vae.to(device).eval().requires_grad_(False)
