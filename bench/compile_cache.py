"""XLA's persistent compilation cache, on by default.

Trials of a study differ only in values (hyperparameters are inputs of the
compiled step, see bench.optimizers.factory), so all but the first load their
program from this cache instead of compiling it: on a CPU that is most of a
short trial's time. The cache is per host (compiled CPU code depends on the
machine) under ~/.cache/optbench/xla/; OPTBENCH_COMPILATION_CACHE=DIR moves it,
=off disables it, and a cache directory set through JAX's own configuration
wins.
"""
from __future__ import annotations

import os
import platform

import jax


def default_dir() -> str | None:
  path = os.environ.get("OPTBENCH_COMPILATION_CACHE")
  if path is None:
    path = os.path.join(os.path.expanduser("~"), ".cache", "optbench", "xla", platform.node())
  return None if path.lower() in ("", "off", "0", "none") else path


def enable() -> str | None:
  """Point JAX at the cache (idempotent); returns the directory in use, if any."""
  if jax.config.jax_compilation_cache_dir:
    return jax.config.jax_compilation_cache_dir
  path = default_dir()
  if path:
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  return path
