"""Data parallelism across processes (jax.distributed, gloo on CPU) and devices."""
import json
import os
import socket
import subprocess
import sys
import types

import pytest

from bench import checkpoint, parallel
from conftest import ROOT, kill_after_checkpoint

TRIAL = ["--workload=mnist1d_mlp", "--optimizer=nesterov",
         "--config.hparams.learning_rate=0.05", "--config.hparams.schedule=linear_decay",
         "--config.batch_size=64", "--config.eval_every=20", "--config.eval_test=False",
         "--config.max_steps_per_dispatch=10"]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}


def curve(out):
  rec = json.loads((out / "record.json").read_text())
  return rec, [{k: v for k, v in r.items() if k != "wall_time"} for r in rec["curve"]]


def one_process(out, steps, devices=1):
  env = {**ENV, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  done = subprocess.run([sys.executable, "-m", "bench.train", *TRIAL, f"--output_dir={out}",
                         f"--config.train_steps={steps}"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  return curve(out)


def start_two_processes(out, steps, *extra):
  """Both processes of one trial; their output goes to files (a full pipe would
  stall one process, and the other with it at the next collective)."""
  with socket.socket() as s:  # a free loopback port for the coordinator
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  logs = out.parent / f"{out.name}_logs"
  logs.mkdir(exist_ok=True)
  procs = []
  for i in range(2):
    with open(logs / f"{i}.out", "a") as o, open(logs / f"{i}.err", "a") as e:
      procs.append(subprocess.Popen(
          [sys.executable, "-m", "bench.train", *TRIAL, f"--output_dir={out}",
           f"--config.train_steps={steps}", f"--coordinator_address=127.0.0.1:{port}",
           "--num_processes=2", f"--process_id={i}", *extra],
          cwd=ROOT, env=ENV, stdout=o, stderr=e, start_new_session=True))
      procs[-1].logs = logs / str(i)
  return procs


def finish(procs):
  """Each process's stdout, once both have exited cleanly."""
  for p in procs:
    p.wait(timeout=300)
  for p in procs:
    assert p.returncode == 0, p.logs.with_suffix(".err").read_text()[-2000:]
  return [p.logs.with_suffix(".out").read_text() for p in procs]


def test_two_processes_killed_and_resumed_match_one_process(tmp_path):
  """Same trial three ways: 1 device, 2 devices in 1 process, 2 processes of 1 device
  (SIGKILLed mid-run, both, then restarted from their orbax checkpoint). Splitting the
  batch changes only float summation order, so 1 and 2 devices agree to rounding; the
  2-device program is the same in one process or two, so those agree exactly."""
  _, single = one_process(tmp_path / "one", 160)
  _, two_devices = one_process(tmp_path / "two_devices", 160, devices=2)

  out = tmp_path / "two_proc"
  procs = start_two_processes(out, 160, "--config.checkpoint_every_sec=0")
  kill_after_checkpoint(procs, out / "checkpoint" / checkpoint.STATE, 40, timeout=240)
  assert not (out / "record.json").exists()
  stdout0, stdout1 = finish(start_two_processes(out, 160, "--config.checkpoint_every_sec=0"))
  rec, two_processes = curve(out)

  assert stdout0.count("resumed from the checkpoint at step") == 1
  assert "wrote" in stdout0 and "step" not in stdout1  # process 0 reports and writes
  assert sorted(p.name for p in out.iterdir()) == ["events", "record.json"]  # checkpoint gone
  assert rec["num_processes"] == 2 and rec["devices"] == ["cpu", "cpu"]
  assert two_processes == two_devices
  assert [r["step"] for r in single] == list(range(20, 161, 20))
  for a, b in zip(single, two_processes):
    for k in a:  # rounding differences (1e-7) grow over training (~1e-4 by step 160) and
      # can flip an example at an argmax tie (errors are fractions of ~1,000 examples)
      tol = 3e-3 if k.endswith("error") else 1e-3 * abs(a[k])
      assert abs(a[k] - b[k]) <= tol, (k, a[k], b[k])
  assert single[-1]["val/loss"] < single[0]["val/loss"]  # it trained


def test_bad_process_flags_fail_with_one_line():
  for flags, message in (
      (["--num_processes=2"], "need --coordinator_address"),
      (["--coordinator_address=127.0.0.1:1", "--num_processes=2", "--process_id=2"],
       "--process_id in [0, N), got 2 and 2")):
    done = subprocess.run([sys.executable, "-m", "bench.train", *flags], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in done.stderr


def test_batch_must_split_evenly_over_devices():
  parallel.check_batch_size(64, types.SimpleNamespace(size=2))
  with pytest.raises(ValueError, match="batch_size 63 is not divisible by the 2 devices"):
    parallel.check_batch_size(63, types.SimpleNamespace(size=2))
