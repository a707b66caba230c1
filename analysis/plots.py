"""The figures the project regenerates, one PNG per function, from analysis tables.

Each function takes the DataFrames the analysis functions return (or the trials
and curves tables of analysis.load), writes one PNG at `path` and returns that
path. Shallue et al. 2018: steps_to_result_plot (Fig. 1), effective_lr_plot
(Fig. 8), budget_plot (Fig. 11). Choi et al. 2019: ranking_plot (Figs. 3/4).
The tuning playbook: axis_plot (boundary check), isolation_plot,
training_curves_plot. Also best_of_k_plot, performance_profile_plot (AlgoPerf),
rank_vs_budget_plot and clock_rank_plot (rankings across training budgets and by
steps vs by wall-clock). Values of +inf (goal never reached, diverged) are not drawn.
"""
from __future__ import annotations

import math
import os
import textwrap
import warnings
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in batch jobs and threads
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import interrupts, playbook  # noqa: E402

DPI = 110
MAX_LEGEND = 12
DIVERGED_COLOR = "tab:red"


# ------------------------------------------------------------------------------ helpers

def _save(fig: Any, path: str | os.PathLike, *, tight: bool = False,
          rect: Sequence[float] | None = None) -> str:
  """One draw. Margins are fixed in inches by _figure; `tight` adds a layout pass (a
  second draw, 40% of the cost) for figures whose labels vary in size."""
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  try:
    if tight:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on crowded grids
        fig.tight_layout(rect=rect)
    # A whole figure or none: written beside it and renamed, and a Ctrl-C or
    # SIGTERM meanwhile waits for the rename (analysis.interrupts).
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with interrupts.shielded():
      try:
        fig.savefig(tmp, dpi=DPI, format=os.path.splitext(path)[1][1:] or None)
        os.replace(tmp, path)
      except BaseException:
        if os.path.exists(tmp):
          os.remove(tmp)
        raise
  finally:
    plt.close(fig)
  return path


def _finite(x: Any) -> np.ndarray:
  """Floats with +-inf as NaN, so lines break instead of running off the axes."""
  a = pd.to_numeric(pd.Series(x), errors="coerce").to_numpy(dtype=float)
  return np.where(np.isfinite(a), a, np.nan)


def _groups(df: pd.DataFrame, keys: Sequence[str]):
  """(label, frame) per group; one unlabeled group when there are no keys."""
  keys = [k for k in keys if k in df.columns]
  if not keys:
    yield "", df
    return
  for key, g in df.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    yield " / ".join(_short(v) for v in key), g


def _short(v: Any) -> str:
  if isinstance(v, float):
    return "-" if math.isnan(v) else f"{v:g}"
  return "-" if v is None else str(v)


def _legend(ax: Any, **kw: Any) -> None:
  handles, labels = ax.get_legend_handles_labels()
  if labels:
    ax.legend(handles[:MAX_LEGEND], labels[:MAX_LEGEND], fontsize=7, **kw)


# Margins in inches around and between panels (room for tick labels, axis labels, titles).
MARGIN = {"left": 1.0, "right": 0.2, "bottom": 0.6, "top": 0.75, "wspace": 0.85, "hspace": 0.85}


def _grid(n: int, ncols: int = 3, size: tuple[float, float] = (4.2, 3.2)):
  """A figure of n panels, `size` inches each plus fixed margins (no layout pass)."""
  ncols = max(1, min(ncols, n))
  nrows = max(1, math.ceil(n / ncols))
  m = MARGIN
  width = m["left"] + m["right"] + ncols * size[0] + (ncols - 1) * m["wspace"]
  height = m["bottom"] + m["top"] + nrows * size[1] + (nrows - 1) * m["hspace"]
  fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
  fig.subplots_adjust(left=m["left"] / width, right=1 - m["right"] / width,
                      bottom=m["bottom"] / height, top=1 - m["top"] / height,
                      wspace=m["wspace"] / size[0], hspace=m["hspace"] / size[1])
  for ax in axes.ravel()[n:]:
    ax.set_visible(False)
  return fig, list(axes.ravel()[:n])


