"""The pose-set check refuses what cannot determine a calibration, with a message saying why."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dkt_grasping.calibration.pose_set import CoverageConfig, DegeneratePoseSet, pose_set_coverage
from dkt_stack.transforms import make_transform


def _poses(rotvecs_deg, rng):
    return [make_transform(Rotation.from_rotvec(np.radians(r)).as_matrix(), rng.uniform(-0.1, 0.1, 3) + np.array([0.3, 0.0, 0.2])) for r in rotvecs_deg]


def test_two_axes_of_30_degrees_pass(rng):
    rv = [(a, b, 0.0) for a in (-20, 0, 20) for b in (-20, 0, 20)]
    cov = pose_set_coverage(_poses(rv, rng))
    assert cov.usable and not cov.warnings
    np.testing.assert_allclose(cov.rotation_span_deg[:2], [40.0, 40.0], atol=0.5)


def test_too_few_poses_refused(rng):
    cov = pose_set_coverage(_poses([(0, 0, 0), (30, 20, 0)], rng))
    with pytest.raises(DegeneratePoseSet, match="2 poses: hand-eye calibration needs at least 3 poses"):
        cov.require_usable()
    assert "no poses" in pose_set_coverage([]).problems[0]


def test_rotations_about_one_axis_refused(rng):
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    cov = pose_set_coverage(_poses([axis * a for a in np.linspace(-40, 40, 12)], rng))
    with pytest.raises(DegeneratePoseSet, match="all rotations are about one axis"):
        cov.require_usable()
    assert cov.rotation_span_deg[0] == pytest.approx(80.0, abs=0.5) and cov.rotation_span_deg[1] < 1e-6


def test_small_second_axis_warns(rng):
    rv = [(a, b, 0.0) for a in (-20, 0, 20) for b in (-6, 6)]
    cov = pose_set_coverage(_poses(rv, rng), CoverageConfig(min_second_axis_deg=8.0))
    assert cov.usable and "below the recommended 30 deg" in cov.warnings[0]
