"""Where DKT's weights live, how to fetch, check and export them.

Layout under the weights dir (default ``$DKT_WEIGHTS_DIR`` or
``~/.cache/dkt_stack/weights``), one folder per Hugging Face repo:

=====================================================  ===========================================  ==========
file                                                   from (HF repo)                               needed
=====================================================  ===========================================  ==========
Wan2.1-Fun-1.3B-Control/diffusion_pytorch_model.safetensors  alibaba-pai/Wan2.1-Fun-1.3B-Control      run time
Wan2.1-T2V-1.3B/Wan2.1_VAE.pth                         Wan-AI/Wan2.1-T2V-1.3B                       run time
DKT-Depth-1-3B-v1.1/<one *.safetensors>                Daniellesry/DKT-Depth-1-3B-v1.1              run time
dkt_text_depth.safetensors                             built by ``weights fetch`` from umT5          run time
Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth        Wan-AI/Wan2.1-T2V-1.3B                       fetch only
Wan2.1-T2V-1.3B/google/umt5-xxl/* (tokenizer)          Wan-AI/Wan2.1-T2V-1.3B                       fetch only
=====================================================  ===========================================  ==========

``weights export`` writes a diffusers folder (``diffusers/transformer``,
``diffusers/vae``, LoRA merged) that loads faster and is preferred when present.
Nothing here downloads unless :func:`fetch` is called; without network it
fails within seconds (:mod:`.hub`), naming the command to run when online and
``DKT_WEIGHTS_DIR`` for a copy made elsewhere, and leaves no empty folder behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dkt_perception.depth.interface import MissingWeightsError, WeightsError

log = logging.getLogger(__name__)

DIT_REPO = "alibaba-pai/Wan2.1-Fun-1.3B-Control"
WAN_REPO = "Wan-AI/Wan2.1-T2V-1.3B"
LORA_REPO = "Daniellesry/DKT-Depth-1-3B-v1.1"
TOKENIZER_FILES = ("special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json")
TEXT_CACHE = "dkt_text_depth.safetensors"
EXPORT_DIR = "diffusers"


def default_weights_dir() -> Path:
    return Path(os.environ.get("DKT_WEIGHTS_DIR") or Path.home() / ".cache" / "dkt_stack" / "weights").expanduser()


@dataclass(frozen=True)
class WeightFile:
    repo: str
    filename: str  # path inside the repo ("*.safetensors" = the one such file in the repo root)
    local: str  # path under the weights dir
    runtime: bool  # needed by the engine (False: only to build the text cache)


def layout() -> list[WeightFile]:
    files = [
        WeightFile(DIT_REPO, "diffusion_pytorch_model.safetensors", "Wan2.1-Fun-1.3B-Control/diffusion_pytorch_model.safetensors", True),
        WeightFile(WAN_REPO, "Wan2.1_VAE.pth", "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth", True),
        WeightFile(LORA_REPO, "*.safetensors", "DKT-Depth-1-3B-v1.1", True),
        WeightFile("", "", TEXT_CACHE, True),
        WeightFile(WAN_REPO, "models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth", False),
    ]
    files += [WeightFile(WAN_REPO, f"google/umt5-xxl/{f}", f"Wan2.1-T2V-1.3B/google/umt5-xxl/{f}", False) for f in TOKENIZER_FILES]
    return files


def resolve(root: Path, wf: WeightFile) -> Path | None:
    """The local file for ``wf``, or None if missing (the LoRA entry resolves to the single *.safetensors in its folder)."""
    path = root / wf.local
    if wf.filename == "*.safetensors":
        found = sorted(path.glob("*.safetensors")) if path.is_dir() else []
        return found[0] if found else None
    return path if path.is_file() else None


@dataclass(frozen=True)
class RuntimeWeights:
    """Paths the engine needs: either a diffusers export or the original files."""

    diffusers_dir: Path | None
    dit: Path | None
    vae: Path | None
    lora: Path | None
    text_cache: Path


#: points the engine, the nodes and the CLI at a weights folder
WEIGHTS_ENV = "DKT_WEIGHTS_DIR"


def fetch_command(root: Path) -> str:
    return f"dkt-stack weights fetch --dir {root}"


def fetch_fix(root: Path) -> str:
    """The one-line fix for missing weights: the fetch command, or where to point at a copy."""
    return f"point {WEIGHTS_ENV} at a copy, or run `{fetch_command(root)}`"


def runtime_weights(root: str | Path | None = None) -> RuntimeWeights:
    """Locate run-time weights, or raise ONE :class:`MissingWeightsError` naming every missing file and the fetch command."""
    root = Path(root).expanduser() if root else default_weights_dir()
    cache = root / TEXT_CACHE
    export = root / EXPORT_DIR
    if (export / "transformer" / "config.json").is_file() and (export / "vae" / "config.json").is_file():
        if not cache.is_file():
            raise MissingWeightsError(f"missing DKT weights in {root}: {TEXT_CACHE}", fix=fetch_fix(root))
        return RuntimeWeights(export, None, None, None, cache)
    found = {wf.local: resolve(root, wf) for wf in layout() if wf.runtime}
    missing = [local + ("/*.safetensors" if local.endswith("v1.1") else "") for local, p in found.items() if p is None]
    if missing:
        raise MissingWeightsError(f"missing DKT weights in {root}: {', '.join(missing)}", fix=fetch_fix(root))
    by = {wf.local: found[wf.local] for wf in layout() if wf.runtime}
    lay = [wf for wf in layout() if wf.runtime]
    return RuntimeWeights(None, by[lay[0].local], by[lay[1].local], by[lay[2].local], cache)


def sha256(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check(root: str | Path | None = None, *, hashes: bool = True) -> list[dict]:
    """Status of every file: local path, present, size (bytes), sha256, needed at run time."""
    root = Path(root).expanduser() if root else default_weights_dir()
    rows = []
    for wf in layout():
        path = resolve(root, wf)
        rows.append({
            "file": wf.local if path is None else str(path.relative_to(root)),
            "repo": wf.repo or "(built from umT5)",
            "present": path is not None,
            "size": path.stat().st_size if path else None,
            "sha256": sha256(path) if (path and hashes) else None,
            "runtime": wf.runtime,
        })
    export = root / EXPORT_DIR
    for sub in ("transformer", "vae"):
        files = sorted((export / sub).glob("*")) if (export / sub).is_dir() else []
        for p in files:
            rows.append({"file": str(p.relative_to(root)), "repo": "(weights export)", "present": True, "size": p.stat().st_size,
                         "sha256": sha256(p) if hashes else None, "runtime": True})
    return rows


def fetch(root: str | Path | None = None, *, build_cache: bool = True, device: str = "cpu") -> Path:
    """Download exactly the needed files with huggingface_hub (progress bars) and build the text cache.

    Raises :class:`~dkt_perception.depth.hub.HubUnreachableError` within a few
    seconds when files are missing and the hub cannot be reached; a failure
    leaves no empty folder behind (files already downloaded stay).
    """
    from dkt_perception.depth.hub import require_hub

    root = Path(root).expanduser() if root else default_weights_dir()
    todo = [wf for wf in layout() if wf.repo and resolve(root, wf) is None]
    if todo:
        online = fetch_command(root)
        require_hub(f"{len(todo)} DKT weight file(s) into {root}", online,
                    f"copy a fetched folder here and set {WEIGHTS_ENV}=/path/to/it")
    created = _missing_parents([root] + [root / wf.local for wf in todo])
    try:
        root.mkdir(parents=True, exist_ok=True)
        for wf in todo:
            _download(root, wf)
        if build_cache and not (root / TEXT_CACHE).is_file():
            build_text_cache_from_weights(root, device=device)
    except BaseException:
        _remove_empty(created)
        raise
    return root


def _missing_parents(paths: list[Path]) -> list[Path]:
    """Folders on the way to ``paths`` that do not exist yet (deepest first): removed again if a fetch fails empty."""
    missing: set[Path] = set()
    for path in paths:
        for folder in (path, *path.parents):
            if folder.exists():
                break
            missing.add(folder)
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first, so a parent emptied by its child's removal goes too
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (a file was downloaded) or already gone: keep it


def _download(root: Path, wf: WeightFile) -> None:
    from huggingface_hub import hf_hub_download, list_repo_files

    filename = wf.filename
    try:
        if filename == "*.safetensors":
            candidates = sorted(f for f in list_repo_files(wf.repo) if f.endswith(".safetensors") and "/" not in f)
            if not candidates:
                raise MissingWeightsError(f"no *.safetensors LoRA found in {wf.repo}", fix="check the repository on the hub")
            filename = candidates[0]
            target_dir = root / wf.local
        else:
            target_dir = root / wf.local[: -len(wf.filename)]  # hf_hub_download writes local_dir/filename
        log.info("downloading %s/%s", wf.repo, filename)
        hf_hub_download(wf.repo, filename, local_dir=str(target_dir))
    except WeightsError:
        raise
    except Exception as exc:  # huggingface_hub's errors (network lost midway, gated repo, disk full): one line with the fix
        raise WeightsError(f"downloading {wf.repo}/{filename} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                           fix=f"rerun `{fetch_command(root)}` (finished files are kept)") from exc


def build_text_cache_from_weights(root: Path, *, device: str = "cpu") -> Path:
    """Encode "depth" with the fetched umT5 (bf16 .pth, loaded in float32 on ``device``) and write the cache."""
    import torch
    from transformers import AutoTokenizer

    from dkt_perception.depth.conditioning import build_text_cache, load_umt5_from_wan_checkpoint

    t5 = next(wf for wf in layout() if wf.filename.startswith("models_t5"))
    tok_dir = root / "Wan2.1-T2V-1.3B" / "google" / "umt5-xxl"
    missing = [str(root / wf.local) for wf in layout() if not wf.runtime and resolve(root, wf) is None]
    if missing:
        raise MissingWeightsError(f"cannot build the text cache, missing: {', '.join(missing)}", fix=fetch_fix(root))
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    encoder = load_umt5_from_wan_checkpoint(root / t5.local, dtype=torch.float32).to(device)
    return build_text_cache(encoder, tokenizer, root / TEXT_CACHE)
