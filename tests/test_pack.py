"""Packs: K trials as the lanes of one program, each recorded as its solo run.

On CPU a lane equals its solo run up to float summation order: the model,
optimizer and schedule compute the same operations, but XLA may order the
reductions over a batch differently when a lane axis is present (the
per-operation results are bitwise equal in most lanes, see bench/program.py).
Over these 60-step trials that stays below RTOL; statuses, eval steps and
divergence steps are identical.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import optimizers, packing, runner as runner_lib, study as study_lib, trial
from bench.settings import TrialSettings
from conftest import ROOT
from protocols import presets

RTOL = 1e-5
# One optimizer per update-rule family (heavy ball, RMSProp, Adam family, trust
# ratios, schedule-free), each under a schedule with warmup and decay.
FAMILIES = ["sgd", "nesterov", "rmsprop", "adam", "nadamw", "lamb", "lars",
            "schedule_free_adamw"]
QUIET = lambda s: None


def specs(workload, optimizer, lr_factors=(0.3, 1.0, 3.0), **kw):
  lr = optimizers.REGISTRY[optimizer].defaults["learning_rate"]
  return [trial.spec(
      workload, optimizer, {"learning_rate": lr * f, "schedule": "cosine", "warmup_steps": 5},
      seed=i, batch_size=32, train_steps=60, eval_every=20, max_steps_per_dispatch=20, **kw)
          for i, f in enumerate(lr_factors)]


def curve(rec):
  return [{k: v for k, v in row.items() if k != "wall_time"} for row in rec["curve"]]


def assert_same_trial(solo, lane):
  assert (lane["status"], lane["diverged_step"]) == (solo["status"], solo["diverged_step"])
  assert [r["step"] for r in lane["curve"]] == [r["step"] for r in solo["curve"]]
  for a, b in zip(curve(solo), curve(lane)):
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=RTOL, atol=1e-7, err_msg=k)


def run_pack(prepared):
  n = len(prepared)
  return trial.run_pack(prepared, [QUIET] * n, [None] * n, [None] * n)


@pytest.mark.parametrize("workload,optimizer",
                         [("mnist1d_mlp", o) for o in FAMILIES] +
                         [("streamed_mnist1d:StreamedMnist1d", "nesterov")])
def test_packed_lanes_equal_solo_runs(workload, optimizer):
  prepared = [trial.prepare(s) for s in specs(workload, optimizer)]
  solo = [trial.run(p, log=QUIET) for p in prepared]
  packed = run_pack(prepared)
  assert all(r["pack_size"] == 3 for r in packed) and solo[0]["pack_size"] == 1
  for s, p in zip(solo, packed):
    assert_same_trial(s, p)


def test_a_diverging_lane_leaves_the_others_identical():
  good = specs("mnist1d_mlp", "nesterov", (0.3, 1.0, 0.5))
  bad = specs("mnist1d_mlp", "nesterov", (0.3, 1000.0, 0.5))
  with_good = run_pack([trial.prepare(s) for s in good])
  with_bad = run_pack([trial.prepare(s) for s in bad])
  assert with_bad[1]["status"] == "diverged" and with_bad[1]["diverged_step"] == 20
  assert with_bad[1]["curve"] == []
  for i in (0, 2):  # same program, same lanes: bitwise
    assert curve(with_bad[i]) == curve(with_good[i])
    assert with_bad[i]["status"] == "ok"


def test_a_pack_whose_lanes_all_diverge_stops_early():
  prepared = [trial.prepare(s) for s in specs("mnist1d_mlp", "sgd", (1e4, 3e4))]
  records = run_pack(prepared)
  assert [r["status"] for r in records] == ["diverged", "diverged"]
  assert all(r["diverged_step"] == 20 for r in records)


def _study(num_trials=8, train_steps=100):
  protocol = presets.shallue("nesterov", num_trials=num_trials, train_steps=train_steps,
                             eval_every=50)
  return study_lib.Study("test", "mnist1d_mlp", protocol, {"batch_size": 64}, 0,
                         TrialSettings(max_steps_per_dispatch=25, checkpoint_every_sec=0.0))


def _records(root):
  out = {}
  for dirpath, _, files in os.walk(root):
    if "record.json" in files:
      with open(os.path.join(dirpath, "record.json")) as f:
        rec = json.load(f)
      out[rec["trial_id"]] = rec
  return out


def test_packed_study_equals_solo_study(tmp_path):
  """A study run in packs of 4 stores the records of its solo run (checkpoints
  saved at every dispatch, one folder per trial, each lane's record its own)."""
  runner_lib.StudyRunner(_study(), tmp_path / "solo", log=QUIET, pack="off").run()
  runner_lib.StudyRunner(_study(), tmp_path / "packed", log=QUIET, pack=4).run()
  solo, packed = _records(tmp_path / "solo"), _records(tmp_path / "packed")
  assert sorted(solo) == sorted(packed) and len(solo) == 8
  for k in solo:
    assert packed[k]["pack_size"] == 4
    assert_same_trial(solo[k], packed[k])
  assert not list((tmp_path / "packed").glob("*/t*/checkpoint"))


def test_auto_does_not_pack_on_cpu():
  """The measured rule (bench/packing.py): no probe, no packs on a CPU backend."""
  p = trial.prepare(specs("mnist1d_mlp", "sgd")[0])
  assert packing.lanes_for("auto", p, 10) == 1
  assert packing.lanes_for(4, p, 10) == 4 and packing.lanes_for(4, p, 3) == 3


def test_auto_chooses_off_where_packing_loses(monkeypatch, tmp_path):
  monkeypatch.setenv("OPTBENCH_PACK_PROBE_CPU", "1")  # the probe, on this CPU
  monkeypatch.setenv("OPTBENCH_PACKING_CACHE", str(tmp_path))
  monkeypatch.setattr(packing, "_DECIDED", {})
  rates = {0: 1000.0, 2: 700.0, 4: 900.0}
  probed = []

  def fake_rate(prepared, lanes, steps):
    probed.append(lanes)
    return rates[lanes]

  monkeypatch.setattr(packing, "_rate", fake_rate)
  p = trial.prepare(specs("mnist1d_mlp", "sgd")[0])
  assert packing.decide(p, log=QUIET) == 1
  assert probed == [0, 2]  # stops at the first K that does not pay
  assert packing.lanes_for("auto", p, 10) == 1
  saved = json.loads(open(packing.cache_path()).read())
  assert list(saved.values())[0]["lanes"] == 1
  # Remembered across processes: a new decision reads the file, probes nothing.
  monkeypatch.setattr(packing, "_DECIDED", {})
  probed.clear()
  assert packing.decide(p, log=QUIET) == 1 and probed == []


def test_auto_packs_where_packing_pays(monkeypatch, tmp_path):
  monkeypatch.setenv("OPTBENCH_PACK_PROBE_CPU", "1")
  monkeypatch.setenv("OPTBENCH_PACKING_CACHE", str(tmp_path))
  monkeypatch.setattr(packing, "_DECIDED", {})
  monkeypatch.setattr(packing, "_rate", lambda p, lanes, steps: {0: 100.0, 2: 180.0,
                                                                   4: 300.0, 8: 310.0}[lanes])
  p = trial.prepare(specs("mnist1d_mlp", "sgd")[0])
  assert packing.decide(p, log=QUIET) == 4
  assert packing.lanes_for("auto", p, 3) == 3  # never more lanes than trials


def test_real_probe_measures_solo_and_packs(monkeypatch):
  """The probe itself on this CPU: rates for solo and at least K=2, positive."""
  p = trial.prepare(trial.spec("mnist1d_mlp", "sgd", {"learning_rate": 0.1},
                               batch_size=32, train_steps=20, eval_every=20))
  monkeypatch.setattr(packing, "candidates", lambda backend: [2])
  rates = packing.probe(p, steps=5)
  assert sorted(rates) == [1, 2] and all(v > 0 for v in rates.values())


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1.5"])
def test_bad_pack_values_are_one_line(tmp_path, bad):
  """(Packed SIGKILL and shard runs: tests/test_study.py runs them with --pack=2.)"""
  cfg = "protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke"
  p = subprocess.run([sys.executable, "-m", "bench.run", f"--config={cfg}",
                      f"--output_dir={tmp_path / 'x'}", f"--pack={bad}"], cwd=ROOT,
                     capture_output=True, text=True, timeout=120)
  assert p.returncode != 0
  assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "pack" in p.stderr
  assert "Traceback" not in p.stderr