def _suptitle(fig: Any, text: str) -> None:
  """Figure title in the top margin, clear of the panels' own titles; wrapped
  when wider than the figure (about 10 characters an inch)."""
  width = int(10 * fig.get_figwidth())
  if len(text) > width:
    text = textwrap.fill(text, width)
  fig.suptitle(text, y=1 - 0.08 / fig.get_figheight(), va="top")


def _single(size: tuple[float, float] = (5.6, 3.8)):
  fig, axes = _grid(1, 1, size)
  return fig, axes[0]


def _empty(path: str | os.PathLike, title: str, why: str) -> str:
  fig, ax = _single((4.5, 1.2))
  ax.axis("off")
  ax.set_title(title)
  ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9, wrap=True)
  return _save(fig, path)


def _log(ax: Any, which: str = "x", base: float = 10) -> None:
  """Log scale once the axis holds positive data (matplotlib cannot draw an empty one)."""
  minpos = ax.dataLim.minposx if which == "x" else ax.dataLim.minposy
  if np.isfinite(minpos) and minpos > 0:
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)


def _up_down(y: np.ndarray, g: pd.DataFrame, lo: str | None, hi: str | None) -> np.ndarray:
  """Error-bar lengths below / above y from bound columns (an unbounded side: none)."""
  down = y - _finite(g[lo]) if lo else np.zeros(len(y))
  up = _finite(g[hi]) - y if hi else np.zeros(len(y))
  err = np.vstack([down, up])
  return np.where(np.isfinite(err), np.clip(err, 0, None), 0)


def _log2_batches(ax: Any) -> None:
  _log(ax, "x", base=2)


# ----------------------------------------------------------------- Shallue et al. 2018

def steps_to_result_plot(table: pd.DataFrame, path: str | os.PathLike, *,
                         estimates: pd.DataFrame | None = None, groups: Sequence[str] = (),
                         batch_col: str = "batch_size", title: str | None = None) -> str:
  """Steps to result vs batch size (Shallue Fig. 1), with bounds and regime marks.

  `table` / `estimates` are scaling_curve's. Each measured point is a dot; a bar
  up to a short tick is the one-sided 90% upper bound on a rerun's median steps
  to result (no bar: too few trials, or unbounded: an arrow up); a batch size
  that never reached the goal is an open triangle up at its step budget
  ("more than this"); a goal met at the first evaluation an open triangle down.
  Perfect scaling is dashed; the perfect-scaling limit a dotted vertical line and
  the maximal useful batch size a dash-dotted one, each an arrow to the right
  when censored (the grid of batch sizes ended first).
  """
  fig, ax = _single()
  est = {lab: g for lab, g in _groups(estimates, groups)} if estimates is not None else {}
  right = 0.0
  for i, (label, g) in enumerate(_groups(table, groups)):
    g = g.sort_values(batch_col)
    color = f"C{i % 10}"
    b = g[batch_col].to_numpy(dtype=float)
    y = _finite(g["steps_to_result"])
    exact = (g["censored"] == "").to_numpy()
    ax.plot(b, y, "-", color=color, lw=1.2)
    ax.plot(b[exact], y[exact], "o", color=color, label=label or "steps to result")
    hi = pd.to_numeric(g["hi"], errors="coerce").to_numpy(dtype=float)
    has = np.isfinite(y) & np.isfinite(hi)
    if has.any():
      ax.errorbar(b[has], y[has], yerr=[np.zeros(has.sum()), hi[has] - y[has]], fmt="none",
                  ecolor=color, capsize=3, lw=1)
    unbounded = np.isfinite(y) & np.isinf(hi)
    if unbounded.any():
      ax.plot(b[unbounded], y[unbounded] * 1.6, "^", color=color, ms=5, alpha=0.7)
    le = (g["censored"] == "<=").to_numpy()
    if le.any():
      ax.plot(b[le], y[le], "v", mfc="none", color=color, ms=8,
              label=f"{label} goal met at first eval (<=)".strip())
    gt = (g["censored"] == ">").to_numpy()
    if gt.any():
      ax.plot(b[gt], g["budget"].to_numpy(dtype=float)[gt], "^", mfc="none", color=color,
              ms=8, label=f"{label} not reached (> budget)".strip())
    ax.plot(b, _finite(g["perfect_steps"]), "--", color=color, lw=1,
            label=f"{label} perfect scaling".strip())
    right = max(right, _regime_marks(ax, est.get(label), color))
  _log2_batches(ax)
  _log(ax, "y")
  if right > ax.get_xlim()[1]:
    ax.set_xlim(right=right)
  ax.set_xlabel("batch size")
  ax.set_ylabel("steps to result")
  ax.set_title(title or "Steps to result vs batch size\n(bars: 90% upper bound on a rerun's "
               "median)", fontsize=10)
  _legend(ax)
  return _save(fig, path)


