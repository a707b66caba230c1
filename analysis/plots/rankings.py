"""Rankings: Choi et al. 2019's per protocol (Figs. 3/4), their change between protocols,
the AlgoPerf performance profile, and ranks across training budgets and by steps vs seconds."""
from __future__ import annotations

import math
import os
import textwrap
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis import playbook
from analysis.plots import base

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
  panels = list(base.groups(scores, by))
  fig, axes = base.grid(len(panels), ncols=3, size=(4.6, 3.6))
  for ax, (label, g) in zip(axes, panels):
    _ranking_panel(ax, g, optimizer_col, metric)
    ax.set_title(label, fontsize=9)
    if inclusion is not None and not inclusion.empty:
      _mark_violations(ax, inclusion, g, by)
  lines = playbook.inclusion_verdicts(inclusion, by) if inclusion is not None else []
  if len(lines) > 1:
    lines.insert(0, "inclusion check (special ⊆ general; 'beyond noise' = tail-count "
                 "permutation test p <= 0.1)")
  base.suptitle(fig, title or "Optimizer rankings per protocol (selection by validation)")
  for i, line in enumerate(reversed(lines)):
    fig.text(0.01, 0.005 + 0.022 * i, line, ha="left", va="bottom", fontsize=7)
  return base.save_png(fig, path, tight=True, rect=(0, 0.03 * len(lines), 1, 1))


def _ranking_panel(ax: Any, g: pd.DataFrame, optimizer_col: str, metric: str) -> None:
  g = g.assign(_v=base.finite(g["best_val"])).sort_values("_v", na_position="last")
  x = np.arange(len(g))
  for col, hi, dx, fmt, name in (("best_val", "val_hi", -0.1, "o", "validation"),
                                 ("test_at_best", None, 0.1, "s", "test of that trial")):
    y = base.finite(g[col])
    err = base.up_down(y, g, None, hi) if hi in g else None
    ax.errorbar(x + dx, y, yerr=err, fmt=fmt, capsize=3, label=name)
  ax.set_xticks(x)
  ax.set_xticklabels([str(o) for o in g[optimizer_col]], rotation=30, fontsize=8)
  ax.set_ylabel(f"{metric} at the selected trial")
  base.legend(ax)


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
    ax.set_xlabel(textwrap.fill(text, 70), fontsize=7, color=base.DIVERGED_COLOR)


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
  panels = list(base.groups(ranks, outer))
  fig, axes = base.grid(len(panels), ncols=2, size=(5.2, 3.6))
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
    base.legend(ax)
  base.suptitle(fig, title or "Optimizer ranks per search space (point ranks)")
  if changes is None:
    return base.save_png(fig, path, tight=True)
  lines = [f"{r.ahead_first} ahead of {r.behind_first} under {r.protocol_first} "
           f"(p = {r.p_first:.2g}), behind under {r.protocol_then} (p = {r.p_then:.2g})"
           for r in changes.itertuples()] or [
      "no change of order beyond noise (tail-count test, p <= 0.1, in both protocols): "
      "crossing lines are ties within the noise of the search"]
  lines = [w for line in lines for w in textwrap.wrap(line, int(13 * fig.get_figwidth()))]
  for i, line in enumerate(reversed(lines)):
    fig.text(0.01, 0.005 + 0.03 * i, line, ha="left", va="bottom", fontsize=7)
  return base.save_png(fig, path, tight=True, rect=(0, 0.035 * len(lines) + 0.01, 1, 1))



# --------------------------------------------------------------------------- AlgoPerf

