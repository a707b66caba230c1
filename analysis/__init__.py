"""What stored results mean: tables, steps to result, best-of-k, rankings.

Pure numpy/scipy/pandas: reads stored results only (never bench's training
code, jax or flax). Start with `trials, curves = analysis.load(results_dir)`.

`analysis.load` is the one function the package itself exports (from
analysis.results); every other name is its module's: `analysis.X` is always the
module analysis/X.py, e.g. `analysis.steps_to_result.scaling_curve`,
`analysis.rankings.optimizer_scores`, `analysis.best_of_k.best_of_k`. Modules
are imported on first use, so that `analysis.record` (the trial-record format,
which the training side writes) costs no pandas or scipy import, and
`import analysis` no matplotlib (analysis.plots and analysis.report load it).

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

__all__ = ["load"]


def __getattr__(name: str) -> Any:
  if name == "load":
    value = importlib.import_module("analysis.results").load
  else:  # a submodule, imported on first use (its import sets the attribute)
    try:
      value = importlib.import_module(f"analysis.{name}")
    except ModuleNotFoundError as e:
      if e.name != f"analysis.{name}":
        raise
      raise AttributeError(f"module 'analysis' has no attribute {name!r}") from None
  globals()[name] = value
  return value
