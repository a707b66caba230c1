"""The report's sections as Markdown: one function per section, from the figure data.

Each builder takes the report Context (analysis.figure_data), draws its figures
(analysis.plots) and returns its lines; it raises NotApplicable with the reason
when it does not apply. analysis.report puts them in order and writes the files.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from analysis import bounds, playbook
from analysis import plots
from analysis.figure_data import (SCALING_GROUPS, SCORE, STEPS_ESTIMAND, Context,
                                  NotApplicable, best_of_k_table, budget_ranking,
                                  budget_note, clock_ranking, goal_metric,
                                  one_setting, ranking_scores, scaling_trials, sci_columns,
                                  score_label, study_order, study_table, varying,
                                  workload_goal_metric)
from analysis.profiles import performance_profile
from analysis.rankings import inclusion_check, protocol_rank_changes, ranking_table
from analysis.steps_to_result import (best_under_budget, describe_regime, describe_steps,
                                      optimal_effective_lr, scaling_curve)

MAX_FIGURES = 40          # per section; the rest are listed, not drawn
CURVE_PANELS = 12         # studies per training-curves figure
BEST_OF_K_LINES = 8       # studies per best-of-k figure


# -------------------------------------------------------------------- Markdown helpers

def text(v: Any) -> str:
  """Store content (ids, names, paths, messages) as inert Markdown text: HTML
  escaped, and none of Markdown's link, emphasis or table syntax."""
  s = html.escape(str(v), quote=False).replace("\n", " ")
  return re.sub(r"([\\`*\[\]|])", r"\\\1", s)


def _cell(v: Any) -> str:
  if v is None:
    return "–"
  if isinstance(v, (bool, np.bool_)):
    return "yes" if v else "no"
  if isinstance(v, (int, np.integer)):
    return str(int(v))
  if isinstance(v, (float, np.floating)):
    if math.isnan(v):
      return "–"
    return "inf" if math.isinf(v) else f"{v:.4g}"
  return text(v)


def md_table(df: pd.DataFrame) -> list[str]:
  """A Markdown table (pandas' to_markdown needs tabulate, which we do not require)."""
  if df.empty:
    return ["(empty)"]
  cols = [str(c) for c in df.columns]
  lines = ["| " + " | ".join(_cell(c) for c in cols) + " |",
           "|" + "|".join("---" for _ in cols) + "|"]
  for row in df.itertuples(index=False):
    lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
  return lines


