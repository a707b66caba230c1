"""AlgoPerf-style performance profiles over workloads.

Per submission (an optimizer, a protocol, an AlgoPerf submission) and
workload, the score is the median over studies of the fastest trial's time (or
steps) to target; a trial that never reached the target takes +inf, so a
submission that misses the target in most studies scores +inf on that workload.
The performance ratio is that score over the best submission's score on the
workload; the profile rho(tau) is the fraction of all workloads with ratio <= tau,
for tau in [1, max_tau]; the benchmark score is the profile's area over
[1, max_tau] divided by (max_tau - 1), so 1.0 means fastest everywhere.

This is the generic, simplified profile the report draws for any results. To
score AlgoPerf itself (its targets, the fewest-evaluations trial per study, the
budget cap and the held-out workload rules), use analysis.algoperf.scoring.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd


TAU_POINTS = 100  # AlgoPerf's grid: 100 evenly spaced points on [1, max_tau]


class Profile(NamedTuple):
  times: pd.DataFrame    # submissions x workloads: median over studies of the fastest time
  ratios: pd.DataFrame   # same shape: time / best time on the workload (inf: missed)
  profile: pd.DataFrame  # submissions x taus: fraction of workloads within ratio tau
  score: pd.Series       # per submission: normalised area under the profile


def performance_profile(trials: pd.DataFrame, *, time_col: str = "goal_step",
                        submission_col: str = "submission", workload_col: str = "workload",
                        study_col: str = "study_id", max_tau: float = 4.0,
                        taus: Sequence[float] | None = None,
                        workloads: Sequence[str] | None = None,
                        statuses: Sequence[str] | None = None) -> Profile:
  """Times to target, performance ratios and profiles per submission.

  `trials` holds one row per trial with its time to target in `time_col` (NaN
  or inf if never reached), e.g. 'goal_step' or, for AlgoPerf imports,
  'goal_time'. `statuses` (e.g. ('ok',)) keeps only trials with those
  statuses; by default every trial counts, as in AlgoPerf, where a trial that
  reached the target before diverging still counts. `workloads` fixes the
  denominator of rho (default: every workload present); a submission absent
  from a workload counts as a miss.
  """
  for col in (time_col, submission_col, workload_col, study_col):
    if col not in trials.columns:
      raise KeyError(f"performance_profile needs a {col!r} column")
  if statuses is not None:
    trials = trials[trials["status"].isin(list(statuses))]
  t = trials.assign(_time=pd.to_numeric(trials[time_col], errors="coerce").fillna(np.inf))
  fastest = t.groupby([submission_col, workload_col, study_col], dropna=False)["_time"].min()
  times = fastest.groupby(level=[0, 1]).median().unstack(workload_col)
  wl = list(workloads) if workloads is not None else sorted(times.columns)
  times = times.reindex(columns=wl).fillna(np.inf)
  taus = (np.linspace(1.0, max_tau, TAU_POINTS) if taus is None
          else np.asarray(taus, dtype=float))
  return Profile(times, *profile_of(times, taus))


def profile_of(times: pd.DataFrame, taus: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame,
                                                               pd.Series]:
  """The kernel both profiles share (this one and analysis.algoperf.scoring's):
  times (submissions x workloads, inf: missed) -> (ratios to the fastest per
  workload, rho on the tau grid over all of times' workloads, normalised area)."""
  with np.errstate(invalid="ignore", divide="ignore"):
    ratios = (times / times.min(axis=0)).fillna(np.inf)  # inf / inf: nobody reached it
  rho = (ratios.to_numpy()[:, :, None] <= taus[None, None, :]).sum(axis=1) / max(
      times.shape[1], 1)
  profile = pd.DataFrame(rho, index=ratios.index, columns=pd.Index(taus, name="tau"))
  span = taus[-1] - taus[0]
  area = np.trapezoid(rho, taus, axis=1) / span if span > 0 else rho[:, 0]
  return ratios, profile, pd.Series(area, index=ratios.index, name="score")
