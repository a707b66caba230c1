"""One trial: a validated spec in, a trial record (analysis/record.py) out."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import os
import platform
import subprocess
import time
import traceback
from typing import Any, Callable, Mapping, Sequence

import jax

import workloads
from analysis import record
from bench import compile_cache, events, loop, optimizers, parallel, program, schedules
from bench.settings import SettingsError, TrialSettings


class ConfigError(ValueError):
  """Bad input found before any compute; the message is one line."""


@dataclasses.dataclass(frozen=True)
class TrialSpec:
  """What to train: workload, update rule, seed and settings (bench/settings.py),
  and where the trial sits in its study (empty for a lone `bench.train` run)."""
  workload: str
  optimizer: str
  hparams: Mapping[str, Any]
  seed: int = 0
  settings: TrialSettings = TrialSettings()
  trial_id: str = "trial"
  study_id: str = ""
  experiment: str = ""
  protocol_name: str = ""
  protocol_hash: str = ""
  trial_index: int = 0
  rerun: int = 0      # j >= 1: a seed rerun of trial `trial_index`'s point
  scientific: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def spec(workload: str, optimizer: str, hparams: Mapping[str, Any], seed: int = 0,
         **settings: Any) -> TrialSpec:
  """A lone trial's spec with settings given by name (tests, benchmarks, scripts)."""
  return TrialSpec(workload, optimizer, hparams, seed, TrialSettings(**settings))


@dataclasses.dataclass
class PreparedTrial:
  spec: TrialSpec
  workload: workloads.Workload
  hparams: dict[str, Any]
  settings: TrialSettings                      # resolved: every field concrete
  make_tx: Callable[[Mapping[str, Any]], Any]   # bench.optimizers.factory
  values: dict[str, Any]                        # its hyperparameter values

  def shape(self, lanes: int = 0) -> program.Shape:
    """The compiled program this trial runs in (solo: lanes 0; a pack of K)."""
    s = self.spec
    return program.Shape(
        workload_key=_workload_key(s), optimizer_key=optimizers.program_key(s.optimizer, self.hparams),
        batch_size=self.settings.batch_size, eval_test=self.settings.eval_test, lanes=lanes,
        devices=tuple(d.id for d in parallel.mesh().devices.flat))

  def program(self, lanes: int = 0) -> program.Program:
    """This process's compiled program for the trial (solo, or a pack of `lanes`)."""
    return program.get(self.shape(lanes), self.workload, self.make_tx, self.values,
                       functools.partial(optimizers.eval_params, self.spec.optimizer))

  @property
  def pack_key(self) -> tuple:
    """Trials with equal keys can run as lanes of one pack."""
    return (self.shape(), self.settings)


_WORKLOADS: dict[str, workloads.Workload] = {}


def _workload_key(spec: TrialSpec) -> str:
  s = spec.settings.resolve()
  return program.workload_key(spec.workload, s.workload_kwargs, s.data_dir or None, s.dtype)


def _workload(spec: TrialSpec) -> workloads.Workload:
  """One instance per (workload, arguments, data, dtype) per process, so its
  data are read and put on the device once for every trial that uses it."""
  key = _workload_key(spec)
  if key not in _WORKLOADS:
    s = spec.settings.resolve()
    cls = workloads.workload_class(spec.workload)
    _WORKLOADS[key] = cls(data_dir=s.data_dir or None, dtype=s.dtype, **s.workload_kwargs)
  return _WORKLOADS[key]


def prepare(spec: TrialSpec) -> PreparedTrial:
  """Resolve names and check values without touching data or devices."""
  try:
    spec.settings.check()
    workload = _workload(spec)
    settings = spec.settings.resolve(workload)
    settings.check()
    _check_against(workload, settings)
  except (workloads.UnknownWorkloadError, SettingsError, ValueError) as e:
    raise ConfigError(str(e)) from None
  except TypeError as e:  # an argument the workload's constructor does not take
    raise ConfigError(f"workload {spec.workload!r}: {e}") from None
  try:
    hparams = optimizers.resolve_hparams(spec.optimizer, spec.hparams)
    make_tx, values = optimizers.factory(spec.optimizer, hparams,
                                         train_steps=settings.train_steps)
  except (optimizers.OptimizerError, schedules.ScheduleError) as e:
    raise ConfigError(str(e)) from None
  return PreparedTrial(spec, workload, hparams, settings, make_tx, values)


def _check_against(w: workloads.Workload, s: TrialSettings) -> None:
  """What the settings must satisfy for this workload (one-line ConfigError)."""
  if w.in_memory and s.batch_size > w.num_train_examples:
    raise ConfigError(f"batch_size {s.batch_size} exceeds the {w.num_train_examples} training "
                      f"examples of {w.name}")
  if s.eval_every > s.train_steps:
    raise ConfigError(f"eval_every {s.eval_every} exceeds train_steps {s.train_steps}: the "
                      "trial would be evaluated once, at its end (set eval_every <= train_steps)")


