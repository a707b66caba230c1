"""TensorBoard event files per trial (tensorboardX: no TensorFlow needed).

`tensorboard --logdir=<output_dir>` then shows every trial's eval curve, named
by its trial id, with the hyperparameters as text, and the HParams dashboard
(table, parallel coordinates, scatter matrix) of every study: each trial's run
carries the plugin's experiment and session-start summaries (its
hyperparameters, the seed, and the eval metrics as the dashboard's metrics),
and a session-end summary when the trial ends. The record stays the source of
truth (its status included); events are for watching runs.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping


def hparam_values(spec: Any, hparams: Mapping[str, Any]) -> dict[str, Any]:
  """The HParams dashboard's columns: numbers, strings and booleans as they are,
  anything else as its JSON text; plus the trial's optimizer, workload and seed."""
  out: dict[str, Any] = {"optimizer": str(spec.optimizer), "workload": str(spec.workload),
                         "seed": int(spec.seed)}
  for k, v in hparams.items():
    if isinstance(v, bool) or isinstance(v, str):
      out[k] = v
    elif isinstance(v, (int, float)):
      out[k] = float(v)
    else:
      out[k] = json.dumps(v, sort_keys=True, default=str)
  return out


class EventWriter:
  """Writes curve rows as scalars; does nothing when `directory` is None."""

  def __init__(self, directory: str | None, spec: Any, hparams: Mapping[str, Any]):
    self._writer = None
    self._hparams = None
    if directory:
      from tensorboardX import SummaryWriter  # imported only when events are wanted
      self._writer = SummaryWriter(logdir=directory, flush_secs=30)
      self._writer.add_text("trial", f"{spec.trial_id} {spec.workload} {spec.optimizer} "
                            + json.dumps(dict(hparams), sort_keys=True, default=str), 0)
      self._hparams = hparam_values(spec, hparams)

  def _start_session(self, metrics: list[str]) -> None:
    """HParams experiment + session start, once the eval metrics' names are known."""
    from tensorboardX.summary import hparams as hparams_summaries
    exp, ssi, self._end = hparams_summaries(self._hparams, {m: 0.0 for m in metrics})
    for summary in (exp, ssi):
      self._writer.file_writer.add_summary(summary)
    self._hparams = None

  def write(self, row: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    if self._hparams is not None:
      self._start_session(sorted(k for k, v in row.items() if k not in ("step", "wall_time")
                                 and isinstance(v, (int, float))))
    step = int(row["step"])
    for k, v in row.items():
      if k not in ("step", "wall_time") and isinstance(v, (int, float)) and math.isfinite(v):
        self._writer.add_scalar(k, v, step)

  def __enter__(self) -> "EventWriter":
    return self

  def __exit__(self, *exc) -> None:
    if self._writer is not None:
      if self._hparams is None:  # a session was started: end it
        self._writer.file_writer.add_summary(self._end)
      self._writer.close()
