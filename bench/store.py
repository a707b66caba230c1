"""The results store: a directory tree, one folder per trial, append-only.

Every file is written atomically (temp file + fsync + rename), so a reader
never sees half a file and a SIGKILL leaves either the old state or the new.
A trial folder holds `record.json` once the trial has ended, and a `lock`
file that a running process holds with flock, so concurrent copies of a study
run each trial once. A record.json that is not a valid record (damaged,
truncated, of another schema) is moved aside, kept, and its trial run again;
temp files whose writer died are removed. Paths go through etils.epath, so a
cloud bucket path works wherever the path library supports it.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import uuid
from typing import Any

from etils import epath

from analysis import interrupts, record

RECORD = record.RECORD
LOCK = "lock"
# A trial folder: tNNNN (search trial N) or tNNNNrJ (seed rerun J of its point).
TRIAL_FOLDER = re.compile(r"t\d{4,}(r\d+)?")


class StoreError(ValueError):
  pass


def _host() -> str:
  return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40]


def _tmp_name(path: epath.Path) -> epath.Path:
  """.<name>.<host>.<pid>.<random>.tmp: who wrote it, so that a temp file left
  by a writer that died can be told from one being written (clean_stale_tmp)."""
  return path.parent / f".{path.name}.{_host()}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def write_json_atomic(path: epath.PathLike, obj: Any) -> None:
  """Write JSON so that `path` is either absent, the old file, or the whole new one.
  A failed write (a full disk) removes its temp file and raises an OSError
  naming `path`; a signal received while writing is raised once it is done."""
  path = epath.Path(path)
  text = json.dumps(obj, indent=1, sort_keys=True, default=_json_default)
  with interrupts.shielded():
    tmp = _tmp_name(path)
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      if "://" not in str(path):
        with open(tmp, "w") as f:
          f.write(text)
          f.flush()
          os.fsync(f.fileno())
        os.replace(tmp, path)
      else:  # object stores: the rename of a complete object is the commit
        tmp.write_text(text)
        tmp.rename(path)
    except OSError as e:
      try:
        tmp.unlink(missing_ok=True)
      except OSError:
        pass
      if e.errno is None or (e.filename and e.filename != str(tmp)):
        raise  # names its path already (e.g. the folder that could not be made)
      raise OSError(e.errno, e.strerror, str(path)) from e


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


def read_record(trial_dir: epath.PathLike) -> tuple[dict[str, Any] | None, str | None]:
  """(record, None) for a valid record.json, (None, why) for one that is not
  (unreadable, truncated, foreign, another schema), (None, None) for none: one
  read, by the same rule as analysis.load (analysis.record.problem)."""
  path = epath.Path(trial_dir) / RECORD
  if not path.exists():
    return None, None
  try:
    rec = read_json(path)
  except (OSError, ValueError) as e:
    return None, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
  why = record.problem(rec)
  return (rec, None) if why is None else (None, why)


def set_aside(trial_dir: epath.PathLike) -> epath.Path:
  """Move an invalid record.json out of the way (kept, never deleted), so the
  trial runs again: record.json -> record.json.bad-<UTC time>."""
  src = epath.Path(trial_dir) / RECORD
  dst = src.parent / f"{RECORD}.bad-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
  n = 0
  while dst.exists():
    n += 1
    dst = src.parent / f"{RECORD}.bad-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.{n}"
  src.rename(dst)
  return dst


def trial_folders(study_dir: epath.PathLike) -> list[epath.Path]:
  """The study's trial folders: real folders (no links) named like a trial."""
  d = epath.Path(study_dir)
  if not d.exists():
    return []
  return sorted(p for p in d.iterdir() if TRIAL_FOLDER.fullmatch(p.name) and p.is_dir()
                and not os.path.islink(os.fspath(p)))


def clean_stale_tmp(folder: epath.PathLike, max_age_sec: float = 86400.0) -> int:
  """Remove temp files (write_json_atomic's) whose writer is gone: written on
  this host by a process that no longer runs, or older than max_age_sec from
  another host (a live writer renames its temp file within seconds)."""
  d = epath.Path(folder)
  if "://" in str(d) or not d.is_dir():
    return 0
  host = _host()
  removed = 0
  for p in d.glob(".*.tmp"):
    parts = p.name.split(".")
    try:
      mine, pid = parts[-4] == host, int(parts[-3])
    except (IndexError, ValueError):
      mine, pid = False, -1
    try:
      stale = (not _alive(pid)) if mine else time.time() - p.stat().st_mtime > max_age_sec
      if stale:
        p.unlink()
        removed += 1
    except OSError:
      pass  # gone already, or not ours to remove
  return removed


def _alive(pid: int) -> bool:
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True
