"""Rankings by steps vs by wall-clock: the same time-to-target ranking on two clocks.

  python -m paper_figures.steps_vs_clock --results_dir=DIR --out=FILE.png
  python -m paper_figures.steps_vs_clock --algoperf_logs=DIR --out=FILE.png [--exclude=NAME]

One panel per workload (and one for the overall performance-profile score):
each submission's rank by steps to the target (left) and by seconds (right),
Spearman's rho in the title (analysis.clock_rankings). A results store ranks
optimizer | protocol submissions by their goal, seconds from steps_per_sec by
default (--clock); AlgoPerf logs are scored by the official leaderboard rule
twice, by submission time and by global step.
DeepOBS runs record neither wall time nor targets, so they do not apply.
Prints the per-workload agreement and the rank-change table; --csv writes it.
"""
from absl import flags

from analysis import clock_rankings, figure_data, plots
from analysis.algoperf import rankings as algoperf_rankings
from paper_figures import common

_CLOCK = flags.DEFINE_enum("clock", "steps_per_sec", list(clock_rankings.CLOCKS), "Seconds "
                           "of a results store: steps_per_sec (goal step / the record's "
                           "steady-state training throughput, compilation and evaluations "
                           "excluded) or wall_time (the curve's, both included: the first "
                           "trial of a program in a process also pays its compilation).")
_PACK = flags.DEFINE_enum("pack", "recorded", list(clock_rankings.PACKS), "Packed trials "
                          "(pack_size > 1) share their lane's clock: recorded keeps their "
                          "seconds, per_trial divides them by pack_size; workloads of mixed "
                          "pack sizes are flagged either way.")


def make(runs: common.Runs, out: str):
  if runs.kind == "deepobs":
    raise figure_data.NotApplicable("DeepOBS runs record no wall-clock time and no targets")
  if runs.kind == "store":
    cr = figure_data.clock_ranking(runs.ctx, clock=_CLOCK.value, pack=_PACK.value)
    title = None
  else:
    f = flags.FLAGS
    try:
      cr, _ = algoperf_rankings.clocks(runs.path, f.algoperf_version, f.ruleset, f.exclude)
    except ValueError as e:  # analysis.algoperf.ScoreError
      raise common.ScriptError(str(e)) from None
    title = (f"AlgoPerf v{f.algoperf_version} {f.ruleset}: ranks by global steps vs by "
             "submission time (official rule on each clock; solid: moved)")
  table = cr.table[cr.table.groupby("workload")["workload"].transform("size") >= 2]
  plots.clock_rank_plot(table, cr.summary, out, overall=cr.overall, title=title)
  return cr.summary.drop(columns=["scope"]), cr.table


if __name__ == "__main__":
  common.run_runs(make, "steps vs clock", read_imported=False)
