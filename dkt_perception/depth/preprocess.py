"""The ONE place that knows DKT's pre- and post-processing.

Used alike by inference (offline and streaming), the rosbag replay, training
and evaluation:

* RGB uint8 (N, H, W, 3) -> resized (bicubic, antialias, aspect ratio NOT kept)
  to the model size (default 832 x 480, W x H; multiples of 16) -> float in
  [-1, 1], laid out (1, 3, F, h, w). Portrait frames may be rotated to
  landscape first (as the release does).
* Frame count padded to 4N+1 by repeating the last frame (the causal VAE drops
  frames otherwise).
* Decoded VAE output (1, 3, F, h, w) in [-1, 1] -> relative disparity in [0, 1]
  as the mean of the 3 channels mapped to [0, 1], kept float32 (the release
  quantises to 8 bits here; this does not), resized back to the input size and
  cropped back to the input frame count.
* Training targets: disparity (inverse depth) -> 3 identical channels in [-1, 1].

Unlike the release the resized RGB is not truncated to uint8 before the VAE
(float all the way), which differs from it by at most one grey level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch spelling)

from dkt_perception.depth.interface import DepthInputError, check_rgb_video

MODEL_HEIGHT = 480
MODEL_WIDTH = 832


def check_model_size(height: int, width: int) -> None:
    """The DiT patchifies 2x2 on top of the VAE's 8x: both sides must be multiples of 16."""
    if height <= 0 or width <= 0 or height % 16 or width % 16:
        raise DepthInputError(f"model height/width must be positive multiples of 16, got {height}x{width}")


def padded_frame_count(n: int) -> int:
    """Smallest 4N+1 >= n (n >= 1)."""
    if n < 1:
        raise DepthInputError(f"need at least one frame, got {n}")
    return n if (n - 1) % 4 == 0 else ((n - 1) // 4 + 1) * 4 + 1


def latent_count(frames: int) -> int:
    """Latent frames the causal VAE makes from ``frames`` (4N+1) RGB frames."""
    return (frames - 1) // 4 + 1


def pad_frames_4n1(video: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """Repeat the last frame along ``dim`` until the count is 4N+1."""
    n = video.shape[dim]
    extra = padded_frame_count(n) - n
    if extra == 0:
        return video
    last = video.narrow(dim, n - 1, 1)
    return torch.cat([video, *([last] * extra)], dim=dim)


@dataclass(frozen=True)
class FrameGeometry:
    """How input frames map to model frames: input size (pixels) and whether they were rotated."""

    height: int
    width: int
    rotated: bool = False


def geometry_for(height: int, width: int, rotate_portrait: bool) -> FrameGeometry:
    return FrameGeometry(height, width, rotated=bool(rotate_portrait and height > width))


def rgb_to_model(rgb: np.ndarray, height: int = MODEL_HEIGHT, width: int = MODEL_WIDTH, *, rotate_portrait: bool = False,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, FrameGeometry]:
    """RGB uint8 (N, H, W, 3) -> (1, 3, N, height, width) in [-1, 1] (NOT padded to 4N+1), plus the geometry.

    Resizing is bicubic with antialias on [0, 1] floats, clamped to [0, 1].
    """
    check_rgb_video(rgb)
    check_model_size(height, width)
    geom = geometry_for(rgb.shape[1], rgb.shape[2], rotate_portrait)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    x = x.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    if geom.rotated:
        x = torch.rot90(x, k=1, dims=(2, 3))  # portrait -> landscape (counter-clockwise)
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    x = x * 2.0 - 1.0
    return x.permute(1, 0, 2, 3).unsqueeze(0).to(dtype), geom


def decoded_to_disparity(decoded: torch.Tensor) -> torch.Tensor:
    """VAE output (1, 3, F, h, w) in [-1, 1] -> float32 (F, h, w) relative disparity in [0, 1] (mean of channels)."""
    return ((decoded.float().mean(dim=1)[0] + 1.0) * 0.5).clamp_(0.0, 1.0)


def disparity_to_input_size(disparity: torch.Tensor, geom: FrameGeometry) -> np.ndarray:
    """(F, h, w) model-size disparity -> float32 numpy (F, H, W) at the input size (bilinear, antialias when shrinking)."""
    d = disparity.float().unsqueeze(1)
    target = (geom.width, geom.height) if geom.rotated else (geom.height, geom.width)
    if tuple(d.shape[-2:]) != target:
        shrink = target[0] < d.shape[-2] or target[1] < d.shape[-1]
        d = F.interpolate(d, size=target, mode="bilinear", align_corners=False, antialias=shrink)
    if geom.rotated:
        d = torch.rot90(d, k=-1, dims=(2, 3))
    return d[:, 0].cpu().numpy().astype(np.float32, copy=False)


def disparity_to_model(disparity: np.ndarray | torch.Tensor, height: int = MODEL_HEIGHT, width: int = MODEL_WIDTH,
                       valid: np.ndarray | torch.Tensor | None = None, percentiles: tuple[float, float] | None = None) -> torch.Tensor:
    """Training target: disparity (N, H, W) (any scale) -> (1, 3, N, height, width) in [-1, 1].

    The video is normalised over its valid pixels with one scale and shift for
    the whole clip (matching the affine-invariant output): min/max by default,
    or the given masked ``percentiles`` (e.g. (2, 98), robust to outliers; values
    beyond them are clipped). Invalid pixels are set to the far end (0), then the
    clip is resized bilinearly and repeated into 3 channels.
    """
    d = torch.as_tensor(np.asarray(disparity) if not isinstance(disparity, torch.Tensor) else disparity).float()
    if d.ndim != 3 or d.numel() == 0:
        raise DepthInputError(f"expected disparity (N, H, W), got shape {tuple(d.shape)}")
    check_model_size(height, width)
    ok = torch.isfinite(d) if valid is None else torch.as_tensor(np.asarray(valid)).bool() & torch.isfinite(d)
    if not ok.any():
        raise DepthInputError("disparity has no valid pixels")
    if percentiles is None:
        lo, hi = d[ok].min(), d[ok].max()
    else:
        if not 0.0 <= percentiles[0] < percentiles[1] <= 100.0:
            raise DepthInputError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        # numpy: torch.quantile refuses inputs over 2**24 elements (a 21-frame 720p clip has more)
        lo, hi = (torch.tensor(float(v)) for v in np.percentile(d[ok].double().cpu().numpy(), percentiles))
    d01 = torch.where(ok, ((d - lo) / (hi - lo).clamp_min(1e-12)).clamp(0.0, 1.0), torch.zeros_like(d))
    d01 = F.interpolate(d01.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return (d01 * 2.0 - 1.0).repeat(1, 3, 1, 1).permute(1, 0, 2, 3).unsqueeze(0)
