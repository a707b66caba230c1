"""One trial: a validated spec in, a trial record (bench/record.py) out."""
from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import platform
import subprocess
import time
import traceback
from typing import Any, Callable, Mapping

import jax

import workloads
from bench import compile_cache, events, loop, optimizers, record, schedules


class ConfigError(ValueError):
  """Bad input found before any compute; the message is one line."""


@dataclasses.dataclass(frozen=True)
class TrialSpec:
  workload: str
  optimizer: str
  hparams: Mapping[str, Any]
  batch_size: int | None = None
  train_steps: int | None = None
  eval_every: int | None = None
  seed: int = 0
  data_dir: str | None = None
  workload_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  dtype: str = "float32"
  max_steps_per_dispatch: int = 500
  divergence_factor: float = 100.0
  eval_test: bool = True
  checkpoint_every_sec: float = 600.0   # mid-trial checkpoints (see bench/checkpoint.py)
  # Identity within a study (empty for a lone `bench.train` run).
  trial_id: str = "trial"
  study_id: str = ""
  experiment: str = ""
  protocol_name: str = ""
  protocol_hash: str = ""
  trial_index: int = 0
  scientific: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PreparedTrial:
  spec: TrialSpec
  workload: workloads.Workload
  hparams: dict[str, Any]
  loop_config: loop.LoopConfig


def prepare(spec: TrialSpec) -> PreparedTrial:
  """Resolve names and check values without touching data or devices."""
  try:
    cls = workloads.workload_class(spec.workload)
    workload = cls(data_dir=spec.data_dir or None, dtype=spec.dtype, **spec.workload_args)
  except (workloads.UnknownWorkloadError, ValueError) as e:
    raise ConfigError(str(e)) from None
  except TypeError as e:  # an argument the workload's constructor does not take
    raise ConfigError(f"workload {spec.workload!r}: {e}") from None
  pick = lambda given, default: default if given is None else given
  batch_size = pick(spec.batch_size, workload.default_batch_size)
  train_steps = pick(spec.train_steps, workload.default_train_steps)
  eval_every = pick(spec.eval_every, min(workload.default_eval_every, train_steps))
  for name, v in (("batch_size", batch_size), ("train_steps", train_steps),
                  ("eval_every", eval_every), ("max_steps_per_dispatch", spec.max_steps_per_dispatch)):
    if not isinstance(v, int) or v < 1:
      raise ConfigError(f"{name} must be a positive integer, got {v!r}")
  try:
    hparams = optimizers.resolve_hparams(spec.optimizer, spec.hparams)
    optimizers.build(spec.optimizer, hparams, train_steps=train_steps)
  except (optimizers.OptimizerError, schedules.ScheduleError) as e:
    raise ConfigError(str(e)) from None
  cfg = loop.LoopConfig(batch_size=batch_size, train_steps=train_steps, eval_every=eval_every,
                        seed=spec.seed, max_steps_per_dispatch=spec.max_steps_per_dispatch,
                        divergence_factor=spec.divergence_factor, eval_test=spec.eval_test,
                        checkpoint_every_sec=spec.checkpoint_every_sec)
  return PreparedTrial(spec, workload, hparams, cfg)


def run(prepared: PreparedTrial, log: Callable[[str], None] = print,
        checkpoint_dir: str | None = None, events_dir: str | None = None) -> dict[str, Any]:
  """Train and return the record. Divergence and errors become a status, not
  an exception, so one bad trial never takes down its study (data errors,
  which would fail every trial alike, still raise). With `checkpoint_dir`, a
  long trial saves its state there and a rerun resumes from it; with
  `events_dir`, its eval curve is also written as TensorBoard events."""
  compile_cache.enable()
  loop_config = dataclasses.replace(prepared.loop_config, checkpoint_dir=checkpoint_dir)
  with events.EventWriter(events_dir, prepared.spec, prepared.hparams) as writer:
    return _run(prepared, loop_config, log, writer)


def _run(prepared: PreparedTrial, loop_config: loop.LoopConfig, log: Callable[[str], None],
         writer: events.EventWriter) -> dict[str, Any]:
  spec, w = prepared.spec, prepared.workload
  started = _now()
  t0 = time.perf_counter()
  make_tx, values = optimizers.factory(spec.optimizer, prepared.hparams,
                                       train_steps=prepared.loop_config.train_steps)
  try:
    result = loop.run_loop(
        w, make_tx, values, loop_config, log=log, on_eval=writer.write,
        eval_params=lambda p, s: optimizers.eval_params(spec.optimizer, p, s))
    status, reason = result.status, result.status_reason
    curve, diverged_step = result.curve, result.diverged_step
    sps, train_time = result.steps_per_sec, result.train_time_sec
  except workloads.DataError:
    raise
  except Exception as e:  # noqa: BLE001 - recorded, with its traceback tail
    log(traceback.format_exc())
    status, reason = "failed", f"{type(e).__name__}: {e}".splitlines()[0][:500]
    curve, diverged_step, sps, train_time = [], None, float("nan"), 0.0
  metric = w.goal.metric
  return {
      "schema_version": record.SCHEMA_VERSION,
      "trial_id": spec.trial_id, "study_id": spec.study_id, "experiment": spec.experiment,
      "protocol_name": spec.protocol_name, "protocol_hash": spec.protocol_hash,
      "trial_index": spec.trial_index,
      "workload": {**w.describe(), "args": dict(spec.workload_args),
                   "goal": {"metric": metric, "threshold": w.goal.threshold}},
      "optimizer": spec.optimizer, "hparams": prepared.hparams,
      "scientific": dict(spec.scientific),
      "batch_size": prepared.loop_config.batch_size,
      "train_steps": prepared.loop_config.train_steps,
      "eval_every": prepared.loop_config.eval_every, "seed": spec.seed,
      "status": status, "status_reason": reason, "diverged_step": diverged_step,
      "curve": curve,
      "best": record.best_row(curve, metric),
      "goal_step": record.goal_step(curve, metric, w.goal.threshold),
      "steps_per_sec": sps, "train_time_sec": train_time,
      "wall_time_sec": time.perf_counter() - t0,
      "started_at": started, "finished_at": _now(),
      "code_version": code_version(), "backend": jax.default_backend(),
      "devices": [d.device_kind for d in jax.devices()],
      "num_processes": jax.process_count(),
      "host": platform.node(),
  }


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
  """The harness's git commit (+dirty), or 'unknown' outside a checkout."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip() or "unknown"
  except (OSError, subprocess.SubprocessError):
    return "unknown"
