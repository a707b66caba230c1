"""Importers of published logs: DeepOBS (real file), batch_science and AlgoPerf fixtures."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from analysis import importers, reference, schema
from analysis.algoperf import results as algoperf_results
from analysis.profiles import performance_profile
from analysis.steps_to_result import (best_under_budget, goal_times, optimal_effective_lr,
                                      scaling_regimes, steps_to_result)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
DEEPOBS = reference.DEEPOBS_CSV


# ------------------------------------------------------------------ DeepOBS

@pytest.fixture(scope="module")
def deepobs():
  if not os.path.exists(DEEPOBS):
    pytest.skip(f"DeepOBS baselines file absent: {DEEPOBS}")
  return importers.deepobs(DEEPOBS)


def test_deepobs_shape(deepobs):
  trials, curves = deepobs
  assert len(trials) == 1080 and trials["trial_id"].is_unique
  assert list(trials.columns[:len(schema.TRIAL_COLUMNS)]) == list(schema.TRIAL_COLUMNS)
  assert set(trials["optimizer"]) == {"sgd", "momentum", "adam"}
  assert trials["workload"].nunique() == 8
  assert len(curves) == 157680
  assert not any(c.startswith("val/") for c in curves.columns)  # DeepOBS 1.1: no validation
  assert trials["best/test/error"].isna().all()  # nothing selected by validation
  div = trials[trials["status"] == "diverged"]
  assert len(div) > 0 and div["diverged_step"].notna().all()


def test_deepobs_baseline_table(deepobs):
  table = importers.deepobs_baseline_table(deepobs)
  assert len(table) == 24
  # The best grid learning rate is the one DeepOBS re-ran with seeds 43..51.
  assert (table["n_seeds"] == 10).all()
  assert all(s == list(range(42, 52)) for s in table["seeds"])
  acc = table[table["metric"] == "test_accuracy"]
  assert set(table.loc[table["metric"] == "test_loss", "testproblem"]) == {
      "fmnist_vae", "mnist_vae", "quadratic_deep"}
  assert ((acc["mean"] > 0.5) & (acc["mean"] < 1)).all()
  # Independent recomputation from the raw CSV for one cell.
  raw = pd.read_csv(DEEPOBS)
  last = raw[raw["epoch"] == raw["num_epochs"]]
  grid = last[(last["testproblem"] == "cifar10_3c3d") & (last["optimizer"] == "AdamOptimizer")]
  best_lr = grid[grid["random_seed"] == 42].set_index("learning_rate")["test_accuracy"].idxmax()
  seeds = grid[np.isclose(grid["learning_rate"], best_lr, rtol=1e-6)]["test_accuracy"]
  row = table.set_index(["testproblem", "optimizer"]).loc[("cifar10_3c3d", "adam")]
  assert row["best_lr"] == pytest.approx(best_lr)
  assert row["mean"] == pytest.approx(seeds.mean())
  assert row["std"] == pytest.approx(seeds.std(ddof=1))
  md = importers.deepobs_baseline_markdown(table)
  lines = md.strip().splitlines()
  assert lines[0].startswith("| test problem | metric | sgd | momentum | adam |")
  assert len(lines) == 2 + 8 and "cifar10_3c3d" in md


# ------------------------------------------------------------ batch_science

@pytest.fixture(scope="module")
def batch_science():
  return importers.batch_science(os.path.join(FIXTURES, "batch_science"))


def test_batch_science_tables(batch_science):
  trials, curves = batch_science
  assert len(trials) == 8
  assert set(trials["workload"]) == {"mnist/simple_cnn_base"}
  assert set(trials["optimizer"]) == {"nesterov"}
  assert dict(trials["status"].value_counts()) == {"ok": 6, "diverged": 1, "failed": 1}
  assert set(trials["goal_metric"]) == {"classification_error"}
  assert set(trials["goal_threshold"]) == {0.01}  # Shallue et al.'s MNIST goal
  assert "val/classification_error" in curves.columns
  assert trials["hp/learning_rate"].notna().all()
  # The trial folder without metadata.json is reported and skipped.
  assert len(batch_science.problems) == 1 and "64" in batch_science.problems[0]


def test_batch_science_steps_to_result(batch_science):
  trials, curves = batch_science
  table = steps_to_result(trials, curves).set_index("batch_size")
  # 16: trial 1 at 3000 (trial 2: 0.01 is not < 0.01, then 3500; infeasible trial 3
  # reached at 1000 and is excluded). 32: trials 1 and 3 tie at 1500 (incomplete
  # trial 2 at 1000 is excluded). 64: trial 1 at 1000, trial 2 never.
  assert dict(table["steps_to_result"]) == {16: 3000.0, 32: 1500.0, 64: 1000.0}
  assert list(table["fastest_trial_id"].str.rsplit("/", n=1).str[-1]) == ["1", "1", "1"]
  assert list(table["n_eligible"]) == [2, 2, 2]
  eff = optimal_effective_lr(trials, curves)
  np.testing.assert_allclose(eff["effective_lr"], [0.05 / 0.1, 0.1 / 0.05, 0.2 / 0.01])
  reg = scaling_regimes(table.index, table["steps_to_result"])
  assert reg["perfect_limit"] == 64  # 1000 / 750 = 1.33 <= 1.5
  assert reg["max_useful_batch"] == 64 and not reg["saturation_observed"]
  # Example budget, as Shallue's apply_example_budget: step * batch <= budget.
  best = best_under_budget(trials, curves, budgets=[32000], unit="examples")
  got = best.set_index("batch_size")["best"]
  assert got[16] == pytest.approx(0.01) and got[32] == pytest.approx(0.012)
  assert got[64] == pytest.approx(0.05)


def test_batch_science_goal_override(batch_science):
  res = importers.batch_science(os.path.join(FIXTURES, "batch_science"),
                                goals={"mnist": ("classification_error", 0.03)})
  table = steps_to_result(res.trials, res.curves).set_index("batch_size")
  assert dict(table["steps_to_result"]) == {16: 2000.0, 32: 1000.0, 64: 750.0}


# ----------------------------------------------------------------- AlgoPerf

@pytest.fixture(scope="module")
def algoperf():
  return algoperf_results.load(os.path.join(FIXTURES, "algoperf"),
                               targets={"mnist": ("accuracy", 0.9)})


def test_algoperf_tables(algoperf):
  trials, curves = algoperf
  assert len(trials) == 6 and not algoperf.problems
  assert set(trials["submission"]) == {"sub_a", "sub_b"}
  assert set(trials["study"]) == {"study_0", "study_1"}
  assert set(trials["framework"]) == {"jax"}
  assert set(trials["goal_metric"]) == {"error"}
  assert trials["goal_threshold"].iloc[0] == pytest.approx(0.1)
  assert {"val/error", "val/loss", "test/error", "train/loss"} <= set(curves.columns)
  assert "val/num_examples" not in curves.columns
  t = trials.set_index("trial_id")
  assert t.loc["sub_b/study_0/mnist/trial_2", "status"] == "diverged"
  # accuracy exactly at the target counts (AlgoPerf's rule), so trial 1 reaches at step 200
  assert t.loc["sub_a/study_0/mnist/trial_1", "goal_step"] == 200
  assert t.loc["sub_a/study_0/mnist/trial_1", "goal_time"] == 90
  assert math.isnan(t.loc["sub_a/study_0/mnist/trial_2", "goal_step"])
  assert t.loc["sub_a/study_0/mnist/trial_1", "hp/learning_rate"] == pytest.approx(0.001)
  strict = goal_times(trials, curves)  # the harness's strict rule
  assert strict["sub_a/study_0/mnist/trial_1"] == 300


def test_algoperf_performance_profile(algoperf):
  prof = performance_profile(algoperf.trials, time_col="goal_time")
  # sub_a: median(90, 40) = 65; sub_b: median(min(60, 55), 100) = 77.5
  assert prof.times.loc["sub_a", "mnist"] == 65 and prof.times.loc["sub_b", "mnist"] == 77.5
  assert prof.ratios.loc["sub_b", "mnist"] == pytest.approx(77.5 / 65)
  assert prof.score["sub_a"] == pytest.approx(1.0)
  assert prof.score["sub_b"] == pytest.approx((4 - 77.5 / 65) / 3, abs=0.01)
  # Counting only trials that did not diverge: sub_b's study_0 best is 60.
  ok = performance_profile(algoperf.trials, time_col="goal_time", statuses=("ok",))
  assert ok.times.loc["sub_b", "mnist"] == 80


def test_performance_profile_math():
  rows = []
  # workload w1: A=100, B=200; w2: A=300, B=150; w3: A misses, B=50.
  for sub, times in {"A": [100, 300, np.nan], "B": [200, 150, 50]}.items():
    for w, time in zip(["w1", "w2", "w3"], times):
      rows.append({"submission": sub, "workload": w, "study_id": f"{sub}/{w}",
                   "goal_step": time})
  prof = performance_profile(pd.DataFrame(rows), taus=[1.0, 1.5, 2.0, 4.0])
  np.testing.assert_allclose(prof.ratios.loc["A"], [1.0, 2.0, np.inf])
  np.testing.assert_allclose(prof.ratios.loc["B"], [2.0, 1.0, 1.0])
  np.testing.assert_allclose(prof.profile.loc["A"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
  np.testing.assert_allclose(prof.profile.loc["B"], [2 / 3, 2 / 3, 1.0, 1.0])


def test_algoperf_divergence_reads_only_each_trials_own_loss_columns(tmp_path):
  # Two workloads with different headers: the speech log has ctc_loss only, so the
  # image workload's loss columns are NaN in its rows; that is not divergence. A NaN
  # in a loss column the trial's own log has is.
  def log(path, header, rows):
    path.mkdir(parents=True)
    (path / "eval_measurements.csv").write_text(
        header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
  root = tmp_path / "sub" / "study_0"
  log(root / "mnist_jax" / "trial_1", "global_step,score,train/loss,validation/accuracy",
      [(1, 1.0, 2.0, 0.1), (100, 9.0, 0.5, 0.9)])
  speech = "global_step,score,train/ctc_loss,validation/wer"
  log(root / "librispeech_deepspeech_jax" / "trial_1", speech, [(1, 1.0, 30.0, 4.0),
                                                              (100, 9.0, 1.0, 0.2)])
  log(root / "librispeech_deepspeech_jax" / "trial_2", speech, [(1, 1.0, 30.0, 4.0),
                                                              (100, 9.0, "nan", 0.9)])
  t = algoperf_results.load(tmp_path).trials.set_index("trial_id")["status"]
  assert t["sub/study_0/mnist/trial_1"] == "ok"
  assert t["sub/study_0/librispeech_deepspeech/trial_1"] == "ok"
  assert t["sub/study_0/librispeech_deepspeech/trial_2"] == "diverged"
