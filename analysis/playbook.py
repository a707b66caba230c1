"""The tuning playbook's checks before an experiment's conclusion is trusted.

* boundary_check: are the best trials of a study at the edge of its search space
  (the playbook's "basic hyperparameter axis plot" question: if so, widen it)?
* isolation: the best score per value of a scientific hyperparameter after
  optimising away the nuisance ones (min over trials), with order-statistic bounds.
* trial_vs_study_variance: seed-to-seed variance of one hyperparameter point
  (trial variance) against the variance of a study's best result over
  independent studies of the same protocol and setting (study variance).

Pure pandas/numpy/scipy on the trials table of analysis.load. Scores are lower
is better; the default score of a trial is best/val/<goal metric> (retrospective
checkpoint selection). Search-space specs follow protocols.search_space
(kind linear / log / log1m / int / choice / fixed, low, high, reparam); they
are read from study.json, never imported from protocols.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis import bounds
from analysis.best_of_k import trial_scores

HP = "hp/"
SCI = "sci/"
LOG_DECADES = 1.5                     # wider than this (positive values): log scale
LOG1M_DECADES = 1.0                   # 1 - x wider than this (momentum-like): log1m scale
LOG1M_NAMES = ("momentum", "beta1", "beta2", "rho")
CONTINUOUS = ("linear", "log", "log1m", "int")
# Searched quantities that are not hyperparameters (protocols' reparams), from a trial's
# hyperparameters: the value the sampler drew, so its bounds are the spec's.
DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "effective_learning_rate": lambda t: _num(t, HP + "learning_rate") / (
        1.0 - _num(t, HP + "momentum").fillna(0.0)),
}
BOUNDARY_COLUMNS = ("param", "side", "scale", "low", "high", "bounds", "edge_fraction", "n_top",
                    "n_near", "fraction", "best_near", "p_crowd", "crowded", "flagged",
                    "message")


def _num(t: pd.DataFrame, col: str) -> pd.Series:
  if col not in t.columns:
    return pd.Series(np.nan, index=t.index)
  return pd.to_numeric(t[col], errors="coerce").astype(float)


# --------------------------------------------------------------------- scores and spaces

def default_score(trials: pd.DataFrame) -> pd.Series:
  """best/val/<goal metric> per trial: the validation objective the playbook plots
  (not the study's selection rule, analysis.record.objective_value: see there)."""
  out = pd.Series(np.nan, index=trials.index, dtype=float)
  for metric in pd.unique(trials["goal_metric"].dropna()):
    col = f"best/val/{metric}"
    if col in trials.columns:
      mask = trials["goal_metric"] == metric
      out[mask] = _num(trials.loc[mask], col)
  return out


def search_spaces(studies: pd.DataFrame) -> dict[str, dict[str, Any]]:
  """study_id -> the protocol's search space, from the studies table of analysis.load."""
  out: dict[str, dict[str, Any]] = {}
  if studies is None or studies.empty or "protocol" not in studies.columns:
    return out
  for sid, text in zip(studies["study_id"], studies["protocol"]):
    try:
      space = json.loads(text).get("search_space")
    except (TypeError, ValueError, AttributeError):
      continue
    if isinstance(space, Mapping) and space:
      out[str(sid)] = dict(space)
  return out


class Dimension(NamedTuple):
  """One searched hyperparameter: values per trial, scale and bounds."""
  name: str
  values: pd.Series   # per trial (NaN where the parameter is absent)
  scale: str          # 'linear' | 'log' | 'log1m'
  low: float
  high: float
  bounds: str         # 'search space' or 'observed'


def _spec_scale(spec: Mapping[str, Any]) -> str:
  kind = spec.get("kind")
  if kind == "int":
    return "log" if spec.get("log") else "linear"
  return kind


def infer_scale(name: str, values: np.ndarray) -> str:
  """Log when positive values span > 1.5 decades; log1m when 1 - x of a momentum-like
  parameter spans > 1 decade (0.9 .. 0.999 is the usual search, linear would crowd it)."""
  v = values[np.isfinite(values)]
  if len(v) < 2:
    return "linear"
  if v.min() > 0 and math.log10(v.max() / v.min()) > LOG_DECADES:
    return "log"
  if name in LOG1M_NAMES and v.min() >= 0 and v.max() < 1:
    one_minus = 1.0 - v
    if math.log10(one_minus.max() / one_minus.min()) > LOG1M_DECADES:
      return "log1m"
  return "linear"


def searched_params(trials: pd.DataFrame, space: Mapping[str, Any] | None) -> list[str]:
  """Names of the searched numeric hyperparameters: the space's continuous ones when it
  is known, else every hp/ column with numeric values that vary."""
  if space:
    return sorted(n for n, s in space.items()
                  if isinstance(s, Mapping) and s.get("kind") in CONTINUOUS)
  names = []
  for col in trials.columns:
    if str(col).startswith(HP):
      v = _num(trials, col).dropna()
      if v.nunique() > 1 and v.notna().sum() == trials[col].notna().sum():
        names.append(col[len(HP):])
  return sorted(names)


def dimension(trials: pd.DataFrame, name: str,
              space: Mapping[str, Any] | None = None) -> Dimension | None:
  """Values, scale and bounds of one searched hyperparameter (None if not numeric)."""
  spec = (space or {}).get(name)
  if isinstance(spec, Mapping) and spec.get("reparam"):
    if name not in DERIVED:
      return None
    values = DERIVED[name](trials)
  elif HP + name in trials.columns:
    values = _num(trials, HP + name)
  else:
    return None
  finite = values[np.isfinite(values)]
  if finite.empty:
    return None
  if isinstance(spec, Mapping) and spec.get("kind") in CONTINUOUS:
    scale, low, high, src = _spec_scale(spec), float(spec["low"]), float(spec["high"]), \
        "search space"
  else:
    scale, low, high, src = (infer_scale(name, finite.to_numpy()), float(finite.min()),
                             float(finite.max()), "observed")
  return Dimension(name, values, scale, low, high, src)


def _forward(x: np.ndarray | float, scale: str) -> np.ndarray:
  x = np.asarray(x, dtype=float)
  with np.errstate(divide="ignore", invalid="ignore"):
    if scale == "log":
      return np.log10(x)
    if scale == "log1m":
      return -np.log10(1.0 - x)
  return x


def to_unit(dim: Dimension, x: np.ndarray | float) -> np.ndarray:
  """Position in [0, 1] along the search range, on the parameter's own scale."""
  a, b = _forward(dim.low, dim.scale), _forward(dim.high, dim.scale)
  if not np.isfinite(a) or not np.isfinite(b) or a == b:
    return np.full(np.shape(x), np.nan)
  return (_forward(x, dim.scale) - a) / (b - a)


def from_unit(dim: Dimension, u: np.ndarray | float) -> np.ndarray:
  """Inverse of to_unit (for drawing edge regions on an axis plot)."""
  a, b = _forward(dim.low, dim.scale), _forward(dim.high, dim.scale)
  f = a + np.asarray(u, dtype=float) * (b - a)
  if dim.scale == "log":
    return 10.0 ** f
  if dim.scale == "log1m":
    return 1.0 - 10.0 ** (-f)
  return f


# ------------------------------------------------------------------------ boundary check

def scored_trials(trials: pd.DataFrame, score_col: str) -> pd.DataFrame:
  """Finished (status ok) trials with a finite score, best first (trial order on ties)."""
  t = trials[trials["status"] == "ok"]
  t = t.assign(_s=_num(t, score_col), _ti=_num(t, "trial_index"))
  t = t[np.isfinite(t["_s"])]
  return t.sort_values(["_s", "_ti", "trial_id"], kind="stable").drop(columns=["_s", "_ti"])


def top_trials(trials: pd.DataFrame, *, score_col: str, top_fraction: float = 0.1,
               min_top: int = 3) -> pd.DataFrame:
  """The best max(min_top, ceil(top_fraction * n)) finished trials, best first."""
  ok = scored_trials(trials, score_col)
  n = min(len(ok), max(int(min_top), math.ceil(top_fraction * len(ok))))
  return ok.head(n)


def _fmt(x: float) -> str:
  return f"{x:.3g}"


def _edge_row(dim: Dimension, side: str, top: pd.DataFrame, edge_fraction: float,
              level: float) -> dict[str, Any]:
  u = to_unit(dim, dim.values.loc[top.index].to_numpy(dtype=float))
  present = np.isfinite(u)
  near = (u >= 1.0 - edge_fraction) if side == "high" else (u <= edge_fraction)
  near &= present
  n_top, n_near = int(present.sum()), int(near.sum())
  best_near = bool(near[0]) if len(near) else False
  fraction = n_near / n_top if n_top else np.nan
  p_crowd = float(stats.binom.sf(n_near - 1, n_top, edge_fraction)) if n_top else np.nan
  crowded = bool(n_top) and n_near >= 2 and p_crowd <= level
  flagged = best_near
  where = f"{'top' if side == 'high' else 'bottom'} {edge_fraction:.0%}"
  msg = (f"{dim.name}: {n_near} of the {n_top} best trials"
         f"{' (the best included)' if best_near else ''} are in the {where} of the "
         f"range [{_fmt(dim.low)}, {_fmt(dim.high)}] ({dim.scale} scale, {dim.bounds} bounds)")
  if flagged:
    msg += (f" — {'crowded beyond chance' if crowded else 'the best trial alone'} "
            f"(binomial p = {p_crowd:.2g}); widen the search space "
            f"{'upward' if side == 'high' else 'downward'}")
  return {"param": dim.name, "side": side, "scale": dim.scale, "low": dim.low,
          "high": dim.high, "bounds": dim.bounds, "edge_fraction": edge_fraction,
          "n_top": n_top, "n_near": n_near, "fraction": fraction, "best_near": best_near,
          "p_crowd": p_crowd, "crowded": crowded, "flagged": flagged, "message": msg}


def boundary_check(trials: pd.DataFrame, *, score_col: str,
                   params: Sequence[str] | None = None, top_fraction: float = 0.1,
                   min_top: int = 3, edge_fraction: float = 0.1, min_share: float = 0.5,
                   space: Mapping[str, Any] | None = None, level: float = 0.1) -> pd.DataFrame:
  """Whether a study's best trials sit at an edge of its search space, per parameter.

  The Playbook's rule ("a search space is suspicious if the best point sampled
  from it is close to its boundary"; "if the best points cluster towards the
  edge ... expand"): an edge is the outer `edge_fraction` of the range on the
  parameter's scale (the spec's scale and [low, high] when `space` is given, else
  log when positive values span > 1.5 decades, and the observed min/max), and a
  side is `flagged` when the best finished trial lies in it. `crowded` adds
  whether the top max(min_top, ceil(top_fraction * n)) trials crowd that edge
  beyond chance: n_near of them there against Binomial(n_top, edge_fraction),
  the count uniform sampling would give if the score did not depend on the
  parameter, at p <= `level` (`p_crowd`). A flag alone on one of d parameters
  happens by chance in 1 - (1 - 2 * edge_fraction)^d of studies; a crowded
  edge rarely does. `min_share` is kept for callers and unused. One row per
  parameter and side (columns BOUNDARY_COLUMNS); `message` is a one-line verdict.
  """
  top = top_trials(trials, score_col=score_col, top_fraction=top_fraction, min_top=min_top)
  rows = []
  if not top.empty:
    for name in (params if params is not None else searched_params(trials, space)):
      dim = dimension(trials, name, space)
      if dim is None or dim.low == dim.high:
        continue
      for side in ("low", "high"):
        rows.append(_edge_row(dim, side, top, edge_fraction, level))
  return pd.DataFrame(rows, columns=list(BOUNDARY_COLUMNS))


# ----------------------------------------------------------------------------- isolation

def resolve_column(trials: pd.DataFrame, name: str) -> str:
  """A trials column by its name or short name ('weight_decay' -> sci/ or hp/ column)."""
  for col in (name, SCI + name, HP + name):
    if col in trials.columns:
      return col
  raise KeyError(f"no column {name!r} (nor sci/{name}, hp/{name}) in trials")


def bucket(values: pd.Series, bins: int) -> pd.Series:
  """Geometric (log scale) or arithmetic bucket centres: the playbook's vertical slices."""
  v = pd.to_numeric(values, errors="coerce").astype(float)
  finite = v[np.isfinite(v)]
  if finite.nunique() <= bins:
    return v
  scale = infer_scale("", finite.to_numpy())
  f = np.log10(v) if scale == "log" else v
  edges = np.linspace(f[np.isfinite(f)].min(), f[np.isfinite(f)].max(), bins + 1)
  idx = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, bins - 1)
  centres = (edges[:-1] + edges[1:]) / 2
  out = centres[idx]
  out = 10.0 ** out if scale == "log" else out
  return pd.Series(np.where(np.isfinite(v), out, np.nan), index=values.index)


