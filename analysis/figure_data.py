"""What the report and the paper figures draw: the loaded results and the tables behind each figure.

analysis.report writes report.md from these, analysis.html_report writes
report.html, and every paper_figures script starts from one of them, so a
figure and its report section always show the same selection. Functions raise
NotApplicable (with the reason) when the results hold nothing for them.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis import playbook, schema
from analysis.algoperf.store import submission_labels
from analysis.best_of_k import best_of_k
from analysis.budget_rankings import BudgetRanking, budget_rankings
from analysis.clock_rankings import ClockRanking, clock_rankings
from analysis.results import Results, load
from analysis.rankings import optimizer_scores

SCORE = "score"
FIGURES = "figures"  # OUTDIR/figures: the PNGs of a report
SCALING_GROUPS = ["workload", "optimizer", "protocol_name"]


def _value(v: Any) -> str:
  if isinstance(v, (float, np.floating)) and not math.isnan(v) and float(v).is_integer():
    return str(int(v))
  return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


class NotApplicable(Exception):
  """A section that does not apply to these results; the message says why."""


@dataclasses.dataclass
class Context:
  """What every section reads: the loaded tables and where figures go."""
  results_dir: str
  out_dir: str
  results: Results
  trials: pd.DataFrame        # analysis.load trials plus the SCORE column
  curves: pd.DataFrame
  spaces: dict[str, dict[str, Any]]
  n_boot: int = 1000
  k_curves: int = 3
  seed: int = 0
  _names: set[str] = dataclasses.field(default_factory=set)

  def figure(self, name: str) -> str:
    """A fresh PNG path under OUTDIR/figures for `name`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:100] or "figure"
    base, i = slug, 1
    while slug in self._names:
      i += 1
      slug = f"{base}_{i}"
    self._names.add(slug)
    return os.path.join(self.out_dir, FIGURES, slug + ".png")

  def image(self, path: str, alt: str) -> str:
    rel = os.path.relpath(path, self.out_dir).replace(os.sep, "/")
    return f"![{alt}]({rel})"


def context(results_dir: str, out_dir: str, **options: Any) -> Context:
  """Loaded results with the report's score column, for sections and paper figures."""
  results = load(results_dir)
  trials = results.trials.assign(**{SCORE: playbook.default_score(results.trials)})
  return Context(results_dir, out_dir, results, trials, results.curves,
                 playbook.search_spaces(results.studies), **options)


def varying(t: pd.DataFrame, cols: Sequence[str]) -> list[str]:
  return [c for c in cols if c in t.columns and t[c].nunique(dropna=False) > 1]


def sci_columns(t: pd.DataFrame) -> list[str]:
  return sorted(c for c in t.columns if str(c).startswith(playbook.SCI))


def goal_metric(t: pd.DataFrame) -> str:
  """The trials' goal metric ('error', 'loss'), or 'score' when they differ."""
  return schema.goal_metric(t, "score")


def workload_goal_metric(t: pd.DataFrame) -> str:
  """One workload's goal metric: its first trial's that names one (a workload has one)."""
  return str(t["goal_metric"].dropna().iloc[0])


def score_label(t: pd.DataFrame) -> str:
  m = goal_metric(t)
  return f"best val/{m}" if m != "score" else "best validation score"


def study_table(t: pd.DataFrame) -> pd.DataFrame:
  """One row per study (in study_order): setting, counts by status, best score."""
  sci = sci_columns(t)
  rows = []
  groups = dict(tuple(t.groupby("study_id", sort=False)))
  for sid in study_order(t):  # by setting, numbers as numbers
    g = groups[sid]
    setting = ", ".join(f"{c[len(playbook.SCI):]}={_value(g[c].iloc[0])}" for c in sci
                        if g[c].notna().any())
    ok = g[g["status"] == "ok"][SCORE]
    rows.append({"study": sid, "workload": g["workload"].iloc[0],
                 "protocol": g["protocol_name"].iloc[0],
                 "optimizer": ", ".join(sorted(map(str, g["optimizer"].dropna().unique()))),
                 "setting": setting, "trials": len(g),
                 "ok": int((g["status"] == "ok").sum()),
                 "diverged": int((g["status"] == "diverged").sum()),
                 "failed": int((g["status"] == "failed").sum()),
                 "best score": float(ok.min()) if ok.notna().any() else np.nan})
  return pd.DataFrame(rows)


