"""Success-rate statistics for grasp trials: Wilson score intervals and Fisher's exact test.

Rates are fractions of successful trials among the decided ones (successes
plus failures); skipped and aborted trials never enter a rate.
"""

from __future__ import annotations

import math

from scipy.stats import fisher_exact

#: Two-sided 95 % normal quantile, Phi^-1(0.975).
Z_95 = 1.959963984540054


def check_counts(successes: int, trials: int) -> None:
    """Raise ValueError unless 0 <= successes <= trials are whole numbers."""
    if int(successes) != successes or int(trials) != trials:
        raise ValueError(f"success and trial counts must be whole numbers, got {successes}/{trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")


def success_rate(successes: int, trials: int) -> float:
    """successes / trials; NaN when there are no trials."""
    check_counts(successes, trials)
    return successes / trials if trials else math.nan


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval (lower, upper) of a binomial proportion; (NaN, NaN) for zero trials.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not
    degenerate at 0/n or n/n, which small grasp experiments hit often.
    """
    check_counts(successes, trials)
    if trials == 0:
        return math.nan, math.nan
    n = trials
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamp float noise at the ends (0/n must give exactly 0, n/n exactly 1).
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_exact_two_sided(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """Two-sided p-value of Fisher's exact test on [[s_a, f_a], [s_b, f_b]] (scipy's definition:
    the summed probability of all tables with the same margins that are no more likely than the observed one)."""
    check_counts(successes_a, trials_a)
    check_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return math.nan
    table = [[successes_a, trials_a - successes_a], [successes_b, trials_b - successes_b]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)
