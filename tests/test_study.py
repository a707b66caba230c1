"""Studies: protocols run end to end, survive SIGKILL, and shard safely."""
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import analysis
import protocols
from bench import recipe as recipe_lib, runner as runner_lib, study as study_lib, trial
from conftest import ROOT
from protocols.experiments import preset

SMOKE = "protocols/experiments/preset.py:shallue,mnist1d_mlp,,smoke"


def bench_run(*args, **popen_kw):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  return subprocess.Popen([sys.executable, "-m", "bench.run", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kw)


def records(out):
  found = []
  for root, _, files in os.walk(out):
    found += [os.path.join(root, f) for f in files if f == "record.json"]
  return found


def check_exactly(out, n, reruns=1):
  """n records: search trials 0..n-reruns-1 once each, and `reruns` seed reruns."""
  recs = [json.load(open(p)) for p in records(out)]  # every record parses
  assert sorted(r["trial_index"] for r in recs if not r["rerun"]) == list(range(n - reruns))
  assert sum(1 for r in recs if r["rerun"]) == reruns
  res = analysis.load(str(out))
  assert len(res.trials) == n and not res.problems, res.problems


def test_sigkill_at_random_moments_then_resume(tmp_path):
  """Packs of 2 with a checkpoint at every dispatch: kills land mid-pack too."""
  out = tmp_path / "study"
  args = [f"--config={SMOKE}", f"--output_dir={out}", "--config.num_trials=6",
          "--config.train_steps=20", "--config.eval_every=10", "--pack=2",
          "--config.settings.checkpoint_every_sec=0",
          "--config.settings.max_steps_per_dispatch=5"]
  rng = random.Random(1234)
  for _ in range(3):
    p = bench_run(*args, start_new_session=True)
    time.sleep(rng.uniform(3.0, 8.0))
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
  before = {p: open(p).read() for p in records(out)}
  p = bench_run(*args)
  stdout, stderr = p.communicate(timeout=600)
  assert p.returncode == 0, stderr[-3000:]
  check_exactly(out, 7)  # 6 trials + the best point rerun with one more seed
  for path, text in before.items():  # finished trials were never rerun or rewritten
    assert open(path).read() == text
  assert f"already done {len(before)}" in stdout
  assert not list(out.rglob("checkpoint"))


def test_four_shards_share_one_directory(tmp_path):
  out = tmp_path / "sharded"
  args = [f"--config={SMOKE}", f"--output_dir={out}", "--config.num_trials=8",
          "--config.train_steps=10", "--config.eval_every=10", "--pack=2"]
  procs = [bench_run(*args, f"--shard={i}/4") for i in range(4)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  check_exactly(out, 9)  # 8 trials + 1 rerun of the best, by whichever shard ended last


def smoke_config(preset_name, optimizer=""):
  c = preset.get_config(f"{preset_name},mnist1d_mlp,{optimizer},smoke")
  c.num_trials, c.train_steps, c.eval_every = 2, 10, 10
  return c


@pytest.mark.parametrize("name,optimizer", [
    ("shallue", ""), ("choi_lr", "adam"), ("choi_lr_momentum", "momentum"),
    ("choi_all", "rmsprop"), ("deepobs_baseline", "adam"), ("algoperf_external", "nadamw")])
def test_every_preset_runs_end_to_end(tmp_path, name, optimizer):
  config = smoke_config(name, optimizer)
  if name == "algoperf_external":
    config.num_studies = 2
  studies = recipe_lib.expand(config, preset)
  for s in studies:
    runner_lib.StudyRunner(s, tmp_path, log=lambda m: None).run()
  res = analysis.load(str(tmp_path))
  expected = sum(int(s.protocol.budget.num_trials) + int(s.protocol.budget.rerun_best_seeds)
                 for s in studies)
  assert len(res.trials) == expected and not res.problems
  if name == "deepobs_baseline":  # the best point reran with a new seed
    reruns = res.trials[res.trials.rerun > 0]
    assert len(reruns) == 1 and reruns.seed.iloc[0] == 43
  if name == "algoperf_external":
    assert res.trials.study_id.nunique() == 2


def test_trial_ids_and_seeds_are_deterministic():
  a = recipe_lib.expand(smoke_config("shallue"), preset)[0]
  b = recipe_lib.expand(smoke_config("shallue"), preset)[0]
  points = protocols.sample_points(a.protocol, a.study_seed, 2)
  sa, sb = study_lib.trial_specs(a, points), study_lib.trial_specs(b, points)
  assert [(s.trial_id, s.seed) for s in sa] == [(s.trial_id, s.seed) for s in sb]
  assert len({s.seed for s in sa}) == 2


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.sampler.update(name="sobolish"), "sobolish"),
    (lambda p: p.search_space.learning_rate.update(low=1.0, high=0.1), "learning_rate"),
    (lambda p: p.search_space.learning_rate.update(low=0.0), "learning_rate"),
    (lambda p: p.search_space.optimizer.update(value="adamax9"), "adamax9"),
    (lambda p: p.search_space.momentum.update(condition={"schedule_kind": ["x"]}), "schedule_kind"),
])
def test_malformed_protocol_fails_before_training(tmp_path, mutate, message):
  s = recipe_lib.expand(smoke_config("shallue"), preset)[0]
  mutate(s.protocol)
  with pytest.raises((protocols.ProtocolError, trial.ConfigError)) as e:
    runner_lib.StudyRunner(s, tmp_path, log=lambda m: None).prepare()
  assert message in str(e.value) and "\n" not in str(e.value)
  assert records(tmp_path) == []


