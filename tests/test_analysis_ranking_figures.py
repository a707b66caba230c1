"""The two ranking analyses in analysis.report and their paper-figure scripts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import types

import pytest

from analysis import figure_data, reference, report
from conftest import ROOT
from paper_figures import common

STEPS = list(range(100, 1001, 100))
WORKLOAD = {"name": "toy", "goal": {"metric": "error", "threshold": 0.3}}
# adam: fast early, flat at 0.25, 3 s per step, run in packs of 4; sgd: slow, 1 s per step.
CURVES = {"adam": ([0.5, 0.35, 0.25] + [0.25] * 7, 3.0, 4),
          "sgd": ([0.55 - 0.05 * k for k in range(10)], 1.0, 1)}


def _write_store(root, pack=True):
  for opt, (errors, per_step, pack_size) in CURVES.items():
    sid = f"p-{opt}"
    sdir = root / sid
    sdir.mkdir(parents=True)
    (sdir / "study.json").write_text(json.dumps({
        "schema_version": 1, "study_id": sid, "workload": "toy", "protocol": {"name": "p"}}))
    for i in range(3):
      curve = [{"step": s, "wall_time": per_step * s, "val/error": e + 0.01 * i,
                "test/error": e + 0.02 + 0.01 * i} for s, e in zip(STEPS, errors)]
      rec = {"schema_version": 1, "trial_id": f"{sid}/t{i}", "study_id": sid,
             "protocol_name": "p", "trial_index": i, "workload": WORKLOAD, "optimizer": opt,
             "hparams": {"learning_rate": 0.1 * (i + 1)}, "status": "ok", "curve": curve,
             "best": min(curve, key=lambda r: r["val/error"]), "train_steps": 1000,
             "steps_per_sec": 1 / per_step}
      if pack:
        rec["pack_size"] = pack_size
      (sdir / f"t{i}").mkdir()
      (sdir / f"t{i}" / "record.json").write_text(json.dumps(rec))
  return root


def _section(text, title):
  return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip()


def test_report_sections(tmp_path):
  store = _write_store(tmp_path / "runs")
  text = open(report.write_report(store, tmp_path / "out", n_boot=100)).read()
  budget = _section(text, "Rankings across training budgets")
  assert "**The order changes beyond noise in 1 of 1 group(s)** (point estimates change in 1;" \
      in budget
  # sgd ties adam's best (0.25) at 70% and passes it at 80%, in every paired replicate
  assert "| toy / p | 80% | 60% | sgd | adam | 2 vs 1 | 1 vs 2 | 0 | 1 | 1 | yes |" in budget
  assert "figures/rank_vs_budget.png" in budget
  clock = _section(text, "Rankings by steps vs by wall-clock")
  assert "**Mixed pack sizes** in toy" in clock
  assert "| toy | 2 | 2 | -1 |" in clock  # adam first by steps, last by seconds
  assert (tmp_path / "out" / "figures" / "steps_vs_clock.png").stat().st_size > 5000


def test_report_sections_not_applicable(tmp_path):
  store = _write_store(tmp_path / "runs")
  for rec in store.glob("*/t*/record.json"):  # no clock at all; then one optimizer only
    r = json.loads(rec.read_text())
    r["curve"] = [{k: v for k, v in row.items() if k != "wall_time"} for row in r["curve"]]
    del r["steps_per_sec"]
    rec.write_text(json.dumps(r))
  text = open(report.write_report(store, tmp_path / "out", n_boot=20)).read()
  assert _section(text, "Rankings by steps vs by wall-clock") == (
      "not applicable: the trial records have no steps_per_sec")
  ctx = figure_data.context(str(store), str(tmp_path / "out"))
  with pytest.raises(figure_data.NotApplicable, match="the curves record no wall_time"):
    figure_data.clock_ranking(ctx, clock="wall_time")
  for rec in store.glob("p-sgd/t*/record.json"):
    rec.unlink()
  text = open(report.write_report(store, tmp_path / "out2", n_boot=20)).read()
  assert _section(text, "Rankings across training budgets").startswith(
      "not applicable: no workload/protocol was run with more than one optimizer")


def _script(name, *args):
  return subprocess.run([sys.executable, "-m", f"paper_figures.{name}", *args], cwd=ROOT,
                        env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
                        timeout=300)


def test_figure_scripts_on_a_store(tmp_path):
  store = _write_store(tmp_path / "runs")
  p = _script("ranking_vs_budget", f"--results_dir={store}", f"--out={tmp_path / 'b.png'}",
              f"--csv={tmp_path / 'b.csv'}", "--n_boot=50", "--fractions=5")
  assert p.returncode == 0, p.stderr[-2000:]
  assert p.stdout.strip().splitlines()[-1] == str(tmp_path / "b.png")
  assert "80%" in p.stdout and "sgd > adam" in p.stdout
  assert (tmp_path / "b.csv").read_text().startswith("workload,protocol_name,fraction")
  p = _script("steps_vs_clock", f"--results_dir={store}", f"--out={tmp_path / 'c.png'}")
  assert p.returncode == 0, p.stderr[-2000:]
  assert (tmp_path / "c.png").stat().st_size > 5000
  # adam: goal at step 300 at 3 s/step (900 s); sgd: step 700 at 1 s/step
  assert "adam | p 1->2, sgd | p 2->1" in p.stdout


def _flags(**given):
  """What load_runs reads of absl's FLAGS."""
  values = {"results_dir": None, "deepobs_csv": None, "algoperf_logs": None, "exclude": [],
            "out": "/tmp/f.png", "n_boot": 10, "seed": 0, "deepobs_grid_seed": 42,
            "algoperf_version": "0.5", "ruleset": "external_tuning"}
  return types.SimpleNamespace(**{**values, **given})


