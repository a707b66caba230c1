"""Train one trial and write its record.

  python -m bench.train --workload=mnist1d_mlp --optimizer=nesterov \
      --config.hparams.learning_rate=0.05 --config.batch_size=128 \
      --config.train_steps=1000 --output_dir=/tmp/trial

Prints a progress line per evaluation and writes DIR/record.json (schema in
bench/record.py). Bad input fails before any training with one line.
"""
from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from bench import config as config_lib
from bench import store, trial
import workloads

_WORKLOAD = flags.DEFINE_string("workload", "mnist1d_mlp",
                                "Registered workload name or 'module:Class'.")
_OPTIMIZER = flags.DEFINE_string("optimizer", "nesterov", "Optimizer name (bench.optimizers).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory for record.json (must not hold one).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Offline data arrays / text (see workloads).")
_WORKLOAD_ARGS = flags.DEFINE_string(
    "workload_args", "", "Workload constructor arguments as Python literals, e.g. "
    "'image_size=64,stage_sizes=(1,1)' (recorded with the trial).")
_CONFIG = config_flags.DEFINE_config_dict("config", config_lib.trial_config(),
                                          "Trial settings; override with --config.x=y.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  c = _CONFIG.value
  try:
    workload_args = workloads.parse_args(_WORKLOAD_ARGS.value)
  except workloads.UnknownWorkloadError as e:
    sys.exit(f"error: {e}")
  spec = trial.TrialSpec(
      workload=_WORKLOAD.value, optimizer=_OPTIMIZER.value, hparams=config_lib.set_hparams(c),
      batch_size=c.batch_size, train_steps=c.train_steps, eval_every=c.eval_every, seed=c.seed,
      data_dir=_DATA_DIR.value, workload_args=workload_args, dtype=c.dtype,
      max_steps_per_dispatch=c.max_steps_per_dispatch,
      divergence_factor=c.divergence_factor, eval_test=c.eval_test,
      checkpoint_every_sec=c.checkpoint_every_sec)
  try:
    prepared = trial.prepare(spec)
    out = None
    if _OUTPUT_DIR.value:
      out = store.check_writable(_OUTPUT_DIR.value)
      if store.has_record(out):
        raise trial.ConfigError(f"{out / store.RECORD} exists; choose another --output_dir "
                                "(records are never overwritten)")
    lc = prepared.loop_config
    print(f"{prepared.workload.name} ({prepared.workload.goal}) | {spec.optimizer} "
          f"{prepared.hparams} | batch {lc.batch_size}, {lc.train_steps} steps, eval every "
          f"{lc.eval_every}, seed {spec.seed}", flush=True)
    rec = trial.run(prepared, log=lambda s: print(s, flush=True),
                    checkpoint_dir=str(out / "checkpoint") if out is not None else None,
                    events_dir=str(out / "events") if out is not None else None)
  except (trial.ConfigError, store.StoreError, workloads.DataError) as e:
    sys.exit(f"error: {e}")
  best = rec["best"] or {}
  metric = f"val/{prepared.workload.goal.metric}"
  print(f"status {rec['status']}{' (' + rec['status_reason'] + ')' if rec['status_reason'] else ''}"
        f" | best {metric} {best.get(metric, float('nan')):.4g} at step {best.get('step')}"
        f" | goal reached at step {rec['goal_step']} | {rec['steps_per_sec']:.1f} steps/s")
  if out is not None:
    store.write_json_atomic(out / store.RECORD, rec)
    print(f"wrote {out / store.RECORD}")
  if rec["status"] == "failed":
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
