"""Rankings by steps vs by wall-clock, on synthetic trials and on the AlgoPerf logs."""
from __future__ import annotations

import os
import tarfile

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import reference, schema
from analysis.clock_rankings import OVERALL, clock_rankings, compare, trial_times

STEPS = np.arange(50, 501, 50)


def _store(spec, workload="w"):
  """spec: (submission, study, index) -> (goal step, seconds per step, pack_size, steps/s).

  The validation error falls below the goal (0.1) exactly at the goal step."""
  rows, crows = [], []
  for (sub, study, i), (goal, per_step, pack, rate) in spec.items():
    tid = f"{workload}/{sub}/{study}/{i}"
    rows.append({"trial_id": tid, "study_id": f"{workload}/{sub}/{study}", "workload": workload,
                 "submission": sub, "optimizer": sub, "protocol_name": "p", "trial_index": i,
                 "status": "ok", "goal_metric": "error", "goal_threshold": 0.1,
                 "steps_per_sec": rate, "pack_size": pack})
    for s in STEPS:
      crows.append({"trial_id": tid, "study_id": f"{workload}/{sub}/{study}", "step": float(s),
                    "wall_time": per_step * s, "val/error": 0.05 if s >= goal else 0.5})
  return schema.conform_trials(pd.DataFrame(rows)), schema.conform_curves(pd.DataFrame(crows))


def _three():
  # A needs the fewest steps but each costs 3x: first by steps, last by seconds.
  return _store({("A", "s0", 0): (100, 3.0, 1, 1 / 3), ("A", "s0", 1): (300, 3.0, 1, 1 / 3),
                 ("B", "s0", 0): (150, 1.0, 1, 1.0), ("C", "s0", 0): (200, 1.0, 1, 1.0)})


def test_three_times_slower_per_step_flips_the_ranking():
  trials, curves = _three()
  cr = clock_rankings(trials, curves)
  t = cr.table.set_index("submission")
  assert t.loc["A", "steps"] == 100 and t.loc["A", "seconds"] == 300
  assert t.loc["A", "seconds_per_step"] == pytest.approx(3.0)
  assert list(t.loc[["A", "B", "C"], "rank_steps"]) == [1, 2, 3]
  assert list(t.loc[["A", "B", "C"], "rank_seconds"]) == [3, 1, 2]
  assert list(t.loc[["A", "B", "C"], "change"]) == [2, -1, -1]
  (row,) = cr.summary.itertuples()  # one workload: no overall row
  # d = (-2, 1, 1): rho = 1 - 6 * 6 / (3 * 8) = -0.5, as scipy computes it
  assert row.spearman == pytest.approx(-0.5)
  assert row.spearman == pytest.approx(stats.spearmanr([1, 2, 3], [3, 1, 2]).statistic)
  assert row.n_moved == 3 and row.moved == "A 1->3, B 2->1, C 3->2" and row.comparable
  assert cr.overall.empty


def test_steps_per_sec_clock_and_equal_clocks():
  trials, curves = _three()
  cr = clock_rankings(trials, curves, clock="steps_per_sec")
  assert cr.table.set_index("submission").loc["A", "seconds"] == pytest.approx(300)
  flat = curves.assign(wall_time=curves["step"] * 0.01)  # the same cost per step for all
  same = clock_rankings(trials, flat).summary.iloc[0]
  assert same["spearman"] == pytest.approx(1.0) and same["n_moved"] == 0


def test_fastest_trial_per_clock_and_median_over_studies():
  # Study s0 of A: trial 0 is fastest in steps (100 at 5 s/step), trial 1 in seconds
  # (200 steps at 1 s/step). Studies s1, s2 take 300 and 400 steps at 1 s/step.
  trials, curves = _store({("A", "s0", 0): (100, 5.0, 1, 0.2), ("A", "s0", 1): (200, 1.0, 1, 1),
                           ("A", "s1", 0): (300, 1.0, 1, 1), ("A", "s2", 0): (400, 1.0, 1, 1),
                           ("B", "s0", 0): (250, 1.0, 1, 1)})
  t = clock_rankings(trials, curves).table.set_index("submission")
  assert t.loc["A", "steps"] == 300 and t.loc["A", "seconds"] == 300  # median(100|200, 300, 400)
  times = trial_times(trials, curves).set_index("trial_id")
  assert times.loc["w/A/s0/0", "seconds"] == 500 and times.loc["w/A/s0/1", "seconds"] == 200