def _regime_marks(ax: Any, est: pd.DataFrame | None, color: str) -> float:
  """Draw the regime marks; return the x a censored arrow needs to fit (0: none)."""
  right = 0.0
  if est is None or est.empty:
    return right
  row = est.iloc[0]
  for name, style in (("perfect_limit", ":"), ("max_useful_batch", "-.")):
    v = float(row.get(name, np.nan))
    if not np.isfinite(v):
      continue
    censored = bool(row.get(f"{name}_censored", False))
    words = name.replace("_", " ")
    if censored:  # the grid ended first: an arrow pointing beyond it, not a line
      y = 0.62 if name == "perfect_limit" else 0.5
      ax.annotate("", xy=(v * 1.45, y), xytext=(v, y), xycoords=("data", "axes fraction"),
                  arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5})
      ax.plot([v], [y], "|", color=color, ms=10, transform=ax.get_xaxis_transform())
      ax.plot([], [], marker=r"$\rightarrow$", ls="none", ms=12, color=color,
              label=f"{words} >= {v:g} (censored: the grid ended)")
      right = max(right, v * 1.6)
    else:
      ax.axvline(v, color=color, ls=style, lw=1.2, alpha=0.8, label=f"{words} {v:g}")
  return right


def effective_lr_plot(table: pd.DataFrame, path: str | os.PathLike, *,
                      groups: Sequence[str] = (), batch_col: str = "batch_size",
                      title: str | None = None) -> str:
  """Optimal effective learning rate vs batch size (Shallue Fig. 8).

  `table` is optimal_effective_lr's; linear and square-root scaling references
  start at each group's smallest batch size with a value.
  """
  fig, ax = _single()
  for i, (label, g) in enumerate(_groups(table, groups)):
    g = g.sort_values(batch_col)
    color = f"C{i % 10}"
    b = g[batch_col].to_numpy(dtype=float)
    elr = _finite(g["effective_lr"])
    ax.plot(b, elr, "o-", color=color, label=label or "optimal effective lr")
    have = np.flatnonzero(np.isfinite(elr) & (elr > 0))
    if len(have):
      b0, e0 = b[have[0]], elr[have[0]]
      ax.plot(b, e0 * b / b0, "--", color=color, lw=1, alpha=0.7, label="linear scaling")
      ax.plot(b, e0 * np.sqrt(b / b0), ":", color=color, lw=1, alpha=0.7,
              label="square-root scaling")
  _log2_batches(ax)
  _log(ax, "y")
  ax.set_xlabel("batch size")
  ax.set_ylabel("effective lr = lr / (1 - momentum)")
  ax.set_title(title or "Optimal effective learning rate (fastest trial) vs batch size")
  _legend(ax)
  return _save(fig, path)


def budget_plot(steps: pd.DataFrame, epochs: pd.DataFrame | None, path: str | os.PathLike, *,
                by: Sequence[str] = ("batch_size",), metric: str = "validation error",
                title: str | None = None) -> str:
  """Best validation error vs step budget and vs epoch budget (Shallue Fig. 11).

  Both tables are best_under_budget's (unit 'steps' and 'epochs'); one line per
  `by` group (batch size). An empty or missing epochs table leaves its panel blank.
  """
  fig, axes = _grid(2, 2, (4.8, 3.6))
  for ax, table, unit in ((axes[0], steps, "steps"), (axes[1], epochs, "epochs")):
    if table is None or table.empty:
      ax.text(0.5, 0.5, f"no {unit} budget (num_train_examples unknown?)",
              ha="center", va="center", transform=ax.transAxes, fontsize=9)
      continue
    for i, (label, g) in enumerate(_groups(table, by)):
      g = g.sort_values("budget")
      ax.plot(g["budget"].to_numpy(dtype=float), _finite(g["best"]), "-",
              color=f"C{i % 10}", label=label)
    _log(ax, "x")
    ax.set_xlabel(f"{unit} budget")
    ax.set_ylabel(f"best {metric}")
    _legend(ax, title=" / ".join(by))
  _suptitle(fig, title or f"Best {metric} within a budget, per batch size")
  return _save(fig, path)


