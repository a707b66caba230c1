"""--executor=ray on a local two-worker Ray cluster, with one worker killed mid-study."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytest.importorskip("ray", reason="optional extra: pip install -e '.[ray]'")
from conftest import ROOT  # noqa: E402
from test_study import SMOKE, check_exactly  # noqa: E402


def _free_port():
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _task_pids():
  out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
  return [int(line.split()[0]) for line in out.splitlines() if "ray::_trial_task" in line]


@pytest.fixture
def ray_cluster():
  ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
  temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
  port = _free_port()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0"}
  subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2",
                  "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                  f"--temp-dir={temp}", "--disable-usage-stats"],
                 check=True, env=env, capture_output=True, timeout=180)
  try:
    yield f"127.0.0.1:{port}", env
  finally:
    subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_study_survives_a_killed_worker(ray_cluster, tmp_path):
  address, env = ray_cluster
  out = tmp_path / "study"
  p = subprocess.Popen(
      [sys.executable, "-m", "bench.run", f"--config={SMOKE}", f"--output_dir={out}",
       "--config.num_trials=12", "--config.rerun_best_seeds=0", "--config.train_steps=300",
       "--config.eval_every=100", "--executor=ray", f"--ray_address={address}"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  killed, deadline = None, time.time() + 300
  while killed is None and time.time() < deadline and p.poll() is None:
    pids = _task_pids()
    if pids:
      time.sleep(1.0)  # let the trial get going
      if pids[0] in _task_pids():
        os.kill(pids[0], signal.SIGKILL)
        killed = pids[0]
    time.sleep(0.2)
  stdout, stderr = p.communicate(timeout=600)
  assert killed is not None, "no Ray trial task was seen running"
  assert p.returncode == 0, stderr[-3000:]
  check_exactly(out, 12, reruns=0)  # every trial once, none duplicated or corrupt
  assert "ran" in stdout
