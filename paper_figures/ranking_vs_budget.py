"""Rankings across training budgets: each submission's rank at 10%, 20%, ..., 100%.

  python -m paper_figures.ranking_vs_budget --results_dir=DIR --out=FILE.png
  python -m paper_figures.ranking_vs_budget --deepobs_csv=CSV --out=FILE.png
  python -m paper_figures.ranking_vs_budget --algoperf_logs=DIR --out=FILE.png

No new training: at each budget every trial keeps its best selection value among
evals at or before it (retrospective selection), each study its best trial, each
submission the median over its studies (analysis.budget_rankings). One panel per
group: optimizers per workload and protocol for a results store, per test
problem for DeepOBS (selected on test: DeepOBS 1.1 had no validation split;
step = epoch), AlgoPerf submissions per workload (budget: the official runtime,
by default). Shaded: the spread of ranks over bootstrap replicates of each
study's trials; stars: swaps beyond noise (>= 90% of paired replicates show the
swap). Prints the rank table with the changes flagged ("yes" beyond noise,
"within noise" otherwise); --csv writes every score.
"""
import numpy as np
from absl import flags

from analysis import figure_data, plots
from analysis.budget_rankings import budget_rankings
from paper_figures import common

_FRACTIONS = flags.DEFINE_integer("fractions", 10, "Number of budgets, evenly spaced: 10 "
                                  "gives 10%, 20%, ..., 100% of the full budget.")
_UNIT = flags.DEFINE_enum("unit", "auto", ["auto", "step", "wall_time"], "Budget axis: step "
                          "(the step budget), wall_time (AlgoPerf: its max runtime; otherwise "
                          "the longest logged wall time); auto: wall_time for AlgoPerf logs, "
                          "whose budgets are runtimes and whose submissions count global_step "
                          "differently, else step.")


def make(runs: common.Runs, out: str):
  if _FRACTIONS.value < 1:
    raise common.ScriptError(f"--fractions {_FRACTIONS.value}: must be at least 1")
  unit = _UNIT.value if _UNIT.value != "auto" else (
      "wall_time" if runs.kind == "algoperf" else "step")
  f = flags.FLAGS
  opts = dict(fractions=np.linspace(1.0 / _FRACTIONS.value, 1.0, _FRACTIONS.value), unit=unit)
  if runs.kind == "store":
    br = figure_data.budget_ranking(runs.ctx, **opts)
  else:
    sub = "submission" if runs.kind == "algoperf" else "optimizer"
    budget = "max_runtime" if runs.kind == "algoperf" and unit == "wall_time" else None
    br = budget_rankings(runs.trials, runs.curves, by=["workload"], submission_col=sub,
                         budget_col=budget, n_boot=f.n_boot, seed=f.seed, **opts)
    if br.scores.empty:
      raise figure_data.NotApplicable("no workload with two or more submissions and curves")
  where = {"algoperf": "AlgoPerf logs", "deepobs": "DeepOBS baselines"}.get(runs.kind, "")
  plots.rank_vs_budget_plot(br.scores, br.changes, out, by=br.by,
                            submission_col=br.submission_col, unit=unit,
                            title=f"Ranks across training budgets{', ' + where if where else ''}"
                            " (retrospective selection; stars: swaps beyond noise)")
  firm = br.changes[br.changes["beyond_noise"].astype(bool)]
  firm_at = {tuple(r) for r in firm[br.by + ["fraction"]].itertuples(index=False)}
  changed = []
  for r in br.ranks[br.by + ["fraction", "changed"]].itertuples(index=False):
    at = tuple(r)[:-1]
    changed.append("yes" if at in firm_at else ("within noise" if r[-1] else ""))
  shown = br.ranks.assign(fraction=[f"{100 * x:.0f}%" for x in br.ranks["fraction"]],
                          changed=changed)
  return shown.drop(columns=["order"]), br.scores


if __name__ == "__main__":
  common.run_runs(make, "ranking vs budget")