# ------------------------------------------------------------------- Choi et al. 2019

def ranking_plot(scores: pd.DataFrame, path: str | os.PathLike, *,
                 inclusion: pd.DataFrame | None = None,
                 by: Sequence[str] = ("workload", "protocol_name"),
                 optimizer_col: str = "optimizer", title: str | None = None,
                 metric: str = "error") -> str:
  """Best validation `metric` and the selected trial's test value per optimizer and protocol.

  `scores` is optimizer_scores'; one panel per `by` group, optimizers left to right
  best first, bars up to the one-sided 90% upper bound on a rerun's median best. `inclusion` (inclusion_check, all_pairs=True)
  gives the verdict in the caption; violated pairs are named in their panel.
  """
  panels = list(_groups(scores, by))
  fig, axes = _grid(len(panels), ncols=3, size=(4.6, 3.6))
  for ax, (label, g) in zip(axes, panels):
    _ranking_panel(ax, g, optimizer_col, metric)
    ax.set_title(label, fontsize=9)
    if inclusion is not None and not inclusion.empty:
      _mark_violations(ax, inclusion, g, by)
  lines = playbook.inclusion_verdicts(inclusion, by) if inclusion is not None else []
  if len(lines) > 1:
    lines.insert(0, "inclusion check (special ⊆ general; 'beyond noise' = tail-count "
                 "permutation test p <= 0.1)")
  _suptitle(fig, title or "Optimizer rankings per protocol (selection by validation)")
  for i, line in enumerate(reversed(lines)):
    fig.text(0.01, 0.005 + 0.022 * i, line, ha="left", va="bottom", fontsize=7)
  return _save(fig, path, tight=True, rect=(0, 0.03 * len(lines), 1, 1))


def _ranking_panel(ax: Any, g: pd.DataFrame, optimizer_col: str, metric: str) -> None:
  g = g.assign(_v=_finite(g["best_val"])).sort_values("_v", na_position="last")
  x = np.arange(len(g))
  for col, hi, dx, fmt, name in (("best_val", "val_hi", -0.1, "o", "validation"),
                                 ("test_at_best", None, 0.1, "s", "test of that trial")):
    y = _finite(g[col])
    err = _up_down(y, g, None, hi) if hi in g else None
    ax.errorbar(x + dx, y, yerr=err, fmt=fmt, capsize=3, label=name)
  ax.set_xticks(x)
  ax.set_xticklabels([str(o) for o in g[optimizer_col]], rotation=30, fontsize=8)
  ax.set_ylabel(f"{metric} at the selected trial")
  _legend(ax)


def _mark_violations(ax: Any, inclusion: pd.DataFrame, g: pd.DataFrame,
                     by: Sequence[str]) -> None:
  sel = inclusion
  for k in by:
    if k in inclusion.columns and k in g.columns:
      sel = sel[sel[k].astype(str) == str(g[k].iloc[0])]
  if "violated" in sel.columns:
    sel = sel[sel["violated"].astype(bool)]
  if not sel.empty:
    text = "violated: " + ", ".join(f"{r.special}⊆{r.general}" for r in sel.itertuples())
    # Under the axis, wrapped to the panel: the layout makes room, nothing is covered.
    ax.set_xlabel(textwrap.fill(text, 70), fontsize=7, color=DIVERGED_COLOR)


PROTOCOL_ORDER = ("choi_lr", "choi_lr_momentum", "choi_all")


