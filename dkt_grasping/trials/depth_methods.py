"""The depth method of a trial session: a depth backend, or the simulator's exact depth (the oracle).

Every method returns disparity in the depth backends' convention (inverse
depth, larger = closer, NaN = none). ``raw`` (the sensor) and ``ground_truth``
give metric inverse depth (1/z in 1/m) and are used as they are, as the paper
feeds the sensor's depth to the grasp detector; relative methods (``dkt``,
``depth_anything_v2``) go through the AprilTag scale-and-shift step. All of
them then use the same cloud builder.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from dkt_perception.depth import DepthConfig, MissingWeightsError, create_backend
from dkt_perception.depth.raw_backend import inverse_depth


class MethodUnavailableError(RuntimeError):
    """The depth method cannot run here (weights missing); the message says which and how to get them."""


class TrialDepthMethod:
    """``estimate(rgb_video, raw_depth_video, gt_depth)`` -> disparity of the last frame.

    rgb_video: uint8 (N, H, W, 3); raw_depth_video: float32 (N, H, W) sensor depth, m;
    gt_depth: float32 (H, W) exact depth of the last frame, m (simulation only; needed by ``ground_truth``).
    """

    #: Methods whose disparity is metric inverse depth (1/z, 1/m): no scale fit needed.
    METRIC_METHODS = ("raw", "ground_truth")

    def __init__(self, method: str, *, weights_dir: str = "", depth_anything_model: str = ""):
        self.method = method
        self.metric = method in self.METRIC_METHODS
        self._backend = None
        if method == "ground_truth":
            return
        config = DepthConfig(backend=method, weights_dir=weights_dir)
        if depth_anything_model:
            config.depth_anything_model = depth_anything_model
        try:
            self._backend = create_backend(method, config)
        except (MissingWeightsError, OSError) as exc:
            raise MethodUnavailableError(f"depth method {method!r} is unavailable: {exc}") from exc
        self._config = config

    def estimate(self, rgb_video: np.ndarray, raw_depth_video: np.ndarray, gt_depth: np.ndarray | None = None) -> np.ndarray:
        if self.method == "ground_truth":
            if gt_depth is None:
                raise ValueError("the ground_truth method needs the simulator's exact depth (it exists only in simulation)")
            return inverse_depth(np.asarray(gt_depth, dtype=np.float32))
        video = self._backend.infer_video(rgb_video, raw_depth_video)
        return np.asarray(video.disparity[-1], dtype=np.float32)

    def weights_checksum(self) -> str:
        """sha256 of the weights that define the method's output, or ``n/a``."""
        if self.method in ("raw", "ground_truth"):
            return "n/a"
        if self.method == "dkt":
            from dkt_perception.depth.weights import runtime_weights

            found = runtime_weights(self._config.weights_dir or None)
            # The LoRA is what makes Wan2.1 a depth model (the base files are public and fixed); an export has it merged in.
            files = [found.lora] if found.lora is not None else sorted((found.diffusers_dir / "transformer").glob("*.safetensors"))
            return combined_sha256(files)
        model = Path(self._config.depth_anything_model)
        files = sorted(model.glob("*.safetensors")) if model.is_dir() else _hub_cached_files(self._config.depth_anything_model)
        return combined_sha256(files) if files else "unknown"


def _hub_cached_files(repo_id: str) -> list[Path]:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return []
    path = try_to_load_from_cache(repo_id, "model.safetensors")
    return [Path(path)] if isinstance(path, str) else []


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    from dkt_perception.depth.weights import sha256

    return sha256(Path(path))


def combined_sha256(files: list[Path]) -> str:
    """sha256 of one file, or of the sorted list of per-file sha256s for several."""
    digests = [_file_sha256(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()
