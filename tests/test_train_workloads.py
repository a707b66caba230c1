"""`python -m bench.train` on every registered workload: a few steps each.

tfds workloads run on `tfds.testing.mock_data` (random examples, no download):
the child process enters the mock and then runs bench.train as `-m` would.
Models are shrunk with --workload_args where the workload allows it; what is
exercised is the full path: flags -> workload -> data -> fused loop -> record.
"""
import json
import math
import os
import subprocess
import sys

import pytest

import workloads
from bench import settings
from conftest import ROOT, SHARED_DATA

tfds = pytest.importorskip("tensorflow_datasets")

# `python -m bench.train ARGS`, optionally inside tfds's mock of every data set.
CHILD = """
import runpy, sys
n = int(sys.argv.pop(1))
sys.argv[0] = "bench.train"
if n:
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE):
    runpy.run_module("bench.train", run_name="__main__", alter_sys=True)
else:
  runpy.run_module("bench.train", run_name="__main__", alter_sys=True)
"""

TINY_LM = "seq_len=8,num_layers=1,model_dim=16,num_heads=2,mlp_dim=32"
# workload -> (--workload_args, examples served by the tfds mock or None)
CASES = {
    "mnist1d_mlp": ("", None),
    "mnist1d_cnn": ("", None),
    "mnist1d_large_mlp": ("", None),
    "stdlib_lm": ("seq_len=16,num_layers=1", None),
    "mnist_cnn": ("", 5_016),
    "fashion_mnist_cnn": ("", 5_016),
    "cifar10_resnet8": ("num_validation=16", 32),
    "cifar10_resnet32": ("num_validation=16", 32),
    "imagenet_resnet50": ("image_size=32,width=4,stage_sizes=(1,),num_validation=4", 20),
    "lm1b_transformer": (f"tokenizer='bytes',num_validation=4,{TINY_LM}", 20),
    "shakespeare_lm": (TINY_LM, 0),  # offline text file in --data_dir (tfds mock text is too short)
}


def run_cli(argv, mock_examples=0):
  env = {**os.environ, "PYTHONPATH": ROOT}
  p = subprocess.run([sys.executable, "-c", CHILD, str(mock_examples), *argv], cwd=ROOT,
                     env=env, capture_output=True, text=True, timeout=1800)
  assert p.returncode == 0, p.stderr[-3000:]
  return p.stdout


def test_every_registered_workload_has_a_case():
  assert set(CASES) == set(workloads.REGISTRY)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bench_train_runs_workload(name, tmp_path):
  args, mock_examples = CASES[name]
  out = tmp_path / "trial"
  if name == "shakespeare_lm":
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tinyshakespeare.txt").write_text("To be, or not to be. " * 500)
  argv = [f"--workload={name}", "--optimizer=nesterov", f"--workload_args={args}",
          f"--data_dir={tmp_path / 'data'}", f"--output_dir={out}",
          "--config.hparams.learning_rate=0.01", "--config.batch_size=4",
          "--config.train_steps=3", "--config.eval_every=3", "--config.eval_test=False"]
  printed = run_cli(argv, mock_examples or 0)
  rec = json.loads((out / "record.json").read_text())
  assert rec["status"] == "ok", rec["status_reason"]
  assert [r["step"] for r in rec["curve"]] == [3]  # one eval: full validation sets are slow on CPU
  metric = f"val/{rec['workload']['goal']['metric']}"
  assert all(math.isfinite(r[metric]) and math.isfinite(r["val/loss"]) for r in rec["curve"])
  assert rec["workload"]["args"] == json.loads(json.dumps(settings.parse_workload_args(args)))
  assert "steps/s" in printed and f"wrote {out}" in printed


# 600 CNN steps at batch 128 take ~10 minutes on 2 CPU cores (seconds on a GPU),
# more than the whole suite's budget: opt in with OPTBENCH_SLOW_TESTS=1 on CPU.
SLOW_OK = os.environ.get("OPTBENCH_SLOW_TESTS") == "1" or os.environ.get("JAX_PLATFORMS", "cpu") != "cpu"


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED_DATA, "mnist.npz")),
                    reason=f"real MNIST not present at {SHARED_DATA}/mnist.npz")
@pytest.mark.skipif(not SLOW_OK, reason="~10 min on 2 CPU cores: set OPTBENCH_SLOW_TESTS=1 "
                    "(or run with an accelerator, JAX_PLATFORMS=cuda)")
def test_real_mnist_cnn_nesterov_reaches_2_5_percent_in_600_steps(tmp_path):
  out = tmp_path / "trial"
  run_cli(["--workload=mnist_cnn", "--optimizer=nesterov", f"--data_dir={SHARED_DATA}",
           f"--output_dir={out}", "--config.hparams.learning_rate=0.05",
           "--config.hparams.momentum=0.9", "--config.batch_size=128",
           "--config.train_steps=600", "--config.eval_every=600", "--config.eval_test=False"])
  rec = json.loads((out / "record.json").read_text())
  assert rec["status"] == "ok"
  assert rec["curve"][-1]["val/error"] < 0.025, rec["curve"][-1]
