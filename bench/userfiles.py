"""Run a user's Python file as a module: the one loader behind recipe files and
optimizer files (`path/to/file.py:NAME`).

Standard library only, so that the optimizer leaf (bench.optimizers) can use it.
Workload files have their own loader in `workloads`, which by the layer order
imports nothing of bench. A file runs once per process: the second load of the
same unchanged file returns the module of the first, so a recipe's top-level code (or an
optimizer file's registration) never runs twice.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import types

_LOADED: dict[str, types.ModuleType] = {}


def load(path: str, prefix: str) -> types.ModuleType:
  """The module of the Python file `path`, named `<prefix><file stem>`; its
  folder goes on sys.path first, as for a script, so that modules beside it
  (your workloads, optimizers) import. Raises FileNotFoundError if it is not a file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(path)
  stat = os.stat(path)
  key = f"{os.path.realpath(path)}:{stat.st_mtime_ns}:{stat.st_size}"  # an edited file reloads
  if key in _LOADED:
    return _LOADED[key]
  name = prefix + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  folder = os.path.dirname(os.path.abspath(path))
  if folder not in sys.path:
    sys.path.insert(0, folder)
  module_spec.loader.exec_module(module)
  _LOADED[key] = module
  return module
