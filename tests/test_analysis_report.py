"""The report, its figures and the playbook checks, on a synthetic results directory."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import playbook, plots, report

GOAL = 0.1
NUM_TRAIN = 2000
STEPS = tuple(range(100, 1001, 100))
WORKLOAD = {"name": "toy_mlp", "goal": {"metric": "error", "threshold": GOAL},
            "dtype": "float32", "num_train_examples": NUM_TRAIN}
SHALLUE_SPACE = {"optimizer": {"kind": "fixed", "value": "nesterov"},
                 "learning_rate": {"kind": "log", "low": 1e-3, "high": 1.0},
                 "momentum": {"kind": "log1m", "low": 0.5, "high": 0.99}}
# (lr, momentum) per trial; the optimum effective lr grows with the batch size.
POINTS = [(0.003, 0.9), (0.02, 0.8), (0.05, 0.95), (0.2, 0.6), (0.01, 0.97), (0.4, 0.9)]


def _errors(lr, mom, batch, seed):
  """A decaying validation error curve, fastest near the batch size's optimal elr."""
  elr = lr / (1.0 - mom)
  best_elr = 0.3 * (batch / 64) ** 0.5
  quality = math.exp(-(math.log10(elr) - math.log10(best_elr)) ** 2)
  rate = 0.004 * quality * (batch / 64) ** 0.7
  jitter = 0.004 * np.random.default_rng(seed).standard_normal()
  return [0.03 + jitter + 0.9 * math.exp(-rate * s) for s in STEPS]


def _record(study_id, index, optimizer, protocol, hparams, batch, seed, status="ok",
            errors=None):
  errors = errors if errors is not None else _errors(hparams["learning_rate"],
                                                     hparams.get("momentum", 0.0), batch, seed)
  if status == "diverged":
    errors = errors[:2] + [float("nan")]
  curve = [{"step": s, "wall_time": 0.01 * s, "train/error": 0.8 * e, "train/loss": 2 * e,
            "val/error": e, "val/loss": 2.1 * e, "test/error": e + 0.01}
           for s, e in zip(STEPS, errors)]
  finite = [r for r in curve if math.isfinite(r["val/error"])]
  best = min(finite, key=lambda r: r["val/error"]) if finite else None
  goal = next((r["step"] for r in finite if r["val/error"] < GOAL), None)
  return {
      "schema_version": 1, "trial_id": f"{study_id}/t{index:04d}", "study_id": study_id,
      "experiment": "synthetic", "protocol_name": protocol, "protocol_hash": f"h_{protocol}",
      "trial_index": index, "workload": WORKLOAD, "optimizer": optimizer,
      "hparams": {**hparams, "schedule": "constant"}, "scientific": {"batch_size": batch},
      "batch_size": batch, "train_steps": STEPS[-1], "eval_every": 100, "seed": seed,
      "status": status, "status_reason": "" if status == "ok" else "loss is NaN",
      "diverged_step": 300 if status == "diverged" else None, "curve": curve, "best": best,
      "goal_step": goal, "steps_per_sec": 50.0, "train_time_sec": 20.0, "wall_time_sec": 21.0,
      "code_version": "test", "backend": "cpu", "host": "localhost"}


def _write_study(root, study_id, protocol, space, batch, records, seed=0):
  sdir = root / study_id
  sdir.mkdir()
  (sdir / "study.json").write_text(json.dumps({
      "schema_version": 1, "study_id": study_id, "experiment": "synthetic",
      "workload": "toy_mlp", "protocol_hash": f"h_{protocol}", "study_seed": seed,
      "scientific": {"batch_size": batch},
      "protocol": {"name": protocol, "search_space": space,
                   "objective": {"name": "best_validation", "metric": "error"}}}))
  for rec in records:
    tdir = sdir / rec["trial_id"].split("/")[-1]
    tdir.mkdir()
    (tdir / "record.json").write_text(json.dumps(rec))
  return sdir