def study_order(t: pd.DataFrame) -> list[str]:
  """Study ids ordered by their scientific settings, numbers as numbers (batch 16
  before 64 before 1024), then by id."""
  sci = sci_columns(t)
  first = t.groupby("study_id", sort=False).first()
  def key(sid):
    vals = []
    for c in sci:
      v = first.at[sid, c] if c in first.columns else None
      num = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
      vals.append((0, float(num), "") if pd.notna(num) else (1, 0.0, str(v)))
    return (vals, str(sid))
  return sorted(first.index, key=key)


def scaling_trials(ctx: Context) -> pd.DataFrame:
  """Trials of groups (workload/optimizer/protocol) that ran two or more batch sizes."""
  t = ctx.trials
  if t.empty:
    raise NotApplicable("no trials")
  t = t[t["goal_metric"].notna() & t["goal_threshold"].notna()]
  if t.empty:
    raise NotApplicable("no trial records a goal (goal metric and threshold)")
  n_batch = t.groupby(SCALING_GROUPS, dropna=False)["batch_size"].transform("nunique")
  t = t[n_batch >= 2]
  if t.empty:
    raise NotApplicable("batch size does not vary within any workload/optimizer/protocol")
  return t


STEPS_ESTIMAND = ("the steps to result a rerun of the study (same protocol, same number "
                  "of trials) would give, its median over reruns")


def best_of_k_table(ctx: Context, max_studies: int | None = None) -> pd.DataFrame:
  """best_of_k over every study with two or more finished trials (the first
  `max_studies` by id); the best-of-k section and figure both use it."""
  t = ctx.trials[ctx.trials["status"] != "failed"]
  sizes = t.groupby("study_id").size()
  keep = sorted(sizes[sizes >= 2].index)[:max_studies]
  if not keep:
    raise NotApplicable("no study has two or more finished trials")
  return best_of_k(t[t["study_id"].isin(keep)], by="study_id", score=SCORE)


def ranking_keys(t: pd.DataFrame) -> list[str]:
  sci = [c for c in varying(t, sci_columns(t)) if c != "sci/optimizer"]
  return ["workload", "protocol_name"] + sci


