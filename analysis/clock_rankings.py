"""Rankings by steps vs by wall-clock: one time-to-target ranking read on two clocks.

Per trial, the time to its goal (analysis.steps_to_result.goal_times) in steps
and in seconds; per study, the fastest trial on each clock (it may be a
different trial: a slow-per-step setting can need fewer steps); per submission
and workload, the median over studies, +inf for a miss
(analysis.profiles.performance_profile's times). Ranks within each workload
(1 = fastest, misses share the last rank), Spearman's rank correlation of the two
orders (scipy.stats.spearmanr) over the submissions that reached the target on
either clock, and who moves. Across workloads, each clock's performance-profile
score ranks the submissions overall. AlgoPerf logs are compared through their
official leaderboards instead (from_leaderboards).

Clocks. 'wall_time' (default, the one every source has): the curve's wall_time at
the goal evaluation. In harness records that is seconds since the trial started,
compilation and evaluations included, and only the first trial of a program
shape in a process compiles: on the smoke-scale store (~2.7 s of compilation,
fractions of a second of training) the by-seconds order of two batch sizes was
decided by which one's fastest trial had compiled. AlgoPerf's submission time
excludes evaluations. 'steps_per_sec': the goal step / the record's
steps_per_sec, the steady-state training throughput (first, compiling dispatch
and evaluations excluded): the per-step cost alone, the honest clock for
comparing optimizers in harness stores (analysis.report uses it).

Packs. A lane of a pack of K trials records the pack's clock: K trials shared
it. pack='recorded' (default) keeps seconds as recorded; 'per_trial' divides
them by pack_size (amortised seconds per trial). Neither is a solo run's time:
how a pack's time compares with K solo runs depends on the backend (on CPU a
pack of small MLPs runs 0.7-2x faster than its K trials one after another; a
GPU can run a small-batch pack in little more than one trial's time), so no
rescaling is right in general. Like with like is: where every ranked
submission of a workload ran at one pack size, both choices give the same
order; where pack sizes differ the workload is flagged (comparable = False) and
its by-seconds ranks mix optimizer cost with packing. Records without pack_size
count as solo runs (1).

Movement beyond noise. A rank change between the two clocks comes from the
submissions' cost per step, which is measured with noise (a shared machine,
other processes). `moved` lists a submission only when the change survives a
paired resampling of that noise: per workload, the log-deviations of each
trial's seconds per step from its submission's median are pooled; each of
N_BOOT replicates rescales every submission's seconds by exp(median of m draws
from that pool) (m: its studies, since its seconds are a median over studies
of one trial's time) and by a log-normal drift between studies run at
different times (CLOCK_DRIFT: +-15% as a 90% range, the run-to-run spread
measured on the shared CPU), keeps its steps, and re-ranks; a move counts when
at least LEVEL (90%) of replicates move it the same way. Others are
ties within noise (`n_within_noise`). Times of 0.131 s and 0.138 s from trials
whose pace varies by 10% are not an order.

Pace check. seconds_per_step is the median over a submission's trials that
reached the target of seconds / steps at the target. A submission more than
PACE_FACTOR (10) x off the workload's median pace (with three or more paced
submissions) is listed in `pace_outliers`: either its step is far costlier or its
steps count something else. In the AlgoPerf v0.5 logs, lawa_ema's global_step
runs ~40-400x behind the other submissions' on every workload, so ranks by steps
say nothing about it, and through the 4x rule its tiny step counts knock the
others out of the by-steps leaderboard.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.profiles import performance_profile
from analysis.steps_to_result import goal_times

CLOCKS = ("wall_time", "steps_per_sec")
PACKS = ("recorded", "per_trial")
OVERALL = "all workloads (profile score)"
PACE_FACTOR = 10.0
N_BOOT = 500
LEVEL = 0.9
# Timing drift between studies run at different times on one machine (other load, clock
# boost): BENCHMARKS.md measured dispatches of one program varying by about +-15% on the
# shared 2-core CPU. Within-study residuals cannot see it (a study's trials run together).
CLOCK_DRIFT = 0.15


class ClockRanking(NamedTuple):
  """Time-to-target ranks on both clocks, and how they differ.

  table: per workload and submission: steps, seconds, seconds_per_step, rank_steps,
    rank_seconds, change (rank_seconds - rank_steps: < 0 moves up by seconds),
    pack_size ('1', '1,8': the sizes its trials ran at).
  summary: per workload, then (two or more workloads) one OVERALL row:
    n_submissions, n_reached, spearman, p_value, n_moved, moved ('name 2->1, ...':
    changes beyond noise), n_within_noise (rank changes that the resampled pace
    noise does not support: reported as ties),
    comparable, pack_sizes, pace_outliers ('name (29.3 s/step vs median 0.71)').
  overall: (two or more workloads) per submission: score_steps, score_seconds
    (performance-profile scores: 1 = fastest everywhere), rank_steps, rank_seconds,
    change.
  """
  table: pd.DataFrame
  summary: pd.DataFrame
  overall: pd.DataFrame
  clock: str
  pack: str


def trial_times(trials: pd.DataFrame, curves: pd.DataFrame, *, metric: str | None = None,
                threshold: float | None = None, strict: bool = True, clock: str = "wall_time",
                pack: str = "recorded") -> pd.DataFrame:
  """Per trial: steps and seconds to its goal (NaN if never reached) and pack_size.

  Goals and `strict` as in goal_times (strict: the harness's rule; AlgoPerf counts
  equality). `clock` and `pack` as in the module docstring.
  """
  _check(clock, pack)
  steps = goal_times(trials, curves, metric=metric, threshold=threshold, strict=strict)
  if clock == "wall_time":
    seconds = goal_times(trials, curves, metric=metric, threshold=threshold, strict=strict,
                         time_col="wall_time")
  else:
    rate = pd.to_numeric(trials["steps_per_sec"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
      seconds = steps / np.where(rate > 0, rate, np.nan)
  size = (pd.to_numeric(trials["pack_size"], errors="coerce") if "pack_size" in trials
          else pd.Series(np.nan, index=trials.index)).fillna(1.0).to_numpy(dtype=float)
  out = pd.DataFrame({"trial_id": trials["trial_id"].to_numpy(),
                      "steps": steps.to_numpy(dtype=float),
                      "seconds": seconds.to_numpy(dtype=float), "pack_size": size})
  if pack == "per_trial":
    out["seconds"] = out["seconds"] / out["pack_size"]
  return out


def clock_rankings(trials: pd.DataFrame, curves: pd.DataFrame, *,
                   workload_col: str = "workload", submission_col: str = "submission",
                   study_col: str = "study_id", statuses: Sequence[str] | None = ("ok",),
                   strict: bool = True, clock: str = "wall_time", pack: str = "recorded",
                   metric: str | None = None, threshold: float | None = None,
                   max_tau: float = 4.0) -> ClockRanking:
  """Rank submissions by time to target in steps and in seconds (module docstring).

  `statuses` keeps trials with those statuses (default the harness's: 'ok'
  only; None counts every trial, as AlgoPerf does).
  """
  for col in (workload_col, submission_col, study_col):
    if col not in trials.columns:
      raise KeyError(f"clock_rankings needs a {col!r} column in trials")
  times = trial_times(trials, curves, metric=metric, threshold=threshold, strict=strict,
                      clock=clock, pack=pack)
  t = trials.assign(steps=times["steps"].to_numpy(), seconds=times["seconds"].to_numpy(),
                    _pack=times["pack_size"].to_numpy())
  if statuses is not None:
    t = t[t["status"].isin(list(statuses))]
  if t.empty:
    return _result(pd.DataFrame(), pd.DataFrame(), None, None, None, clock, pack)
  kw = dict(submission_col=submission_col, workload_col=workload_col, study_col=study_col,
            max_tau=max_tau)
  by_steps = performance_profile(t, time_col="steps", **kw)
  by_seconds = performance_profile(t, time_col="seconds", **kw)
  keys = [submission_col, workload_col]
  ran = t.groupby(keys).size().unstack(workload_col).notna()
  packs = t.groupby(keys)["_pack"].agg(_sizes).unstack(workload_col)
  paced = t.assign(_pace=t["seconds"] / t["steps"])
  pace = _pace(paced, keys, workload_col)
  return compare(by_steps.times, by_seconds.times, by_steps.score, by_seconds.score,
                 ran=ran, packs=packs, pace=pace, clock=clock, pack=pack,
                 pace_samples=_pace_samples(paced, keys, workload_col, study_col))


def _pace(t: pd.DataFrame, keys: list[str], workload_col: str) -> pd.DataFrame:
  """Submissions x workloads: median seconds per step at the target over reached trials."""
  p = t.assign(_pace=pd.to_numeric(t["_pace"], errors="coerce").astype(float))
  p = p[np.isfinite(p["_pace"]) & (p["_pace"] > 0)]
  return p.groupby(keys)["_pace"].median().unstack(workload_col)


def _pace_samples(t: pd.DataFrame, keys: list[str], workload_col: str,
                  study_col: str | None = None) -> dict[str, dict[str, tuple[np.ndarray, int]]]:
  """workload -> submission -> (seconds per step of each trial that reached the
  target, number of studies: a submission's seconds are a median over its studies
  of one trial's time each)."""
  p = t.assign(_pace=pd.to_numeric(t["_pace"], errors="coerce").astype(float))
  p = p[np.isfinite(p["_pace"]) & (p["_pace"] > 0)]
  out: dict[str, dict[str, tuple[np.ndarray, int]]] = {}
  for (sub, w), g in p.groupby(keys):
    n_studies = g[study_col].nunique() if study_col and study_col in g else 1
    out.setdefault(w, {})[sub] = (g["_pace"].to_numpy(dtype=float), max(int(n_studies), 1))
  return out


def _stable_moves(names: Sequence, seconds: np.ndarray, r_st: np.ndarray, r_se: np.ndarray,
                  samples: dict[str, tuple[np.ndarray, int]] | None, seed: int = 0
                  ) -> np.ndarray:
  """Which rank changes survive the paced-noise resampling (module docstring)."""
  moved = r_st != r_se
  if samples is None or not moved.any():
    return moved
  resid = [np.log(v) - np.log(np.median(v)) for v, _ in samples.values() if len(v)]
  pool = np.concatenate(resid) if resid else np.zeros(0)
  if not len(pool):
    pool = np.zeros(1)  # no measured pace noise: the machine's drift alone
  rng = np.random.default_rng(seed)
  sizes = [samples[n][1] if n in samples else 1 for n in names]
  same = np.zeros(len(names))
  direction = np.sign(r_se - r_st)
  drift = math.log1p(CLOCK_DRIFT) / 1.645  # +-CLOCK_DRIFT is a 90% range
  for _ in range(N_BOOT):
    scale = np.array([np.exp(np.median(rng.choice(pool, size=m))) for m in sizes])
    scale *= np.exp(rng.normal(0.0, drift, size=len(names)))
    r = _ranks(seconds * scale, ascending=True)
    same += np.sign(r - r_st) == direction
  return moved & (same / N_BOOT >= LEVEL)


def from_leaderboards(by_time, by_step) -> ClockRanking:
  """The AlgoPerf comparison: two analysis.algoperf.scoring.Leaderboard of the same logs,
  scored by='time' and by='step' (the official rule on each clock, held-out rule
  included), over the version's base workloads."""
  base = list(by_time.version.base_workloads)
  ran = by_time.median.reindex(columns=base).notna()
  hits = by_time.trials.assign(_pace=by_time.trials["time_to_target"]
                               / by_time.trials["step_to_target"])
  pace = _pace(hits, ["submission", "workload"], "workload")
  return compare(by_step.scored.reindex(columns=base), by_time.scored.reindex(columns=base),
                 by_step.score, by_time.score, ran=ran, packs=None, pace=pace,
                 clock="submission time", pack="recorded",
                 pace_samples=_pace_samples(hits, ["submission", "workload"], "workload",
                                            "study"))


def compare(steps: pd.DataFrame, seconds: pd.DataFrame, score_steps: pd.Series | None,
            score_seconds: pd.Series | None, *, ran: pd.DataFrame | None = None,
            packs: pd.DataFrame | None = None, pace: pd.DataFrame | None = None,
            clock: str = "wall_time", pack: str = "recorded",
            pace_samples: dict[str, dict[str, np.ndarray]] | None = None) -> ClockRanking:
  """Ranks, Spearman and movers from two submissions x workloads time tables.

  `ran` (same shape, bool) marks the pairs that were run (default: all); `packs`
  holds the pack-size labels behind each cell, `pace` the seconds per step and
  `pace_samples` each trial's (workload -> submission -> (array, studies)), for the noise
  check of moves (without it every rank change counts).
  """
  subs = steps.index.union(seconds.index)
  steps = steps.reindex(index=subs).astype(float)
  seconds = seconds.reindex(index=subs, columns=steps.columns).astype(float)
  ran = (ran.reindex(index=subs, columns=steps.columns).fillna(False).astype(bool)
         if ran is not None else pd.DataFrame(True, index=subs, columns=steps.columns))
  rows, summary = [], []
  for w in steps.columns:
    keep = ran[w].to_numpy()
    names = subs[keep]
    st = steps.loc[names, w].fillna(np.inf).to_numpy()
    se = seconds.loc[names, w].fillna(np.inf).to_numpy()
    r_st, r_se = _ranks(st, ascending=True), _ranks(se, ascending=True)
    sizes = ([str(packs.at[n, w]) if packs is not None and n in packs.index
              and pd.notna(packs.at[n, w]) else "1" for n in names])
    paces = (pace.reindex(index=names).get(w, pd.Series(np.nan, index=names))
             .to_numpy(dtype=float) if pace is not None else np.full(len(names), np.nan))
    reached = np.isfinite(st) | np.isfinite(se)
    stable = _stable_moves(names, se, r_st, r_se,
                           None if pace_samples is None else pace_samples.get(w, {}))
    for n, a, b, ra, rb, p, sp, ok in zip(names, st, se, r_st, r_se, sizes, paces, stable):
      rows.append({"workload": w, "submission": n, "steps": a, "seconds": b,
                   "seconds_per_step": sp, "rank_steps": ra, "rank_seconds": rb,
                   "change": rb - ra, "beyond_noise": bool(ra != rb and ok), "pack_size": p})
    summary.append({"scope": "workload", "workload": w, "n_submissions": len(names),
                    "n_reached": int(reached.sum()),
                    **_agreement(names[reached], r_st[reached], r_se[reached],
                                 stable[reached]),
                    "comparable": len(set(",".join(sizes).split(","))) <= 1,
                    "pack_sizes": ",".join(sorted(set(",".join(sizes).split(",")), key=float)),
                    "pace_outliers": _pace_outliers(names, paces)})
  table = pd.DataFrame(rows, columns=["workload", "submission", "steps", "seconds",
                                      "seconds_per_step", "rank_steps", "rank_seconds",
                                      "change", "beyond_noise", "pack_size"])
  return _result(table, pd.DataFrame(summary), score_steps, score_seconds, subs, clock, pack)


def _result(table: pd.DataFrame, summary: pd.DataFrame, score_steps, score_seconds, subs,
            clock: str, pack: str) -> ClockRanking:
  cols = ["scope", "workload", "n_submissions", "n_reached", "spearman", "p_value", "n_moved",
          "moved", "n_within_noise", "comparable", "pack_sizes", "pace_outliers"]
  overall = pd.DataFrame(columns=["submission", "score_steps", "score_seconds", "rank_steps",
                                  "rank_seconds", "change"])
  if score_steps is not None and len(subs) and len(summary) >= 2:
    a = score_steps.reindex(subs).astype(float).to_numpy()
    b = score_seconds.reindex(subs).astype(float).to_numpy()
    ra, rb = _ranks(a, ascending=False), _ranks(b, ascending=False)
    overall = pd.DataFrame({"submission": subs, "score_steps": a, "score_seconds": b,
                            "rank_steps": ra, "rank_seconds": rb, "change": rb - ra})
    comparable = bool(summary["comparable"].all()) if len(summary) else True
    sizes = sorted({s for p in summary.get("pack_sizes", []) for s in str(p).split(",") if s},
                   key=float)
    summary = pd.concat([summary, pd.DataFrame([{
        "scope": "overall", "workload": OVERALL, "n_submissions": len(subs),
        "n_reached": int(np.sum(a > 0) if len(a) else 0), **_agreement(subs, ra, rb),
        "comparable": comparable, "pack_sizes": ",".join(sizes),
        "pace_outliers": ", ".join(sorted({o.split(" (")[0] for p in summary.get(
            "pace_outliers", []) for o in str(p).split(", ") if o}))}])], ignore_index=True)
  summary = summary.reindex(columns=cols)
  return ClockRanking(table, summary, overall, clock, pack)


def _ranks(x: np.ndarray, ascending: bool) -> np.ndarray:
  """1 = best; ties (misses: inf) share the better rank."""
  key = np.where(np.isnan(x), np.inf, x) if ascending else np.where(np.isnan(x), -np.inf, -x)
  return stats.rankdata(key, method="min").astype(int) if len(x) else np.zeros(0, dtype=int)


def _agreement(names: Sequence, ra: np.ndarray, rb: np.ndarray,
               stable: np.ndarray | None = None) -> dict:
  """Spearman's rho of two rank vectors and who moved (beyond noise where `stable`
  says which changes are); rho is NaN with fewer than two items or when either
  order is all ties (nothing to correlate)."""
  rho = p = np.nan
  if len(ra) >= 2 and len(set(ra)) > 1 and len(set(rb)) > 1:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # tiny n: scipy warns about the p-value
      res = stats.spearmanr(ra, rb)
    rho, p = float(res.statistic), float(res.pvalue)
  stable = np.ones(len(ra), bool) if stable is None else stable
  moved = [f"{n} {a}->{b}" for n, a, b, s in zip(names, ra, rb, stable) if a != b and s]
  noise = int(sum(a != b and not s for a, b, s in zip(ra, rb, stable)))
  return {"spearman": rho, "p_value": p, "n_moved": len(moved), "moved": ", ".join(moved),
          "n_within_noise": noise}


def _pace_outliers(names: Sequence, paces: np.ndarray) -> str:
  """'name (29.3 s/step vs median 0.71)' for paces PACE_FACTOR x off the median."""
  ok = np.isfinite(paces)
  if ok.sum() < 3:
    return ""
  med = float(np.median(paces[ok]))
  off = ok & ((paces > PACE_FACTOR * med) | (paces < med / PACE_FACTOR))
  return ", ".join(f"{n} ({p:.3g} s/step vs median {med:.3g})"
                   for n, p in zip(np.asarray(names)[off], paces[off]))


def _sizes(x: pd.Series) -> str:
  vals = sorted({float(v) for v in x.dropna()}) or [1.0]
  return ",".join(f"{v:g}" for v in vals)


def _check(clock: str, pack: str) -> None:
  if clock not in CLOCKS:
    raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
  if pack not in PACKS:
    raise ValueError(f"pack must be one of {', '.join(PACKS)}, got {pack!r}")
