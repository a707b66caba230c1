"""The tuning playbook's figures: best of k trials, axis plots with the boundary check,
isolation of a scientific hyperparameter, and training curves."""
from __future__ import annotations

import os
import textwrap
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis import playbook, schema
from analysis.plots import base

# ------------------------------------------------------------------------- best-of-k

def best_of_k_plot(table: pd.DataFrame, path: str | os.PathLike, *,
                   by: Sequence[str] | str = "study_id", title: str | None = None) -> str:
  """Best-of-k curves: the median best of k, its bounds, and E[best of k] where finite.

  `table` is best_of_k's. Solid: the median best of k draws from the study; shaded:
  the two-sided 90% bounds on a rerun's median best of k where order statistics
  give both sides; thin dashed above: the one-sided upper bound where they give
  only that (large k). Dotted: Dodge et al.'s E[best of k], drawn only where it is
  finite (a diverged trial makes it infinite). The legend lists what is drawn.
  """
  by = [by] if isinstance(by, str) else list(by)
  fig, ax = base.single()
  drew_upper = drew_mean = False
  for i, (label, g) in enumerate(base.groups(table, by)):
    g = g.sort_values("k")
    color = f"C{i % 10}"
    k = g["k"].to_numpy(dtype=float)
    ax.plot(k, base.finite(g["median"]), "-", color=color, label=label or "median best of k")
    two = (g["sides"] == "two-sided").to_numpy()
    if two.any():
      ax.fill_between(k, np.where(two, base.finite(g["lo"]), np.nan),
                      np.where(two, base.finite(g["hi"]), np.nan), color=color, alpha=0.15, lw=0)
    up = (g["sides"] == "upper").to_numpy()
    if up.any():
      ax.plot(k, np.where(up | two, base.finite(g["hi"]), np.nan), "--", color=color, lw=0.8)
      drew_upper = True
    mean = base.finite(g["mean"])
    if np.isfinite(mean).any():
      ax.plot(k, mean, ":", color=color, lw=1)
      drew_mean = True
  if drew_upper:
    ax.plot([], [], "k--", lw=0.8, label="90% upper bound (one-sided)")
  if drew_mean:
    ax.plot([], [], "k:", lw=1, label="E[best of k] (closed form)")
  if len(table) and table["k"].max() > 16:
    base.log_axis(ax, "x", base=2)
  ax.set_xlabel("k (trials of the protocol)")
  ax.set_ylabel("best validation score of k")
  ax.set_title(title or "Best-of-k (shaded: 90% bounds on a rerun's median)", fontsize=10)
  base.legend(ax)
  return base.save_png(fig, path)



# ---------------------------------------------------------------------- the playbook

def axis_plot(trials: pd.DataFrame, path: str | os.PathLike, *, score_col: str,
              params: Sequence[str] | None = None, space: Mapping[str, Any] | None = None,
              boundary: pd.DataFrame | None = None, title: str | None = None,
              ylabel: str | None = None) -> str:
  """Score vs each searched hyperparameter: the playbook's basic axis plots.

  Finished trials are dots (the best starred); diverged trials and trials without
  a score are red x at the top. Search-space bounds are grey dashed lines and an
  edge flagged by `boundary` (boundary_check's) is shaded red. log1m parameters
  are drawn as 1 - x on a reversed log axis.
  """
  names = list(params) if params is not None else playbook.searched_params(trials, space)
  dims = [d for d in (playbook.dimension(trials, n, space) for n in names) if d is not None]
  if not dims:
    return base.empty_figure(path, title or "axis plots", "no numeric hyperparameter varies")
  live = trials[trials["status"] != "failed"]
  score = pd.to_numeric(live[score_col], errors="coerce").astype(float)
  ok = (live["status"] == "ok") & np.isfinite(score)
  fig, axes = base.grid(len(dims), ncols=3)
  y_top = _top(score[ok])
  best = score[ok].idxmin() if ok.any() else None
  for ax, dim in zip(axes, dims):
    x = _x(dim, dim.values.loc[live.index])
    ax.plot(x[ok.to_numpy()], score[ok], "o", ms=4, alpha=0.7, label="trial")
    bad = ~ok.to_numpy()
    if bad.any():
      ax.plot(x[bad], np.full(bad.sum(), y_top), "x", color=base.DIVERGED_COLOR, ms=6,
              label="diverged / no score")
    if best is not None:
      ax.plot(_x(dim, dim.values.loc[[best]]), [score[best]], "*", color="gold", ms=12,
              mec="k", label="best")
    _bounds(ax, dim, boundary)
    ax.set_ylabel(ylabel or score_col, fontsize=8)
    base.legend(ax)
  base.suptitle(fig, title or "Hyperparameter axis plots")
  return base.save_png(fig, path)


def _top(finite_scores: pd.Series) -> float:
  if finite_scores.empty:
    return 1.0
  lo, hi = float(finite_scores.min()), float(finite_scores.max())
  return hi + 0.08 * (hi - lo if hi > lo else max(abs(hi), 1.0))


def _x(dim: playbook.Dimension, values: pd.Series) -> np.ndarray:
  v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
  return 1.0 - v if dim.scale == "log1m" else v


