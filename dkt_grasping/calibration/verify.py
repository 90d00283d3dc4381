"""``--verify``: predict where the board is from the calibration and compare with what the camera sees at new poses.

With the calibrated X and the board mount Y (from the calibration's session
result), every new sample predicts the board's pose in the camera,
``C_i = X^-1 G_i Y`` (frames as in :mod:`.solver`), and its corners in the
image. The report compares the prediction with the detection: the board
centre's position (mm, camera frame), its orientation (deg) and the corners (px).
When Y is not known (the board was remounted), it is fitted to the new
samples with X held fixed; the figures then measure how consistent X is
across the new poses rather than an absolute error, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dkt_grasping.calibration.board import BoardModel, project
from dkt_grasping.calibration.detection import DetectionConfig
from dkt_grasping.calibration.samples import Sample
from dkt_grasping.calibration.solver import nuisance_from_X, pose_difference, prepare_observations
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import invert_transform


@dataclass
class VerifyResult:
    """Prediction errors at the verification poses; ``passed`` compares the medians with the limits."""

    mode: str
    y_source: str  #: "calibration" (Y from the calibration run) or "fitted" (Y fitted here with X fixed)
    per_sample: list[dict]  #: index, position_mm, rotation_deg, corner_rms_px
    median_mm: float
    max_mm: float
    median_deg: float
    max_deg: float
    median_px: float
    passed: bool
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "y_source": self.y_source,
            "passed": self.passed,
            "median_position_mm": round(self.median_mm, 3),
            "max_position_mm": round(self.max_mm, 3),
            "median_rotation_deg": round(self.median_deg, 4),
            "max_rotation_deg": round(self.max_deg, 4),
            "median_corner_px": round(self.median_px, 3),
            "per_sample": self.per_sample,
            "rejected": [{"index": i, "reason": r} for i, r in self.rejected],
        }

    def text(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"verify ({self.mode}, board mount {'from the calibration' if self.y_source == 'calibration' else 'fitted to these poses'}): {verdict}",
            f"board centre position error: median {self.median_mm:.2f} mm, max {self.max_mm:.2f} mm",
            f"board rotation error: median {self.median_deg:.3f} deg, max {self.max_deg:.3f} deg; corners median {self.median_px:.2f} px",
        ]
        lines += [f"  sample {p['index']}: {p['position_mm']:.2f} mm, {p['rotation_deg']:.3f} deg, {p['corner_rms_px']:.2f} px" for p in self.per_sample]
        lines += [f"  sample {i} not used: {r}" for i, r in self.rejected]
        return "\n".join(lines)


def verify(
    samples: list[Sample],
    mode: str,
    model: BoardModel,
    intrinsics: CameraIntrinsics,
    X: np.ndarray,
    Y: np.ndarray | None = None,
    *,
    checks: DetectionConfig | None = None,
    max_mm: float = 3.0,
    max_deg: float = 0.5,
) -> VerifyResult:
    """Compare predictions from (X, Y) with the detections in ``samples``; see the module docstring."""
    observations, rejected = prepare_observations(samples, mode, model, intrinsics, checks or DetectionConfig())
    if not observations:
        raise ValueError("no usable verification sample" + (f"; first: sample {rejected[0][0]}: {rejected[0][1]}" if rejected else ""))
    y_source = "calibration"
    if Y is None:
        Y, y_source = nuisance_from_X(observations, X), "fitted"
    per = []
    for o in observations:
        predicted = invert_transform(X) @ o.G @ Y
        mm, deg = pose_difference(predicted, o.C)
        px = float(np.sqrt(np.mean(np.sum((project(predicted, o.object_points, intrinsics) - o.image_points) ** 2, axis=1))))
        per.append({"index": o.index, "position_mm": round(mm, 3), "rotation_deg": round(deg, 4), "corner_rms_px": round(px, 3)})
    mm = np.array([p["position_mm"] for p in per])
    deg = np.array([p["rotation_deg"] for p in per])
    px = np.array([p["corner_rms_px"] for p in per])
    passed = bool(np.median(mm) <= max_mm and np.median(deg) <= max_deg)
    return VerifyResult(
        mode, y_source, per, float(np.median(mm)), float(mm.max()), float(np.median(deg)), float(deg.max()), float(np.median(px)), passed, rejected
    )
