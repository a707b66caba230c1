"""The README's first command: a small offline batch-scaling experiment.

Runs `protocols/experiments/batch_scaling.py` on the embedded MNIST-1D MLP
(`mnist1d_large_mlp`, 18,000 training signals) at a demo size: 4 batch sizes
from 16 to 1024 x 32 quasi-random Nesterov trials, each with the cpu scale's
budget rule (128,000 examples, 500 to 16,000 steps), about 2 minutes on 2 CPU
cores. Prints one line per study with an ETA, then steps to result per batch
size with a one-sided 90% upper bound on what a rerun would give (its median;
analysis.bounds), the scaling-regime estimates with every censored value
marked, and writes the analysis report with its figures. Re-running resumes /
reuses finished trials.
"""
from __future__ import annotations

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # orbax / jax INFO lines are not the demo's output
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  import analysis  # pylint: disable=g-import-not-at-top  (after the logging set-up)
  from analysis import report  # pylint: disable=g-import-not-at-top
  from analysis.steps_to_result import (  # pylint: disable=g-import-not-at-top
      describe_regime, describe_steps, scaling_curve)
  from analysis import interrupts  # pylint: disable=g-import-not-at-top
  from bench import experiment, store  # pylint: disable=g-import-not-at-top
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
  try:  # every check before anything is written or computed: bench.run's driver
    exp = experiment.prepare(config, batch_scaling, results, log=lambda line: None)
    store.check_writable(_OUTPUT_DIR.value)
    experiment.create_store(exp)
  except experiment.INPUT_ERRORS as e:
    sys.exit(f"error: {e}")
  interrupts.on_error("; nothing finished is lost: run the same command again once that is "
                      "fixed to resume")
  goal = exp.prepared[0][0].workload.goal
  print(f"demo: batch scaling on {config.workload} (goal val/{goal.metric} < {goal.threshold}), "
        f"batch sizes {', '.join(map(str, config.batch_sizes))}, {config.num_trials} Nesterov "
        f"trials each -> {results}", flush=True)
  t0 = time.perf_counter()
  n = len(exp.runners)

  def after_study(i, r, counts, seconds):
    eta = (time.perf_counter() - t0) / (i + 1) * (n - i - 1)
    steps, _ = batch_scaling.budget(config, r.study.scientific["batch_size"])
    done = f", {counts['skipped']} already done" if counts["skipped"] else ""
    print(f"[{i + 1}/{n}] batch {r.study.scientific['batch_size']}: {counts['ran']} "
          f"trials of {steps:,} steps in {seconds:.0f}s{done}; "
          f"ETA {int(eta // 60)}m{int(eta % 60):02d}s", flush=True)
  experiment.run(exp, after_study)
  print(f"trained in {time.perf_counter() - t0:.0f}s", flush=True)

  res = analysis.load(str(results))
  sc = scaling_curve(res.trials, res.curves)
  print(f"\nsteps to result (first eval with val/{goal.metric} < {goal.threshold}); in "
        "brackets a one-sided 90% upper bound\non what a rerun of the study would give "
        "(same protocol and number of trials; its median over reruns):")
  print(f"{'batch size':>10}  {'steps to result':<24}  reached")
  for row in sc.table.itertuples():
    print(f"{int(row.batch_size):>10}  {describe_steps(row):<24}  {row.n_reached}/"
          f"{row.n_eligible} non-diverged")
  if len(sc.estimates):
    e = sc.estimates.iloc[0]
    limit = describe_regime(e.perfect_limit, e.perfect_limit_censored)
    useful = describe_regime(e.max_useful_batch, e.max_useful_batch_censored)
    print(f"perfect scaling up to batch {limit}"
          f"{' (censored: still perfect at the largest batch size run)' if e.perfect_limit_censored else ''}; "
          f"maximal useful batch size {useful}"
          f"{': no saturation within the batch sizes run (censored)' if e.max_useful_batch_censored else ''}")
  path = report.write_report(str(results), str(epath.Path(_OUTPUT_DIR.value) / "report"))
  print(f"\nreport: {path}")


if __name__ == "__main__":
  from bench import recipe  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=recipe.parse_flags)
