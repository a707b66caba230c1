"""One protocol preset on one workload: the simplest experiment.

  --config=protocols/experiments/preset.py:<preset>,<workload>,<optimizer>,<scale>
e.g. preset.py:choi_all,mnist1d_mlp,adam,smoke

Fields left None keep the preset's own (e.g. choi_*: 100 trials, algoperf_external:
5 studies, deepobs_baseline: 36 grid points and 9 reruns of the best point) or the
workload's (batch size, step budget, eval cadence). The smoke scale reruns the best
point with one more seed, so its studies hold num_trials + 1 trials.
"""
from __future__ import annotations

import ml_collections

from protocols import presets
from protocols.experiments import base_config, optional, parse_args, study

_SCALE = {"smoke": dict(num_trials=3, train_steps=30, eval_every=15, grid_points=3,
                        rerun_best_seeds=1),
          "cpu": dict(num_trials=16, train_steps=1000, eval_every=50),
          "paper": dict()}
_FIELDS = ("num_trials", "train_steps", "eval_every", "grid_points", "rerun_best_seeds",
           "batch_size", "num_studies")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  preset, workload, optimizer, scale = parse_args(arg, ("shallue", "mnist1d_mlp", "", "cpu"))
  c = base_config("preset", workload, scale)
  c.preset = preset
  c.optimizer = optimizer            # '' = the preset's default optimizer
  del c.num_studies                  # None below: the preset's own
  for name in _FIELDS:
    optional(c, name, int, _SCALE[scale].get(name))
  return c


def studies(config: ml_collections.ConfigDict) -> list[dict]:
  for name in _FIELDS:
    minimum = 0 if name == "rerun_best_seeds" else 1
    if config[name] is not None and config[name] < minimum:
      raise ValueError(f"{name} must be >= {minimum} (or unset: the preset's), "
                       f"got {config[name]}")
  protocol = presets.get(config.preset, **({"optimizer": config.optimizer} if config.optimizer else {}))
  budget = protocol.budget
  if config.num_trials is not None:
    budget.num_trials = config.num_trials
  budget.train_steps, budget.eval_every = config.train_steps, config.eval_every
  if protocol.sampler.name == "grid" and config.grid_points is not None:
    protocol.sampler.num_per_dim = budget.num_trials = config.grid_points
  if config.rerun_best_seeds is not None:
    budget.rerun_best_seeds = config.rerun_best_seeds
  sci = {"batch_size": config.batch_size} if config.batch_size is not None else {}
  num_studies = config.num_studies or int(budget.get("num_studies", 1) or 1)
  seeds = [protocol.seeds.study_seed + config.study_seed + i for i in range(num_studies)]
  return [study(config.workload, protocol, sci, s) for s in seeds]
