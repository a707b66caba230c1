"""--executor=ray: every trial a Ray task; the results store is the only shared state.

Each task rebuilds its study's trial from (study, index) and runs it exactly
as a shard would (lock, run, atomic record), so a task that Ray retries after
its worker died either finds the record or reruns the trial (resuming from its
checkpoint). Tasks ask for `cpus_per_trial` / `gpus_per_trial` as resources.
The best point's seed reruns of a study are one task, submitted once its
search has finished; adaptive (bayesian) studies run their trials one task at a
time, since each point depends on the finished ones. Ray is imported only here.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from bench import study as study_lib

MAX_RETRIES = 5


def _trial_task(study: study_lib.Study, output_dir: str, index: int) -> int:
  """Run search trial `index` unless finished or running elsewhere; 1 if it ran."""
  runner = study_lib.StudyRunner(study, output_dir, log=lambda m: None)
  p = (runner.adaptive_trial(index) if runner.adaptive
       else runner.prepare(write=False)[index])
  counts = study_lib.new_counts()
  runner.run_one(p, counts, time.perf_counter())
  return counts["ran"]


def _reruns_task(study: study_lib.Study, output_dir: str) -> int:
  runner = study_lib.StudyRunner(study, output_dir, log=lambda m: None)
  counts = study_lib.new_counts()
  runner.rerun_best(counts, time.perf_counter())
  return counts["ran"]


def run(runners: Sequence[study_lib.StudyRunner], output_dir: str, *, address: str | None,
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
        ran[sid] = sum(ray.get(trial_task.remote(r.study, output_dir, i))
                       for i in range(r.num_trials))
        pending[sid] = []
      else:
        ran[sid] = 0
        pending[sid] = [trial_task.remote(r.study, output_dir, i) for i in range(r.num_trials)]
    for r in runners:
      sid = r.study.study_id
      n = ran[sid] + sum(ray.get(pending[sid]))
      if r.num_reruns:
        n += ray.get(reruns_task.remote(r.study, output_dir))
      log(f"[{sid}] ran {n} on ray")
  finally:
    ray.shutdown()