def test_packs_are_flagged_and_per_trial_divides():
  trials, curves = _store({("A", "s0", 0): (100, 4.0, 8, 1.0), ("B", "s0", 0): (150, 1.0, 1, 1)})
  rec = clock_rankings(trials, curves)
  row = rec.summary.iloc[0]
  assert not row["comparable"] and row["pack_sizes"] == "1,8"
  assert rec.table.set_index("submission").loc["A", "seconds"] == 400
  per = clock_rankings(trials, curves, pack="per_trial").table.set_index("submission")
  assert per.loc["A", "seconds"] == 50 and per.loc["A", "rank_seconds"] == 1
  solo = clock_rankings(trials.drop(columns=["pack_size"]), curves).summary.iloc[0]
  assert solo["comparable"] and solo["pack_sizes"] == "1"
  with pytest.raises(ValueError):
    clock_rankings(trials, curves, pack="scaled")


def test_overall_profile_ranks_and_misses():
  t1, c1 = _three()
  t2, c2 = _store({("A", "s0", 0): (100, 1.0, 1, 1), ("B", "s0", 0): (400, 1.0, 1, 1),
                   ("C", "s0", 0): (600, 1.0, 1, 1)}, workload="v")  # C never reaches it
  cr = clock_rankings(pd.concat([t1, t2]), pd.concat([c1, c2]))
  v = cr.table[cr.table["workload"] == "v"].set_index("submission")
  assert np.isinf(v.loc["C", "steps"]) and v.loc["C", "rank_steps"] == 3
  overall = cr.overall.set_index("submission")
  assert overall.loc["A", "rank_steps"] == 1 and overall.loc["A", "score_steps"] == 1.0
  last = cr.summary.iloc[-1]
  assert last["workload"] == OVERALL and last["n_submissions"] == 3


def test_constant_orders_have_no_correlation():
  steps = pd.DataFrame({"w": [np.inf, np.inf]}, index=["a", "b"])
  row = compare(steps, steps, None, None).summary.iloc[0]
  assert np.isnan(row["spearman"]) and row["n_reached"] == 0 and row["n_moved"] == 0


def test_pace_outliers_are_named():
  spec = {(s, "s0", 0): (100 + 50 * k, 1.0, 1, 1.0) for k, s in enumerate("ABC")}
  spec[("D", "s0", 0)] = (50, 40.0, 1, 1.0)  # steps that cost 40x: another unit of step?
  trials, curves = _store(spec)
  row = clock_rankings(trials, curves).summary.iloc[0]
  assert row["pace_outliers"].startswith("D (40 s/step vs median 1")


# -------------------------------------------------------------------- AlgoPerf logs

@pytest.fixture(scope="module")
def v05_logs(tmp_path_factory):
  tar = os.path.join(reference.ALGOPERF_V05_DEV, "logs.tar.xz")
  if not os.path.isfile(tar):
    pytest.skip(f"AlgoPerf v0.5 dev logs absent: {tar}")
  root = tmp_path_factory.mktemp("v05")
  with tarfile.open(tar) as f:
    f.extractall(root, filter="data")
  return str(root)


def test_algoperf_steps_vs_time(v05_logs):
  from analysis.algoperf import rankings as algoperf_rankings
  cr, problems = algoperf_rankings.clocks(v05_logs)
  assert problems  # the stray study_N/trial_N folders
  s = cr.summary.set_index("workload")
  # lawa_ema's global_step runs far behind the others' on every workload it reached.
  for w in ("criteo1tb", "fastmri", "imagenet_vit", "ogbg", "wmt"):
    assert s.loc[w, "pace_outliers"].startswith("lawa_ema (")
  overall = cr.overall.set_index("submission")
  assert overall.loc["lawa_ema", "rank_steps"] == 1 and overall.loc["lawa_ema",
                                                                   "rank_seconds"] == 4
  # the by-time score is the official one
  assert overall.loc["schedule_free_adamw", "score_seconds"] == pytest.approx(0.739, abs=1e-3)
  clean, _ = algoperf_rankings.clocks(v05_logs, exclude=["lawa_ema"])
  o = clean.overall.set_index("submission")
  assert list(o.loc[["baseline", "schedule_free_adamw", "caspr_adaptive"], "rank_steps"]) == [
      1, 2, 3]
  assert list(o.loc[["baseline", "schedule_free_adamw", "caspr_adaptive"],
                    "rank_seconds"]) == [2, 1, 3]
  assert clean.summary.iloc[-1]["spearman"] == pytest.approx(0.5)
  assert not clean.summary["pace_outliers"].astype(bool).any()


