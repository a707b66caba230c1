"""Loading a bench results dir and Shallue's steps to result on a hand-made study."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import analysis
from analysis.steps_to_result import (best_under_budget, describe_regime, describe_steps, goal_times,
                                      optimal_effective_lr, perfect_scaling, scaling_curve,
                                      scaling_regimes, steps_to_result)

NAN = float("nan")
GOAL = 0.1  # val/error < 0.1
NUM_TRAIN = 1000

# batch size -> trials: (name, status, lr, momentum, val/error at steps 100, 200, 300, 400)
STUDIES = {
    128: [("t0", "ok", 0.1, 0.9, [0.5, 0.2, 0.09, 0.05]),     # first < 0.1 at 300
          ("t1", "ok", 0.3, 0.5, [0.3, 0.1, 0.12, 0.095]),    # 0.1 is not < 0.1: 400
          ("t2", "diverged", 3.0, 0.9, [0.05, NAN]),          # reached at 100, then diverged
          ("t3", "failed", 0.1, 0.0, [])],                    # crashed: no curve
    256: [("t0", "ok", 0.2, 0.9, [0.3, 0.08, 0.07, 0.06]),    # 200
          ("t1", "ok", 0.01, 0.0, [0.6, 0.5, 0.4, 0.3])],     # never
    512: [("t0", "ok", 0.4, 0.99, [0.4, 0.09, 0.08, 0.07])],  # 200: no gain over 256
}
EXPECTED = {128: 300.0, 256: 200.0, 512: 200.0}


def _record(study_id, trial_id, index, batch, status, lr, mom, errors):
  curve = []
  for i, e in enumerate(errors):
    step = 100 * (i + 1)
    curve.append({"step": step, "wall_time": 0.5 * step, "train/loss": 2 * e, "train/error": e,
                  "val/loss": 2.1 * e, "val/error": e, "test/loss": 2.2 * e,
                  "test/error": e + 0.01})
  finite = [r for r in curve if math.isfinite(r["val/error"])]
  best = min(finite, key=lambda r: r["val/error"]) if finite else None
  goal = next((r["step"] for r in finite if r["val/error"] < GOAL), None)
  return {
      "schema_version": 1, "trial_id": trial_id, "study_id": study_id,
      "experiment": "batch_scaling", "protocol_name": "shallue_nesterov",
      "protocol_hash": "abc123", "trial_index": index,
      "workload": {"name": "mnist1d_mlp", "goal": {"metric": "error", "threshold": GOAL},
                   "dtype": "float32", "num_train_examples": NUM_TRAIN},
      "optimizer": "nesterov", "hparams": {"learning_rate": lr, "momentum": mom,
                                           "schedule": "linear_decay"},
      "scientific": {"batch_size": batch}, "batch_size": batch, "train_steps": 400,
      "eval_every": 100, "seed": 1000 + index, "status": status,
      "status_reason": "" if status == "ok" else f"{status} for the test",
      "diverged_step": 200 if status == "diverged" else None, "curve": curve, "best": best,
      "goal_step": goal, "steps_per_sec": 100.0, "train_time_sec": 4.0, "wall_time_sec": 5.0,
      "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:00:05Z",
      "code_version": "test", "backend": "cpu", "host": "localhost"}


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("results")
  for batch, trials in STUDIES.items():
    study_id = f"bs{batch}"
    sdir = root / study_id
    sdir.mkdir()
    (sdir / "study.json").write_text(json.dumps({
        "schema_version": 1, "study_id": study_id, "experiment": "batch_scaling",
        "protocol": {"name": "shallue_nesterov",
                     "objective": {"name": "steps_to_goal", "metric": "error"}},
        "protocol_hash": "abc123", "scientific": {"batch_size": batch},
        "workload": "mnist1d_mlp", "study_seed": 0}))
    for index, (name, status, lr, mom, errors) in enumerate(trials):
      tdir = sdir / name
      tdir.mkdir()
      rec = _record(study_id, f"{study_id}-{name}", index, batch, status, lr, mom, errors)
      # json.dumps writes NaN as the bare token NaN, as Python's json module does.
      (tdir / "record.json").write_text(json.dumps(rec))
  # Things that must be ignored silently: a partial write, a checkpoint.
  (root / "bs128" / "t0" / "record.json.tmp").write_text("{")
  (root / "bs128" / "t0" / "checkpoint_300.npz").write_bytes(b"\x00\x01")
  # Things that must be skipped and reported.
  (root / "bs128" / "corrupt").mkdir()
  (root / "bs128" / "corrupt" / "record.json").write_text('{"schema_version": 1, "trial_')
  (root / "bs256" / "future").mkdir()
  (root / "bs256" / "future" / "record.json").write_text(json.dumps({"schema_version": 2}))
  (root / "notes.txt").write_text("not a result")
  return root


@pytest.fixture(scope="module")
def loaded(results_dir):
  return analysis.load(results_dir)


def test_load_tables(loaded):
  trials, curves = loaded  # tuple unpacking gives the two tables
  assert len(trials) == 7
  assert set(trials["status"]) == {"ok", "diverged", "failed"}
  t0 = trials.set_index("trial_id").loc["bs128-t0"]
  assert t0["workload"] == "mnist1d_mlp" and t0["optimizer"] == "nesterov"
  assert t0["batch_size"] == 128 and t0["sci/batch_size"] == 128
  assert t0["goal_metric"] == "error" and t0["goal_threshold"] == GOAL
  assert t0["goal_step"] == 300 and t0["best_step"] == 400
  assert t0["best/val/error"] == pytest.approx(0.05)
  assert t0["best/test/error"] == pytest.approx(0.06)
  assert t0["final/val/error"] == pytest.approx(0.05)
  assert t0["hp/learning_rate"] == 0.1 and t0["hp/schedule"] == "linear_decay"
  assert t0["objective"] == "steps_to_goal" and t0["num_train_examples"] == NUM_TRAIN
  assert list(curves.columns[:4]) == ["trial_id", "study_id", "step", "wall_time"]
  assert "val/error" in curves.columns
  assert len(curves) == 4 * 5 + 2  # five full curves, the diverged one has 2 rows
  assert len(loaded.studies) == 3


def test_bad_files_are_reported_not_fatal(loaded, results_dir):
  problems = loaded.problems
  assert len(problems) == 3, problems
  joined = "\n".join(problems)
  assert os.path.join("bs128", "corrupt", "record.json") in joined
  assert os.path.join("bs256", "future", "record.json") in joined and "schema_version" in joined
  assert "notes.txt" in joined and "foreign" in joined
  assert all("\n" not in p for p in problems)


def test_a_report_folder_beside_the_results_is_not_foreign(results_dir, tmp_path):
  # The demo writes <out>/results and <out>/report: reporting on <out> must not list
  # the report's own files as problems; a stray file next to them still is.
  import shutil
  out = tmp_path / "out"
  shutil.copytree(results_dir, out / "results")
  (out / "report" / "figures").mkdir(parents=True)
  (out / "report" / "report.md").write_text("# report\n")
  (out / "report" / "figures" / "steps_to_result.png").write_bytes(b"\x89PNG")
  base = len(analysis.load(results_dir).problems)
  assert len(analysis.load(out).problems) == base
  (out / "report" / "notes.txt").write_text("mine")
  assert len(analysis.load(out).problems) > base


def test_missing_dir_is_reported(tmp_path):
  res = analysis.load(tmp_path / "nope")
  assert res.trials.empty and len(res.problems) == 1


def test_steps_to_result_hand_computed(loaded):
  trials, curves = loaded
  table = steps_to_result(trials, curves)
  got = dict(zip(table["batch_size"], table["steps_to_result"]))
  assert got == EXPECTED
  row = table.set_index("batch_size").loc[128]
  # The diverged trial reached the goal at step 100 but is excluded.
  assert row["fastest_trial_id"] == "bs128-t0"
  assert (row["n_trials"], row["n_eligible"], row["n_reached"]) == (4, 2, 2)
  # Including diverged trials (not Shallue's rule) would give 100.
  loose = steps_to_result(trials, curves, statuses=("ok", "diverged"))
  assert loose.set_index("batch_size").loc[128, "steps_to_result"] == 100


def test_goal_override_and_strictness(loaded):
  trials, curves = loaded
  steps = goal_times(trials, curves)
  assert steps["bs128-t1"] == 400  # 0.1 at step 200 is not strictly below 0.1
  assert goal_times(trials, curves, strict=False)["bs128-t1"] == 200
  other = steps_to_result(trials, curves, threshold=0.3)
  assert dict(zip(other["batch_size"], other["steps_to_result"])) == {128: 200, 256: 200,
                                                                      512: 200}
  none = steps_to_result(trials, curves, threshold=0.01)
  assert none["steps_to_result"].isna().all() and none["fastest_trial_id"].isna().all()
  wall = goal_times(trials, curves, time_col="wall_time")
  assert wall["bs128-t0"] == 150.0


def test_scaling_regimes():
  b = [128, 256, 512]
  s = [300, 200, 200]
  np.testing.assert_allclose(perfect_scaling(b, s), [300, 150, 75])
  reg = scaling_regimes(b, s)
  # 200 / 150 = 1.33 <= 1.5 (still perfect); 200 / 75 > 1.5.
  assert reg["perfect_limit"] == 256
  # beyond 256 no batch size cuts steps by 10%; 512 reached the goal, so it is observed.
  assert reg["max_useful_batch"] == 256 and reg["saturation_observed"]
  reg = scaling_regimes([8, 16, 32, 64], [NAN, 1000, 500, 260])
  assert reg["perfect_limit"] == 64 and reg["max_useful_batch"] == 64
  assert not reg["saturation_observed"]
  reg = scaling_regimes([8, 16], [NAN, NAN])
  assert math.isnan(reg["perfect_limit"]) and math.isnan(reg["max_useful_batch"])


def test_scaling_curve(loaded):
  trials, curves = loaded
  sc = scaling_curve(trials, curves)
  table = sc.table.set_index("batch_size")
  assert dict(table["steps_to_result"]) == EXPECTED
  # Order-statistic bounds: one trial bounds nothing at 90%; two bound the rerun
  # median from above by the second best (P(Bin(2, 1 - 2**-0.5) <= 1) = 0.91).
  assert table.loc[512, "sides"] == "none" and math.isnan(table.loc[512, "hi"])
  assert table.loc[128, "sides"] == "upper" and table.loc[128, "hi"] == 400
  assert math.isnan(table.loc[128, "lo"])
  assert np.isinf(table.loc[256, "hi"])  # the second trial never reached the goal
  assert list(table["budget"]) == [400, 400, 400] and list(table["first_eval"]) == [100] * 3
  assert list(table["censored"]) == ["", "", ""]
  assert table.loc[128, "perfect_steps"] == 300 and table.loc[512, "perfect_steps"] == 75
  est = sc.estimates.iloc[0]
  assert est["perfect_limit"] == 256 and not est["perfect_limit_censored"]
  assert est["max_useful_batch"] == 256 and not est["max_useful_batch_censored"]
  cells = [describe_steps(r) for r in sc.table.itertuples()]
  assert cells == ["300 (<= 400)", "200 (unbounded)", "200 (too few trials to bound)"]


def test_censored_values_are_marked(loaded):
  trials, curves = loaded
  # A goal every trial meets at the first eval, and one no trial meets.
  easy = scaling_curve(trials, curves, threshold=0.7)
  assert set(easy.table["censored"]) == {"<="}
  assert describe_steps(next(easy.table.itertuples())).startswith("<= 100")
  est = easy.estimates.iloc[0]
  # 100 steps at every batch size: the perfect regime ends at once, saturation is seen.
  assert est["max_useful_batch"] == 128 and not est["max_useful_batch_censored"]
  hard = scaling_curve(trials, curves, threshold=0.01)
  assert set(hard.table["censored"]) == {">"}
  assert describe_steps(next(hard.table.itertuples())) == (
      "> 400: not reached")
  grid_end = scaling_curve(
      trials[trials["batch_size"] < 512], curves)
  e = grid_end.estimates.iloc[0]
  assert e["perfect_limit"] == 256 and e["perfect_limit_censored"]
  assert e["max_useful_batch"] == 256 and e["max_useful_batch_censored"]
  assert describe_regime(256, True) == ">= 256"


def test_optimal_effective_lr(loaded):
  trials, curves = loaded
  eff = optimal_effective_lr(trials, curves).set_index("batch_size")
  np.testing.assert_allclose(eff["effective_lr"].to_numpy(),
                             [0.1 / 0.1, 0.2 / 0.1, 0.4 / 0.01])


def test_best_under_budget(loaded):
  trials, curves = loaded
  steps = best_under_budget(trials, curves, budgets=[50, 200, 400], unit="steps")
  got = steps.set_index(["batch_size", "budget"])["best"]
  assert math.isnan(got[(128, 50)])
  assert got[(128, 200)] == pytest.approx(0.1)  # t1 at step 200; diverged t2 excluded
  assert got[(256, 200)] == pytest.approx(0.08)
  assert got[(512, 400)] == pytest.approx(0.07)
  # 25.6 epochs = step 200 at batch 128, step 100 at 256, step 50 at 512.
  ep = best_under_budget(trials, curves, budgets=[25.6], unit="epochs")
  got = ep.set_index("batch_size")["best"]
  assert got[128] == pytest.approx(0.1) and got[256] == pytest.approx(0.3)
  assert math.isnan(got[512])
