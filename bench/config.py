"""Default configuration of one trial (`python -m bench.train`).

Every trial setting (bench/settings.py) and every optimizer and schedule
hyperparameter is a typed placeholder, so any of them can be set from the
command line (`--config.batch_size=64`, `--config.hparams.momentum=0.95`);
unset ones take their defaults (the workload's, bench/settings.py's, the
optimizer's in bench/optimizers.py), and setting a hyperparameter the chosen
optimizer does not have is an error. `--data_dir` and `--workload_args` are
bench.train's own flags.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from bench import optimizers, schedules, settings

_INT_HPARAMS = ("decay_steps", "warmup_steps")
FLAG_SETTINGS = ("data_dir", "workload_args")  # bench.train flags, not --config fields


def hparam_placeholders() -> ml_collections.ConfigDict:
  names = sorted({k for s in optimizers.REGISTRY.values() for k in s.defaults}
                 | set(schedules.SCHEDULE_HPARAMS))
  h = ml_collections.ConfigDict()
  for name in names:
    kind = str if name == "schedule" else int if name in _INT_HPARAMS else float
    h[name] = config_dict.placeholder(kind)
  return h


def trial_config() -> ml_collections.ConfigDict:
  c = settings.placeholders(exclude=FLAG_SETTINGS)
  c.hparams = hparam_placeholders()
  c.seed = 0
  return c


def set_hparams(config: ml_collections.ConfigDict) -> dict:
  """The hyperparameters actually given (placeholders left unset are dropped)."""
  return {k: v for k, v in config.hparams.items() if v is not None}


def trial_settings(config: ml_collections.ConfigDict, **flag_settings) -> settings.TrialSettings:
  """The TrialSettings of a trial config plus bench.train's flag settings."""
  given = {k: v for k, v in config.items() if k in settings.NAMES}
  return settings.TrialSettings.from_mapping({**given, **flag_settings})
