"""What every paper-figure script shares: its flags, loading, one-line errors.

Each script is `python -m paper_figures.<name> --results_dir=DIR --out=FILE.png`
and draws one figure from stored trial records (any scale, any source that
analysis.load reads), printing the figure's path and the table behind it.
Scripts run through run_runs() also read published runs: --deepobs_csv or
--algoperf_logs instead of --results_dir.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any, Callable

import pandas as pd
from absl import app, flags

from analysis import cli, figure_data, importers, reference

Figure = Callable[[figure_data.Context, str], "pd.DataFrame | None"]  # noqa: F821


def run(make: Figure, doc: str) -> None:
  """Define the flags, then call make(ctx, out_path) under absl."""
  _define_common_flags("Results directory (bench output or imported runs).")
  flags.mark_flags_as_required(["results_dir", "out"])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    f = flags.FLAGS
    out = os.path.abspath(f.out)
    if not out.endswith(".png"):
      sys.exit(f"error: --out {f.out}: expected a .png file")
    if not os.path.isdir(f.results_dir):
      sys.exit(f"error: --results_dir {f.results_dir}: not a directory")
    try:
      os.makedirs(os.path.dirname(out), exist_ok=True)
    except OSError as e:
      sys.exit(f"error: --out {f.out}: cannot create its folder ({e.strerror})")
    ctx = figure_data.context(f.results_dir, os.path.dirname(out), n_boot=f.n_boot, seed=f.seed)
    for p in ctx.results.problems:
      print(f"skipped: {p}", file=sys.stderr)
    try:
      table = make(ctx, out)
    except figure_data.NotApplicable as e:
      sys.exit(f"error: {doc}: not applicable to {f.results_dir}: {e}")
    if table is not None:
      print(table.to_string(index=False))
    print(out)

  app.run(main)


# ----------------------------------------------- scripts that also read imported runs

SOURCES = ("results_dir", "deepobs_csv", "algoperf_logs")


@dataclasses.dataclass
class Runs:
  """What a figure script reads: a results store or published runs.

  kind: 'store' (ctx is the report context), 'deepobs' or 'algoperf' (trials and
  curves from analysis.importers; for AlgoPerf also `logs`, the folder to score).
  """
  kind: str
  path: str
  trials: pd.DataFrame
  curves: pd.DataFrame
  ctx: figure_data.Context | None = None


class ScriptError(ValueError):
  """Bad input: one `error: ...` line, exit 1."""


def _define_common_flags(results_dir_help: str) -> None:
  """The flags of every figure script: where from, where to, the resampling."""
  flags.DEFINE_string("results_dir", None, results_dir_help)
  flags.DEFINE_string("out", None, "PNG file to write (its folder is created).")
  flags.DEFINE_integer("n_boot", 1000, "Bootstrap replicates behind the rank bands across "
                       "training budgets (every other bound is exact, from order statistics).")
  flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")


def _define_source_flags() -> None:
  _define_common_flags("Results directory (bench output); or give --deepobs_csv or "
                       "--algoperf_logs instead.")
  flags.DEFINE_string("deepobs_csv", None, "Instead of --results_dir: the DeepOBS baseline "
                      f"runs table ({os.path.basename(reference.DEEPOBS_CSV)}).")
  flags.DEFINE_integer("deepobs_grid_seed", 42, "DeepOBS runs kept: this seed's learning-rate "
                       "grid (DeepOBS tuned on seed 42 and re-ran only the best rate on 9 "
                       "more seeds, which are no part of the search); -1 keeps every run.")
  flags.DEFINE_string("algoperf_logs", None, "Instead of --results_dir: AlgoPerf logs "
                      "(<submission>/study_<n>/<workload>_<framework>/trial_<n>/"
                      "eval_measurements.csv, or the published logs/ folder).")
  flags.DEFINE_string("algoperf_version", "0.5", "AlgoPerf version whose targets, budgets and "
                      "held-out workloads apply to --algoperf_logs.")
  flags.DEFINE_string("ruleset", "external_tuning", "AlgoPerf ruleset folder and budgets "
                      "(external_tuning or self_tuning).")
  flags.DEFINE_list("exclude", [], "AlgoPerf submissions to leave out before scoring "
                    "(comma-separated; --algoperf_logs only).")
  flags.DEFINE_string("csv", None, "Also write the full table behind the figure to this CSV.")


def _no_warnings(record: logging.LogRecord) -> bool:
  return record.levelno != logging.WARNING


def load_runs(f: Any, read_imported: bool = True) -> Runs:
  """The one source named by the flags, loaded (ScriptError on bad input).

  read_imported=False leaves the trials and curves of DeepOBS and AlgoPerf runs empty,
  for scripts that read them their own way (runs.path is the file or folder)."""
  given = [s for s in SOURCES if getattr(f, s)]
  if len(given) != 1:
    raise ScriptError("give exactly one of " + ", ".join(f"--{s}" for s in SOURCES))
  if f.exclude and given[0] != "algoperf_logs":
    raise ScriptError("--exclude applies to --algoperf_logs only")
  if f.results_dir:
    if not os.path.isdir(f.results_dir):
      raise ScriptError(f"--results_dir {f.results_dir}: not a directory")
    ctx = figure_data.context(f.results_dir, os.path.dirname(os.path.abspath(f.out)),
                         n_boot=f.n_boot, seed=f.seed)
    for p in ctx.results.problems:
      print(f"skipped: {p}", file=sys.stderr)
    if ctx.trials.empty:
      raise ScriptError(figure_data.no_records(f.results_dir, ctx.results.problems))
    return Runs("store", f.results_dir, ctx.trials, ctx.curves, ctx)
  if f.deepobs_csv:
    if not os.path.isfile(f.deepobs_csv):
      raise ScriptError(f"--deepobs_csv {f.deepobs_csv}: file not found")
    if not read_imported:
      return Runs("deepobs", f.deepobs_csv, pd.DataFrame(), pd.DataFrame())
    try:
      res = importers.deepobs(f.deepobs_csv)
    except (ValueError, OSError, EOFError) as e:
      raise ScriptError(f"--deepobs_csv {f.deepobs_csv}: {str(e).splitlines()[0]}") from None
    t = res.trials
    if f.deepobs_grid_seed >= 0:
      t = t[t["seed"] == f.deepobs_grid_seed].reset_index(drop=True)
      if t.empty:
        raise ScriptError(f"--deepobs_grid_seed {f.deepobs_grid_seed}: no run has that seed")
    return Runs("deepobs", f.deepobs_csv, t, res.curves)
  if not read_imported:
    return Runs("algoperf", f.algoperf_logs, pd.DataFrame(), pd.DataFrame())
  from analysis.algoperf import rankings as algoperf_rankings  # noqa: PLC0415 - only this source needs it
  from analysis.algoperf import results as algoperf_results  # noqa: PLC0415
  quiet = algoperf_results.log
  quiet.addFilter(_no_warnings)  # one line below instead of the importer's warning
  try:
    res = algoperf_rankings.runs(f.algoperf_logs, f.algoperf_version, f.ruleset, f.exclude)
  except ValueError as e:  # analysis.algoperf.ScoreError
    raise ScriptError(str(e)) from None
  finally:
    quiet.removeFilter(_no_warnings)
  if res.problems:
    print(f"skipped {len(res.problems)} item(s) under {f.algoperf_logs}, e.g. "
          f"{res.problems[0]}", file=sys.stderr)
  return Runs("algoperf", f.algoperf_logs, res.trials, res.curves)


def run_runs(make: Callable[[Runs, str], "tuple[pd.DataFrame, pd.DataFrame | None]"],
             doc: str, *, read_imported: bool = True) -> None:
  """Like run(), for scripts that read a store or imported runs (SOURCES).

  make(runs, out_path) draws the figure and returns (table to print, table for
  --csv or None); it raises figure_data.NotApplicable or ScriptError for data it cannot
  use. Every bad input, flags included, is one `error: ...` line and exit 1.
  """
  _define_source_flags()

  def main(argv):
    f = flags.FLAGS
    try:
      if len(argv) > 1:
        raise ScriptError(f"unexpected arguments: {' '.join(argv[1:])}")
      if not f.out:
        raise ScriptError("--out is required (a .png file)")
      out = os.path.abspath(f.out)
      if not out.endswith(".png"):
        raise ScriptError(f"--out {f.out}: expected a .png file")
      runs = load_runs(f, read_imported)
      try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
      except OSError as e:
        raise ScriptError(f"--out {f.out}: cannot create its folder ({e.strerror})") from None
      try:
        shown, full = make(runs, out)
      except figure_data.NotApplicable as e:
        raise ScriptError(f"{doc}: not applicable to {runs.path}: {e}") from None
      if f.csv and full is not None:
        full.to_csv(f.csv, index=False)
    except ScriptError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)
    print(shown.to_string(index=False))
    if f.csv and full is not None:
      print(f.csv)
    print(out)

  app.run(main, flags_parser=cli.parse_flags)


