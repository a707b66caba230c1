"""Extending the harness from files outside the repo, exactly as the README shows.

The workload, recipe and optimizer files are the README's own code blocks (the
ones whose first line is `# my_<name>.py: ...`), written to a temporary folder,
and the README's commands are run as written (only /tmp output folders move
into pytest's), their output checked against what the README says they print.
"""
import json
import os
import re
import shlex
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


def readme_command(start):
  """The README's bash command that starts with `start` (continuation lines
  joined), as an argument list; and the README's text after its block."""
  text = open(os.path.join(ROOT, "README.md")).read()
  blocks = [(m.group(1), text[m.end():]) for m in re.finditer(r"```bash\n(.*?)```", text, re.S)]
  found = [(b.replace("\\\n", " "), after) for b, after in blocks
           if b.replace("\\\n", " ").startswith(start)]
  assert len(found) == 1, f"the README has no one command starting with {start!r}"
  return shlex.split(found[0][0].strip()), found[0][1]


def claimed_status(after):
  """The 'status ok | best val/error X at step N | goal reached at step G'
  that the README says the command ends with: (status, X, G)."""
  text = " ".join(after.split("```")[0].split())
  m = re.search(r"`status (\w+) \| best val/error ([\d.]+) at step \d+ \| goal reached at "
                r"step (\d+)", text)
  assert m, f"the README says nothing of what the command prints: {text[:300]}"
  return m.group(1), float(m.group(2)), int(m.group(3))


def assert_reaches_what_the_readme_says(stdout, after):
  status, best, goal = claimed_status(after)
  m = re.search(r"status (\w+) \| best val/error ([\d.]+) at step \d+ \| goal reached at "
                r"step (\d+|None)", stdout)
  assert m, stdout[-2000:]
  assert m.group(1) == status and m.group(3) != "None", m.group(0)
  assert abs(float(m.group(2)) - best) <= 0.01 and int(m.group(3)) <= goal, (m.group(0), after[:200])


def as_written(argv, tmp_path):
  """The README's argv with its /tmp output folders moved to tmp_path/out."""
  return [re.sub(r"=/tmp/", f"={tmp_path}/out/", a) for a in argv]


@pytest.fixture
def outside(tmp_path):
  """A folder outside the repo holding the README's files."""
  folder = tmp_path / "mine"
  folder.mkdir()
  for name in ("my_workload.py", "my_recipe.py", "my_optimizer.py", "my_clipping.py"):
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
  """The README's my_recipe.py command, first without its --config.num_trials=8
  (4 trials per study), then as written (extended to 8)."""
  argv, _ = readme_command("python -m bench.run --config=my_recipe.py")
  argv = as_written(argv, tmp_path)[2:]
  out = tmp_path / "out" / "mine"
  assert f"--output_dir={out}" in argv and argv[-1] == "--config.num_trials=8"
  p = run(argv[:-1], cwd=outside)
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
    sgd = protocols.identity_hash(my_recipe.protocol("sgd", config))
  finally:
    sys.path.remove(str(outside))
  assert sgd in {r["protocol_hash"] for r in recs if r["optimizer"] == "sgd"}

  # Extending 4 -> 8 trials: the finished records untouched, 4 new ones, same folders.
  p = run(argv, cwd=outside)
  assert p.returncode == 0, p.stderr[-2000:]
  after = records(out)
  assert len(after) == 16 and len(os.listdir(out)) == 3  # two studies + experiment.json
  for path, text in first.items():
    assert after[path] == text  # byte-identical
  assert p.stdout.count("already done 4") == 2
  assert all(json.loads(t)["status"] != "failed" for t in after.values())

  # The same name with another protocol: refused in one line, nothing written.
  changed = (outside / "my_recipe.py").read_text().replace("ss.log(1e-4, 1.0)",
                                                           "ss.log(1e-4, 10.0)")
  (outside / "changed.py").write_text(changed)
  p = run(["bench.run", "--config=changed.py", f"--output_dir={out}"], cwd=outside)
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


@pytest.mark.parametrize("start", [
    "python -m bench.train --workload=my_workload.py:Logistic --optimizer=adam",
    "python -m bench.train --workload=my_workload.py:Logistic --optimizer=my_optimizer.py",
])
def test_readme_workload_and_optimizer_commands_reach_their_goal(outside, tmp_path, start):
  """The 'Add a workload' and 'Add an optimizer' commands, as written, run
  from the folder holding the files, reach the goal where the README says."""
  argv, after = readme_command(start)
  argv = as_written(argv, tmp_path)
  p = run(argv[2:], cwd=outside)
  assert p.returncode == 0, p.stderr[-2000:]
  assert_reaches_what_the_readme_says(p.stdout, after)
  out = [a.split("=", 1)[1] for a in argv if a.startswith("--output_dir=")][0]
  rec = json.loads(open(os.path.join(out, "record.json")).read())
  assert rec["workload"]["name"] == "logistic" and rec["status"] == "ok"
  if "my_optimizer" in start:
    assert rec["optimizer"] == "clipped_sgd" and rec["hparams"]["max_norm"] == 0.5


