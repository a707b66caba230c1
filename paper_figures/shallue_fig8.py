"""Shallue et al. 2018, Fig. 8: optimal effective learning rate lr/(1 - momentum)
vs batch size, with linear and square-root scaling references."""
from analysis import plots, report
from analysis.steps_to_result import optimal_effective_lr
from paper_figures import common


def make(ctx, out):
  t = report.scaling_trials(ctx)
  if "hp/learning_rate" not in t.columns:
    raise report.NotApplicable("trials record no learning_rate")
  tab = optimal_effective_lr(t, ctx.curves, by=report.SCALING_GROUPS + ["batch_size"])
  plots.effective_lr_plot(tab, out, groups=report.SCALING_GROUPS)
  return tab


if __name__ == "__main__":
  common.run(make, "Shallue Fig. 8")
