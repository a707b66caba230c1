"""Optimizer rankings under a protocol, and Choi et al.'s inclusion check.

Per protocol and workload, each optimizer's study is summarised by its best
validation score and the test score of that same trial (selection by
validation, report test: Choi et al. 2019). The bound beside a best score is
on the best a rerun of the study would report (same protocol, same number of
trials): its median over reruns (analysis.bounds; an upper bound alone, since
nothing bounds a best-of-n from below with n trials). An inclusion violation
is "beyond noise" when an exact permutation test on the best trials
(analysis.bounds.tail_count_pvalue) rejects "both studies draw from one
distribution" at level 1 - ci.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis import bounds, schema
from analysis.best_of_k import trial_scores

# Choi et al.'s inclusion chains, special ⊆ general (a general optimizer can
# imitate the special one with some hyperparameter setting), closed
# transitively.
_CHAINS = (("sgd", "momentum", "rmsprop"), ("sgd", "momentum", "adam"),
           ("sgd", "nesterov", "nadam"))


def _closure(chains: Iterable[Sequence[str]]) -> tuple[tuple[str, str], ...]:
  pairs = []
  for chain in chains:
    for i, special in enumerate(chain):
      for general in chain[i + 1:]:
        if (special, general) not in pairs:
          pairs.append((special, general))
  return tuple(pairs)


INCLUSIONS: tuple[tuple[str, str], ...] = _closure(_CHAINS)

DEFAULT_BY = ("workload", "protocol_name")


def optimizer_scores(trials: pd.DataFrame, *, by: Sequence[str] = DEFAULT_BY,
                     optimizer_col: str = "optimizer", score: str | None = None,
                     test: str | None = None, diverged: str | float = "inf",
                     ci: float = 0.9) -> pd.DataFrame:
  """Best validation score and its trial's test score per optimizer, with a bound.

  Groups are `by` + optimizer; each group should be one study (add 'study_id'
  or 'sci/<name>' to `by` when a protocol ran several studies per optimizer).
  Divergence policy as in analysis.best_of_k (default: +inf). Columns: keys,
  n_trials, n_diverged, best_trial_id, best_val, test_at_best, val_lo, val_hi,
  val_sides (analysis.bounds.median_best_of_k with k = n_trials: val_hi bounds
  the rerun median best from above with confidence `ci`, val_lo is NaN), and
  scores (the study's sorted scores, for inclusion_check's test).
  """
  keys = list(by) + [optimizer_col]
  rows = []
  for key, g in trials.groupby(keys, sort=True, dropna=False):
    s = trial_scores(g, score=score, test=test, diverged=diverged)
    row = dict(zip(keys, key))
    row.update(n_trials=len(s), n_diverged=int((s["status"] == "diverged").sum()))
    if s.empty:
      rows.append(row)
      continue
    v, t = s["value"].to_numpy(), s["test"].to_numpy()
    order = np.argsort(v, kind="stable")
    v, t, ids = v[order], t[order], s["trial_id"].to_numpy()[order]
    b = bounds.median_best_of_k(v, len(v), ci=ci)
    row.update(best_trial_id=ids[0], best_val=v[0], test_at_best=t[0], val_lo=b.lo,
               val_hi=b.hi, val_sides=b.sides, scores=tuple(float(x) for x in v))
    rows.append(row)
  cols = keys + ["n_trials", "n_diverged", "best_trial_id", "best_val", "test_at_best",
                 "val_lo", "val_hi", "val_sides", "scores"]
  return pd.DataFrame(rows, columns=cols)


def ranking_table(scores: pd.DataFrame, *, by: Sequence[str] = DEFAULT_BY,
                  optimizer_col: str = "optimizer", value: str = "best_val") -> pd.DataFrame:
  """Ranks (1 = best, ties share the better rank) of optimizers within each group.

  Rows: one per `by` group; columns: optimizers; cells: rank by `value`
  (e.g. 'best_val' or 'test_at_best').
  """
  s = scores.copy()
  s["rank"] = s.groupby(list(by), dropna=False)[value].rank(method="min")
  return s.pivot_table(index=list(by), columns=optimizer_col, values="rank", aggfunc="first")


def inclusion_check(df: pd.DataFrame, *, by: Sequence[str] = DEFAULT_BY,
                    optimizer_col: str = "optimizer", value: str = "best_val",
                    tolerance: float = 0.0, level: float = 0.1,
                    inclusions: Sequence[tuple[str, str]] = INCLUSIONS,
                    all_pairs: bool = False) -> pd.DataFrame:
  """Pairs where a more general optimizer did worse than one it includes.

  For each group and each inclusion special ⊆ general present in `df` (output
  of optimizer_scores; optimizer names are matched case-insensitively through
  schema.canonical_optimizer), gap = general - special on `value` (lower is
  better, so gap > tolerance is a violation: the protocol failed to find, for
  the general optimizer, what the special one found). tail_count is how many
  special trials beat every general trial and p_value the chance of that many
  or more if both studies drew from one distribution (exact; needs the
  `scores` column); beyond_noise = violated and p_value <= `level`. With
  all_pairs=True every present pair is returned with a `violated` column.
  """
  keys = list(by)
  d = df.assign(_opt=df[optimizer_col].map(schema.canonical_optimizer))
  rows = []
  groups = d.groupby(keys, sort=True, dropna=False) if keys else [((), d)]
  for key, g in groups:
    key = key if isinstance(key, tuple) else (key,)
    opts = g.drop_duplicates("_opt").set_index("_opt")
    for special, general in inclusions:
      if special not in opts.index or general not in opts.index:
        continue
      s, gen = opts.loc[special], opts.loc[general]
      sv, gv = float(s[value]), float(gen[value])
      with np.errstate(invalid="ignore"):
        gap = gv - sv
      violated = bool(gap > tolerance) if not np.isnan(gap) else False
      r, p = ((bounds.tail_count_pvalue(s["scores"], gen["scores"]))
              if "scores" in opts.columns and isinstance(s["scores"], tuple)
              and isinstance(gen["scores"], tuple) else (np.nan, np.nan))
      relative = gap / abs(sv) if sv != 0.0 and np.isfinite(sv) else np.nan
      rows.append({**dict(zip(keys, key)), "special": special, "general": general,
                   "special_value": sv, "general_value": gv, "gap": gap, "relative_gap": relative,
                   "tail_count": r, "p_value": p,
                   "beyond_noise": bool(violated and p <= level), "violated": violated})
  out = pd.DataFrame(rows, columns=keys + ["special", "general", "special_value",
                                           "general_value", "gap", "relative_gap",
                                           "tail_count", "p_value", "beyond_noise",
                                           "violated"])
  if not all_pairs:
    out = out[out["violated"].astype(bool)].drop(columns="violated").reset_index(drop=True)
  return out


def protocol_rank_changes(scores: pd.DataFrame, *, by: Sequence[str] = DEFAULT_BY,
                          protocol_col: str = "protocol_name",
                          optimizer_col: str = "optimizer", level: float = 0.1
                          ) -> pd.DataFrame:
  """Pairs of optimizers whose order reverses between two protocols beyond noise.

  Within one protocol, `a` is ahead of `b` beyond noise when the exact tail-count
  test (analysis.bounds.tail_count_pvalue: how many of a's trials beat every one
  of b's) gives p <= `level`. A change of order across protocols (Choi et al.'s
  Fig. 4 question) is reported only when `a` is ahead beyond noise under one
  protocol and `b` under the other; point ranks that differ otherwise are ties
  within the noise of the search. `scores` is optimizer_scores' (its `scores`
  column). Columns: the keys of `by` other than the protocol, ahead_first,
  behind_first, protocol_first, protocol_then, p_first, p_then.
  """
  outer = [k for k in by if k != protocol_col]
  rows = []
  groups = scores.groupby(outer, sort=True, dropna=False) if outer else [((), scores)]
  for key, g in groups:
    key = key if isinstance(key, tuple) else (key,)
    ahead = {}  # protocol -> {(a, b): p} with a ahead of b beyond noise
    for proto, gp in g.groupby(protocol_col, sort=True):
      opts = gp.set_index(optimizer_col)["scores"].to_dict()
      ahead[proto] = {}
      for a, sa in opts.items():
        for b, sb in opts.items():
          if a != b and isinstance(sa, tuple) and isinstance(sb, tuple):
            _, p = bounds.tail_count_pvalue(sa, sb)
            if p <= level:
              ahead[proto][(a, b)] = p
    protos = sorted(ahead)
    for i, p1 in enumerate(protos):
      for p2 in protos[i + 1:]:
        for (a, b), q1 in ahead[p1].items():
          if (b, a) in ahead[p2]:
            rows.append({**dict(zip(outer, key)), "ahead_first": a, "behind_first": b,
                         "protocol_first": p1, "protocol_then": p2, "p_first": q1,
                         "p_then": ahead[p2][(b, a)]})
  return pd.DataFrame(rows, columns=outer + ["ahead_first", "behind_first", "protocol_first",
                                             "protocol_then", "p_first", "p_then"])
