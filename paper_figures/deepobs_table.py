"""The DeepOBS baseline table, reproduced from the released raw runs.

  python -m paper_figures.deepobs_table [--csv=PATH] [--out=FILE.md]

Per test problem and optimizer: the learning rate with the best final test
metric on seed 42 (DeepOBS 1.1 had no validation split), then mean ± std of
that metric over its 10 seeds. Prints Markdown (the README's table).
"""
import os
import sys

from absl import app, flags

from analysis import importers, reference

_CSV = flags.DEFINE_string("csv", reference.DEEPOBS_CSV, "deepobs_baselines_runs.csv.gz")
_OUT = flags.DEFINE_string("out", None, "Also write the Markdown table to this file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not os.path.isfile(_CSV.value):
    sys.exit(f"error: --csv {_CSV.value}: file not found")
  md = importers.deepobs_baseline_markdown(
      importers.deepobs_baseline_table(importers.deepobs(_CSV.value)))
  print(md)
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      f.write(md + "\n")


if __name__ == "__main__":
  app.run(main)