def _scaling_studies(root):
  for batch in (64, 128, 256):
    sid = f"shallue-bs{batch}-s0"
    recs = [_record(sid, i, "nesterov", "shallue", {"learning_rate": lr, "momentum": m},
                    batch, seed=100 * batch + i,
                    status="diverged" if (batch, i) == (128, 5) else "ok")
            for i, (lr, m) in enumerate(POINTS)]
    if batch == 256:  # the best point rerun over three more seeds (trial variance)
      best = min(recs, key=lambda r: r["best"]["val/error"])
      recs += [_record(sid, len(POINTS) + j, "nesterov", "shallue", best["hparams"], batch,
                       seed=j + 1) for j in range(3)]
    _write_study(root, sid, "shallue", SHALLUE_SPACE, batch, recs)
  # A second independent study of batch size 256 (study variance).
  sid = "shallue-bs256-s1"
  pts = [(0.005, 0.85), (0.03, 0.9), (0.1, 0.7), (0.3, 0.5), (0.015, 0.95)]
  _write_study(root, sid, "shallue", SHALLUE_SPACE, 256,
               [_record(sid, i, "nesterov", "shallue", {"learning_rate": lr, "momentum": m},
                        256, seed=7000 + i) for i, (lr, m) in enumerate(pts)], seed=1)


def _ranking_studies(root):
  lrs = (0.01, 0.05, 0.2, 0.6)
  for protocol in ("choi_lr", "choi_lr_momentum"):
    for opt in ("sgd", "momentum"):
      sid = f"{protocol}-{opt}-bs128"
      space = {"learning_rate": {"kind": "log", "low": 1e-3, "high": 1.0}}
      recs = []
      for i, lr in enumerate(lrs):
        hp = {"learning_rate": lr}
        if opt == "momentum":
          hp["momentum"] = 0.9 if protocol == "choi_lr" else (0.8, 0.9, 0.95, 0.6)[i]
        recs.append(_record(sid, i, opt, protocol, hp, 128, seed=300 + i))
      _write_study(root, sid, protocol, space, 128, recs)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("results")
  _scaling_studies(root)
  _ranking_studies(root)
  bad = root / "shallue-bs64-s0" / "t0099"
  bad.mkdir()
  (bad / "record.json").write_text("{not json")
  return root


