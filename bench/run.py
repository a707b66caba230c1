"""Run every study of an experiment and store its trials.

  python -m bench.run --config=protocols/experiments/batch_scaling.py:mnist1d_mlp,cpu \
      --output_dir=runs/bs --config.num_trials=8

The config file is the experiment: any recipe file (protocols/experiments/ has
the shipped ones) with get_config(arg) (a ConfigDict: override any field with
--config.x=y, trial settings with --config.settings.x=y) and studies(config),
which lists its studies as plain data. Re-running on the same --output_dir skips
finished trials and reruns the ones whose process died. `--shard=i/n` runs
trials with index % n == i, so n copies (Slurm array, Kubernetes indexed job)
share one results directory; `--executor=processes --num_workers=k` does that
with k local processes. Every error of the input is one `error:` line before any
compute; an error of the environment (OSError: disk full, permissions, a lost
mount) stops the run in one line naming the OS's cause and the path, with
nothing recorded for the running trials; SIGINT / SIGTERM stop it at any moment
within a few seconds with one line (exit 130 / 143; analysis/interrupts.py).
Rerunning the same command resumes in every case (README: "Faults"). Paths in
the recipe file are relative to it; paths on the command line to the current
directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from analysis import interrupts
from bench import experiment, packing, parallel, recipe as recipe_lib, trial

_CONFIG = recipe_lib.recipe_flag("config", "Experiment recipe file[:args].")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Results directory (shared by all shards).")
_SHARD = flags.DEFINE_string("shard", "0/1", "i/n: run the trials with index % n == i.")
_EXECUTOR = flags.DEFINE_enum("executor", "sequential", ["sequential", "processes", "ray"],
                              "sequential: this process; processes: --num_workers local shards; "
                              "ray: one Ray task per trial (pip install -e '.[ray]').")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", None, "Ray cluster address (host:port or "
                                   "'auto'); default: start a local Ray for this run.")
_CPUS_PER_TRIAL = flags.DEFINE_float("cpus_per_trial", 1.0, "Ray CPUs each trial task asks for.")
_GPUS_PER_TRIAL = flags.DEFINE_float("gpus_per_trial", 0.0, "Ray GPUs each trial task asks for.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Processes for --executor=processes.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Validate and list studies and points; train nothing.")
_TRIAL_PROGRESS = flags.DEFINE_bool("trial_progress", False, "Print every eval of every trial.")
_PACK = flags.DEFINE_string(
    "pack", None, "Trials per compiled program: 'off' (one at a time), K (up to K trials of a "
    "study as the lanes of one program), or 'auto' (K chosen by a timed probe per workload, "
    "batch size and device, remembered; never packs where packing is slower). Default: the "
    "recipe's `pack` field, else auto.")
flags.mark_flags_as_required(["config", "output_dir"])


def parse_shard(text: str) -> tuple[int, int]:
  try:
    i, n = (int(x) for x in text.split("/"))
  except ValueError:
    raise trial.ConfigError(f"--shard must look like i/n, got {text!r}") from None
  if not (n >= 1 and 0 <= i < n):
    raise trial.ConfigError(f"--shard {text}: need 0 <= i < n")
  return i, n


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:  # libraries' INFO logs (orbax, jax) drown progress
    logging.set_verbosity(logging.WARNING)
  try:
    shard = parse_shard(_SHARD.value)
    config = _CONFIG.value
    try:
      pack = packing.parse(_PACK.value if _PACK.value is not None else config.get("pack", "auto"))
    except ValueError as e:
      raise trial.ConfigError(f"--pack: {e}") from None
    recipe = recipe_lib.load_recipe(config_flags.get_config_filename(flags.FLAGS["config"]))
    recipe_lib.rebase_paths(config, recipe_lib.recipe_dir(recipe), recipe_lib.overridden(sys.argv))
    exp = experiment.prepare(config, recipe, _OUTPUT_DIR.value, shard=shard, pack=pack,
                             trial_log=print if _TRIAL_PROGRESS.value else None)
    if not _DRY_RUN.value:
      experiment.create_store(exp)
  except experiment.INPUT_ERRORS as e:
    sys.exit(f"error: {e}")
  print(f"{exp.name}: {len(exp.runners)} studies, {exp.num_trials} trials -> {exp.out}",
        flush=True)
  if _DRY_RUN.value:
    for r, ps in zip(exp.runners, exp.prepared):
      print(f"{r.study.study_id}: {r.num_trials} trials, sampler {r.study.protocol.sampler.name}")
      for p in ps[:3]:
        print(f"  t{p.spec.trial_index:04d} {p.spec.optimizer} {p.hparams} bs={p.settings.batch_size}")
    return
  if _EXECUTOR.value == "processes" and shard == (0, 1):
    sys.exit(_run_processes(_NUM_WORKERS.value))
  if _EXECUTOR.value == "ray":
    try:
      experiment.run_on_ray(exp, address=_RAY_ADDRESS.value, cpus_per_trial=_CPUS_PER_TRIAL.value,
                            gpus_per_trial=_GPUS_PER_TRIAL.value)
    except ImportError as e:
      sys.exit(f"error: --executor=ray needs Ray: pip install -e '.[ray]' ({e})")
    return
  t0 = time.perf_counter()

  def after_study(i, r, counts, seconds):
    del i, seconds
    print(f"[{r.study.study_id}] ran {counts['ran']}, already done {counts['skipped']}, "
          f"running elsewhere {counts['busy']}", flush=True)
  experiment.run(exp, after_study)
  print(f"done in {time.perf_counter() - t0:.0f}s: results in {exp.out}")


def _run_processes(n: int) -> int:
  """n copies of this command, each with --shard=i/n and devices of its own
  (parallel.assign: equal shares of this machine's devices), on this machine."""
  if n < 1:
    print("error: --num_workers must be >= 1", file=sys.stderr)
    return 1
  count, backend = _local_devices()
  base = [a for a in sys.argv[1:] if not a.startswith(("--executor", "--num_workers", "--shard"))]
  procs = []
  for i in range(n):
    ids = parallel.assign(i, n, count)
    env = dict(os.environ)
    if backend in ("gpu", "cuda", "rocm"):  # each worker's JAX sees (and allocates) its own
      visible = os.environ.get("CUDA_VISIBLE_DEVICES")
      names = visible.split(",") if visible else [str(d) for d in range(count)]
      env["CUDA_VISIBLE_DEVICES"] = ",".join(names[d] for d in ids)
    else:
      env[parallel.DEVICES_ENV] = ",".join(map(str, ids))
    print(f"worker {i}: shard {i}/{n}, {backend} devices {ids}", flush=True)
    procs.append(subprocess.Popen([sys.executable, "-m", "bench.run", *base, f"--shard={i}/{n}"],
                                  env=env))
  try:
    return max(p.wait() for p in procs)
  except interrupts.Interrupted as e:  # forward it, and wait: no worker outlives this process
    interrupts.stopping()
    interrupts.extend(interrupts.GRACE_SEC + 10)  # the workers take up to GRACE_SEC each
    for p in procs:
      if p.poll() is None:
        p.send_signal(e.signum)
    deadline = time.monotonic() + interrupts.GRACE_SEC + 5
    for p in procs:
      try:
        p.wait(timeout=max(deadline - time.monotonic(), 0.1))
      except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    interrupts.finish(f"{e.name}: the {n} workers stopped; run the same command again to "
                      "resume", e.code)


def _local_devices() -> tuple[int, str]:
  """(device count, backend) of this machine, asked of a short-lived process so
  that this one never holds accelerator memory its workers need."""
  code = "import jax; print(jax.local_device_count(), jax.default_backend())"
  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  env.pop(parallel.DEVICES_ENV, None)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
  try:
    count, backend = out.stdout.split()
    return int(count), backend
  except ValueError:
    return 1, "cpu"


if __name__ == "__main__":
  app.run(main, flags_parser=recipe_lib.parse_flags)