def rank_change_plot(ranks: pd.DataFrame, path: str | os.PathLike, *,
                     by: Sequence[str] = ("workload", "protocol_name"),
                     title: str | None = None, changes: pd.DataFrame | None = None) -> str:
  """Each optimizer's rank (1 = best) across protocols, one line per optimizer.

  `ranks` is ranking_table(...).reset_index(); one panel per `by` key other than
  protocol_name (e.g. per workload). Choi's nested spaces come first, narrowest
  to widest, other protocols after them by name. `changes`
  (rankings.protocol_rank_changes) are listed under the panels: only those
  orders change beyond noise; other crossings of the lines are ties.
  """
  outer = [k for k in by if k != "protocol_name"]
  panels = list(_groups(ranks, outer))
  fig, axes = _grid(len(panels), ncols=2, size=(5.2, 3.6))
  optimizers = [c for c in ranks.columns if c not in by]
  for ax, (label, g) in zip(axes, panels):
    order = {p: i for i, p in enumerate(PROTOCOL_ORDER)}
    g = g.assign(_o=[(order.get(p, len(order)), str(p)) for p in g["protocol_name"]])
    g = g.sort_values("_o")
    x = np.arange(len(g))
    for opt in optimizers:
      y = pd.to_numeric(g[opt], errors="coerce").to_numpy(float)
      if np.isfinite(y).any():
        ax.plot(x, y, "o-", label=str(opt))
    ax.set_xticks(x)
    ax.set_xticklabels([str(p) for p in g["protocol_name"]], rotation=20, fontsize=8)
    ax.invert_yaxis()
    ax.set_ylabel("rank (1 = best validation)")
    ax.set_title(label, fontsize=9)
    _legend(ax)
  _suptitle(fig, title or "Optimizer ranks per search space (point ranks)")
  if changes is None:
    return _save(fig, path, tight=True)
  lines = [f"{r.ahead_first} ahead of {r.behind_first} under {r.protocol_first} "
           f"(p = {r.p_first:.2g}), behind under {r.protocol_then} (p = {r.p_then:.2g})"
           for r in changes.itertuples()] or [
      "no change of order beyond noise (tail-count test, p <= 0.1, in both protocols): "
      "crossing lines are ties within the noise of the search"]
  lines = [w for line in lines for w in textwrap.wrap(line, int(13 * fig.get_figwidth()))]
  for i, line in enumerate(reversed(lines)):
    fig.text(0.01, 0.005 + 0.03 * i, line, ha="left", va="bottom", fontsize=7)
  return _save(fig, path, tight=True, rect=(0, 0.035 * len(lines) + 0.01, 1, 1))


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
  fig, ax = _single()
  drew_upper = drew_mean = False
  for i, (label, g) in enumerate(_groups(table, by)):
    g = g.sort_values("k")
    color = f"C{i % 10}"
    k = g["k"].to_numpy(dtype=float)
    ax.plot(k, _finite(g["median"]), "-", color=color, label=label or "median best of k")
    two = (g["sides"] == "two-sided").to_numpy()
    if two.any():
      ax.fill_between(k, np.where(two, _finite(g["lo"]), np.nan),
                      np.where(two, _finite(g["hi"]), np.nan), color=color, alpha=0.15, lw=0)
    up = (g["sides"] == "upper").to_numpy()
    if up.any():
      ax.plot(k, np.where(up | two, _finite(g["hi"]), np.nan), "--", color=color, lw=0.8)
      drew_upper = True
    mean = _finite(g["mean"])
    if np.isfinite(mean).any():
      ax.plot(k, mean, ":", color=color, lw=1)
      drew_mean = True
  if drew_upper:
    ax.plot([], [], "k--", lw=0.8, label="90% upper bound (one-sided)")
  if drew_mean:
    ax.plot([], [], "k:", lw=1, label="E[best of k] (closed form)")
  if len(table) and table["k"].max() > 16:
    _log(ax, "x", base=2)
  ax.set_xlabel("k (trials of the protocol)")
  ax.set_ylabel("best validation score of k")
  ax.set_title(title or "Best-of-k (shaded: 90% bounds on a rerun's median)", fontsize=10)
  _legend(ax)
  return _save(fig, path)


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
    return _empty(path, title or "axis plots", "no numeric hyperparameter varies")
  live = trials[trials["status"] != "failed"]
  score = pd.to_numeric(live[score_col], errors="coerce").astype(float)
  ok = (live["status"] == "ok") & np.isfinite(score)
  fig, axes = _grid(len(dims), ncols=3)
  y_top = _top(score[ok])
  best = score[ok].idxmin() if ok.any() else None
  for ax, dim in zip(axes, dims):
    x = _x(dim, dim.values.loc[live.index])
    ax.plot(x[ok.to_numpy()], score[ok], "o", ms=4, alpha=0.7, label="trial")
    bad = ~ok.to_numpy()
    if bad.any():
      ax.plot(x[bad], np.full(bad.sum(), y_top), "x", color=DIVERGED_COLOR, ms=6,
              label="diverged / no score")
    if best is not None:
      ax.plot(_x(dim, dim.values.loc[[best]]), [score[best]], "*", color="gold", ms=12,
              mec="k", label="best")
    _bounds(ax, dim, boundary)
    ax.set_ylabel(ylabel or score_col, fontsize=8)
    _legend(ax)
  _suptitle(fig, title or "Hyperparameter axis plots")
  return _save(fig, path)


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
      ax.axvspan(min(a, b), max(a, b), color=DIVERGED_COLOR, alpha=0.15,
                 label=f"flagged {side} edge")
  if dim.scale in ("log", "log1m"):
    _log(ax, "x")
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
  fig, ax = _single()
  values = pd.to_numeric(table[scientific], errors="coerce")
  numeric = values.notna().all() and len(values)
  cats = sorted(table[scientific].astype(str).unique()) if not numeric else []
  for i, (label, g) in enumerate(_groups(table, by)):
    g = g.sort_values(scientific)
    x = (g[scientific].to_numpy(dtype=float) if numeric
         else np.array([cats.index(str(v)) for v in g[scientific]], dtype=float))
    y = _finite(g["value"])
    ax.errorbar(x, y, yerr=_up_down(y, g, "lo", "hi"), fmt="o-", capsize=3,
                color=f"C{i % 10}", label=label or None)
  if numeric and scientific.endswith("batch_size"):
    _log2_batches(ax)
  elif numeric and playbook.infer_scale("", values.to_numpy(dtype=float)) == "log":
    _log(ax, "x")
  if cats:
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels(cats, rotation=30, fontsize=8)
  ax.set_xlabel(scientific)
  ax.set_ylabel("best score (nuisance hyperparameters optimised away)")
  ax.set_title(title or f"Isolation plot: {scientific}")
  _legend(ax)
  if note:  # under the axes, in room the layout keeps free
    lines = textwrap.wrap("Note: " + note, 110)
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", color=DIVERGED_COLOR)
    return _save(fig, path, tight=True, rect=(0, 0.035 * len(lines) + 0.01, 1, 1))
  return _save(fig, path)


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
  metric = metric or _goal_metric(trials)
  val, train = f"val/{metric}", f"train/{metric}"
  panels = [(label, g) for label, g in _groups(trials, [by])]
  if order is not None:  # e.g. by batch size as a number, not as a string
    rank = {str(v): i for i, v in enumerate(order)}
    panels.sort(key=lambda p: rank.get(p[0], len(rank)))
  if val not in curves.columns or not panels:
    return _empty(path, title or "training curves", f"no {val} in the curves")
  fig, axes = _grid(len(panels), ncols=3)
  for ax, (label, g) in zip(axes, panels):
    best = playbook.top_trials(g, score_col=score_col, top_fraction=0.0, min_top=k)
    for i, (tid, rank) in enumerate(zip(best["trial_id"], range(1, len(best) + 1))):
      c = curves[curves["trial_id"] == tid].sort_values("step")
      ax.plot(c["step"], _finite(c[val]), "-", color=f"C{i}", label=f"#{rank} val")
      if train in c.columns:
        ax.plot(c["step"], _finite(c[train]), "--", color=f"C{i}", lw=1, alpha=0.7)
    ax.set_title(label, fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric} (val solid, train dashed)", fontsize=8)
    _legend(ax)
  _suptitle(fig, title or f"Training curves of the {k} best trials per study")
  return _save(fig, path)


