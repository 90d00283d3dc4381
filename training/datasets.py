"""Training data: folder layouts, the dataset manifest, and clip loading.

Folder layouts
--------------
Video datasets (TransPhy3D style; ``kind: video``), one folder per sequence::

    ROOT/
      SEQUENCE/                   # any name; sequences are sorted by name
        rgb/000000.png ...        # 8-bit colour frames (.png/.jpg), frame order = sorted file names
        depth/000000.png ...      # one depth map per frame, same stem (+ depth_suffix); format per depth_format
        mask/000000.png ...       # optional (mask_dir): non-zero = valid depth
        normal/...                # optional, ignored by the depth objective

Image datasets (ClearGrasp / DREDS / HISS style; ``kind: image``), RGB + depth pairs,
either directly under ROOT or one level down (scene folders)::

    ROOT/[SCENE/]rgb/NAME.png     # NAME + rgb_suffix
    ROOT/[SCENE/]depth/NAME.png   # NAME + depth_suffix (.png 16-bit mm, .npy, .exr, .tiff)
    ROOT/[SCENE/]mask/NAME.png    # optional

Folder names and file-name suffixes are per dataset, so the original releases
map without renaming (e.g. ClearGrasp: ``rgb_dir: rgb-imgs, rgb_suffix: -rgb,
depth_dir: depth-imgs-rectified, depth_suffix: -depth-rectified, depth_format: exr``).
Every RGB frame needs its depth file; a missing one is an error, never skipped.

Manifest (YAML or JSON)
-----------------------
::

    datasets:
      - name: transphy3d          # unique name (logs, latent cache keys)
        kind: video               # video | image
        root: /data/TransPhy3D    # relative paths: against the manifest's folder
        weight: 1.0               # sampling weight among the datasets eligible for a batch
        depth_format: png16       # auto | png16 | npy | exr | tiff
        depth_scale: 0.001        # metres per stored unit (default: 0.001 png16, 1.0 otherwise)
        min_depth_m: 0.0          # valid range (metres)
        max_depth_m: 100.0
      - name: cleargrasp
        kind: image
        root: cleargrasp/train
        weight: 0.5
        rgb_dir: rgb-imgs
        rgb_suffix: "-rgb"
        depth_dir: depth-imgs-rectified
        depth_suffix: "-depth-rectified"
        depth_format: exr

Clips: ``load_clip`` returns RGB uint8 (F, H, W, 3), depth in metres (F, H, W)
(nan = invalid) and the validity mask; :class:`ClipBatches` turns a
:class:`~dkt_training.cotrain_sampler.BatchPlan` into model tensors with the
shared preprocessing (:func:`dkt_perception.depth.preprocess.rgb_to_model`,
:func:`~dkt_perception.depth.preprocess.disparity_to_model`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dkt_perception.depth.preprocess import disparity_to_model, rgb_to_model
from dkt_stack.config import ConfigError, from_dict, load_yaml, param
from dkt_training.augment import ClipAugmentation, apply_geometry, draw_augmentation, jitter_rgb
from dkt_training.config import AugmentSettings
from dkt_training.cotrain_sampler import BatchPlan, CoTrainingSampler, SourceInfo
from dkt_training.depth_io import DataFormatError, depth_format_for, read_depth, read_rgb

RGB_EXTENSIONS = (".png", ".jpg", ".jpeg")
DEPTH_EXTENSIONS = (".png", ".npy", ".exr", ".tif", ".tiff")


@dataclass
class DatasetSpec:
    name: str = param(help="unique dataset name")
    kind: Literal["video", "image"] = param(help="'video': sequence folders; 'image': RGB + depth pairs")
    root: str = param(help="dataset folder; relative to the manifest file")
    weight: float = param(1.0, help="sampling weight among the datasets eligible for a batch")
    depth_format: Literal["auto", "png16", "npy", "exr", "tiff"] = param("auto", help="depth file format ('auto' = by extension)")
    depth_scale: float | None = param(None, help="metres per stored depth unit; null = 0.001 for png16, 1.0 otherwise")
    min_depth_m: float = param(0.0, help="depth below this (metres) is invalid")
    max_depth_m: float = param(100.0, help="depth above this (metres) is invalid")
    rgb_dir: str = param("rgb", help="RGB folder name inside a sequence/scene")
    depth_dir: str = param("depth", help="depth folder name")
    mask_dir: str = param("", help="optional validity-mask folder name (non-zero = valid); empty = none")
    rgb_suffix: str = param("", help="file-name suffix after the shared frame name in RGB files (e.g. '-rgb')")
    depth_suffix: str = param("", help="file-name suffix in depth files (e.g. '-depth-rectified')")
    mask_suffix: str = param("", help="file-name suffix in mask files")

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ConfigError(f"must be >= 0, got {self.weight}", key="weight")
        if self.depth_scale is not None and self.depth_scale <= 0:
            raise ConfigError(f"must be > 0, got {self.depth_scale}", key="depth_scale")
        if not self.min_depth_m < self.max_depth_m:
            raise ConfigError(f"need min_depth_m < max_depth_m, got {self.min_depth_m} and {self.max_depth_m}", key="max_depth_m")


@dataclass
class DatasetManifest:
    datasets: list[DatasetSpec] = param(help="the datasets, in order")


def load_manifest(path: str | Path) -> DatasetManifest:
    """Load a manifest; dataset roots are resolved against the manifest's folder; names must be unique."""
    path = Path(path)
    manifest = from_dict(DatasetManifest, load_yaml(path) or {}, source=path)  # YAML is a superset of JSON
    if not manifest.datasets:
        raise ConfigError("lists no datasets", source=path, key="datasets")
    seen = set()
    for i, spec in enumerate(manifest.datasets):
        if spec.name in seen:
            raise ConfigError(f"duplicate dataset name {spec.name!r}", source=path, key=f"datasets[{i}].name")
        seen.add(spec.name)
        if not Path(spec.root).is_absolute():
            spec.root = str((path.resolve().parent / spec.root).resolve())
    return manifest


