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

import difflib
import re
from typing import Any, Sequence

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


# ----- what a refused flag meant -----

def missing_field(e: BaseException) -> str:
  """The field named by ml_collections' error for an override it cannot take:
  KeyError("'num_trails'\\nDid you mean ...") or AttributeError(KeyError(...))."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
  return text.strip("\"'").partition("\n")[0].strip("\"'")


def refused_override(overridden: Sequence[str], field: str, config: Any) -> list[str]:
  """Of the --config.<path> overrides given ('settings.dtype', ...), the first
  that `config` cannot take (the one ml_collections refused, naming `field`)."""
  paths = [p.split(".") for p in overridden]
  if config is not None:
    for path in paths:
      if not _has(config, path):
        return path
  for path in paths:
    if field in path:
      return path
  return [field]

def _close(name: str, names) -> str | None:
  found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
  return found[0] if found else None


def _has(config: Any, path: Sequence[str]) -> bool:
  node = config
  for part in path:
    try:
      if part not in node:
        return False
      node = node[part]
    except TypeError:
      return False
  return True


def _keys(config: Any, path: Sequence[str]) -> list[str]:
  node = config
  for part in path:
    node = node[part]
  try:
    return list(node.keys())
  except AttributeError:
    return []


def recipe_flag_meant(path: Sequence[str], config: Any) -> str | None:
  """The flag a refused `--config.<path>` of bench.run was meant to be, given
  the recipe's config (fields, plus trial settings under `settings`), or None."""
  path = list(path)
  name = path[-1]
  has_settings = _has(config, ["settings"])
  if path[:1] == ["settings"] and len(path) == 2:
    if name in settings.STUDY_FIELDS or not has_settings or name not in config.settings:
      if _has(config, [name]):
        return f"--config.{name}"
      if name == "batch_size" and _has(config, ["batch_sizes"]):
        return "--config.batch_sizes"
      if has_settings and (m := _close(name, _keys(config, ["settings"]))):
        return f"--config.settings.{m}"
      if m := _close(name, _keys(config, [])):
        return f"--config.{m}"
    return None
  if len(path) == 1:
    if has_settings and name in _keys(config, ["settings"]):
      return f"--config.settings.{name}"
    if name == "batch_size" and _has(config, ["batch_sizes"]):
      return "--config.batch_sizes"
    if name == "batch_sizes" and _has(config, ["batch_size"]):
      return "--config.batch_size"
    if name in ("optimizers", "optimizer"):
      other = "optimizer" if name == "optimizers" else "optimizers"
      if _has(config, [other]):
        return f"--config.{other}"
    if m := _close(name, _keys(config, [])):
      return f"--config.{m}"
    if has_settings and (m := _close(name, _keys(config, ["settings"]))):
      return f"--config.settings.{m}"
    return None
  parent = path[:-1]
  if _has(config, parent) and (m := _close(name, _keys(config, parent))):
    return "--config." + ".".join(parent + [m])
  return None


def recipe_flag_note(path: Sequence[str]) -> str:
  """Why the recipe's config has no `--config.<path>`, where more can be said, or ''."""
  name = path[-1]
  if name in hparam_placeholders():
    return (f"a hyperparameter is searched by the recipe's protocol: change its search space, "
            f"or train one trial at a set value with python -m bench.train "
            f"--config.hparams.{name}=...")
  if len(path) == 2 and path[0] == "settings" and name in settings.STUDY_FIELDS:
    return f"{name} is not a trial setting: each study sets it from the recipe's fields"
  return ""


def train_flag_meant(path: Sequence[str]) -> str | None:
  """The flag a refused `--config.<path>` of bench.train was meant to be, or None."""
  path = list(path)
  name = path[-1]
  fields = [k for k in trial_config().keys() if k != "hparams"]
  hparams = list(hparam_placeholders().keys())
  if name in FLAG_SETTINGS:
    return f"--{name}"
  if path[:1] == ["hparams"] and len(path) == 2:
    if name in fields:
      return f"--config.{name}"
    m = _close(name, hparams)
    return f"--config.hparams.{m}" if m else None
  if len(path) == 1 or path[:1] == ["settings"]:
    if name in fields:
      return f"--config.{name}"
    if name in hparams:
      return f"--config.hparams.{name}"
    if m := _close(name, fields):
      return f"--config.{m}"
    if m := _close(name, hparams):
      return f"--config.hparams.{m}"
  return None


def flag_meant(name: str, config: Any | None = None) -> str | None:
  """An unknown command-line flag `--<name>` that is a config field (a trial
  setting, a recipe field, a hyperparameter): the --config flag it meant."""
  if config is not None:  # bench.run: the recipe's config
    if _has(config, [name]):
      return f"--config.{name}"
    if _has(config, ["settings", name]):
      return f"--config.settings.{name}"
    return recipe_flag_meant([name], config)
  if name in settings.NAMES and name not in FLAG_SETTINGS:  # bench.train
    return f"--config.{name}"
  if name in hparam_placeholders():
    return f"--config.hparams.{name}"
  return None


def flag_error(line: str, meant) -> str:
  """absl's one-line error about a flag; an unknown flag that is a config
  field names its --config flag (`meant(name)`), a misspelt one the flag
  absl suggests."""
  unknown = re.match(r"Unknown command line flag '([^']+)'(?:\. Did you mean: ([\w.]+) \?)?",
                     line)
  if not unknown:
    return line
  name, close = unknown.groups()
  hint = meant(name) or (f"--{close}" if close else None)
  return f"unknown flag --{name}" + (f"; did you mean {hint}?" if hint else "")
