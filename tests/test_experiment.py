"""The one experiment driver (bench.experiment): bench.run and the demo share its checks,
its store files and its stop line; a recipe file runs once per process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}


def test_the_recipe_file_runs_once_per_run(tmp_path):
  count = tmp_path / "count.txt"
  recipe = tmp_path / "counted.py"
  recipe.write_text(
      "import os\n"
      "open(os.environ['COUNT_FILE'], 'a').write('ran\\n')\n"
      "from protocols.experiments.batch_scaling import get_config, studies\n")
  for extra in (["--dry_run"], ["--config.num_trials=1", "--config.batch_sizes=(32,)"]):
    count.write_text("")
    p = subprocess.run([sys.executable, "-m", "bench.run", f"--config={recipe}:mnist1d_mlp,smoke",
                        f"--output_dir={tmp_path / 'out'}", *extra], cwd=ROOT, capture_output=True,
                       text=True, env={**ENV, "COUNT_FILE": str(count)}, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert count.read_text() == "ran\n", extra  # config_flags' get_config and the studies: one load


def test_the_demo_writes_experiment_json_and_stops_with_bench_runs_line(tmp_path):
  out = tmp_path / "demo"
  p = subprocess.Popen([sys.executable, "-m", "scripts.demo", f"--output_dir={out}",
                        "--num_trials=4", "--batch_sizes=16,32", "--train_steps=4000"],
                       cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
  marker = out / "results" / "experiment.json"
  deadline = time.monotonic() + 240
  while not marker.exists() and p.poll() is None and time.monotonic() < deadline:
    time.sleep(0.2)
  assert marker.exists(), p.communicate()[1][-2000:] if p.poll() is not None else "no store"
  time.sleep(1.0)
  p.send_signal(signal.SIGINT)
  _, err = p.communicate(timeout=60)
  assert p.returncode == 130, err
  lines = [l for l in err.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("SIGINT: stopped after "), err
  assert "when you run the same command again" in lines[0]
  config = json.loads(marker.read_text())
  assert config["experiment"] == "batch_scaling" and config["num_trials"] == 4
  assert list(config["batch_sizes"]) == [16, 32]


def test_a_store_written_by_3fb19c2_resumes_with_nothing_rerun(tmp_path):
  """tests/fixtures/store_3fb19c2: `bench.run --config=protocols/experiments/
  batch_scaling.py:mnist1d_mlp,smoke` at commit 3fb19c2 (records and study.json only)."""
  import shutil
  out = tmp_path / "store"
  shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "store_3fb19c2"), out)
  before = {p: p.read_bytes() for p in out.rglob("*.json")}
  p = subprocess.run([sys.executable, "-m", "bench.run", f"--output_dir={out}",
                      "--config=protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke"],
                     cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  assert "[mnist1d_mlp-shallue-bs32-s0] ran 0, already done 4" in p.stdout, p.stdout
  assert "[mnist1d_mlp-shallue-bs128-s0] ran 0, already done 4" in p.stdout, p.stdout
  assert {q: q.read_bytes() for q in out.rglob("*.json")} == before  # same ids, nothing rewritten
