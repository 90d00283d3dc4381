"""The co-training batch plan of the DKT paper: frame count per batch and which clips fill it.

Per batch: ``N ~ U{0..max_latent_n}``, ``F = 4N + 1`` frames (1 latent + N).
``F == 1``: every dataset (image and video) is eligible; ``F > 1``: only video
datasets with at least one sequence of ``>= F`` frames. Each clip picks a
dataset with probability proportional to its weight among the eligible ones,
then a sequence uniformly among those long enough, then a start frame uniformly
(a multiple of ``start_stride``), and a seed for its augmentation.

Batch ``i`` is a pure function of ``(seed, i)`` (:meth:`CoTrainingSampler.plan`):
no hidden state, so data-loader workers, several processes and resumed runs all
see the same batches. The iteration position is the only state
(:meth:`state_dict`), saved in checkpoints together with a fingerprint of the
data so a resume against different data fails loudly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SourceInfo:
    """A dataset as the sampler sees it: name, 'video'|'image', weight, frames per sequence."""

    name: str
    kind: str
    weight: float
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class ClipRef:
    """One clip of a batch: dataset index, sequence index, first frame, augmentation seed."""

    dataset: int
    sequence: int
    start: int
    aug_seed: int


@dataclass(frozen=True)
class BatchPlan:
    index: int
    frames: int
    clips: tuple[ClipRef, ...]


class SamplerStateError(ValueError):
    """A sampler state that does not belong to this sampler's data or seed."""


class CoTrainingSampler:
    """Deterministic, resumable batch plans (see module docstring)."""

    def __init__(self, sources: list[SourceInfo], batch_size: int, max_latent_n: int = 5, seed: int = 0, start_stride: int = 1) -> None:
        if not sources:
            raise ValueError("the co-training sampler needs at least one dataset")
        if batch_size < 1 or max_latent_n < 0 or start_stride < 1:
            raise ValueError(f"need batch_size >= 1, max_latent_n >= 0, start_stride >= 1; got {batch_size}, {max_latent_n}, {start_stride}")
        for s in sources:
            if s.kind not in ("video", "image"):
                raise ValueError(f"dataset {s.name!r}: kind must be 'video' or 'image', got {s.kind!r}")
            if s.weight < 0 or not s.lengths or min(s.lengths) < 1:
                raise ValueError(f"dataset {s.name!r}: needs weight >= 0 and non-empty sequences")
        self.sources, self.batch_size, self.max_latent_n = list(sources), batch_size, max_latent_n
        self.seed, self.start_stride = int(seed), start_stride
        self.position = 0
        # per frame count: eligible datasets, their probabilities, and each one's eligible sequences
        self._eligible: dict[int, tuple[list[int], np.ndarray, dict[int, np.ndarray]]] = {}
        for n in range(max_latent_n + 1):
            f = 4 * n + 1
            cands = [i for i, s in enumerate(sources) if s.weight > 0 and (f == 1 or s.kind == "video") and max(s.lengths) >= f]
            if not cands:
                longest = max((max(s.lengths) for s in sources if s.kind == "video" and s.weight > 0), default=0)
                raise ValueError(f"no dataset can fill a batch of F={f} frames (longest weighted video sequence: {longest} frames); "
                                 f"lower max_latent_n to {max(0, (longest - 1) // 4)} or add longer video sequences")
            w = np.array([sources[i].weight for i in cands], dtype=np.float64)
            seqs = {i: np.flatnonzero(np.asarray(sources[i].lengths) >= f) for i in cands}
            self._eligible[f] = (cands, w / w.sum(), seqs)

    def fingerprint(self) -> str:
        """Hash of the data description, batch size and frame range (not the seed or position)."""
        text = json.dumps([[s.name, s.kind, s.weight, list(s.lengths)] for s in self.sources] + [self.batch_size, self.max_latent_n, self.start_stride])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def plan(self, index: int) -> BatchPlan:
        """Batch ``index``: its frame count and clips (pure function of the seed and index)."""
        rng = np.random.default_rng([self.seed, int(index)])
        frames = 4 * int(rng.integers(0, self.max_latent_n + 1)) + 1
        cands, probs, seqs = self._eligible[frames]
        clips = []
        for _ in range(self.batch_size):
            d = cands[int(rng.choice(len(cands), p=probs))]
            seq = int(rng.choice(seqs[d]))
            room = (self.sources[d].lengths[seq] - frames) // self.start_stride
            start = int(rng.integers(0, room + 1)) * self.start_stride
            clips.append(ClipRef(d, seq, start, int(rng.integers(0, 2**63 - 1))))
        return BatchPlan(int(index), frames, tuple(clips))

    # ------------------------------------------------------------ iteration and resume

    def __iter__(self):
        return self

    def __next__(self) -> BatchPlan:
        plan = self.plan(self.position)
        self.position += 1
        return plan

    def state_dict(self) -> dict:
        return {"seed": self.seed, "position": self.position, "fingerprint": self.fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("fingerprint") != self.fingerprint() or int(state.get("seed", -1)) != self.seed:
            raise SamplerStateError(f"sampler state (seed {state.get('seed')}, data {state.get('fingerprint')}) does not match this run "
                                    f"(seed {self.seed}, data {self.fingerprint()}): the datasets, batch size or seed changed")
        self.position = int(state["position"])
