"""One rule, two forms: the record's best row and goal step (analysis.record, per
trial, stdlib only: bench writes them) and the tables' (analysis.schema and
analysis.steps_to_result, vectorised over thousands of imported trials) agree on
random curves with ties, NaN, inf and unsorted steps."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import record, schema
from analysis.steps_to_result import goal_times


def _curves(rng: np.random.Generator, n_trials: int = 60) -> tuple[pd.DataFrame, dict]:
  rows, by_trial = [], {}
  for t in range(n_trials):
    steps = rng.permutation(np.arange(1, rng.integers(1, 8)) * 100)
    curve = []
    for s in steps:
      v = float(rng.choice([0.1, 0.2, 0.3, 0.4, np.nan, np.inf]))  # many ties
      curve.append({"step": int(s), "val/error": v, "train/error": float(rng.random())})
    by_trial[f"t{t}"] = sorted(curve, key=lambda r: r["step"])  # a record's curve is in step order
    rows += [{"trial_id": f"t{t}", **r} for r in curve]
  return pd.DataFrame(rows), by_trial


def test_best_row_and_goal_step_agree_between_record_and_tables():
  rng = np.random.default_rng(0)
  curves, by_trial = _curves(rng)
  ids = list(by_trial)
  summary = schema.summarize_curves(curves, pd.Series("error", index=ids))
  trials = pd.DataFrame({"trial_id": ids, "goal_metric": "error", "goal_threshold": 0.25})
  steps = goal_times(trials, curves)
  for tid, curve in by_trial.items():
    best = record.best_row(curve, "error")
    got = summary.loc[tid, "best_step"] if tid in summary.index else math.nan
    assert (best is None and math.isnan(got)) or best["step"] == got, tid
    goal = record.goal_step(curve, "error", 0.25)
    assert (goal is None and math.isnan(steps[tid])) or goal == steps[tid], tid
