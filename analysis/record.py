"""The trial record: what one training run leaves behind (schema version 1).

The one definition of the format, with no dependency beyond the standard
library: bench.trial writes it, bench.status and analysis.load read it, and
`problem(rec)` is what all of them mean by a valid record. Stored as
`<output_dir>/<study_id>/<trial_id>/record.json`, written once, atomically,
when the trial ends. Keys:

  schema_version  1
  trial_id, study_id, experiment, protocol_name, trial_index
  protocol_hash   the hash of the study's protocol without its extendable budget
                  (protocols.identity_hash): every trial of an extended study shares it
  workload        {"name", "goal": {"metric", "threshold"}, "dtype", "num_train_examples",
                   "args" (constructor arguments, --workload_args), data source facts}
  optimizer       name in bench.optimizers.REGISTRY
  hparams         resolved optimizer + schedule hyperparameters (defaults filled in)
  scientific      the study's scientific settings, e.g. {"batch_size": 128}
  batch_size, train_steps, eval_every, seed
  settings        every trial setting, resolved (bench/settings.py)
  status          "ok" | "diverged" | "failed";  status_reason: one line ("" when ok)
  diverged_step   first chunk end at which divergence was seen (null unless diverged)
  curve           list of {"step", "wall_time", "train/<m>", "val/<m>", "test/<m>"}
  best            retrospective checkpoint selection: the curve row with the lowest
                  val/<goal metric> (earliest on ties), null if no finite value
  goal_step       first eval step with val/<goal metric> < threshold (strict), else null
  steps_per_sec   training throughput excluding the first (compiling) dispatch
  train_time_sec, wall_time_sec, started_at, finished_at (ISO 8601 UTC)
  code_version    git commit of the harness (or package version), backend, host
  devices         kind of every device the trial's batches were split over (all
                  processes), device_ids their ids; num_processes: how many JAX processes
  pack_size       how many trials ran as lanes of one program with this one (1: alone);
                  steps_per_sec and the times are the pack's
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

RECORD = "record.json"
SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed")
REQUIRED = ("trial_id", "study_id", "status", "curve", "workload", "optimizer")


def problem(rec: Any) -> str | None:
  """Why `rec` (parsed JSON) is not a valid record of this schema, or None."""
  if not isinstance(rec, dict):
    return "not a trial record (not a JSON object)"
  version = rec.get("schema_version")
  if version != SCHEMA_VERSION:
    return f"schema_version {version!r}, expected {SCHEMA_VERSION}"
  missing = [k for k in REQUIRED if k not in rec]
  if missing:
    return f"not a trial record (missing {', '.join(missing)})"
  if rec["status"] not in STATUSES:
    return f"unknown status {rec['status']!r}"
  if not isinstance(rec["curve"], list) or not all(
      isinstance(r, dict) and "step" in r for r in rec["curve"]):
    return "malformed curve (expected a list of rows with 'step')"
  return None


def best_row(curve: Sequence[Mapping[str, Any]], metric: str) -> dict[str, Any] | None:
  """Row with the lowest finite val/<metric>; the earliest such row on ties."""
  key = f"val/{metric}"
  best = None
  for row in curve:
    v = row.get(key)
    if v is None or not math.isfinite(v):
      continue
    if best is None or v < best[key]:
      best = dict(row)
  return best


def goal_step(curve: Sequence[Mapping[str, Any]], metric: str, threshold: float) -> int | None:
  """First eval step whose val/<metric> is strictly below threshold."""
  key = f"val/{metric}"
  for row in curve:
    v = row.get(key)
    if v is not None and math.isfinite(v) and v < threshold:
      return int(row["step"])
  return None


def objective_value(rec: Mapping[str, Any], objective: Mapping[str, Any]) -> float | None:
  """The protocol's objective for one record (lower is better); None if failed/diverged.

  The selection rule of a study (its rerun point, the Bayesian sampler's history):
  objective is study.json's protocol["objective"]. Analysis scores trials by
  best/val/<goal metric> instead (analysis.playbook.default_score), which is also
  defined where a steps_to_goal objective is +inf (the goal never reached) and
  for a diverged trial (its best before diverging; the divergence policy of
  analysis.best_of_k.trial_scores decides what that counts for). Scoring by this
  rule would change every steps_to_goal study's figures and tables."""
  if rec.get("status") != "ok":
    return None
  if objective["name"] == "steps_to_goal":
    return float(rec["goal_step"]) if rec.get("goal_step") is not None else math.inf
  best = rec.get("best") or {}
  v = best.get(f"val/{objective['metric']}")
  return None if v is None else float(v)
