"""Steps to result and batch-size scaling (Shallue et al. 2018).

Steps to result of a study (their rule): over the study's trials that finished
without diverging, the first evaluation step at which the validation metric is
strictly below the goal; equivalently the minimum over those trials of each
trial's first goal step. It is quantised to the evaluation cadence and NaN when
no trial reached the goal. Diverged trials are excluded even when they reached
the goal before diverging: an unstable point is not a usable result.

Scaling regimes of a steps-vs-batch-size curve S(b) (b sorted, S=inf where the
goal was not reached), anchored at the smallest batch size b0 that reached it:
  perfect scaling     P(b) = S(b0) * b0 / b (steps halve as the batch doubles).
  perfect_limit       the largest b such that every batch size from b0 to b has
                      S <= max_ratio * P: where the perfect regime ends.
  max_useful_batch    the smallest b (with finite S) beyond which no larger batch
                      size cuts steps by at least `min_gain` (a fraction of S(b)):
                      where the curve saturates (maximal data parallelism).
                      `saturation_observed` is False when no larger batch size
                      reached the goal, i.e. the grid ends before saturation shows.
scaling_curve bounds each batch size's steps to result with order statistics
(analysis.bounds: what a rerun of the study would give, its median; one-sided,
because a best-of-n cannot be bounded from below from n trials) and marks every
value at the edge of what was run as censored.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from analysis import bounds, schema

ELIGIBLE = ("ok",)


def _keys(by: str | Sequence[str]) -> list[str]:
  return [by] if isinstance(by, str) else list(by)


def _goal_columns(trials: pd.DataFrame, metric: str | None, threshold: float | None
                  ) -> tuple[pd.Series, pd.Series]:
  """Per-trial validation column and threshold (overrides win over records)."""
  if metric is not None:
    col = pd.Series(schema.val_column(metric), index=trials.index)
  else:
    col = trials["goal_metric"].map(lambda m: schema.val_column(m) if isinstance(m, str) else None)
  thr = (pd.Series(float(threshold), index=trials.index) if threshold is not None
         else pd.to_numeric(trials["goal_threshold"], errors="coerce"))
  return col, thr


def goal_times(trials: pd.DataFrame, curves: pd.DataFrame, *, metric: str | None = None,
               threshold: float | None = None, strict: bool = True,
               time_col: str = "step") -> pd.Series:
  """Each trial's `time_col` at its first eval reaching the goal (NaN if never).

  The goal is val/<goal_metric> < goal_threshold from the trial's record unless
  `metric` / `threshold` override it (`strict=False` uses <=, AlgoPerf's rule).
  Recomputed from the curve, so other goals can be asked of stored results.
  """
  out = pd.Series(np.nan, index=pd.Index(trials["trial_id"], name="trial_id"), name=time_col)
  if trials.empty or curves.empty:
    return out
  col, thr = _goal_columns(trials, metric, threshold)
  goal = pd.DataFrame({"trial_id": trials["trial_id"].to_numpy(), "col": col.to_numpy(),
                       "thr": thr.to_numpy()}).dropna()
  ordered = curves[curves["trial_id"].isin(goal["trial_id"])].sort_values(
      ["trial_id", "step"], kind="stable")
  for (c, t), g in goal.groupby(["col", "thr"], sort=False):
    if c not in ordered.columns:
      continue
    rows = ordered[ordered["trial_id"].isin(g["trial_id"])]
    v = rows[c].to_numpy(dtype=float)
    hit = rows[(v < t) if strict else (v <= t)]
    first = hit.groupby("trial_id", sort=False)[time_col].first()
    out.loc[first.index] = first.to_numpy(dtype=float)
  return out


def _eligible(trials: pd.DataFrame, statuses: Sequence[str]) -> pd.Series:
  return trials["status"].isin(list(statuses))


def _order(trials: pd.DataFrame) -> pd.DataFrame:
  """Stable tie-break order: trial_index, then trial_id (Shallue: by trial id)."""
  return trials.assign(_ti=pd.to_numeric(trials["trial_index"], errors="coerce")).sort_values(
      ["_ti", "trial_id"], kind="stable", na_position="last").drop(columns="_ti")


def steps_to_result(trials: pd.DataFrame, curves: pd.DataFrame, *,
                    by: str | Sequence[str] = "batch_size", metric: str | None = None,
                    threshold: float | None = None, strict: bool = True,
                    statuses: Sequence[str] = ELIGIBLE) -> pd.DataFrame:
  """Steps to result per group (`by`, e.g. batch size): Shallue's rule.

  Columns: the `by` keys, steps_to_result (NaN if no eligible trial reached the
  goal), fastest_trial_id (ties: lowest trial_index), n_trials, n_eligible
  (status in `statuses`, default only 'ok'), n_reached.
  """
  keys = _keys(by)
  steps = goal_times(trials, curves, metric=metric, threshold=threshold, strict=strict)
  t = _order(trials).assign(_goal=lambda d: d["trial_id"].map(steps).to_numpy(dtype=float),
                            _ok=lambda d: _eligible(d, statuses))
  rows = []
  for key, g in t.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    ok = g[g["_ok"]]
    reached = ok.dropna(subset=["_goal"])
    if reached.empty:
      best, fastest = np.nan, None
    else:
      pos = int(np.argmin(reached["_goal"].to_numpy()))
      best, fastest = float(reached["_goal"].iloc[pos]), reached["trial_id"].iloc[pos]
    rows.append({**dict(zip(keys, key)), "steps_to_result": best, "fastest_trial_id": fastest,
                 "n_trials": len(g), "n_eligible": len(ok), "n_reached": len(reached)})
  return pd.DataFrame(rows, columns=keys + ["steps_to_result", "fastest_trial_id", "n_trials",
                                            "n_eligible", "n_reached"])


def perfect_scaling(batch_sizes: Sequence[float], steps: Sequence[float]) -> np.ndarray:
  """Steps under perfect scaling, anchored at the smallest batch size that reached the goal."""
  b = np.asarray(batch_sizes, dtype=float)
  s = np.asarray(steps, dtype=float)
  order = np.argsort(b, kind="stable")
  finite = np.isfinite(s[order])
  out = np.full(len(b), np.nan)
  if not finite.any():
    return out
  a = order[np.argmax(finite)]
  out[:] = s[a] * b[a] / b
  out[b < b[a]] = np.nan
  return out


def scaling_regimes(batch_sizes: Sequence[float], steps: Sequence[float], *,
                    max_ratio: float = 1.5, min_gain: float = 0.1) -> dict[str, float | bool]:
  """perfect_limit, max_useful_batch and saturation_observed of one scaling curve.

  Definitions in the module docstring; NaN steps count as 'not reached' (inf).
  """
  b = np.asarray(batch_sizes, dtype=float)
  s = np.asarray(steps, dtype=float)
  order = np.argsort(b, kind="stable")
  b, s = b[order], np.where(np.isfinite(s[order]), s[order], np.inf)
  out = {"perfect_limit": np.nan, "max_useful_batch": np.nan, "saturation_observed": False}
  finite = np.isfinite(s)
  if not finite.any():
    return out
  a = int(np.argmax(finite))
  j = a
  while j + 1 < len(b) and s[j + 1] <= max_ratio * s[a] * b[a] / b[j + 1]:
    j += 1
  out["perfect_limit"] = float(b[j])
  for i in range(a, len(b)):
    if finite[i] and np.all(s[i + 1:] > (1.0 - min_gain) * s[i]):
      out["max_useful_batch"] = float(b[i])
      out["saturation_observed"] = bool(finite[i + 1:].any())
      break
  return out


class Scaling(NamedTuple):
  """Steps to result per batch size with bounds, and the scaling-regime estimates."""
  table: pd.DataFrame      # per group and batch size (columns in scaling_curve's docstring)
  estimates: pd.DataFrame  # per group: perfect_limit, max_useful_batch and their censoring


def _budget_steps(curves: pd.DataFrame, trial_ids: Sequence[str]) -> tuple[float, float]:
  """(first, last) evaluation step among these trials' curves (NaN if none)."""
  steps = pd.to_numeric(curves.loc[curves["trial_id"].isin(trial_ids), "step"],
                        errors="coerce").dropna()
  steps = steps[steps > 0]
  return (float(steps.min()), float(steps.max())) if len(steps) else (np.nan, np.nan)


def scaling_curve(trials: pd.DataFrame, curves: pd.DataFrame, *,
                  batch_col: str = "batch_size", groups: Sequence[str] = (),
                  metric: str | None = None, threshold: float | None = None,
                  strict: bool = True, statuses: Sequence[str] = ELIGIBLE, ci: float = 0.9,
                  max_ratio: float = 1.5, min_gain: float = 0.1) -> Scaling:
  """Steps to result per batch size with order-statistic bounds, and the regimes.

  Estimand of the bounds (analysis.bounds): the steps to result a rerun of the
  study (same protocol, same number of trials) would give, its median over
  reruns. The observed steps to result is a median-unbiased estimate of it; `hi`
  bounds it from above with confidence `ci` (one-sided: `sides` is 'upper' and
  `lo` NaN, since with n trials nothing bounds a best-of-n from below without a
  model of the tail).

  Table columns: group keys, batch size, steps_to_result (NaN: not reached), lo,
  hi, sides, censored ('<=' when reached at the first evaluation, so the goal
  step is at most that; '>' when no trial reached the goal within the budget,
  then steps_to_result is NaN and the budget says the most steps run), budget
  (the last evaluation step run), first_eval, perfect_steps, n_eligible,
  n_reached. Estimates: perfect_limit and max_useful_batch (module docstring),
  each with a `_censored` flag: True when the value is the largest batch size
  run where the regime had not ended (perfect limit) or no saturation was seen
  (maximal useful batch size), i.e. the truth is that value or larger. They
  are point estimates on the grid of batch sizes run, without an interval: with
  only an upper bound per batch size no calibrated interval of a ratio of steps
  exists, and a bootstrap one would be built on the minimum's bias.
  """
  groups = list(groups)
  steps = goal_times(trials, curves, metric=metric, threshold=threshold, strict=strict)
  t = trials.assign(_goal=trials["trial_id"].map(steps).to_numpy(dtype=float))
  t = t[_eligible(t, statuses)]
  table_rows, est_rows = [], []
  curve_iter = trials.groupby(groups, sort=True, dropna=False) if groups else [((), trials)]
  for gkey, gall in curve_iter:
    gkey = gkey if isinstance(gkey, tuple) else (gkey,)
    gdict = dict(zip(groups, gkey))
    sel = t[t["trial_id"].isin(gall["trial_id"])]
    batches = np.sort(pd.to_numeric(gall[batch_col], errors="coerce").dropna().unique())
    if len(batches) == 0:
      continue
    point = np.full(len(batches), np.inf)
    rows = []
    for i, bsz in enumerate(batches):
      at = sel[sel[batch_col] == bsz]
      g = at["_goal"].to_numpy(dtype=float)
      g = np.where(np.isfinite(g), g, np.inf)
      first, last = _budget_steps(curves, at["trial_id"])
      b = bounds.median_best_of_k(g, max(len(g), 1), ci=ci)
      if len(g):
        point[i] = g.min()
      censored = ""
      if not np.isfinite(point[i]):
        censored = ">"
      elif point[i] <= first:
        censored = "<="
      rows.append({**gdict, batch_col: bsz,
                   "steps_to_result": point[i] if np.isfinite(point[i]) else np.nan,
                   "lo": b.lo, "hi": b.hi, "sides": b.sides, "censored": censored,
                   "budget": last, "first_eval": first, "n_eligible": len(g),
                   "n_reached": int(np.isfinite(g).sum())})
    perfect = perfect_scaling(batches, np.where(np.isfinite(point), point, np.nan))
    for r, p in zip(rows, perfect):
      r["perfect_steps"] = p
    table_rows += rows
    est = scaling_regimes(batches, point, max_ratio=max_ratio, min_gain=min_gain)
    est_rows.append({**gdict, "perfect_limit": est["perfect_limit"],
                     "perfect_limit_censored": bool(est["perfect_limit"] == batches[-1]),
                     "max_useful_batch": est["max_useful_batch"],
                     "max_useful_batch_censored": bool(np.isfinite(est["max_useful_batch"])
                                                       and not est["saturation_observed"]),
                     "saturation_observed": est["saturation_observed"],
                     "largest_batch": float(batches[-1])})
  table_cols = groups + [batch_col, "steps_to_result", "lo", "hi", "sides", "censored",
                         "budget", "first_eval", "perfect_steps", "n_eligible", "n_reached"]
  est_cols = groups + ["perfect_limit", "perfect_limit_censored", "max_useful_batch",
                       "max_useful_batch_censored", "saturation_observed", "largest_batch"]
  return Scaling(pd.DataFrame(table_rows, columns=table_cols),
                 pd.DataFrame(est_rows, columns=est_cols))


def describe_steps(row) -> str:
  """One table cell for a scaling_curve row: '2,200 (<= 3,600)', '<= 60 (<= 120)',
  '> 500: not reached'."""
  if row.censored == ">":
    return f"> {bounds.fmt_steps(row.budget)}: not reached"
  text = bounds.describe(row.steps_to_result, bounds.Bound(row.lo, row.hi, row.sides))
  return f"<= {text}" if row.censored == "<=" else text


def describe_regime(value: float, censored: bool) -> str:
  """'256', '>= 1,024' (censored: the grid ended first) or '–'."""
  if not np.isfinite(value):
    return "–"
  return f">= {bounds.fmt_steps(value)}" if censored else bounds.fmt_steps(value)


def optimal_effective_lr(trials: pd.DataFrame, curves: pd.DataFrame, *,
                         by: str | Sequence[str] = "batch_size", metric: str | None = None,
                         threshold: float | None = None, statuses: Sequence[str] = ELIGIBLE
                         ) -> pd.DataFrame:
  """Effective learning rate lr / (1 - momentum) of each group's fastest trial.

  Shallue et al. Fig. 8. Trials without a momentum hyperparameter (plain SGD)
  have effective lr = lr. Adam-family beta1 is not treated as momentum here.
  """
  str_ = steps_to_result(trials, curves, by=by, metric=metric, threshold=threshold,
                         statuses=statuses)
  t = trials.set_index("trial_id")
  fast = str_["fastest_trial_id"]
  has = fast.notna()
  lr = pd.Series(np.nan, index=str_.index)
  mom = pd.Series(np.nan, index=str_.index)
  if "hp/learning_rate" in t.columns:
    lr[has] = pd.to_numeric(t.loc[fast[has], "hp/learning_rate"], errors="coerce").to_numpy()
  if "hp/momentum" in t.columns:
    mom[has] = pd.to_numeric(t.loc[fast[has], "hp/momentum"], errors="coerce").to_numpy()
  out = str_.assign(learning_rate=lr, momentum=mom)
  out["effective_lr"] = lr / (1.0 - mom.fillna(0.0))
  return out


def best_under_budget(trials: pd.DataFrame, curves: pd.DataFrame, *,
                      budgets: Sequence[float] | None = None, unit: str = "steps",
                      metric: str | None = None, by: str | Sequence[str] = "batch_size",
                      statuses: Sequence[str] = ELIGIBLE) -> pd.DataFrame:
  """Best validation metric reachable within a budget of steps, epochs or examples.

  Shallue et al. Fig. 11: for each group and budget B, the lowest value of the
  metric (default val/<goal metric>) over eligible trials' evals with
  step <= B (unit 'steps'), step * batch_size / num_train_examples <= B
  ('epochs'), or step * batch_size <= B ('examples'). `budgets` defaults to all
  budget values at which some eval happened. A budget beyond a group's last
  evaluation is NaN for that group (it did not run that long). Columns: keys,
  budget, best.
  """
  keys = _keys(by)
  if unit not in ("steps", "epochs", "examples"):
    raise ValueError(f"unit must be 'steps', 'epochs' or 'examples', got {unit!r}")
  t = trials[_eligible(trials, statuses)]
  if metric is None:
    goals = t["goal_metric"].dropna().unique()
    if len(goals) != 1:
      raise ValueError(f"trials have goal metrics {list(goals)}; pass metric=")
    metric = goals[0]
  col = schema.val_column(metric)
  info = t.set_index("trial_id")
  c = curves[curves["trial_id"].isin(info.index)]
  x = c["step"].to_numpy(dtype=float)
  if unit != "steps":
    x = x * info.loc[c["trial_id"], "batch_size"].to_numpy(dtype=float)
  if unit == "epochs":
    x = x / info.loc[c["trial_id"], "num_train_examples"].to_numpy(dtype=float)
  c = c.assign(_x=x, _y=c[col].to_numpy(dtype=float) if col in c.columns else np.nan)
  for k in keys:
    c[k] = info.loc[c["trial_id"], k].to_numpy()
  if budgets is None:
    budgets = np.unique(c["_x"].dropna().to_numpy())
  budgets = np.asarray(budgets, dtype=float)
  rows = []
  for key, g in c.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    g = g.dropna(subset=["_x"]).sort_values("_x", kind="stable")
    y = np.where(np.isfinite(g["_y"].to_numpy()), g["_y"].to_numpy(), np.nan)
    cummin = np.fmin.accumulate(y) if len(y) else y
    xs = g["_x"].to_numpy()
    idx = np.searchsorted(xs, budgets, side="right") - 1
    best = np.where(idx >= 0, cummin[np.clip(idx, 0, None)] if len(y) else np.nan, np.nan)
    # A group's curve stops at its own last evaluation: beyond it nothing ran.
    best = np.where(budgets <= (xs.max() if len(xs) else -np.inf), best, np.nan)
    rows.append(pd.DataFrame({**dict(zip(keys, key)), "budget": budgets, "best": best}))
  if not rows:
    return pd.DataFrame(columns=keys + ["budget", "best"])
  return pd.concat(rows, ignore_index=True)