@pytest.mark.parametrize("given, message", [
    ({}, "give exactly one of --results_dir, --deepobs_csv, --algoperf_logs"),
    ({"results_dir": ".", "deepobs_csv": "x"}, "give exactly one of"),
    ({"results_dir": "/nope"}, "--results_dir /nope: not a directory"),
    ({"deepobs_csv": "/nope.csv"}, "--deepobs_csv /nope.csv: file not found"),
    ({"algoperf_logs": "/nope"}, "--algoperf_logs=/nope: not a directory"),
    ({"results_dir": ".", "exclude": ["x"]}, "--exclude applies to --algoperf_logs only"),
])
def test_bad_sources_are_one_line_errors(given, message):
  with pytest.raises(common.ScriptError, match="^" + re.escape(message)):
    common.load_runs(_flags(**given))


def test_figure_script_bad_input_is_one_line(tmp_path):
  for args, line in ((["--results_dir=/nope"], "error: --results_dir /nope: not a directory"),
                     (["--results_dir=.", "--unit=epochs"],
                      "error: flag --unit=epochs: value should be one of")):
    p = _script("ranking_vs_budget", f"--out={tmp_path / 'f.png'}", *args)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith(line), p.stderr


def test_figure_scripts_on_deepobs(tmp_path):
  if not os.path.isfile(reference.DEEPOBS_CSV):
    pytest.skip(f"DeepOBS baselines file absent: {reference.DEEPOBS_CSV}")
  p = _script("ranking_vs_budget", f"--deepobs_csv={reference.DEEPOBS_CSV}",
              f"--out={tmp_path / 'd.png'}", "--n_boot=20", "--fractions=4")
  assert p.returncode == 0, p.stderr[-2000:]
  assert "tolstoi_char_rnn" in p.stdout and (tmp_path / "d.png").stat().st_size > 5000
  p = _script("steps_vs_clock", f"--deepobs_csv={reference.DEEPOBS_CSV}",
              f"--out={tmp_path / 'e.png'}")
  assert p.returncode == 1 and p.stderr.strip().endswith(
      "DeepOBS runs record no wall-clock time and no targets")


def test_steps_vs_clock_script_on_algoperf_logs(tmp_path):
  # (the budget ranking of these logs is tested in-process: test_analysis_clock_rankings)
  tar = os.path.join(reference.ALGOPERF_V05_DEV, "logs.tar.xz")
  if not os.path.isfile(tar):
    pytest.skip(f"AlgoPerf v0.5 dev logs absent: {tar}")
  with tarfile.open(tar) as f:
    f.extractall(tmp_path / "logs", filter="data")
  p = _script("steps_vs_clock", f"--algoperf_logs={tmp_path / 'logs'}",
              f"--out={tmp_path / 'c.png'}", "--exclude=lawa_ema")
  assert p.returncode == 0, p.stderr[-2000:]
  assert "baseline 1->2, schedule_free_adamw 2->1" in p.stdout
