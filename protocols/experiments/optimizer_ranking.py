"""Optimizer rankings vs tuning protocol (Choi et al. 2019).

Scientific: the optimizer. Varied: the protocol, i.e. Choi's nested search
spaces (`choi_lr` ⊂ `choi_lr_momentum` ⊂ `choi_all`) and the DeepOBS baseline
grid (for the optimizers it defines: sgd, momentum, adam). Objective: best
validation error; the report gives the test error of the selected trial and
checks the inclusion relationships (SGD ⊆ momentum ⊆ Adam/RMSProp, ...).

  --config=protocols/experiments/optimizer_ranking.py:<workload>,<scale>
"""
from __future__ import annotations

import ml_collections

from protocols import presets
from protocols.experiments import base_config, optional, parse_args, study

DEEPOBS_OPTIMIZERS = ("sgd", "momentum", "adam")
_ALL_PROTOCOLS = ("choi_lr", "choi_lr_momentum", "choi_all", "deepobs_baseline")
_SCALES = {
    "smoke": dict(optimizers=("sgd", "adam"), protocols=("choi_lr", "choi_all", "deepobs_baseline"),
                  num_trials=2, grid_points=2, train_steps=20, eval_every=10),
    # 21 studies x 50 trials: about 15 minutes on 2 CPU cores with mnist1d_large_mlp
    # (see paper_figures/README.md); 50 trials so that best-of-k curves flatten.
    "cpu": dict(optimizers=presets.CHOI_OPTIMIZERS, protocols=_ALL_PROTOCOLS,
                num_trials=50, grid_points=50, train_steps=600, eval_every=50),
    # Choi et al. tuned each optimizer with up to 100 trials per search space;
    # DeepOBS used its full 36-point grid. Step budgets: the workload's default.
    "paper": dict(optimizers=presets.CHOI_OPTIMIZERS, protocols=_ALL_PROTOCOLS,
                  num_trials=100, grid_points=presets.DEEPOBS_GRID_SIZE, train_steps=None,
                  eval_every=None),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  workload, scale = parse_args(arg, ("mnist1d_large_mlp", "cpu"))
  c = base_config("optimizer_ranking", workload, scale)
  scale_fields = dict(_SCALES[scale])
  for name in ("train_steps", "eval_every"):   # None: the workload's default
    optional(c, name, int, scale_fields.pop(name))
  c.update(scale_fields)
  optional(c, "batch_size", int)     # None: the workload's default
  c.rerun_best_seeds = 0             # DeepOBS reran its best point with 9 more seeds
  return c


def _protocol(name: str, optimizer: str, config: ml_collections.ConfigDict):
  steps = {"train_steps": config.train_steps, "eval_every": config.eval_every}
  if name == "deepobs_baseline":
    p = presets.deepobs_baseline(optimizer, rerun_best_seeds=config.rerun_best_seeds, **steps)
    p.sampler.num_per_dim = p.budget.num_trials = config.grid_points
    return p
  return presets.get(name, optimizer=optimizer, num_trials=config.num_trials, **steps)


def studies(config: ml_collections.ConfigDict) -> list[dict]:
  out = []
  for name in config.protocols:
    for optimizer in config.optimizers:
      if name == "deepobs_baseline" and optimizer not in DEEPOBS_OPTIMIZERS:
        continue
      sci = {"optimizer": optimizer}
      if config.batch_size is not None:
        sci["batch_size"] = int(config.batch_size)
      for i in range(config.num_studies):
        out.append(study(config.workload, _protocol(name, optimizer, config), sci,
                         config.study_seed + i))
  return out
