"""AlgoPerf trial logs on disk, found by layout and read fast.

Layout (as AlgoPerf's scoring reads it, with the submission and study levels
optional): `[<submission>/][study_<n>/]<workload>_<framework>/trial_<n>/
eval_measurements.csv`, framework jax or pytorch. The folder above the workload
folder is the study when it is named `study_<n>`; otherwise the logs hold one
study, `study_0`. Anything else is skipped and reported, never turned into a
workload: an eval log outside a `<workload>_<framework>/trial_<n>` folder (the
published v0.5 logs have stray `study_<n>/trial_<n>/` folders), a trial folder
without its eval log, an unreadable log. Other files (hparams.json, *.log,
metadata) belong to the layout and are ignored.

Reading is the slow part of re-scoring a leaderboard (thousands of small CSVs),
so logs that share a header are parsed in one pandas call, each line tagged with
its log's id, reading only the requested columns; a group that fails to parse
is re-read file by file to find and report the bad log.
"""
from __future__ import annotations

import dataclasses
import io
import os
import re
import warnings
from typing import Callable, Collection, Mapping

import numpy as np
import pandas as pd

MEASUREMENTS = "eval_measurements.csv"
FRAMEWORKS = ("jax", "pytorch")
STEP = "global_step"
TIME_COLUMNS = ("score", "accumulated_submission_time")  # score: the clock AlgoPerf scores
TRIAL_COLUMNS = ("log_id", "submission", "study", "workload", "framework", "trial",
                 "trial_index", "path", "listed")
_TRIAL = re.compile(r"^trial_(\d+)$")
_STUDY = re.compile(r"^study_(\d+)$")
_WORKLOAD = re.compile(r"^(.+)_(" + "|".join(FRAMEWORKS) + r")$")

# Problem reasons: fixed strings, so that a report can count them.
OUTSIDE_LAYOUT = "eval log outside a <workload>_<framework>/trial_<n> folder"
NO_LOG = f"trial folder without {MEASUREMENTS}"
UNREADABLE = "unreadable eval log"


@dataclasses.dataclass(frozen=True)
class Logs:
  """Trial logs as two tables, and what was skipped.

  trials: one row per trial log (TRIAL_COLUMNS; workload without the framework
  suffix, trial_index from `trial_<n>`, listed: the trial folder's position in
  its workload folder's directory listing, the order AlgoPerf's scoring code
  meets trials in), sorted by submission, study, workload, trial_index; log_id
  is its row number. evals: one row per evaluation, in file
  order: log_id, eval_index (0-based), then the native columns read. problems:
  'relative/path: reason' lines.
  """
  trials: pd.DataFrame
  evals: pd.DataFrame
  problems: list[str]


def find(root: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
  """The trial logs under `root` (TRIAL_COLUMNS without log_id) and what is skipped."""
  root = os.fspath(root)
  rows, problems = [], []
  top = os.path.basename(os.path.abspath(root))
  listed: dict[str, int] = {}  # folder -> its position in its parent's listing (os.listdir's)
  for d, dirs, files in os.walk(root):
    listed.update((os.path.join(d, name), i) for i, name in enumerate(dirs))
    dirs.sort()
    rel = os.path.relpath(d, root).replace(os.sep, "/")
    parts = [] if rel == "." else rel.split("/")
    trial = _TRIAL.match(parts[-1]) if parts else None
    workload = _WORKLOAD.match(parts[-2]) if len(parts) >= 2 else None
    has_log = MEASUREMENTS in files
    if trial and workload:
      if not has_log:
        problems.append(f"{rel}: {NO_LOG}")
        continue
      rest = parts[:-2]
      study = rest.pop() if rest and _STUDY.match(rest[-1]) else "study_0"
      rows.append({"submission": "/".join(rest) if rest else top, "study": study,
                   "workload": workload.group(1), "framework": workload.group(2),
                   "trial": parts[-1], "trial_index": int(trial.group(1)),
                   "path": os.path.join(d, MEASUREMENTS), "listed": listed.get(d, -1)})
    elif has_log:
      problems.append(f"{rel if parts else '.'}/{MEASUREMENTS}: {OUTSIDE_LAYOUT}")
  trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS[1:]))
  trials = trials.sort_values(["submission", "study", "workload", "trial_index", "framework"],
                              kind="stable").reset_index(drop=True)
  return trials, problems