@dataclass(frozen=True)
class FramePair:
    """One frame on disk: RGB image, its depth file and an optional mask."""

    rgb: Path
    depth: Path
    mask: Path | None = None


@dataclass
class IndexedDataset:
    """A dataset's frames: video = one list per sequence; image = every pair is a 1-frame sequence."""

    spec: DatasetSpec
    sequences: list[list[FramePair]]

    @property
    def lengths(self) -> list[int]:
        return [len(s) for s in self.sequences]


def _files_by_key(folder: Path, extensions: tuple[str, ...], suffix: str) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.suffix.lower() in extensions and p.stem.endswith(suffix):
            key = p.stem[: len(p.stem) - len(suffix)] if suffix else p.stem
            if key in out:
                raise DataFormatError(f"{folder}: two files for frame {key!r}: {out[key].name} and {p.name}")
            out[key] = p
    return out


def _pair_folder(spec: DatasetSpec, folder: Path) -> list[FramePair]:
    rgbs = _files_by_key(folder / spec.rgb_dir, RGB_EXTENSIONS, spec.rgb_suffix)
    depth_ext = DEPTH_EXTENSIONS if spec.depth_format == "auto" else {
        "png16": (".png",), "npy": (".npy",), "exr": (".exr",), "tiff": (".tif", ".tiff")}[spec.depth_format]
    depths = _files_by_key(folder / spec.depth_dir, depth_ext, spec.depth_suffix)
    masks = _files_by_key(folder / spec.mask_dir, RGB_EXTENSIONS, spec.mask_suffix) if spec.mask_dir else {}
    missing = [k for k in rgbs if k not in depths]
    if missing:
        raise DataFormatError(f"dataset {spec.name!r}: {len(missing)} RGB frames in {folder / spec.rgb_dir} have no depth file in "
                              f"{folder / spec.depth_dir} (e.g. {missing[:3]}; expected NAME{spec.depth_suffix}{{{','.join(depth_ext)}}})")
    if spec.mask_dir:
        no_mask = [k for k in rgbs if k not in masks]
        if no_mask:
            raise DataFormatError(f"dataset {spec.name!r}: {len(no_mask)} frames lack a mask in {folder / spec.mask_dir} (e.g. {no_mask[:3]})")
    return [FramePair(rgbs[k], depths[k], masks.get(k)) for k in rgbs]


def index_dataset(spec: DatasetSpec) -> IndexedDataset:
    """Scan a dataset folder per its layout (see module docstring); raises if it holds no frames."""
    root = Path(spec.root)
    if not root.is_dir():
        raise DataFormatError(f"dataset {spec.name!r}: root folder {root} does not exist")
    if spec.kind == "video":
        seqs = [_pair_folder(spec, d) for d in sorted(root.iterdir()) if (d / spec.rgb_dir).is_dir()]
        seqs = [s for s in seqs if s]
    else:
        folders = [root] if (root / spec.rgb_dir).is_dir() else [d for d in sorted(root.iterdir()) if (d / spec.rgb_dir).is_dir()]
        seqs = [[pair] for folder in folders for pair in _pair_folder(spec, folder)]
    if not seqs:
        where = f"{root}/SEQUENCE/{spec.rgb_dir}" if spec.kind == "video" else f"{root}/[SCENE/]{spec.rgb_dir}"
        raise DataFormatError(f"dataset {spec.name!r}: no frames found (expected {where}/*.png)")
    if spec.depth_format != "auto":
        depth_format_for(seqs[0][0].depth, spec.depth_format)
    return IndexedDataset(spec, seqs)


def index_manifest(manifest: DatasetManifest) -> list[IndexedDataset]:
    return [index_dataset(spec) for spec in manifest.datasets]


def sources_of(datasets: list[IndexedDataset]) -> list[SourceInfo]:
    """What the co-training sampler needs to know about each dataset."""
    return [SourceInfo(d.spec.name, d.spec.kind, d.spec.weight, tuple(d.lengths)) for d in datasets]


