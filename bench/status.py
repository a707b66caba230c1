"""Progress of every study in a results directory, read from the store alone.

  python -m bench.status --output_dir=DIR

One line per study: finished trials by status (ok / diverged / failed), trials
running now (their lock is held by a live process), interrupted ones (started,
no record, nobody holds the lock: the next `bench.run` reruns them), invalid
ones (a record that is unreadable, truncated or of another schema, by the same
rule as bench.run and analysis.load: the next `bench.run` sets it aside and
reruns the trial), pending ones, and an ETA from the mean wall time of the
finished trials. Only folders named like trials count (tNNNN, tNNNNrJ; no
links). Works while shards are running and after they end; it never changes
the store.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

from absl import app, flags

from bench import progress, store

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Results directory written by bench.run.")


@dataclasses.dataclass
class StudyStatus:
  study_id: str
  total: int              # trials the protocol asks for (search + seed reruns)
  ok: int = 0
  diverged: int = 0
  failed: int = 0
  running: int = 0
  interrupted: int = 0
  unreadable: int = 0
  mean_trial_sec: float = math.nan

  @property
  def finished(self) -> int:
    return self.ok + self.diverged + self.failed

  @property
  def pending(self) -> int:
    return max(self.total - self.finished - self.running - self.interrupted - self.unreadable, 0)

  @property
  def eta_sec(self) -> float:
    left = self.total - self.finished
    return left * self.mean_trial_sec / max(self.running, 1) if left else 0.0


def study_status(study_dir: str) -> StudyStatus:
  """Counts for one study folder (holding study.json and tNNNN/ trial folders)."""
  study = store.read_json(os.path.join(study_dir, "study.json"))
  budget = (study.get("protocol") or {}).get("budget") or {}
  s = StudyStatus(study.get("study_id", os.path.basename(study_dir)),
                  sum(progress.budget_trials(budget)))
  times = []
  for tdir in store.trial_folders(study_dir):
    rec, why = store.read_record(tdir)
    if rec is not None:
      setattr(s, rec["status"], getattr(s, rec["status"]) + 1)
      times.append(float(rec.get("wall_time_sec") or math.nan))
    elif why is not None:  # what bench.run sets aside and reruns
      s.unreadable += 1
    elif store.is_locked(tdir):
      s.running += 1
    else:
      s.interrupted += 1
  times = [t for t in times if math.isfinite(t)]
  s.mean_trial_sec = sum(times) / len(times) if times else math.nan
  s.total = max(s.total, s.finished + s.running + s.interrupted + s.unreadable)
  return s


def collect(output_dir: str) -> list[StudyStatus]:
  """Every study under output_dir (one level down, as bench.run writes them)."""
  out = []
  for name in sorted(os.listdir(output_dir)):
    d = os.path.join(output_dir, name)
    if os.path.isfile(os.path.join(d, "study.json")):
      out.append(study_status(d))
  return out


def format_table(rows: list[StudyStatus]) -> str:
  head = ("study", "done", "ok", "diverged", "failed", "running", "interrupted", "invalid",
          "pending", "ETA")
  counts = ("ok", "diverged", "failed", "running", "interrupted", "unreadable", "pending")
  lines = [[r.study_id, f"{r.finished}/{r.total}", *(getattr(r, k) for k in counts),
            progress.format_duration(r.eta_sec)] for r in rows]
  if rows:
    lines.append(["all", f"{sum(r.finished for r in rows)}/{sum(r.total for r in rows)}",
                  *(sum(getattr(r, k) for r in rows) for k in counts), ""])
  cells = [list(map(str, head))] + [[str(c) for c in line] for line in lines]
  widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  d = _OUTPUT_DIR.value
  if not d or not os.path.isdir(d):
    sys.exit(f"error: --output_dir {d}: not a directory")
  try:
    rows = collect(d)
  except (OSError, json.JSONDecodeError) as e:
    sys.exit(f"error: cannot read {d}: {e}")
  if not rows:
    sys.exit(f"error: no study (study.json) under {d}")
  print(format_table(rows))


if __name__ == "__main__":
  app.run(main)
