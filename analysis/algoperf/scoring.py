"""AlgoPerf's official scoring rule, on tables of trials and evaluations.

The rule (v0.5; v0.6 is the same without held-out workloads):
1. A trial reaches the target at its first evaluation at or past it (<= for
   lower-is-better metrics, >= otherwise) within the ruleset's max runtime: a
   target first reached after the budget does not count. Its time is that
   evaluation's time (submission time, or global step with by='step').
2. Per study, the trial that reached the target in the fewest evaluations
   counts, with its time; +inf if none did. Ties (several trials reaching it
   at the same evaluation count) are broken by TIES rule `ties` (below).
3. Per submission and workload, the median over studies (+inf propagates;
   an even number of studies averages the middle two).
4. Held-out workloads: a variant is +inf where its base is +inf or was never
   run; then any time above max_ratio (4) x the fastest submission's on that
   workload becomes +inf, variants included; then a base workload becomes +inf
   where its variant is +inf or was never run.
5. Ratio = time / the fastest submission's time on the base workload; rho(tau)
   = fraction of base workloads with ratio <= tau on the version's tau grid;
   score = trapezoidal area under rho divided by (tau_max - tau_min).
Step 2 is not "the fastest trial": the official code picks by evaluation count.

Ties in step 2 have no rule in the official code: it takes the first of the
tied trials in the order os.listdir returned the trial folders, which depends
on the filesystem (a hash order on ext4: trial_1..trial_5 came back as 5, 3,
4, 1, 2 on the machines this was checked on; reverse creation order on
tmpfs). The leaderboards were scored on such listings, so a fixed rule
reproduces a given leaderboard only where it picks what that listing picked;
each version names the rule that reproduces its reference
(algoperf_versions.Version.ties):
  lowest   the lowest trial number (a sorted listing): the v0.5 reference.
  fastest  the tied trial that reached the target soonest on the scored clock
           (then the lowest number): the documented rule ("the study's score
           is the fastest time among its trials") applied among the trials the
           code's evaluation count leaves; reproduces the v0.6 leaderboard.
  listing  the official code's: the first in this machine's directory listing
           (column `listed`; trial number where the source has no listing).

Inputs (any source: AlgoPerf logs, the harness's own store):
  trials  one row per trial: log_id, submission, workload, study, trial_index.
  evals   one row per evaluation: log_id, eval_index (order within the trial),
          time (seconds on the scored clock), step, value (the workload's target
          metric in its native direction).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import pandas as pd

from analysis import profiles as profiles_lib
from analysis.algoperf.versions import Target, Version

BY = ("time", "step")
TIES = ("lowest", "fastest", "listing")  # step 2's tie-break (module docstring)
# Why a cell of the scored table is +inf (or what the held-out rule did to it).
NOT_RUN = "not run"
NOT_REACHED = "not reached"
AFTER_BUDGET = "reached only after the max runtime"
BASE_MISSED = "base workload missed"
VARIANT_MISSED = "held-out variant missed"


def over_ratio(max_ratio: float) -> str:
  return f"over {max_ratio:g}x the fastest"


OVER_RATIO = over_ratio(4.0)


@dataclasses.dataclass(frozen=True)
class Leaderboard:
  """Every table of one scoring, from trials to scores.

  trials: per trial, evals_to_target / time_to_target (NaN: not reached within
  budget) and reached_after_budget. studies: per study, the counted trial and its
  time (inf: missed). median: submissions x scored workloads (base, then
  held-out), NaN where never run. scored: the same after the held-out rule
  (inf where missed); why: the rule behind each inf cell ('' if finite).
  ratios, profile (submissions x taus), score and rank cover base workloads.
  """
  version: Version
  ruleset: str
  by: str
  ties: str
  trials: pd.DataFrame
  studies: pd.DataFrame
  median: pd.DataFrame
  scored: pd.DataFrame
  why: pd.DataFrame
  ratios: pd.DataFrame
  profile: pd.DataFrame
  score: pd.Series
  rank: pd.Series


def first_hits(trials: pd.DataFrame, evals: pd.DataFrame, targets: Mapping[str, Target],
               max_runtime: Mapping[str, float]) -> pd.DataFrame:
  """Per trial: its first evaluation at or past the target within budget (step 1).

  Adds evals_to_target (1-based count), time_to_target, step_to_target (NaN:
  not reached in time) and reached_after_budget (reached, but only later).
  """
  wl = trials.set_index("log_id")["workload"]
  e = evals[["log_id", "eval_index", "time", "step", "value"]].copy()
  e["workload"] = e["log_id"].map(wl).to_numpy()
  e = e[e["workload"].isin(list(targets))]
  value = e["value"].to_numpy(dtype=float)
  hit = np.zeros(len(e), dtype=bool)
  budget = np.full(len(e), np.inf)
  for name, rows in e.groupby("workload", sort=False).indices.items():
    hit[rows] = targets[name].reached(value[rows])
    budget[rows] = max_runtime.get(name, np.inf)
  with np.errstate(invalid="ignore"):
    in_time = np.isinf(budget) | (e["time"].to_numpy(dtype=float) <= budget)
  e = e.assign(_hit=hit & in_time, _late=hit & ~in_time)
  e = e.sort_values(["log_id", "eval_index"], kind="stable")
  first = e[e["_hit"]].drop_duplicates("log_id").set_index("log_id")
  late = e.groupby("log_id", sort=False)["_late"].any()
  out = trials.copy()
  ids = out["log_id"]
  out["evals_to_target"] = ids.map(first["eval_index"] + 1).astype(float).to_numpy()
  out["time_to_target"] = ids.map(first["time"]).astype(float).to_numpy()
  out["step_to_target"] = ids.map(first["step"]).astype(float).to_numpy()
  out["reached_after_budget"] = (out["evals_to_target"].isna().to_numpy()
                                 & ids.map(late).fillna(False).astype(bool).to_numpy())
  return out


def study_times(hits: pd.DataFrame, by: str = "time", ties: str = "lowest") -> pd.DataFrame:
  """Per study, the trial reaching the target in the fewest evaluations (step 2).

  `ties` (TIES) picks among trials reaching it at the same evaluation count.
  Columns: submission, workload, study, n_trials, trial_index (of the counted
  trial, NaN if none reached), evals_to_target, value (its time or step; inf if
  none), after_budget (no trial reached in time but one did later), tied (how
  many trials reached it at the counted trial's evaluation count).
  """
  col = _by_column(by)
  keys = ["submission", "workload", "study"]
  h = hits.assign(_tie=_tie_order(hits, col, ties))
  ordered = h.sort_values(keys + ["evals_to_target", "_tie", "trial_index"], kind="stable",
                          na_position="last")
  g = ordered.groupby(keys, sort=True)
  out = g.agg(n_trials=("log_id", "size"), after_budget=("reached_after_budget", "any"))
  best = ordered.drop_duplicates(keys).set_index(keys)  # the counted trial, or a miss
  reached = best["evals_to_target"].notna()
  out["trial_index"] = best["trial_index"].where(reached)
  out["evals_to_target"] = best["evals_to_target"]
  out["value"] = best[col].where(reached, np.inf).astype(float)
  out["after_budget"] = out["after_budget"] & ~reached
  fewest = ordered.groupby(keys, sort=True)["evals_to_target"].transform("min")
  same = ordered[ordered["evals_to_target"].notna() & (ordered["evals_to_target"] == fewest)]
  out["tied"] = same.groupby(keys).size().reindex(out.index).fillna(0).astype(int)
  return out.reset_index()


def _tie_order(hits: pd.DataFrame, col: str, ties: str) -> np.ndarray:
  """The sort key that breaks step 2's ties under rule `ties` (smaller wins)."""
  if ties not in TIES:
    raise KeyError(f"unknown ties={ties!r} (known: {', '.join(TIES)})")
  index = pd.to_numeric(hits["trial_index"], errors="coerce").to_numpy(dtype=float)
  if ties == "fastest":
    return hits[col].to_numpy(dtype=float)
  if ties == "listing" and "listed" in hits:
    listed = pd.to_numeric(hits["listed"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(listed), index, listed)
  return index


def median_times(studies: pd.DataFrame, workloads: list[str],
                 submissions: list[str] | None = None) -> pd.DataFrame:
  """Submissions x workloads: median over studies (step 3); NaN where never run."""
  med = studies.groupby(["submission", "workload"])["value"].median().unstack("workload")
  subs = sorted(studies["submission"].unique()) if submissions is None else submissions
  return med.reindex(index=subs, columns=workloads).astype(float)


def held_out_rule(median: pd.DataFrame, version: Version,
                  late: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
  """Step 4: (scored times, why) over the version's scored workloads.

  `late` (same shape, bool) marks medians that are inf only because of the
  budget cap, so that `why` can say so. Never-run cells end as inf.
  """
  t = median.reindex(columns=list(version.scored_workloads)).astype(float).copy()
  why = pd.DataFrame("", index=t.index, columns=t.columns, dtype=object)
  why[t.isna()] = NOT_RUN
  why[np.isinf(t)] = NOT_REACHED
  if late is not None:
    late = late.reindex_like(t).fillna(False).astype(bool)
    why[np.isinf(t) & late] = AFTER_BUDGET

  def knock_out(target: str, source: str, reason: str) -> None:
    bad = ~np.isfinite(t[source])
    why.loc[bad & np.isfinite(t[target]), target] = reason
    t.loc[bad, target] = np.inf

  for variant, base in version.held_out.items():
    knock_out(variant, base, BASE_MISSED)
  over = t.gt(version.max_ratio * t.min(axis=0), axis=1) & np.isfinite(t)
  why[over] = over_ratio(version.max_ratio)
  t[over] = np.inf
  for variant, base in version.held_out.items():
    knock_out(base, variant, f"{VARIANT_MISSED} ({variant})")
  return t.fillna(np.inf), why


def profiles(scored: pd.DataFrame, version: Version) -> tuple[pd.DataFrame, pd.DataFrame,
                                                              pd.Series]:
  """Step 5 over base workloads: (ratios, rho on the tau grid, score)."""
  base = scored.reindex(columns=list(version.base_workloads)).fillna(np.inf)
  return profiles_lib.profile_of(base, version.taus())


def leaderboard(trials: pd.DataFrame, evals: pd.DataFrame, version: Version, *,
                ruleset: str = "external_tuning", by: str = "time",
                ties: str | None = None) -> Leaderboard:
  """The whole rule: trials and evaluations -> per-workload times -> scores and ranks.

  Only the version's scored workloads (base + held-out) count; trials of any
  other workload are ignored (callers report them). `ties`: step 2's tie-break
  (TIES); None takes the version's (the one that reproduces its reference).
  """
  if ruleset not in version.runtime_factor:
    raise KeyError(f"unknown ruleset {ruleset!r} (known: {', '.join(version.runtime_factor)})")
  _by_column(by)
  ties = version.ties if ties is None else ties
  if ties not in TIES:
    raise KeyError(f"unknown ties={ties!r} (known: {', '.join(TIES)})")
  scored_names = list(version.scored_workloads)
  targets = {w: version.targets[w] for w in scored_names}
  budgets = {w: version.max_runtime(w, ruleset) for w in scored_names}
  submissions = sorted(trials["submission"].unique())
  t = trials[trials["workload"].isin(scored_names)]
  hits = first_hits(t, evals, targets, budgets)
  studies = study_times(hits, by, ties)
  median = median_times(studies, scored_names, submissions)
  uncapped = median_times(studies.assign(value=np.where(studies["after_budget"], 0.0,
                                                        studies["value"])),
                          scored_names, submissions)
  late = np.isinf(median) & np.isfinite(uncapped)
  scored, why = held_out_rule(median, version, late)
  ratios, profile, score = profiles(scored, version)
  rank = score.rank(ascending=False, method="min").astype(int).rename("rank")
  return Leaderboard(version, ruleset, by, ties, hits, studies, median, scored, why, ratios,
                     profile, score, rank)


def speedups(median: pd.DataFrame, baseline: str, version: Version,
             ruleset: str = "external_tuning") -> pd.DataFrame:
  """Geometric-mean runtime ratio of each submission to `baseline`, as AlgoPerf's
  scoring/compute_speedups.py computes it.

  Over base workloads, on median times before the held-out rule; a miss (inf)
  counts as the ruleset's max runtime + 1 s. Unlike that script (which yields
  NaN), a workload never run also counts as a miss. Columns: one per base
  workload (time / baseline time), then `speedup` (the geometric mean; < 1 is
  faster) and `faster` (1 - speedup).
  """
  base = list(version.base_workloads)
  cap = pd.Series({w: version.max_runtime(w, ruleset) + 1.0 for w in base})
  t = median.reindex(columns=base).astype(float).fillna(np.inf)
  t = t.where(np.isfinite(t), cap, axis=1)
  ratio = t / t.loc[baseline]
  ratio["speedup"] = np.exp(np.log(ratio[base]).mean(axis=1))
  ratio["faster"] = 1.0 - ratio["speedup"]
  return ratio


def _by_column(by: str) -> str:
  if by not in BY:
    raise KeyError(f"unknown by={by!r} (known: {', '.join(BY)})")
  return "time_to_target" if by == "time" else "step_to_target"
