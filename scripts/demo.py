"""The README's first command: a small offline batch-scaling experiment.

Runs `protocols/experiments/batch_scaling.py` on the embedded MNIST-1D MLP
(`mnist1d_large_mlp`, 18,000 training signals) at a demo size: 4 batch sizes
from 16 to 1024 x 32 quasi-random Nesterov trials, each with the cpu scale's
budget rule (128,000 examples, 500 to 16,000 steps), about 2 minutes on 2 CPU
cores. Prints one line per study with an ETA, then steps to result per batch
size with 90% bootstrap bands over trials and the scaling-regime estimates,
and writes the analysis report with its figures. Re-running resumes / reuses
finished trials.
"""
from __future__ import annotations

import math
import sys
import time
import warnings

from absl import app, flags, logging
from etils import epath

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/demo", "Where results and the report go.")
_NUM_TRIALS = flags.DEFINE_integer("num_trials", 32, "Trials per batch size.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["16", "64", "256", "1024"], "Batch sizes.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 16000,
                                    "Most steps a trial gets (the budget rule's cap).")
_N_BOOT = flags.DEFINE_integer("n_boot", 1000, "Bootstrap replicates of the bands.")


def _steps(x: float) -> str:
  return "–" if not math.isfinite(x) else f"{int(round(x)):,}"


def _band(lo: float, hi: float) -> str:
  return f"[{_steps(lo)}, {_steps(hi) if math.isfinite(hi) else 'inf'}]"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax / jax INFO lines are not the demo's output
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  import analysis  # pylint: disable=g-import-not-at-top  (after the logging set-up)
  from analysis import report  # pylint: disable=g-import-not-at-top
  from analysis.steps_to_result import bootstrap_scaling  # pylint: disable=g-import-not-at-top
  from bench import store, study as study_lib, trial  # pylint: disable=g-import-not-at-top
  from protocols.experiments import batch_scaling  # pylint: disable=g-import-not-at-top

  config = batch_scaling.get_config("mnist1d_large_mlp,cpu")
  try:
    config.batch_sizes = tuple(int(b) for b in _BATCH_SIZES.value)
    if min(config.batch_sizes) < 1 or _NUM_TRIALS.value < 1 or _TRAIN_STEPS.value < 1:
      raise ValueError
  except ValueError:
    sys.exit("error: --batch_sizes, --num_trials and --train_steps must be positive integers")
  config.num_trials = _NUM_TRIALS.value
  config.train_steps = _TRAIN_STEPS.value
  results = epath.Path(_OUTPUT_DIR.value) / "results"
  studies = study_lib.expand(config, batch_scaling)
  runners = [study_lib.StudyRunner(s, results, log=lambda line: None) for s in studies]
  try:  # every check before anything is written or computed, as bench.run does
    prepared = [r.prepare(write=False) for r in runners]
    out = store.check_writable(_OUTPUT_DIR.value)
  except (trial.ConfigError, store.StoreError) as e:
    sys.exit(f"error: {e}")
  for r in runners:
    r.write_metadata()
  goal = prepared[0][0].workload.goal
  print(f"demo: batch scaling on {config.workload} (goal val/{goal.metric} < {goal.threshold}), "
        f"batch sizes {', '.join(map(str, config.batch_sizes))}, {config.num_trials} Nesterov "
        f"trials each -> {results}", flush=True)
  t0 = time.perf_counter()
  for i, (r, ps) in enumerate(zip(runners, prepared), 1):
    ts = time.perf_counter()
    counts = r.run(ps)
    now = time.perf_counter()
    eta = (now - t0) / i * (len(runners) - i)
    steps, _ = batch_scaling.budget(config, r.study.scientific["batch_size"])
    done = f", {counts['skipped']} already done" if counts["skipped"] else ""
    print(f"[{i}/{len(runners)}] batch {r.study.scientific['batch_size']}: {counts['ran']} "
          f"trials of {steps:,} steps in {now - ts:.0f}s{done}; "
          f"ETA {int(eta // 60)}m{int(eta % 60):02d}s", flush=True)
  print(f"trained in {time.perf_counter() - t0:.0f}s", flush=True)

  res = analysis.load(str(results))
  boot = bootstrap_scaling(res.trials, res.curves, n_boot=_N_BOOT.value)
  print(f"\nsteps to result (first eval with val/{goal.metric} < {goal.threshold}), "
        "90% bootstrap band over trials:")
  print(f"{'batch size':>10}  {'steps':>6}  {'band':>16}  reached")
  reached = analysis.steps_to_result(res.trials, res.curves, by="batch_size")
  n_reached = dict(zip(reached["batch_size"], reached["n_reached"]))
  for row in boot.table.itertuples():
    print(f"{int(row.batch_size):>10}  {_steps(row.steps_to_result):>6}  "
          f"{_band(row.lo, row.hi):>16}  {int(n_reached.get(row.batch_size, 0))}/"
          f"{int(row.n_eligible)} non-diverged")
  if len(boot.estimates):
    e = boot.estimates.iloc[0]
    print(f"perfect scaling up to batch {_steps(e.perfect_limit)} "
          f"{_band(e.perfect_limit_lo, e.perfect_limit_hi)}; maximal useful batch size "
          f"{_steps(e.max_useful_batch)} {_band(e.max_useful_batch_lo, e.max_useful_batch_hi)}")
  path = report.write_report(str(results), str(out / "report"))
  print(f"\nreport: {path}")


if __name__ == "__main__":
  app.run(main)
