"""Shallue et al. 2018, Fig. 11: best validation error within a step budget vs
within an epoch budget, per batch size (one workload: the first, or --workload).
Each curve stops at its own last evaluation; the table gives each batch size's
own largest budget and the best value reached within it."""
from absl import flags

from analysis import figure_data, plots
from analysis.steps_to_result import best_under_budget
from paper_figures import common

_WORKLOAD = flags.DEFINE_string("workload", None, "Workload to draw (default: the first).")


def make(ctx, out):
  t = figure_data.scaling_trials(ctx)
  workload = _WORKLOAD.value or sorted(t["workload"].dropna().unique())[0]
  t = t[t["workload"] == workload]
  if t.empty:
    raise figure_data.NotApplicable(f"no batch-scaling trials of workload {workload!r}")
  metric = figure_data.workload_goal_metric(t)
  by = ["optimizer", "batch_size"]
  steps = best_under_budget(t, ctx.curves, unit="steps", metric=metric, by=by)
  epochs = best_under_budget(t, ctx.curves, unit="epochs", metric=metric, by=by)
  plots.budget_plot(steps, epochs, out, by=by, metric=f"val/{metric}",
                    title=f"{workload}: best val/{metric} within a budget")
  # each batch size's own largest budget (curves stop where their trials stopped)
  return (steps.dropna(subset=["best"]).sort_values("budget").groupby(by).tail(1)
          .sort_values(by).rename(columns={"budget": "largest step budget"}))


if __name__ == "__main__":
  common.run(make, "Shallue Fig. 11")
