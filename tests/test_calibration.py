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


@pytest.mark.parametrize("n", [16, 64])
def test_two_sided_best_of_k_bounds_measure_85_to_95_percent(n):
  shape = calibration.SCORE_SHAPES[1]
  cov, sides = calibration.best_of_k_coverage(shape, n, 1, REPS, _rng(n))
  assert sides == "two-sided"
  assert 0.85 <= cov <= 0.95


@pytest.mark.parametrize("k", [4, 16])
def test_one_sided_best_of_k_bounds_hold(k):
  shape = calibration.SCORE_SHAPES[0]  # with diverged trials at +inf
  cov, sides = calibration.best_of_k_coverage(shape, 16, k, REPS, _rng(k))
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
  # The upper bound at n = 16, k = 4 is the 5th smallest: P(Bin(16, p_4) <= 4) = 0.903.
  b = bounds.median_best_of_k(np.arange(1.0, 17.0), 4)
  assert (b.sides, b.hi) == ("upper", 5.0)
  assert stats.binom.cdf(4, 16, bounds.level(4)) == pytest.approx(0.903, abs=1e-3)
  assert stats.binom.cdf(3, 16, bounds.level(4)) < 0.9


def test_truth_of_a_shape_with_failures():
  shape = calibration.Shape("u", stats.uniform(0, 100), p_fail=0.5)
  assert shape.quantile(0.25) == pytest.approx(50.0)
  assert shape.quantile(0.25, grid=30) == 60.0
  assert math.isinf(shape.quantile(0.6))
