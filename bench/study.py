"""Studies: sample a protocol's trials, run the unfinished ones, store them.

A study folder `<output_dir>/<study_id>/` holds `study.json` (the protocol,
its identity hash, the scientific settings) and one folder per trial: `tNNNN/`
for search trial N, `tNNNNrJ/` for the J-th seed rerun of its point. Points,
trial ids and seeds are functions of (protocol identity, study seed, trial
index), so every copy of a study (shards, reruns after a crash) agrees on them,
and growing its budget keeps every finished trial. A trial is done when its
record.json exists; a running one holds its folder's lock.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from typing import Any, Callable, Mapping, Sequence

from etils import epath

import protocols
import workloads
from analysis import interrupts
from bench import loop, packing, store, trial
from bench.progress import budget_trials, format_duration
from bench.settings import STUDY_FIELDS, SettingsError, TrialSettings


@dataclasses.dataclass(frozen=True)
class Study:
  """One protocol at one setting of the scientific hyperparameters."""
  experiment: str
  workload: str
  protocol: Any                          # ml_collections.ConfigDict
  scientific: Mapping[str, Any]          # e.g. {'batch_size': 128}
  study_seed: int
  settings: TrialSettings = TrialSettings()
  # The folder a workload file named by a relative path is in: the recipe's
  # (paths in a recipe are relative to it). Not part of the identity, so a
  # study is the same study wherever its recipe folder is.
  base_dir: str = ""

  @property
  def workload_ref(self) -> str:
    """The workload as the trials load it: a relative 'file.py:Class' joined
    to base_dir; a registered name or 'module:Class' as it is."""
    return resolve_workload(self.workload, self.base_dir)

  @property
  def protocol_hash(self) -> str:
    """The hash of what the trials compute (protocols.identity_hash): the same
    when only the study's size changes."""
    return protocols.identity_hash(self.protocol)

  def identity(self) -> dict[str, Any]:
    """Everything that changes what the study's trials compute."""
    return {"protocol_hash": self.protocol_hash, "workload": self.workload,
            "scientific": dict(self.scientific), "study_seed": self.study_seed,
            "settings": self.settings.identity()}

  @property
  def point_seed(self) -> int:
    """Seed of the study's points and trial seeds. Studies that differ only in
    their scientific settings (e.g. batch size) get independent searches, as in
    Shallue et al.; a study without scientific settings uses study_seed itself."""
    if not self.scientific:
      return self.study_seed
    text = f"{self.study_seed}:{json.dumps(dict(self.scientific), sort_keys=True, default=str)}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % (2 ** 31)

  @property
  def study_hash(self) -> str:
    text = json.dumps(self.identity(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

  @property
  def study_id(self) -> str:
    """<workload name>-<protocol name>-<scientific>-s<seed>, plus a short hash
    of the settings that change results where any differs from its default.
    The protocol's content is not in it: another protocol under the same name
    in the same store is refused (StudyRunner.prepare), not silently kept apart."""
    sci = ".".join(f"{_short(k)}{_fmt(v)}" for k, v in sorted(self.scientific.items()))
    parts = [_workload_name(self.workload_ref), self.protocol.name, sci, f"s{self.study_seed}"]
    if self.settings.identity() != TrialSettings().identity():
      text = json.dumps(self.settings.identity(), sort_keys=True, default=str)
      parts.append(hashlib.sha256(text.encode()).hexdigest()[:8])
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts if p)

  def metadata(self) -> dict[str, Any]:
    return {"schema_version": 1, "study_id": self.study_id, "study_hash": self.study_hash,
            "experiment": self.experiment, "workload": self.workload,
            "protocol": protocols.as_plain(self.protocol), "protocol_hash": self.protocol_hash,
            "scientific": dict(self.scientific), "study_seed": self.study_seed,
            "point_seed": self.point_seed, "settings": self.settings.identity()}


def _workload_name(workload: str) -> str:
  """The workload's `name` (a file or module path names its class's)."""
  try:
    return workloads.workload_class(workload).name or workload.rsplit(":", 1)[-1]
  except workloads.UnknownWorkloadError:
    return workload.rsplit(":", 1)[-1]


def is_file_ref(workload: str) -> bool:
  """'path/to/file.py:Class' (not a registered name, not 'module:Class')."""
  path, sep, _ = str(workload).rpartition(":")
  return bool(sep) and path.endswith(".py")


def resolve_workload(workload: str, base_dir: str) -> str:
  """A relative 'file.py:Class' joined to base_dir (the recipe's folder)."""
  if not (base_dir and is_file_ref(workload)):
    return workload
  path, _, cls = str(workload).rpartition(":")
  if os.path.isabs(path) or "://" in path:
    return workload
  return f"{os.path.normpath(os.path.join(base_dir, path))}:{cls}"


def _resolve_dir(path: Any, base_dir: str) -> Any:
  if not (base_dir and isinstance(path, str) and path) or os.path.isabs(path) or "://" in path:
    return path
  return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def rebase_paths(config: Any, recipe_dir: str, given: Sequence[str] = ()) -> None:
  """Make the recipe config's paths mean what their writer meant: a path written
  in the recipe file is relative to the recipe's folder (as in any config
  file); a path given on the command line (`given`: the overridden fields, e.g.
  'workload', 'settings.data_dir') is relative to the current directory.
  Workload files stay relative (to the recipe's folder), so that a study's
  identity does not depend on where its recipe is; data_dir becomes absolute."""
  recipe_dir = os.path.abspath(recipe_dir)
  workload = config.get("workload") if hasattr(config, "get") else None
  if isinstance(workload, str) and is_file_ref(workload) and "workload" in given:
    path, _, cls = workload.rpartition(":")
    if not os.path.isabs(path) and "://" not in path:
      config.workload = f"{os.path.relpath(os.path.abspath(path), recipe_dir)}:{cls}"
  section = config.get("settings") if hasattr(config, "get") else None
  if section is not None and section.get("data_dir"):
    here = os.getcwd() if "settings.data_dir" in given else recipe_dir
    section.data_dir = _resolve_dir(os.path.expanduser(section.data_dir), here)


def from_recipe(descriptions: Sequence[Mapping[str, Any]], experiment: str,
                settings: Mapping[str, Any] | None = None, base_dir: str = "") -> list[Study]:
  """Studies from a recipe's plain descriptions (protocols/experiments: `study()`),
  each {'workload', 'protocol', 'scientific', 'study_seed', 'settings'}; a
  description's settings override the recipe's `settings` section. Relative
  paths (a workload file, a data_dir) are relative to `base_dir`, the recipe's
  folder."""
  base = {k: v for k, v in dict(settings or {}).items() if v is not None}
  out = []
  for i, d in enumerate(descriptions):
    if not isinstance(d, Mapping) or not {"workload", "protocol"} <= set(d):
      raise trial.ConfigError(f"study {i} of the recipe is not a study description "
                              "(protocols.experiments.study(workload, protocol, ...))")
    extra = sorted(set(d) - {"workload", "protocol", "scientific", "study_seed", "settings"})
    if extra:
      raise trial.ConfigError(f"study {i} of the recipe has an unknown field {extra[0]!r}")
    given = {k: v for k, v in dict(d.get("settings") or {}).items() if v is not None}
    if "data_dir" in given:
      given["data_dir"] = _resolve_dir(given["data_dir"], base_dir)
    try:
      s = TrialSettings.from_mapping({**base, **given})
    except SettingsError as e:
      raise trial.ConfigError(str(e)) from None
    for k in STUDY_FIELDS:
      if getattr(s, k) is not None:
        raise trial.ConfigError(f"setting {k} comes from the study (scientific settings or "
                                f"the protocol's budget), not from the recipe's settings")
    out.append(Study(experiment, str(d["workload"]), d["protocol"],
                     dict(d.get("scientific") or {}), int(d.get("study_seed", 0)), s,
                     base_dir=base_dir))
  return out


def load_recipe(path: str) -> Any:
  """The recipe file's module (any path: the file is the experiment); `path`
  may carry the config flag's ':args'."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = re.sub(r"(\.py):.*$", r"\1", path)
  name = "optbench_recipe_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None:
    raise trial.ConfigError(f"cannot load recipe file {path}")
  module = importlib.util.module_from_spec(spec)
  # As for a script: modules beside the recipe (your workloads, optimizers) import.
  folder = os.path.dirname(os.path.abspath(path))
  if folder not in sys.path:
    sys.path.insert(0, folder)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "studies", None)):
    raise trial.ConfigError(f"recipe {path} defines no studies(config) function")
  return module


def expand(config: Any, recipe: Any) -> list[Study]:
  """The studies of a recipe module and its config (get_config's, overridden)."""
  experiment = config.get("experiment") or recipe.__name__.replace("optbench_recipe_", "")
  try:
    descriptions = recipe.studies(config)
  except (protocols.ProtocolError, ValueError, KeyError, TypeError) as e:
    raise trial.ConfigError(f"recipe {experiment}: {e}".splitlines()[0]) from None
  return from_recipe(descriptions, experiment, config.get("settings"), recipe_dir(recipe))


def recipe_dir(recipe: Any) -> str:
  """The folder of a recipe module's file ('' if it has none)."""
  path = getattr(recipe, "__file__", None)
  return os.path.dirname(os.path.abspath(path)) if path else ""


def _short(k: str) -> str:
  return {"batch_size": "bs", "optimizer": ""}.get(k, k)


def _fmt(v: Any) -> str:
  return f"{v:g}" if isinstance(v, float) else str(v)


def trial_seed(protocol_hash: str, study_seed: int, index: int) -> int:
  digest = hashlib.sha256(f"{protocol_hash}:{study_seed}:{index}".encode()).hexdigest()
  return int(digest[:8], 16) % (2 ** 31)


def trial_specs(study: Study, points: Sequence[Mapping[str, Any]], start: int = 0,
                rerun: int = 0) -> list[trial.TrialSpec]:
  """Turn sampled points into runnable specs (scientific settings override).
  With `rerun` = j >= 1 the one point is trial `start`'s, rerun with seed
  study_seed + j (DeepOBS: seed 42, then 43, 44, ...)."""
  specs = []
  budget = study.protocol.budget
  for j, point in enumerate(points):
    index = start + j
    point = dict(point)
    point.update({k: v for k, v in study.scientific.items() if k != "batch_size"})
    optimizer = point.pop("optimizer", None)
    if optimizer is None:
      raise protocols.ProtocolError(f"protocol {study.protocol.name!r} has no 'optimizer' "
                                    "parameter and the experiment sets none")
    batch_size = study.scientific.get("batch_size", point.pop("batch_size", None))
    seed = (study.study_seed + rerun if rerun
            else trial_seed(study.protocol_hash, study.point_seed, index))
    settings = study.settings.replace(batch_size=batch_size, train_steps=budget.train_steps,
                                      eval_every=budget.eval_every)
    specs.append(trial.TrialSpec(
        workload=study.workload_ref, optimizer=optimizer, hparams=point, seed=seed,
        settings=settings, trial_id=f"{study.study_id}/{trial_folder(index, rerun)}",
        study_id=study.study_id, experiment=study.experiment, protocol_name=study.protocol.name,
        protocol_hash=study.protocol_hash, trial_index=index, rerun=rerun,
        scientific=dict(study.scientific)))
  return specs


def trial_folder(index: int, rerun: int = 0) -> str:
  """'t0007' for search trial 7; 't0007r2' for its point's second seed rerun."""
  return f"t{index:04d}" + (f"r{rerun}" if rerun else "")


def new_counts() -> dict[str, int]:
  """What a runner did with the trials it looked at: ran, already done, running elsewhere."""
  return {"ran": 0, "skipped": 0, "busy": 0}


def objective_value(rec: Mapping[str, Any], objective: Mapping[str, Any]) -> float | None:
  """The protocol's objective for one record (lower is better); None if failed/diverged."""
  if rec.get("status") != "ok":
    return None
  if objective["name"] == "steps_to_goal":
    return float(rec["goal_step"]) if rec.get("goal_step") is not None else math.inf
  best = rec.get("best") or {}
  v = best.get(f"val/{objective['metric']}")
  return None if v is None else float(v)


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
    self.run_trials([p], counts, t_start, pack=packing.OFF)

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
