"""What stored results mean: tables, steps to result, best-of-k, rankings.

Pure numpy/scipy/pandas: reads stored results only (never bench's training
code, jax or flax). Start with `trials, curves = analysis.load(results_dir)`.

The package re-exports the main functions, so `analysis.steps_to_result` and
`analysis.best_of_k` are the functions of the same-named modules; reach other
names in those modules with `from analysis.steps_to_result import ...`.
"""
from __future__ import annotations

from analysis.best_of_k import best_of_k, best_of_k_bootstrap, best_of_k_exact, expected_best_of_k
from analysis.load import Results, load
from analysis.profiles import performance_profile
from analysis.rankings import inclusion_check, optimizer_scores, ranking_table
from analysis.steps_to_result import (best_under_budget, bootstrap_scaling, goal_times,
                                      optimal_effective_lr, perfect_scaling, scaling_regimes,
                                      steps_to_result)

__all__ = [
    "Results", "load", "steps_to_result", "goal_times", "perfect_scaling", "scaling_regimes",
    "bootstrap_scaling", "optimal_effective_lr", "best_under_budget", "best_of_k",
    "best_of_k_bootstrap", "best_of_k_exact", "expected_best_of_k", "optimizer_scores",
    "ranking_table", "inclusion_check", "performance_profile",
]

# The playbook's checks. analysis.plots and analysis.report are imported on their own:
# they load matplotlib (Agg backend), which `import analysis` should not do.
from analysis.playbook import boundary_check, isolation, trial_vs_study_variance  # noqa: E402

__all__ += ["boundary_check", "isolation", "trial_vs_study_variance"]
