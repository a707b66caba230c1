"""Shallue et al. 2018, Fig. 1: steps to result vs batch size, with perfect scaling.

Bars: one-sided 90% upper bounds on a rerun's median steps to result (order
statistics); censored values (not reached, goal met at the first eval, a regime
that ends beyond the largest batch size) drawn as open markers and arrows;
vertical lines: where scaling leaves the perfect regime and the maximal useful
batch size (analysis.steps_to_result).
"""
from analysis import figure_data, plots
from analysis.steps_to_result import scaling_curve
from paper_figures import common


def make(ctx, out):
  t = figure_data.scaling_trials(ctx)
  sc = scaling_curve(t, ctx.curves, groups=figure_data.SCALING_GROUPS)
  plots.steps_to_result_plot(sc.table, out, estimates=sc.estimates,
                             groups=figure_data.SCALING_GROUPS)
  return sc.table.merge(sc.estimates, on=figure_data.SCALING_GROUPS, how="left")


if __name__ == "__main__":
  common.run(make, "Shallue Fig. 1")
