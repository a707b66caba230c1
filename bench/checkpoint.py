"""Mid-trial checkpoints, so a preempted trial resumes where it stopped.

A checkpoint is orbax's save of one trial's loop state (parameters, model
state, optimizer state with its hyperparameter values; the data order and a
stream restart from the step) at a dispatch boundary, in `step_<N>/`, plus `state.json` naming it together with
the step, the curve so far and the loop's counters. state.json is written
atomically only after orbax has finished, so it always names a complete
checkpoint; older ones are removed after that.
Randomness is a function of the global step, so a resumed trial computes
exactly what the uninterrupted one would have. A pack saves each lane into
its own trial's folder, so a trial resumes whether or not it is packed again.

In a multi-process trial every process calls save/restore (orbax writes each
process's shards); process 0 alone edits state.json and removes old saves,
behind barriers, so the directory must be shared storage.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from bench import parallel, store

STATE = "state.json"


def saved_step(directory: epath.PathLike) -> int:
  """The step of the last complete save in `directory` (0: none)."""
  path = epath.Path(directory) / STATE
  if not path.exists():
    return 0
  try:
    return int(store.read_json(path)["step"])
  except (OSError, ValueError, KeyError, TypeError):
    return 0


class TrialCheckpointer:
  def __init__(self, directory: epath.PathLike):
    self.dir = epath.Path(directory)
    if "://" not in str(directory):
      self.dir = self.dir.absolute()  # orbax wants absolute paths
    self._orbax = None  # made on first use: most trials never save

  @property
  def _ckpt(self) -> ocp.StandardCheckpointer:
    if self._orbax is None:
      self._orbax = ocp.StandardCheckpointer()
    return self._orbax

  def saved_step(self) -> int:
    return saved_step(self.dir)

  def restore(self, like: Any) -> tuple[Any, dict[str, Any]] | None:
    """(state shaped like `like`, metadata) of the last complete save, or None.
    `like` may hold arrays or jax.ShapeDtypeStruct leaves. The save named by
    state.json must be a step_<N> folder of this checkpoint directory: the
    store's files never choose what is read from elsewhere."""
    if not (self.dir / STATE).exists():
      return None
    meta = store.read_json(self.dir / STATE)
    name = meta.get("name") if isinstance(meta, dict) else None
    if not (isinstance(name, str) and re.fullmatch(r"step_\d+", name)):
      raise StorageFailure(f"{self.dir / STATE}: names checkpoint {name!r}, not a step_<N> "
                           "folder here; move the checkpoint folder aside to start the trial "
                           "afresh")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with _storage(self.dir / name, "restoring a checkpoint"):
      state = self._ckpt.restore(self.dir / name, abstract)
    return state, meta

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Blocking save (the caller donates these buffers to the next dispatch)."""
    name = f"step_{step}"
    target = self.dir / name
    if parallel.is_primary():
      target.rmtree(missing_ok=True)  # left by a save that died before state.json named it
    _barrier("before save")
    with _storage(target, "saving a checkpoint"):
      self._ckpt.save(target, state)
      self._ckpt.wait_until_finished()
    if parallel.is_primary():
      store.write_json_atomic(self.dir / STATE, {**meta, "step": step, "name": name})
      for old in self.dir.glob("step_*"):
        if old.name != name:
          old.rmtree(missing_ok=True)
    _barrier("after save")

  def clear(self) -> None:
    """Remove every checkpoint: the trial has its record now."""
    _barrier("before clear")
    if parallel.is_primary() and self.dir.exists():
      self.dir.rmtree(missing_ok=True)


class StorageFailure(OSError):
  """The checkpoint storage failed (disk full, permissions, a lost mount): an
  error of the environment, not of the trial; its message names the path."""


@contextlib.contextmanager
def _storage(path: epath.Path, doing: str):
  """orbax and tensorstore report a full disk as their own errors (e.g. a
  ValueError 'RESOURCE_EXHAUSTED ... No space left on device'): one kind here."""
  try:
    yield
  except OSError:
    raise
  except Exception as e:  # noqa: BLE001 - re-raised as what it is
    raise StorageFailure(f"{path}: {doing} failed: {str(e).splitlines()[0][:300]}") from e


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"bench.checkpoint: {name}")