def test_cli_malformed_config_is_one_line(tmp_path):
  p = bench_run(f"--config={SMOKE}", f"--output_dir={tmp_path}", "--config.preset=nope")
  _, err = p.communicate(timeout=120)
  assert p.returncode != 0 and "Traceback" not in err
  assert "nope" in err.strip().splitlines()[-1]


def test_changed_protocol_in_same_directory_is_refused(tmp_path):
  s = recipe_lib.expand(smoke_config("shallue"), preset)[0]
  runner_lib.StudyRunner(s, tmp_path, log=lambda m: None).prepare()
  changed = s.protocol.copy_and_resolve_references()
  changed.search_space.learning_rate.high = 1.0
  t = dataclasses.replace(s, protocol=changed)
  assert t.study_id == s.study_id
  with pytest.raises(Exception, match=r"another protocol \(search_space.learning_rate.high: "
                                      r"10.0 -> 1.0\)"):
    runner_lib.StudyRunner(t, tmp_path, log=lambda m: None).prepare()


def test_dry_run_lists_points_and_writes_nothing(tmp_path):
  p = bench_run(f"--config={SMOKE}", f"--output_dir={tmp_path}", "--dry_run")
  out, err = p.communicate(timeout=120)
  assert p.returncode == 0, err[-2000:]
  assert "t0000 nesterov" in out and list(tmp_path.iterdir()) == []


def test_slurm_array_script_runs_its_shard(tmp_path):
  script = os.path.join(ROOT, "scripts", "slurm_array.sh")
  args = ["bash", script, SMOKE, str(tmp_path), "--config.num_trials=4",
          "--config.rerun_best_seeds=0", "--config.train_steps=10", "--config.eval_every=10"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  for task in (0, 1):  # what a 2-task array runs, one task after the other
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**env, "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_ID": str(task)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "ran 2, already done 0" in p.stdout  # its own two of the four
  check_exactly(tmp_path, 4, reruns=0)
  p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
  assert p.returncode != 0 and "not a Slurm array task" in p.stderr


def test_processes_executor_gives_each_worker_its_own_devices(tmp_path):
  """4 forced host devices, 2 workers: shard i trains on devices [2i, 2i+1] only
  (parallel.assign), each trial's batch split over its worker's two."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
         "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  args = [sys.executable, "-m", "bench.run", f"--config={SMOKE}", f"--output_dir={tmp_path}",
          "--config.num_trials=2", "--config.rerun_best_seeds=0", "--config.train_steps=10",
          "--config.eval_every=10", "--executor=processes", "--num_workers=2"]
  p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  recs = [json.load(open(f)) for f in records(tmp_path)]
  assert sorted((r["trial_index"], r["device_ids"]) for r in recs) == [(0, [0, 1]), (1, [2, 3])]
  assert "worker 1: shard 1/2, cpu devices [2, 3]" in p.stdout
