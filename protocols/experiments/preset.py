"""One protocol preset on one workload: the simplest experiment.

  --config=protocols/experiments/preset.py:<preset>,<workload>,<optimizer>,<scale>
e.g. preset.py:choi_all,mnist1d_mlp,adam,smoke
"""
from __future__ import annotations

import ml_collections

from bench.study import Study
from protocols import presets
from protocols.experiments import base_config, parse_args, trial_defaults

# num_trials 0 / grid_points and rerun_best_seeds -1 keep the preset's own
# (e.g. choi_*: 100, algoperf_external: 5, deepobs_baseline: 36 points and 9 reruns).
_SCALE = {"smoke": dict(num_trials=3, train_steps=30, eval_every=15, grid_points=3,
                        rerun_best_seeds=1),
          "cpu": dict(num_trials=16, train_steps=1000, eval_every=50, grid_points=-1,
                      rerun_best_seeds=-1),
          "paper": dict(num_trials=0, train_steps=0, eval_every=0, grid_points=-1,
                        rerun_best_seeds=-1)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  preset, workload, optimizer, scale = parse_args(arg, ("shallue", "mnist1d_mlp", "", "cpu"))
  c = base_config("preset", workload, scale)
  c.preset = preset
  c.optimizer = optimizer            # '' = the preset's default optimizer
  c.batch_size = 0                   # 0 = the workload's default
  c.num_studies = 0                  # 0 = the preset's own (algoperf_external: 5, others 1)
  c.update(_SCALE[scale])            # train_steps / eval_every 0 = workload default
  return c


def studies(config: ml_collections.ConfigDict) -> list[Study]:
  protocol = presets.get(config.preset, **({"optimizer": config.optimizer} if config.optimizer else {}))
  if config.num_trials > 0:
    protocol.budget.num_trials = config.num_trials
  protocol.budget.train_steps = config.train_steps or None
  protocol.budget.eval_every = config.eval_every or None
  if protocol.sampler.name == "grid" and config.grid_points > 0:
    protocol.sampler.num_per_dim = config.grid_points
    protocol.budget.num_trials = config.grid_points
  if config.rerun_best_seeds >= 0:
    protocol.budget.rerun_best_seeds = config.rerun_best_seeds
  sci = {"batch_size": config.batch_size} if config.batch_size else {}
  num_studies = config.num_studies or int(protocol.budget.get("num_studies", 1) or 1)
  seeds = [protocol.seeds.study_seed + config.study_seed + i for i in range(num_studies)]
  return [Study("preset", config.workload, protocol, sci, s, trial_defaults(config)) for s in seeds]
