"""What stored results mean: tables, steps to result, best-of-k, rankings.

Pure numpy/scipy/pandas: reads stored results only (never bench's training
code, jax or flax). Start with `trials, curves = analysis.load(results_dir)`.

The package re-exports the main functions, so `analysis.steps_to_result` and
`analysis.best_of_k` are the functions of the same-named modules; reach other
names in those modules with `from analysis.steps_to_result import ...`. They
are imported on first use, so that `analysis.record` (the trial-record format,
which the training side writes) costs no pandas or scipy import.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

if sys.argv[:1] == ["-m"]:  # Python is starting an analysis module: signals, one line (interrupts)
  from analysis import interrupts as _interrupts
  _interrupts.install()

_EXPORTS = {
    "Results": "load", "load": "load",
    "steps_to_result": "steps_to_result", "goal_times": "steps_to_result",
    "perfect_scaling": "steps_to_result", "scaling_regimes": "steps_to_result",
    "scaling_curve": "steps_to_result", "optimal_effective_lr": "steps_to_result",
    "best_under_budget": "steps_to_result",
    "best_of_k": "best_of_k", "best_of_k_bootstrap": "best_of_k",
    "best_of_k_exact": "best_of_k", "expected_best_of_k": "best_of_k",
    "optimizer_scores": "rankings", "ranking_table": "rankings", "inclusion_check": "rankings",
    "performance_profile": "profiles",
    # The playbook's checks. analysis.plots and analysis.report are imported on their
    # own: they load matplotlib (Agg backend), which `import analysis` should not do.
    "boundary_check": "playbook", "isolation": "playbook",
    "trial_vs_study_variance": "playbook",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name not in _EXPORTS:
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
  value = getattr(importlib.import_module(f"analysis.{_EXPORTS[name]}"), name)
  globals()[name] = value
  return value


class _Package(types.ModuleType):
  """Keeps `analysis.best_of_k` / `analysis.steps_to_result` the functions when
  their modules are imported (the import system sets the module as the
  package's attribute of that name)."""

  def __setattr__(self, name: str, value: Any) -> None:
    if name in _EXPORTS and isinstance(value, types.ModuleType):
      return
    super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