def _labels(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
  """'a / b / c' per row from the key columns."""
  keys = [k for k in keys if k in df.columns]
  return [" / ".join(_cell(v) for v in row) for row in zip(*(df[k] for k in keys))] \
      if keys else [""] * len(df)


# ------------------------------------------------------------------------------ sections

def _summary(ctx: Context) -> list[str]:
  t = ctx.trials
  if t.empty:
    return [f"No trial records found under `{ctx.results_dir}`."]
  status = t["status"].value_counts()
  counts = ", ".join(f"{s} {int(status.get(s, 0))}" for s in ("ok", "diverged", "failed"))
  lines = [f"Results directory: `{ctx.results_dir}`", "",
           f"- studies: {t['study_id'].nunique()} ({len(ctx.results.studies)} with study.json)",
           f"- trials: {len(t)} ({counts})"]
  for col, name in (("experiment", "experiments"), ("workload", "workloads"),
                    ("protocol_name", "protocols"), ("optimizer", "optimizers")):
    vals = sorted(str(v) for v in t[col].dropna().unique())
    lines.append(f"- {name}: {', '.join(map(text, vals)) if vals else '–'}")
  lines += ["", "Score: best validation value of the goal metric (retrospective checkpoint "
            "selection), lower is better.", ""]
  return lines + md_table(study_table(t))


def _problems(ctx: Context) -> list[str]:
  probs = ctx.results.problems
  if not probs:
    return ["None: every file under the results directory was read."]
  return [f"{len(probs)} file(s) skipped:", ""] + [f"- {text(p)}" for p in probs]


def _steps_to_result(ctx: Context) -> list[str]:
  t = scaling_trials(ctx)
  sc = scaling_curve(t, ctx.curves, groups=SCALING_GROUPS)
  path = plots.steps_to_result_plot(sc.table, ctx.figure("steps_to_result"),
                                    estimates=sc.estimates, groups=SCALING_GROUPS)
  tab = pd.DataFrame({
      "group": _labels(sc.table, SCALING_GROUPS), "batch size": sc.table["batch_size"],
      "steps to result (90% bound)": [describe_steps(r) for r in sc.table.itertuples()],
      "perfect scaling": sc.table["perfect_steps"],
      "reached": [f"{r} of {e}" for r, e in zip(sc.table["n_reached"], sc.table["n_eligible"])],
      "step budget": sc.table["budget"]})
  est = pd.DataFrame({
      "group": _labels(sc.estimates, SCALING_GROUPS),
      "perfect-scaling limit": [describe_regime(v, c) for v, c in zip(
          sc.estimates["perfect_limit"], sc.estimates["perfect_limit_censored"])],
      "max useful batch size": [describe_regime(v, c) for v, c in zip(
          sc.estimates["max_useful_batch"], sc.estimates["max_useful_batch_censored"])],
      "saturation observed": sc.estimates["saturation_observed"]})
  none = ([f"**No batch size reached its goal** ({_goals(t)})", ""]
          if not sc.table["steps_to_result"].notna().any() else [])
  censored = sc.estimates[sc.estimates["max_useful_batch_censored"].astype(bool)]
  if len(censored):
    none += [f"**Censored:** no saturation within the batch sizes run for "
             f"{', '.join(_labels(censored, SCALING_GROUPS))}: the maximal useful batch size "
             "is that value or larger.", ""]
  return (["Shallue et al.'s rule: per batch size, the first eval step at which any "
           "non-diverged trial is strictly below the goal. The bound in brackets is on "
           f"{STEPS_ESTIMAND}: `(<= x)` is a one-sided 90% upper bound from order statistics "
           "(a rerun can do better than the observed best, and nothing in n trials bounds by "
           "how much); `> x: not reached` means no trial reached the goal within x steps; "
           "`<= x` before a value means the goal was met at the first evaluation. Regime "
           "estimates are points on the grid of batch sizes run; `>= b` means the grid ended "
           "first (censored).", ""]
          + none + [ctx.image(path, "steps to result vs batch size"), ""] + md_table(tab)
          + ["", "Scaling regimes:", ""] + md_table(est))


def _goals(t: pd.DataFrame) -> str:
  pairs = t[["goal_metric", "goal_threshold"]].drop_duplicates()
  return ", ".join(f"val/{m} < {_cell(v)}" for m, v in zip(pairs["goal_metric"],
                                                          pairs["goal_threshold"]))


def _effective_lr(ctx: Context) -> list[str]:
  t = scaling_trials(ctx)
  if "hp/learning_rate" not in t.columns:
    raise NotApplicable("trials record no learning_rate hyperparameter")
  tab = optimal_effective_lr(t, ctx.curves, by=SCALING_GROUPS + ["batch_size"])
  if not tab["effective_lr"].notna().any():
    raise NotApplicable("no batch size reached the goal, so no fastest trial")
  path = plots.effective_lr_plot(tab, ctx.figure("effective_lr"), groups=SCALING_GROUPS)
  show = pd.DataFrame({"group": _labels(tab, SCALING_GROUPS),
                       "batch size": tab["batch_size"], "steps to result": tab["steps_to_result"],
                       "learning rate": tab["learning_rate"], "momentum": tab["momentum"],
                       "effective lr": tab["effective_lr"],
                       "fastest trial": tab["fastest_trial_id"]})
  return (["Effective learning rate lr / (1 - momentum) of the fastest trial per batch size "
           "(Shallue et al. Fig. 8), against linear and square-root scaling.", "",
           ctx.image(path, "optimal effective learning rate"), ""] + md_table(show))


def _budget(ctx: Context) -> list[str]:
  t = scaling_trials(ctx)
  lines = ["Best validation value reachable within a budget of steps and of epochs, per "
           "batch size (Shallue et al. Fig. 11). Each curve stops at its own last "
           "evaluation; the table gives each setting's own largest budget.", ""]
  for workload, tw in t.groupby("workload", dropna=False, sort=True):
    metric = workload_goal_metric(tw)
    by = ["optimizer", "batch_size"]
    steps = best_under_budget(tw, ctx.curves, unit="steps", metric=metric, by=by)
    epochs = (best_under_budget(tw, ctx.curves, unit="epochs", metric=metric, by=by)
              if tw["num_train_examples"].notna().all() else None)
    path = plots.budget_plot(steps, epochs, ctx.figure(f"budget_{workload}"), by=by,
                             metric=f"val/{metric}", title=f"{workload}: best val/{metric} "
                             "within a budget")
    final = (steps.dropna(subset=["best"]).sort_values("budget")
             .groupby(by, dropna=False).tail(1).sort_values(by))
    lines += [f"**{_cell(workload)}**", "", ctx.image(path, f"budget {workload}"), ""]
    if epochs is None:
      lines += ["(epoch panel empty: num_train_examples unknown)", ""]
    lines += md_table(final.rename(columns={"budget": "largest step budget",
                                            "best": f"best val/{metric}"})) + [""]
  return lines


def _best_of_k(ctx: Context) -> list[str]:
  table = best_of_k_table(ctx)
  studies = sorted(table["study_id"].unique())
  lines = ["The best score among k trials of each study's protocol. Line: the median best of "
           "k draws from the study's own trials (exact, no resampling). Bounds are on the "
           "median over reruns of the best of k trials of the protocol: `[lo, hi]` two-sided "
           "90%, `(<= hi)` a one-sided 90% upper bound where nothing bounds the lower side "
           "(always at k = all trials), from order statistics. Diverged trials score +inf: "
           "they spend budget and yield nothing; E[best of k] (Dodge et al.'s closed form) is "
           "then infinite and not drawn.", ""]
  for i in range(0, min(len(studies), BEST_OF_K_LINES * MAX_FIGURES), BEST_OF_K_LINES):
    part = table[table["study_id"].isin(studies[i:i + BEST_OF_K_LINES])]
    lines += [ctx.image(plots.best_of_k_plot(part, ctx.figure(f"best_of_k_{i}")),
                        "best of k"), ""]
  rows = []
  for sid, g in table.groupby("study_id", sort=True):
    n = int(g["n_trials"].iloc[0])
    for k in sorted({1, max(1, n // 2), n}):
      r = g[g["k"] == k].iloc[0]
      rows.append({"study": sid, "trials": n, "diverged": int(r["n_diverged"]), "k": k,
                   "median best (90% bound)": bounds.describe(
                       r["median"], bounds.Bound(r["lo"], r["hi"], r["sides"]), fmt=_cell),
                   "E[best] closed form": r["mean"], "P(inf)": r["p_inf"],
                   "test of selected (median)": r["test_median"]})
  return lines + md_table(pd.DataFrame(rows))


def _rankings(ctx: Context) -> list[str]:
  t, scores, by = ranking_scores(ctx)
  ranks = ranking_table(scores, by=by).reset_index()
  pairs = inclusion_check(scores, by=by, all_pairs=True)
  verdict = playbook.inclusion_verdict(pairs)
  path = plots.ranking_plot(scores, ctx.figure("rankings"), inclusion=pairs, by=by,
                            metric=goal_metric(t))
  show = pd.DataFrame({
      "group": _labels(scores, by), "optimizer": scores["optimizer"],
      "trials": scores["n_trials"], "diverged": scores["n_diverged"],
      "best val (90% bound)": [bounds.describe(v, bounds.Bound(lo, hi, sd), fmt=_cell)
                               for v, lo, hi, sd in zip(scores["best_val"], scores["val_lo"],
                                                        scores["val_hi"], scores["val_sides"])],
      "test at best": scores["test_at_best"]})
  per_study = t.groupby(by + ["optimizer"], dropna=False)["study_id"].nunique()
  lines = ["Per protocol, each optimizer's best validation score and the test score of that "
           "trial (Choi et al.: selection by validation, report test). `(<= x)`: one-sided "
           "90% upper bound on the best a rerun of the study would report (its median over "
           "reruns), from order statistics. An inclusion violation (a general optimizer worse "
           "than one it includes) is beyond noise when an exact permutation test on the best "
           "trials (how many special trials beat every general one) gives p <= 0.1.", "",
           f"**{verdict}**", ""]
  per_group = playbook.inclusion_verdicts(pairs, by)
  if len(per_group) > 1:
    lines += [f"- {text(v)}" for v in per_group] + [""]
  lines += [ctx.image(path, "rankings"), ""] + md_table(show)
  if (per_study > 1).any():
    lines += ["", "Note: some optimizer/protocol groups pool several studies."]
  lines += ["", "Ranks (1 = best):", ""] + md_table(ranks)
  if "protocol_name" in by and scores["protocol_name"].nunique() > 1:
    moves = protocol_rank_changes(scores, by=by)
    lines += ["", "Changes of order between protocols beyond noise (each order backed by "
              "the tail-count test at p <= 0.1 in its protocol; other rank differences "
              "are ties within the noise of the search): "
              + (f"{len(moves)}:" if len(moves) else "none."), ""]
    lines += md_table(moves) if len(moves) else []
  if not pairs.empty:
    lines += ["", "Inclusion pairs (special ⊆ general; gap = general − special):", ""]
    lines += md_table(pairs.drop(columns=["relative_gap"]))
  return lines


def _profiles(ctx: Context) -> list[str]:
  t = ctx.trials
  if t.empty or not np.isfinite(pd.to_numeric(t["goal_step"], errors="coerce")).any():
    raise NotApplicable("no trial reached its goal (goal_step)")
  t = t.assign(submission=t["optimizer"].astype(str) + " | " + t["protocol_name"].astype(str))
  if t["submission"].nunique() < 2:
    raise NotApplicable("one optimizer/protocol only: nothing to compare")
  t, dropped = one_setting(t)
  if t["submission"].nunique() < 2:
    raise NotApplicable("fewer than two optimizer/protocol pairs ran one scientific setting "
                        "per workload (profiles compare repeated studies of one setting)")
  prof = performance_profile(t, time_col="goal_step", statuses=("ok",))
  path = plots.performance_profile_plot(prof.profile, ctx.figure("performance_profile"),
                                        score=prof.score)
  times = prof.times.reset_index()
  note = ([f"Left out (several scientific settings per workload): {', '.join(dropped)}.", ""]
          if dropped else [])
  return (["AlgoPerf-style: per workload, the median over studies of the fastest finished "
           "trial's steps to the goal; ratio to the best submission; score = normalised area "
           "under the profile up to ratio 4.", ""] + note
          + [ctx.image(path, "performance profile"), ""] + md_table(times) + ["", "Scores:", ""]
          + md_table(prof.score.reset_index().rename(columns={"index": "submission"})))


def _budget_rankings(ctx: Context) -> list[str]:
  br = budget_ranking(ctx)
  path = plots.rank_vs_budget_plot(br.scores, br.changes, ctx.figure("rank_vs_budget"),
                                   by=br.by, submission_col="optimizer")
  ranks = br.ranks
  names = [c for c in ranks.columns if c not in br.by + ["fraction", "budget", "selected_on",
                                                          "changed", "order", "swaps"]]
  show = pd.DataFrame({"group": _labels(ranks, br.by),
                       "budget": [f"{100 * f:.0f}% ({_cell(b)} steps)"
                                  for f, b in zip(ranks["fraction"], ranks["budget"])]})
  for n in names:
    show[n] = ranks[n].to_numpy()
  show["order changed"] = ["**yes**" if c else "" for c in ranks["changed"]]
  show["who moved ahead"] = ranks["swaps"].to_numpy()
  changes = br.changes
  n_groups = ranks.groupby(br.by, dropna=False).ngroups
  firm = changes[changes["beyond_noise"].astype(bool)] if len(changes) else changes
  n_changed = changes.groupby(br.by, dropna=False).ngroups if len(changes) else 0
  n_firm = firm.groupby(br.by, dropna=False).ngroups if len(firm) else 0
  lines = ["Each optimizer's rank per protocol as if training had stopped at 10%, 20%, ..., "
           "100% of the step budget: per trial the best validation value among evals at or "
           "before the budget (retrospective selection), per study its best trial (median "
           "over studies where there are several), ranked by that value "
           f"({ctx.n_boot} bootstrap replicates resample each study's trials "
           "at every budget). A run stopped early is not a run trained for that budget: "
           "its learning-rate schedule had not decayed.", "",
           f"**The order changes beyond noise in {n_firm} of {n_groups} group(s)** "
           f"(point estimates change in {n_changed}; a swap is beyond noise when at least "
           "90% of the paired bootstrap replicates show it: behind at the earlier budget, "
           "ahead at the later one).", "", ctx.image(path, "ranks across budgets"), ""]
  if len(changes):
    lines += ["Order changes (p_before / p_after: share of bootstrap replicates in which "
              "the overtaking optimizer is ahead at the budget before / at the change):",
              ""]
    lines += md_table(pd.DataFrame({
        "group": _labels(changes, br.by), "at": [f"{100 * f:.0f}%" for f in
                                                 changes["fraction"]],
        "from": [f"{100 * f:.0f}%" for f in changes["prev_fraction"]],
        "moved ahead": changes["ahead"], "of": changes["behind"],
        "ranks before": changes["rank_before"], "ranks after": changes["rank_after"],
        "p_before": changes["p_before"], "p_after": changes["p_after"],
        "p_swap": changes["p_swap"],
        "beyond noise": changes["beyond_noise"]})) + [""]
  return lines + ["Ranks per budget (1 = best):", ""] + md_table(show)


def _clock_rankings(ctx: Context) -> list[str]:
  cr = clock_ranking(ctx)
  multi = cr.table.groupby("workload")["workload"].transform("size") >= 2
  table = cr.table[multi]
  path = plots.clock_rank_plot(table, cr.summary, ctx.figure("steps_vs_clock"),
                               overall=cr.overall)
  s = cr.summary
  packed = s[~s["comparable"].astype(bool)]
  clock = ("goal step / the trial's steps_per_sec, its steady-state training throughput "
           "(the first, compiling dispatch and evaluations excluded: wall_time would also "
           "count compilation, paid only by the first trial of a program in a process)"
           if cr.clock == "steps_per_sec" else
           "the curve's wall_time at the goal evaluation, compilation and evaluations "
           "included")
  lines = ["Per workload, each submission (optimizer | protocol, plus the scientific "
           "settings that vary) is ranked by its time to the goal in steps and in "
           f"seconds ({clock}): per study the fastest finished trial on each clock, median "
           "over studies, misses last. Spearman's rho compares the two orders.", ""]
  if len(packed):
    lines += [f"**Mixed pack sizes** in {', '.join(map(str, packed['workload']))}: a lane of "
              "a pack records the pack's wall time, shared by its trials, so seconds there "
              "mix optimizer cost with packing (seconds shown as recorded).", ""]
  lines += [ctx.image(path, "ranks by steps vs by seconds"), ""]
  lines += md_table(pd.DataFrame({
      "workload": s["workload"], "submissions": s["n_submissions"],
      "reached": s["n_reached"], "Spearman rho": s["spearman"], "p": s["p_value"],
      "moved (beyond noise)": s["moved"], "changes within noise": s["n_within_noise"],
      "pack sizes": s["pack_sizes"],
      "pace outliers": s["pace_outliers"]}))
  lines += ["", "Times and ranks (change < 0: better by seconds than by steps):", ""]
  return lines + md_table(table.rename(columns={"seconds_per_step": "s/step",
                                               "beyond_noise": "moved beyond noise"}))


def _axis_plots(ctx: Context) -> list[str]:
  checked, flagged, figures = [], [], []
  for sid, g in ctx.trials.groupby("study_id", sort=True):
    space = ctx.spaces.get(str(sid))
    bc = playbook.boundary_check(g, score_col=SCORE, space=space)
    if bc.empty or len(playbook.scored_trials(g, SCORE)) < 3:
      continue
    checked.append((sid, g, space, bc))
    for r in bc[bc["flagged"]].itertuples():
      flagged.append({"study": sid, "parameter": r.param, "edge": r.side,
                      "message": r.message})
  if not checked:
    raise NotApplicable("no study has three or more finished trials and a varying "
                        "numeric hyperparameter")
  bad = {f["study"] for f in flagged}
  checked.sort(key=lambda c: c[0] not in bad)  # flagged studies drawn first
  for sid, g, space, bc in checked[:MAX_FIGURES]:
    path = plots.axis_plot(g, ctx.figure(f"axis_{sid}"), score_col=SCORE, space=space,
                           boundary=bc, title=f"{sid}: score vs hyperparameters",
                           ylabel=score_label(g))
    figures += [f"{ctx.image(path, f'axis plot {sid}')}", ""]
  n_params = sum(bc["param"].nunique() for *_, bc in checked)
  lines = [f"Checked {len(checked)} studies ({n_params} study-parameter pairs) by the "
           "Playbook's rule: a search space is suspicious when its best trial lies in the "
           "outer 10% of a searched range (search-space bounds from study.json when known, "
           "else the observed range); 'crowded beyond chance' when the best max(3, 10%) "
           "trials are there more often than uniform sampling would put them (binomial "
           "p <= 0.1).", ""]
  if flagged:
    lines += [f"**Boundary warnings ({len(flagged)}):**", ""] + md_table(pd.DataFrame(flagged))
  else:
    lines += ["No study has its best trial in the outer 10% of a searched range."]
  if len(checked) > MAX_FIGURES:
    lines += ["", f"Figures for {MAX_FIGURES} of {len(checked)} studies (flagged first)."]
  return lines + [""] + figures


def _isolation(ctx: Context) -> list[str]:
  t = ctx.trials
  sci = varying(t, sci_columns(t))
  if not sci:
    raise NotApplicable("no scientific hyperparameter (sci/*) varies across studies")
  lines = ["Best score per value of each scientific hyperparameter, nuisance "
           "hyperparameters optimised away (min over that value's trials); `(<= x)`: one-sided "
           "90% upper bound on the best a rerun would give (its median over reruns).", ""]
  for col in sci:
    own = "optimizer" if col == "sci/optimizer" else None
    by = [c for c in varying(t, ["workload", "optimizer", "protocol_name"]) if c != own]
    tab = playbook.isolation(t, scientific=col, score_col=SCORE, by=by)
    path = plots.isolation_plot(tab, ctx.figure(f"isolation_{col}"), scientific=col, by=by,
                                note=budget_note(t, col))
    show = tab[by + [col, "n_trials", "n_diverged"]].assign(**{
        "best (90% bound)": [bounds.describe(v, bounds.Bound(lo, hi, sd), fmt=_cell)
                             for v, lo, hi, sd in zip(tab["value"], tab["lo"], tab["hi"],
                                                      tab["sides"])],
        "best trial": tab["best_trial_id"]})
    note = budget_note(t, col)
    lines += [f"**{col}**", ""] + ([f"**Different budgets:** {text(note)}.", ""] if note else [])
    lines += [ctx.image(path, f"isolation {col}"), ""] + md_table(show)
    lines += [""]
  return lines


def _training_curves(ctx: Context) -> list[str]:
  if ctx.curves.empty:
    raise NotApplicable("no evaluation curves")
  t = ctx.trials[ctx.trials["trial_id"].isin(ctx.curves["trial_id"].unique())]
  studies = sorted(t["study_id"].unique())
  lines = [f"Validation (solid) and training (dashed) goal metric of the {ctx.k_curves} best "
           "finished trials of each study: look for overfitting (validation rising), noise "
           "late in training, and trials still improving at the end.", ""]
  for wl, tw in t.groupby("workload", dropna=False, sort=True):
    ids = study_order(tw)
    for i in range(0, min(len(ids), CURVE_PANELS * MAX_FIGURES), CURVE_PANELS):
      part = tw[tw["study_id"].isin(ids[i:i + CURVE_PANELS])]
      path = plots.training_curves_plot(part, ctx.curves, ctx.figure(f"curves_{wl}_{i}"),
                                        score_col=SCORE, k=ctx.k_curves,
                                        order=ids[i:i + CURVE_PANELS])
      lines += [ctx.image(path, f"training curves {wl}"), ""]
  return lines + [f"{len(studies)} studies drawn."]


def _variance(ctx: Context) -> list[str]:
  if ctx.trials.empty:
    raise NotApplicable("no trials")
  vc = playbook.trial_vs_study_variance(ctx.trials, score_col=SCORE)
  if not vc.available:
    part = ""
    if vc.trial is not None:
      part = f" (trial variance alone: {_cell(vc.trial_var)} over {len(vc.trial)} points)"
    if vc.study is not None:
      part = f" (study variance alone: {_cell(vc.study_var)} over {len(vc.study)} settings)"
    raise NotApplicable(vc.reason + part)
  keys = playbook.setting_columns(ctx.trials)
  def short(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"setting": _labels(df, [k for k in keys if df[k].notna().any()])})
    if "point" in df.columns:
      out["point"] = df["point"].to_numpy()
    return out.assign(n=df["n"].to_numpy(), mean=df["mean"].to_numpy(),
                      var=df["var"].to_numpy())
  return ([f"**{vc.verdict}**", "",
           f"- trial variance (seeds of one point, pooled): {_cell(vc.trial_var)}",
           f"- study variance (best of a study over studies, pooled): {_cell(vc.study_var)}",
           f"- ratio {_cell(vc.ratio)}, F-test p = {_cell(vc.f_pvalue)}, Brown-Forsythe "
           f"p = {_cell(vc.levene_pvalue)}", "", "Repeated points:", ""]
          + md_table(short(vc.trial)) + ["", "Repeated studies:", ""]
          + md_table(short(vc.study)))


SECTIONS: tuple[tuple[str, Callable[[Context], list[str]]], ...] = (
    ("Summary", _summary),
    ("Load problems", _problems),
    ("Steps to result", _steps_to_result),
    ("Effective learning rate", _effective_lr),
    ("Budget", _budget),
    ("Best-of-k", _best_of_k),
    ("Rankings and inclusion check", _rankings),
    ("Performance profiles", _profiles),
    ("Rankings across training budgets", _budget_rankings),
    ("Rankings by steps vs by wall-clock", _clock_rankings),
    ("Hyperparameter axis plots and boundary check", _axis_plots),
    ("Isolation", _isolation),
    ("Training curves", _training_curves),
    ("Trial vs study variance", _variance),
)
