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

from analysis import interrupts
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
      raise StorageFailure(None, f"names checkpoint {name!r}, not a step_<N> folder here; "
                           "move the checkpoint folder aside to start the trial afresh",
                           str(self.dir / STATE))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with _storage(self.dir / name, "restoring a checkpoint"):
      state = self._ckpt.restore(self.dir / name, abstract)
    return state, meta

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Blocking save (the caller donates these buffers to the next dispatch)."""
    interrupts.check()  # a safe point: nothing of this save written yet
    name = f"step_{step}"
    target = self.dir / name
    if parallel.is_primary():  # left by a save that died before state.json named it
      for partial in self._partial(name):
        partial.rmtree(missing_ok=True)
    _barrier("before save")
    try:
      with _storage(target, "saving a checkpoint"):
        self._ckpt.save(target, state)
        self._ckpt.wait_until_finished()
    except StorageFailure:
      if parallel.is_primary():  # give back the room the partial save took
        for partial in self._partial(name):
          with contextlib.suppress(OSError):
            partial.rmtree(missing_ok=True)
      raise
    if parallel.is_primary():
      store.write_json_atomic(self.dir / STATE, {**meta, "step": step, "name": name})
      for old in self.dir.glob("step_*"):
        if old.name != name:
          old.rmtree(missing_ok=True)
    _barrier("after save")

  def _partial(self, name: str) -> list[epath.Path]:
    """What a save of `name` that did not finish left: step_N and orbax's
    step_N.orbax-checkpoint-tmp(-<n>) folder."""
    return [p for p in self.dir.glob(f"{name}*")
            if p.name == name or p.name.startswith(f"{name}.")]

  def clear(self) -> None:
    """Remove every checkpoint: the trial has its record now."""
    _barrier("before clear")
    if parallel.is_primary() and self.dir.exists():
      self.dir.rmtree(missing_ok=True)


class StorageFailure(OSError):
  """The checkpoint storage failed (disk full, permissions, a lost mount): an
  error of the environment, not of the trial. OSError(errno, the OS's words,
  path) plus what was being done; str() is '<path>: <cause> (<doing>)'."""

  def __init__(self, errno: int | None, strerror: str, filename: str, doing: str = ""):
    super().__init__(errno, strerror, filename)
    self.doing = doing

  def __str__(self) -> str:
    return f"{self.filename}: {self.strerror}" + (f" ({self.doing})" if self.doing else "")


@contextlib.contextmanager
def _storage(path: epath.Path, doing: str):
  """orbax and tensorstore report a full disk as their own errors (a ValueError
  'RESOURCE_EXHAUSTED: Error writing ... No space left on device
  [os_error_code='28']', while their threads log it again and again): one
  StorageFailure here, naming the OS's cause and the checkpoint's path, with
  the libraries' own output held back (interrupts.library_output_held)."""
  try:
    with interrupts.library_output_held():
      yield
  except KeyboardInterrupt:
    raise
  except Exception as e:  # noqa: BLE001 - re-raised as what it is
    if interrupts.pending():  # the library turned the signal into its own error
      raise interrupts.Interrupted(interrupts.pending()) from None
    code, words, _ = interrupts.os_cause(e)
    if words is None:
      words = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
    raise StorageFailure(code, words, str(path), doing) from e


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"bench.checkpoint: {name}")
