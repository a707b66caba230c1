"""Shallue et al. 2018: steps to result vs batch size (Fig. 1), the optimal effective
learning rate (Fig. 8) and the best result within each budget (Fig. 11)."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.plots import base

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
  fig, ax = base.single()
  est = {lab: g for lab, g in base.groups(estimates, groups)} if estimates is not None else {}
  right = 0.0
  for i, (label, g) in enumerate(base.groups(table, groups)):
    g = g.sort_values(batch_col)
    color = f"C{i % 10}"
    b = g[batch_col].to_numpy(dtype=float)
    y = base.finite(g["steps_to_result"])
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
    ax.plot(b, base.finite(g["perfect_steps"]), "--", color=color, lw=1,
            label=f"{label} perfect scaling".strip())
    right = max(right, _regime_marks(ax, est.get(label), color))
  base.log2_batch_axis(ax)
  base.log_axis(ax, "y")
  if right > ax.get_xlim()[1]:
    ax.set_xlim(right=right)
  ax.set_xlabel("batch size")
  ax.set_ylabel("steps to result")
  ax.set_title(title or "Steps to result vs batch size\n(bars: 90% upper bound on a rerun's "
               "median)", fontsize=10)
  base.legend(ax)
  return base.save_png(fig, path)


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
  fig, ax = base.single()
  for i, (label, g) in enumerate(base.groups(table, groups)):
    g = g.sort_values(batch_col)
    color = f"C{i % 10}"
    b = g[batch_col].to_numpy(dtype=float)
    elr = base.finite(g["effective_lr"])
    ax.plot(b, elr, "o-", color=color, label=label or "optimal effective lr")
    have = np.flatnonzero(np.isfinite(elr) & (elr > 0))
    if len(have):
      b0, e0 = b[have[0]], elr[have[0]]
      ax.plot(b, e0 * b / b0, "--", color=color, lw=1, alpha=0.7, label="linear scaling")
      ax.plot(b, e0 * np.sqrt(b / b0), ":", color=color, lw=1, alpha=0.7,
              label="square-root scaling")
  base.log2_batch_axis(ax)
  base.log_axis(ax, "y")
  ax.set_xlabel("batch size")
  ax.set_ylabel("effective lr = lr / (1 - momentum)")
  ax.set_title(title or "Optimal effective learning rate (fastest trial) vs batch size")
  base.legend(ax)
  return base.save_png(fig, path)


def budget_plot(steps: pd.DataFrame, epochs: pd.DataFrame | None, path: str | os.PathLike, *,
                by: Sequence[str] = ("batch_size",), metric: str = "validation error",
                title: str | None = None) -> str:
  """Best validation error vs step budget and vs epoch budget (Shallue Fig. 11).

  Both tables are best_under_budget's (unit 'steps' and 'epochs'); one line per
  `by` group (batch size). An empty or missing epochs table leaves its panel blank.
  """
  fig, axes = base.grid(2, 2, (4.8, 3.6))
  for ax, table, unit in ((axes[0], steps, "steps"), (axes[1], epochs, "epochs")):
    if table is None or table.empty:
      ax.text(0.5, 0.5, f"no {unit} budget (num_train_examples unknown?)",
              ha="center", va="center", transform=ax.transAxes, fontsize=9)
      continue
    for i, (label, g) in enumerate(base.groups(table, by)):
      g = g.sort_values("budget")
      ax.plot(g["budget"].to_numpy(dtype=float), base.finite(g["best"]), "-",
              color=f"C{i % 10}", label=label)
    base.log_axis(ax, "x")
    ax.set_xlabel(f"{unit} budget")
    ax.set_ylabel(f"best {metric}")
    base.legend(ax, title=" / ".join(by))
  base.suptitle(fig, title or f"Best {metric} within a budget, per batch size")
  return base.save_png(fig, path)
