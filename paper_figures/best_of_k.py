"""Best-of-k (the `budget` analysis): the median best validation score among k
trials, k = 1..N, with order-statistic bounds on a rerun's median best of k and
Dodge et al.'s closed-form E[best of k] where finite, for every study with two or
more trials (--max_studies lines)."""
from absl import flags

from analysis import figure_data, plots
from paper_figures import common

_MAX = flags.DEFINE_integer("max_studies", 8, "Studies drawn (the first by id).")


def make(ctx, out):
  table = figure_data.best_of_k_table(ctx, max_studies=_MAX.value)
  plots.best_of_k_plot(table, out)
  return table[["study_id", "k", "median", "lo", "hi", "sides", "mean"]]

if __name__ == "__main__":
  common.run(make, "best-of-k")
