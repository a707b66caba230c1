"""AlgoPerf's official scoring: each rule on small logs written here, the CLI, the
harness-store mapping, and the shared v0.5 development subset (skipped when absent)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest

from analysis import algoperf, reference
from analysis.algoperf import logs as algoperf_logs
from analysis.algoperf import scoring as algoperf_scoring
from analysis.algoperf import store as algoperf_store
from analysis.algoperf import versions as algoperf_versions
from analysis.algoperf import results as algoperf_results
from analysis.algoperf.versions import Target, Version
from analysis.results import load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET = 100.0
# Base workloads a (accuracy, higher is better) and b (loss), held-out variant a_v of a.
TOY = Version(
    name="toy", base_workloads=("a", "b"), held_out={"a_v": "a"},
    targets={"a": Target("validation/accuracy", 0.9, True, BUDGET),
             "b": Target("validation/loss", 0.5, False, BUDGET),
             "a_v": Target("validation/accuracy", 0.8, True, BUDGET)},
    runtime_factor={"external_tuning": 1.0, "self_tuning": 3.0}, num_studies=1, num_trials=1)
HIT = {"a": 0.95, "b": 0.4, "a_v": 0.85}   # a value past each target
MISS = {"a": 0.5, "b": 0.9, "a_v": 0.5}


def write_log(root, submission, study, workload, trial, rows, *, framework="jax"):
  """rows: (step, time, value of the workload's target metric) per evaluation."""
  metric = TOY.targets.get(workload, TOY.targets["a"]).metric
  d = root / submission / f"study_{study}" / f"{workload}_{framework}" / f"trial_{trial}"
  d.mkdir(parents=True, exist_ok=True)
  lines = [f"global_step,score,accumulated_submission_time,{metric},train/loss"]
  lines += [f"{s},{t},{t},{v},1.0" for s, t, v in rows]
  (d / "eval_measurements.csv").write_text("\n".join(lines) + "\n")
  (d / "hparams.json").write_text(json.dumps({"learning_rate": 0.1}))
  return d


def reach(root, submission, workload, time, *, study=0, trial=1, step=None):
  """A one-trial study reaching the target at `time` (inf: never) on its second eval."""
  last = HIT[workload] if math.isfinite(time) else MISS[workload]
  t = time if math.isfinite(time) else 90.0
  write_log(root, submission, study, workload, trial,
            [(1, t / 2, MISS[workload]), (step or 2 * t, t, last)])


def score(root, version=TOY, **kw) -> algoperf_scoring.Leaderboard:
  logs = algoperf_logs.read(root, {t.metric for t in version.targets.values()})
  evals = algoperf_logs.target_evals(logs, {w: t.metric for w, t in version.targets.items()})
  return algoperf_scoring.leaderboard(logs.trials, evals, version, **kw)


# --------------------------------------------------------------------------- step 1

def test_target_reached_at_equality_and_not_after_the_budget(tmp_path):
  write_log(tmp_path, "A", 0, "a", 1, [(10, 20, 0.5), (20, 40, 0.9)])   # == target counts
  write_log(tmp_path, "A", 0, "b", 1, [(10, 20, 0.6), (20, 50, 0.5)])   # <= for a loss
  write_log(tmp_path, "B", 0, "a", 1, [(10, 50, 0.5), (20, 150, 0.95)])  # after 100 s
  write_log(tmp_path, "B", 0, "b", 1, [(10, 20, 0.6), (20, 50, 0.49)])
  board = score(tmp_path)
  assert board.median.loc["A", "a"] == 40 and board.median.loc["A", "b"] == 50
  assert math.isinf(board.median.loc["B", "a"])
  assert board.why.loc["B", "a"] == algoperf_scoring.AFTER_BUDGET
  hits = board.trials.set_index(["submission", "workload"])
  assert bool(hits.loc[("B", "a"), "reached_after_budget"])
  assert np.isnan(hits.loc[("B", "a"), "time_to_target"])
  # Self-tuning gets 3x the budget: the same log now counts.
  assert score(tmp_path, ruleset="self_tuning").median.loc["B", "a"] == 150


# --------------------------------------------------------------------------- step 2

def test_fewest_evaluations_wins_over_the_fastest_and_ties_go_to_the_first_trial(tmp_path):
  miss = MISS["a"]
  write_log(tmp_path, "A", 0, "a", 1, [(1, 10, miss), (2, 20, miss), (3, 30, 0.95)])  # fastest
  write_log(tmp_path, "A", 0, "a", 2, [(1, 25, miss), (2, 45, 0.95)])   # 2 evals, first
  write_log(tmp_path, "A", 0, "a", 10, [(1, 5, miss), (2, 40, 0.92)])   # 2 evals, later trial
  reach(tmp_path, "A", "b", 10)
  board = score(tmp_path)
  study = board.studies.set_index(["submission", "workload"]).loc[("A", "a")]
  # trial_10 sorts before trial_2 as text: the tie-break is by trial number.
  assert study["trial_index"] == 2 and study["value"] == 45
  assert board.median.loc["A", "a"] == 45


def test_a_study_counts_even_if_its_best_trial_diverged_later(tmp_path):
  write_log(tmp_path, "A", 0, "a", 1, [(1, 10, 0.95), (2, 20, float("nan"))])
  reach(tmp_path, "A", "b", 10)
  assert score(tmp_path).median.loc["A", "a"] == 10


# --------------------------------------------------------------------------- step 3

def test_median_over_an_even_number_of_studies(tmp_path):
  for study, time in enumerate([10, 20, 30, math.inf]):
    reach(tmp_path, "A", "a", time, study=study)
  for study, time in enumerate([10, 20, math.inf, math.inf]):
    reach(tmp_path, "B", "a", time, study=study)
  for study, time in enumerate([10, math.inf]):
    reach(tmp_path, "C", "a", time, study=study)
  board = score(tmp_path)
  assert board.median.loc["A", "a"] == 25   # the mean of the middle two
  assert math.isinf(board.median.loc["B", "a"]) and math.isinf(board.median.loc["C", "a"])
  assert board.why.loc["B", "a"] == algoperf_scoring.NOT_REACHED


# --------------------------------------------------------------------------- step 4

def test_variant_over_4x_the_fastest_knocks_out_its_base(tmp_path):
  for sub, (a, a_v, b) in {"A": (10, 10, 10), "B": (20, 50, 50)}.items():
    reach(tmp_path, sub, "a", a)
    reach(tmp_path, sub, "a_v", a_v)
    reach(tmp_path, sub, "b", b)
  board = score(tmp_path)
  assert board.median.loc["B", "a_v"] == 50 and math.isinf(board.scored.loc["B", "a_v"])
  assert board.why.loc["B", "a_v"] == algoperf_scoring.OVER_RATIO
  assert math.isinf(board.scored.loc["B", "a"])   # its variant missed
  assert board.why.loc["B", "a"] == f"{algoperf_scoring.VARIANT_MISSED} (a_v)"
  assert math.isinf(board.scored.loc["B", "b"])   # a base workload over 4x, too
  assert board.why.loc["B", "b"] == algoperf_scoring.OVER_RATIO
  assert board.score["A"] == pytest.approx(1.0) and board.score["B"] == 0.0
  assert list(board.rank) == [1, 2]


def test_base_missed_knocks_out_the_variant_before_the_4x_threshold(tmp_path):
  reach(tmp_path, "A", "a", math.inf)
  reach(tmp_path, "A", "a_v", 10)     # fastest variant time, but its base missed
  reach(tmp_path, "B", "a", 20)
  reach(tmp_path, "B", "a_v", 50)     # > 4 x 10, yet A's 10 no longer counts
  for sub in "AB":
    reach(tmp_path, sub, "b", 10)
  board = score(tmp_path)
  assert board.why.loc["A", "a_v"] == algoperf_scoring.BASE_MISSED
  assert board.scored.loc["B", "a_v"] == 50 and board.scored.loc["B", "a"] == 20


def test_variant_never_run_means_the_base_is_missed(tmp_path):
  for sub in "AB":
    reach(tmp_path, sub, "a", 10)
    reach(tmp_path, sub, "b", 10)
  reach(tmp_path, "B", "a_v", 10)
  # A's variant folder exists, but no trial left a log: reported, and a miss.
  (tmp_path / "A" / "study_0" / "a_v_jax" / "trial_1").mkdir(parents=True)
  board = score(tmp_path)
  assert np.isnan(board.median.loc["A", "a_v"])
  assert board.why.loc["A", "a_v"] == algoperf_scoring.NOT_RUN
  assert math.isinf(board.scored.loc["A", "a"])
  assert board.why.loc["A", "a"] == f"{algoperf_scoring.VARIANT_MISSED} (a_v)"
  assert board.scored.loc["B", "a"] == 10
  problems = algoperf_logs.read(tmp_path).problems
  assert problems == [f"A/study_0/a_v_jax/trial_1: {algoperf_logs.NO_LOG}"]


# --------------------------------------------------------------------------- step 5

def test_profile_and_score_on_the_official_tau_grid(tmp_path):
  no_held_out = dataclasses.replace(TOY, held_out={})
  for sub, (a, b) in {"A": (10, 40), "B": (25, 10)}.items():
    reach(tmp_path, sub, "a", a)
    reach(tmp_path, sub, "b", b)
  board = score(tmp_path, no_held_out)
  taus = board.profile.columns.to_numpy(dtype=float)
  assert len(taus) == 100 and taus[0] == 1 and taus[-1] == 4
  np.testing.assert_allclose(board.ratios.loc["A"], [1.0, 4.0])
  np.testing.assert_allclose(board.ratios.loc["B"], [2.5, 1.0])
  # A: rho = 1/2 up to the last grid point (ratio 4 is within tau = 4 only there).
  step = 3 / 99
  assert board.score["A"] == pytest.approx((0.5 * 3 + 0.25 * step) / 3)
  rho_b = np.where(taus >= 2.5, 1.0, 0.5)
  area = sum((rho_b[i] + rho_b[i + 1]) / 2 * (taus[i + 1] - taus[i]) for i in range(99))
  assert board.score["B"] == pytest.approx(area / 3)


def test_by_steps_scores_global_steps_with_the_budget_still_in_time(tmp_path):
  reach(tmp_path, "A", "a", 10, step=400)
  reach(tmp_path, "B", "a", 20, step=100)
  reach(tmp_path, "C", "a", 120, step=50)   # fewest steps, but after the 100 s budget
  for sub in "ABC":
    reach(tmp_path, sub, "b", 10)
  board = score(tmp_path, dataclasses.replace(TOY, held_out={}), by="step")
  assert board.median.loc["B", "a"] == 100 and board.median.loc["A", "a"] == 400
  assert math.isinf(board.median.loc["C", "a"])
  assert board.scored.loc["A", "a"] == 400   # exactly 4x: still counted
  assert board.rank["B"] == 1


def test_speedups_price_a_miss_at_the_budget_plus_one_second(tmp_path):
  reach(tmp_path, "base", "a", 10)
  reach(tmp_path, "base", "b", math.inf)
  reach(tmp_path, "new", "a", 5)
  reach(tmp_path, "new", "b", 50)
  board = score(tmp_path)
  sp = algoperf_scoring.speedups(board.median, "base", TOY)
  assert sp.loc["new", "a"] == 0.5 and sp.loc["new", "b"] == pytest.approx(50 / 101)
  assert sp.loc["new", "speedup"] == pytest.approx(math.sqrt(0.5 * 50 / 101))
  assert sp.loc["base", "speedup"] == 1.0


# ------------------------------------------------------------------------ the layout

def test_stray_folders_and_bad_logs_are_reported_not_invented(tmp_path):
  reach(tmp_path, "sub", "a", 10, trial=1)
  reach(tmp_path, "sub", "a", 20, trial=4)
  stray = tmp_path / "sub" / "study_0" / "trial_1"      # as in the published v0.5 logs
  stray.mkdir(parents=True)
  (stray / "eval_measurements.csv").write_text("global_step,score\n1,2.0\n")
  bare = tmp_path / "sub" / "study_0" / "mnist" / "trial_1"   # no framework suffix
  bare.mkdir(parents=True)
  (bare / "eval_measurements.csv").write_text("global_step,score\n1,2.0\n")
  wl = tmp_path / "sub" / "study_0" / "a_jax"
  (wl / "trial_2").mkdir()                                   # no log
  (wl / "trial_3").mkdir()
  ragged = "global_step,score,accumulated_submission_time,validation/accuracy,train/loss\n"
  (wl / "trial_3" / "eval_measurements.csv").write_text(ragged + "1,2,2,0.5,1,9,9\n")
  (wl / "trial_5").mkdir()
  (wl / "trial_5" / "eval_measurements.csv").write_text("")     # empty
  (wl / "trial_6").mkdir()
  (wl / "trial_6" / "eval_measurements.csv").write_text(ragged)  # header only: no evals
  (tmp_path / "sub" / "study_0" / "notes.txt").write_text("ignored")
  logs = algoperf_logs.read(tmp_path)
  assert set(logs.trials["workload"]) == {"a"}
  assert list(logs.trials["trial_index"]) == [1, 4, 6]
  why = dict(p.split(": ", 1) for p in logs.problems)
  assert why["sub/study_0/trial_1/eval_measurements.csv"] == algoperf_logs.OUTSIDE_LAYOUT
  assert why["sub/study_0/mnist/trial_1/eval_measurements.csv"] == algoperf_logs.OUTSIDE_LAYOUT
  assert why["sub/study_0/a_jax/trial_2"] == algoperf_logs.NO_LOG
  assert why["sub/study_0/a_jax/trial_3/eval_measurements.csv"].startswith(
      algoperf_logs.UNREADABLE)
  assert why["sub/study_0/a_jax/trial_5/eval_measurements.csv"].startswith(
      algoperf_logs.UNREADABLE)
  assert len(logs.problems) == 5
  # The good logs sharing the bad one's header are still read (file-by-file fallback).
  assert logs.evals.groupby("log_id").size().to_dict() == {0: 2, 1: 2}
  # The general importer reports the same and makes no phantom workloads.
  res = algoperf_results.load(tmp_path)
  assert set(res.trials["workload"]) == {"a"} and len(res.problems) == 5
  assert res.trials["hp/learning_rate"].notna().sum() == 2


def test_only_scored_workloads_count_and_others_are_listed(tmp_path):
  for sub in "AB":
    reach(tmp_path, sub, "a", 10)
    reach(tmp_path, sub, "b", 10)
    reach(tmp_path, sub, "a_v", 10)
  write_log(tmp_path, "A", 0, "a_other", 1, [(1, 1, 0.99)])  # a variant not scored
  board = score(tmp_path)
  assert list(board.median.columns) == ["a", "b", "a_v"]
  assert list(board.ratios.columns) == ["a", "b"]
  assert board.score.to_dict() == {"A": 1.0, "B": 1.0}


def test_submission_and_study_levels_are_optional(tmp_path):
  sub = tmp_path / "mysub"
  reach(tmp_path, "mysub", "a", 10)
  trials, problems = algoperf_logs.find(sub)
  assert not problems and list(trials["submission"]) == ["mysub"]
  assert list(trials["study"]) == ["study_0"]
  trials, _ = algoperf_logs.find(sub / "study_0")
  assert list(trials["study"]) == ["study_0"] and list(trials["submission"]) == ["study_0"]


# ------------------------------------------------------------------------ versions

def test_version_tables():
  v5, v6 = algoperf_versions.get("0.5"), algoperf_versions.get("v0.6")
  assert len(v5.base_workloads) == 8 and len(v5.held_out) == 6 and not v6.held_out
  assert set(v5.held_out.values()) == set(v5.base_workloads) - {"imagenet_vit",
                                                                "librispeech_deepspeech"}
  assert v5.max_runtime("wmt", "self_tuning") == 3 * 48151
  assert v6.max_runtime("fastmri", "self_tuning") == 1.5 * 4430
  assert v5.targets["imagenet_resnet"].higher_is_better
  assert not v5.targets["librispeech_conformer_layernorm"].higher_is_better
  assert v5.targets["wmt_glu_tanh"].value == 29.5779
  assert (v5.num_studies, v6.num_studies) == (5, 3)
  assert len(v5.taus()) == 100
  with pytest.raises(KeyError, match="known: 0.5, 0.6"):
    algoperf_versions.get("0.4")


# ------------------------------------------------------------------------------ CLI

def _run(**kw):
  args = {"logs": None, "results_dir": None, "version": "0.5", "ruleset": "external_tuning",
          "by": "time", "out": None, "baseline": None} | kw
  return algoperf.run(**args)


def _real_workload_logs(root):
  """Two submissions on v0.5's workloads (times in seconds; misses elsewhere)."""
  v = algoperf_versions.get("0.5")
  for sub, t in {"baseline": 1000.0, "fast": 600.0}.items():
    for w in v.scored_workloads:
      tgt = v.targets[w]
      good = tgt.value * (1.01 if tgt.higher_is_better else 0.99)
      d = root / sub / "study_0" / f"{w}_jax" / "trial_1"
      d.mkdir(parents=True)
      (d / "eval_measurements.csv").write_text(
          f"global_step,score,{tgt.metric}\n10,{t / 2},0\n20,{t},{good}\n")
  return root


def test_cli_prints_scores_times_speedups_and_writes_the_figure(tmp_path):
  logs = _real_workload_logs(tmp_path / "logs")
  out = tmp_path / "out"
  text = "\n".join(_run(logs=str(logs), out=str(out)))
  assert "1     fast        1.0000" in text
  assert "Speedup against baseline" in text and "0.6000" in text and "40.0% faster" in text
  assert "criteo1tb_embed_init" in text and "(held-out)" in text
  for name in ("scores.csv", "time_to_target.csv", "studies.csv", "performance_profile.csv",
               "speedups.csv", "problems.txt"):
    assert (out / name).is_file()
  assert (out / algoperf.FIGURE).stat().st_size > 1000
  scores = pd.read_csv(out / "scores.csv", index_col=0)
  assert scores.loc["fast", "rank"] == 1
  # --ruleset picks DIR/<ruleset> in the published logs/ layout.
  (tmp_path / "published").mkdir()
  os.rename(logs, tmp_path / "published" / "external_tuning")
  assert "under " + str(tmp_path / "published" / "external_tuning") in _run(
      logs=str(tmp_path / "published"))[0]
  with pytest.raises(algoperf.ScoreError, match="no self_tuning/ folder"):
    _run(logs=str(tmp_path / "published"), ruleset="self_tuning")


@pytest.mark.parametrize("kw, message", [
    ({"logs": "MISSING"}, "not a directory"),
    ({"version": "0.7"}, "unknown AlgoPerf version"),
    ({"ruleset": "open"}, "--ruleset=open: unknown"),
    ({"by": "hours"}, "--by=hours: unknown"),
    ({"baseline": "nobody"}, "--baseline=nobody: not a submission"),
    ({"logs": "EMPTY"}, "no AlgoPerf trial logs"),
    ({"logs": None}, "give one of --logs"),
])
def test_cli_bad_input_is_one_error_and_writes_nothing(tmp_path, kw, message):
  logs = _real_workload_logs(tmp_path / "logs")
  (tmp_path / "empty").mkdir()
  subs = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty")}
  kw = {k: subs.get(v, v) for k, v in kw.items()}
  with pytest.raises(algoperf.ScoreError, match=message):
    _run(**({"logs": str(logs), "out": str(tmp_path / "out")} | kw))
  assert not (tmp_path / "out").exists()


def test_cli_as_a_program(tmp_path):
  logs = _real_workload_logs(tmp_path / "logs")
  ok = subprocess.run([sys.executable, "-m", "analysis.algoperf", f"--logs={logs}",
                       "--by=steps"], capture_output=True, text=True, cwd=REPO)
  assert ok.returncode == 0, ok.stderr
  assert "by global steps" in ok.stdout
  assert "1     baseline    1.0000" in ok.stdout and "1     fast" in ok.stdout  # same steps
  bad = subprocess.run([sys.executable, "-m", "analysis.algoperf", f"--logs={logs}",
                        "--version=9", f"--out={tmp_path / 'out'}"],
                       capture_output=True, text=True, cwd=REPO)
  assert bad.returncode == 1 and "Traceback" not in bad.stderr
  assert bad.stderr.strip().splitlines() == [
      "error: --version=9: unknown AlgoPerf version (known: 0.5, 0.6)"]
  assert not (tmp_path / "out").exists()
  flag = subprocess.run([sys.executable, "-m", "analysis.algoperf", "--no_such_flag=1"],
                        capture_output=True, text=True, cwd=REPO)
  assert flag.returncode == 1 and len(flag.stderr.strip().splitlines()) == 1


# -------------------------------------------------------------------- harness stores

def _store(root):
  """A bench results store: adam and sgd (sgd at two batch sizes), 2 studies x 2 trials."""
  goal = {"metric": "error", "threshold": 0.1}
  runs = {("adam", 64): [[0.3, 0.1], [0.05, 0.01]], ("sgd", 64): [[0.3, 0.2], [0.3, 0.3]],
          ("sgd", 128): [[0.12, 0.09], [0.5, 0.2]]}
  for (opt, batch), studies in runs.items():
    for s, errors in enumerate(studies):
      sid = f"{opt}_b{batch}_s{s}"
      (root / sid).mkdir(parents=True)
      (root / sid / "study.json").write_text(json.dumps({
          "schema_version": 1, "study_id": sid, "workload": "toy",
          "scientific": {"batch_size": batch}, "protocol": {"name": "algoperf_external"}}))
      for i, final in enumerate(errors):
        curve = [{"step": 100 * (k + 1), "wall_time": 2.0 * (k + 1) + i,
                  "val/error": e} for k, e in enumerate([0.5, final])]
        rec = {"schema_version": 1, "trial_id": f"{sid}/t{i}", "study_id": sid,
               "trial_index": i, "status": "ok", "optimizer": opt, "curve": curve,
               "protocol_name": "algoperf_external", "scientific": {"batch_size": batch},
               "workload": {"name": "toy", "goal": goal}}
        (root / sid / f"t{i}").mkdir()
        (root / sid / f"t{i}" / "record.json").write_text(json.dumps(rec))
  return root


def test_harness_store_is_scored_the_algoperf_way(tmp_path):
  root = _store(tmp_path / "store")
  res = load(root)
  trials, evals, version, problems = algoperf_store.tables(res)
  assert not problems and version.base_workloads == ("toy",) and not version.held_out
  assert set(trials["submission"]) == {"adam | algoperf_external | batch_size=64",
                                       "sgd | algoperf_external | batch_size=64",
                                       "sgd | algoperf_external | batch_size=128"}
  board = algoperf_scoring.leaderboard(trials, evals, version)
  med = board.median["toy"]
  # adam: in study 0 only trial 1 reaches 0.1 (at equality: AlgoPerf's <=), at 5.0 s; in
  # study 1 both reach at their 2nd eval and trial 0 counts: 4.0 s. sgd 128: study 0 at
  # 5.0 s, study 1 misses: the median of (5, inf) is inf. sgd 64 never reaches 0.1.
  assert med["adam | algoperf_external | batch_size=64"] == 4.5
  assert math.isinf(med["sgd | algoperf_external | batch_size=128"])
  assert board.score["adam | algoperf_external | batch_size=64"] == 1.0
  text = "\n".join(_run(results_dir=str(root), by="steps"))
  assert "harness store" in text and "adam | algoperf_external | batch_size=64" in text


# ----------------------------------------------------------- the v0.5 development subset

@pytest.fixture(scope="module")
def dev_subset(tmp_path_factory):
  tar = os.path.join(reference.ALGOPERF_V05_DEV, "logs.tar.xz")
  if not os.path.isfile(tar):
    pytest.skip(f"AlgoPerf v0.5 development subset absent: {tar} "
                "(set OPTBENCH_ALGOPERF_V05_DEV to its folder)")
  root = tmp_path_factory.mktemp("algoperf_v05_dev")
  with tarfile.open(tar) as f:
    f.extractall(root, filter="data")
  with open(os.path.join(reference.ALGOPERF_V05_DEV, "expected.json"), encoding="utf-8") as f:
    expected = json.load(f)
  return root, expected


def _same(got: float, want: float | None) -> bool:
  return not math.isfinite(got) if want is None else got == pytest.approx(want, abs=1e-3)


def test_dev_subset_reproduces_the_official_scores_and_times(dev_subset):
  root, expected = dev_subset
  res = algoperf.score_logs(str(root), "0.5", expected["ruleset"])
  board = res.board
  assert res.source == str(root / "external_tuning")
  assert sorted(board.score.index) == expected["submissions"]
  for sub, want in expected["scores"].items():
    assert board.score[sub] == pytest.approx(want, abs=1e-4), sub
  for sub, times in expected["median_time_to_target_sec"].items():
    for w, want in times.items():
      assert _same(board.median.at[sub, w], want), (sub, w, board.median.at[sub, w], want)
  for sub, times in expected["scored_time_sec_after_held_out_rule"].items():
    for w, want in times.items():
      assert _same(board.scored.at[sub, w], want), (sub, w, board.scored.at[sub, w], want)
  assert list(board.version.base_workloads) == expected["base_workloads"]
  # The stray study_N/trial_N folders of schedule_free_adamw are reported, not workloads.
  strays = [p for p in res.problems if algoperf_logs.OUTSIDE_LAYOUT in p]
  assert len(strays) == 18 and all(p.startswith("schedule_free_adamw/study_") for p in strays)
  assert not any(w.startswith("study_") for ws in res.unscored.values() for w in ws)
  assert res.unscored == {"baseline": ["criteo1tb_layernorm", "fastmri_model_size",
                                       "imagenet_resnet_silu", "ogbg_gelu"]}
  text = "\n".join(algoperf.summary(res, "baseline"))
  assert "1     schedule_free_adamw  0.7393" in text
