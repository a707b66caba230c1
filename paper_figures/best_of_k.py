"""Best-of-k (the `budget` analysis): how the best validation score among k
trials is distributed, k = 1..N, by bootstrap with bands and by Dodge et al.'s
closed form, for every study with two or more trials (--max_studies lines)."""
from absl import flags

from analysis import plots, report
from paper_figures import common

_MAX = flags.DEFINE_integer("max_studies", 8, "Studies drawn (the first by id).")


def make(ctx, out):
  table = report.best_of_k_table(ctx, max_studies=_MAX.value)
  plots.best_of_k_plot(table, out)
  return table[["study_id", "k", "median", "lo", "hi", "exact_mean"]]

if __name__ == "__main__":
  common.run(make, "best-of-k")