def _isolation_row(s: pd.DataFrame, optimise: bool, ci: float) -> dict[str, Any]:
  v = s["value"].to_numpy(dtype=float)
  row: dict[str, Any] = {"n_trials": len(v), "n_diverged": int((s["status"] == "diverged").sum())}
  if len(v) == 0:
    return row
  row["value"] = float(np.min(v) if optimise else np.median(v))
  row["best_trial_id"] = s["trial_id"].iloc[int(np.argmin(v))] if optimise else None
  b = bounds.median_best_of_k(v, len(v) if optimise else 1, ci=ci)
  row.update(lo=b.lo, hi=b.hi, sides=b.sides)
  return row


def isolation(trials: pd.DataFrame, *, scientific: str, score_col: str,
              nuisance_optimised: bool = True, by: Sequence[str] = (),
              bins: int | None = None, diverged: str | float = "inf",
              ci: float = 0.9) -> pd.DataFrame:
  """Score per value of a scientific hyperparameter, nuisance ones optimised away.

  For each value (and `by` group), the best (min) score over its trials: the
  playbook's isolation plot. With nuisance_optimised=False the median over trials
  is reported instead (what an untuned nuisance setting typically gets). `bins`
  buckets a continuous scientific parameter into vertical slices. lo / hi /
  sides bound what a rerun of the value's trials would give, its median over
  reruns (analysis.bounds: for the best, one-sided upper; for the median trial,
  two-sided where n allows). Diverged trials score +inf (policy of
  analysis.best_of_k), failed ones are dropped. Columns: by..., scientific,
  n_trials, n_diverged, value, best_trial_id, lo, hi, sides.
  """
  col = resolve_column(trials, scientific)
  keys = list(by) + [col]
  t = trials.assign(**{col: bucket(trials[col], bins)}) if bins else trials
  rows = []
  for key, g in t.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    if pd.isna(key[-1]):
      continue
    s = trial_scores(g, score=score_col, diverged=diverged)
    rows.append({**dict(zip(keys, key)), **_isolation_row(s, nuisance_optimised, ci)})
  cols = keys + ["n_trials", "n_diverged", "value", "best_trial_id", "lo", "hi", "sides"]
  return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------- trial vs study variance