def test_readme_one_trial_command_reaches_its_goal(tmp_path):
  argv, after = readme_command("python -m bench.train --workload=mnist1d_mlp")
  p = run(as_written(argv, tmp_path)[2:], cwd=tmp_path)
  assert p.returncode == 0, p.stderr[-2000:]
  assert_reaches_what_the_readme_says(p.stdout, after)
  assert p.stdout.count("\nstep ") >= 9 and (tmp_path / "out" / "trial" / "record.json").exists()


def test_readme_recipe_with_a_workload_file_beside_it_runs_from_another_directory(
    outside, tmp_path):
  """The README's my_clipping.py names 'my_workload.py:Logistic' and imports
  my_optimizer: both beside it; run from the folder above (as written) and
  from elsewhere, the paths resolve to the recipe's folder."""
  argv, after = readme_command("python -m bench.run --config=mine/my_clipping.py")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  for cwd, recipe in ((tmp_path, "mine/my_clipping.py"), (elsewhere, str(outside / "my_clipping.py"))):
    out = tmp_path / f"store_{cwd.name}"
    args = [a.replace("mine/my_clipping.py", recipe) for a in as_written(argv, tmp_path)[2:]]
    args = [f"--output_dir={out}" if a.startswith("--output_dir=") else a for a in args]
    p = run(args, cwd=cwd)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("clipping: 2 studies, 8 trials"), p.stdout[:300]
    trials = [l for l in p.stdout.splitlines() if "] trial " in l]
    assert len(trials) == 8 and all(" ok " in l and "goal@100" in l for l in trials), trials
    for study_id in ("logistic-lr_only-sgd-s0", "logistic-lr_only-clipped_sgd-s0"):
      assert study_id in " ".join(after.split()[:40])  # the README names them
      meta = json.loads((out / study_id / "study.json").read_text())
      assert meta["workload"] == "my_workload.py:Logistic"  # as the recipe names it
  # The same studies either way: the records' points and curves agree.
  strip = lambda t: ({k: v for k, v in json.loads(t).items()
                      if k in ("hparams", "seed", "goal_step", "study_id")},
                     [{m: v for m, v in row.items() if m != "wall_time"}
                      for row in json.loads(t)["curve"]])
  first = {k: strip(v) for k, v in records(tmp_path / f"store_{tmp_path.name}").items()}
  second = {k: strip(v) for k, v in records(tmp_path / "store_elsewhere").items()}
  assert first == second


def test_paths_in_a_recipe_are_relative_to_it_and_on_the_command_line_to_the_cwd(
    tmp_path, monkeypatch):
  from bench import recipe as recipe_lib, study as study_lib
  from protocols.experiments import base_config
  recipe_dir, cwd = tmp_path / "recipes", tmp_path / "cwd"
  recipe_dir.mkdir(), cwd.mkdir()
  monkeypatch.chdir(cwd)
  c = base_config("x", "w.py:W", "smoke")
  c.settings.data_dir = "data"
  recipe_lib.rebase_paths(c, str(recipe_dir))
  assert c.workload == "w.py:W" and c.settings.data_dir == str(recipe_dir / "data")
  c = base_config("x", "other/w.py:W", "smoke")
  c.settings.data_dir = "data"
  recipe_lib.rebase_paths(c, str(recipe_dir), given=["workload", "settings.data_dir"])
  assert c.workload == "../cwd/other/w.py:W" and c.settings.data_dir == str(cwd / "data")
  s = study_lib.Study("x", c.workload, None, {}, 0, base_dir=str(recipe_dir))
  assert s.workload_ref == f"{cwd}/other/w.py:W"
  for name in ("mnist1d_mlp", "workloads.embedded:MNIST1DMLP", "/abs/w.py:W"):
    assert study_lib.resolve_workload(name, str(recipe_dir)) == name

def test_an_unregistered_name_in_an_optimizer_file_is_one_line(outside, tmp_path):
  p = run(["bench.train", "--optimizer=my_optimizer.py:nope", f"--output_dir={tmp_path / 'u'}"],
          cwd=outside)
  assert p.returncode != 0 and p.stderr.strip().startswith("error: unknown optimizer 'nope'")


def test_readme_describes_the_demo_it_runs():
  """README command (1): the batch sizes and trials it names are scripts/demo.py's defaults."""
  text = " ".join(open(os.path.join(ROOT, "README.md")).read().split())
  m = re.search(r"(\d+) batch sizes from ([\d,]+) to ([\d,]+) x (\d+) quasi-random", text)
  assert m, "the README does not say what the demo runs"
  demo = open(os.path.join(ROOT, "scripts", "demo.py")).read()
  sizes = [int(b) for b in re.search(r'"batch_sizes", \[([^\]]*)\]', demo).group(1)
           .replace('"', "").split(",")]
  trials = int(re.search(r'"num_trials", (\d+)', demo).group(1))
  n, lo, hi, k = (int(g.replace(",", "")) for g in m.groups())
  assert (n, lo, hi, k) == (len(sizes), min(sizes), max(sizes), trials)