def _bounds(ax: Any, dim: playbook.Dimension, boundary: pd.DataFrame | None) -> None:
  flagged = {}
  if boundary is not None and not boundary.empty:
    rows = boundary[(boundary["param"] == dim.name) & boundary["flagged"].astype(bool)]
    flagged = {r.side: r for r in rows.itertuples()}
  for side in ("low", "high"):
    bound = dim.low if side == "low" else dim.high
    ax.axvline(1.0 - bound if dim.scale == "log1m" else bound, color="grey", ls="--", lw=1)
    if side in flagged:
      frac = float(flagged[side].edge_fraction)
      u0, u1 = (0.0, frac) if side == "low" else (1.0 - frac, 1.0)
      a, b = playbook.from_unit(dim, u0), playbook.from_unit(dim, u1)
      if dim.scale == "log1m":
        a, b = 1.0 - a, 1.0 - b
      ax.axvspan(min(a, b), max(a, b), color=base.DIVERGED_COLOR, alpha=0.15,
                 label=f"flagged {side} edge")
  if dim.scale in ("log", "log1m"):
    base.log_axis(ax, "x")
  if dim.scale == "log1m":
    ax.invert_xaxis()
  ax.set_xlabel(f"1 - {dim.name}" if dim.scale == "log1m" else dim.name)
  ax.set_title(f"{dim.name} ({dim.bounds} bounds)", fontsize=9)


def isolation_plot(table: pd.DataFrame, path: str | os.PathLike, *, scientific: str,
                   by: Sequence[str] = (), title: str | None = None,
                   note: str | None = None) -> str:
  """Best score per value of a scientific hyperparameter (playbook isolation plot).

  `table` is isolation's (column `scientific`, value, lo, hi); one line per `by`
  group. Numeric values spanning > 1.5 decades get a log axis; others are categories.
  `note` (e.g. figure_data.budget_note: the values ran different budgets) is
  printed under the axes.
  """
  fig, ax = base.single()
  values = pd.to_numeric(table[scientific], errors="coerce")
  numeric = values.notna().all() and len(values)
  cats = sorted(table[scientific].astype(str).unique()) if not numeric else []
  for i, (label, g) in enumerate(base.groups(table, by)):
    g = g.sort_values(scientific)
    x = (g[scientific].to_numpy(dtype=float) if numeric
         else np.array([cats.index(str(v)) for v in g[scientific]], dtype=float))
    y = base.finite(g["value"])
    ax.errorbar(x, y, yerr=base.up_down(y, g, "lo", "hi"), fmt="o-", capsize=3,
                color=f"C{i % 10}", label=label or None)
  if numeric and scientific.endswith("batch_size"):
    base.log2_batch_axis(ax)
  elif numeric and playbook.infer_scale("", values.to_numpy(dtype=float)) == "log":
    base.log_axis(ax, "x")
  if cats:
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels(cats, rotation=30, fontsize=8)
  ax.set_xlabel(scientific)
  ax.set_ylabel("best score (nuisance hyperparameters optimised away)")
  ax.set_title(title or f"Isolation plot: {scientific}")
  base.legend(ax)
  if note:  # under the axes, in room the layout keeps free
    lines = textwrap.wrap("Note: " + note, 110)
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", color=base.DIVERGED_COLOR)
    return base.save_png(fig, path, tight=True, rect=(0, 0.035 * len(lines) + 0.01, 1, 1))
  return base.save_png(fig, path)


def training_curves_plot(trials: pd.DataFrame, curves: pd.DataFrame, path: str | os.PathLike,
                         *, score_col: str, metric: str | None = None, k: int = 3,
                         by: str = "study_id", title: str | None = None,
                         order: Sequence[str] | None = None) -> str:
  """Validation (solid) and training (dashed) metric vs step of each study's k best trials.

  `metric` defaults to the trials' goal metric ('error' -> val/error, train/error).
  One panel per `by` group (study), in `order` when given (default: by label).
  The playbook looks at these for overfitting,
  late-training noise and trials still improving at the end.
  """
  metric = metric or schema.goal_metric(trials, "error")
  val, train = f"val/{metric}", f"train/{metric}"
  panels = [(label, g) for label, g in base.groups(trials, [by])]
  if order is not None:  # e.g. by batch size as a number, not as a string
    rank = {str(v): i for i, v in enumerate(order)}
    panels.sort(key=lambda p: rank.get(p[0], len(rank)))
  if val not in curves.columns or not panels:
    return base.empty_figure(path, title or "training curves", f"no {val} in the curves")
  fig, axes = base.grid(len(panels), ncols=3)
  for ax, (label, g) in zip(axes, panels):
    best = playbook.top_trials(g, score_col=score_col, top_fraction=0.0, min_top=k)
    for i, (tid, rank) in enumerate(zip(best["trial_id"], range(1, len(best) + 1))):
      c = curves[curves["trial_id"] == tid].sort_values("step")
      ax.plot(c["step"], base.finite(c[val]), "-", color=f"C{i}", label=f"#{rank} val")
      if train in c.columns:
        ax.plot(c["step"], base.finite(c[train]), "--", color=f"C{i}", lw=1, alpha=0.7)
    ax.set_title(label, fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric} (val solid, train dashed)", fontsize=8)
    base.legend(ax)
  base.suptitle(fig, title or f"Training curves of the {k} best trials per study")
  return base.save_png(fig, path)
