"""Optimizer rankings under a protocol, and Choi et al.'s inclusion check.

Per protocol and workload, each optimizer's study is summarised by its best
validation score and the test score of that same trial (selection by
validation, report test: Choi et al. 2019). Bootstrap bands resample the
study's trials with replacement (same count) and reselect: they show how the
outcome of re-running the study with the same budget varies (study variance).
The bootstrap distribution of a minimum is lumpy and its lower end sits on the
observed best, so read the bands as "how much worse could this protocol have
come out", not as a symmetric error bar.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis import schema
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
                     n_boot: int = 1000, seed: int = 0, ci: float = 0.9) -> pd.DataFrame:
  """Best validation score and its trial's test score per optimizer, with bands.

  Groups are `by` + optimizer; each group should be one study (add 'study_id'
  or 'sci/<name>' to `by` when a protocol ran several studies per optimizer).
  Divergence policy as in analysis.best_of_k (default: +inf). Columns: keys,
  n_trials, n_diverged, best_trial_id, best_val, test_at_best, val_median,
  val_lo, val_hi, test_median, test_lo, test_hi.
  """
  keys = list(by) + [optimizer_col]
  rng = np.random.default_rng(seed)
  a = (1.0 - ci) / 2.0
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
    row.update(best_trial_id=ids[0], best_val=v[0], test_at_best=t[0])
    if n_boot:
      r = rng.integers(0, len(v), size=(n_boot, len(v))).min(axis=1)
      qv = np.quantile(v[r], [a, 0.5, 1 - a], method="inverted_cdf")
      qt = (np.nanquantile(t[r], [a, 0.5, 1 - a], method="inverted_cdf")
            if (~np.isnan(t[r])).any() else [np.nan] * 3)
      row.update(val_median=qv[1], val_lo=qv[0], val_hi=qv[2], test_median=qt[1],
                 test_lo=qt[0], test_hi=qt[2])
    rows.append(row)
  cols = keys + ["n_trials", "n_diverged", "best_trial_id", "best_val", "test_at_best",
                 "val_median", "val_lo", "val_hi", "test_median", "test_lo", "test_hi"]
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
                    lo: str = "val_lo", hi: str = "val_hi", tolerance: float = 0.0,
                    inclusions: Sequence[tuple[str, str]] = INCLUSIONS,
                    all_pairs: bool = False) -> pd.DataFrame:
  """Pairs where a more general optimizer did worse than one it includes.

  For each group and each inclusion special ⊆ general present in `df` (output
  of optimizer_scores; optimizer names are matched case-insensitively through
  schema.canonical_optimizer), gap = general - special on `value` (lower is
  better, so gap > tolerance is a violation: the protocol failed to find, for
  the general optimizer, what the special one found). ci_overlap says whether
  the two bootstrap bands [lo, hi] overlap; a violation without overlap is one
  the study variance does not explain. With all_pairs=True every present pair
  is returned with a `violated` column.
  """
  keys = list(by)
  d = df.assign(_opt=df[optimizer_col].map(schema.canonical_optimizer))
  has_ci = lo in d.columns and hi in d.columns
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
      overlap = (bool(max(s[lo], gen[lo]) <= min(s[hi], gen[hi])) if has_ci else np.nan)
      relative = gap / abs(sv) if sv != 0.0 and np.isfinite(sv) else np.nan
      rows.append({**dict(zip(keys, key)), "special": special, "general": general,
                   "special_value": sv, "general_value": gv, "gap": gap, "relative_gap": relative,
                   "ci_overlap": overlap, "violated": violated})
  out = pd.DataFrame(rows, columns=keys + ["special", "general", "special_value",
                                           "general_value", "gap", "relative_gap",
                                           "ci_overlap", "violated"])
  if not all_pairs:
    out = out[out["violated"].astype(bool)].drop(columns="violated").reset_index(drop=True)
  return out