def _goal_metric(trials: pd.DataFrame) -> str:
  goals = trials["goal_metric"].dropna().unique() if "goal_metric" in trials else []
  return str(goals[0]) if len(goals) else "error"


# --------------------------------------------------------------------------- AlgoPerf

def performance_profile_plot(profile: pd.DataFrame, path: str | os.PathLike, *,
                             score: pd.Series | None = None, title: str | None = None) -> str:
  """AlgoPerf performance profiles: fraction of workloads within ratio tau of the best.

  `profile` is performance_profile(...).profile (submissions x taus); `score`
  (its .score) is shown in the legend.
  """
  fig, ax = _single()
  taus = np.asarray(profile.columns, dtype=float)
  for i, (name, row) in enumerate(profile.iterrows()):
    label = str(name) if score is None else f"{name} (score {float(score.loc[name]):.3f})"
    ax.step(taus, row.to_numpy(dtype=float), where="post", color=f"C{i % 10}", label=label)
  ax.set_xlabel("performance ratio tau (time / best time on the workload)")
  ax.set_ylabel("fraction of workloads")
  ax.set_ylim(-0.02, 1.02)
  ax.set_title(title or "Performance profiles")
  _legend(ax)
  return _save(fig, path)


# ------------------------------------------------------------ rankings: budgets, clocks

