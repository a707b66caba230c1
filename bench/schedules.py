"""Learning-rate schedules: constant, linear_decay, cosine, with optional linear warmup.

Schedule hyperparameters travel with the optimizer's (they are searched together):
  schedule              'constant' | 'linear_decay' | 'cosine'
  decay_steps           steps over which the decay happens (counted from step 0,
                        warmup included); default: train_steps
  decay_steps_fraction  alternative to decay_steps, as a fraction of train_steps
  decay_factor          final lr = learning_rate * decay_factor (linear_decay
                        default 0.0; cosine's alpha, default 0.0)
  warmup_steps          linear warmup from 0 to learning_rate (default 0)
"""
from __future__ import annotations

from typing import Any, Mapping

import optax

SCHEDULES = ("constant", "linear_decay", "cosine")
SCHEDULE_HPARAMS = ("schedule", "decay_steps", "decay_steps_fraction", "decay_factor", "warmup_steps")


class ScheduleError(ValueError):
  pass


def build_schedule(learning_rate: Any, hparams: Mapping[str, Any],
                   train_steps: int | None = None) -> optax.Schedule:
  """The learning rate at each step, from the schedule entries of `hparams`."""
  name = hparams.get("schedule", "constant") or "constant"
  if name not in SCHEDULES:
    raise ScheduleError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
  warmup = int(hparams.get("warmup_steps", 0) or 0)
  if warmup < 0:
    raise ScheduleError(f"warmup_steps must be >= 0, got {warmup}")
  if name == "constant":
    base = optax.constant_schedule(learning_rate)
  else:
    decay_steps = _decay_steps(hparams, train_steps)
    factor = hparams.get("decay_factor", 0.0)
    factor = 0.0 if factor is None else factor
    span = max(decay_steps - warmup, 1)
    if name == "linear_decay":
      base = optax.linear_schedule(learning_rate, learning_rate * factor, span)
    else:
      base = optax.cosine_decay_schedule(learning_rate, span, alpha=factor)
  if warmup == 0:
    return base
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, warmup), base], [warmup])


def _decay_steps(hparams: Mapping[str, Any], train_steps: int | None) -> int:
  steps = hparams.get("decay_steps")
  fraction = hparams.get("decay_steps_fraction")
  if steps is not None and fraction is not None:
    raise ScheduleError("give decay_steps or decay_steps_fraction, not both")
  if fraction is not None:
    if not 0 < fraction <= 1:
      raise ScheduleError(f"decay_steps_fraction must be in (0, 1], got {fraction}")
    if train_steps is None:
      raise ScheduleError("decay_steps_fraction needs train_steps")
    return max(int(round(fraction * train_steps)), 1)
  if steps is None:
    if train_steps is None:
      raise ScheduleError("a decaying schedule needs decay_steps (or train_steps)")
    return int(train_steps)
  if int(steps) < 1:
    raise ScheduleError(f"decay_steps must be >= 1, got {steps}")
  return int(steps)
