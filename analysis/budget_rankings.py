"""Rankings across training budgets: who leads at 10%, 20%, ..., 100% of the step budget.

Read from stored curves only (no new training). At a budget b (a fraction of the
group's step budget: the largest train_steps of its trials), each trial is what
retrospective checkpoint selection keeps had training stopped at b: its best
selection value among eval rows with step <= b (earliest row on ties) and the
test value of that row. A trial counts as diverged at b only if it diverged at or
before b; the divergence policy is analysis.best_of_k.trial_scores' (default: a
diverged trial scores +inf). Per study, the trial with the best selection value
(ties: trial order); per submission, the median over its studies (AlgoPerf's
aggregation; one study: its value). Ranks: 1 = best, ties share the better rank,
as in analysis.rankings.ranking_table.

Bootstrap (as in analysis.rankings): each replicate resamples every study's trials
with replacement (same count) and reselects, at every budget from the same draws,
so replicates are paired across budgets. They give bands on the score and on the
rank, P(rank 1), and for each order change the share of replicates in which the
overtaking submission is ahead before and after the change: a swap with p_after
near 0.5 is noise of the search, not a change of order. A swap is reported as
beyond noise when at least 90% of the paired replicates show it (behind at the
earlier budget, ahead at the later one).

Selection split: `select='auto'` selects on validation where the curves have it
and otherwise on test (DeepOBS 1.1 had no validation split and selected on test;
its step is the epoch); the `selected_on` column says which.

What this does not show: a run stopped at b is not a run trained for b. A
schedule that decays over the whole budget still has a high learning rate at b,
so early budgets favour settings that make fast early progress; a protocol re-run
with budget b could rank differently (Wen et al. 2025 report rankings that flip
as learning rates decay).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.best_of_k import trial_scores

FRACTIONS = tuple(float(f) for f in np.round(np.linspace(0.1, 1.0, 10), 10))
SELECT = ("auto", "val", "test", "train")
UNITS = ("step", "wall_time")
RANK_ON = ("score", "test")
_EPS = 1e-9  # f * budget rounding: 0.3 * 1000 must include the eval at step 300
LEVEL = 0.9  # a swap is beyond noise when this share of paired replicates shows it


class BudgetRanking(NamedTuple):
  """The ranking at every budget, its rank table and the order changes.

  scores: one row per group (by keys), fraction and submission: budget (in `unit`),
    selected_on, n_studies, n_trials, n_diverged, best_trial_id (single-study
    submissions), score / score_lo / score_hi (selection value of the selected
    trial, median over studies, bootstrap band), test / test_lo / test_hi, rank,
    rank_lo, rank_hi, p_first.
  ranks: one row per group and fraction; a column per submission (its rank), then
    changed (the order differs from the previous budget's), order ('a, b = c'
    best first) and swaps ('a > b': a moved ahead of b).
  changes: one row per swap (a pair's strict order reversed, ties in between
    allowed): fraction (where the new order first holds), prev_fraction (the last
    budget of the old order), ahead, behind, their ranks then and now, p_before
    and p_after (share of replicates in which `ahead` is strictly ahead of
    `behind` at those two budgets), p_swap (share of paired replicates showing
    the swap itself: behind then, ahead now) and beyond_noise (p_swap >= LEVEL,
    0.9): only those are reported as changes of order; the rest are ties within
    the noise of the search.
  """
  scores: pd.DataFrame
  ranks: pd.DataFrame
  changes: pd.DataFrame
  by: list[str]
  submission_col: str
  unit: str


def budget_rankings(trials: pd.DataFrame, curves: pd.DataFrame, *,
                    by: Sequence[str] = ("workload",), submission_col: str = "optimizer",
                    fractions: Sequence[float] = FRACTIONS, unit: str = "step",
                    budget_col: str | None = None, metric: str | None = None,
                    select: str = "auto", rank_on: str = "score",
                    diverged: str | float = "inf", study_col: str = "study_id",
                    n_boot: int = 1000, seed: int = 0, ci: float = 0.9) -> BudgetRanking:
  """Rank submissions within each `by` group at each budget fraction (module docstring).

  `metric` (default: each trial's goal metric) names the curve metric, e.g.
  'error'; `unit` 'wall_time' takes budgets as fractions of a wall-time budget
  instead of steps. The full budget of a group is the largest `budget_col` of its
  trials when given (e.g. AlgoPerf's max runtime), else the largest train_steps
  (unit 'step') or the largest wall_time logged. Groups with fewer than two
  submissions are left out. Raises ValueError on an unknown option.
  """
  keys = list(by)
  _check(fractions, unit, select, rank_on, diverged)
  fractions = np.sort(np.asarray(list(fractions), dtype=float))
  t = _trials(trials, keys, submission_col, study_col, metric)
  if t.empty:
    return _empty(keys, submission_col, unit)
  if budget_col is not None and budget_col not in trials.columns:
    raise KeyError(f"no column {budget_col!r} in trials")
  rows = _rows_at_budgets(t, curves, fractions, unit, select, budget_col)
  scored = _scored(t, rows, diverged)
  scores, reps = _bootstrap(t, rows, scored, keys, submission_col, study_col, fractions,
                            rank_on, n_boot, seed, ci)
  ranks, changes = _order_changes(scores, reps, keys, submission_col)
  return BudgetRanking(scores.drop(columns=["_gid", "_j"]), ranks, changes, keys,
                       submission_col, unit)


def _check(fractions, unit, select, rank_on, diverged) -> None:
  f = np.asarray(list(fractions), dtype=float)
  if len(f) == 0 or not np.all((f > 0) & (f <= 1)):
    raise ValueError(f"fractions must lie in (0, 1], got {list(fractions)}")
  for name, value, known in (("unit", unit, UNITS), ("select", select, SELECT),
                             ("rank_on", rank_on, RANK_ON)):
    if value not in known:
      raise ValueError(f"{name} must be one of {', '.join(known)}, got {value!r}")
  if not (diverged in ("inf", "exclude") or isinstance(diverged, (int, float))):
    raise ValueError(f"diverged must be 'inf', 'exclude' or a number, got {diverged!r}")


def _trials(trials: pd.DataFrame, keys: list[str], sub: str, study_col: str,
            metric: str | None) -> pd.DataFrame:
  """Finished trials of groups with two or more submissions, with _gid and _metric."""
  for col in keys + [sub, study_col]:
    if col not in trials.columns:
      raise KeyError(f"budget_rankings needs a {col!r} column in trials")
  t = trials[(trials["status"] != "failed") & trials[sub].notna()].copy()
  t["_metric"] = metric if metric is not None else t["goal_metric"]
  t = t[t["_metric"].notna()]
  if t.empty:
    return t
  t["_gid"] = t.groupby(keys, dropna=False, sort=True).ngroup()
  n_sub = t.groupby("_gid")[sub].transform("nunique")
  return t[n_sub >= 2].reset_index(drop=True)


def _values(c: pd.DataFrame, metrics: np.ndarray, splits: np.ndarray) -> np.ndarray:
  """Per curve row, the column f'{split}/{metric}' of that row's trial (NaN if absent)."""
  out = np.full(len(c), np.nan)
  combos = pd.DataFrame({"m": metrics, "s": splits}).drop_duplicates()
  for m, s in zip(combos["m"], combos["s"]):
    col = f"{s}/{m}"
    if col in c.columns:
      mask = (metrics == m) & (splits == s)
      out[mask] = pd.to_numeric(c.loc[mask, col], errors="coerce").to_numpy(dtype=float)
  return out


def _rows_at_budgets(t: pd.DataFrame, curves: pd.DataFrame, fractions: np.ndarray, unit: str,
                     select: str, budget_col: str | None) -> pd.DataFrame:
  """Per trial and fraction: the running best selection value at the budget and the
  test value of the row that holds it (value inf / test NaN before the first eval)."""
  info = t.set_index("trial_id")
  c = curves[curves["trial_id"].isin(info.index)]
  c = c.assign(_x=pd.to_numeric(c[unit], errors="coerce")).dropna(subset=["_x"])
  c = c.sort_values(["trial_id", "_x"], kind="stable").reset_index(drop=True)
  metrics = c["trial_id"].map(info["_metric"]).to_numpy(dtype=object)
  gid = c["trial_id"].map(info["_gid"]).to_numpy()
  split = np.full(len(c), select if select != "auto" else "val", dtype=object)
  if select == "auto":
    has_val = pd.Series(np.isfinite(_values(c, metrics, split))).groupby(gid).transform("any")
    split = np.where(has_val.to_numpy(dtype=bool), "val", "test").astype(object)
  sel = _values(c, metrics, split)
  test = _values(c, metrics, np.full(len(c), "test", dtype=object))
  s = pd.Series(np.where(np.isfinite(sel), sel, np.inf))
  tid = c["trial_id"]
  best = s.groupby(tid).cummin()
  prev = best.groupby(tid).shift()
  new = prev.isna() | (s < prev)
  pos = pd.Series(np.where(new, np.arange(len(c)), np.nan)).groupby(tid).ffill()
  pos = pos.to_numpy(dtype=float).astype(int) if len(c) else np.zeros(0, dtype=int)
  c = c.assign(_best=best.to_numpy(), _test=test[pos] if len(c) else test,
               _split=split)[["trial_id", "_x", "step", "_best", "_test", "_split"]]
  base = _budget_base(t, c, unit, budget_col)
  q = t[["trial_id", "_gid"]].merge(pd.DataFrame({"_j": np.arange(len(fractions))}),
                                    how="cross")
  q["_b"] = fractions[q["_j"]] * q["_gid"].map(base).to_numpy(dtype=float) * (1 + _EPS)
  q = q.dropna(subset=["_b"]).sort_values("_b", kind="stable")
  right = c.drop(columns="_split").rename(columns={"_x": "_xrow"}).sort_values(
      "_xrow", kind="stable")
  q["trial_id"] = q["trial_id"].astype(object)  # the asof key's dtypes must match
  right["trial_id"] = right["trial_id"].astype(object)
  out = pd.merge_asof(q, right, left_on="_b", right_on="_xrow", by="trial_id",
                      direction="backward")
  split_of = pd.Series(split, index=gid).groupby(level=0).first()
  out["_split"] = out["_gid"].map(split_of).fillna("val" if select == "auto" else select)
  out["_best"] = out["_best"].fillna(np.inf)
  out["_div_x"] = out["trial_id"].map(_divergence_x(t, c, unit)).to_numpy(dtype=float)
  return out.sort_values(["_j", "trial_id"], kind="stable").reset_index(drop=True)


def _budget_base(t: pd.DataFrame, c: pd.DataFrame, unit: str,
                 budget_col: str | None) -> pd.Series:
  """Per group: the full budget (budget_col; else the largest train_steps, else the
  largest eval step; or the largest wall_time)."""
  last = c.groupby("trial_id")["_x"].max()
  x = t["trial_id"].map(last).astype(float)
  if budget_col is not None:
    x = pd.to_numeric(t[budget_col], errors="coerce").astype(float)
  elif unit == "step":
    steps = pd.to_numeric(t["train_steps"], errors="coerce")
    x = steps.where(steps.notna(), x)
  return x.groupby(t["_gid"].to_numpy()).max()


def _divergence_x(t: pd.DataFrame, c: pd.DataFrame, unit: str) -> pd.Series:
  """Per diverged trial, the budget from which it counts as diverged (-inf if unknown)."""
  d = t[t["status"] == "diverged"].set_index("trial_id")["diverged_step"].astype(float)
  if unit == "step" or d.empty:
    return d.fillna(-np.inf)
  rows = c[c["trial_id"].isin(d.index)]
  at = rows[rows["step"].to_numpy(dtype=float) >= rows["trial_id"].map(d).to_numpy(dtype=float)]
  first = at.groupby("trial_id")["_x"].min()
  last = rows.groupby("trial_id")["_x"].max()
  out = pd.Series(np.where(d.isna(), -np.inf, np.nan), index=d.index)
  return out.fillna(first).fillna(last).fillna(-np.inf)


def _scored(t: pd.DataFrame, rows: pd.DataFrame, diverged: str | float) -> pd.DataFrame:
  """trial_scores at every budget (status as of that budget), in tie-break order."""
  info = t.set_index("trial_id")
  frames = []
  for j, g in rows.groupby("_j", sort=True):
    div = (g["trial_id"].map(info["status"]) == "diverged").to_numpy() & (
        g["_div_x"].to_numpy(dtype=float) <= g["_b"].to_numpy(dtype=float))
    frame = pd.DataFrame({"trial_id": g["trial_id"].to_numpy(),
                          "trial_index": g["trial_id"].map(info["trial_index"]).to_numpy(),
                          "status": np.where(div, "diverged", "ok"),
                          "_val": g["_best"].to_numpy(dtype=float),
                          "_test": g["_test"].to_numpy(dtype=float)})
    s = trial_scores(frame, score="_val", test="_test", diverged=diverged)
    s["_j"] = j
    frames.append(s)
  return pd.concat(frames, ignore_index=True)


def _study_draws(g: pd.DataFrame, n_f: int, u: np.ndarray) -> dict[str, np.ndarray]:
  """One study at every budget: point and replicate (score, test) of the selected trial.

  `g` is the study's trial_scores rows (tie-break order within each budget); `u`
  holds uniform draws (replicates x trials) shared by all budgets, so replicate r
  resamples the same trials at every budget (pool sizes differ only under
  diverged='exclude').
  """
  nb = len(u)
  point = np.full((n_f, 2), [np.inf, np.nan])
  reps = np.full((nb, n_f, 2), [np.inf, np.nan])
  n, n_div = np.zeros(n_f, dtype=int), np.zeros(n_f, dtype=int)
  ids = np.full(n_f, None, dtype=object)
  for j, gj in g.groupby("_j", sort=True):
    v, te = gj["value"].to_numpy(dtype=float), gj["test"].to_numpy(dtype=float)
    n[j], n_div[j] = len(v), int((gj["status"] == "diverged").sum())
    if len(v) == 0:
      continue
    order = np.argsort(v, kind="stable")  # ties: trial order (the input order)
    point[j], ids[j] = (v[order[0]], te[order[0]]), gj["trial_id"].iloc[order[0]]
    if nb:
      rankpos = np.empty(len(v), dtype=int)
      rankpos[order] = np.arange(len(v))
      pick = order[rankpos[(u[:, :len(v)] * len(v)).astype(int)].min(axis=1)]
      reps[:, j, 0], reps[:, j, 1] = v[pick], te[pick]
  return {"point": point, "reps": reps, "n": n, "div": n_div, "ids": ids}


def _median(x: np.ndarray) -> np.ndarray:
  """Median over studies (axis 0): inf propagates as in AlgoPerf; NaN tests are skipped."""
  out = np.median(x, axis=0)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no test metric
    out[..., 1] = np.nanmedian(x[..., 1], axis=0)
  return out


def _band(x: np.ndarray, a: float) -> tuple[float, float]:
  """The (a, 1 - a) inverted-CDF quantiles of bootstrap replicates, NaNs skipped."""
  x = x[~np.isnan(x)]
  if len(x) == 0:
    return np.nan, np.nan
  lo, hi = np.quantile(x, [a, 1 - a], method="inverted_cdf")
  return float(lo), float(hi)


def _bootstrap(t: pd.DataFrame, rows: pd.DataFrame, scored: pd.DataFrame, keys: list[str],
               sub: str, study_col: str, fractions: np.ndarray, rank_on: str, n_boot: int,
               seed: int, ci: float) -> tuple[pd.DataFrame, dict]:
  """Scores and ranks per (group, fraction, submission); replicate scores per (group, j)."""
  info = t.set_index("trial_id")
  s = scored.assign(_gid=scored["trial_id"].map(info["_gid"]).to_numpy(),
                    _sub=scored["trial_id"].map(info[sub]).to_numpy(),
                    _study=scored["trial_id"].map(info[study_col]).to_numpy())
  budget = rows.groupby(["_gid", "_j"])["_b"].first() / (1 + _EPS)
  split = rows.groupby("_gid")["_split"].first()
  n_trials = t.groupby(["_gid", sub, study_col], dropna=False).size()
  rng = np.random.default_rng(seed)
  nb, n_f, col, a = max(int(n_boot), 0), len(fractions), RANK_ON.index(rank_on), (1 - ci) / 2
  studies: dict[tuple, list[dict]] = {}
  for (gid, name, study), g in s.groupby(["_gid", "_sub", "_study"], sort=True, dropna=False):
    u = rng.random((nb, int(n_trials[(gid, name, study)])))
    studies.setdefault((gid, name), []).append(_study_draws(g, n_f, u))
  groups = t.drop_duplicates("_gid").set_index("_gid")[keys]
  out, reps_by = [], {}
  for gid in sorted({g for g, _ in studies}):
    names = sorted((n for g, n in studies if g == gid), key=str)
    parts = [studies[(gid, n)] for n in names]
    point = np.stack([_median(np.stack([p["point"] for p in ps])) for ps in parts])
    reps = np.stack([_median(np.stack([p["reps"] for p in ps])) for ps in parts], axis=2)
    key = np.where(np.isnan(point[:, :, col]), np.inf, point[:, :, col])  # (subs, f)
    rank = stats.rankdata(key, method="min", axis=0)
    rkey = np.where(np.isnan(reps[..., col]), np.inf, reps[..., col])    # (boot, f, subs)
    rrank = stats.rankdata(rkey, method="min", axis=2) if nb else rkey
    for j, f in enumerate(fractions):
      reps_by[(gid, j)] = (names, rkey[:, j, :])
      for i, (n, ps) in enumerate(zip(names, parts)):
        row = {k: groups.at[gid, k] for k in keys}
        row.update({"_gid": gid, "_j": j, "fraction": f, "budget": budget.get((gid, j), np.nan),
                    sub: n, "selected_on": split.get(gid),
                    "n_studies": len(ps), "n_trials": int(sum(p["n"][j] for p in ps)),
                    "n_diverged": int(sum(p["div"][j] for p in ps)),
                    "best_trial_id": ps[0]["ids"][j] if len(ps) == 1 else None,
                    "score": point[i, j, 0], "test": point[i, j, 1], "rank": int(rank[i, j])})
        if nb:
          rr = rrank[:, j, i]
          row.update(zip(("score_lo", "score_hi"), _band(reps[:, j, i, 0], a)))
          row.update(zip(("test_lo", "test_hi"), _band(reps[:, j, i, 1], a)))
          row.update(zip(("rank_lo", "rank_hi"), _band(rr.astype(float), a)))
          row["p_first"] = float(np.mean(rr == 1))
        out.append(row)
  cols = ["_gid", "_j"] + keys + ["fraction", "budget", sub, "selected_on", "n_studies",
                                  "n_trials", "n_diverged", "best_trial_id", "score",
                                  "score_lo", "score_hi", "test", "test_lo", "test_hi", "rank",
                                  "rank_lo", "rank_hi", "p_first"]
  return pd.DataFrame(out, columns=cols), reps_by


def _order_changes(scores: pd.DataFrame, reps: dict, keys: list[str],
                   sub: str) -> tuple[pd.DataFrame, pd.DataFrame]:
  """The wide rank table with changes flagged, and one row per swap.

  A swap is a pair whose strict order reverses; a budget where the pair ties in
  between does not hide it (prev_fraction is the last budget of the old order).
  """
  rank_rows, change_rows = [], []
  for gid, g in scores.groupby("_gid", sort=True):
    prev, last = None, {}  # last[(x, y)]: (sign of rank_x - rank_y, j, fraction)
    for j, gj in g.groupby("_j", sort=True):
      cur = gj.set_index(sub)["rank"]
      first = gj.iloc[0]
      head = {k: first[k] for k in keys}
      swaps = []
      names = sorted(cur.index, key=str)
      for i, x in enumerate(names):
        for y in names[i + 1:]:
          sign = int(np.sign(cur[x] - cur[y]))
          if sign == 0:
            continue
          before = last.get((x, y))
          if before is not None and before[0] == -sign:
            ahead, behind = (x, y) if sign < 0 else (y, x)
            swaps.append((ahead, behind, before[1], before[2]))
          last[(x, y)] = (sign, j, first["fraction"])
      rank_rows.append({**head, "fraction": first["fraction"], "budget": first["budget"],
                        "selected_on": first["selected_on"],
                        **{str(n): int(r) for n, r in cur.items()},
                        "changed": prev is not None and not prev.equals(cur),
                        "order": _order_text(cur),
                        "swaps": ", ".join(f"{a} > {b}" for a, b, *_ in swaps)})
      for a, b, j0, f0 in swaps:
        old = g[g["_j"] == j0].set_index(sub)["rank"]
        change_rows.append({**head, "fraction": first["fraction"], "prev_fraction": f0,
                            "budget": first["budget"], "ahead": a, "behind": b,
                            "rank_before": f"{old[a]} vs {old[b]}",
                            "rank_after": f"{cur[a]} vs {cur[b]}",
                            "p_before": _p_ahead(reps, gid, j0, a, b),
                            "p_after": _p_ahead(reps, gid, j, a, b),
                            "p_swap": _p_swap(reps, gid, j0, j, a, b)})
      prev = cur
  names = sorted({str(n) for n in scores[sub]}, key=str)
  rcols = keys + ["fraction", "budget", "selected_on"] + names + ["changed", "order", "swaps"]
  ccols = keys + ["fraction", "prev_fraction", "budget", "ahead", "behind", "rank_before",
                  "rank_after", "p_before", "p_after", "p_swap", "beyond_noise"]
  changes = pd.DataFrame(change_rows, columns=ccols[:-1])
  changes["beyond_noise"] = changes["p_swap"] >= LEVEL
  return pd.DataFrame(rank_rows, columns=rcols), changes


def _p_ahead(reps: dict, gid: int, j: int, a: str, b: str) -> float:
  """Share of bootstrap replicates in which `a` scores strictly better than `b`."""
  names, r = reps.get((gid, j), (None, None))
  if names is None or len(r) == 0:
    return np.nan
  return float(np.mean(r[:, names.index(a)] < r[:, names.index(b)]))


def _p_swap(reps: dict, gid: int, j0: int, j1: int, a: str, b: str) -> float:
  """Share of paired replicates in which `b` is strictly ahead of `a` at budget j0 and
  `a` strictly ahead of `b` at j1: the swap itself, resampled."""
  names, r0 = reps.get((gid, j0), (None, None))
  names1, r1 = reps.get((gid, j1), (None, None))
  if names is None or names1 is None or len(r0) == 0 or len(r1) == 0:
    return np.nan
  ia, ib, ja, jb = names.index(a), names.index(b), names1.index(a), names1.index(b)
  return float(np.mean((r0[:, ib] < r0[:, ia]) & (r1[:, ja] < r1[:, jb])))


def _order_text(rank: pd.Series) -> str:
  """'a, b = c' best first (ties joined by '=')."""
  return ", ".join(" = ".join(sorted((str(n) for n in g.index), key=str))
                   for _, g in rank.groupby(rank.to_numpy(), sort=True))


def _empty(keys: list[str], sub: str, unit: str) -> BudgetRanking:
  return BudgetRanking(
      pd.DataFrame(columns=keys + ["fraction", "budget", sub, "score", "test", "rank"]),
      pd.DataFrame(columns=keys + ["fraction", "budget", "changed", "order", "swaps"]),
      pd.DataFrame(columns=keys + ["fraction", "ahead", "behind", "p_before", "p_after",
                                   "p_swap", "beyond_noise"]),
      keys, sub, unit)
