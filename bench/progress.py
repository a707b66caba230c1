"""Counting a study's trials and saying how long is left: shared by the runner
and bench.status, which reads the store alone and so imports no jax."""
from __future__ import annotations

import math
from typing import Any, Mapping


def budget_trials(budget: Mapping[str, Any]) -> tuple[int, int]:
  """(search trials, seed reruns of the best point) of a protocol budget
  (the ConfigDict, or its plain form as stored in study.json)."""
  return int(budget.get("num_trials") or 0), int(budget.get("rerun_best_seeds") or 0)


def format_duration(sec: float) -> str:
  """'4m05s' / '1h02m' for progress lines; '?' when unknown."""
  if not math.isfinite(sec):
    return "?"
  sec = int(sec)
  return f"{sec // 3600}h{sec % 3600 // 60:02d}m" if sec >= 3600 else f"{sec // 60}m{sec % 60:02d}s"
