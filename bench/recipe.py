"""Recipe files: load one (once), make its paths mean what they say, expand it into studies.

A recipe is any Python file with get_config(arg) and studies(config)
(protocols/experiments). `recipe_flag` is the --config flag of ml_collections'
config_flags with one change: the file is loaded through bench.userfiles, so the
flag's get_config and the run's studies come from one execution of the file.
"""
from __future__ import annotations

import os
import re
import sys
import traceback
from typing import Any, Sequence

from absl import flags
from ml_collections import config_flags
from ml_collections.config_flags import config_flags as config_flags_module

import protocols
from bench import config as config_lib
from bench import trial, userfiles
from bench.study import Study, from_recipe, is_file_ref, resolve_dir

_PREFIX = "optbench_recipe_"


def recipe_file(path: str) -> str:
  """The file of a --config value: 'recipe.py:args' -> 'recipe.py'."""
  return re.sub(r"(\.py):.*$", r"\1", path)


def load_recipe(path: str) -> Any:
  """The recipe file's module (any path: the file is the experiment); `path`
  may carry the config flag's ':args'."""
  path = recipe_file(path)
  try:
    module = userfiles.load(path, _PREFIX)
  except FileNotFoundError:
    raise trial.ConfigError(f"cannot load recipe file {path}") from None
  if not callable(getattr(module, "studies", None)):
    raise trial.ConfigError(f"recipe {path} defines no studies(config) function")
  return module


class _RecipeParser(config_flags_module.ConfigFileFlagParser):
  """config_flags' parser with the file loaded by userfiles (once per process).
  Errors are worded as config_flags words them, so every message is unchanged."""

  def parse(self, path: str) -> Any:
    file, sep, arg = path.partition(":")
    try:
      module = userfiles.load(file, _PREFIX)
      config = module.get_config(arg) if sep else module.get_config()
    except (TypeError, ValueError) as e:
      raise type(e)("Error whilst parsing config file:\n\n" + traceback.format_exc()) from None
    if callable(getattr(config, "lock", None)):
      config.lock()
    return config


def recipe_flag(name: str, help_string: str) -> flags.FlagHolder:
  """DEFINE_config_file(name) whose file is the one load_recipe returns."""
  holder = config_flags.DEFINE_config_file(name, None, help_string)
  flags.FLAGS[name].parser = _RecipeParser(name=name)
  return holder


def recipe_dir(recipe: Any) -> str:
  """The folder of a recipe module's file ('' if it has none)."""
  path = getattr(recipe, "__file__", None)
  return os.path.dirname(os.path.abspath(path)) if path else ""


def rebase_paths(config: Any, recipe_dir: str, given: Sequence[str] = ()) -> None:
  """Make the recipe config's paths mean what their writer meant: a path written
  in the recipe file is relative to the recipe's folder (as in any config
  file); a path given on the command line (`given`: the overridden fields, e.g.
  'workload', 'settings.data_dir') is relative to the current directory.
  Workload files stay relative (to the recipe's folder), so that a study's
  identity does not depend on where its recipe is; data_dir becomes absolute."""
  recipe_dir = os.path.abspath(recipe_dir)
  workload = config.get("workload") if hasattr(config, "get") else None
  if isinstance(workload, str) and is_file_ref(workload) and "workload" in given:
    path, _, cls = workload.rpartition(":")
    if not os.path.isabs(path) and "://" not in path:
      config.workload = f"{os.path.relpath(os.path.abspath(path), recipe_dir)}:{cls}"
  section = config.get("settings") if hasattr(config, "get") else None
  if section is not None and section.get("data_dir"):
    here = os.getcwd() if "settings.data_dir" in given else recipe_dir
    section.data_dir = resolve_dir(os.path.expanduser(section.data_dir), here)


def expand(config: Any, recipe: Any) -> list[Study]:
  """The studies of a recipe module and its config (get_config's, overridden)."""
  experiment = config.get("experiment") or recipe.__name__.replace(_PREFIX, "")
  try:
    descriptions = recipe.studies(config)
  except (protocols.ProtocolError, ValueError, KeyError, TypeError) as e:
    raise trial.ConfigError(f"recipe {experiment}: {e}".splitlines()[0]) from None
  return from_recipe(descriptions, experiment, config.get("settings"), recipe_dir(recipe))


# ---------------------------------------------- the command line of a recipe

def overridden(argv: list[str]) -> list[str]:
  """The config fields set on the command line ('num_trials', 'settings.dtype')."""
  return [a[len("--config."):].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]


def _recipe_config(argv: list[str]):
  """The recipe's config as get_config returns it (None if it cannot be had)."""
  for arg in argv[1:]:
    m = re.match(r"--config=(.*?\.py)(?::(.*))?$", arg)
    if m:
      try:
        module = load_recipe(m.group(1))
        return module.get_config(m.group(2)) if m.group(2) is not None else module.get_config()
      except Exception:  # noqa: BLE001 - only used to word a hint
        return None
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with the recipe's folder importable (so a recipe can
  import the workload or optimizer files beside it) and every error of the
  flags or of loading the recipe file as one line instead of a traceback,
  naming the flag that was meant where there is one."""
  for arg in argv[1:]:
    if arg.startswith("--config="):
      path = recipe_file(arg.split("=", 1)[1])
      if not os.path.isfile(path):
        sys.exit(f"error: --config: no recipe file {path}")
      folder = os.path.dirname(os.path.abspath(path))
      if folder not in sys.path:
        sys.path.insert(0, folder)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit("error: " + config_lib.flag_error(
        _last_line(e), lambda name: config_lib.flag_meant(name, _recipe_config(argv))))
  except (AttributeError, KeyError) as e:  # --config.<field> the recipe's config lacks
    # ml_collections: KeyError("'num_trails'\nDid you mean \"num_trials\" ...?")
    config = _recipe_config(argv)
    path = config_lib.refused_override(overridden(argv), config_lib.missing_field(e), config)
    flag = "--config." + ".".join(path)
    where = ("the recipe's trial settings have" if path[:1] == ["settings"] and len(path) == 2
             else "the recipe's config has")
    meant = config_lib.recipe_flag_meant(path, config) if config is not None else None
    note = config_lib.recipe_flag_note(path)
    sys.exit(f"error: {flag}: {note or f'{where} no field {path[-1]!r}'}"
             + (f"; did you mean {meant}?" if meant else ""))
  except Exception as e:  # noqa: BLE001 - the recipe file raised while loading
    sys.exit(f"error: --config: {_last_line(e)}")


def _last_line(e: BaseException) -> str:
  """The line that says what went wrong: config_flags wraps the recipe's own
  exception, traceback and all, in its message; its last line is the cause."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  if len(lines) > 1 and "Traceback" in str(e):
    return f"{lines[0].split(':')[0]}: {lines[-1]}"
  return lines[0] if lines else type(e).__name__
