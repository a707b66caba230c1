"""Extending the harness from files outside the repo, exactly as the README shows.

The workload, recipe and optimizer files are the README's own code blocks (the
ones whose first line is `# my_<name>.py: ...`), written to a temporary folder.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import protocols
from bench import trial
from conftest import ROOT

QUIET = lambda s: None


def readme_file(name):
  """The README's code block that starts with '# <name>: ...'."""
  text = open(os.path.join(ROOT, "README.md")).read()
  blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
  found = [b for b in blocks if b.startswith(f"# {name}:")]
  assert len(found) == 1, f"the README has no code block for {name}"
  return found[0]


@pytest.fixture
def outside(tmp_path):
  """A folder outside the repo holding the README's three files."""
  folder = tmp_path / "mine"
  folder.mkdir()
  for name in ("my_workload.py", "my_recipe.py", "my_optimizer.py"):
    (folder / name).write_text(readme_file(name))
  return folder


def run(cmd, cwd, timeout=300):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  return subprocess.run([sys.executable, "-m", *cmd], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


def records(root):
  out = {}
  for dirpath, _, files in os.walk(root):
    if "record.json" in files:
      path = os.path.join(dirpath, "record.json")
      out[os.path.relpath(path, root)] = open(path).read()
  return out


# ----- a recipe of one's own -----

def test_recipe_outside_the_repo_runs_its_own_studies_and_extends(outside, tmp_path):
  out = tmp_path / "store"
  p = run(["bench.run", "--config=my_recipe.py", f"--output_dir={out}",
           "--config.train_steps=50"], cwd=outside)
  assert p.returncode == 0, p.stderr[-2000:]
  first = records(out)
  assert sorted({k.split(os.sep)[0] for k in first}) == ["mnist1d_mlp-lr_only-adam-s0",
                                                         "mnist1d_mlp-lr_only-sgd-s0"]
  assert len(first) == 8
  recs = [json.loads(t) for t in first.values()]
  assert {r["protocol_name"] for r in recs} == {"lr_only"}
  assert len({r["protocol_hash"] for r in recs}) == 2  # one per optimizer's protocol
  assert {r["optimizer"] for r in recs} == {"sgd", "adam"}
  # Its records carry its protocol's hash: the same protocol, rebuilt, hashes the same.
  sys.path.insert(0, str(outside))
  try:
    import my_recipe  # noqa: E402
    config = my_recipe.get_config()
    config.train_steps = 50
    sgd = protocols.identity_hash(my_recipe.protocol("sgd", config))
  finally:
    sys.path.remove(str(outside))
  assert sgd in {r["protocol_hash"] for r in recs if r["optimizer"] == "sgd"}

  # Extending 4 -> 8 trials: the finished records untouched, 4 new ones, same folders.
  p = run(["bench.run", "--config=my_recipe.py", f"--output_dir={out}",
           "--config.train_steps=50", "--config.num_trials=8"], cwd=outside)
  assert p.returncode == 0, p.stderr[-2000:]
  after = records(out)
  assert len(after) == 16 and len(os.listdir(out)) == 3  # two studies + experiment.json
  for path, text in first.items():
    assert after[path] == text  # byte-identical
  assert "already done 4" in p.stdout

  # The same name with another protocol: refused in one line, nothing written.
  changed = (outside / "my_recipe.py").read_text().replace("ss.log(1e-4, 1.0)",
                                                           "ss.log(1e-4, 10.0)")
  (outside / "changed.py").write_text(changed)
  p = run(["bench.run", "--config=changed.py", f"--output_dir={out}",
           "--config.train_steps=50"], cwd=outside)
  assert p.returncode != 0 and "Traceback" not in p.stderr
  assert p.stderr.strip().count("\n") == 0, p.stderr
  assert "another protocol (search_space.learning_rate.high: 1.0 -> 10.0)" in p.stderr
  assert records(out) == after


@pytest.mark.parametrize("old,new,message", [
    ("ss.log(1e-4, 1.0)", "ss.log(1.0, 1e-4)", "low"),
    ("ss.log(1e-4, 1.0)", "ss.log(0.0, 1.0)", "0"),
    ("eval_every=50,", "eval_every=50, sampler='sobol',", "unknown sampler 'sobol'"),
    ('("sgd", "adam")', '("sgd", "adamx")', "unknown optimizer 'adamx'"),
])
def test_malformed_recipe_fails_in_one_line_writing_nothing(outside, tmp_path, old, new,
                                                            message):
  text = (outside / "my_recipe.py").read_text()
  assert old in text
  (outside / "bad.py").write_text(text.replace(old, new))
  out = tmp_path / "never"
  p = run(["bench.run", "--config=bad.py", f"--output_dir={out}"], cwd=outside)
  assert p.returncode != 0 and "Traceback" not in p.stderr
  assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr, p.stderr
  assert not out.exists()  # not even an empty folder


# ----- a workload of one's own -----

def test_outside_workload_metrics_equal_an_unpadded_computation(outside, monkeypatch):
  """1,500 validation examples in eval batches of 1,024: the runner pads the
  second batch with 548 examples, and the metrics are exactly the unpadded ones."""
  monkeypatch.chdir(outside)
  p = trial.prepare(trial.spec("my_workload.py:Logistic", "sgd", {"learning_rate": 0.5},
                               train_steps=30, eval_every=30))
  prog = p.program()
  carry, keys = prog.init(np.int32(0), p.values)
  carry, _ = prog.chunk(carry, keys, 0, 30, np.ones(1, bool))
  import jax
  from bench import program
  row = program.metrics(jax.device_get(prog.evaluate(carry)), None)
  params = jax.device_get(carry[0])
  val = p.workload.arrays("validation")
  assert len(val["targets"]) == 1500 and prog.eval_splits["validation"]["inputs"].shape[:2] == (
      2, 1024)
  logits = val["inputs"].astype(np.float64) @ params["w"] + params["b"]
  logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
      - logits.max(1, keepdims=True)
  error = float(np.mean(np.argmax(logits, 1) != val["targets"]))
  loss = float(-np.mean(logp[np.arange(1500), val["targets"]]))
  assert row["val/error"] == pytest.approx(error, abs=1e-9)  # counts, exactly
  assert row["val/loss"] == pytest.approx(loss, rel=1e-5)
  assert 0 < error < 0.5


def test_outside_workload_and_optimizer_train_from_the_cli(outside, tmp_path):
  out = tmp_path / "t"
  p = run(["bench.train", "--workload=my_workload.py:Logistic",
           "--optimizer=my_optimizer.py:clipped_sgd", "--config.hparams.max_norm=0.5",
           "--config.train_steps=100", f"--output_dir={out}"], cwd=outside)
  assert p.returncode == 0, p.stderr[-2000:]
  rec = json.loads((out / "record.json").read_text())
  assert rec["optimizer"] == "clipped_sgd" and rec["hparams"]["max_norm"] == 0.5
  assert rec["workload"]["name"] == "logistic" and rec["status"] == "ok"
  assert rec["best"]["val/error"] < 0.2
  p = run(["bench.train", "--optimizer=my_optimizer.py:nope", f"--output_dir={tmp_path / 'u'}"],
          cwd=outside)
  assert p.returncode != 0 and p.stderr.strip().startswith("error: unknown optimizer 'nope'")
