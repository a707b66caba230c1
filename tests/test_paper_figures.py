"""Both experiment recipes at `smoke` scale, then the report and every paper figure.

One real (tiny) run on the embedded MNIST-1D MLP feeds everything, so this is
the end-to-end check that stored records flow into each analysis.
"""
import os
import re
import pathlib
import subprocess
import sys

import pytest

from analysis import report
from bench import recipe as recipe_lib, runner as runner_lib
from conftest import ROOT
from protocols.experiments import batch_scaling, optimizer_ranking

FIGURES = sorted(p.stem for p in pathlib.Path(ROOT, "paper_figures").glob("*.py")
                 if p.stem not in ("__init__", "common", "deepobs_table"))
# The smoke recipes rerun no point over seeds and no study over study seeds, so
# trial-vs-study variance cannot apply; every other section must.
NOT_APPLICABLE_AT_SMOKE = {"Trial vs study variance"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  root = tmp_path_factory.mktemp("smoke_results")
  for recipe in (batch_scaling, optimizer_ranking):
    for s in recipe_lib.expand(recipe.get_config("mnist1d_mlp,smoke"), recipe):
      runner_lib.StudyRunner(s, root, log=lambda m: None).run()
  return root


def test_smoke_recipes_store_every_trial(results):
  import analysis
  res = analysis.load(str(results))
  assert not res.problems
  # batch_scaling: 2 batch sizes x 4; optimizer_ranking: 2 optimizers x 2 Choi levels x 2
  # + 2 optimizers x 2 DeepOBS grid points.
  assert len(res.trials) == 8 + 8 + 4
  assert set(res.trials["protocol_name"]) == {"shallue", "choi_lr", "choi_all",
                                              "deepobs_baseline"}
  assert res.trials.loc[res.trials.protocol_name == "shallue", "goal_step"].notna().any()


def test_report_from_smoke_run_has_every_applicable_section(results, tmp_path):
  text = open(report.write_report(results, tmp_path / "report", n_boot=50)).read()
  assert "error while building" not in text
  for title, _ in report.SECTIONS:
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip()
    if title in NOT_APPLICABLE_AT_SMOKE:
      assert body.startswith("not applicable"), title
    else:
      assert not body.startswith("not applicable"), (title, body[:200])
  assert "inclusion check:" in text


@pytest.mark.parametrize("name", FIGURES)
def test_paper_figure_script(name, results, tmp_path):
  out = tmp_path / f"{name}.png"
  env = {**os.environ, "PYTHONPATH": ROOT}
  p = subprocess.run([sys.executable, "-m", f"paper_figures.{name}", f"--results_dir={results}",
                      f"--out={out}", "--n_boot=50"], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  assert out.stat().st_size > 5000 and p.stdout.strip().splitlines()[-1] == str(out)


def test_paper_figure_bad_results_dir_is_one_line(tmp_path):
  p = subprocess.run([sys.executable, "-m", "paper_figures.shallue_fig1",
                      f"--results_dir={tmp_path / 'nope'}", f"--out={tmp_path / 'f.png'}"],
                     cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode != 0 and "Traceback" not in p.stderr
  assert p.stderr.strip().splitlines()[-1].startswith("error: --results_dir")


def test_readme_demo_runs_at_a_tiny_size(tmp_path):
  p = subprocess.run([sys.executable, "-m", "scripts.demo", f"--output_dir={tmp_path}",
                      "--num_trials=2", "--batch_sizes=32,128", "--train_steps=100"],
                     cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                     text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-2000:]
  assert p.stderr == ""  # no library log lines or warnings: a person's output
  lines = [l for l in p.stdout.splitlines() if l.strip()]
  patterns = [r"demo: batch scaling on mnist1d_large_mlp \(goal val/error < 0\.3\), .*",
              r"\[1/2\] batch 32: 2 trials of 100 steps in \d+s; ETA \d+m\d\ds",
              r"\[2/2\] batch 128: 2 trials of 100 steps in \d+s; ETA 0m00s",
              r"trained in \d+s", r"steps to result \(first eval .*",
              r"on what a rerun of the study would give .*",
              r"\s*batch size\s+steps to result\s+reached",
              r"\s+32\s+(> [\d,]+: not reached|(<= )?[\d,]+ \(.*\))\s+\d/\d non-diverged",
              r"\s+128\s+(> [\d,]+: not reached|(<= )?[\d,]+ \(.*\))\s+\d/\d non-diverged",
              r"perfect scaling up to batch (–|>= )?[\d,]*.*; maximal useful batch size .*",
              re.escape(f"report: {tmp_path / 'report' / 'report.md'}")]
  assert len(lines) == len(patterns), p.stdout
  for line, pattern in zip(lines, patterns):
    assert re.fullmatch(pattern, line), (line, pattern)
  assert (tmp_path / "report" / "report.md").is_file()


def test_deepobs_table_script(tmp_path):
  from analysis import importers
  if not os.path.isfile(importers.DEEPOBS_CSV):
    pytest.skip(f"DeepOBS baselines file absent: {importers.DEEPOBS_CSV}")
  out = tmp_path / "table.md"
  p = subprocess.run([sys.executable, "-m", "paper_figures.deepobs_table", f"--out={out}"],
                     cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                     text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  table = out.read_text()
  assert table.splitlines()[0] == "| test problem | metric | sgd | momentum | adam |"
  assert table.strip() in open(os.path.join(ROOT, "README.md")).read()  # README shows it as is
