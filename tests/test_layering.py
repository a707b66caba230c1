"""One test per layering rule of DESIGN.md: nothing imports from above it.

Each rule imports a layer in a fresh interpreter and lists what it pulled in,
so an import hidden in a function body that runs at import time, or an
importlib call, counts too.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

TRAINING_STACK = ("jax", "jaxlib", "flax", "optax", "orbax", "tensorflow")


def imported_after(code: str) -> set[str]:
  """Modules (top package, or 'bench.x' for the project's) loaded by `code`."""
  probe = (f"import sys\n{code}\n"
           "print('\\n'.join(sorted(set(m if m.split('.')[0] in ('bench', 'workloads', "
           "'protocols', 'analysis') else m.split('.')[0] for m in sys.modules))))")
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                       cwd=ROOT)
  return set(out.stdout.split())


def test_workloads_never_import_bench_protocols_or_analysis():
  mods = imported_after("import workloads, workloads.embedded, workloads.mnist, "
                        "workloads.cifar10, workloads.imagenet, workloads.lm1b, "
                        "workloads.synthetic")
  assert not {m for m in mods if m.split(".")[0] in ("bench", "protocols", "analysis")}


def test_optimizers_schedules_and_settings_are_a_leaf():
  """bench.optimizers (with its preconditioners) / schedules / settings import nothing
  else of the project (so protocols may validate against them)."""
  mods = imported_after("import bench.optimizers, bench.schedules, bench.settings")
  project = {m for m in mods if m.split(".")[0] in ("bench", "workloads", "protocols",
                                                     "analysis")}
  assert project == {"bench", "bench.optimizers", "bench.optimizer_rules", "bench.preconditioners", "bench.kron",
                     "bench.schedules", "bench.settings", "bench.userfiles"}


def test_settings_import_no_training_stack():
  assert not imported_after("import bench.settings") & set(TRAINING_STACK)


def test_protocols_and_recipes_import_nothing_of_benchs_runner():
  mods = imported_after("import protocols, protocols.presets, protocols.experiments, "
                        "protocols.experiments.batch_scaling, "
                        "protocols.experiments.optimizer_ranking, protocols.experiments.preset")
  bench = {m for m in mods if m.split(".")[0] == "bench"}
  assert bench <= {"bench", "bench.optimizers", "bench.optimizer_rules", "bench.preconditioners", "bench.kron",
                   "bench.schedules", "bench.settings", "bench.userfiles"}, bench
  assert not {m for m in mods if m.split(".")[0] in ("workloads", "analysis")}


ANALYSIS = ("analysis", "analysis.importers", "analysis.algoperf", "analysis.algoperf.store",
            "analysis.budget_rankings", "analysis.clock_rankings", "analysis.algoperf.rankings",
            "analysis.report", "paper_figures.common")


@pytest.mark.parametrize("layers", [ANALYSIS, ("bench.status",)])
def test_analysis_and_status_import_no_jax_and_no_training_code(layers):
  mods = imported_after(f"import {', '.join(layers)}")
  assert not mods & set(TRAINING_STACK), mods & set(TRAINING_STACK)
  assert not {m for m in mods if m.split(".")[0] == "workloads"}
  if layers == ANALYSIS:
    assert not {m for m in mods if m.split(".")[0] == "bench"}


def test_the_record_module_needs_only_the_standard_library():
  """analysis.record is what bench writes and analysis and status read."""
  mods = imported_after("import analysis.record")
  assert not mods & {"numpy", "pandas", "scipy", "matplotlib", *TRAINING_STACK}


def test_running_a_recipe_imports_no_recipe_by_name():
  """bench.recipe runs the recipe file it is given; it imports none of the
  shipped ones (the old importlib cycle bench.study -> protocols.experiments.*)."""
  mods = imported_after("import bench.recipe, bench.run")
  assert not {m for m in mods if m.startswith("protocols.experiments")}


# bench's own layer order (bench/__init__.py): each imports nothing of the layers after it.
BENCH_LAYERS = (
    ("bench.store", "bench.userfiles", "bench.progress"),
    ("bench.trial", "bench.packing"),
    ("bench.study",),
    ("bench.recipe", "bench.runner"),
    ("bench.experiment",),
    ("bench.run", "bench.ray_executor", "bench.status", "bench.train", "bench.perf",
     "bench.perf_optimizers"),
)


@pytest.mark.parametrize("level", range(len(BENCH_LAYERS) - 1))
def test_bench_layers_import_nothing_after_them(level):
  mods = imported_after(f"import {', '.join(BENCH_LAYERS[level])}")
  later = {m for layer in BENCH_LAYERS[level + 1:] for m in layer}
  if level == 3:  # recipe and runner: neither needs the other
    assert not {"bench.recipe"} & imported_after("import bench.runner")
    assert not {"bench.runner"} & imported_after("import bench.recipe")
  assert not mods & later, mods & later


# analysis's layer order (analysis/__init__.py): each imports nothing of the layers after it.
ANALYSIS_LAYERS = (
    ("analysis.record", "analysis.schema", "analysis.bounds", "analysis.reference"),
    ("analysis.results", "analysis.profiles"),
    ("analysis.steps_to_result", "analysis.best_of_k", "analysis.rankings", "analysis.playbook",
     "analysis.budget_rankings", "analysis.clock_rankings"),
    ("analysis.algoperf", "analysis.importers"),
    ("analysis.figure_data", "analysis.plots"),
    ("analysis.report_sections", "analysis.html_report", "analysis.report"),
)


@pytest.mark.parametrize("level", range(len(ANALYSIS_LAYERS) - 1))
def test_analysis_layers_import_nothing_after_them(level):
  mods = imported_after(f"import {', '.join(ANALYSIS_LAYERS[level])}")
  later = {m for layer in ANALYSIS_LAYERS[level + 1:] for m in layer}
  assert not mods & later, mods & later
  if level == 4:  # the figure data draws nothing; the figures read no report
    assert "analysis.plots" not in imported_after("import analysis.figure_data")


def test_paper_figures_read_the_figure_data_not_the_report():
  figures = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "paper_figures"))
                   if f.endswith(".py") and f != "__init__.py")
  mods = imported_after("import " + ", ".join(f"paper_figures.{f}" for f in figures))
  assert "analysis.figure_data" in mods
  report = {"analysis.report", "analysis.report_sections", "analysis.html_report"}
  assert not mods & report, mods & report
