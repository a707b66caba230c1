"""The harness's own results, as AlgoPerf submissions, so they are scored its way.

A results store (analysis.load) maps onto the scorer's inputs like this:
  submission  optimizer | protocol_name, plus the scientific settings (sci/*,
              other than the optimizer) that vary within an optimizer, protocol and
              workload, e.g. 'nadamw | algoperf_external | batch_size=256': in
              AlgoPerf those choices belong to the training algorithm.
  workload    the workload; its target is the trial records' goal (val/<metric>,
              lower is better), reached at or below the threshold (AlgoPerf's
              non-strict rule, not the harness's strict steps-to-result rule).
  study       study_id; trial order is trial_index.
  time        the curve's wall_time: seconds since the trial started, evaluations
              and compilation included (AlgoPerf's clock pauses for evaluations),
              so --by=steps compares harness runs more fairly across machines.
There are no held-out workloads and no runtime cap (a trial ends at its own
train_steps); every trial counts whatever its status, as in AlgoPerf.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import schema
from analysis.algoperf.versions import Target, Version
from analysis.results import Results

HARNESS = "harness"


def submission_labels(trials: pd.DataFrame) -> pd.Series:
  """'optimizer | protocol[ | k=v, ...]' per trial (see the module docstring)."""
  base = trials["optimizer"].astype(str) + " | " + trials["protocol_name"].astype(str)
  keys = ["optimizer", "protocol_name", "workload"]
  sci = [c for c in trials.columns if str(c).startswith("sci/") and c != "sci/optimizer"]
  varying = [c for c in sci
             if (trials.groupby(keys, dropna=False)[c].nunique(dropna=False) > 1).any()]
  if not varying:
    return base
  extra = trials[varying].apply(
      lambda r: ", ".join(f"{c[4:]}={_fmt(v)}" for c, v in r.items()), axis=1)
  return base + " | " + extra


def _fmt(v) -> str:
  if isinstance(v, float) and v.is_integer():
    return str(int(v))
  return str(v)


def tables(results: Results) -> tuple[pd.DataFrame, pd.DataFrame, Version, list[str]]:
  """(trials, evals, version, problems) for analysis.algoperf.scoring.leaderboard.

  `version` holds one target per workload (from the records' goals) and no
  held-out workloads; workloads without a goal are left out and reported.
  """
  t, curves = results.trials, results.curves
  problems: list[str] = []
  goals = t.dropna(subset=["goal_metric", "goal_threshold"])
  targets: dict[str, Target] = {}
  for workload, g in goals.groupby("workload", sort=True):
    pairs = g.groupby(["goal_metric", "goal_threshold"]).size().sort_values(ascending=False)
    (metric, threshold), _ = next(iter(pairs.items()))
    if len(pairs) > 1:
      problems.append(f"{workload}: {len(pairs)} different goals in its records; scored "
                      f"against the most common, val/{metric} <= {threshold:g}")
    targets[str(workload)] = Target(schema.val_column(metric), float(threshold), False, math.inf)
  for workload in sorted(set(t["workload"].dropna()) - set(targets)):
    problems.append(f"{workload}: no goal in its trial records, not scored")
  trials = pd.DataFrame({
      "log_id": np.arange(len(t)), "trial_id": t["trial_id"].to_numpy(),
      "submission": submission_labels(t).to_numpy() if len(t) else [],
      "workload": t["workload"].to_numpy(), "study": t["study_id"].to_numpy(),
      "trial_index": pd.to_numeric(t["trial_index"], errors="coerce").to_numpy()})
  log_id = pd.Series(trials["log_id"].to_numpy(), index=trials["trial_id"])
  c = curves[curves["trial_id"].isin(log_id.index)].sort_values(["trial_id", "step"],
                                                                  kind="stable")
  ids = c["trial_id"].map(log_id).to_numpy()
  value = np.full(len(c), np.nan)
  workload = c["trial_id"].map(trials.set_index("trial_id")["workload"]).to_numpy()
  for name, target in targets.items():
    rows = workload == name
    if target.metric in c.columns:
      value[rows] = c.loc[rows, target.metric].to_numpy(dtype=float)
  evals = pd.DataFrame({"log_id": ids, "eval_index": c.groupby("trial_id").cumcount().to_numpy(),
                        "time": c["wall_time"].to_numpy(dtype=float),
                        "step": c["step"].to_numpy(dtype=float), "value": value})
  counts = trials.groupby(["submission", "workload"])["study"].nunique()
  version = Version(
      name=HARNESS, base_workloads=tuple(targets), held_out={}, targets=targets,
      runtime_factor={"external_tuning": 1.0, "self_tuning": 1.0},
      num_studies=int(counts.max()) if len(counts) else 0,
      num_trials=int(trials.groupby("study").size().max()) if len(trials) else 0,
      source="this harness's results store: each workload's goal, no held-out workloads, "
             "no runtime cap")
  return trials.drop(columns="trial_id"), evals, version, problems
