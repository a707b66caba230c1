"""Shallue et al. 2018, Fig. 1: steps to result vs batch size, with perfect scaling.

Bands: bootstrap over trials; vertical lines: where scaling leaves the perfect
regime and the maximal useful batch size (analysis.steps_to_result).
"""
from analysis import plots, report
from analysis.steps_to_result import bootstrap_scaling
from paper_figures import common


def make(ctx, out):
  t = report.scaling_trials(ctx)
  boot = bootstrap_scaling(t, ctx.curves, groups=report.SCALING_GROUPS, n_boot=ctx.n_boot,
                           seed=ctx.seed)
  plots.steps_to_result_plot(boot.table, out, estimates=boot.estimates,
                             groups=report.SCALING_GROUPS)
  return boot.table.merge(boot.estimates, on=report.SCALING_GROUPS, how="left")


if __name__ == "__main__":
  common.run(make, "Shallue Fig. 1")
