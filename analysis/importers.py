"""Published training logs, read into the harness's trials/curves tables.

* deepobs: the DeepOBS baselines (Schneider et al. 2019), one CSV row per
  epoch. DeepOBS 1.1 had no validation split: curves carry train/ and test/
  metrics only, `step` is the epoch, and best/ columns (selection by
  validation) are empty. Accuracies become errors (1 - accuracy).
* batch_science: Shallue et al.'s released data,
  `dataset/model/optimizer/batch_size/{study.json, trial_id/metadata.json,
  trial_id/measurements.csv}`. Metric names are kept (val/classification_error,
  val/cross_entropy_error, ...). COMPLETE -> ok, INFEASIBLE -> diverged,
  INCOMPLETE -> failed, so steps_to_result reproduces their rule by default.
Each returns analysis.results.Results (AlgoPerf logs: analysis.algoperf.results); files that cannot be read are reported in
`problems` and skipped.
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Mapping

import numpy as np
import pandas as pd

from analysis import schema
from analysis.reference import DEEPOBS_CSV
from analysis.results import Results, from_tables
from analysis.steps_to_result import goal_times

log = logging.getLogger(__name__)

_DEEPOBS_COLUMNS = ("testproblem", "optimizer", "learning_rate", "batch_size", "num_epochs",
                    "random_seed", "epoch", "train_loss", "test_loss", "train_accuracy",
                    "test_accuracy")
_DEEPOBS_HPARAMS = ("learning_rate", "momentum", "beta1", "beta2", "epsilon")


def _reporter(problems: list[str]):
  def report(path: str, why: str) -> None:
    problems.append(f"{path}: {why}")
    log.warning("skipped %s: %s", path, why)
  return report


# --------------------------------------------------------------------- DeepOBS

def deepobs(path: str | os.PathLike = DEEPOBS_CSV) -> Results:
  """The DeepOBS baseline runs as trials (one per run) and per-epoch curves."""
  raw = pd.read_csv(path)
  missing = [c for c in _DEEPOBS_COLUMNS if c not in raw.columns]
  if missing:
    raise ValueError(f"{os.fspath(path)}: not a DeepOBS runs table (missing {', '.join(missing)})")
  run_keys = ["testproblem", "optimizer", "learning_rate", "random_seed"]
  raw = raw.sort_values(run_keys + ["epoch"], kind="stable").reset_index(drop=True)
  opt = raw["optimizer"].map(schema.canonical_optimizer)
  raw["trial_id"] = ("deepobs/" + raw["testproblem"] + "/" + opt + "/lr="
                     + raw["learning_rate"].map(lambda x: f"{x:.6g}") + "/seed="
                     + raw["random_seed"].astype(str))
  raw["study_id"] = "deepobs/" + raw["testproblem"] + "/" + opt
  curves = pd.DataFrame({
      "trial_id": raw["trial_id"], "study_id": raw["study_id"],
      "step": raw["epoch"].astype(float), "wall_time": np.nan,
      "train/loss": raw["train_loss"], "test/loss": raw["test_loss"],
      "train/error": 1.0 - raw["train_accuracy"], "test/error": 1.0 - raw["test_accuracy"],
      "epoch": raw["epoch"]})
  bad = ~np.isfinite(raw[["train_loss", "test_loss"]].to_numpy(dtype=float)).all(axis=1)
  first_bad = raw.loc[bad].groupby("trial_id")["epoch"].min()
  has_acc = raw.groupby("testproblem")["test_accuracy"].transform(lambda s: s.notna().any())
  runs = raw.assign(_has_acc=has_acc).groupby("trial_id", sort=False).first()
  trials = pd.DataFrame({
      "trial_id": runs.index, "study_id": runs["study_id"].to_numpy(),
      "experiment": "deepobs_baselines", "protocol_name": "deepobs_baselines",
      "workload": runs["testproblem"].to_numpy(),
      "optimizer": runs["optimizer"].map(schema.canonical_optimizer).to_numpy(),
      "batch_size": runs["batch_size"].to_numpy(), "seed": runs["random_seed"].to_numpy(),
      "train_steps": runs["num_epochs"].to_numpy(), "eval_every": 1.0,
      "goal_metric": np.where(runs["_has_acc"].to_numpy(), "error", "loss"),
      "source": "deepobs", "path": os.fspath(path),
      "num_epochs": runs["num_epochs"].to_numpy(),
      "optimizer_raw": runs["optimizer"].to_numpy()})
  trials["diverged_step"] = trials["trial_id"].map(first_bad).to_numpy(dtype=float)
  diverged = trials["diverged_step"].notna()
  trials["status"] = np.where(diverged, "diverged", "ok")
  trials["status_reason"] = np.where(diverged, "non-finite loss", "")
  for hp in _DEEPOBS_HPARAMS:
    if hp in runs.columns:
      trials[f"hp/{hp}"] = runs[hp].to_numpy(dtype=float)
  trials["sci/batch_size"] = trials["batch_size"]
  trials = trials.sort_values(["study_id", "seed", "hp/learning_rate"], kind="stable")
  trials["trial_index"] = trials.groupby("study_id").cumcount()
  return from_tables(trials, curves, [])


def deepobs_baseline_table(runs: Results | None = None, *, path: str | os.PathLike = DEEPOBS_CSV,
                           grid_seed: int = 42, ddof: int = 1) -> pd.DataFrame:
  """DeepOBS baselines: best learning rate on the seed grid, then its seed spread.

  For each test problem and optimizer, the learning rate with the best final
  test metric (accuracy where the problem has one, else loss; diverged runs
  never win) over the `grid_seed` grid; then mean and std (ddof) over all
  seeds run at that learning rate (DeepOBS: 42..51). Selection on test data is
  DeepOBS 1.1's own protocol (it had no validation split).
  """
  trials = (runs if runs is not None else deepobs(path)).trials
  rows = []
  for (problem, opt), g in trials.groupby(["workload", "optimizer"], sort=True):
    acc = g["final/test/error"].notna().any()
    metric = "test_accuracy" if acc else "test_loss"
    value = (1.0 - g["final/test/error"]) if acc else g["final/test/loss"]
    value = value.where(np.isfinite(value.to_numpy(dtype=float)))
    grid = value[g["seed"] == grid_seed].dropna()
    if grid.empty:
      continue
    best_idx = grid.idxmax() if acc else grid.idxmin()
    lr = float(g.loc[best_idx, "hp/learning_rate"])
    same = np.isclose(g["hp/learning_rate"].to_numpy(dtype=float), lr, rtol=1e-6, atol=0.0)
    seeds = value[same]
    finite = seeds.dropna()
    rows.append({"testproblem": problem, "optimizer": opt, "metric": metric, "best_lr": lr,
                 "grid_value": float(grid.loc[best_idx]), "n_seeds": int(same.sum()),
                 "n_finite": len(finite), "mean": float(finite.mean()),
                 "std": float(finite.std(ddof=ddof)) if len(finite) > ddof else np.nan,
                 "seeds": sorted(int(s) for s in g.loc[same, "seed"])})
  return pd.DataFrame(rows)


def deepobs_baseline_markdown(table: pd.DataFrame | None = None) -> str:
  """The baseline table as Markdown: one row per test problem, one column per optimizer."""
  table = deepobs_baseline_table() if table is None else table
  opts = [o for o in ("sgd", "momentum", "adam") if o in set(table["optimizer"])]
  opts += sorted(set(table["optimizer"]) - set(opts))
  lines = ["| test problem | metric | " + " | ".join(opts) + " |",
           "|---|---|" + "---|" * len(opts)]
  for problem, g in table.groupby("testproblem", sort=True):
    g = g.set_index("optimizer")
    cells = []
    for o in opts:
      if o not in g.index:
        cells.append("")
        continue
      r = g.loc[o]
      cells.append(f"{r['mean']:.4g} ± {r['std']:.2g} (lr {r['best_lr']:.3g}, n={r['n_finite']})")
    metric = g["metric"].iloc[0].replace("test_", "test ")
    lines.append(f"| {problem} | {metric} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


# --------------------------------------------------------------- batch_science

_BS_STATUS = {"COMPLETE": "ok", "INFEASIBLE": "diverged", "INCOMPLETE": "failed"}
# Goals of Shallue et al. (2018) as (dataset, model prefix) -> (metric, threshold).
BATCH_SCIENCE_GOALS: dict[tuple[str, str], tuple[str, float]] = {
    ("mnist", "simple_cnn"): ("classification_error", 0.01),
    ("fashion_mnist", "simple_cnn"): ("classification_error", 0.10),
    ("cifar_10", "resnet_8"): ("classification_error", 0.30),
    ("imagenet", "resnet_50"): ("classification_error", 0.25),
    ("lm1b", "transformer"): ("cross_entropy_error", 3.9),
}


def _bs_goal(workload: str, dataset: str, model: str,
             goals: Mapping[str, tuple[str, float]] | None) -> tuple[str | None, float]:
  if goals:
    for key in (workload, dataset):
      if key in goals:
        m, t = goals[key]
        return m, float(t)
  for (d, prefix), (m, t) in BATCH_SCIENCE_GOALS.items():
    if dataset == d and model.startswith(prefix):
      return m, t
  return None, math.nan


def batch_science(root: str | os.PathLike, *,
                  goals: Mapping[str, tuple[str, float]] | None = None) -> Results:
  """Shallue et al.'s released studies under `root` as trials and curves.

  workload = the path from `root` down to the model ('cifar_10/resnet_8',
  'mnist_subsets/.../simple_cnn'); study_id = that path plus optimizer and
  batch size. Goals come from `goals` (keyed by workload or dataset, value
  (metric, threshold)) or else from the paper's goals where known; steps
  counts come from measurements.csv as they are (eval spacing may vary).
  """
  root = os.fspath(root)
  problems: list[str] = []
  report = _reporter(problems)
  trial_rows, curve_frames = [], []
  for d, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    if "study.json" not in files:
      continue
    study_path = os.path.join(d, "study.json")
    try:
      with open(study_path, encoding="utf-8") as f:
        study = json.load(f)
      batch_size = float(study["batch_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
      report(study_path, f"unreadable study ({type(e).__name__})")
      dirs[:] = []
      continue
    rel = os.path.relpath(d, root).replace(os.sep, "/")
    parts = rel.split("/")
    workload = "/".join(parts[:-2]) if len(parts) >= 3 else str(study.get("dataset"))
    dataset = str(study.get("dataset", parts[-4] if len(parts) >= 4 else ""))
    model = str(study.get("model", parts[-3] if len(parts) >= 3 else ""))
    metric, threshold = _bs_goal(workload, dataset, model, goals)
    if metric is None:
      report(d, "no known goal for this workload; pass goals= (goal left empty)")
    for trial in sorted(dirs, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)):
      tdir = os.path.join(d, trial)
      try:
        with open(os.path.join(tdir, "metadata.json"), encoding="utf-8") as f:
          meta = json.load(f)
        status = _BS_STATUS[meta["status"]]
        curve = pd.read_csv(os.path.join(tdir, "measurements.csv"))
        if "step" not in curve.columns:
          raise ValueError("no step column")
      except (OSError, ValueError, KeyError, TypeError) as e:
        report(tdir, f"unreadable trial ({type(e).__name__}: {str(e)[:60]})")
        continue
      trial_id = f"{rel}/{trial}"
      row = {"trial_id": trial_id, "study_id": rel, "experiment": "batch_science",
             "protocol_name": "batch_science", "workload": workload,
             "optimizer": schema.canonical_optimizer(study.get("optimizer", parts[-2])),
             "batch_size": batch_size, "trial_index": meta.get("trial_id", trial),
             "status": status, "status_reason": "" if status == "ok" else meta["status"],
             "goal_metric": metric, "goal_threshold": threshold,
             "train_steps": meta.get("steps"), "source": "batch_science", "path": tdir,
             "sci/batch_size": batch_size}
      for k, v in (meta.get("parameters") or {}).items():
        row[f"hp/{k}"] = v
      trial_rows.append(row)
      curve.insert(0, "study_id", rel)
      curve.insert(0, "trial_id", trial_id)
      curve_frames.append(curve)
    dirs[:] = []  # trial folders are not walked further
  trials = pd.DataFrame(trial_rows)
  curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
  results = from_tables(trials, curves, problems)
  if not results.trials.empty:
    goal = goal_times(results.trials, results.curves)
    results.trials["goal_step"] = results.trials["trial_id"].map(goal).to_numpy(dtype=float)
  return results