@dataclasses.dataclass(frozen=True)
class VarianceComparison:
  """Trial variance (seeds of one point) vs study variance (best of a study over studies).

  `trial` / `study` are None when that kind of repetition is absent, with the
  reason in `reason`; the test fields are then NaN and `verdict` says why.
  """
  trial: pd.DataFrame | None     # one row per repeated point: keys, point, n, mean, var
  study: pd.DataFrame | None     # one row per setting: keys, n (studies), mean, var
  trial_var: float = np.nan      # pooled within-point variance
  study_var: float = np.nan      # pooled within-setting variance of study bests
  ratio: float = np.nan          # study_var / trial_var
  f_pvalue: float = np.nan       # two-sided F-test of equal variances
  levene_pvalue: float = np.nan  # Brown-Forsythe (median-centred Levene) test
  verdict: str = ""
  reason: str = ""

  @property
  def available(self) -> bool:
    return self.trial is not None and self.study is not None


def setting_columns(trials: pd.DataFrame) -> list[str]:
  """Columns that define one protocol at one scientific setting (studies repeat it)."""
  base = ["workload", "protocol_name", "protocol_hash", "optimizer"]
  return base + sorted(c for c in trials.columns if str(c).startswith(SCI))


def point_label(trials: pd.DataFrame) -> pd.Series:
  """'learning_rate=0.1, momentum=0.9' per trial: its hp/* point (absent ones left out)."""
  hp = sorted(c for c in trials.columns if str(c).startswith(HP))
  def label(row) -> str:
    return ", ".join(f"{c[len(HP):]}={v:.6g}" if isinstance(v, float) else f"{c[len(HP):]}={v}"
                     for c, v in zip(hp, row) if not pd.isna(v))
  return pd.Series([label(r) for r in zip(*(trials[c] for c in hp))] if hp else "",
                   index=trials.index, dtype=object)


