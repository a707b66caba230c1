"""--executor=ray: every pack of trials a Ray task; the store is the only shared state.

Each task rebuilds its study's trials from (study, indices) and runs them
exactly as a shard would (locks, run, atomic records), so a task that Ray
retries after its worker died finds the records or reruns the trials
(resuming from their checkpoints). A task holds one pack: K indices for
--pack=K, one for off, and up to AUTO_CHUNK for auto (the task's own probe
then decides how to pack them on its device). Tasks ask for `cpus_per_trial`
/ `gpus_per_trial` as resources, per task.
The best point's seed reruns of a study are one task, submitted once its
search has finished; adaptive (bayesian) studies run their trials one task at a
time, since each point depends on the finished ones. Ray is imported only here.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from bench import runner as runner_lib, study as study_lib

MAX_RETRIES = 5
AUTO_CHUNK = 16


def _trial_task(study: study_lib.Study, output_dir: str, indices: Sequence[int],
                pack: str | int) -> int:
  """Run search trials `indices` unless finished or running elsewhere; how many ran."""
  runner = runner_lib.StudyRunner(study, output_dir, log=lambda m: None, pack=pack)
  counts = runner_lib.new_counts()
  if runner.adaptive:
    for i in indices:
      runner.run_one(runner.adaptive_trial(i), counts, time.perf_counter())
  else:
    prepared = runner.prepare(write=False)
    runner.run_trials([prepared[i] for i in indices], counts, time.perf_counter())
  return counts["ran"]


def chunks(n: int, pack: str | int) -> list[list[int]]:
  """Trial indices 0..n-1 in the packs one task each runs."""
  size = AUTO_CHUNK if pack == "auto" else int(pack)
  return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def _reruns_task(study: study_lib.Study, output_dir: str, pack: str | int) -> int:
  runner = runner_lib.StudyRunner(study, output_dir, log=lambda m: None, pack=pack)
  counts = runner_lib.new_counts()
  runner.rerun_best(counts, time.perf_counter())
  return counts["ran"]


def run(runners: Sequence[runner_lib.StudyRunner], output_dir: str, *, address: str | None,
        cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
        log: Callable[[str], None] = print) -> None:
  import ray  # optional extra: pip install -e '.[ray]'

  ray.init(address=address or None, log_to_driver=False)
  opts = dict(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=MAX_RETRIES)
  trial_task = ray.remote(**opts)(_trial_task)
  reruns_task = ray.remote(**opts)(_reruns_task)
  try:
    pending, ran = {}, {}
    for r in runners:
      sid = r.study.study_id
      if r.adaptive:  # sequential: each point needs the finished ones
        ran[sid] = sum(ray.get(trial_task.remote(r.study, output_dir, [i], r.pack))
                       for i in range(r.num_trials))
        pending[sid] = []
      else:
        ran[sid] = 0
        pending[sid] = [trial_task.remote(r.study, output_dir, c, r.pack)
                        for c in chunks(r.num_trials, r.pack)]
    for r in runners:
      sid = r.study.study_id
      n = ran[sid] + sum(ray.get(pending[sid]))
      if r.num_reruns:
        n += ray.get(reruns_task.remote(r.study, output_dir, r.pack))
      log(f"[{sid}] ran {n} on ray")
  finally:
    ray.shutdown()
