"""Learning-rate schedules: constant, linear_decay, cosine, with optional linear warmup.

Schedule hyperparameters travel with the optimizer's (they are searched together):
  schedule              'constant' | 'linear_decay' | 'cosine'
  decay_steps           steps over which the decay happens (counted from step 0,
                        warmup included); default: train_steps
  decay_steps_fraction  alternative to decay_steps, as a fraction of train_steps
  decay_factor          final lr = learning_rate * decay_factor (linear_decay
                        default 0.0; cosine's alpha, default 0.0)
  warmup_steps          linear warmup from 0 to learning_rate (default 0)

Only the schedule's form shapes the compiled program: the step counts are
values, so every point of a search space over them shares one program.
optax's linear/cosine/polynomial schedules check their step counts in Python
(`if transition_steps <= 0`), which rejects traced values; the two forms are
therefore written here with optax's formulas (same float32 arithmetic, checked
against optax in tests/test_optimizers.py), and optax.join_schedules joins the
warmup, as it accepts traced boundaries.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "linear_decay", "cosine")
SCHEDULE_HPARAMS = ("schedule", "decay_steps", "decay_steps_fraction", "decay_factor", "warmup_steps")
# Integer step counts (values of the program, int32).
STEP_HPARAMS = ("decay_steps", "warmup_steps")


class ScheduleError(ValueError):
  pass


def check(hparams: Mapping[str, Any]) -> str:
  """The schedule's name, after checking it (one-line ScheduleError)."""
  name = hparams.get("schedule", "constant") or "constant"
  if name not in SCHEDULES:
    raise ScheduleError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
  return name


def step_values(hparams: Mapping[str, Any], train_steps: int | None) -> dict[str, int]:
  """decay_steps and warmup_steps as the integers the program takes (a
  decay_steps_fraction becomes steps of this budget)."""
  name = check(hparams)
  decay = 1 if name == "constant" else _decay_steps(hparams, train_steps)
  return {"decay_steps": decay, "warmup_steps": _warmup_steps(hparams)}


def build_schedule(learning_rate: Any, hparams: Mapping[str, Any],
                   train_steps: int | None = None) -> optax.Schedule:
  """The learning rate at each step, from the schedule entries of `hparams`.

  decay_steps / warmup_steps may be traced values (bench.optimizers passes
  them so, from step_values); host numbers are checked and a
  decay_steps_fraction resolved against train_steps."""
  name = check(hparams)
  warmup = hparams.get("warmup_steps")
  if warmup is None or isinstance(warmup, (int, float)):  # a host number: check it
    warmup = _warmup_steps(hparams)
  factor = hparams.get("decay_factor")
  factor = 0.0 if factor is None else factor
  if name == "constant":
    base = optax.constant_schedule(learning_rate)
  else:
    decay = hparams.get("decay_steps")
    if decay is None or isinstance(decay, (int, float)):
      decay = _decay_steps(hparams, train_steps)
    span = jnp.maximum(decay - warmup, 1)
    base = (_linear(learning_rate, learning_rate * factor, span) if name == "linear_decay"
            else _cosine(learning_rate, span, factor))
  if isinstance(warmup, int) and warmup == 0:
    return base
  return optax.join_schedules([_linear(0.0, learning_rate, warmup), base], [warmup])


# Division by the step count is written as a product with its reciprocal: that is
# what XLA compiles optax's division by a constant into, so a schedule whose step
# counts are values computes bit for bit what optax's constant one does.

def _linear(init: Any, end: Any, span: Any) -> optax.Schedule:
  """optax.linear_schedule's formula with a value for `span` (> 0 where used)."""
  def schedule(count):
    count = jnp.clip(count, 0, span)
    frac = 1 - count * (1.0 / jnp.maximum(span, 1))
    return (init - end) * frac + end
  return schedule


def _cosine(init: Any, span: Any, alpha: Any) -> optax.Schedule:
  """optax.cosine_decay_schedule's formula (exponent 1) with a value for `span`."""
  def schedule(count):
    count = jnp.minimum(count, span)
    decayed = (1 - alpha) * (0.5 * (1 + jnp.cos(jnp.pi * count * (1.0 / span)))) + alpha
    return init * decayed
  return schedule


def _warmup_steps(hparams: Mapping[str, Any]) -> int:
  warmup = int(hparams.get("warmup_steps") or 0)
  if warmup < 0:
    raise ScheduleError(f"warmup_steps must be >= 0, got {warmup}")
  return warmup


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
