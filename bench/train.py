"""Train one trial and write its record.

  python -m bench.train --workload=mnist1d_mlp --optimizer=nesterov \
      --config.hparams.learning_rate=0.05 --config.batch_size=128 \
      --config.train_steps=1000 --output_dir=/tmp/trial

Prints a progress line per evaluation and writes DIR/record.json (schema in
analysis/record.py). Bad input fails before any training with one line.

Batches are split over all local devices. A trial too large for one host runs
as one process per host, each started with the same flags plus
`--coordinator_address=HOST0:PORT --num_processes=N --process_id=I` (or
`--coordinator_address=auto` under Slurm, Open MPI or on Cloud TPU); process 0
prints and writes the record, and --output_dir must be shared storage.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from analysis import interrupts
from bench import config as config_lib
from bench import optimizers, parallel, store, trial
from bench.settings import SettingsError
import workloads

_WORKLOAD = flags.DEFINE_string("workload", "mnist1d_mlp",
                                "Registered workload name or 'module:Class'.")
_OPTIMIZER = flags.DEFINE_string("optimizer", "nesterov", "Optimizer name (bench.optimizers), "
                                 "or 'FILE.py:NAME' for one that FILE.py registers.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory for record.json (must not hold one).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Offline data arrays / text (see workloads).")
_WORKLOAD_ARGS = flags.DEFINE_string(
    "workload_args", "", "Workload constructor arguments as Python literals, e.g. "
    "'image_size=64,stage_sizes=(1,1)' (recorded with the trial).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 for a multi-process data-parallel "
    "trial, or 'auto' to take it from the cluster (Slurm, Open MPI, Cloud TPU). "
    "Unset: a single process.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Number of processes (with --coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "This process's index, 0..num_processes-1 "
                                   "(with --coordinator_address).")
def _load_optimizer_file(argv: list[str]) -> None:
  """Run an --optimizer=FILE.py:NAME file before the flags are defined: it
  registers NAME, and config_flags makes --config.hparams.* overrides from the
  registry when --config is defined."""
  for arg in argv[1:]:
    if arg.startswith("--optimizer=") and ".py:" in arg:
      try:
        optimizers.load(arg.split("=", 1)[1])
      except optimizers.OptimizerError as e:
        sys.exit(f"error: {e}")


def _config_error(e: BaseException, argv: list[str]) -> str:
  """One line for a --config.<path> that the trial config does not have,
  naming the flag that was meant where there is one."""
  overridden = [a[len("--config."):].split("=", 1)[0] for a in argv[1:]
                if a.startswith("--config.")]
  path = config_lib.refused_override(overridden, config_lib.missing_field(e),
                                     config_lib.trial_config())
  meant = config_lib.train_flag_meant(path)
  what = ("setting or hyperparameter" if len(path) == 1 else
          "optimizer or schedule hyperparameter" if path[0] == "hparams" else "field")
  return (f"error: --config.{'.'.join(path)}: bench.train has no {what} {path[-1]!r}"
          + (f"; did you mean {meant}?" if meant else ""))


_load_optimizer_file(sys.argv)
try:  # config_flags applies the --config.x=y overrides of sys.argv here, at definition
  _CONFIG = config_flags.DEFINE_config_dict("config", config_lib.trial_config(),
                                            "Trial settings; override with --config.x=y.")
except (AttributeError, KeyError) as _e:
  sys.exit(_config_error(_e, sys.argv))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:  # libraries' INFO logs (orbax, jax) drown progress
    logging.set_verbosity(logging.WARNING)
  c = _CONFIG.value
  interrupts.on_stop(lambda e: (
      f"{e.name}: the trial stopped before its end and nothing was recorded; the same "
      "command runs it again" + (", from its last checkpoint" if _OUTPUT_DIR.value else "")))
  _start_processes()
  primary = parallel.is_primary()
  say = (lambda s: print(s, flush=True)) if primary else (lambda s: None)
  try:
    settings = config_lib.trial_settings(c, data_dir=_DATA_DIR.value,
                                         workload_args=_WORKLOAD_ARGS.value or None)
  except SettingsError as e:
    sys.exit(f"error: {e}")
  try:
    optimizer = optimizers.load(_OPTIMIZER.value)
  except optimizers.OptimizerError as e:
    sys.exit(f"error: {e}")
  spec = trial.TrialSpec(workload=_WORKLOAD.value, optimizer=optimizer,
                         hparams=config_lib.set_hparams(c), seed=c.seed, settings=settings)
  try:
    prepared = trial.prepare(spec)
    out = None
    if _OUTPUT_DIR.value:
      out = store.check_writable(_OUTPUT_DIR.value)
      if store.has_record(out):
        raise trial.ConfigError(f"{out / store.RECORD} exists; choose another --output_dir "
                                "(records are never overwritten)")
    lc = prepared.settings
    try:
      parallel.check_batch_size(lc.batch_size, parallel.mesh())
    except ValueError as e:
      raise trial.ConfigError(str(e)) from None
    say(f"{prepared.workload.name} ({prepared.workload.goal}) | {spec.optimizer} "
        f"{prepared.hparams} | batch {lc.batch_size}, {lc.train_steps} steps, eval every "
        f"{lc.eval_every}, seed {spec.seed}")
    rec = trial.run(prepared, log=say,
                    checkpoint_dir=str(out / "checkpoint") if out is not None else None,
                    events_dir=str(out / "events") if out is not None and primary else None)
  except (trial.ConfigError, store.StoreError, workloads.DataError) as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # the environment: disk full, permissions, a lost mount
    interrupts.finish(f"error: {interrupts.describe(e)}; nothing was recorded, and the same "
                      "command resumes the trial once that is fixed", 1)
  if not primary:  # process 0 reports and writes
    if rec["status"] == "failed":
      sys.exit(f"error: {rec['status_reason']}")
    return
  best = rec["best"] or {}
  metric = f"val/{prepared.workload.goal.metric}"
  print(f"status {rec['status']}{' (' + rec['status_reason'] + ')' if rec['status_reason'] else ''}"
        f" | best {metric} {best.get(metric, float('nan')):.4g} at step {best.get('step')}"
        f" | goal reached at step {rec['goal_step']} | {rec['steps_per_sec']:.1f} steps/s")
  if out is not None:
    interrupts.check()  # after a signal nothing is recorded
    try:
      store.write_json_atomic(out / store.RECORD, rec)
    except OSError as e:
      interrupts.finish(f"error: {interrupts.describe(e)}; the trial was not recorded and the "
                        "same command runs it again", 1)
    print(f"wrote {out / store.RECORD}")
  if rec["status"] == "failed":
    sys.exit(1)


def _start_processes() -> None:
  """Join the multi-process job named by the flags, or fail with one line."""
  address, n, i = _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
  if address is None:
    if n not in (None, 1) or i not in (None, 0):
      sys.exit("error: --num_processes/--process_id need --coordinator_address")
    return
  if address != "auto":
    if n is None or i is None or n < 1 or not 0 <= i < n:
      sys.exit("error: --coordinator_address=HOST:PORT needs --num_processes=N >= 1 and "
               f"--process_id in [0, N), got {n} and {i}")
  parallel.initialize(address, n, i)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with its errors as one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit("error: " + config_lib.flag_error(str(e).splitlines()[0], config_lib.flag_meant))
  except (AttributeError, KeyError) as e:  # --config.<field> that does not exist
    sys.exit(_config_error(e, argv))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