def _colors(names: Sequence[Any]) -> dict[str, str]:
  """One colour per submission, the same in every panel (tab20 beyond 10)."""
  unique = sorted({str(n) for n in names})
  if len(unique) <= 10:
    return {n: f"C{i}" for i, n in enumerate(unique)}
  cmap = plt.get_cmap("tab20")
  return {n: cmap(i % 20) for i, n in enumerate(unique)}


def _figure_legend(fig: Any, colors: Mapping[str, Any]) -> float:
  """Every submission in one legend under the panels; the height it takes (figure fraction)."""
  handles = [plt.Line2D([], [], color=c, lw=2) for c in colors.values()]
  width = max(len(n) for n in colors) * 0.07 + 0.6  # inches per legend column
  ncol = max(1, min(len(handles), int(fig.get_size_inches()[0] / width)))
  fig.legend(handles, list(colors), fontsize=7, loc="lower center", ncol=ncol, frameon=False)
  rows = math.ceil(len(handles) / ncol)
  return min(0.4, (0.25 + 0.17 * rows) / fig.get_size_inches()[1])


def rank_vs_budget_plot(scores: pd.DataFrame, changes: pd.DataFrame, path: str | os.PathLike,
                        *, by: Sequence[str] = ("workload",), submission_col: str = "optimizer",
                        unit: str = "step", title: str | None = None) -> str:
  """Each submission's rank (1 = best) at each budget fraction, one panel per group.

  `scores` and `changes` are analysis.budget_rankings'. Shaded: the spread of the
  rank over bootstrap replicates (a description of resampling, not a calibrated
  interval); dotted verticals and stars: swaps beyond noise (at least 90% of the
  paired replicates show them), the star on the submission that moved ahead;
  point changes within noise are drawn as ties (no mark).
  """
  panels = list(_groups(scores, by))
  if not panels:
    return _empty(path, title or "Ranks across budgets", "no group with two submissions")
  fig, axes = _grid(len(panels), ncols=3, size=(4.6, 3.4))
  colors = _colors(scores[submission_col])
  for ax, (label, g) in zip(axes, panels):
    names = sorted({str(n) for n in g[submission_col]})
    sel = changes[changes["beyond_noise"].astype(bool)] if "beyond_noise" in changes else changes
    for k in by:
      if k in changes.columns:
        sel = sel[sel[k].astype(str) == str(g[k].iloc[0])]
    for i, name in enumerate(names):
      s = g[g[submission_col].astype(str) == name].sort_values("fraction")
      x = 100 * s["fraction"].to_numpy(dtype=float)
      dy = 0.06 * (i - (len(names) - 1) / 2)  # tied lines stay visible
      y = s["rank"].to_numpy(dtype=float) + dy
      if "rank_lo" in s:
        ax.fill_between(x, s["rank_lo"].to_numpy(dtype=float) + dy,
                        s["rank_hi"].to_numpy(dtype=float) + dy, color=colors[name],
                        alpha=0.08, lw=0, step="mid")
      ax.plot(x, y, "o-", ms=3, color=colors[name], label=name)
    for f in sorted(set(sel["fraction"])):
      ax.axvline(100 * f, color="0.6", ls=":", lw=1)
    for r in sel.itertuples():
      row = g[(g["fraction"] == r.fraction) & (g[submission_col].astype(str) == str(r.ahead))]
      if len(row):
        ax.plot(100 * r.fraction, float(row["rank"].iloc[0]), "*", ms=10,
                color=colors[str(r.ahead)], mec="k", mew=0.5)
    n = len(names)
    ax.set_ylim(n + 0.5, 0.5)
    ax.set_yticks(range(1, n + 1))
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"budget (% of the {'step' if unit == 'step' else 'wall-time'} budget)")
    ax.set_ylabel("rank (1 = best)")
    split = str(g["selected_on"].iloc[0]) if "selected_on" in g else "val"
    ax.set_title(label + ("" if split == "val" else f" (selected on {split})"), fontsize=9)
  bottom = _figure_legend(fig, colors)
  _suptitle(fig, title or "Ranks across training budgets (retrospective selection; "
            "stars: swaps beyond noise)")
  return _save(fig, path, tight=True, rect=(0, bottom, 1, 1))


