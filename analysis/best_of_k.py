"""Best-of-k: what a tuning budget of k trials buys, estimated from one study.

Given a study's N trial scores (lower is better), draw k trials with
replacement and keep the best. Its distribution is exact (Dodge et al. 2019,
"Show Your Work"), with no resampling noise: sort the scores descending,
w_1 >= ... >= w_N; the best of k draws is w_j with probability
(j/N)^k - ((j-1)/N)^k, so E[best of k] = sum_j w_j ((j/N)^k - ((j-1)/N)^k)
(the same sum as Dodge's expected maximum over ascending scores, mirrored).
Its quantiles are exact too: P(best <= v_(i)) = 1 - ((N-i)/N)^k over ascending
v_(1..N). They describe a k-trial draw *from this study*, not the protocol (a
draw's minimum never goes below the observed one): `best_of_k` reports the
calibrated bounds of analysis.bounds instead.

It also gives the test score of the selected trial (best validation among the
k draws), which is what a tuning protocol reports (Choi et al. 2019).

Divergence. By default a diverged trial scores +inf: it spends one of the k
trials and yields nothing, so a protocol that often diverges honestly pays for
it. Then E[best of k] is +inf for every k (all k draws diverge with positive
probability); medians and percentile bands stay informative. `diverged=
'exclude'` drops diverged trials (the budget then counts only stable trials);
a number scores them with that value (e.g. chance-level error). Failed trials
(infrastructure errors) are always excluded; a non-diverged trial with a NaN
score (no finite evaluation, goal never reached) scores +inf.

Ties in validation score are broken by trial order (trial_index, trial_id).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from analysis import bounds


def _ks(n: int, ks: Sequence[int] | None) -> np.ndarray:
  ks = np.arange(1, n + 1) if ks is None else np.asarray(list(ks), dtype=int)
  if len(ks) and ks.min() < 1:
    raise ValueError("k must be >= 1")
  return ks


def _prepare(values, test) -> tuple[np.ndarray, np.ndarray]:
  """Values and tests sorted ascending by value (stable: input order breaks ties)."""
  v = np.asarray(values, dtype=float)
  v = np.where(np.isnan(v), np.inf, v)
  t = np.full(len(v), np.nan) if test is None else np.asarray(test, dtype=float)
  if len(t) != len(v):
    raise ValueError("test must have one entry per value")
  order = np.argsort(v, kind="stable")
  return v[order], t[order]


def selection_probabilities(n: int, k: int) -> np.ndarray:
  """P(the best of k draws with replacement is the i-th smallest of n), i = 1..n."""
  i = np.arange(1, n + 1, dtype=float)
  return ((n - i + 1) / n) ** k - ((n - i) / n) ** k


def _weighted_mean(x: np.ndarray, p: np.ndarray) -> float:
  live = p > 0
  with np.errstate(invalid="ignore", over="ignore"):
    return float(np.sum(x[live] * p[live]))


def _weighted_quantile(x: np.ndarray, p: np.ndarray, q: float) -> float:
  """Inverted-CDF quantile of a discrete distribution (x with weights p)."""
  keep = ~np.isnan(x) & (p > 0)
  if not keep.any():
    return np.nan
  x, p = x[keep], p[keep]
  order = np.argsort(x, kind="stable")
  cdf = np.cumsum(p[order]) / p.sum()
  return float(x[order][min(np.searchsorted(cdf, q - 1e-12), len(x) - 1)])


def best_of_k_exact(values: Sequence[float], ks: Sequence[int] | None = None, *,
                    test: Sequence[float] | None = None, ci: float = 0.9) -> pd.DataFrame:
  """Exact distribution summary of best-of-k: mean, median, ci band; same for test.

  Columns: k, mean, median, lo, hi, p_inf (chance that the best is +inf),
  test_mean, test_median, test_lo, test_hi.
  """
  v, t = _prepare(values, test)
  n = len(v)
  a = (1.0 - ci) / 2.0
  rows = []
  for k in _ks(n, ks):
    if n == 0:
      rows.append({"k": int(k)})
      continue
    p = selection_probabilities(n, int(k))
    rows.append({"k": int(k), "mean": _weighted_mean(v, p),
                 "median": _weighted_quantile(v, p, 0.5), "lo": _weighted_quantile(v, p, a),
                 "hi": _weighted_quantile(v, p, 1 - a), "p_inf": float(p[np.isinf(v)].sum()),
                 "test_mean": _weighted_mean(t, p) if not np.isnan(t[p > 0]).any() else np.nan,
                 "test_median": _weighted_quantile(t, p, 0.5),
                 "test_lo": _weighted_quantile(t, p, a),
                 "test_hi": _weighted_quantile(t, p, 1 - a)})
  return pd.DataFrame(rows, columns=["k", "mean", "median", "lo", "hi", "p_inf", "test_mean",
                                     "test_median", "test_lo", "test_hi"])


def trial_scores(trials: pd.DataFrame, *, score: str | None = None, test: str | None = None,
                 diverged: str | float = "inf") -> pd.DataFrame:
  """Per-trial (score, test) under the divergence policy, in tie-break order.

  `score` defaults to best/val/<goal metric> (retrospective checkpoint
  selection) and `test` to best/test/<goal metric>; any trials column may be
  named (e.g. 'goal_step' for a steps-to-goal objective). Columns: trial_id,
  status, value, test.
  """
  if not (diverged in ("inf", "exclude") or isinstance(diverged, (int, float))):
    raise ValueError(f"diverged must be 'inf', 'exclude' or a number, got {diverged!r}")
  t = trials[trials["status"] != "failed"]
  t = t.assign(_ti=pd.to_numeric(t["trial_index"], errors="coerce")).sort_values(
      ["_ti", "trial_id"], kind="stable", na_position="last")
  value = _column(t, score, "val")
  tst = _column(t, test, "test", required=False)
  div = (t["status"] == "diverged").to_numpy()
  value = np.where(np.isnan(value), np.inf, value)
  if diverged == "inf":
    value[div], tst[div] = np.inf, np.inf
  elif diverged != "exclude":
    value[div], tst[div] = float(diverged), float(diverged)
  out = pd.DataFrame({"trial_id": t["trial_id"].to_numpy(), "status": t["status"].to_numpy(),
                      "value": value, "test": tst})
  if diverged == "exclude":
    out = out[~div].reset_index(drop=True)
  return out


def _column(t: pd.DataFrame, name: str | None, split: str, required: bool = True) -> np.ndarray:
  if name is not None:
    if name not in t.columns:
      if required:
        raise KeyError(f"no column {name!r} in trials")
      return np.full(len(t), np.nan)
    return np.array(pd.to_numeric(t[name], errors="coerce"), dtype=float)
  out = np.full(len(t), np.nan)
  metric = t["goal_metric"].to_numpy()
  for m in pd.unique(t["goal_metric"].dropna()):
    col = f"best/{split}/{m}"
    if col in t.columns:
      mask = metric == m
      out[mask] = pd.to_numeric(t.loc[mask, col], errors="coerce").to_numpy(dtype=float)
  return out


def best_of_k(trials: pd.DataFrame, *, by: str | Sequence[str] = "study_id",
              score: str | None = None, test: str | None = None,
              diverged: str | float = "inf", ks: Sequence[int] | None = None,
              ci: float = 0.9) -> pd.DataFrame:
  """Best-of-k curves per study (or any grouping): what k trials of this protocol buy.

  One row per group and k (default 1..N of that group). From the study's own
  trials (the exact plug-in distribution, no resampling noise): median (the
  median best of k draws), mean (Dodge et al.'s E[best of k]; +inf wherever a
  diverged trial can be all k draws), p_inf, test_median and test_mean (the
  selected trial's test score). lo / hi / sides bound the estimand a
  researcher quotes: the median over reruns of the best of k trials of this
  protocol (analysis.bounds, distribution-free, confidence `ci`): two-sided
  where order statistics allow, else an upper bound alone (sides 'upper', always
  at k = N: nothing bounds a best-of-N from below with N trials).
  """
  keys = [by] if isinstance(by, str) else list(by)
  cols = keys + ["k", "n_trials", "n_diverged", "median", "lo", "hi", "sides", "mean", "p_inf",
                 "test_median", "test_mean"]
  rows = []
  for key, g in trials.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    s = trial_scores(g, score=score, test=test, diverged=diverged)
    exact = best_of_k_exact(s["value"], ks, test=s["test"], ci=ci)
    n_div = int((s["status"] == "diverged").sum())
    for r in exact.itertuples():
      b = (bounds.median_best_of_k(s["value"].to_numpy(), int(r.k), ci=ci) if len(s)
           else bounds.Bound(np.nan, np.nan, bounds.NONE))
      rows.append({**dict(zip(keys, key)), "k": int(r.k), "n_trials": len(s),
                   "n_diverged": n_div, "median": getattr(r, "median", np.nan),
                   "lo": b.lo, "hi": b.hi, "sides": b.sides,
                   "mean": getattr(r, "mean", np.nan), "p_inf": getattr(r, "p_inf", np.nan),
                   "test_median": getattr(r, "test_median", np.nan),
                   "test_mean": getattr(r, "test_mean", np.nan)})
  return pd.DataFrame(rows, columns=cols)
