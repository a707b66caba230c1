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
import re
import subprocess
import sys
import time

from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from analysis import interrupts
import protocols
import workloads
from bench import config as config_lib
from bench import packing, parallel, store, study as study_lib, trial

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment recipe file[:args].")
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
    recipe = study_lib.load_recipe(config_flags.get_config_filename(flags.FLAGS["config"]))
    study_lib.rebase_paths(config, study_lib.recipe_dir(recipe), _overridden(sys.argv))
    studies = study_lib.expand(config, recipe)
    out = epath.Path(_OUTPUT_DIR.value)
    runners = [study_lib.StudyRunner(s, out, shard=shard, pack=pack,
                                     trial_log=print if _TRIAL_PROGRESS.value else None)
               for s in studies]
    prepared = [r.prepare(write=False) for r in runners]  # every check, nothing written
    experiment = studies[0].experiment if studies else recipe.__name__
    _check_experiment(out, experiment)
    if not _DRY_RUN.value:
      out = store.check_writable(out)
      for r in runners:
        r.write_metadata()
      if not (out / "experiment.json").exists():
        store.write_json_atomic(out / "experiment.json", config.to_dict())
  except (trial.ConfigError, protocols.ProtocolError, store.StoreError,
          workloads.UnknownWorkloadError, workloads.DataError) as e:
    sys.exit(f"error: {e}")
  total = sum(r.num_trials for r in runners)
  print(f"{experiment}: {len(studies)} studies, {total} trials -> {out}", flush=True)
  if _DRY_RUN.value:
    for r, ps in zip(runners, prepared):
      print(f"{r.study.study_id}: {r.num_trials} trials, sampler {r.study.protocol.sampler.name}")
      for p in ps[:3]:
        print(f"  t{p.spec.trial_index:04d} {p.spec.optimizer} {p.hparams} bs={p.settings.batch_size}")
    return
  if _EXECUTOR.value == "processes" and shard == (0, 1):
    sys.exit(_run_processes(_NUM_WORKERS.value))
  if _EXECUTOR.value == "ray":
    try:
      from bench import ray_executor
      ray_executor.run(runners, str(out), address=_RAY_ADDRESS.value,
                       cpus_per_trial=_CPUS_PER_TRIAL.value, gpus_per_trial=_GPUS_PER_TRIAL.value)
    except ImportError as e:
      sys.exit(f"error: --executor=ray needs Ray: pip install -e '.[ray]' ({e})")
    return
  t0 = time.perf_counter()
  done = []

  def stopped(e: interrupts.Interrupted) -> str:
    n = sum(c["ran"] for c in done)
    return (f"{e.name}: stopped after {n} trial{'' if n == 1 else 's'} finished in this run "
            "(all recorded); the running ones were not recorded and rerun, from their "
            "checkpoints if any, when you run the same command again")
  interrupts.on_stop(stopped)
  try:
    for r, ps in zip(runners, prepared):
      done.append(study_lib.new_counts())
      r.run(ps, done[-1])
      print(f"[{r.study.study_id}] ran {done[-1]['ran']}, already done "
            f"{done[-1]['skipped']}, running elsewhere {done[-1]['busy']}", flush=True)
  except workloads.DataError as e:
    interrupts.finish(f"error: {e}", 1)
  except interrupts.Interrupted as e:
    interrupts.stop(e)
  except OSError as e:  # the environment: disk full, permissions, a lost mount
    interrupts.finish(f"error: {interrupts.describe(e)}; the running trials were not recorded "
                      "and resume when you run the same command again", 1)
  print(f"done in {time.perf_counter() - t0:.0f}s: results in {out}")


def _check_experiment(out: epath.Path, experiment: str) -> None:
  """One store, one experiment: experiment.json names the one it holds."""
  path = out / "experiment.json"
  if not path.exists():
    return
  try:
    held = store.read_json(path).get("experiment")
  except (OSError, ValueError, AttributeError):
    return
  if held and held != experiment:
    raise store.StoreError(f"{out} holds experiment {held!r} (experiment.json), not "
                           f"{experiment!r}; use another --output_dir")


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


def _overridden(argv: list[str]) -> list[str]:
  """The config fields set on the command line ('num_trials', 'settings.dtype')."""
  return [a[len("--config."):].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]


def _recipe_config(argv: list[str]):
  """The recipe's config as get_config returns it (None if it cannot be had)."""
  for arg in argv[1:]:
    m = re.match(r"--config=(.*?\.py)(?::(.*))?$", arg)
    if m:
      try:
        module = study_lib.load_recipe(m.group(1))
        return module.get_config(m.group(2)) if m.group(2) is not None else module.get_config()
      except Exception:  # noqa: BLE001 - only used to word a hint
        return None
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with the recipe's folder importable (so a recipe can
  import the workload or optimizer files beside it) and every error of the
  flags or of loading the recipe file as one line instead of a traceback,
  naming the flag that was meant where there is one."""
  for arg in argv[1:]:
    if arg.startswith("--config="):
      path = re.sub(r"(\.py):.*$", r"\1", arg.split("=", 1)[1])
      if not os.path.isfile(path):
        sys.exit(f"error: --config: no recipe file {path}")
      folder = os.path.dirname(os.path.abspath(path))
      if folder not in sys.path:
        sys.path.insert(0, folder)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit("error: " + config_lib.flag_error(
        _last_line(e), lambda name: config_lib.flag_meant(name, _recipe_config(argv))))
  except (AttributeError, KeyError) as e:  # --config.<field> the recipe's config lacks
    # ml_collections: KeyError("'num_trails'\nDid you mean \"num_trials\" ...?")
    config = _recipe_config(argv)
    path = config_lib.refused_override(_overridden(argv), config_lib.missing_field(e), config)
    flag = "--config." + ".".join(path)
    where = ("the recipe's trial settings have" if path[:1] == ["settings"] and len(path) == 2
             else "the recipe's config has")
    meant = config_lib.recipe_flag_meant(path, config) if config is not None else None
    note = config_lib.recipe_flag_note(path)
    sys.exit(f"error: {flag}: {note or f'{where} no field {path[-1]!r}'}"
             + (f"; did you mean {meant}?" if meant else ""))
  except Exception as e:  # noqa: BLE001 - the recipe file raised while loading
    sys.exit(f"error: --config: {_last_line(e)}")


def _last_line(e: BaseException) -> str:
  """The line that says what went wrong: config_flags wraps the recipe's own
  exception, traceback and all, in its message; its last line is the cause."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  if len(lines) > 1 and "Traceback" in str(e):
    return f"{lines[0].split(':')[0]}: {lines[-1]}"
  return lines[0] if lines else type(e).__name__


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
