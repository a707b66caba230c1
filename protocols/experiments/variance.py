"""Trial variance vs study variance (Tuning Playbook, "sources of variation").

One protocol at one setting, run as `num_studies` independent studies (other
study seeds: other search points and trial seeds), each rerunning its best
point with `rerun_best_seeds` more seeds. The report's trial-vs-study section
compares the seed-to-seed variance of one point (trial variance) with the
variance of the study's best over studies (study variance), with an F-test and
a Brown-Forsythe test: which of the two a comparison must average over.

  --config=protocols/experiments/variance.py:<workload>,<scale>[,<preset>,<optimizer>]
"""
from __future__ import annotations

import ml_collections

from protocols import presets
from protocols.experiments import base_config, parse_args, study

_SCALES = {
    "smoke": dict(num_studies=2, num_trials=3, rerun_best_seeds=2, train_steps=20,
                  eval_every=10),
    # 8 studies x (16 trials + 8 reruns) x 600 steps: about 3 minutes on 2 CPU cores.
    "cpu": dict(num_studies=8, num_trials=16, rerun_best_seeds=8, train_steps=600,
                eval_every=50),
    "paper": dict(num_studies=20, num_trials=100, rerun_best_seeds=20, train_steps=None,
                  eval_every=None),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  workload, scale, preset, optimizer = parse_args(
      arg, ("mnist1d_large_mlp", "cpu", "choi_all", "adam"))
  c = base_config("variance", workload, scale)
  c.update(_SCALES[scale])
  c.preset = preset
  c.optimizer = optimizer
  return c


def studies(config: ml_collections.ConfigDict) -> list[dict]:
  if config.num_studies < 2 or config.rerun_best_seeds < 1:
    raise ValueError("variance: needs num_studies >= 2 and rerun_best_seeds >= 1, got "
                     f"{config.num_studies} and {config.rerun_best_seeds}")
  protocol = presets.get(config.preset, optimizer=config.optimizer,
                         num_trials=config.num_trials, train_steps=config.train_steps,
                         eval_every=config.eval_every)
  protocol.budget.rerun_best_seeds = config.rerun_best_seeds
  return [study(config.workload, protocol, {}, config.study_seed + i)
          for i in range(config.num_studies)]
