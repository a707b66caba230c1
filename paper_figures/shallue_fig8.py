"""Shallue et al. 2018, Fig. 8: optimal effective learning rate lr/(1 - momentum)
vs batch size, with linear and square-root scaling references."""
from analysis import figure_data, plots
from analysis.steps_to_result import optimal_effective_lr
from paper_figures import common


def make(ctx, out):
  t = figure_data.scaling_trials(ctx)
  if "hp/learning_rate" not in t.columns:
    raise figure_data.NotApplicable("trials record no learning_rate")
  tab = optimal_effective_lr(t, ctx.curves, by=figure_data.SCALING_GROUPS + ["batch_size"])
  plots.effective_lr_plot(tab, out, groups=figure_data.SCALING_GROUPS)
  return tab


if __name__ == "__main__":
  common.run(make, "Shallue Fig. 8")
