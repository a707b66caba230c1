"""The README's first command: a small offline batch-scaling experiment.

Runs `protocols/experiments/batch_scaling.py` on the embedded MNIST-1D MLP at
a demo size (4 batch sizes x 8 quasi-random Nesterov trials, ~3 minutes on 2
CPU cores), then writes the analysis report with its figures and prints a
summary of steps to result per batch size. Re-running resumes / reuses trials.
"""
from __future__ import annotations

import sys
import time

from absl import app, flags

import analysis
from analysis import report
from bench import store, study as study_lib
from protocols.experiments import batch_scaling

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/demo", "Where results and the report go.")
_NUM_TRIALS = flags.DEFINE_integer("num_trials", 8, "Trials per batch size.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["16", "64", "256", "1024"], "Batch sizes.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 600, "Step budget per trial.")


def main(argv):
  del argv
  config = batch_scaling.get_config("mnist1d_mlp,cpu")
  config.batch_sizes = tuple(int(b) for b in _BATCH_SIZES.value)
  config.num_trials = _NUM_TRIALS.value
  config.train_steps = _TRAIN_STEPS.value
  try:
    out = store.check_writable(_OUTPUT_DIR.value)
  except store.StoreError as e:
    sys.exit(f"error: {e}")
  results = out / "results"
  studies = study_lib.expand(config, batch_scaling)
  print(f"demo: batch scaling on {config.workload}, batch sizes {list(config.batch_sizes)}, "
        f"{config.num_trials} trials each, up to {config.train_steps} steps -> {results}", flush=True)
  t0 = time.perf_counter()
  for s in studies:
    study_lib.StudyRunner(s, results).run()
  print(f"trained in {time.perf_counter() - t0:.0f}s", flush=True)
  res = analysis.load(str(results))
  table = analysis.steps_to_result(res.trials, res.curves, by="batch_size")
  print("\nsteps to result (val/error < goal) per batch size:")
  print(table.to_string())
  path = report.write_report(str(results), str(out / "report"))
  print(f"\nreport: {path}")


if __name__ == "__main__":
  app.run(main)