def read(root: str | os.PathLike, columns: Collection[str] | None = None) -> Logs:
  """Find and read the trial logs under `root`.

  `columns`: the native columns to read besides global_step and the time
  columns (score, accumulated_submission_time); None reads every column.
  A log that cannot be parsed (no global_step column, ragged rows) is
  reported and dropped; a log with a header only is a trial without evaluations.
  """
  trials, problems = find(root)
  trials.insert(0, "log_id", np.arange(len(trials)))
  wanted = None if columns is None else {STEP, *TIME_COLUMNS, *columns}
  usecols = None if wanted is None else (lambda c: c in wanted)
  groups: dict[bytes, list[tuple[int, bytes]]] = {}
  for log_id, path in zip(trials["log_id"], trials["path"]):
    try:
      with open(path, "rb") as f:
        header, _, body = f.read().partition(b"\n")
    except OSError as e:
      problems.append(f"{_rel(path, root)}: {UNREADABLE} ({e.strerror or e})")
      continue
    if not header.strip():
      problems.append(f"{_rel(path, root)}: {UNREADABLE} (empty file)")
      continue
    groups.setdefault(header.strip(), []).append((int(log_id), body))
  frames, ok = [], set()
  for header, logs in groups.items():
    try:
      frames.append(_parse_group(header, logs, usecols))
      ok.update(i for i, _ in logs)
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning):
      for log_id, body in logs:  # find the bad log(s)
        try:
          frames.append(_parse_group(header, [(log_id, body)], usecols))
          ok.add(log_id)
        except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as e:
          why = (str(e).strip().splitlines() or [type(e).__name__])[-1][:80]
          problems.append(f"{_rel(trials.at[log_id, 'path'], root)}: {UNREADABLE} ({why})")
  evals = pd.concat(frames, ignore_index=True) if frames else _empty_evals()
  evals = evals.sort_values("log_id", kind="stable").reset_index(drop=True)
  evals.insert(1, "eval_index", evals.groupby("log_id").cumcount().to_numpy())
  trials = trials[trials["log_id"].isin(ok)].reset_index(drop=True)
  renumber = pd.Series(np.arange(len(trials)), index=trials["log_id"].to_numpy())
  evals["log_id"] = evals["log_id"].map(renumber).to_numpy()
  trials["log_id"] = np.arange(len(trials))
  return Logs(trials, evals, problems)


def _rel(path: str, root: str | os.PathLike) -> str:
  return os.path.relpath(path, os.fspath(root)).replace(os.sep, "/")


def _empty_evals() -> pd.DataFrame:
  return pd.DataFrame({"log_id": pd.Series(dtype=int), STEP: pd.Series(dtype=float)})


def _parse_group(header: bytes, logs: list[tuple[int, bytes]],
                 usecols: Callable[[str], bool] | None) -> pd.DataFrame:
  """One pandas parse of logs sharing `header`, each line prefixed by its log id."""
  names = header.decode("utf-8-sig", "replace").split(",")
  names = [n.strip() for n in names]
  if STEP not in names:
    raise ValueError(f"no {STEP} column")
  chunks = []
  for log_id, body in logs:
    body = body.strip(b"\r\n")
    if body:
      tag = b"%d," % log_id
      chunks.append(tag + body.replace(b"\n", b"\n" + tag))
  if not chunks:
    return _empty_evals()
  cols = None if usecols is None else ["log_id"] + [n for n in names if usecols(n)]
  with warnings.catch_warnings():  # more fields than the header: an error, not an index
    warnings.simplefilter("error", pd.errors.ParserWarning)
    frame = pd.read_csv(io.BytesIO(b"\n".join(chunks)), header=None,
                        names=["log_id"] + names, usecols=cols, index_col=False, engine="c")
  data = [c for c in frame.columns if c != "log_id"]
  for c in data:
    if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]):
      frame[c] = pd.to_numeric(frame[c], errors="coerce")
  return frame[frame[data].notna().any(axis=1)]


def target_evals(logs: Logs, metric: Mapping[str, str]) -> pd.DataFrame:
  """The scorer's evaluations: log_id, eval_index, time, step, value.

  time is `score` (accumulated_submission_time where a log lacks it); value is
  the column `metric[workload]` of each trial's workload (NaN for workloads
  without a metric, or logs without that column).
  """
  e = logs.evals
  nan = pd.Series(np.nan, index=e.index)
  time = e["score"] if "score" in e else nan
  if "accumulated_submission_time" in e:
    time = time.fillna(e["accumulated_submission_time"])
  workload = e["log_id"].map(logs.trials.set_index("log_id")["workload"])
  value = np.full(len(e), np.nan)
  for name, rows in e.groupby(workload.to_numpy(), sort=False).indices.items():
    col = metric.get(name)
    if col in e.columns:
      value[rows] = e[col].to_numpy(dtype=float)[rows]
  return pd.DataFrame({"log_id": e["log_id"].to_numpy(), "eval_index": e["eval_index"].to_numpy(),
                       "time": time.to_numpy(dtype=float),
                       "step": e[STEP].to_numpy(dtype=float), "value": value})
