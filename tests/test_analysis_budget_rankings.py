"""Rankings across training budgets, on synthetic curves and on the published runs."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from analysis import importers, schema
from analysis.budget_rankings import FRACTIONS, budget_rankings
from analysis.rankings import optimizer_scores

STEPS = np.arange(100, 1001, 100)


def _store(curves_by_trial, *, budget=1000, diverged=None):
  """trials and curves tables: curves_by_trial maps (optimizer, study, index) -> val
  errors at STEPS (test = val + 0.05); `diverged` maps such a key to its step."""
  diverged = diverged or {}
  rows, crows = [], []
  for (opt, study, i), vals in curves_by_trial.items():
    tid = f"{study}/{opt}/{i}"
    div = diverged.get((opt, study, i))
    rows.append({"trial_id": tid, "study_id": f"{study}/{opt}", "workload": "w",
                 "protocol_name": "p", "optimizer": opt, "trial_index": i,
                 "status": "diverged" if div else "ok", "goal_metric": "error",
                 "train_steps": budget, "diverged_step": div})
    for s, v in zip(STEPS, vals):
      crows.append({"trial_id": tid, "study_id": f"{study}/{opt}", "step": float(s),
                    "wall_time": 0.01 * s, "val/error": v, "test/error": v + 0.05})
  trials = schema.conform_trials(pd.DataFrame(rows))
  curves = schema.conform_curves(pd.DataFrame(crows))
  summary = schema.summarize_curves(curves, trials.set_index("trial_id")["goal_metric"])
  trials = schema.conform_trials(trials.drop(columns=["best_step"]).join(summary, on="trial_id"))
  return trials, curves


def _fast_then_flat(level, knee=3):
  """Falls fast, flat from the knee-th eval on."""
  return [max(0.6 - 0.1 * k, level) for k in range(1, len(STEPS) + 1)][:knee] + \
      [level] * (len(STEPS) - knee)


SLOW = [0.55, 0.50, 0.45, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15, 0.10]


def _crossing(n=4):
  # A: fast then flat at 0.30; B: slow, equal to A at 60%, below it from 70% on.
  spec = {}
  for i in range(n):
    spec[("A", "s0", i)] = [v + 0.01 * i for v in _fast_then_flat(0.30)]
    spec[("B", "s0", i)] = [v + 0.01 * i for v in SLOW]
  return _store(spec)


def test_order_change_is_found_at_the_right_budget():
  trials, curves = _crossing()
  br = budget_rankings(trials, curves, n_boot=200)
  ranks = br.ranks.set_index("fraction")
  assert list(ranks.loc[[0.1, 0.5], "A"]) == [1, 1] and list(ranks.loc[[0.1, 0.5], "B"]) == [2, 2]
  assert ranks.loc[0.7, "B"] == 1 and ranks.loc[0.7, "A"] == 2
  assert ranks.loc[1.0, "order"] == "B, A"
  assert list(ranks.index[ranks["changed"]]) == [0.6, 0.7]  # the tie, then the swap
  (change,) = br.changes.itertuples()  # the tie at 60% does not hide the swap
  assert (change.fraction, change.prev_fraction, change.ahead, change.behind) == (0.7, 0.5,
                                                                                   "B", "A")
  assert change.p_after > 0.9 and change.p_before < 0.1  # A's best trial beats every B trial
  # Paired: the swap itself in at least 90% of replicates, so beyond noise.
  assert change.p_swap <= min(change.p_after, 1 - change.p_before)
  assert change.p_swap >= 0.9 and change.beyond_noise
  assert ranks.loc[0.7, "swaps"] == "B > A"


def test_retrospective_selection_and_its_test_value():
  # One study: trial 0 is best early, trial 1 best late; the test value is the selected
  # row's, not the final row's.
  trials, curves = _store({("A", "s0", 0): [0.5, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
                           ("A", "s0", 1): [0.6] * 5 + [0.1] * 5,
                           ("B", "s0", 0): [0.4] * 10})
  s = budget_rankings(trials, curves, n_boot=0).scores
  a = s[s["optimizer"] == "A"].set_index("fraction")
  assert a.loc[0.1, "score"] == pytest.approx(0.5) and a.loc[0.1, "best_trial_id"] == "s0/A/0"
  assert a.loc[0.5, "score"] == pytest.approx(0.2) and a.loc[0.5, "test"] == pytest.approx(0.25)
  assert a.loc[0.6, "score"] == pytest.approx(0.1) and a.loc[0.6, "best_trial_id"] == "s0/A/1"
  assert a.loc[1.0, "test"] == pytest.approx(0.15)
  b = s[s["optimizer"] == "B"].set_index("fraction")
  assert list(b["rank"]) == [1] + [2] * 9  # B 0.4 beats A 0.5, then A 0.2 beats B
  changes = budget_rankings(trials, curves, n_boot=0).changes
  assert changes[["fraction", "prev_fraction", "ahead", "behind"]].values.tolist() == [
      [0.2, 0.1, "A", "B"]]


def test_full_budget_agrees_with_optimizer_scores():
  trials, curves = _crossing(n=6)
  s = budget_rankings(trials, curves, n_boot=0).scores
  full = s[s["fraction"] == 1.0].set_index("optimizer")
  ref = optimizer_scores(trials, by=["workload"]).set_index("optimizer")
  np.testing.assert_allclose(full["score"], ref.loc[full.index, "best_val"])
  np.testing.assert_allclose(full["test"], ref.loc[full.index, "test_at_best"])
  assert list(full["best_trial_id"]) == list(ref.loc[full.index, "best_trial_id"])


def test_a_trial_counts_as_diverged_only_from_its_divergence_step():
  spec = {("A", "s0", 0): [0.5, 0.1, 0.1, 0.1, 0.1, 0.1] + [np.nan] * 4,
          ("A", "s0", 1): [0.4] * 10, ("B", "s0", 0): [0.3] * 10}
  trials, curves = _store(spec, diverged={("A", "s0", 0): 650})
  s = budget_rankings(trials, curves, n_boot=0).scores
  a = s[s["optimizer"] == "A"].set_index("fraction")
  assert a.loc[0.6, "score"] == pytest.approx(0.1) and a.loc[0.6, "n_diverged"] == 0
  assert a.loc[0.7, "score"] == pytest.approx(0.4) and a.loc[0.7, "n_diverged"] == 1
  excl = budget_rankings(trials, curves, n_boot=0, diverged="exclude").scores
  assert excl[(excl["optimizer"] == "A") & (excl["fraction"] == 0.7)]["n_trials"].item() == 1


def test_median_over_studies_and_bootstrap_bands():
  spec = {}
  for k, level in enumerate((0.20, 0.30, 0.40)):  # three studies of A
    for i in range(5):
      spec[("A", f"s{k}", i)] = [level + 0.02 * i] * 10
  for i in range(5):
    spec[("B", "s0", i)] = [0.25 + 0.02 * i] * 10
  trials, curves = _store(spec)
  br = budget_rankings(trials, curves, n_boot=300, seed=1)
  full = br.scores[br.scores["fraction"] == 1.0].set_index("optimizer")
  assert full.loc["A", "score"] == pytest.approx(0.30) and full.loc["A", "n_studies"] == 3
  assert full.loc["B", "rank"] == 1 and full.loc["A", "rank"] == 2
  assert (full["score_lo"] <= full["score"]).all() and (full["score"] <= full["score_hi"]).all()
  assert full.loc["A", "score_lo"] == pytest.approx(0.30)  # a study's min never beats its best
  assert 0 <= full.loc["B", "p_first"] <= 1 and full.loc["B", "rank_lo"] == 1
  again = budget_rankings(trials, curves, n_boot=300, seed=1)
  pd.testing.assert_frame_equal(br.scores, again.scores)


def test_select_auto_falls_back_to_test_and_wall_time_budgets():
  trials, curves = _crossing()
  no_val = curves.drop(columns=["val/error"])
  br = budget_rankings(trials, no_val, n_boot=0)
  assert set(br.scores["selected_on"]) == {"test"}
  full = br.scores[br.scores["fraction"] == 1.0].set_index("optimizer")
  assert full.loc["B", "score"] == pytest.approx(0.15)  # test = val + 0.05
  # wall_time = 0.01 * step: the same ranks on a 10 s budget, or on a budget column.
  by_time = budget_rankings(trials, curves, n_boot=0, unit="wall_time")
  steps = budget_rankings(trials, curves, n_boot=0)
  assert by_time.ranks["order"].tolist() == steps.ranks["order"].tolist()
  half = budget_rankings(trials.assign(cap=20.0), curves, n_boot=0, unit="wall_time",
                         budget_col="cap", fractions=[0.25, 0.5])
  assert list(half.ranks["budget"]) == [5.0, 10.0]
  assert half.ranks.set_index("fraction").loc[0.5, "order"] == "B, A"


def test_bad_options_raise():
  trials, curves = _crossing(n=2)
  for kw in ({"fractions": [0.0, 1.0]}, {"unit": "epochs"}, {"select": "valid"},
             {"rank_on": "val"}, {"diverged": "drop"}):
    with pytest.raises(ValueError):
      budget_rankings(trials, curves, n_boot=0, **kw)
  with pytest.raises(KeyError):
    budget_rankings(trials, curves, submission_col="submission")
  one = trials[trials["optimizer"] == "A"]
  assert budget_rankings(one, curves, n_boot=0).scores.empty  # nothing to rank


# -------------------------------------------------------------------- published runs

def test_deepobs_baselines_across_budgets():
  if not os.path.isfile(importers.DEEPOBS_CSV):
    pytest.skip(f"DeepOBS baselines file absent: {importers.DEEPOBS_CSV}")
  res = importers.deepobs(importers.DEEPOBS_CSV)
  grid = res.trials[res.trials["seed"] == 42]
  br = budget_rankings(grid, res.curves, n_boot=200)
  assert set(br.scores["selected_on"]) == {"test"}  # no validation split in DeepOBS 1.1
  assert br.ranks["workload"].nunique() == 8 and len(br.ranks) == 8 * len(FRACTIONS)
  steps = br.ranks.set_index(["workload", "fraction"])["budget"]
  assert steps[("cifar100_allcnnc", 0.1)] == 35 and steps[("mnist_vae", 1.0)] == 50  # epochs
  changed = set(br.changes["workload"])
  assert "fmnist_vae" not in changed and "tolstoi_char_rnn" in changed
  # tolstoi: Adam leads for the first 40% of the epochs, SGD from 50% on.
  tol = br.ranks[br.ranks["workload"] == "tolstoi_char_rnn"].set_index("fraction")
  assert tol.loc[0.1, "adam"] == 1 and tol.loc[1.0, "sgd"] == 1
  # at the full budget the selection is DeepOBS's own: the best final-or-earlier test error
  full = br.scores[(br.scores["fraction"] == 1.0) & (br.scores["workload"] == "fmnist_2c2d")]
  assert full.set_index("optimizer").loc["adam", "score"] == pytest.approx(
      grid[(grid["workload"] == "fmnist_2c2d") & (grid["optimizer"] == "adam")]
      .pipe(lambda t: res.curves[res.curves["trial_id"].isin(t["trial_id"])]["test/error"]
            .min()))
