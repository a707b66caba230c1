"""The experiment driver: every check, then every study of a recipe, run and stored.

bench.run (the command line), scripts/demo.py and the executors all go through
here, so they share one order of events: `prepare` checks the recipe's studies,
the store and every trial's settings and writes nothing; `create_store` then
writes study.json per study and experiment.json; `run` runs the studies one after the
other in this process, or hands them to Ray, and turns a signal, a data error or
an error of the environment into one line (analysis/interrupts.py).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from etils import epath

import protocols
import workloads
from analysis import interrupts
from bench import recipe as recipe_lib, runner as runner_lib, store, trial

# Errors of the input: one `error:` line, before any compute.
INPUT_ERRORS = (trial.ConfigError, protocols.ProtocolError, store.StoreError,
                workloads.UnknownWorkloadError, workloads.DataError)

AfterStudy = Callable[[int, runner_lib.StudyRunner, dict, float], None]


@dataclasses.dataclass
class Experiment:
  """A recipe's studies, checked, with the trials each will run."""
  name: str
  config: Any                                  # the recipe's ConfigDict, overrides applied
  out: epath.Path
  runners: list[runner_lib.StudyRunner]
  prepared: list[list[trial.PreparedTrial]]

  @property
  def num_trials(self) -> int:
    return sum(r.num_trials for r in self.runners)


def prepare(config: Any, recipe: Any, output_dir: epath.PathLike, *,
            shard: tuple[int, int] = (0, 1), pack: str | int = "auto",
            log: Callable[[str], None] = print,
            trial_log: Callable[[str], None] | None = None) -> Experiment:
  """Check everything and write nothing: raises one of INPUT_ERRORS on any
  problem of the input (create_store then writes the store)."""
  studies = recipe_lib.expand(config, recipe)
  out = epath.Path(output_dir)
  runners = [runner_lib.StudyRunner(s, out, shard=shard, pack=pack, log=log, trial_log=trial_log)
             for s in studies]
  prepared = [r.prepare(write=False) for r in runners]  # every check, nothing written
  name = studies[0].experiment if studies else recipe.__name__
  _check_experiment(out, name)
  return Experiment(name, config, out, runners, prepared)


def create_store(exp: Experiment) -> None:
  """The results folder, each study's study.json and experiment.json (kept if
  there); StoreError (one line) if the folder cannot be written."""
  exp.out = store.check_writable(exp.out)
  for r in exp.runners:
    r.write_metadata()
  if not (exp.out / "experiment.json").exists():
    store.write_json_atomic(exp.out / "experiment.json", exp.config.to_dict())


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


def run(exp: Experiment, after_study: AfterStudy | None = None) -> list[dict[str, int]]:
  """Run the studies one after the other in this process; after each, call
  after_study(index, runner, counts, seconds). Stops in one line (exit 130 / 143
  on a signal, 1 on a data or environment error) with every finished trial
  recorded; the same command resumes."""
  done: list[dict[str, int]] = []

  def stopped(e: interrupts.Interrupted) -> str:
    n = sum(c["ran"] for c in done)
    return (f"{e.name}: stopped after {n} trial{'' if n == 1 else 's'} finished in this run "
            "(all recorded); the running ones were not recorded and rerun, from their "
            "checkpoints if any, when you run the same command again")
  interrupts.on_stop(stopped)
  try:
    for i, (r, ps) in enumerate(zip(exp.runners, exp.prepared)):
      t0 = time.perf_counter()
      done.append(runner_lib.new_counts())
      r.run(ps, done[-1])
      if after_study is not None:
        after_study(i, r, done[-1], time.perf_counter() - t0)
  except workloads.DataError as e:
    interrupts.finish(f"error: {e}", 1)
  except interrupts.Interrupted as e:
    interrupts.stop(e)
  except OSError as e:  # the environment: disk full, permissions, a lost mount
    interrupts.finish(f"error: {interrupts.describe(e)}; the running trials were not recorded "
                      "and resume when you run the same command again", 1)
  return done


def run_on_ray(exp: Experiment, *, address: str | None, cpus_per_trial: float,
               gpus_per_trial: float) -> None:
  """The studies as Ray tasks (bench.ray_executor); ImportError without Ray."""
  from bench import ray_executor  # pylint: disable=g-import-not-at-top  (optional extra)
  ray_executor.run(exp.runners, str(exp.out), address=address, cpus_per_trial=cpus_per_trial,
                   gpus_per_trial=gpus_per_trial)
