"""The two tables every analysis reads: trials (one row per trial) and curves.

Stored bench results and imported foreign logs (DeepOBS, batch_science,
AlgoPerf) all land in this one shape, so steps-to-result, best-of-k and rankings
run on any of them unchanged.

trials columns (base, in this order; absent facts are NaN/None):
  trial_id, study_id, experiment, protocol_name, protocol_hash, workload,
  optimizer, batch_size, seed, trial_index, status ('ok'|'diverged'|'failed'),
  status_reason, diverged_step, goal_metric, goal_threshold, goal_step,
  best_step, num_train_examples, train_steps, eval_every, steps_per_sec,
  train_time_sec, wall_time_sec, source, path
then `best/<split>/<metric>` (the curve row with the lowest val/<goal metric>),
`final/<split>/<metric>` (the last curve row), `hp/<name>` (hyperparameters)
and `sci/<name>` (scientific settings), each group sorted by name.

curves columns: trial_id, study_id, step, wall_time, then `<split>/<metric>`
columns (all lower-is-better), then anything else a source provides.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

TRIAL_COLUMNS = (
    "trial_id", "study_id", "experiment", "protocol_name", "protocol_hash", "workload",
    "optimizer", "batch_size", "seed", "trial_index", "status", "status_reason",
    "diverged_step", "goal_metric", "goal_threshold", "goal_step", "best_step",
    "num_train_examples", "train_steps", "eval_every", "steps_per_sec", "train_time_sec",
    "wall_time_sec", "source", "path")
CURVE_COLUMNS = ("trial_id", "study_id", "step", "wall_time")
GROUP_PREFIXES = ("best/", "final/", "hp/", "sci/")
SPLITS = ("train", "val", "test")

_STRING_COLUMNS = ("trial_id", "study_id", "experiment", "protocol_name", "protocol_hash",
                   "workload", "optimizer", "status", "status_reason", "goal_metric",
                   "source", "path")
_NUMERIC_COLUMNS = ("batch_size", "seed", "trial_index", "diverged_step", "goal_threshold",
                    "goal_step", "best_step", "num_train_examples", "train_steps",
                    "eval_every", "steps_per_sec", "train_time_sec", "wall_time_sec")

# Optimizer names used by other tools, mapped to the harness's registry names
# (bench.optimizers), so inclusion checks compare like with like.
OPTIMIZER_ALIASES = {
    "gradientdescentoptimizer": "sgd",
    "gradient_descent": "sgd",
    "momentumoptimizer": "momentum",
    "heavy_ball": "momentum",
    "nesterov_momentum": "nesterov",
    "nesterovoptimizer": "nesterov",
    "adamoptimizer": "adam",
    "rmspropoptimizer": "rmsprop",
    "nadamoptimizer": "nadam",
}


def canonical_optimizer(name: str) -> str:
  """The harness's name for an optimizer named by another tool."""
  key = str(name).strip().lower()
  return OPTIMIZER_ALIASES.get(key, key)


def is_metric_column(name: str) -> bool:
  """True for '<split>/<metric>' columns of a curve ('val/error', ...)."""
  split, sep, rest = str(name).partition("/")
  return bool(sep) and split in SPLITS and bool(rest)


def metric_columns(columns: Iterable[str]) -> list[str]:
  return [c for c in columns if is_metric_column(c)]


def val_column(metric: str) -> str:
  """'error' -> 'val/error'; a name that already has a split is kept."""
  return metric if is_metric_column(metric) else f"val/{metric}"


def goal_metric(trials: pd.DataFrame, default: str) -> str:
  """The trials' goal metric ('error', 'loss') where they share one; `default`
  where they have none or several (the report's label says 'score'; a curve
  plot falls back to 'error')."""
  goals = trials["goal_metric"].dropna().unique() if "goal_metric" in trials else []
  return str(goals[0]) if len(goals) == 1 else default


def conform_trials(df: pd.DataFrame) -> pd.DataFrame:
  """Base columns first (added as missing values where absent), then groups."""
  df = df.copy()
  for col in TRIAL_COLUMNS:
    if col not in df.columns:
      df[col] = None if col in _STRING_COLUMNS else np.nan
  for col in _NUMERIC_COLUMNS:
    df[col] = pd.to_numeric(df[col], errors="coerce")
  for col in _STRING_COLUMNS:
    df[col] = df[col].astype(object).where(df[col].notna(), None)
  grouped = []
  for prefix in GROUP_PREFIXES:
    grouped += sorted(c for c in df.columns if str(c).startswith(prefix))
  rest = [c for c in df.columns if c not in TRIAL_COLUMNS and c not in grouped]
  df = df[list(TRIAL_COLUMNS) + rest + grouped]
  return df.reset_index(drop=True)


def conform_curves(df: pd.DataFrame) -> pd.DataFrame:
  """Id and step columns first, metric columns next (sorted), extras last."""
  df = df.copy()
  for col in CURVE_COLUMNS:
    if col not in df.columns:
      df[col] = None if col in ("trial_id", "study_id") else np.nan
  metrics = sorted(metric_columns(c for c in df.columns if c not in CURVE_COLUMNS))
  rest = [c for c in df.columns if c not in CURVE_COLUMNS and c not in metrics]
  df = df[list(CURVE_COLUMNS) + metrics + rest]
  for col in metrics + ["step", "wall_time"]:
    df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
  return df.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)


def empty_curves() -> pd.DataFrame:
  return conform_curves(pd.DataFrame(columns=list(CURVE_COLUMNS)))


def summarize_curves(curves: pd.DataFrame, goal_metric: pd.Series) -> pd.DataFrame:
  """best/, final/ columns and best_step per trial, from the curves alone.

  `goal_metric` maps trial_id -> metric name (e.g. 'error'); the best row is
  the one with the lowest finite val/<metric>, the earliest on ties (the same
  rule as analysis.record.best_row). Used by importers whose logs carry no
  retrospective selection of their own.
  """
  metrics = metric_columns(curves.columns)
  if curves.empty:
    return pd.DataFrame(index=pd.Index([], name="trial_id"))
  ordered = curves.sort_values(["trial_id", "step"], kind="stable")
  final = ordered.groupby("trial_id", sort=False).tail(1).set_index("trial_id")[metrics]
  final.columns = [f"final/{c}" for c in metrics]
  key = ordered["trial_id"].map(goal_metric).map(
      lambda m: val_column(m) if isinstance(m, str) else None)
  values = np.full(len(ordered), np.nan)
  for col in key.dropna().unique():
    if col in ordered.columns:
      mask = (key == col).to_numpy()
      values[mask] = ordered.loc[mask, col].to_numpy(dtype=float)
  values[~np.isfinite(values)] = np.nan
  ordered = ordered.assign(_score=values)
  has = ordered.dropna(subset=["_score"])
  idx = has.groupby("trial_id", sort=False)["_score"].idxmin()
  best = ordered.loc[idx.to_numpy()].set_index("trial_id")
  best_cols = best[metrics].copy()
  best_cols.columns = [f"best/{c}" for c in metrics]
  best_cols["best_step"] = best["step"]
  out = final.join(best_cols, how="left")
  return out
