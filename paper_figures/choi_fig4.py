"""Choi et al. 2019, Fig. 4: rankings change with the search space.

Each optimizer's rank (1 = best validation error) under each protocol, one
line per optimizer, protocols ordered from the narrowest search space."""
from analysis import figure_data, plots
from analysis.rankings import ranking_table
from paper_figures import common


def make(ctx, out):
  _, s, by = figure_data.ranking_scores(ctx)
  ranks = ranking_table(s, by=by).reset_index()
  plots.rank_change_plot(ranks, out, by=by)
  return ranks


if __name__ == "__main__":
  common.run(make, "Choi Fig. 4")
