"""A study: made from a recipe's description, its ids, hashes and seeds, and its trials.

A study is one protocol at one setting of the scientific hyperparameters. Its
folder `<output_dir>/<study_id>/` holds `study.json` (the protocol, its identity
hash, the scientific settings) and one folder per trial: `tNNNN/` for search
trial N, `tNNNNrJ/` for the J-th seed rerun of its point. Points, trial ids and
seeds are functions of (protocol identity, study seed, trial index), so every
copy of a study (shards, reruns after a crash) agrees on them, and growing its
budget keeps every finished trial. bench.recipe makes studies from a recipe
file; bench.runner runs their unfinished trials.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any, Mapping, Sequence

import protocols
import workloads
from bench import trial
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
  def identity_hash(self) -> str:
    """protocols.identity_hash: the hash of what the trials compute, the same
    when only the study's size changes (stored as 'protocol_hash')."""
    return protocols.identity_hash(self.protocol)

  def identity(self) -> dict[str, Any]:
    """Everything that changes what the study's trials compute."""
    return {"protocol_hash": self.identity_hash, "workload": self.workload,
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
            "protocol": protocols.as_plain(self.protocol), "protocol_hash": self.identity_hash,
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


def resolve_dir(path: Any, base_dir: str) -> Any:
  """A relative path joined to base_dir (the recipe's folder); others as they are."""
  if not (base_dir and isinstance(path, str) and path) or os.path.isabs(path) or "://" in path:
    return path
  return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


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
      given["data_dir"] = resolve_dir(given["data_dir"], base_dir)
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


def _short(k: str) -> str:
  return {"batch_size": "bs", "optimizer": ""}.get(k, k)


def _fmt(v: Any) -> str:
  return f"{v:g}" if isinstance(v, float) else str(v)


def trial_seed(identity_hash: str, study_seed: int, index: int) -> int:
  digest = hashlib.sha256(f"{identity_hash}:{study_seed}:{index}".encode()).hexdigest()
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
            else trial_seed(study.identity_hash, study.point_seed, index))
    settings = study.settings.replace(batch_size=batch_size, train_steps=budget.train_steps,
                                      eval_every=budget.eval_every)
    specs.append(trial.TrialSpec(
        workload=study.workload_ref, optimizer=optimizer, hparams=point, seed=seed,
        settings=settings, trial_id=f"{study.study_id}/{trial_folder(index, rerun)}",
        study_id=study.study_id, experiment=study.experiment, protocol_name=study.protocol.name,
        protocol_hash=study.identity_hash, trial_index=index, rerun=rerun,
        scientific=dict(study.scientific)))
  return specs


def trial_folder(index: int, rerun: int = 0) -> str:
  """'t0007' for search trial 7; 't0007r2' for its point's second seed rerun."""
  return f"t{index:04d}" + (f"r{rerun}" if rerun else "")