@pytest.fixture(scope="module")
def written(results_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("report")
  path = report.write_report(results_dir, out, n_boot=200, k_curves=2)
  return out, path, open(path, encoding="utf-8").read()


def _section(text, title):
  body = text.split(f"## {title}\n", 1)[1]
  return body.split("\n## ", 1)[0]


def test_report_has_every_section(written):
  out, path, text = written
  assert path == os.path.join(out, "report.md")
  for title, _ in report.SECTIONS:
    assert f"## {title}\n" in text
  assert "error while building" not in text
  for title, _ in report.SECTIONS[2:]:  # all apply to this directory
    assert not _section(text, title).strip().startswith("not applicable"), title
  assert "trials: 42 (ok 41, diverged 1, failed 0)" in text
  assert "t0099/record.json: unreadable JSON" in _section(text, "Load problems")
  assert "inclusion check:" in _section(text, "Rankings and inclusion check")
  variance = _section(text, "Trial vs study variance")
  assert "F-test p=" in variance and "learning_rate=" in variance  # verdict, repeated point


def test_report_figures_exist_and_are_linked(written):
  out, _, text = written
  figs = sorted(os.listdir(out / "figures"))
  assert any(f.startswith("steps_to_result") for f in figs)
  assert any(f.startswith("axis_") for f in figs) and any(f.startswith("rankings") for f in figs)
  for f in figs:
    assert f.endswith(".png") and (out / "figures" / f).stat().st_size > 1000
    assert f"](figures/{f})" in text
  for link in [line for line in text.splitlines() if line.startswith("![")]:
    assert (out / link.split("](")[1].rstrip(")")).is_file()


def test_report_not_applicable_on_a_single_study(tmp_path):
  root = tmp_path / "one"
  root.mkdir()
  sid = "only"
  _write_study(root, sid, "shallue", SHALLUE_SPACE, 64,
               [_record(sid, i, "nesterov", "shallue", {"learning_rate": lr, "momentum": m}, 64,
                        seed=i) for i, (lr, m) in enumerate(POINTS[:4])])
  text = open(report.write_report(root, tmp_path / "out", n_boot=50)).read()
  assert "not applicable: batch size does not vary" in _section(text, "Steps to result")
  assert _section(text, "Rankings and inclusion check").strip().startswith("not applicable")
  assert "not applicable: no hyperparameter point" in _section(text, "Trial vs study variance")
  assert _section(text, "Load problems").strip().startswith("None")


def test_bad_input_is_one_line(tmp_path):
  with pytest.raises(report.ReportError, match="not a directory"):
    report.write_report(tmp_path / "missing", tmp_path / "out")
  blocker = tmp_path / "file"
  blocker.write_text("x")
  root = tmp_path / "one"
  root.mkdir()
  _write_study(root, "only", "shallue", SHALLUE_SPACE, 64,
               [_record("only", 0, "nesterov", "shallue", {"learning_rate": 0.1,
                                                           "momentum": 0.9}, 64, seed=0)])
  with pytest.raises(report.ReportError, match="cannot create"):
    report.write_report(root, blocker / "out")
  run = subprocess.run([sys.executable, "-m", "analysis.report",
                        f"--results_dir={tmp_path / 'missing'}", f"--out={tmp_path / 'o'}"],
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert run.returncode == 1
  assert "Traceback" not in run.stderr
  assert run.stderr.strip().splitlines() == [f"error: --results_dir {tmp_path / 'missing'}: "
                                             "not a directory"]


def test_no_trial_records_is_one_line_and_writes_nothing(tmp_path):
  logs = tmp_path / "logs" / "sub" / "study_0" / "mnist_jax" / "trial_1"
  logs.mkdir(parents=True)
  (logs / "eval_measurements.csv").write_text("global_step,score\n1,2.0\n")
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(report.ReportError, match="no trial records"):
    report.write_report(empty, tmp_path / "out_empty")
  run = subprocess.run([sys.executable, "-m", "analysis.report",
                        f"--results_dir={tmp_path / 'logs'}", f"--out={tmp_path / 'out'}"],
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert run.returncode == 1 and "Traceback" not in run.stderr
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: --results_dir {tmp_path / 'logs'}: "
                                                  "no trial records")
  assert "python -m analysis.algoperf --logs=" in lines[0]
  assert not (tmp_path / "out").exists() and not (tmp_path / "out_empty").exists()


# --------------------------------------------------------------------- playbook checks

def _axis_trials(score_of_lr, n=24, seed=0):
  rng = np.random.default_rng(seed)
  lr = 10 ** rng.uniform(-4, 0, n)
  mom = 1 - 10 ** rng.uniform(-2, np.log10(0.5), n)
  score = [score_of_lr(x) + 0.001 * rng.standard_normal() for x in lr]
  return pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "trial_index": range(n),
                       "status": "ok", "hp/learning_rate": lr, "hp/momentum": mom,
                       "hp/schedule": "constant", "score": score})


SPACE = {"learning_rate": {"kind": "log", "low": 1e-4, "high": 1.0},
         "momentum": {"kind": "log1m", "low": 0.5, "high": 0.99},
         "schedule": {"kind": "fixed", "value": "constant"}}


