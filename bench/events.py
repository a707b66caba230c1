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
import os
import time
from typing import Any, Mapping

from analysis import interrupts

FLUSH_SEC = 30.0  # events reach the disk at least this often (and when the trial ends)


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
  """Writes curve rows as scalars; does nothing when `directory` is None.

  The events are written in the calling thread (tensorboardX's EventsWriter,
  not its SummaryWriter, whose queue thread and exit handler would report a
  full disk as tracebacks of their own and never to the trial): a failed write
  raises an OSError here that names the events file, which stops the run as any
  error of the environment does. Each evaluation is a safe point for a signal
  (analysis.interrupts.check)."""

  def __init__(self, directory: str | None, spec: Any, hparams: Mapping[str, Any]):
    self._writer = None
    self._hparams = None
    self._end = None
    self._last_flush = time.monotonic()
    if directory:
      from tensorboardX.event_file_writer import EventsWriter  # only when events are wanted
      from tensorboardX.record_writer import directory_check
      from tensorboardX.summary import text
      self._guard(lambda: directory_check(directory), directory)
      self._writer = self._guard(lambda: EventsWriter(os.path.join(directory, "events")),
                                 directory)
      self.path = self._writer._file_name  # pylint: disable=protected-access
      self._add(text("trial", f"{spec.trial_id} {spec.workload} {spec.optimizer} "
                     + json.dumps(dict(hparams), sort_keys=True, default=str)), 0)
      self._hparams = hparam_values(spec, hparams)

  def _guard(self, fn, path=None):
    """Run a write; an OSError names the events file (the OS's message often does not)."""
    try:
      return fn()
    except OSError as e:
      raise OSError(e.errno, e.strerror or str(e), path or self.path) from None

  def _add(self, summary: Any, step: int) -> None:
    from tensorboardX.proto import event_pb2
    event = event_pb2.Event(summary=summary, wall_time=time.time(), step=int(step))
    self._guard(lambda: self._writer.write_event(event))

  def _start_session(self, metrics: list[str]) -> None:
    """HParams experiment + session start, once the eval metrics' names are known."""
    from tensorboardX.summary import hparams as hparams_summaries
    exp, ssi, self._end = hparams_summaries(self._hparams, {m: 0.0 for m in metrics})
    for summary in (exp, ssi):
      self._add(summary, 0)
    self._hparams = None

  def write(self, row: Mapping[str, float]) -> None:
    interrupts.check()
    if self._writer is None:
      return
    from tensorboardX.summary import scalar
    if self._hparams is not None:
      self._start_session(sorted(k for k, v in row.items() if k not in ("step", "wall_time")
                                 and isinstance(v, (int, float))))
    step = int(row["step"])
    for k, v in row.items():
      if k not in ("step", "wall_time") and isinstance(v, (int, float)) and math.isfinite(v):
        self._add(scalar(k, v), step)
    if time.monotonic() - self._last_flush > FLUSH_SEC:
      self._guard(self._writer.flush)
      self._last_flush = time.monotonic()

  def __enter__(self) -> "EventWriter":
    return self

  def __exit__(self, exc_type, *exc) -> None:
    if self._writer is None:
      return
    if exc_type is not None:  # the trial did not end: no session end; keep the error raised
      try:
        self._writer.close()
      except OSError:
        pass
      return
    if self._hparams is not None:
      # Never evaluated (diverged at once): still a row of the HParams table, with its
      # hyperparameters, but no experiment summary (it would have no metrics).
      from tensorboardX.summary import hparams as hparams_summaries
      _, ssi, self._end = hparams_summaries(self._hparams, {})
      self._add(ssi, 0)
    if self._end is not None:  # a session was started: end it
      self._add(self._end, 0)
    self._guard(self._writer.close)
