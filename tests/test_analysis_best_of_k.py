"""Best-of-k: closed form against brute force and against Monte Carlo."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.best_of_k import best_of_k, best_of_k_exact, trial_scores


def _enumerate(values, tests, k):
  """Every ordered k-tuple of draws with replacement, equally likely."""
  n = len(values)
  best, test = [], []
  for draw in itertools.product(range(n), repeat=k):
    # best validation value, ties to the earliest trial (input order)
    i = min(draw, key=lambda j: (values[j], j))
    best.append(values[i])
    test.append(tests[i])
  return np.array(best), np.array(test)


def _inverted_cdf(x, q):
  return np.quantile(x, q, method="inverted_cdf")


def _mean_best(values, k):
  """E[best of k] from the closed form (best_of_k_exact's mean)."""
  return best_of_k_exact(values, [k])["mean"].iloc[0]


@pytest.mark.parametrize("values", [
    [0.30, 0.10, 0.25, 0.10, 0.40],       # with a tie
    [3.0, 1.0, 2.0, 4.0],
    [0.5, np.inf, 0.2, 0.7],              # a diverged trial scored +inf
])
def test_closed_form_equals_brute_force(values):
  tests = [v + 0.01 * (i + 1) if np.isfinite(v) else np.inf for i, v in enumerate(values)]
  exact = best_of_k_exact(values, test=tests, ci=0.5).set_index("k")
  for k in range(1, 5):
    best, test = _enumerate(values, tests, k)
    assert _mean_best(values, k) == pytest.approx(best.mean())
    row = exact.loc[k]
    if np.isinf(best).any():
      assert np.isinf(row["mean"])
      assert row["p_inf"] == pytest.approx(np.isinf(best).mean())
    else:
      assert row["mean"] == pytest.approx(best.mean(), rel=1e-12)
      assert row["test_mean"] == pytest.approx(test.mean(), rel=1e-12)
    assert row["median"] == _inverted_cdf(best, 0.5)
    assert row["lo"] == _inverted_cdf(best, 0.25)
    assert row["hi"] == _inverted_cdf(best, 0.75)
    assert row["test_median"] == _inverted_cdf(test, 0.5)


def test_known_answer_and_dodge_form():
  # Two trials scoring 0 and 1: the best of k is 1 only if all k draws pick it.
  for k in range(1, 6):
    assert _mean_best([1.0, 0.0], k) == pytest.approx(0.5 ** k)
  # Dodge et al.'s formula for the expected maximum, applied to descending
  # scores, is the expected minimum.
  rng = np.random.default_rng(0)
  v = rng.normal(size=12)
  w = np.sort(v)[::-1]
  n = len(v)
  for k in (1, 3, 12):
    j = np.arange(1, n + 1)
    dodge = np.sum(w * ((j / n) ** k - ((j - 1) / n) ** k))
    assert _mean_best(v, k) == pytest.approx(dodge)
  # k = 1 is the mean; large k tends to the minimum.
  assert _mean_best(v, 1) == pytest.approx(v.mean())
  assert _mean_best(v, 2000) == pytest.approx(v.min())


def test_monte_carlo_agrees_with_closed_form():
  rng = np.random.default_rng(3)
  values = rng.lognormal(mean=-2.0, sigma=0.5, size=25)
  tests = values + rng.normal(scale=0.01, size=25)
  ks = [1, 2, 5, 10, 25]
  exact = best_of_k_exact(values, ks, test=tests)
  draws = np.random.default_rng(7).integers(0, len(values), size=(4000, max(ks)))
  for k, row in zip(ks, exact.itertuples()):
    picked = draws[:, :k][np.arange(4000), np.argmin(values[draws[:, :k]], axis=1)]
    best, test = values[picked], tests[picked]
    se = np.std(best, ddof=1) / np.sqrt(4000)
    assert abs(best.mean() - row.mean) < 4 * se
    assert abs(test.mean() - row.test_mean) < 4 * se + 1e-3
    assert abs(np.median(best) - row.median) <= 0.02
  assert np.all(np.diff(exact["mean"]) < 0)  # more trials, better best


def _study(statuses, scores, tests=None):
  n = len(scores)
  tests = scores if tests is None else tests
  return pd.DataFrame({
      "trial_id": [f"t{i}" for i in range(n)], "study_id": "s", "trial_index": range(n),
      "status": statuses, "goal_metric": "error", "best/val/error": scores,
      "best/test/error": tests})


def test_divergence_policy():
  trials = _study(["ok", "diverged", "ok", "failed"], [0.2, 0.05, 0.3, 0.01])
  s = trial_scores(trials)  # failed always excluded; diverged scores +inf
  assert list(s["trial_id"]) == ["t0", "t1", "t2"]
  assert np.isinf(s["value"].iloc[1])
  inf = best_of_k(trials).set_index("k")
  assert (inf["n_trials"] == 3).all() and (inf["n_diverged"] == 1).all()
  assert np.isinf(inf.loc[1, "mean"])  # some chance every draw diverges
  assert inf.loc[2, "p_inf"] == pytest.approx(1 / 9)
  assert inf.loc[3, "median"] == 0.2
  excl = best_of_k(trials, diverged="exclude").set_index("k")
  assert list(excl.index) == [1, 2]
  assert excl.loc[1, "mean"] == pytest.approx(0.25)
  chance = best_of_k(trials, diverged=0.9).set_index("k")
  assert chance.loc[1, "mean"] == pytest.approx((0.2 + 0.9 + 0.3) / 3)
  with pytest.raises(ValueError):
    trial_scores(trials, diverged="zero")


def test_selected_trial_test_score():
  # The best-validation trial is not the best-test trial: reported test follows selection.
  trials = _study(["ok"] * 3, [0.1, 0.2, 0.3], tests=[0.5, 0.0, 0.0])
  exact = best_of_k_exact([0.1, 0.2, 0.3], test=[0.5, 0.0, 0.0]).set_index("k")
  # P(trial 0 among k draws) = 1 - (2/3)^k
  for k in (1, 2, 3):
    assert exact.loc[k, "test_mean"] == pytest.approx(0.5 * (1 - (2 / 3) ** k))
  curve = best_of_k(trials).set_index("k")
  assert curve.loc[3, "test_mean"] == pytest.approx(0.5 * (1 - (2 / 3) ** 3))


def test_bounds_are_order_statistics_of_the_binomial():
  # 16 trials: the rerun median best of 16 is the 4.2% quantile; P(Bin(16, .042) <= 2)
  # = 0.97 >= 0.9 > P(<= 1) = 0.85, so the third best bounds it from above, one-sided.
  values = np.arange(1.0, 17.0)[::-1]
  trials = _study(["ok"] * 16, values)
  curve = best_of_k(trials).set_index("k")
  assert curve.loc[16, "sides"] == "upper" and curve.loc[16, "hi"] == 3.0
  assert np.isnan(curve.loc[16, "lo"]) and curve.loc[16, "median"] == 1.0
  # k = 1 is the median trial: two-sided, order statistics 5 and 12 at 90%
  # (scipy.stats.quantile_test's interval).
  assert curve.loc[1, "sides"] == "two-sided"
  assert (curve.loc[1, "lo"], curve.loc[1, "hi"]) == (5.0, 12.0)
