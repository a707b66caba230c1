"""Choi et al. 2019, Fig. 3: tuning more hyperparameters removes differences.

One panel per protocol (search space): each optimizer's best validation error
and the test error of that trial, with the one-sided 90% upper bound on a
rerun's median best, and the inclusion check's verdict (a more general optimizer
should be no worse; beyond noise by a tail-count permutation test)."""
from analysis import figure_data, plots
from analysis.rankings import inclusion_check
from paper_figures import common


def make(ctx, out):
  t, s, by = figure_data.ranking_scores(ctx)
  pairs = inclusion_check(s, by=by, all_pairs=True)
  plots.ranking_plot(s, out, inclusion=pairs, by=by, metric=figure_data.goal_metric(t))
  return s[by + ["optimizer", "n_trials", "best_val", "val_hi", "val_sides", "test_at_best"]]


if __name__ == "__main__":
  common.run(make, "Choi Fig. 3")
