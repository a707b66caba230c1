"""Choi et al. 2019, Fig. 4: do rankings change with the search space?

Each optimizer's rank (1 = best validation error) under each protocol, one
line per optimizer, protocols ordered from the narrowest search space. Under
the panels, the changes of order beyond noise (rankings.protocol_rank_changes:
the order backed by an exact tail-count test at p <= 0.1 in both protocols);
other crossings are ties within the noise of the search. Prints the ranks, then
those changes."""
from analysis import figure_data, plots
from analysis.rankings import protocol_rank_changes, ranking_table
from paper_figures import common


def make(ctx, out):
  _, s, by = figure_data.ranking_scores(ctx)
  ranks = ranking_table(s, by=by).reset_index()
  changes = protocol_rank_changes(s, by=by)
  plots.rank_change_plot(ranks, out, by=by, changes=changes)
  print(f"changes of order between protocols beyond noise: {len(changes)}")
  if len(changes):
    print(changes.to_string(index=False))
  return ranks


if __name__ == "__main__":
  common.run(make, "Choi Fig. 4")
