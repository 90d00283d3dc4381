"""Depth metrics exactly as the DKT paper reports them, plus temporal consistency.

Per sequence, the prediction is aligned to ground truth with ONE global scale
and shift (least squares over every valid pixel of every frame), then:

* ``delta_1.05``, ``delta_1.10``, ``delta_1.25``: fraction of pixels with
  ``max(pred/gt, gt/pred) < threshold``;
* ``rel_pct``: mean ``|pred - gt| / gt`` in percent;
* ``rmse_cm``: root mean squared error in centimetres;
* ``temporal_err_cm``: mean over consecutive frames and pixels valid in both of
  ``|(pred[t+1] - pred[t]) - (gt[t+1] - gt[t])|`` in centimetres (0 for a
  prediction whose frame-to-frame changes match the ground truth's).

Valid pixels: finite, positive GT within ``[depth_min_m, depth_max_m]`` (ClearPose
uses [0.3, 1.5] m) and a finite prediction.

Alignment space: ``disparity`` (affine-invariant disparity models such as DKT and
Depth Anything: fit ``s * pred + t ~ 1 / gt``, then ``depth = 1 / (s * pred + t)``),
``depth`` (affine-invariant depth: fit ``s * pred + t ~ gt``), or ``none`` (the
prediction is already metric depth, e.g. the output of the AprilTag scaling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

AlignSpace = Literal["disparity", "depth", "none"]
METRIC_KEYS = ("delta_1.05", "delta_1.10", "delta_1.25", "rel_pct", "rmse_cm", "temporal_err_cm")


@dataclass
class Alignment:
    scale: float
    shift: float
    space: str


@dataclass
class SequenceMetrics:
    """Metrics of one sequence (fractions in [0, 1], REL in %, RMSE and temporal error in cm)."""

    delta_105: float
    delta_110: float
    delta_125: float
    rel_pct: float
    rmse_cm: float
    temporal_err_cm: float
    valid_pixels: int
    frames: int
    alignment: Alignment

    def row(self) -> dict[str, float]:
        return dict(zip(METRIC_KEYS, (self.delta_105, self.delta_110, self.delta_125, self.rel_pct, self.rmse_cm, self.temporal_err_cm), strict=True))

    def to_dict(self) -> dict:
        return {**self.row(), "valid_pixels": self.valid_pixels, "frames": self.frames, "alignment": asdict(self.alignment)}


def valid_mask(gt_m: np.ndarray, pred: np.ndarray, depth_min_m: float, depth_max_m: float) -> np.ndarray:
    """Pixels evaluated: finite GT within [min, max] metres and a finite prediction."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt_m) & (gt_m >= depth_min_m) & (gt_m <= depth_max_m) & np.isfinite(pred)


def fit_affine(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``s, t`` minimising ``sum((s * x + t - y)^2)`` (float64)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"need at least 2 valid pixels to align, got {x.size}")
    A = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(s), float(t)


def align(pred: np.ndarray, gt_m: np.ndarray, mask: np.ndarray, space: AlignSpace) -> tuple[np.ndarray, Alignment]:
    """Prediction -> metric depth (m) with one global scale and shift fitted on ``mask``."""
    pred = np.asarray(pred, dtype=np.float64)
    if space == "none":
        return pred, Alignment(1.0, 0.0, space)
    if space == "disparity":
        s, t = fit_affine(pred[mask], 1.0 / gt_m[mask])
        disp = s * pred + t
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(disp > 0, 1.0 / disp, np.nan)
        return depth, Alignment(s, t, space)
    if space == "depth":
        s, t = fit_affine(pred[mask], gt_m[mask])
        return s * pred + t, Alignment(s, t, space)
    raise ValueError(f"alignment space must be disparity, depth or none, got {space!r}")


def evaluate_sequence(
    pred: np.ndarray,
    gt_m: np.ndarray,
    space: AlignSpace = "disparity",
    depth_min_m: float = 0.3,
    depth_max_m: float = 1.5,
) -> SequenceMetrics:
    """Metrics of one sequence.

    Args:
        pred: (N, H, W) prediction (relative disparity, relative depth or metric depth per ``space``).
        gt_m: (N, H, W) ground-truth depth in metres (NaN/0 = invalid).
    """
    pred = np.asarray(pred)
    gt_m = np.asarray(gt_m, dtype=np.float64)
    if pred.ndim == 2:
        pred, gt_m = pred[None], gt_m[None]
    if pred.shape != gt_m.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt_m.shape} must both be (N, H, W)")
    mask = valid_mask(gt_m, pred, depth_min_m, depth_max_m)
    if mask.sum() < 2:
        raise ValueError(f"no valid ground-truth pixels within [{depth_min_m}, {depth_max_m}] m")
    depth, alignment = align(pred, gt_m, mask, space)
    mask &= np.isfinite(depth) & (depth > 0)
    p, g = depth[mask], gt_m[mask]
    ratio = np.maximum(p / g, g / p)
    diffs = []
    for t in range(len(depth) - 1):
        both = mask[t] & mask[t + 1]
        if both.any():
            diffs.append(np.abs((depth[t + 1] - depth[t])[both] - (gt_m[t + 1] - gt_m[t])[both]))
    temporal = float(np.concatenate(diffs).mean() * 100.0) if diffs else 0.0
    return SequenceMetrics(
        delta_105=float((ratio < 1.05).mean()),
        delta_110=float((ratio < 1.10).mean()),
        delta_125=float((ratio < 1.25).mean()),
        rel_pct=float((np.abs(p - g) / g).mean() * 100.0),
        rmse_cm=float(np.sqrt(((p - g) ** 2).mean()) * 100.0),
        temporal_err_cm=temporal,
        valid_pixels=int(mask.sum()),
        frames=len(depth),
        alignment=alignment,
    )


def mean_over_sequences(results: list[SequenceMetrics]) -> dict[str, float]:
    """The paper's dataset figure: the mean of per-sequence metrics."""
    if not results:
        raise ValueError("no sequences to average")
    return {k: float(np.mean([r.row()[k] for r in results])) for k in METRIC_KEYS}


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Paper-style table: one row per method/sequence, deltas in %, REL %, RMSE cm."""
    width = max([24, *(len(name) for name in rows)])  # names are sequence paths or topics: never cut them
    header = f"{'':{width}s} {'d<1.05':>8s} {'d<1.10':>8s} {'d<1.25':>8s} {'REL%':>8s} {'RMSE cm':>8s} {'TE cm':>8s}"
    lines = [header, "-" * len(header)]
    for name, m in rows.items():
        lines.append(
            f"{name:{width}s} {100 * m['delta_1.05']:8.2f} {100 * m['delta_1.10']:8.2f} {100 * m['delta_1.25']:8.2f} "
            f"{m['rel_pct']:8.2f} {m['rmse_cm']:8.2f} {m['temporal_err_cm']:8.2f}"
        )
    return "\n".join(lines)