def clock_rank_plot(table: pd.DataFrame, summary: pd.DataFrame, path: str | os.PathLike, *,
                    overall: pd.DataFrame | None = None, title: str | None = None) -> str:
  """Ranks by steps (left) and by seconds (right) per workload, one line per submission.

  Tables are analysis.clock_rankings'. Solid thick lines: submissions whose rank
  changes; x: missed the target on that clock. Panel titles give Spearman's rho;
  flagged workloads (mixed pack sizes, pace outliers) say so under the axis.
  """
  panels = [(str(w), g.rename(columns={"submission": "sub"}))
            for w, g in table.groupby("workload", sort=True)] if len(table) else []
  if overall is not None and len(overall) and len(panels) > 1:
    panels.append((None, overall.rename(columns={"submission": "sub"})))
  if not panels:
    return _empty(path, title or "Ranks by steps vs by seconds", "nothing to rank")
  names = table["submission"] if len(table) else overall["submission"]
  colors = _colors(names)
  many = len(colors) > 12  # room for the ranks and the legend
  fig, axes = _grid(len(panels), ncols=4 if not many else 2,
                    size=(3.4, 3.2) if not many else (5.0, 0.16 * len(colors) + 1.5))
  info = summary.set_index("workload") if len(summary) else pd.DataFrame()
  for ax, (w, g) in zip(axes, panels):
    key = w if w is not None else summary["workload"].iloc[-1]
    order = list(colors)
    for r in g.itertuples():
      moved = r.rank_steps != r.rank_seconds
      dy = 0.07 * (order.index(str(r.sub)) - (len(order) - 1) / 2)  # ties stay visible
      ax.plot([0, 1], [r.rank_steps + dy, r.rank_seconds + dy], "-" if moved else "--",
              lw=2 if moved else 1, alpha=1 if moved else 0.5, color=colors[str(r.sub)],
              label=str(r.sub))
      for x, v, rk in ((0, getattr(r, "steps", 1.0), r.rank_steps),
                       (1, getattr(r, "seconds", 1.0), r.rank_seconds)):
        miss = w is not None and not math.isfinite(float(v))
        ax.plot(x, rk + dy, "x" if miss else "o", ms=6 if miss else 4,
                color=colors[str(r.sub)])
    n = max(int(g[["rank_steps", "rank_seconds"]].max().max()), 1)
    ax.set_ylim(n + 0.5, 0.5)
    ax.set_yticks(range(1, n + 1))
    ax.set_xlim(-0.25, 1.25)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["by steps", "by seconds"] if w is not None else
                       ["score by steps", "score by seconds"], fontsize=8)
    rho = info.at[key, "spearman"] if key in info.index else np.nan
    rho_text = "rho = –" if not np.isfinite(rho) else f"rho = {rho:.2f}"
    ax.set_title(f"{w if w is not None else 'overall'} ({rho_text})", fontsize=9)
    notes = []
    if key in info.index and not bool(info.at[key, "comparable"]):
      notes.append(f"mixed pack sizes {info.at[key, 'pack_sizes']}: seconds not comparable")
    if key in info.index and str(info.at[key, "pace_outliers"] or ""):
      notes.append("pace outlier: " + str(info.at[key, "pace_outliers"]))
    if notes:
      ax.set_xlabel(textwrap.fill("; ".join(notes), 55), fontsize=6, color=DIVERGED_COLOR)
  axes[0].set_ylabel("rank (1 = fastest to target)")
  bottom = _figure_legend(fig, colors)
  _suptitle(fig, title or "Time-to-target ranks by steps vs by seconds (solid: moved)")
  return _save(fig, path, tight=True, rect=(0, bottom, 1, 1))
