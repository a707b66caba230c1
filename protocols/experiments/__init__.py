"""Experiment recipes: configs as code, each with named scales.

A recipe module has `get_config(arg) -> ConfigDict` (flat: every field can be
overridden with --config.x=y) and `studies(config) -> list[bench.study.Study]`.
`python -m bench.run --config=protocols/experiments/<name>.py:<args>` loads the
first and calls the second. Scales: smoke (seconds, tests), cpu (minutes on a
laptop), paper (the published setting, for GPUs/TPUs).
"""
from __future__ import annotations

from typing import Any

import ml_collections

import workloads
from bench import config as trial_config_lib

SCALES = ("smoke", "cpu", "paper")


def parse_args(arg: str | None, defaults: tuple[str, ...]) -> list[str]:
  """'a,,c' -> ['a', defaults[1], 'c', ...]: empty or missing fields take defaults."""
  given = arg.split(",") if arg else []
  if len(given) > len(defaults):
    raise ValueError(f"too many config arguments in {arg!r} (expected {len(defaults)})")
  given += [""] * (len(defaults) - len(given))
  return [g.strip() or d for g, d in zip(given, defaults)]


def base_config(experiment: str, workload: str, scale: str) -> ml_collections.ConfigDict:
  if scale not in SCALES:
    raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
  c = ml_collections.ConfigDict()
  c.experiment = experiment
  c.workload = workload
  c.scale = scale
  c.study_seed = 0
  c.num_studies = 1
  c.data_dir = ""
  c.workload_args = ""   # e.g. 'image_size=64' (workloads.parse_args)
  c.pack = "auto"        # trials per compiled program: auto | off | K (bench.packing)
  defaults = trial_config_lib.trial_config()  # one trial's defaults, as for bench.train
  for k in TRIAL_SETTINGS:
    c[k] = defaults[k]
  return c


# Per-trial settings a recipe passes through to every trial (bench/config.py documents them).
TRIAL_SETTINGS = ("dtype", "max_steps_per_dispatch", "divergence_factor", "eval_test",
                  "checkpoint_every_sec")


def trial_defaults(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {"data_dir": config.data_dir or None,
          "workload_args": workloads.parse_args(config.workload_args),
          **{k: config[k] for k in TRIAL_SETTINGS}}
