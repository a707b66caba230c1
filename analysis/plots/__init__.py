"""The figures the project regenerates, one PNG per function, from analysis tables.

Modules by subject (each on analysis.plots.base): scaling (Shallue et al.),
rankings (Choi et al., AlgoPerf profiles, budgets and clocks), playbook (best of
k, axis, isolation, curves); their functions are re-exported here.

Each function takes the DataFrames the analysis functions return (or the trials
and curves tables of analysis.load), writes one PNG at `path` and returns that
path. Shallue et al. 2018: steps_to_result_plot (Fig. 1), effective_lr_plot
(Fig. 8), budget_plot (Fig. 11). Choi et al. 2019: ranking_plot (Figs. 3/4).
The tuning playbook: axis_plot (boundary check), isolation_plot,
training_curves_plot. Also best_of_k_plot, performance_profile_plot (AlgoPerf),
rank_vs_budget_plot and clock_rank_plot (rankings across training budgets and by
steps vs by wall-clock). Values of +inf (goal never reached, diverged) are not drawn.
"""
from analysis.plots.playbook import (axis_plot, best_of_k_plot, isolation_plot,
                                     training_curves_plot)
from analysis.plots.rankings import (clock_rank_plot, performance_profile_plot,
                                     rank_change_plot, rank_vs_budget_plot, ranking_plot)
from analysis.plots.scaling import budget_plot, effective_lr_plot, steps_to_result_plot

__all__ = ["axis_plot", "best_of_k_plot", "budget_plot", "clock_rank_plot", "effective_lr_plot",
           "isolation_plot", "performance_profile_plot", "rank_change_plot", "rank_vs_budget_plot",
           "ranking_plot", "steps_to_result_plot", "training_curves_plot"]
