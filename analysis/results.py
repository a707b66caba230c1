"""Read a bench results directory (schema version 1) into pandas tables.

Layout: `<results_dir>/<study_id>/study.json` and
`<results_dir>/<study_id>/<trial_id>/record.json` (any depth of nesting above
the study folders is accepted). Everything else inside a trial folder
(checkpoints, event files, `*.tmp` partial writes) is ignored. A record that is
corrupt JSON, not a trial record, or of another schema version, and any foreign
file outside trial folders, is skipped and reported: one line naming the file
in `Results.problems` and one logging warning. A folder of analysis.report's
output (report.md, figures/) is the harness's own and skipped silently.
Loading never raises on content.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import math
import os
from typing import Any, Iterator, Mapping

import pandas as pd

from analysis import record, schema
from analysis.record import RECORD, SCHEMA_VERSION

STUDY = "study.json"
# Files tolerated silently outside trial folders (atomic-write temps, locks, logs).
IGNORED = ("*.tmp", ".*", "*.lock", "*.log", "experiment.json", "lock")
# The harness's own report folder (analysis.report's --out), e.g. the demo's
# runs/demo/report beside runs/demo/results: skipped silently, never "foreign".
REPORT_FILES = {"report.md", "report.html", "figures"}
MAX_DEPTH = 8

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Results:
  """What a results directory holds, as tables.

  `trials, curves = analysis.load(d)` unpacks the two tables; `problems` lists
  one line per skipped file; `studies` has one row per study.json.
  """
  trials: pd.DataFrame
  curves: pd.DataFrame
  problems: list[str] = dataclasses.field(default_factory=list)
  studies: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

  def __iter__(self) -> Iterator[pd.DataFrame]:
    return iter((self.trials, self.curves))


def from_tables(trials: pd.DataFrame, curves: pd.DataFrame, problems: list[str]) -> Results:
  """Results from an importer's tables: conformed to the schema, best/ and goal
  columns summarised from the curves (as analysis.load has them from records)."""
  trials = schema.conform_trials(trials)
  curves = schema.conform_curves(curves) if not curves.empty else schema.empty_curves()
  summary = schema.summarize_curves(curves, trials.set_index("trial_id")["goal_metric"])
  trials = trials.drop(columns=[c for c in summary.columns if c in trials.columns])
  trials = schema.conform_trials(trials.join(summary, on="trial_id"))
  return Results(trials, curves, problems)


def load(results_dir: str | os.PathLike) -> Results:
  """All trials and curves under `results_dir`, skipping and reporting bad files."""
  root = os.fspath(results_dir)
  problems: list[str] = []

  def report(path: str, why: str) -> None:
    line = f"{path}: {why}"
    problems.append(line)
    log.warning("skipped %s", line)

  if not os.path.isdir(root):
    report(root, "not a directory")
    return Results(schema.conform_trials(pd.DataFrame()), schema.empty_curves(), problems)
  studies: dict[str, dict[str, Any]] = {}
  records: list[tuple[str, dict[str, Any]]] = []
  _walk(root, 0, studies, records, report)
  study_table = _study_table(studies)
  trial_rows, curve_frames = [], []
  for path, rec in records:
    study = studies.get(os.path.dirname(os.path.dirname(path)), {})
    trial_rows.append(_trial_row(path, rec, study))
    curve_frames.append(_curve_frame(rec))
  trials = schema.conform_trials(pd.DataFrame(trial_rows))
  dup = trials["trial_id"].duplicated(keep="first")
  for path in trials.loc[dup, "path"]:
    report(path, "duplicate trial_id")
  keep = ~dup.to_numpy()
  trials = trials[keep].reset_index(drop=True)
  curve_frames = [f for f, k in zip(curve_frames, keep) if k and not f.empty]
  curves = (schema.conform_curves(pd.concat(curve_frames, ignore_index=True))
            if curve_frames else schema.empty_curves())
  return Results(trials, curves, problems, study_table)


def _ignored(name: str) -> bool:
  return any(fnmatch.fnmatch(name, pat) for pat in IGNORED)


def _read_json(path: str, report) -> Any:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    report(path, f"unreadable JSON ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
    return None


def _walk(d: str, depth: int, studies, records, report) -> None:
  """Collect study.json and record.json files; report foreign files."""
  try:
    entries = sorted(os.scandir(d), key=lambda e: e.name)
  except OSError as e:
    report(d, f"cannot list ({e.strerror})")
    return
  names = {e.name for e in entries}
  if "report.md" in names and {n for n in names if not _ignored(n)} <= REPORT_FILES:
    return  # a report written by analysis.report
  if RECORD in names:  # a trial folder without its study around it
    _read_record(os.path.join(d, RECORD), records, report)
    return
  is_study = STUDY in names
  if is_study:
    study = _read_json(os.path.join(d, STUDY), report)
    if isinstance(study, dict) and study.get("schema_version", SCHEMA_VERSION) == SCHEMA_VERSION:
      studies[d] = study
    elif study is not None:
      report(os.path.join(d, STUDY), "not a schema-1 study file")
  for e in entries:
    path = os.path.join(d, e.name)
    if e.is_dir(follow_symlinks=False):
      if _ignored(e.name):
        continue
      if is_study:
        _trial_dir(path, records, report)
      elif depth < MAX_DEPTH:
        _walk(path, depth + 1, studies, records, report)
    elif e.name == STUDY or _ignored(e.name):
      continue
    else:
      report(path, "foreign file")


def _trial_dir(d: str, records, report) -> None:
  path = os.path.join(d, RECORD)
  if os.path.isfile(path):
    _read_record(path, records, report)
  else:
    report(d, "no record.json (unfinished trial?)")


def _read_record(path: str, records, report) -> None:
  rec = _read_json(path, report)
  if rec is None:
    return
  why = record.problem(rec)
  if why:
    report(path, why)
    return
  records.append((path, rec))


def _num(x: Any) -> float:
  if isinstance(x, bool):
    return float(x)
  if isinstance(x, (int, float)):
    return float(x)
  return math.nan


def _scalar(x: Any) -> Any:
  """Hyperparameter values as table cells: numbers, strings, None."""
  if x is None or isinstance(x, (bool, int, float, str)):
    return x
  return json.dumps(x, sort_keys=True)


def _trial_row(path: str, rec: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, Any]:
  workload = rec.get("workload") or {}
  if not isinstance(workload, Mapping):
    workload = {"name": str(workload)}
  goal = workload.get("goal") or {}
  curve = rec["curve"]
  row: dict[str, Any] = {
      "trial_id": str(rec["trial_id"]),
      "study_id": str(rec["study_id"]),
      "experiment": rec.get("experiment", study.get("experiment")),
      "protocol_name": rec.get("protocol_name", (study.get("protocol") or {}).get("name")),
      "protocol_hash": rec.get("protocol_hash", study.get("protocol_hash")),
      "workload": workload.get("name"),
      "optimizer": rec.get("optimizer"),
      "batch_size": _num(rec.get("batch_size")),
      "seed": _num(rec.get("seed")),
      "trial_index": _num(rec.get("trial_index")),
      "status": rec["status"],
      "status_reason": rec.get("status_reason") or "",
      "diverged_step": _num(rec.get("diverged_step")),
      "goal_metric": goal.get("metric"),
      "goal_threshold": _num(goal.get("threshold")),
      "goal_step": _num(rec.get("goal_step")),
      "num_train_examples": _num(workload.get("num_train_examples")),
      "train_steps": _num(rec.get("train_steps")),
      "eval_every": _num(rec.get("eval_every")),
      "steps_per_sec": _num(rec.get("steps_per_sec")),
      "train_time_sec": _num(rec.get("train_time_sec")),
      "wall_time_sec": _num(rec.get("wall_time_sec")),
      "pack_size": _num(rec.get("pack_size")), "rerun": _num(rec.get("rerun")),  # trials sharing this lane's clock; NaN: solo
      "source": "bench",
      "path": path,
  }
  objective = (study.get("protocol") or {}).get("objective") or {}
  row["objective"] = objective.get("name")
  best = rec.get("best")
  if not isinstance(best, Mapping):
    best = None
  row["best_step"] = _num(best.get("step")) if best else math.nan
  metrics = sorted({k for r in curve for k in r if schema.is_metric_column(k)})
  for m in metrics:
    row[f"best/{m}"] = _num(best.get(m)) if best else math.nan
    row[f"final/{m}"] = _num(curve[-1].get(m)) if curve else math.nan
  for k, v in (rec.get("hparams") or {}).items():
    row[f"hp/{k}"] = _scalar(v)
  for k, v in (rec.get("scientific") or study.get("scientific") or {}).items():
    row[f"sci/{k}"] = _scalar(v)
  return row


def _curve_frame(rec: Mapping[str, Any]) -> pd.DataFrame:
  frame = pd.DataFrame.from_records(rec["curve"])
  if frame.empty:
    return frame
  frame.insert(0, "study_id", str(rec["study_id"]))
  frame.insert(0, "trial_id", str(rec["trial_id"]))
  return frame


def _study_table(studies: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
  rows = []
  for path, s in studies.items():
    protocol = s.get("protocol") or {}
    objective = protocol.get("objective") or {}
    row = {
        "study_id": s.get("study_id", os.path.basename(path)),
        "experiment": s.get("experiment"),
        "protocol_name": protocol.get("name"),
        "protocol_hash": s.get("protocol_hash"),
        "objective": objective.get("name"),
        "objective_metric": objective.get("metric"),
        "workload": s.get("workload"),
        "study_seed": s.get("study_seed"),
        "protocol": json.dumps(protocol, sort_keys=True, default=str),
        "path": path,
    }
    for k, v in (s.get("scientific") or {}).items():
      row[f"sci/{k}"] = _scalar(v)
    rows.append(row)
  return pd.DataFrame(rows)
