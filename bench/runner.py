"""Run a study's unfinished trials and store them: locks, packs, progress, seed reruns.

A trial is done when its record.json exists; a running one holds its folder's
lock, so copies of a runner (shards, Ray tasks, a rerun after a crash) share a
study folder without running a trial twice.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable, Mapping, Sequence

from etils import epath

import protocols
from analysis import interrupts
from analysis.record import objective_value
from bench import loop, packing, store, trial
from bench.progress import budget_trials, format_duration
from bench.study import Study, trial_folder, trial_specs


def new_counts() -> dict[str, int]:
  """What a runner did with the trials it looked at: ran, already done, running elsewhere."""
  return {"ran": 0, "skipped": 0, "busy": 0}


class StudyRunner:
  """Runs the trials of one study that this process owns and nobody finished.

  `pack` says how trials share dispatches: 'off' runs each alone; an integer
  K runs up to K trials of one program as the lanes of a pack; 'auto' lets
  bench.packing choose K by a timed probe (remembered per machine)."""

  def __init__(self, study: Study, output_dir: epath.PathLike, *, shard: tuple[int, int] = (0, 1),
               log: Callable[[str], None] = print, trial_log: Callable[[str], None] | None = None,
               pack: str | int = "off"):
    self.study = study
    self.dir = epath.Path(output_dir) / study.study_id
    self.shard = shard
    self.log = log
    self.trial_log = trial_log or (lambda s: None)
    self.pack = packing.parse(pack)
    self.num_trials, self.num_reruns = budget_trials(study.protocol.budget)
    self.adaptive = study.protocol.sampler.name == "bayesian"
    self._done: tuple[float, int] | None = None  # (when counted, records found then)

  # ----- setup, before any compute -----
  def prepare(self, write: bool = True) -> list[trial.PreparedTrial]:
    """Validate the protocol, the store's study.json and every trial's settings;
    write study.json if `write` (bench.run writes it only once every study of
    the experiment has passed, so a rejected run leaves nothing behind)."""
    protocols.validate(self.study.protocol)
    self.check_store()
    if write:
      self.write_metadata()
    points = protocols.sample_points(self.study.protocol, self.study.point_seed,
                                     self.num_trials, self._history())
    return [trial.prepare(s) for s in trial_specs(self.study, points)]

  def check_store(self) -> dict[str, Any] | None:
    """The store's study.json for this study id, if any; refuses (one line) one
    that was run with another protocol or other settings under the same name."""
    meta = self.study.metadata()
    path = self.dir / "study.json"
    if not path.exists():
      return None
    try:
      old = store.read_json(path)
    except (OSError, ValueError):
      return None
    if old.get("protocol_hash") != meta["protocol_hash"] and "protocol" in old:
      what = "; ".join(protocols.changes(protocols.protocol.identity(old["protocol"]),
                                         protocols.protocol.identity(self.study.protocol)))
      raise store.StoreError(
          f"study {self.study.study_id} in {self.dir.parent} was run with another protocol "
          f"({what or 'protocol hash ' + str(old.get('protocol_hash'))}); name this one "
          "differently (protocols.make(name=...) / the preset's name) or use another --output_dir")
    if old.get("study_hash") != meta["study_hash"]:
      raise store.StoreError(
          f"study {self.study.study_id} in {self.dir.parent} was run with other settings "
          f"({old.get('settings')} vs {meta['settings']}); use another --output_dir")
    return old

  def write_metadata(self) -> None:
    """study.json: written once; rewritten only to record a grown budget."""
    old = self.check_store()
    meta = self.study.metadata()
    if old is None or old.get("protocol", {}).get("budget") != meta["protocol"]["budget"]:
      store.write_json_atomic(self.dir / "study.json", meta)

  def _records(self) -> dict[int, dict[str, Any]]:
    """The search trials' valid records, by trial index (seed reruns left out;
    an invalid record counts as missing: its trial runs again)."""
    out = {}
    for d in store.trial_folders(self.dir):
      rec = store.read_record(d)[0] if re.fullmatch(r"t\d{4,}", d.name) else None
      if rec is not None:
        out[int(rec["trial_index"])] = rec
    return out

  def _history(self) -> list[tuple[dict, float | None]]:
    if not self.adaptive:
      return []
    recs = self._records()
    history = []
    for i in sorted(recs):
      if i >= self.num_trials:
        break
      point = {**recs[i]["hparams"], "optimizer": recs[i]["optimizer"]}
      history.append((point, objective_value(recs[i], self.study.protocol.objective)))
    return history

  # ----- execution -----
  def run(self, prepared: Sequence[trial.PreparedTrial] | None = None,
          counts: dict[str, int] | None = None) -> dict[str, int]:
    """Run owned, unfinished trials; then the best point's extra seeds if any.
    `counts` (new_counts()) is filled as trials end, so a caller interrupted
    half-way knows what finished."""
    prepared = list(prepared) if prepared is not None else self.prepare()
    counts = new_counts() if counts is None else counts
    t_start = time.perf_counter()
    owned = [p for p in prepared if p.spec.trial_index % self.shard[1] == self.shard[0]]
    if self.adaptive:  # each point depends on the trials finished so far: one at a time
      for p in owned:
        self.run_one(self.adaptive_trial(p.spec.trial_index), counts, t_start)
    else:
      self.run_trials(owned, counts, t_start)
    self.rerun_best(counts, t_start)
    return counts

  def adaptive_trial(self, index: int) -> trial.PreparedTrial:
    point = protocols.sample_points(self.study.protocol, self.study.point_seed, index + 1,
                                    self._history())[index]
    return trial.prepare(trial_specs(self.study, [point], start=index)[0])

  def trial_dir(self, p: trial.PreparedTrial) -> epath.Path:
    return self.dir / trial_folder(p.spec.trial_index, p.spec.rerun)

  def run_one(self, p: trial.PreparedTrial, counts: dict[str, int], t_start: float) -> None:
    """Run one trial alone (unless finished or running elsewhere)."""
    self.run_trials([p], counts, t_start, pack=packing.SOLO)

  def run_trials(self, trials: Sequence[trial.PreparedTrial], counts: dict[str, int],
                 t_start: float, pack: int | str | None = None) -> None:
    """Run the unfinished ones among `trials`, packed as `pack` (default: the
    runner's) says. A pack holds trials of one program resuming from one step;
    each lane's trial folder is locked while it runs and gets its record as
    soon as the lane ends."""
    pack = self.pack if pack is None else pack
    store.clean_stale_tmp(self.dir)
    todo = []
    for p in trials:
      if self._finished(self.trial_dir(p)):
        counts["skipped"] += 1
      else:
        todo.append(p)
    groups: dict[tuple, list[trial.PreparedTrial]] = {}
    for p in todo:
      step = loop.restored_step(str(self.trial_dir(p) / "checkpoint"))
      groups.setdefault((p.pack_key, step), []).append(p)
    # Resumed trials first (they are closest to done), then in index order.
    for (_, step), group in sorted(groups.items(), key=lambda kv: (-kv[0][1],
                                                                   kv[1][0].spec.trial_index)):
      size = packing.lanes_for(pack, group[0], len(group), log=self.log)
      queue = list(group)
      while queue:
        locked = self._lock_some(queue, size, counts)
        if locked:
          self._run_locked(locked, size > 1, counts, t_start)

  def _lock_some(self, queue: list[trial.PreparedTrial], size: int,
                 counts: dict[str, int]) -> list[tuple[trial.PreparedTrial, store.TrialLock]]:
    """Take up to `size` trials off the queue whose locks this process gets."""
    locked = []
    while queue and len(locked) < size:
      p = queue.pop(0)
      tdir = self.trial_dir(p)
      lock = store.TrialLock(tdir)
      if not lock.acquire(attempts=5):
        counts["busy"] += 1
        continue
      if self._finished(tdir, set_aside=True):  # finished by another copy while we looked
        lock.release()
        counts["skipped"] += 1
        continue
      store.clean_stale_tmp(tdir)
      locked.append((p, lock))
    return locked

  def _finished(self, tdir: epath.Path, set_aside: bool = False) -> bool:
    """Whether the trial has a valid record. An invalid one (unreadable,
    truncated, another schema) is moved aside when `set_aside` (under the
    trial's lock), so the trial runs again."""
    rec, why = store.read_record(tdir)
    if rec is not None:
      return True
    if why is not None and set_aside:
      kept = store.set_aside(tdir)
      self.log(f"[{self.study.study_id}] {tdir.name}: invalid record ({why}), kept as "
               f"{kept.name}; the trial runs again")
    return False

  def _run_locked(self, locked: Sequence[tuple[trial.PreparedTrial, store.TrialLock]],
                  packed: bool, counts: dict[str, int], t_start: float) -> None:
    trials = [p for p, _ in locked]
    dirs = [self.trial_dir(p) for p in trials]

    def store_record(i: int, rec: dict[str, Any]) -> None:
      # After a signal nothing more is recorded: the trial may have ended because
      # of it (a library turning the interrupt into its own error); it reruns.
      interrupts.check()
      with interrupts.shielded():  # the record and its count, or neither
        store.write_json_atomic(dirs[i] / store.RECORD, rec)
        locked[i][1].release()
        counts["ran"] += 1
      self.log(self._progress(rec, counts, t_start))

    try:
      trial.run_pack(trials, [self._lane_log(p, packed) for p in trials],
                     [str(d / "checkpoint") for d in dirs], [str(d / "events") for d in dirs],
                     packed=packed, on_record=store_record)
    finally:
      for _, lock in locked:
        lock.release()

  def _lane_log(self, p: trial.PreparedTrial, packed: bool) -> Callable[[str], None]:
    if not packed:
      return self.trial_log
    return lambda line, i=p.spec.trial_index: self.trial_log(f"t{i:04d} {line}")

  def _done_count(self, counts: Mapping[str, int]) -> int:
    """Records in the study folder, recounted at most every 10 s (other shards
    add theirs) and otherwise advanced by this runner's own."""
    now = time.perf_counter()
    if self._done is None or now - self._done[0] > 10:
      found = sum(1 for d in store.trial_folders(self.dir) if store.has_record(d))
      self._done = (now, found - counts["ran"])
    return self._done[1] + counts["ran"]

  def _progress(self, rec: Mapping[str, Any], counts: Mapping[str, int], t_start: float) -> str:
    done = self._done_count(counts)
    total = self.num_trials + self.num_reruns
    elapsed = time.perf_counter() - t_start
    mine_left = max(total - done, 0) / self.shard[1]
    eta = elapsed / counts["ran"] * mine_left
    obj = objective_value(rec, self.study.protocol.objective)
    best = rec.get("best") or {}
    metric = f"val/{rec['workload']['goal']['metric']}"
    pack = f", pack of {rec['pack_size']}" if rec.get("pack_size", 1) > 1 else ""
    return (f"[{self.study.study_id}] trial {rec['trial_index'] + 1}/{total} {rec['status']:8s} "
            f"{metric} {best.get(metric, float('nan')):.4g}  goal@{rec['goal_step']}  "
            f"objective {'-' if obj is None else f'{obj:.4g}'}  "
            f"({rec['wall_time_sec']:.1f}s{pack}, {done}/{total} done, "
            f"ETA {format_duration(eta)})")

  def rerun_best(self, counts: dict[str, int], t_start: float) -> None:
    extra = self.num_reruns
    if not extra:
      return
    recs = self._records()
    missing = [i for i in range(self.num_trials) if i not in recs]
    if missing:
      self.log(f"[{self.study.study_id}] {len(missing)} trials unfinished elsewhere: the "
               f"best point's {extra} reruns wait for them (run again to do them)")
      return
    scored = [(objective_value(recs[i], self.study.protocol.objective), i)
              for i in range(self.num_trials)]
    scored = [(v, i) for v, i in scored if v is not None]
    if not scored:
      self.log(f"[{self.study.study_id}] no successful trial to rerun")
      return
    index = min(scored)[1]
    point = {**recs[index]["hparams"], "optimizer": recs[index]["optimizer"]}
    specs = [trial_specs(self.study, [point], start=index, rerun=j)[0]
             for j in range(1, extra + 1)]
    # Own reruns first, then any other shard's not yet taken: a shard that
    # finished early has already left, so the last one to finish does the rest
    # (the trial lock keeps each rerun to one process).
    specs.sort(key=lambda p: p.rerun % self.shard[1] != self.shard[0])
    self.run_trials([trial.prepare(p) for p in specs], counts, t_start)