def load_clip(dataset: IndexedDataset, sequence: int, start: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``start .. start + frames - 1`` of one sequence.

    Returns RGB uint8 (F, H, W, 3), depth float32 (F, H, W) in metres (nan = invalid) and valid bool (F, H, W).
    """
    seq = dataset.sequences[sequence]
    if start < 0 or start + frames > len(seq):
        raise IndexError(f"dataset {dataset.spec.name!r} sequence {sequence} has {len(seq)} frames, asked for {start}..{start + frames - 1}")
    s = dataset.spec
    rgbs, depths, valids = [], [], []
    for pair in seq[start : start + frames]:
        rgb = read_rgb(pair.rgb)
        depth, valid = read_depth(pair.depth, s.depth_format, s.depth_scale, min_m=s.min_depth_m, max_m=s.max_depth_m, mask_path=pair.mask)
        if depth.shape != rgb.shape[:2]:
            raise DataFormatError(f"{pair.depth} is {depth.shape}, its RGB {pair.rgb} is {rgb.shape[:2]}: depth must be registered to RGB")
        if rgbs and rgb.shape != rgbs[0].shape:
            raise DataFormatError(f"{pair.rgb}: frame size {rgb.shape} differs from the sequence's {rgbs[0].shape}")
        rgbs.append(rgb)
        depths.append(depth)
        valids.append(valid)
    return np.stack(rgbs), np.stack(depths), np.stack(valids)


def depth_to_disparity(depth_m: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Disparity 1 / depth (1/m) where valid, 0 elsewhere (float32, same shape)."""
    out = np.zeros(depth_m.shape, dtype=np.float32)
    np.divide(1.0, depth_m, out=out, where=valid & (depth_m > 0))
    return out


def clip_to_model(rgb: np.ndarray, depth_m: np.ndarray, valid: np.ndarray, aug: ClipAugmentation, height: int, width: int,
                  percentiles: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip -> (RGB (3, F, h, w), depth target (3, F, h, w)), both float32 in [-1, 1].

    Crop and flip act on RGB and depth alike (geometry stays registered);
    colour jitter acts on RGB only; depth becomes disparity normalised per clip
    with masked percentiles through the shared preprocessing.
    """
    rgb, depth_m, valid = apply_geometry(rgb, depth_m, valid, aug)
    x, _ = rgb_to_model(rgb, height, width)
    x = jitter_rgb(x, aug)
    d = disparity_to_model(depth_to_disparity(depth_m, valid), height, width, valid=valid, percentiles=percentiles)
    return x[0], d[0]


def clip_key(dataset: str, sequence: int, start: int, frames: int, flip: bool, height: int, width: int) -> str:
    """Stable id of a clip's latents (latent cache file name)."""
    text = json.dumps([dataset, sequence, start, frames, flip, height, width])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class ClipBatches(torch.utils.data.Dataset):
    """Map-style dataset: index i -> the model tensors of the sampler's batch plan i (pure function of i).

    Items: ``{"index", "frames", "rgb": (B, 3, F, h, w), "depth": (B, 3, F, h, w), "keys": [clip keys],
    "latents": {key: (rgb_latent, depth_latent)} for clips found in ``latent_cache``}``. Clips with cached
    latents are not read from disk (their rows in rgb/depth are zeros).
    """

    def __init__(self, datasets: list[IndexedDataset], sampler: CoTrainingSampler, height: int, width: int, augment: AugmentSettings,
                 *, latent_cache=None) -> None:
        self.datasets, self.sampler, self.height, self.width = datasets, sampler, height, width
        self.augment, self.latent_cache = augment, latent_cache

    def __len__(self) -> int:
        return 2**62  # indexed by plan number; the trainer picks the indices

    def augmentation_for(self, plan: BatchPlan, i: int) -> ClipAugmentation:
        """The clip's augmentation, drawn from its own seed (independent of worker order and frame size)."""
        cached = self.latent_cache is not None  # cached latents must not depend on crop or colour jitter
        return draw_augmentation(np.random.default_rng(plan.clips[i].aug_seed), self.augment, crop=not cached, photometric=not cached)

    def __getitem__(self, index: int) -> dict:
        plan = self.sampler.plan(int(index))
        f, b = plan.frames, len(plan.clips)
        rgb = torch.zeros(b, 3, f, self.height, self.width)
        depth = torch.zeros(b, 3, f, self.height, self.width)
        keys, cached = [], {}
        for i, ref in enumerate(plan.clips):
            ds = self.datasets[ref.dataset]
            aug = self.augmentation_for(plan, i)
            key = clip_key(ds.spec.name, ref.sequence, ref.start, f, aug.flip, self.height, self.width)
            keys.append(key)
            hit = self.latent_cache.get(key) if self.latent_cache is not None else None
            if hit is not None:
                cached[key] = hit
                continue
            clip = load_clip(ds, ref.sequence, ref.start, f)
            rgb[i], depth[i] = clip_to_model(*clip, aug, self.height, self.width, self.augment.disparity_percentiles)
        return {"index": int(index), "frames": f, "rgb": rgb, "depth": depth, "keys": keys, "latents": cached}


def identity_collate(items):
    """DataLoader collate for batch_size=None-style use: items are already batches."""
    return items
