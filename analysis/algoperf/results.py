"""AlgoPerf trial logs read into the harness's trials/curves tables (analysis.results.Results).

`load(dir)` finds and reads the logs (analysis.algoperf.logs) as generic trials
and curves, the way analysis.importers reads other published runs: validation/
-> val/; higher-is-better metrics become lower-is-better (accuracy -> error =
1 - accuracy, others -> neg_<m> = -m); wall_time is accumulated_submission_time
(the time AlgoPerf scores). AlgoPerf counts a target as reached at equality:
goal_step / goal_time use strict=False. Scoring a leaderboard the official way
is analysis.algoperf.scoring's job; this module is for the harness's own
analyses (analysis.budget_rankings, via analysis.algoperf.rankings.runs).
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Mapping

import numpy as np
import pandas as pd

from analysis.algoperf import logs as logs_lib
from analysis.results import Results, from_tables
from analysis.steps_to_result import goal_times

log = logging.getLogger(__name__)

_MAXIMIZED = ("accuracy", "mean_average_precision", "ssim", "bleu")
_SPLIT = {"train": "train", "validation": "val", "test": "test"}
_EXTRAS = ("total_duration", "accumulated_eval_time", "preemption_count")


def _metric(metric: str) -> tuple[str, Any]:
  """Native metric name -> (lower-is-better name, value transform)."""
  if metric == "accuracy":
    return "error", lambda x: 1.0 - x
  if metric in _MAXIMIZED:
    return f"neg_{metric}", lambda x: -x
  return metric, lambda x: x


def load(path: str | os.PathLike, *,
         targets: Mapping[str, tuple[str, float]] | None = None) -> Results:
  """AlgoPerf trial logs under `path` as trials and curves.

  Layout `[<submission>/][study_<n>/]<workload>_<framework>/trial_<n>/
  eval_measurements.csv` (optional `hparams.json` beside it becomes hp/); what
  does not fit it (stray `study_<n>/trial_<n>/` folders, trial folders without a
  log) is reported in `problems` and skipped (analysis.algoperf.logs).
  `targets` maps a workload name (framework suffix dropped) to its validation
  target in AlgoPerf's own terms, e.g. {'mnist': ('accuracy', 0.97)}; it is
  stored converted ('error', 0.03) and goal_step / goal_time are computed with
  AlgoPerf's non-strict rule. Extra columns: submission, study, framework,
  goal_time (accumulated_submission_time at the target). To score a
  leaderboard, use analysis.algoperf (the official rule and targets).
  """
  root = os.fspath(path)
  logs = logs_lib.read(root)
  problems = [os.path.join(root, p) for p in logs.problems]
  if problems:
    log.warning("skipped %d item(s) under %s (see Results.problems), e.g. %s", len(problems),
                root, problems[0])
  t = logs.trials
  study_id = t["submission"] + "/" + t["study"] + "/" + t["workload"]
  trial_id = study_id + "/" + t["trial"]
  e = logs.evals
  ids = e["log_id"].to_numpy()
  curves = pd.DataFrame({
      "trial_id": trial_id.to_numpy()[ids], "study_id": study_id.to_numpy()[ids],
      "step": pd.to_numeric(e[logs_lib.STEP], errors="coerce").to_numpy(dtype=float),
      "wall_time": (e["accumulated_submission_time"].to_numpy(dtype=float)
                    if "accumulated_submission_time" in e else np.nan)})
  for col in e.columns:
    split, sep, metric = str(col).partition("/")
    if sep and split in _SPLIT and metric != "num_examples":
      name, fn = _metric(metric)
      curves[f"{_SPLIT[split]}/{name}"] = fn(e[col].to_numpy(dtype=float))
    elif col in _EXTRAS:
      curves[col] = e[col].to_numpy()
  # A loss column counts for a trial only if its own log has it: logs of other workloads
  # (other headers) leave it NaN, which is not divergence.
  losses = [c for c in curves.columns if c.split("/", 1)[-1].endswith("loss")]
  values = curves[losses].to_numpy(dtype=float)
  logged = pd.DataFrame(~np.isnan(values)).groupby(ids).transform("any").to_numpy(dtype=bool)
  bad = (logged & ~np.isfinite(values)).any(axis=1)
  first_bad = pd.Series(curves["step"].to_numpy()[bad], index=ids[bad]).groupby(level=0).min()
  diverged_step = t["log_id"].map(first_bad).astype(float)
  diverged = diverged_step.notna().to_numpy()
  goal_metric, threshold = pd.Series([None] * len(t), dtype=object), np.full(len(t), math.nan)
  for name, (native, value) in (targets or {}).items():
    metric, fn = _metric(native.split("/")[-1])
    rows = (t["workload"] == name).to_numpy()
    goal_metric[rows] = metric
    threshold[rows] = float(fn(float(value)))
  steps = curves.groupby(ids, sort=False)["step"].max() if len(curves) else pd.Series(dtype=float)
  trials = pd.DataFrame({
      "trial_id": trial_id, "study_id": study_id, "experiment": "algoperf",
      "protocol_name": t["submission"], "workload": t["workload"],
      "submission": t["submission"], "study": t["study"], "framework": t["framework"],
      "trial_index": t["trial_index"].astype(float),
      "status": np.where(diverged, "diverged", "ok"),
      "status_reason": np.where(diverged, "non-finite loss", ""),
      "diverged_step": diverged_step.to_numpy(), "goal_metric": goal_metric.to_numpy(),
      "goal_threshold": threshold, "train_steps": t["log_id"].map(steps).to_numpy(dtype=float),
      "source": "algoperf", "path": t["path"]})
  hparams = _hparams(t["path"], problems)
  if not hparams.empty:
    trials = pd.concat([trials, hparams.set_index(trials.index)], axis=1)
  results = from_tables(trials, curves, problems)
  t = results.trials
  if not t.empty:
    steps = goal_times(t, results.curves, strict=False)
    times = goal_times(t, results.curves, strict=False, time_col="wall_time")
    t["goal_step"] = t["trial_id"].map(steps).to_numpy(dtype=float)
    t["goal_time"] = t["trial_id"].map(times).to_numpy(dtype=float)
  return results


def _hparams(paths: pd.Series, problems: list[str]) -> pd.DataFrame:
  """hp/<name> columns from each trial's hparams.json (absent file: empty row)."""
  rows = []
  for csv in paths:
    hp_path = os.path.join(os.path.dirname(csv), "hparams.json")
    row: dict[str, Any] = {}
    if os.path.isfile(hp_path):
      try:
        with open(hp_path, encoding="utf-8") as f:
          row = {f"hp/{k}": v for k, v in json.load(f).items()}
      except (OSError, ValueError, AttributeError):
        problems.append(f"{hp_path}: unreadable hparams.json, hyperparameters left empty")
        log.warning("skipped %s: unreadable hparams.json", hp_path)
    rows.append(row)
  return pd.DataFrame(rows, index=range(len(rows)))
