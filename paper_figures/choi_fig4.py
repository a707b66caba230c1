"""Choi et al. 2019, Fig. 4: rankings change with the search space.

Each optimizer's rank (1 = best validation error) under each protocol, one
line per optimizer, protocols ordered from the narrowest search space."""
from analysis import plots
from analysis.rankings import ranking_table
from paper_figures import choi_fig3, common


def make(ctx, out):
  s, by = choi_fig3.scores(ctx)
  ranks = ranking_table(s, by=by).reset_index()
  plots.rank_change_plot(ranks, out, by=by)
  return ranks


if __name__ == "__main__":
  common.run(make, "Choi Fig. 4")
