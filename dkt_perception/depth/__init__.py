"""Depth engines behind one small interface: DKT (video diffusion), the raw sensor, Depth Anything V2.

    from dkt_perception.depth import create_backend, DepthConfig, DepthFrame
    backend = create_backend("dkt", DepthConfig())
    results = backend.stream(DepthFrame(rgb, stamp_ns))   # 0..n DepthResult
    video = backend.infer_video(rgb_video)                 # VideoDepth (N, H, W) float32 disparity

Building blocks reused elsewhere (training, replay, evaluation):
:mod:`.preprocess` (the one pre/post-processing module), :mod:`.wan_model`
(networks, weights, LoRA merge, latent normalisation), :mod:`.conditioning`
(text cache), :mod:`.sampler` (sigmas, windowed blending), :mod:`.vae_stream`.
"""

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import (
    DepthBackend,
    DepthFrame,
    DepthInputError,
    DepthResult,
    MissingWeightsError,
    VideoDepth,
    WeightsError,
)
from dkt_perception.depth.registry import BACKENDS, UnknownBackendError, create_backend

__all__ = [
    "BACKENDS",
    "DepthBackend",
    "DepthConfig",
    "DepthFrame",
    "DepthInputError",
    "DepthResult",
    "MissingWeightsError",
    "UnknownBackendError",
    "VideoDepth",
    "WeightsError",
    "create_backend",
]