def _pooled(groups: pd.DataFrame, values: pd.Series) -> tuple[pd.DataFrame, float, np.ndarray]:
  """Per-group n/mean/var of groups with >= 2 values, pooled variance, centred deviations."""
  keys = list(groups.columns)
  d = groups.assign(_v=values.to_numpy(dtype=float))
  stats_ = d.groupby(keys, dropna=False, sort=True)["_v"].agg(["count", "mean", "var"])
  stats_ = stats_[stats_["count"] >= 2].reset_index().rename(columns={"count": "n"})
  if stats_.empty:
    return stats_, np.nan, np.array([])
  pooled = float(((stats_["n"] - 1) * stats_["var"]).sum() / (stats_["n"] - 1).sum())
  med = d.groupby(keys, dropna=False)["_v"].transform("median")
  size = d.groupby(keys, dropna=False)["_v"].transform("size")
  dev = (d["_v"] - med)[size >= 2].to_numpy(dtype=float)
  return stats_, pooled, dev


def _trial_groups(t: pd.DataFrame, keys: list[str], score_col: str):
  same = keys + ["point"] + (["seed"] if "seed" in t.columns else [])
  g = t.assign(point=point_label(t)).drop_duplicates(same)  # one row per (point, seed)
  return _pooled(g[keys + ["point"]], _num(g, score_col))


