"""Wilson intervals and Fisher's exact test against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from dkt_grasping.trials.statistics import fisher_exact_two_sided, success_rate, wilson_interval


def test_wilson_7_of_10_by_hand():
    # p = 0.7, n = 10, z^2 = 3.841459: centre = (0.7 + 0.192073) / 1.384146 = 0.644495,
    # half = 1.959964 / 1.384146 * sqrt(0.021 + 0.009604) = 0.247717.
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.396778, abs=2e-6)
    assert hi == pytest.approx(0.892209, abs=2e-6)


def test_wilson_0_of_5_by_hand():
    # p = 0: centre = half = (z^2 / 10) / (1 + z^2 / 5) = 0.384146 / 1.768292 = 0.217241, so [0, 0.434482].
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0
    assert hi == pytest.approx(0.434482, abs=2e-6)


def test_wilson_all_successes_mirrors_zero_and_empty_is_nan():
    lo, hi = wilson_interval(5, 5)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.434482, abs=2e-6)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert math.isnan(success_rate(0, 0)) and success_rate(3, 4) == 0.75


@pytest.mark.parametrize("k, n", [(6, 5), (-1, 3), (1.5, 3)])
def test_bad_counts_are_rejected(k, n):
    with pytest.raises(ValueError, match="success"):
        wilson_interval(k, n)


def test_fisher_two_sided_by_hand_from_the_hypergeometric_formula():
    # Table [[8, 2], [1, 5]]: rows 10, 6; first column 9; N = 16. P(a) = C(10, a) C(6, 9 - a) / C(16, 9), C(16, 9) = 11440.
    # a = 3..9 -> 120, 1260, 3780, 4200, 1800, 270, 10 (sum 11440). Observed a = 8 (270); tables no more likely:
    # a = 3 (120), 8 (270), 9 (10) -> p = 400 / 11440.
    assert sum([120, 1260, 3780, 4200, 1800, 270, 10]) == math.comb(16, 9)
    assert fisher_exact_two_sided(8, 10, 1, 6) == pytest.approx(400 / 11440, rel=1e-12)


def test_fisher_identical_rows_give_one_and_empty_gives_nan():
    assert fisher_exact_two_sided(3, 6, 3, 6) == pytest.approx(1.0)
    assert math.isnan(fisher_exact_two_sided(0, 0, 3, 6))
