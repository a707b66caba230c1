"""Steps to result vs batch size (Shallue et al. 2018).

Scientific: batch size (powers of two). Nuisance: learning rate, momentum and
the linear-decay parameters, searched quasi-randomly per batch size with the
`shallue` preset. Objective: steps to the workload's goal.

  --config=protocols/experiments/batch_scaling.py:<workload>,<scale>[,<optimizer>]
"""
from __future__ import annotations

import ml_collections

from protocols import presets
from protocols.experiments import base_config, optional, parse_args, study

_SCALES = {
    # (batch sizes, trials per batch size, max steps, eval every)
    "smoke": ((32, 128), 4, 1000, 50),
    "cpu": ((16, 32, 64, 128, 256, 512, 1024), 16, 1000, 25),
    "paper": ((8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192), 100, None, None),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  workload, scale, optimizer = parse_args(arg, ("mnist1d_mlp", "cpu", "nesterov"))
  c = base_config("batch_scaling", workload, scale)
  batch_sizes, trials, steps, every = _SCALES[scale]
  c.optimizer = optimizer
  c.batch_sizes = batch_sizes
  c.num_trials = trials
  optional(c, "train_steps", int, steps)   # None: the workload's default budget
  optional(c, "eval_every", int, every)    # None: the workload's default cadence
  return c


def studies(config: ml_collections.ConfigDict) -> list[dict]:
  out = []
  for i in range(config.num_studies):
    for bs in config.batch_sizes:
      protocol = presets.shallue(config.optimizer, num_trials=config.num_trials,
                                 train_steps=config.train_steps, eval_every=config.eval_every)
      out.append(study(config.workload, protocol, {"batch_size": int(bs)},
                       config.study_seed + i))
  return out