def _study_groups(t: pd.DataFrame, keys: list[str], score_col: str):
  # Reruns of a study's best point are extra draws, not part of its search: keep each
  # point's first trial.
  t = t.assign(_hp=point_label(t), _ti=_num(t, "trial_index")).sort_values("_ti", kind="stable")
  search = t.drop_duplicates(["study_id", "_hp"])
  best = search.groupby(keys + ["study_id"], dropna=False, sort=True)[score_col].min()
  best = best.reset_index()
  return _pooled(best[keys], best[score_col])


def _verdict(ratio: float, p: float, alpha: float) -> str:
  where = f"study/trial variance ratio {ratio:.3g}, F-test p={p:.3g}"
  if not np.isfinite(p) or p >= alpha:
    return (f"study and trial variance are not distinguishable ({where}): differences "
            "smaller than either are noise")
  if ratio > 1:
    return (f"study variance exceeds trial variance ({where}): rerunning the search with "
            "other seeds changes the outcome more than reseeding the best point")
  return (f"trial variance exceeds study variance ({where}): seed noise dominates; rerun "
          "the best point over seeds before comparing")


def trial_vs_study_variance(trials: pd.DataFrame, *, score_col: str,
                            group_col: str | Sequence[str] | None = None,
                            alpha: float = 0.05) -> VarianceComparison:
  """Compare trial variance with study variance (playbook: sources of variation).

  Trial variance: finished trials with identical hp/* values (and a distinct
  seed) within one setting, e.g. the protocol's rerun_best_seeds. Study variance:
  the best score of each study (its first trial per point) over the studies of
  one setting (`group_col`, default setting_columns: workload, protocol,
  optimizer and sci/*). Both pooled over groups; compared by a two-sided
  F-test and a Brown-Forsythe test on group-median-centred values.
  """
  keys = ([group_col] if isinstance(group_col, str) else list(group_col)
          if group_col is not None else setting_columns(trials))
  keys = [k for k in keys if k in trials.columns]
  t = scored_trials(trials, score_col)
  trial_tab, trial_var, trial_dev = _trial_groups(t, keys, score_col)
  study_tab, study_var, study_dev = _study_groups(t, keys, score_col)
  reasons = []
  if trial_tab.empty:
    reasons.append("no hyperparameter point was run with more than one seed (trial variance)")
  if study_tab.empty:
    reasons.append("no protocol/setting has more than one finished study (study variance)")
  if reasons:
    reason = "; ".join(reasons)
    return VarianceComparison(None if trial_tab.empty else trial_tab,
                              None if study_tab.empty else study_tab,
                              trial_var=trial_var, study_var=study_var,
                              verdict=f"not applicable: {reason}", reason=reason)
  from scipy import stats  # here, not at the top: it doubles the package's import time
  df_s, df_t = int((study_tab["n"] - 1).sum()), int((trial_tab["n"] - 1).sum())
  with np.errstate(divide="ignore", invalid="ignore"):
    ratio = study_var / trial_var if trial_var > 0 else (np.inf if study_var > 0 else np.nan)
  f_p = (float(min(1.0, 2 * min(stats.f.sf(ratio, df_s, df_t), stats.f.cdf(ratio, df_s, df_t))))
         if np.isfinite(ratio) else (0.0 if ratio == np.inf else np.nan))
  lev_p = (float(stats.levene(study_dev, trial_dev, center="median").pvalue)
           if np.ptp(np.concatenate([study_dev, trial_dev])) > 0 else np.nan)
  return VarianceComparison(trial_tab, study_tab, trial_var, study_var, float(ratio), f_p,
                            lev_p, _verdict(float(ratio), f_p, alpha))