def test_boundary_check_flags_best_trials_at_the_top_learning_rate():
  t = _axis_trials(lambda lr: -math.log10(lr))  # larger is better all the way up
  t.loc[len(t)] = {"trial_id": "t_top", "trial_index": 99, "status": "ok",
                   "hp/learning_rate": 0.95, "hp/momentum": 0.9, "hp/schedule": "constant",
                   "score": -1.0}
  bc = playbook.boundary_check(t, score_col="score", space=SPACE)
  flagged = bc[bc["flagged"]]
  assert list(zip(flagged["param"], flagged["side"])) == [("learning_rate", "high")]
  msg = flagged["message"].iloc[0]
  assert msg.startswith("learning_rate: ") and "top 10%" in msg and "[0.0001, 1]" in msg
  assert msg.endswith("widen the search space upward")
  assert set(bc["param"]) == {"learning_rate", "momentum"}  # fixed schedule not checked


def test_boundary_check_flags_the_best_trial_alone_at_an_edge_as_the_playbook_says():
  # Like the demo's momentum: the best trial sits in the outer 10% (momentum near
  # 0.989 on a log1m range [0.5, 0.99]), the next best ones do not.
  t = _axis_trials(lambda lr: (math.log10(lr) + 2) ** 2)
  best = t["score"].idxmin()
  t.loc[best, "hp/momentum"] = 0.989
  t.loc[best, "score"] = t["score"].min() - 0.01
  bc = playbook.boundary_check(t, score_col="score", space=SPACE).set_index(["param", "side"])
  row = bc.loc[("momentum", "high")]
  assert row["flagged"] and row["best_near"] and not row["crowded"]
  assert "the best trial alone" in row["message"] and row["message"].endswith("upward")
  assert not bc.loc[("learning_rate", "high"), "flagged"]
  # The top three there too: crowded beyond chance (P(Bin(3, 0.1) >= 3) = 0.001).
  top3 = t["score"].nsmallest(3).index
  t.loc[top3, "hp/momentum"] = 0.989
  crowd = playbook.boundary_check(t, score_col="score", space=SPACE).set_index(["param", "side"])
  assert crowd.loc[("momentum", "high"), "crowded"]
  assert crowd.loc[("momentum", "high"), "p_crowd"] == pytest.approx(0.001)


def test_no_function_shadows_a_module():
  """`analysis.X` is one thing: a module stays a module after any import."""
  import importlib
  import pkgutil
  import subprocess
  import sys
  modules = {m.name for m in pkgutil.iter_modules(analysis.__path__)}
  assert not modules & set(analysis.__all__)
  code = ("import analysis, analysis.steps_to_result, analysis.best_of_k, analysis.results, types\n"
          "assert all(isinstance(getattr(analysis, m), types.ModuleType) for m in "
          "('steps_to_result', 'best_of_k', 'results'))\n"
          "assert callable(analysis.load) and not isinstance(analysis.load, types.ModuleType)")
  subprocess.run([sys.executable, "-c", code], check=True)
  assert importlib.import_module("analysis.steps_to_result").steps_to_result


def test_boundary_check_passes_a_centred_optimum():
  t = _axis_trials(lambda lr: (math.log10(lr) + 2) ** 2)  # best at 1e-2: the log centre
  bc = playbook.boundary_check(t, score_col="score", space=SPACE)
  assert not bc["flagged"].any()
  # Without a search space: bounds observed, log scale inferred for the learning rate.
  inferred = playbook.boundary_check(t, score_col="score")
  assert not inferred["flagged"].any()
  lr = inferred[inferred["param"] == "learning_rate"].iloc[0]
  assert lr["scale"] == "log" and lr["bounds"] == "observed"
  assert inferred[inferred["param"] == "momentum"]["scale"].iloc[0] == "log1m"


def test_axis_plot_draws_diverged_and_flagged(tmp_path):
  t = _axis_trials(lambda lr: -math.log10(lr))
  t.loc[0, "status"] = "diverged"
  bc = playbook.boundary_check(t, score_col="score", space=SPACE)
  path = plots.axis_plot(t, tmp_path / "axis.png", score_col="score", space=SPACE, boundary=bc)
  assert os.path.getsize(path) > 1000


