"""The results store: a directory tree, one folder per trial, append-only.

Every file is written atomically (temp file + fsync + rename), so a reader
never sees half a file and a SIGKILL leaves either the old state or the new.
A trial folder holds `record.json` once the trial has ended, and a `lock`
file that a running process holds with flock, so concurrent copies of a study
run each trial once. Paths go through etils.epath, so a cloud
bucket path works wherever the path library supports it.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from typing import Any

from etils import epath

RECORD = "record.json"
LOCK = "lock"


class StoreError(ValueError):
  pass


def write_json_atomic(path: epath.PathLike, obj: Any) -> None:
  """Write JSON so that `path` is either absent, the old file, or the whole new one."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
  text = json.dumps(obj, indent=1, sort_keys=True, default=_json_default)
  if "://" not in str(path):
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  else:  # object stores: the rename of a complete object is the commit
    tmp.write_text(text)
    tmp.rename(path)


def _json_default(x):
  if hasattr(x, "item"):
    return x.item()
  if hasattr(x, "tolist"):
    return x.tolist()
  raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def read_json(path: epath.PathLike) -> Any:
  with epath.Path(path).open() as f:
    return json.load(f)


def check_writable(output_dir: epath.PathLike) -> epath.Path:
  """Fail early, in one line, if the results directory cannot be written."""
  d = epath.Path(output_dir)
  try:
    d.mkdir(parents=True, exist_ok=True)
    probe = d / f".write_probe.{uuid.uuid4().hex}"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise StoreError(f"output_dir {output_dir} is not writable: {e.strerror or e}") from None
  return d


class TrialLock:
  """An exclusive, non-blocking lock on one trial folder (fcntl.flock).

  The kernel drops the lock when its process dies, SIGKILL included, so a
  killed run leaves no stale claim behind. Works on local disks and NFS v4.
  Object stores have no locks: there, shards (--shard=i/n) own disjoint trials.
  """

  def __init__(self, trial_dir: epath.PathLike):
    self.path = os.path.join(os.fspath(trial_dir), LOCK)
    self._fd: int | None = None

  def acquire(self, attempts: int = 1, wait: float = 0.05) -> bool:
    """Take the lock; False if another process holds it after `attempts` tries.

    Runners pass attempts > 1 so that a momentary probe (is_locked, e.g. from
    bench.status) is never mistaken for a running copy of the trial."""
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
    for i in range(attempts):
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd
        return True
      except BlockingIOError:
        if i + 1 < attempts:
          time.sleep(wait)
    os.close(fd)
    return False

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> bool:
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def is_locked(trial_dir: epath.PathLike) -> bool:
  """Whether some live process holds the trial's lock (i.e. it is running).
  Probes by taking the lock for an instant (see TrialLock.acquire)."""
  lock = TrialLock(trial_dir)
  if not os.path.exists(lock.path):
    return False
  if lock.acquire():
    lock.release()
    return False
  return True


def has_record(trial_dir: epath.PathLike) -> bool:
  return (epath.Path(trial_dir) / RECORD).exists()