# ------------------------------------------------------------------- inclusion verdict

def inclusion_verdicts(pairs: pd.DataFrame, by: Sequence[str]) -> list[str]:
  """One verdict line per `by` group (e.g. per protocol: the check is decided at
  the widest search space, `choi_all`, not over all spaces pooled), labelled by
  the keys that vary."""
  if pairs is None or pairs.empty:
    return [inclusion_verdict(pairs)]
  keys = [k for k in by if k in pairs.columns and pairs[k].nunique(dropna=False) > 1]
  if not keys:
    return [inclusion_verdict(pairs)]
  out = []
  for key, g in pairs.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    out.append(" / ".join(map(str, key)) + ": " +
               inclusion_verdict(g).removeprefix("inclusion check: "))
  return out


def inclusion_verdict(pairs: pd.DataFrame) -> str:
  """One line on Choi et al.'s inclusion check (output of inclusion_check, all_pairs=True)."""
  if pairs is None or pairs.empty:
    return "inclusion check: no inclusion pair (special ⊆ general) among the optimizers"
  bad = pairs[pairs["violated"].astype(bool)] if "violated" in pairs.columns else pairs
  if bad.empty:
    return (f"inclusion check: all {len(pairs)} pairs consistent (no general optimizer "
            "did worse than one it includes)")
  unexplained = bad[bad["beyond_noise"].fillna(False).astype(bool)]
  names = ", ".join(sorted({f"{r.special} ⊆ {r.general}" for r in bad.itertuples()}))
  head = f"inclusion check: {len(bad)} of {len(pairs)} pairs violated ({names}); "
  if unexplained.empty:
    return head + ("none beyond noise (tail-count permutation test, p > 0.1): within the "
                   "noise of the search")
  beyond = ", ".join(sorted({f"{r.special} ⊆ {r.general}" for r in unexplained.itertuples()}))
  return (head + f"{len(unexplained)} beyond noise ({beyond}; tail-count permutation test, "
          "p <= 0.1) — the protocol under-tunes the general optimizer there")
