"""Mid-trial checkpoints: an interrupted trial resumes and ends with the same record."""
import functools
import json
import os
import subprocess
import sys

import pytest

from bench import checkpoint, trial
from conftest import ROOT, kill_after_checkpoint

SPEC = dict(workload="mnist1d_mlp", optimizer="nesterov", batch_size=64, train_steps=200,
            eval_every=50, max_steps_per_dispatch=25,
            hparams={"learning_rate": 0.05, "schedule": "linear_decay", "decay_factor": 0.1})


class Preempted(BaseException):
  """Like a SIGTERM-triggered exit: not an Exception, so trial.run does not record it."""


def curve(rec):
  return [{k: v for k, v in r.items() if k != "wall_time"} for r in rec["curve"]]


def run(ckpt_dir, log=lambda s: None, every=0.0, workload="mnist1d_mlp"):
  spec = trial.spec(**{**SPEC, "workload": workload}, checkpoint_every_sec=every)
  return trial.run(trial.prepare(spec), log=log, checkpoint_dir=str(ckpt_dir))


# In memory (parameters + data order saved) and streamed (the stream restarts at the step).
@pytest.mark.parametrize("workload", ["mnist1d_mlp", "streamed_mnist1d:StreamedMnist1d"])
def test_interrupted_trial_resumes_to_the_same_record(workload, tmp_path, monkeypatch):
  run = functools.partial(globals()["run"], workload=workload)
  reference = run(tmp_path / "ref")
  assert not (tmp_path / "ref").exists()  # cleared once the trial ended

  save = checkpoint.TrialCheckpointer.save
  calls = []

  def save_then_die(self, step, state, meta):
    save(self, step, state, meta)
    calls.append(step)
    if len(calls) == 5:
      raise Preempted

  monkeypatch.setattr(checkpoint.TrialCheckpointer, "save", save_then_die)
  with pytest.raises(Preempted):
    run(tmp_path / "ckpt")
  state = json.loads((tmp_path / "ckpt" / checkpoint.STATE).read_text())
  assert state["step"] == 125 and [r["step"] for r in state["curve"]] == [50, 100]

  monkeypatch.setattr(checkpoint.TrialCheckpointer, "save", save)
  lines = []
  resumed = run(tmp_path / "ckpt", log=lines.append)
  assert "resumed from the checkpoint at step 125" in lines
  assert resumed["status"] == reference["status"] == "ok"
  assert curve(resumed) == curve(reference)  # bitwise on CPU
  assert not (tmp_path / "ckpt").exists()


def test_short_trials_write_no_checkpoint(tmp_path, monkeypatch):
  monkeypatch.setattr(checkpoint.TrialCheckpointer, "save",
                      lambda *a: pytest.fail("saved a checkpoint"))
  assert run(tmp_path / "ckpt", every=600.0)["status"] == "ok"


def test_sigkilled_cli_trial_resumes(tmp_path):
  out = tmp_path / "trial"
  args = [sys.executable, "-m", "bench.train", "--workload=mnist1d_mlp", f"--output_dir={out}",
          "--config.hparams.learning_rate=0.05", "--config.batch_size=64",
          "--config.train_steps=1000", "--config.eval_every=100",
          "--config.max_steps_per_dispatch=50", "--config.checkpoint_every_sec=0"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       start_new_session=True)
  kill_after_checkpoint([p], out / "checkpoint" / checkpoint.STATE, 300, timeout=300)
  assert not (out / "record.json").exists()
  done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "resumed from the checkpoint at step" in done.stdout
  resumed = json.loads((out / "record.json").read_text())

  ref = subprocess.run([a.replace(str(out), str(tmp_path / "ref")) for a in args], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
  assert ref.returncode == 0, ref.stderr[-2000:]
  reference = json.loads((tmp_path / "ref" / "record.json").read_text())
  assert curve(resumed) == curve(reference) and len(reference["curve"]) == 10