def performance_profile_plot(profile: pd.DataFrame, path: str | os.PathLike, *,
                             score: pd.Series | None = None, title: str | None = None) -> str:
  """AlgoPerf performance profiles: fraction of workloads within ratio tau of the best.

  `profile` is performance_profile(...).profile (submissions x taus); `score`
  (its .score) is shown in the legend.
  """
  fig, ax = base.single()
  taus = np.asarray(profile.columns, dtype=float)
  for i, (name, row) in enumerate(profile.iterrows()):
    label = str(name) if score is None else f"{name} (score {float(score.loc[name]):.3f})"
    ax.step(taus, row.to_numpy(dtype=float), where="post", color=f"C{i % 10}", label=label)
  ax.set_xlabel("performance ratio tau (time / best time on the workload)")
  ax.set_ylabel("fraction of workloads")
  ax.set_ylim(-0.02, 1.02)
  ax.set_title(title or "Performance profiles")
  base.legend(ax)
  return base.save_png(fig, path)



# ------------------------------------------------------------ rankings: budgets, clocks


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
  panels = list(base.groups(scores, by))
  if not panels:
    return base.empty_figure(path, title or "Ranks across budgets", "no group with two submissions")
  fig, axes = base.grid(len(panels), ncols=3, size=(4.6, 3.4))
  colors = base.colors_for(scores[submission_col])
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
  bottom = base.figure_legend(fig, colors)
  base.suptitle(fig, title or "Ranks across training budgets (retrospective selection; "
            "stars: swaps beyond noise)")
  return base.save_png(fig, path, tight=True, rect=(0, bottom, 1, 1))


def clock_rank_plot(table: pd.DataFrame, summary: pd.DataFrame, path: str | os.PathLike, *,
                    overall: pd.DataFrame | None = None, title: str | None = None) -> str:
  """Ranks by steps (left) and by seconds (right) per workload, one line per submission.

  Tables are analysis.clock_rankings'. Solid thick lines: submissions whose rank
  changes beyond noise (the table's beyond_noise); dashed: a change within noise;
  dotted: no change; x: missed the target on that clock. Panel titles give Spearman's rho;
  flagged workloads (mixed pack sizes, pace outliers) say so under the axis.
  """
  panels = [(str(w), g.rename(columns={"submission": "sub"}))
            for w, g in table.groupby("workload", sort=True)] if len(table) else []
  if overall is not None and len(overall) and len(panels) > 1:
    panels.append((None, overall.rename(columns={"submission": "sub"})))
  if not panels:
    return base.empty_figure(path, title or "Ranks by steps vs by seconds", "nothing to rank")
  names = table["submission"] if len(table) else overall["submission"]
  colors = base.colors_for(names)
  many = len(colors) > 12  # room for the ranks and the legend
  fig, axes = base.grid(len(panels), ncols=4 if not many else 2,
                    size=(3.4, 3.2) if not many else (5.0, 0.16 * len(colors) + 1.5))
  info = summary.set_index("workload") if len(summary) else pd.DataFrame()
  for ax, (w, g) in zip(axes, panels):
    key = w if w is not None else summary["workload"].iloc[-1]
    order = list(colors)
    for r in g.itertuples():
      changed = r.rank_steps != r.rank_seconds
      moved = bool(getattr(r, "beyond_noise", changed))   # the overall panel: no noise check
      style = "-" if moved else "--" if changed else ":"
      dy = 0.07 * (order.index(str(r.sub)) - (len(order) - 1) / 2)  # ties stay visible
      ax.plot([0, 1], [r.rank_steps + dy, r.rank_seconds + dy], style,
              lw=2 if moved else 1, alpha=1 if moved else 0.6, color=colors[str(r.sub)],
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
      ax.set_xlabel(textwrap.fill("; ".join(notes), 55), fontsize=6, color=base.DIVERGED_COLOR)
  axes[0].set_ylabel("rank (1 = fastest to target)")
  bottom = base.figure_legend(fig, colors)
  base.suptitle(fig, title or "Time-to-target ranks by steps vs by seconds\n(solid: moved "
                "beyond noise; dashed: a change within noise)")
  return base.save_png(fig, path, tight=True, rect=(0, bottom, 1, 1))