def ranking_scores(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
  """(trials, optimizer_scores, group keys) of every group run with two or more
  optimizers; the rankings section and Choi's figures both start here."""
  t = ctx.trials
  if t.empty:
    raise NotApplicable("no trials")
  by = ranking_keys(t)
  n_opt = t.groupby(by, dropna=False)["optimizer"].transform("nunique")
  t = t[n_opt >= 2]
  if t.empty:
    raise NotApplicable("no workload/protocol was run with more than one optimizer")
  return t, optimizer_scores(t, by=by, score=SCORE), by


def one_setting(t: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
  """Submissions that ran a single scientific setting on every workload, and the others."""
  sci = [c for c in sci_columns(t) if c != "sci/optimizer"]
  if not sci:
    return t, []
  n = t.groupby(["submission", "workload"], dropna=False)[sci].nunique(dropna=False).max(axis=1)
  bad = sorted({s for (s, _), v in n.items() if v > 1})
  return t[~t["submission"].isin(bad)], bad


def budget_ranking(ctx: Context, **options: Any) -> BudgetRanking:
  """Optimizer ranks per protocol (the rankings section's groups) at 10%..100% of
  the step budget; the budget-rankings section and its paper figure start here.
  `options` go to analysis.budget_rankings.budget_rankings (fractions, unit, ...)."""
  if ctx.curves.empty:
    raise NotApplicable("no evaluation curves")
  if ctx.trials.empty:
    raise NotApplicable("no trials")
  result = budget_rankings(ctx.trials, ctx.curves, by=ranking_keys(ctx.trials),
                           submission_col="optimizer", n_boot=ctx.n_boot, seed=ctx.seed,
                           **options)
  if result.scores.empty:
    raise NotApplicable("no workload/protocol was run with more than one optimizer "
                        "(with curves and a goal metric)")
  return result


def clock_ranking(ctx: Context, **options: Any) -> ClockRanking:
  """Time-to-goal ranks of submissions (optimizer | protocol, plus varying scientific
  settings) per workload in steps and in seconds; the section and its figure use it.
  `options` go to analysis.clock_rankings.clock_rankings (pack; clock, here by
  default steps_per_sec: a trial's wall_time includes compilation when it was the
  first of its program shape in its process, which at small scales decides the
  order)."""
  t, c = ctx.trials, ctx.curves
  options = {"clock": "steps_per_sec", **options}
  if t.empty or c.empty:
    raise NotApplicable("no trials with evaluation curves")
  if options["clock"] == "wall_time" and not np.isfinite(
      pd.to_numeric(c["wall_time"], errors="coerce")).any():
    raise NotApplicable("the curves record no wall_time")
  if options["clock"] == "steps_per_sec" and not np.isfinite(
      pd.to_numeric(t["steps_per_sec"], errors="coerce")).any():
    raise NotApplicable("the trial records have no steps_per_sec")
  if not (t["goal_metric"].notna() & t["goal_threshold"].notna()).any():
    raise NotApplicable("no trial records a goal (goal metric and threshold)")
  t = t.assign(submission=submission_labels(t))
  result = clock_rankings(t, c, submission_col="submission", **options)
  s = result.summary[result.summary["scope"] == "workload"]
  if not ((s["n_submissions"] >= 2) & (s["n_reached"] >= 1)).any():
    raise NotApplicable("no workload where two or more submissions ran and one reached "
                        "its goal")
  return result


def budget_note(t: pd.DataFrame, col: str) -> str | None:
  """'the values of <col> ran different training budgets (16: 8000 steps, 7.11
  epochs; ...)' when they did, else None: a comparison across them compares
  budgets as well as settings, and every figure of it says so."""
  if "train_steps" not in t.columns or col not in t.columns:
    return None
  steps = pd.to_numeric(t["train_steps"], errors="coerce")
  epochs = steps * pd.to_numeric(t["batch_size"], errors="coerce") / pd.to_numeric(
      t["num_train_examples"], errors="coerce")
  per = pd.DataFrame({"v": t[col], "steps": steps, "epochs": epochs}).groupby("v").max()
  if per["steps"].nunique() <= 1 and per["epochs"].round(2).nunique() <= 1:
    return None
  parts = [f"{_value(v)}: {_value(r.steps)} steps" + (f", {r.epochs:.3g} epochs"
                                                      if np.isfinite(r.epochs) else "")
           for v, r in per.iterrows()]
  return (f"the values of {col} ran different training budgets ({'; '.join(parts)}), so "
          "this compares budgets as well as settings")


def experiment_title(trials: pd.DataFrame, results_dir: str) -> str:
  """'Results report: <experiment> on <workloads>' from the records; the folder name
  only when the records name no experiment."""
  exps = sorted(str(e) for e in trials.get("experiment", pd.Series(dtype=object)).dropna()
                .unique())
  wls = sorted(str(w) for w in trials.get("workload", pd.Series(dtype=object)).dropna()
               .unique())
  if not exps:
    return f"Results report: {os.path.basename(os.path.abspath(results_dir))}"
  return f"Results report: {', '.join(exps)}" + (f" on {', '.join(wls)}" if wls else "")


def no_records(results_dir: str, problems: Sequence[str]) -> str:
  """The one line for a folder without trial records, naming the tool for what it holds."""
  line = f"--results_dir {results_dir}: no trial records (record.json) found"
  if any(p.split(": ")[0].endswith("eval_measurements.csv") for p in problems):
    return (f"{line}; it holds AlgoPerf logs: score them with "
            f"python -m analysis.algoperf --logs={results_dir}")
  return f"{line} ({len(problems)} other file(s) skipped)" if problems else line