def _iso_trials():
  rows = [(0.1, 0.3, "ok"), (0.1, 0.2, "ok"), (0.1, 0.25, "ok"),
          (0.01, 0.15, "ok"), (0.01, 0.4, "ok"), (0.01, 0.01, "diverged")]
  return pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(rows))],
                       "trial_index": range(len(rows)), "goal_metric": "error",
                       "sci/weight_decay": [r[0] for r in rows],
                       "score": [r[1] for r in rows], "status": [r[2] for r in rows]})


def test_isolation_min_and_bounds():
  iso = playbook.isolation(_iso_trials(), scientific="weight_decay", score_col="score"
                           ).set_index("sci/weight_decay")
  assert iso.loc[0.1, "value"] == pytest.approx(0.2)
  assert iso.loc[0.1, "best_trial_id"] == "t1"
  assert iso.loc[0.01, "value"] == pytest.approx(0.15)  # the diverged 0.01 does not count
  assert iso.loc[0.01, "n_diverged"] == 1 and iso.loc[0.01, "n_trials"] == 3
  # Three trials bound a best-of-3 from above by the third (P(Bin(3, .21) <= 2) = 0.99);
  # the lower side never.
  assert iso.loc[0.1, "hi"] == pytest.approx(0.3) and iso["lo"].isna().all()
  assert (iso["sides"] == "upper").all() and np.isinf(iso.loc[0.01, "hi"])
  typical = playbook.isolation(_iso_trials(), scientific="weight_decay", score_col="score",
                               nuisance_optimised=False).set_index("sci/weight_decay")
  assert typical.loc[0.1, "value"] == pytest.approx(0.25)
  assert typical.loc[0.01, "value"] == pytest.approx(0.4)  # median of 0.15, 0.4, inf


def _variance_trials(studies):
  """studies: study_id -> list of (point, seed, score)."""
  rows = []
  for sid, trials in studies.items():
    for i, (point, seed, score) in enumerate(trials):
      rows.append({"trial_id": f"{sid}/{i}", "study_id": sid, "trial_index": i, "seed": seed,
                   "status": "ok", "workload": "w", "protocol_name": "p",
                   "protocol_hash": "h", "optimizer": "sgd", "sci/batch_size": 64,
                   "hp/learning_rate": point, "score": score})
  return pd.DataFrame(rows)


def test_trial_vs_study_variance():
  t = _variance_trials({
      "s0": [(0.1, 1, 0.10), (0.5, 2, 0.30), (0.1, 3, 0.11), (0.1, 4, 0.09), (0.1, 5, 0.10)],
      "s1": [(0.2, 1, 0.20), (0.7, 2, 0.50)],
      "s2": [(0.3, 1, 0.30), (0.9, 2, 0.60)]})
  vc = playbook.trial_vs_study_variance(t, score_col="score")
  assert vc.available
  assert vc.trial_var == pytest.approx(np.var([0.10, 0.11, 0.09, 0.10], ddof=1))
  # Study bests use each point's first trial: s0's rerun at 0.09 is not its best.
  assert vc.study["mean"].iloc[0] == pytest.approx(0.2)
  assert vc.study_var == pytest.approx(0.01)
  assert vc.ratio == pytest.approx(0.01 / vc.trial_var)
  assert vc.f_pvalue < 0.05 and "study variance exceeds trial variance" in vc.verdict
  one = playbook.trial_vs_study_variance(t[t["study_id"] == "s0"], score_col="score")
  assert not one.available and one.study is None and one.trial is not None
  assert "more than one finished study" in one.reason and one.verdict.startswith("not applicable")
  none = playbook.trial_vs_study_variance(t[t["study_id"] == "s1"], score_col="score")
  assert none.trial is None and "more than one seed" in none.reason
