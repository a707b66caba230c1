"""What stored results mean: tables, steps to result, best-of-k, rankings.

Pure numpy/scipy/pandas: reads stored results only (never bench's training
code, jax or flax). Start with `trials, curves = analysis.load(results_dir)`.

The package re-exports the main functions (`analysis.scaling_curve`,
`analysis.optimizer_scores`, ...); no name is both a function and a module:
`analysis.steps_to_result` and `analysis.best_of_k` are the modules, whose
functions of the same name are `analysis.steps_to_result.steps_to_result` and
`analysis.best_of_k.best_of_k`. Everything is imported on first use, so that
`analysis.record` (the trial-record format, which the training side writes)
costs no pandas or scipy import.

Layers, each importing only those before it (tests/test_layering.py):
  leaves      record (the trial-record format, stdlib only), schema, bounds,
              interrupts, cli, reference (where the published runs live)
  tables      results (analysis.load), profiles
  estimates   steps_to_result, best_of_k, rankings, playbook, budget_rankings,
              clock_rankings
  sources     algoperf/ (its own order in its docstring), importers
  figures     figure_data (the tables every figure and report draws), plots/
  reports     report_sections, html_report < report; calibration beside them
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

if sys.argv[:1] == ["-m"]:  # Python is starting an analysis module: signals, one line (interrupts)
  from analysis import interrupts as _interrupts
  _interrupts.install()

_EXPORTS = {
    "Results": "results", "load": "results",
    "goal_times": "steps_to_result",
    "perfect_scaling": "steps_to_result", "scaling_regimes": "steps_to_result",
    "scaling_curve": "steps_to_result", "optimal_effective_lr": "steps_to_result",
    "best_under_budget": "steps_to_result",
    "best_of_k_exact": "best_of_k",
    "optimizer_scores": "rankings", "ranking_table": "rankings", "inclusion_check": "rankings",
    "performance_profile": "profiles",
    # The playbook's checks. analysis.plots and analysis.report are imported on their
    # own: they load matplotlib (Agg backend), which `import analysis` should not do.
    "boundary_check": "playbook", "isolation": "playbook",
    "trial_vs_study_variance": "playbook",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f"analysis.{_EXPORTS[name]}"), name)
  else:  # a submodule, imported on first use (its import sets the attribute)
    try:
      value = importlib.import_module(f"analysis.{name}")
    except ModuleNotFoundError as e:
      if e.name != f"analysis.{name}":
        raise
      raise AttributeError(f"module 'analysis' has no attribute {name!r}") from None
  globals()[name] = value
  return value
