"""The intervals hold their stated coverage on simulated studies of known truth.

A subset of `python -m analysis.calibration` (fixed seeds, so deterministic):
two-sided 90% bounds must measure 85-95%, one-sided ones at least 85%, and the
inclusion verdict's false-positive rate at most 10% plus two standard errors.
The full table is in the README.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis import bounds, calibration

REPS = 300


def _rng(tag: int) -> np.random.Generator:
  return np.random.default_rng(1000 + tag)


@pytest.mark.parametrize("shape", calibration.STEP_SHAPES[:2], ids=lambda s: s.name)
def test_steps_to_result_upper_bound_covers_the_rerun_median(shape):
  cov, sides = calibration.steps_to_result_coverage(shape, 16, 150, _rng(1))
  assert sides == "upper"
  assert cov >= 0.85


@pytest.mark.parametrize("shape,n,k", [(1, 16, 1), (1, 64, 1), (0, 16, 4), (0, 32, 8)])
def test_two_sided_best_of_k_bounds_measure_85_to_95_percent(shape, n, k):
  shape = calibration.SCORE_SHAPES[shape]  # 0: with diverged trials at +inf
  cov, sides = calibration.best_of_k_coverage(shape, n, k, REPS, _rng(n + k))
  assert sides == "two-sided"
  assert 0.85 <= cov <= 0.95


@pytest.mark.parametrize("n", [8, 16])
def test_one_sided_best_of_k_bounds_hold(n):
  shape = calibration.SCORE_SHAPES[0]
  cov, sides = calibration.best_of_k_coverage(shape, n, n, REPS, _rng(n))
  assert sides == "upper"
  assert cov >= 0.85


def test_ranking_score_bound_holds():
  cov, sides = calibration.ranking_coverage(calibration.SCORE_SHAPES[0], 16, 150, _rng(7))
  assert sides == "upper" and cov >= 0.85


def test_inclusion_verdict_false_positive_rate_is_at_most_the_level():
  fpr = calibration.inclusion_false_positive_rate(calibration.SCORE_SHAPES[1], 16, REPS,
                                                  _rng(9))
  assert fpr <= 0.10 + 2 * math.sqrt(0.1 * 0.9 / REPS)


def test_the_old_bootstrap_band_would_fail_this_check():
  # The check can fail: a bootstrap of the minimum (the method these bounds replace)
  # never goes below the observed best, and covers the rerun median about half the time.
  shape = calibration.SCORE_SHAPES[1]
  rng = _rng(11)
  truth = shape.quantile(bounds.level(16))
  hits = 0
  for _ in range(200):
    v = shape.draw(rng, 16)
    reps = v[rng.integers(0, 16, size=(300, 16))].min(axis=1)
    lo, hi = np.quantile(reps, [0.05, 0.95], method="inverted_cdf")
    hits += lo <= truth <= hi
  assert hits / 200 < 0.7


def test_order_statistic_bound_matches_the_binomial():
  # n = 16, k = 4: [X_(1), X_(6)] covers with P(1 <= Bin(16, p_4) <= 5) = 0.907, the
  # smallest exact coverage >= 90% (scipy's equal-tailed rule would need 95% a side).
  b = bounds.median_best_of_k(np.arange(1.0, 17.0), 4)
  assert (b.sides, b.lo, b.hi) == ("two-sided", 1.0, 6.0)
  cov = stats.binom.cdf(5, 16, bounds.level(4)) - stats.binom.cdf(0, 16, bounds.level(4))
  assert cov == pytest.approx(0.907, abs=1e-3)
  # k = n = 16: no pair reaches 90%; the upper bound alone is the 3rd smallest.
  assert bounds.two_sided_ranks(16, bounds.level(16), 0.9) is None
  top = bounds.median_best_of_k(np.arange(1.0, 17.0), 16)
  assert (top.sides, top.hi) == ("upper", 3.0) and math.isnan(top.lo)


def test_truth_of_a_shape_with_failures():
  shape = calibration.Shape("u", stats.uniform(0, 100), p_fail=0.5)
  assert shape.quantile(0.25) == pytest.approx(50.0)
  assert shape.quantile(0.25, grid=30) == 60.0
  assert math.isinf(shape.quantile(0.6))


def test_steps_vs_seconds_moves_false_positive_rate_is_at_most_the_level():
  # Equal cost per step with 10% pace noise: every "move" is noise.
  fpr = calibration.clock_move_false_positive_rate(8, 40, _rng(13))
  assert fpr <= 0.10 + 2 * math.sqrt(0.1 * 0.9 / 160)


def test_budget_swaps_false_positive_rate_is_at_most_the_level():
  fpr = calibration.budget_swap_false_positive_rate(8, 30, _rng(17), n_boot=100)
  assert fpr <= 0.10 + 2 * math.sqrt(0.1 * 0.9 / 30)


def test_rank_changes_across_protocols_false_positive_rate_is_at_most_the_level():
  fpr = calibration.protocol_change_false_positive_rate(calibration.SCORE_SHAPES[0], 16, 60,
                                                        _rng(19))
  assert fpr <= 0.10 + 2 * math.sqrt(0.1 * 0.9 / 60)
