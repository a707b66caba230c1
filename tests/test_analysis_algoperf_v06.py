"""AlgoPerf v0.6: the tie-break rules on small logs written here, and the published v0.6
logs of the live leaderboard (skipped when ../shared is absent), scored to the published
external-tuning scores and to the official scoring code's own times."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from analysis import algoperf, reference
from analysis.algoperf import logs as algoperf_logs
from analysis.algoperf import scoring as algoperf_scoring
from analysis.algoperf import versions as algoperf_versions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V6 = algoperf_versions.get("0.6")
INF = math.inf

# The live leaderboard (mlcommons/submissions_algorithms README, leaderboard v0.6).
PUBLISHED = {"shampoo": 0.6244, "baseline": 0.4590}
# mlcommons/submissions_algorithms scoring/ at 12c8e4ea, run on these logs with its
# workload_targets.json less finewebedu_lm (see the README): score_submissions' scores.csv
# and time_to_targets.csv.
OFFICIAL_SCORES = {"external_tuning": {"baseline": 0.45896464646464646,
                                       "shampoo": 0.6243686868686883},
                   "self_tuning": {"schedule_free_adamw_v2": 0.7499999999999997}}
OFFICIAL_TIMES = {
    "baseline": {"criteo1tb": 7491.487124443054, "fastmri": 873.2600636482239,
                 "imagenet_resnet": INF, "imagenet_vit": INF, "librispeech_conformer": INF,
                 "librispeech_deepspeech": INF, "ogbg": 4575.802174806595,
                 "wmt": 35319.428525447845},
    "shampoo": {"criteo1tb": 7692.307582139969, "fastmri": 640.7693979740143,
                "imagenet_resnet": INF, "imagenet_vit": 41094.59843540192,
                "librispeech_conformer": INF, "librispeech_deepspeech": INF,
                "ogbg": 2868.3276751041412, "wmt": 33604.82180261612},
    "schedule_free_adamw_v2": {"criteo1tb": 7328.192516088486, "fastmri": 1370.381531715393,
                               "imagenet_resnet": INF, "imagenet_vit": 63328.61258482933,
                               "librispeech_conformer": 84856.24470329285,
                               "librispeech_deepspeech": 57630.12813162804, "ogbg": INF,
                               "wmt": 17656.7119846344}}


# ------------------------------------------------------------------ tie-breaks, small logs

def _log(root, trial, rows, *, workload="fastmri", study=0, sub="A"):
  """rows: (step, time, ssim) per evaluation of a fastmri trial (target 0.723653)."""
  d = root / sub / f"study_{study}" / f"{workload}_jax" / f"trial_{trial}"
  d.mkdir(parents=True)
  lines = ["global_step,score,validation/ssim"] + [f"{s},{t},{v}" for s, t, v in rows]
  (d / "eval_measurements.csv").write_text("\n".join(lines) + "\n")


def _tied_study(root):
  """Trials 1, 3 and 7 reach the target at their 2nd evaluation, at 50, 30 and 40 s;
  trial 2 is faster (20 s) but needs 3 evaluations."""
  for trial, t in {1: 50.0, 3: 30.0, 7: 40.0}.items():
    _log(root, trial, [(10, t / 2, 0.5), (20, t, 0.73)])
  _log(root, 2, [(10, 5, 0.5), (20, 10, 0.6), (30, 20, 0.73)])


def _score(root, ties=None):
  logs = algoperf_logs.read(root, {t.metric for t in V6.targets.values()})
  evals = algoperf_logs.target_evals(logs, {w: t.metric for w, t in V6.targets.items()})
  return algoperf_scoring.leaderboard(logs.trials, evals, V6, ties=ties)


def test_each_tie_rule_picks_its_trial_among_those_tied_on_evaluation_count(tmp_path):
  _tied_study(tmp_path)
  picks = {}
  for ties in algoperf_scoring.TIES:
    study = _score(tmp_path, ties).studies.iloc[0]
    assert study["evals_to_target"] == 2 and study["tied"] == 3
    picks[ties] = (study["trial_index"], study["value"])
  assert picks["lowest"] == (1, 50.0)
  assert picks["fastest"] == (3, 30.0)   # not trial 2 (20 s, but 3 evaluations)
  # listing: the first tied trial in the folder's os.listdir order, as AlgoPerf's code.
  folder = tmp_path / "A" / "study_0" / "fastmri_jax"
  first = next(n for n in os.listdir(folder) if n in ("trial_1", "trial_3", "trial_7"))
  assert picks["listing"][0] == int(first.removeprefix("trial_"))
  listed = algoperf_logs.read(tmp_path).trials.set_index("trial")["listed"]
  assert list(listed.sort_values().index) == os.listdir(folder)
  # The version's default: v0.6 fastest, v0.5 lowest.
  assert _score(tmp_path).ties == "fastest" and V6.ties == "fastest"
  assert algoperf_versions.get("0.5").ties == "lowest"


def test_a_tie_that_moves_a_median_is_noted_with_each_rules_median(tmp_path):
  _tied_study(tmp_path / "logs")
  res = algoperf.score_logs(str(tmp_path / "logs"), "0.6")
  listing = algoperf.by_tie_rule(res.board)["listing"][0].at["A", "fastmri"]
  assert listing in (50.0, 30.0, 40.0)
  notes = [n for n in res.notes if "tied on evaluation count" in n]
  assert notes == ["1 median(s) depend on how trials tied on evaluation count are broken "
                   "(--ties, used: fastest): A / fastmri (lowest 50.00, fastest 30.00, "
                   f"listing {listing:.2f})"]
  # One submission: its score does not depend on the time, so no score line.
  assert not any(n.startswith("scores by tie-break") for n in res.notes)
  text = "\n".join(algoperf.summary(res, None))
  assert "fewest evaluations (ties: the fastest of them)" in text


def test_unknown_tie_rule_is_one_error_line(tmp_path):
  _tied_study(tmp_path / "logs")
  with pytest.raises(algoperf.ScoreError, match=r"^--ties=first: unknown \(known: lowest, "
                     r"fastest, listing\)$"):
    algoperf.run(logs=str(tmp_path / "logs"), results_dir=None, version="0.6",
                 ruleset="external_tuning", by="time", out=str(tmp_path / "out"),
                 baseline=None, ties="first")
  assert not (tmp_path / "out").exists()
  bad = subprocess.run([sys.executable, "-m", "analysis.algoperf",
                        f"--logs={tmp_path / 'logs'}", "--version=0.6", "--ties=first"],
                       capture_output=True, text=True, cwd=REPO)
  assert bad.returncode == 1 and bad.stdout == ""
  assert bad.stderr.strip().splitlines() == [
      "error: --ties=first: unknown (known: lowest, fastest, listing)"]


# --------------------------------------------------------------- the published v0.6 logs

@pytest.fixture(scope="module")
def v06(tmp_path_factory):
  tar = os.path.join(reference.ALGOPERF_V06, "logs.tar.xz")
  if not os.path.isfile(tar):
    pytest.skip(f"published AlgoPerf v0.6 logs absent: {tar} "
                "(set OPTBENCH_ALGOPERF_V06 to its folder)")
  root = tmp_path_factory.mktemp("algoperf_v06")
  with tarfile.open(tar) as f:
    f.extractall(root, filter="data")
  return root / "logs"


def _same_times(board, want):
  for sub, times in want.items():
    for w, t in times.items():
      got = board.median.at[sub, w]
      assert (math.isinf(got) if math.isinf(t) else got == pytest.approx(t, abs=1e-3)), \
          (sub, w, got, t)


def test_v06_external_tuning_reproduces_the_published_scores(v06):
  res = algoperf.score_logs(str(v06), "0.6", "external_tuning")
  board = res.board
  assert res.n_logs == 236 and not res.problems and not res.unscored
  for sub, want in PUBLISHED.items():
    assert round(board.score[sub], 4) == want, (sub, board.score[sub])
    assert board.score[sub] == pytest.approx(OFFICIAL_SCORES["external_tuning"][sub], abs=1e-9)
  _same_times(board, {s: OFFICIAL_TIMES[s] for s in PUBLISHED})
  assert list(board.rank.sort_values().index) == ["shampoo", "baseline"]
  # The one tie that matters: shampoo / fastmri / study_0, trials 2 (841.18 s) and 5
  # (640.77 s) both at their 8th evaluation; the published score counted trial 5.
  st = board.studies.set_index(["submission", "workload", "study"])
  tie = st.loc[("shampoo", "fastmri", "study_0")]
  assert (tie["tied"], tie["evals_to_target"], tie["trial_index"]) == (2, 8, 5)
  assert tie["value"] == pytest.approx(640.7693979740143)
  # No evaluation of any v0.6 log lies past its budget: the cap changes nothing here.
  assert not board.studies["after_budget"].any()
  assert not board.trials["reached_after_budget"].any()


def test_v06_lowest_trial_number_tie_break_gives_the_unpublished_0_4716(v06):
  board = algoperf.score_logs(str(v06), "0.6", "external_tuning", ties="lowest").board
  assert round(board.score["baseline"], 4) == 0.4716
  assert round(board.score["shampoo"], 4) == 0.6244
  assert board.median.at["shampoo", "fastmri"] == pytest.approx(841.1767997741699)
  rules = algoperf.by_tie_rule(board)
  assert {t: round(s["baseline"], 4) for t, (_, s) in rules.items()} == {
      "lowest": 0.4716, "fastest": 0.4590, "listing": round(rules["listing"][1]["baseline"], 4)}


def test_v06_baseline_imagenet_vit_crashed_after_one_evaluation_and_counts_as_a_miss(v06):
  res = algoperf.score_logs(str(v06), "0.6", "external_tuning")
  t = res.board.trials
  vit = t[(t["submission"] == "baseline") & (t["workload"] == "imagenet_vit")]
  assert sorted(vit.groupby("study").size()) == [4, 4, 4]    # trial_5 never logged
  logs = algoperf_logs.read(str(v06 / "external_tuning" / "baseline"))
  ids = logs.trials.loc[logs.trials["workload"] == "imagenet_vit", "log_id"]
  steps = logs.evals[logs.evals["log_id"].isin(ids)].groupby("log_id")["global_step"].max()
  assert len(steps) == 12 and (steps == 1).all()             # one evaluation, at step 1
  assert math.isinf(res.board.median.at["baseline", "imagenet_vit"])
  assert res.board.why.at["baseline", "imagenet_vit"] == algoperf_scoring.NOT_REACHED
  assert any("3 studies of 4,4,4 trials" in n and "baseline / imagenet_vit" in n
             for n in res.notes)


def test_v06_self_tuning_schedule_free_adamw_v2(v06):
  res = algoperf.score_logs(str(v06), "0.6", "self_tuning")
  board = res.board
  assert res.n_logs == 24 and list(board.score.index) == ["schedule_free_adamw_v2"]
  # Alone on the board it is the fastest wherever it reached the target: 6 of 8 workloads.
  assert board.score["schedule_free_adamw_v2"] == pytest.approx(0.75, abs=1e-12)
  assert board.score["schedule_free_adamw_v2"] == pytest.approx(
      OFFICIAL_SCORES["self_tuning"]["schedule_free_adamw_v2"], abs=1e-9)
  _same_times(board, {"schedule_free_adamw_v2": OFFICIAL_TIMES["schedule_free_adamw_v2"]})
  missed = [w for w in V6.base_workloads if np.isinf(board.scored.at["schedule_free_adamw_v2", w])]
  assert missed == ["imagenet_resnet", "ogbg"]
  # The 1.5x budget matters: librispeech_conformer's median (84856 s) is past 1x (58015 s).
  assert V6.max_runtime("librispeech_conformer", "external_tuning") < 84856.24 < \
      V6.max_runtime("librispeech_conformer", "self_tuning")
  assert not board.studies["after_budget"].any() and not res.notes


def test_v06_cli_prints_the_published_leaderboard(v06, tmp_path):
  out = subprocess.run([sys.executable, "-m", "analysis.algoperf", f"--logs={v06}",
                        "--version=0.6", "--ruleset=external_tuning",
                        f"--out={tmp_path / 'out'}"], capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0, out.stderr
  assert "1     shampoo     0.6244" in out.stdout
  assert "2     baseline    0.4590" in out.stdout
  assert ("scores by tie-break: lowest: baseline 0.4716, shampoo 0.6244; fastest: baseline "
          "0.4590, shampoo 0.6244") in out.stdout
  assert (tmp_path / "out" / "scores.csv").is_file()
