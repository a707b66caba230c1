"""The two ranking analyses on AlgoPerf logs: across budgets, and by steps vs by time.

* runs(): the logs as trials and curves (analysis.algoperf.results) with each
  scored workload's official target as its goal and its runtime budget as
  `max_runtime`, for analysis.budget_rankings (submission = the AlgoPerf
  submission, study = its study_<n>, selection on validation, test reported where
  logged). AlgoPerf budgets are runtimes: rank with unit='wall_time',
  budget_col='max_runtime'; by steps, submissions whose global_step counts
  something else (see analysis.clock_rankings' pace check) are misplaced.
* clocks(): the official leaderboard (analysis.algoperf.scoring) scored twice from
  one read of the logs, by submission time and by global step, compared by
  analysis.clock_rankings.from_leaderboards.

`exclude` drops submissions before scoring: ratios are taken against the fastest
submission present, so one submission whose global_step counts something else
(lawa_ema in the v0.5 logs) changes everyone's by-steps scores.
"""
from __future__ import annotations

import os
from typing import Sequence

from analysis.algoperf import logs as algoperf_logs
from analysis.algoperf import results as algoperf_results
from analysis.algoperf import scoring as algoperf_scoring
from analysis.algoperf.command import ScoreError, get_version, resolve_logs
from analysis.algoperf.versions import RULESETS
from analysis.clock_rankings import ClockRanking, from_leaderboards
from analysis.results import Results


def _root(logs: str, ruleset: str) -> str:
  if ruleset not in RULESETS:
    raise ScoreError(f"--ruleset={ruleset}: unknown (known: {', '.join(RULESETS)})")
  if not os.path.isdir(logs):
    raise ScoreError(f"--algoperf_logs={logs}: not a directory")
  return resolve_logs(logs, ruleset)


def _excluded(found: Sequence[str], exclude: Sequence[str]) -> set[str]:
  unknown = sorted(set(exclude) - set(found))
  if unknown:
    raise ScoreError(f"--exclude: no submission {', '.join(unknown)} in the logs (have: "
                     f"{', '.join(sorted(found))})")
  return set(exclude)


def runs(logs: str, version_name: str = "0.5", ruleset: str = "external_tuning",
         exclude: Sequence[str] = ()) -> Results:
  """Trials and curves of the version's scored workloads, goals = official targets."""
  v = get_version(version_name, "--algoperf_version")
  res = algoperf_results.load(_root(logs, ruleset),
                               targets={w: (t.metric, t.value) for w, t in v.targets.items()})
  t = res.trials
  if t.empty:
    raise ScoreError(f"--algoperf_logs={logs}: no AlgoPerf trial logs")
  drop = _excluded(t["submission"].unique(), exclude)
  keep = t["workload"].isin(list(v.scored_workloads)) & ~t["submission"].isin(drop)
  t = t[keep].reset_index(drop=True)
  t["max_runtime"] = [v.max_runtime(w, ruleset) for w in t["workload"]]
  if t.empty:
    raise ScoreError(f"--algoperf_logs={logs}: no trial of a workload scored in "
                     f"AlgoPerf v{v.name}")
  curves = res.curves[res.curves["trial_id"].isin(t["trial_id"])].reset_index(drop=True)
  return Results(t, curves, res.problems)


def clocks(logs: str, version_name: str = "0.5", ruleset: str = "external_tuning",
           exclude: Sequence[str] = ()) -> tuple[ClockRanking, list[str]]:
  """(by-steps vs by-time comparison, skipped-file problems) of the official leaderboard."""
  v = get_version(version_name, "--algoperf_version")
  read = algoperf_logs.read(_root(logs, ruleset), {t.metric for t in v.targets.values()})
  if read.trials.empty:
    raise ScoreError(f"--algoperf_logs={logs}: no AlgoPerf trial logs")
  drop = _excluded(read.trials["submission"].unique(), exclude)
  trials = read.trials[~read.trials["submission"].isin(drop)]
  if not trials["workload"].isin(list(v.scored_workloads)).any():
    raise ScoreError(f"--algoperf_logs={logs}: no workload scored in AlgoPerf v{v.name}")
  evals = algoperf_logs.target_evals(read, {w: t.metric for w, t in v.targets.items()})
  evals = evals[evals["log_id"].isin(trials["log_id"])]
  boards = {by: algoperf_scoring.leaderboard(trials, evals, v, ruleset=ruleset, by=by)
            for by in algoperf_scoring.BY}
  return from_leaderboards(boards["time"], boards["step"]), read.problems
