"""Confidence bounds for what a rerun of a study would report: the median best of k.

The estimand behind every "best" the harness prints. A study of k trials drawn
from a protocol's trial distribution F (lower is better; +inf where a trial
never reached the goal or diverged) reports the best (the minimum) of its k
scores. Rerun the study many times: the median of that best is

    m_k = the p_k-quantile of F,   p_k = 1 - 2^(-1/k),

because P(min of k <= x) = 1 - (1 - F(x))^k. Steps to result per batch size
(Shallue et al.'s quantity) is m_n with the study's own n trials; a ranking's
best validation score is m_n of the optimizer's study; a best-of-k curve is m_k
for k = 1..n. The study's own minimum is a median-unbiased estimate of m_n
(it is one draw of the minimum of n).

Bounds come from order statistics, which need no model of F: the number of the
n observed scores below m_k is Binomial(n, p_k), so the j-th smallest score
bounds m_k with a probability that binomial gives. Two-sided: the pair of order
statistics whose exact coverage is the smallest at or above the level
(two_sided_ranks). When no pair reaches the level (always for k = n: P(at least
one of n scores below m_n) = 1/2), the lower side is left unbounded
and the upper bound is one-sided at the full level (scipy.stats.quantile_test's
confidence_interval): a rerun's median best can
be below the observed best, and nothing in the data says by how much (a
bootstrap of a minimum never goes below the observed minimum, which is why the
harness no longer uses one here). Ties on an evaluation grid make the bounds
conservative (coverage at least the level); analysis.calibration measures it.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
from scipy import stats

TWO_SIDED = "two-sided"
UPPER = "upper"   # one-sided: rerun median <= hi with the stated confidence; lo unbounded
NONE = "none"     # too few trials to bound either side


class Bound(NamedTuple):
  """lo / hi bound m_k (NaN: that side is not bounded); `sides` says which hold."""
  lo: float
  hi: float
  sides: str


def level(k: int) -> float:
  """p_k = 1 - 2^(-1/k): m_k, the median best of k, is this quantile of F."""
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  return 1.0 - 0.5 ** (1.0 / k)


def _upper(x: np.ndarray, p: float, ci: float) -> float:
  """One-sided: the smallest order statistic above the p-quantile with prob. >= ci."""
  # The statistic's q is irrelevant to the interval; 0.0 keeps scipy quiet.
  res = stats.quantile_test(x, q=0.0, p=p, alternative="less")
  return float(res.confidence_interval(confidence_level=ci).high)


def two_sided_ranks(n: int, p: float, ci: float) -> tuple[int, int] | None:
  """Ranks (l, u), 1-based, with P(X_(l) <= q_p <= X_(u)) = P(l <= Bin(n, p) <= u - 1)
  >= ci and that coverage as small as possible (ties: the most balanced tails), or
  None when no pair reaches ci.

  Hand-written because scipy.stats.quantile_test's interval gives each tail
  (1 - ci) / 2 and so over-covers by up to 5 points on small n (94% at n = 64 for
  a nominal 90%); choosing the pair by its exact total coverage keeps the
  interval distribution-free and as close to the level as ranks allow.
  """
  cdf = stats.binom.cdf(np.arange(-1, n + 1), n, p)  # cdf[j + 1] = P(B <= j)
  best = None
  for l in range(1, n + 1):
    below = cdf[l]  # P(B <= l - 1): the lower bound misses
    for u in range(l + 1, n + 1):
      cov = cdf[u] - below  # P(l <= B <= u - 1)
      if cov >= ci - 1e-12:
        key = (round(cov, 12), abs(below - (1.0 - cdf[u])))
        if best is None or key < best[:2]:
          best = (*key, l, u)
        break  # a larger u only covers more
  return None if best is None else (best[2], best[3])


def median_best_of_k(values: Sequence[float], k: int, *, ci: float = 0.9) -> Bound:
  """Bounds on m_k (the median over reruns of the best of k trials) from n scores.

  Two-sided at `ci` where order statistics bound both sides; else an upper bound
  at `ci` alone (sides='upper', lo NaN). NaN scores count as +inf (not reached).
  hi = +inf means fewer trials reached a finite score than the bound needs.
  """
  x = np.asarray(values, dtype=float)
  x = np.where(np.isnan(x), np.inf, x)
  if len(x) == 0:
    return Bound(math.nan, math.nan, NONE)
  p = level(k)
  ranks = two_sided_ranks(len(x), p, ci)
  if ranks is not None:
    xs = np.sort(x)
    return Bound(float(xs[ranks[0] - 1]), float(xs[ranks[1] - 1]), TWO_SIDED)
  hi = _upper(x, p, ci)
  if math.isnan(hi):
    return Bound(math.nan, math.nan, NONE)
  return Bound(math.nan, hi, UPPER)


def tail_count_pvalue(special: Sequence[float], general: Sequence[float]) -> tuple[int, float]:
  """(r, p): r special scores strictly below every general score, and the chance of
  r or more under 'both studies draw from one distribution' (exchangeability).

  Under that null the r smallest of the pooled scores all come from the special
  study with probability C(n_s, r) / C(n_s + n_g, r) (a hypergeometric tail): an
  exact, distribution-free test of "the general optimizer's protocol found worse
  than the special one's" that looks only at the best trials, which are what a
  ranking compares. Ties count against the violation (strict inequality).
  """
  s = np.where(np.isnan(np.asarray(special, float)), np.inf, np.asarray(special, float))
  g = np.where(np.isnan(np.asarray(general, float)), np.inf, np.asarray(general, float))
  if len(s) == 0 or len(g) == 0:
    return 0, math.nan
  r = int(np.sum(s < g.min()))
  return r, float(math.comb(len(s), r) / math.comb(len(s) + len(g), r))


def fmt_steps(x: float) -> str:
  """An integer count with thousands separators ('–' when NaN, 'inf')."""
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "–"
  return "inf" if math.isinf(x) else f"{int(round(x)):,}"


def describe(point: float, bound: Bound, fmt=fmt_steps) -> str:
  """'2,200 (<= 3,600)', '2,200 [1,900, 3,600]', '2,200 (upper bound: not reached by
  enough trials)': the point and what the data bound, as a researcher would quote it."""
  p = fmt(point)
  if bound.sides == TWO_SIDED:
    return f"{p} [{fmt(bound.lo)}, {fmt(bound.hi)}]"
  if bound.sides == UPPER:
    return f"{p} (<= {fmt(bound.hi)})" if math.isfinite(bound.hi) else f"{p} (unbounded)"
  return f"{p} (too few trials to bound)"
