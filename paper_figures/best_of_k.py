"""Best-of-k (the `budget` analysis): how the best validation score among k
trials is distributed, k = 1..N, by bootstrap with bands and by Dodge et al.'s
closed form, for every study with two or more trials (--max_studies lines)."""
from absl import flags

from analysis import plots, report
from analysis.best_of_k import best_of_k
from paper_figures import common

_MAX = flags.DEFINE_integer("max_studies", 8, "Studies drawn (the first by id).")


def make(ctx, out):
  t = ctx.trials[ctx.trials["status"] != "failed"]
  sizes = t.groupby("study_id").size()
  keep = sorted(sizes[sizes >= 2].index)[:_MAX.value]
  if not keep:
    raise report.NotApplicable("no study has two or more finished trials")
  table = best_of_k(t[t["study_id"].isin(keep)], by="study_id", score=report.SCORE,
                    n_boot=ctx.n_boot, seed=ctx.seed)
  plots.best_of_k_plot(table, out)
  return table[["study_id", "k", "median", "lo", "hi", "exact_mean"]]


if __name__ == "__main__":
  common.run(make, "best-of-k")
