"""Default configuration of one trial (`python -m bench.train`).

Every optimizer and schedule hyperparameter is a typed placeholder, so any of
them can be set from the command line (`--config.hparams.momentum=0.95`);
unset ones take the optimizer's defaults (bench/optimizers.py), and setting
one the chosen optimizer does not have is an error.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from bench import optimizers, schedules

_INT_HPARAMS = ("decay_steps", "warmup_steps")


def hparam_placeholders() -> ml_collections.ConfigDict:
  names = sorted({k for s in optimizers.REGISTRY.values() for k in s.defaults}
                 | set(schedules.SCHEDULE_HPARAMS))
  h = ml_collections.ConfigDict()
  for name in names:
    kind = str if name == "schedule" else int if name in _INT_HPARAMS else float
    h[name] = config_dict.placeholder(kind)
  return h


def trial_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.hparams = hparam_placeholders()
  c.batch_size = config_dict.placeholder(int)    # default: the workload's
  c.train_steps = config_dict.placeholder(int)   # default: the workload's
  c.eval_every = config_dict.placeholder(int)    # default: the workload's
  c.seed = 0
  c.dtype = "float32"                            # or bfloat16 (fp32 params)
  c.max_steps_per_dispatch = 500                 # steps fused into one device call
  c.divergence_factor = 100.0                    # diverged if loss > factor x initial
  c.eval_test = True
  c.checkpoint_every_sec = 600.0                 # mid-trial checkpoint cadence (wall time)
  return c


def set_hparams(config: ml_collections.ConfigDict) -> dict:
  """The hyperparameters actually given (placeholders left unset are dropped)."""
  return {k: v for k, v in config.hparams.items() if v is not None}