def run(prepared: PreparedTrial, log: Callable[[str], None] = print,
        checkpoint_dir: str | None = None, events_dir: str | None = None) -> dict[str, Any]:
  """Train one trial alone and return its record. Divergence and errors of the
  trial's own computation become a status, not an exception, so one bad trial
  never takes down its study. Data errors (which would fail every trial alike)
  and errors of the environment (any OSError: a full disk, a permission lost,
  a vanished mount, raised while saving checkpoints, events or the record)
  still raise, and nothing is recorded: the trial resumes when rerun. With
  `checkpoint_dir`, a long trial saves its state there and a rerun resumes
  from it; with `events_dir`, its eval curve is also written as TensorBoard
  events."""
  return run_pack([prepared], [log], [checkpoint_dir], [events_dir], packed=False)[0]


def run_pack(prepared: Sequence[PreparedTrial], logs: Sequence[Callable[[str], None]],
             checkpoint_dirs: Sequence[str | None], events_dirs: Sequence[str | None], *,
             packed: bool = True,
             on_record: Callable[[int, dict[str, Any]], None] = lambda i, rec: None
             ) -> list[dict[str, Any]]:
  """Train trials of one pack key as the lanes of one program (`packed`), or
  one solo trial; returns their records, each also given to `on_record` as
  soon as its lane ends. A lane's record is what its solo run would record
  (bench/program.py). If the pack itself fails (say, out of memory), its
  trials that have no record yet run one by one."""
  compile_cache.enable()
  keys = {p.pack_key for p in prepared}
  if len(keys) != 1 or (not packed and len(prepared) != 1):
    raise ValueError("a pack's trials must share one program and loop settings")
  first = prepared[0]
  started, t0 = _now(), time.perf_counter()
  records: list[dict[str, Any] | None] = [None] * len(prepared)
  lanes = len(prepared) if packed else 0

  def ended(i: int, result: loop.LoopResult) -> None:
    records[i] = _record(prepared[i], result, started, t0, len(prepared))
    try:
      on_record(i, records[i])
    except Exception as e:  # the caller's error (e.g. storing it), not the trial's
      raise _CallbackError() from e

  with contextlib.ExitStack() as stack:
    writers = [stack.enter_context(events.EventWriter(d, p.spec, p.hparams))
               for d, p in zip(events_dirs, prepared)]
    try:
      loop.run_lanes(first.program(lanes), [loop.Lane(p.spec.seed, p.values, c, log, w.write)
                            for p, c, log, w in zip(prepared, checkpoint_dirs, logs, writers)],
                     first.settings, on_end=ended)
    except (workloads.DataError, OSError):
      raise  # the data or the environment (disk full, a lost mount): not this trial's failure
    except _CallbackError as e:
      raise e.__cause__ from None
    except Exception as e:  # noqa: BLE001 - recorded, with its traceback tail
      if packed:
        logs[0](f"pack of {len(prepared)} failed ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else ''}); running its trials alone")
        for i, p in enumerate(prepared):
          if records[i] is None:
            records[i] = run(p, logs[i], checkpoint_dirs[i], events_dirs[i])
            on_record(i, records[i])
        return records
      logs[0](traceback.format_exc())
      reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
      ended(0, loop.LoopResult("failed", reason, [], None, float("nan"), 0.0))
  return records


class _CallbackError(Exception):
  """Wraps an exception raised by on_record, so it is not taken for the trial's."""


def _record(prepared: PreparedTrial, result: loop.LoopResult, started: str, t0: float,
            pack_size: int) -> dict[str, Any]:
  spec, w, cfg = prepared.spec, prepared.workload, prepared.settings
  metric = w.goal.metric
  return {
      "schema_version": record.SCHEMA_VERSION,
      "trial_id": spec.trial_id, "study_id": spec.study_id, "experiment": spec.experiment,
      "protocol_name": spec.protocol_name, "protocol_hash": spec.protocol_hash,
      "trial_index": spec.trial_index, "rerun": spec.rerun,
      "workload": {**w.describe(), "args": cfg.workload_kwargs,
                   "goal": {"metric": metric, "threshold": w.goal.threshold}},
      "optimizer": spec.optimizer, "hparams": prepared.hparams,
      "scientific": dict(spec.scientific),
      "batch_size": cfg.batch_size, "train_steps": cfg.train_steps,
      "eval_every": cfg.eval_every, "seed": spec.seed, "settings": dataclasses.asdict(cfg),
      "status": result.status, "status_reason": result.status_reason,
      "diverged_step": result.diverged_step,
      "curve": result.curve,
      "best": record.best_row(result.curve, metric),
      "goal_step": record.goal_step(result.curve, metric, w.goal.threshold),
      "steps_per_sec": result.steps_per_sec, "train_time_sec": result.train_time_sec,
      "wall_time_sec": time.perf_counter() - t0, "pack_size": pack_size,
      "started_at": started, "finished_at": _now(),
      "code_version": code_version(), "backend": jax.default_backend(),
      "devices": [d.device_kind for d in parallel.mesh().devices.flat],
      "device_ids": [d.id for d in parallel.mesh().devices.flat],
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
