"""What every paper-figure script shares: its flags, loading, one-line errors.

Each script is `python -m paper_figures.<name> --results_dir=DIR --out=FILE.png`
and draws one figure from stored trial records (any scale, any source that
analysis.load reads), printing the figure's path and the table behind it.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from absl import app, flags

from analysis import report

Figure = Callable[[report.Context, str], "pd.DataFrame | None"]  # noqa: F821


def run(make: Figure, doc: str) -> None:
  """Define the flags, then call make(ctx, out_path) under absl."""
  flags.DEFINE_string("results_dir", None, "Results directory (bench output or imported runs).")
  flags.DEFINE_string("out", None, "PNG file to write (its folder is created).")
  flags.DEFINE_integer("n_boot", 1000, "Bootstrap replicates behind every band.")
  flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")
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
    ctx = report.context(f.results_dir, os.path.dirname(out), n_boot=f.n_boot, seed=f.seed)
    for p in ctx.results.problems:
      print(f"skipped: {p}", file=sys.stderr)
    try:
      table = make(ctx, out)
    except report.NotApplicable as e:
      sys.exit(f"error: {doc}: not applicable to {f.results_dir}: {e}")
    if table is not None:
      print(table.to_string(index=False))
    print(out)

  app.run(main)
