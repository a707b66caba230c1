"""Steps to result vs batch size (Shallue et al. 2018).

Scientific: batch size (powers of two). Nuisance: learning rate, momentum and
the linear-decay parameters, searched quasi-randomly per batch size with the
`shallue` preset. Objective: steps to the workload's goal.

Step budget: with `train_examples` set, batch size B gets
clip(ceil(train_examples / B), min_train_steps, train_steps) steps (a budget
in examples, floored so that large batches still get enough steps and capped
for small ones), evaluated `evals_per_trial` times; without it every batch
size gets `train_steps`. Steps to result is measured within the budget: a
budget too small for a batch size shows as an infinite band there, not as a
wrong number.

  --config=protocols/experiments/batch_scaling.py:<workload>,<scale>[,<optimizer>]
"""
from __future__ import annotations

import math

import ml_collections

from protocols import presets
from protocols.experiments import base_config, optional, parse_args, study

_SCALES = {
    "smoke": dict(batch_sizes=(32, 128), num_trials=4, train_steps=1000, eval_every=50),
    # 10 batch sizes (a 2^9 range) x 40 trials on mnist1d_large_mlp: ~8 minutes on 2 CPU
    # cores (paper_figures/README.md). 128,000 examples = ~7 epochs of its 18,000; at
    # least 500 steps, at most 16,000, 40 evaluations each (validation and train only).
    "cpu": dict(batch_sizes=(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), num_trials=40,
                train_steps=16000, train_examples=128000, min_train_steps=500,
                evals_per_trial=40),
    # Shallue et al.: 100 trials per batch size; budgets: the workload's default.
    "paper": dict(batch_sizes=(8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
                  num_trials=100),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  workload, scale, optimizer = parse_args(arg, ("mnist1d_large_mlp", "cpu", "nesterov"))
  c = base_config("batch_scaling", workload, scale)
  fields = dict(_SCALES[scale])
  c.optimizer = optimizer
  c.batch_sizes = fields.pop("batch_sizes")
  c.num_trials = fields.pop("num_trials")
  optional(c, "train_steps", int, fields.get("train_steps"))  # None: the workload's default
  optional(c, "eval_every", int, fields.get("eval_every"))    # None: see evals_per_trial
  optional(c, "train_examples", int, fields.get("train_examples"))  # None: train_steps for all
  c.min_train_steps = fields.get("min_train_steps", 1)
  c.evals_per_trial = fields.get("evals_per_trial", 40)
  if scale == "cpu":  # steps to result reads validation only: the test split would double
    c.settings.eval_test = False  # the cost of 40 evaluations at large batch sizes
  return c


def budget(config: ml_collections.ConfigDict, batch_size: int) -> tuple[int | None, int | None]:
  """(train_steps, eval_every) of the study at `batch_size` (None: the workload's)."""
  steps = config.train_steps
  if config.train_examples is not None:
    if steps is None:
      raise ValueError("batch_scaling: train_examples needs train_steps (the cap)")
    steps = min(steps, max(config.min_train_steps, math.ceil(config.train_examples / batch_size)))
  every = config.eval_every
  if every is None and steps is not None:
    every = max(1, steps // config.evals_per_trial)
  return steps, every


def studies(config: ml_collections.ConfigDict) -> list[dict]:
  out = []
  for i in range(config.num_studies):
    for bs in config.batch_sizes:
      steps, every = budget(config, int(bs))
      protocol = presets.shallue(config.optimizer, num_trials=config.num_trials,
                                 train_steps=steps, eval_every=every)
      out.append(study(config.workload, protocol, {"batch_size": int(bs)},
                       config.study_seed + i))
  return out