def test_algoperf_budget_rankings(v05_logs):
  from analysis.algoperf import rankings as algoperf_rankings
  from analysis.budget_rankings import budget_rankings
  res = algoperf_rankings.runs(v05_logs)
  assert set(res.trials["workload"]) <= set(algoperf_rankings.get_version("0.5").scored_workloads)
  assert (res.trials["status"] == "ok").mean() > 0.99  # librispeech is not 'diverged'
  br = budget_rankings(res.trials, res.curves, submission_col="submission", unit="wall_time",
                       budget_col="max_runtime", n_boot=100)
  full = br.ranks[br.ranks["fraction"] == 1.0].set_index("workload")
  assert full.loc["criteo1tb", "budget"] == pytest.approx(7703)  # v0.5 max runtime (s)
  assert br.scores["n_studies"].max() == 5  # (a few pairs ran fewer studies)
  assert br.changes["workload"].nunique() >= 5  # leaders change within the runtime budget


def test_rank_changes_within_pace_noise_are_ties_not_moves():
  # B needs fewer steps than A (150 vs 200); by seconds A is about 6% ahead, but each
  # trial's pace varies by about 20%: a tie within noise, not a move.
  rng = np.random.default_rng(0)
  jitter = np.exp(rng.normal(0, 0.2, size=16))
  spec = {}
  for i in range(8):
    spec[("A", f"s{i}", 0)] = (200, 0.131 * jitter[i] / np.median(jitter[:8]), 1, 1.0)
    spec[("B", f"s{i}", 0)] = (150, 0.185 * jitter[8 + i] / np.median(jitter[8:]), 1, 1.0)
  trials, curves = _store(spec)
  cr = clock_rankings(trials, curves)
  t = cr.table.set_index("submission")
  assert list(t.loc[["A", "B"], "rank_steps"]) == [2, 1]
  assert list(t.loc[["A", "B"], "rank_seconds"]) == [1, 2]
  row = cr.summary.iloc[0]
  assert row["n_moved"] == 0 and row["moved"] == "" and row["n_within_noise"] == 2
  assert not t["beyond_noise"].any()   # the table's rows (and the figure's lines) agree
  # A 3x cost per step with exact paces is a move.
  trials, curves = _three()
  cr3 = clock_rankings(trials, curves)
  three = cr3.summary.iloc[0]
  assert three["n_within_noise"] == 0 and three["n_moved"] == 3
  assert cr3.table["beyond_noise"].all()


def test_the_figure_draws_solid_only_the_moves_beyond_noise(tmp_path):
  """Solid: beyond noise; dashed: a change within noise; dotted: no change."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  from analysis import plots
  table = pd.DataFrame({"workload": "w", "submission": ["A", "B", "C", "D"],
                        "steps": [1., 2, 3, 4], "seconds": [2., 1, 4, 3],
                        "rank_steps": [1, 2, 3, 4], "rank_seconds": [2, 1, 4, 3],
                        "beyond_noise": [True, True, False, False]})
  table.loc[len(table)] = ["w", "E", 5., 5., 5, 5, False]
  summary = pd.DataFrame({"workload": ["w"], "spearman": [0.6], "comparable": [True],
                          "pace_outliers": [""]})
  seen = {}
  real_savefig = plt.Figure.savefig
  def spy(fig, *a, **k):
    for line in fig.axes[0].get_lines():
      if len(line.get_xdata()) == 2:
        seen[line.get_label()] = line.get_linestyle()
    return real_savefig(fig, *a, **k)
  plt.Figure.savefig = spy
  try:
    plots.clock_rank_plot(table, summary, tmp_path / "f.png")
  finally:
    plt.Figure.savefig = real_savefig
  assert seen == {"A": "-", "B": "-", "C": "--", "D": "--", "E": ":"}
