"""Experiment recipes: configs as code, each with named scales.

A recipe is any Python file (these ship; yours can live anywhere) with
  get_config(arg) -> ConfigDict   flat fields, each overridable with --config.x=y,
                                   and a `settings` section of trial settings
                                   (bench/settings.py: --config.settings.dtype=...)
  studies(config) -> list[dict]   the experiment's studies as plain data, each made
                                   by `study(workload, protocol, scientific, ...)`
`python -m bench.run --config=PATH.py:<args>` loads the file, calls both and runs the
studies; a recipe imports nothing of bench's runner. Scales: smoke (seconds, tests),
cpu (minutes on a laptop), paper (the published setting, for GPUs/TPUs).
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

from bench import settings as settings_lib

SCALES = ("smoke", "cpu", "paper")


def parse_args(arg: str | None, defaults: tuple[str, ...]) -> list[str]:
  """'a,,c' -> ['a', defaults[1], 'c', ...]: empty or missing fields take defaults."""
  given = arg.split(",") if arg else []
  if len(given) > len(defaults):
    raise ValueError(f"too many config arguments in {arg!r} (expected {len(defaults)})")
  given += [""] * (len(defaults) - len(given))
  return [g.strip() or d for g, d in zip(given, defaults)]


def base_config(experiment: str, workload: str, scale: str) -> ml_collections.ConfigDict:
  """The fields every recipe has: its name, workload, scale, seeds, packing and
  the trial settings (None: the default, bench/settings.py)."""
  if scale not in SCALES:
    raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
  c = ml_collections.ConfigDict()
  c.experiment = experiment
  c.workload = workload
  c.scale = scale
  c.study_seed = 0
  c.num_studies = 1
  c.pack = "auto"        # trials per compiled program: auto | off | K (bench.packing)
  c.settings = settings_lib.placeholders(exclude=settings_lib.STUDY_FIELDS)
  return c


def optional(config: ml_collections.ConfigDict, name: str, kind: type, value: Any = None
             ) -> None:
  """config.<name> = value, or a typed placeholder (None: the default) that
  --config.<name>=v still sets."""
  config[name] = config_dict.placeholder(kind) if value is None else value


def study(workload: str, protocol: Any, scientific: Mapping[str, Any] | None = None,
          study_seed: int = 0, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """One study as plain data: a protocol at one setting of the scientific
  hyperparameters (e.g. {'batch_size': 128}); `settings` override the recipe's."""
  return {"workload": workload, "protocol": protocol, "scientific": dict(scientific or {}),
          "study_seed": int(study_seed), "settings": dict(settings or {})}
