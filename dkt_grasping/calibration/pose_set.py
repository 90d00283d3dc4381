"""Is a set of flange poses good enough for hand-eye calibration?

Hand-eye calibration solves for a rotation from the rotations *between*
poses: with fewer than three poses, or with every rotation about one axis,
part of the unknown transform is unobservable and any solver returns an
arbitrary answer. The check looks at the flange orientations as rotation
vectors about their mean and measures their extent along the principal axes
(degrees): the second-largest extent says whether two rotation axes are
covered. The issue's target for automatic collection is at least 30 deg
about two axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from dkt_stack.config import param


class DegeneratePoseSet(ValueError):
    """The poses cannot determine the calibration; the message says why and what to add."""


@dataclass
class CoverageConfig:
    """Thresholds of the pose-set check (degrees, metres)."""

    min_poses: int = param(3, help="refuse fewer poses than this (hand-eye needs >= 2 motions with different rotation axes)")
    min_second_axis_deg: float = param(
        8.0, help="refuse when the rotations span less than this about a second axis (all rotations about one axis)"
    )
    target_span_deg: float = param(30.0, help="warn when the rotations span less than this about the two main axes")
    min_translation_span_m: float = param(0.02, help="warn when the flange positions span less than this (m)")


@dataclass
class PoseSetCoverage:
    """How a pose set covers rotations and translations; ``problems`` are refusals, ``warnings`` advice."""

    count: int
    rotation_span_deg: list[float]  #: extent of the orientations along their 3 principal rotation axes, largest first
    translation_span_m: list[float]  #: extent of the flange positions along their 3 principal axes, largest first
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems

    def require_usable(self) -> PoseSetCoverage:
        """Raise :class:`DegeneratePoseSet` naming every problem; return self otherwise."""
        if self.problems:
            raise DegeneratePoseSet("pose set refused: " + "; ".join(self.problems))
        return self

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "rotation_span_deg": [round(v, 2) for v in self.rotation_span_deg],
            "translation_span_m": [round(v, 4) for v in self.translation_span_m],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def _spans(points: np.ndarray) -> list[float]:
    """Extent (max - min) of Nx3 points along their principal axes, largest first."""
    if len(points) < 2:
        return [0.0, 0.0, 0.0]
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt.T
    spans = np.ptp(proj, axis=0)
    return sorted((float(s) for s in np.pad(spans, (0, 3 - len(spans)))), reverse=True)


def pose_set_coverage(T_base_flange: list[np.ndarray] | np.ndarray, config: CoverageConfig | None = None) -> PoseSetCoverage:
    """Check flange poses (4x4, base frame, m) for a hand-eye calibration; see the module docstring."""
    c = config or CoverageConfig()
    poses = np.asarray(T_base_flange, dtype=np.float64).reshape(-1, 4, 4)
    n = len(poses)
    problems: list[str] = []
    warnings: list[str] = []
    if n == 0:
        return PoseSetCoverage(0, [0.0] * 3, [0.0] * 3, [f"no poses (hand-eye calibration needs at least {c.min_poses})"])
    rotations = Rotation.from_matrix(poses[:, :3, :3])
    mean = rotations.mean()
    rotvecs = np.degrees((mean.inv() * rotations).as_rotvec()).reshape(-1, 3)
    rot_span = _spans(rotvecs)
    trans_span = _spans(poses[:, :3, 3])
    if n < c.min_poses:
        problems.append(
            f"{n} pose{'s' if n != 1 else ''}: hand-eye calibration needs at least {c.min_poses} poses "
            "(two motions with different rotation axes)"
        )
    elif rot_span[1] < c.min_second_axis_deg:
        problems.append(
            f"all rotations are about one axis (orientation spans {rot_span[0]:.1f}, {rot_span[1]:.1f}, {rot_span[2]:.1f} deg "
            f"about the principal axes; a second axis needs >= {c.min_second_axis_deg:g} deg): tilt the "
            f"tag or camera about a second axis too ({c.target_span_deg:g} deg or more recommended)"
        )
    if not problems:
        if rot_span[1] < c.target_span_deg:
            warnings.append(
                f"rotations span {rot_span[0]:.1f} and {rot_span[1]:.1f} deg about the two main axes, "
                f"below the recommended {c.target_span_deg:g} deg: accuracy will suffer"
            )
        if trans_span[0] < c.min_translation_span_m:
            warnings.append(f"the flange positions span only {trans_span[0] * 1000:.0f} mm")
    return PoseSetCoverage(n, rot_span, trans_span, problems, warnings)
