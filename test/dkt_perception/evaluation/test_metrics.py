"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_perception.evaluation.metrics import evaluate_sequence, fit_affine, format_table, mean_over_sequences


def test_affine_disparity_is_undone_exactly():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.4, 1.4, size=(3, 8, 9))
    pred = 0.37 * (1.0 / gt) - 0.21  # any affine map of the true disparity
    m = evaluate_sequence(pred, gt, "disparity")
    assert m.alignment.scale == pytest.approx(1 / 0.37) and m.alignment.shift == pytest.approx(0.21 / 0.37)
    assert (m.delta_105, m.delta_110, m.delta_125) == (1.0, 1.0, 1.0)
    assert m.rel_pct == pytest.approx(0.0, abs=1e-9) and m.rmse_cm == pytest.approx(0.0, abs=1e-9)
    assert m.temporal_err_cm == pytest.approx(0.0, abs=1e-9)
    assert m.valid_pixels == gt.size and m.frames == 3


def test_hand_computed_values_metric_prediction():
    gt = np.array([[[1.0, 1.0, 0.5, 2.0]]])  # 2.0 m is outside [0.3, 1.5]: not evaluated
    pred = np.array([[[1.04, 0.9, 0.6, 7.0]]])
    m = evaluate_sequence(pred, gt, "none")
    # ratios 1.04, 1.111, 1.2 -> below 1.05: 1/3, below 1.10: 1/3, below 1.25: 3/3
    assert (m.delta_105, m.delta_110, m.delta_125) == pytest.approx((1 / 3, 1 / 3, 1.0))
    assert m.rel_pct == pytest.approx(100 * (0.04 + 0.1 + 0.2) / 3)
    assert m.rmse_cm == pytest.approx(100 * np.sqrt((0.04**2 + 0.1**2 + 0.1**2) / 3))
    assert m.valid_pixels == 3


def test_temporal_error_hand_computed():
    gt = np.array([[[1.0]], [[1.1]], [[1.0]]])
    pred = np.array([[[1.0]], [[1.3]], [[1.0]]])  # moves 0.3 then -0.3 where gt moves 0.1 then -0.1
    m = evaluate_sequence(pred, gt, "none")
    assert m.temporal_err_cm == pytest.approx(20.0)


def test_depth_space_alignment_and_mean():
    gt = np.linspace(0.5, 1.2, 20).reshape(1, 4, 5)
    m = evaluate_sequence(3.0 * gt + 0.5, gt, "depth")
    assert m.alignment.scale == pytest.approx(1 / 3) and m.rmse_cm == pytest.approx(0.0, abs=1e-9)
    a = evaluate_sequence(gt * 1.1, gt, "none")
    mean = mean_over_sequences([m, a])
    assert mean["rel_pct"] == pytest.approx(5.0)
    assert "d<1.05" in format_table({"dkt": mean})


def test_errors():
    with pytest.raises(ValueError, match="must both be"):
        evaluate_sequence(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="no valid ground-truth pixels"):
        evaluate_sequence(np.ones((1, 2, 2)), np.full((1, 2, 2), 5.0))
    with pytest.raises(ValueError, match="at least 2"):
        fit_affine(np.ones(1), np.ones(1))
