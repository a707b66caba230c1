"""The train loop and `python -m bench.train` on the embedded workloads."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import trial
from conftest import ROOT

FAST = dict(workload="mnist1d_mlp", batch_size=64, train_steps=120, eval_every=40)


def run(**kw):
  spec = trial.spec(**{**FAST, "optimizer": "nesterov",
                            "hparams": {"learning_rate": 0.05}, **kw})
  return trial.run(trial.prepare(spec), log=lambda s: None)


def test_trial_record_contents():
  rec = run()
  assert rec["status"] == "ok" and rec["status_reason"] == ""
  assert [r["step"] for r in rec["curve"]] == [40, 80, 120]
  row = rec["curve"][-1]
  for key in ("val/error", "val/loss", "test/error", "train/error", "wall_time"):
    assert np.isfinite(row[key])
  assert rec["curve"][-1]["train/loss"] < rec["curve"][0]["train/loss"]
  best = min(rec["curve"], key=lambda r: r["val/error"])
  assert rec["best"]["step"] == best["step"]
  assert rec["hparams"] == {"learning_rate": 0.05, "momentum": 0.9}
  assert rec["steps_per_sec"] > 0 and rec["workload"]["goal"] == {"metric": "error", "threshold": 0.4}
  json.dumps(rec)  # serialisable as is


def test_same_seed_same_curve_different_seed_differs():
  a, b, c = run(seed=3), run(seed=3), run(seed=4)
  strip = lambda rec: [{k: v for k, v in r.items() if k != "wall_time"} for r in rec["curve"]]
  assert strip(a) == strip(b)
  assert strip(a) != strip(c)


def test_divergent_learning_rate_is_recorded_not_raised():
  rec = run(hparams={"learning_rate": 50.0})
  assert rec["status"] == "diverged"
  assert rec["diverged_step"] is not None and rec["goal_step"] is None
  assert "loss" in rec["status_reason"]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "nadam",
                                       "adamw", "nadamw", "lamb", "lars", "schedule_free_adamw"])
def test_every_optimizer_trains(optimizer):
  # rmsprop starts from v0 = 1 (playbook rule), so its default lr 1e-3 is SGD-slow at first.
  hparams = {"learning_rate": 0.01} if optimizer == "rmsprop" else {}
  rec = run(optimizer=optimizer, hparams=hparams, train_steps=40, eval_every=40)
  assert rec["status"] == "ok", rec["status_reason"]
  assert rec["curve"][-1]["train/loss"] < 2.2  # below chance-level cross-entropy ~2.30


def test_streamed_dispatch_is_capped_by_host_memory(monkeypatch):
  """Streamed chunks hold at most STREAM_DISPATCH_BYTES of batches; the curve is
  the same however the steps are grouped."""
  from bench import data as data_lib, loop
  streamed = "streamed_mnist1d:StreamedMnist1d"
  uncapped = run(workload=streamed)
  sizes = []
  stack = data_lib.stack_stream
  monkeypatch.setattr(data_lib, "stack_stream", lambda it, n: sizes.append(n) or stack(it, n))
  monkeypatch.setattr(loop, "STREAM_DISPATCH_BYTES", 3 * 64 * (40 + 1) * 4)  # 3 batches
  capped = run(workload=streamed)
  assert max(sizes) == 3 and sum(sizes) == 120
  strip = lambda rec: [{k: v for k, v in r.items() if k != "wall_time"} for r in rec["curve"]]
  assert strip(capped) == strip(uncapped) and capped["status"] == "ok"


def test_language_model_trains():
  rec = run(workload="stdlib_lm", optimizer="adam", hparams={"learning_rate": 3e-3},
            batch_size=8, train_steps=30, eval_every=30, eval_test=False)
  assert rec["status"] == "ok"
  assert rec["curve"][-1]["val/loss"] < np.log(256)


def test_workload_by_import_path(tmp_path):
  (tmp_path / "my_workload.py").write_text(
      "from workloads.embedded import Mnist1dMlp\n"
      "class Tiny(Mnist1dMlp):\n  name = 'tiny'\n  default_train_steps = 20\n")
  rec = run(workload=f"{tmp_path}/my_workload.py:Tiny", train_steps=None, eval_every=None)
  assert rec["workload"]["name"] == "tiny" and rec["train_steps"] == 20


def cli(*args, cwd=ROOT):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  return subprocess.run([sys.executable, "-m", "bench.train", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def test_cli_writes_record_and_refuses_to_overwrite(tmp_path):
  out = tmp_path / "t"
  args = ["--workload=mnist1d_mlp", "--optimizer=adam", "--config.hparams.learning_rate=0.003",
          "--config.batch_size=32", "--config.train_steps=40", "--config.eval_every=20",
          f"--output_dir={out}"]
  p = cli(*args)
  assert p.returncode == 0, p.stderr[-2000:]
  assert "step 40/40" in p.stdout and "steps/s" in p.stdout
  rec = json.loads((out / "record.json").read_text())
  assert rec["optimizer"] == "adam" and rec["batch_size"] == 32 and len(rec["curve"]) == 2
  again = cli(*args)
  assert again.returncode != 0 and "exists" in again.stderr.strip().splitlines()[-1]
  assert json.loads((out / "record.json").read_text()) == rec  # nothing lost


@pytest.mark.parametrize("args,message", [
    (["--workload=imagenet_resnet5"], "unknown workload 'imagenet_resnet5'"),
    (["--optimizer=adamx"], "unknown optimizer 'adamx'"),
    (["--optimizer=sgd", "--config.hparams.beta1=0.9"], "has no hyperparameter 'beta1'"),
    (["--config.batch_size=0"], "batch_size must be a positive integer"),
    (["--config.hparams.momentum=1.5"], "momentum = 1.5 must be in [0, 1)"),
    (["--output_dir=/proc/nope/x"], "not writable"),
])
def test_cli_bad_input_is_one_line(args, message):
  p = cli(*args)
  assert p.returncode != 0
  assert "Traceback" not in p.stderr
  assert message in p.stderr.strip().splitlines()[-1]
