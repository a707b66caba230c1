"""TensorBoard event files per trial (tensorboardX: no TensorFlow needed).

`tensorboard --logdir=<output_dir>` then shows every trial's eval curve, named
by its trial id, with the hyperparameters as text. The record stays the source
of truth; events are for watching runs.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping


class EventWriter:
  """Writes curve rows as scalars; does nothing when `directory` is None."""

  def __init__(self, directory: str | None, spec: Any, hparams: Mapping[str, Any]):
    self._writer = None
    if directory:
      from tensorboardX import SummaryWriter  # imported only when events are wanted
      self._writer = SummaryWriter(logdir=directory, flush_secs=30)
      self._writer.add_text("trial", f"{spec.trial_id} {spec.workload} {spec.optimizer} "
                            + json.dumps(dict(hparams), sort_keys=True, default=str), 0)

  def write(self, row: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    step = int(row["step"])
    for k, v in row.items():
      if k not in ("step", "wall_time") and isinstance(v, (int, float)) and math.isfinite(v):
        self._writer.add_scalar(k, v, step)

  def __enter__(self) -> "EventWriter":
    return self

  def __exit__(self, *exc) -> None:
    if self._writer is not None:
      self._writer.close()
