"""bench.status: counts from the store alone, while a study runs and after."""
import os
import subprocess
import sys

import pytest

from bench import recipe as recipe_lib, runner as runner_lib, status as status_lib, store
from conftest import ROOT
from protocols.experiments import preset


def smoke_study():
  c = preset.get_config("shallue,mnist1d_mlp,,smoke")
  c.num_trials, c.train_steps, c.eval_every = 3, 10, 10   # + 1 rerun of the best
  return recipe_lib.expand(c, preset)[0]


def test_counts_during_and_after_a_study(tmp_path):
  s = smoke_study()
  runner_lib.StudyRunner(s, tmp_path, shard=(0, 2), log=lambda m: None).run()  # t0, t2
  sdir = str(tmp_path / s.study_id)
  lock = store.TrialLock(os.path.join(sdir, "t0001"))
  assert lock.acquire()  # as a live runner of trial 1 would hold it
  st = status_lib.study_status(sdir)
  assert (st.total, st.finished, st.running, st.interrupted, st.pending) == (4, 2, 1, 0, 1)
  assert st.ok + st.diverged + st.failed == 2 and st.mean_trial_sec > 0
  lock.release()  # the runner died without a record
  st = status_lib.study_status(sdir)
  assert (st.running, st.interrupted, st.pending) == (0, 1, 1)
  probe = store.TrialLock(os.path.join(sdir, "t0001"))
  assert probe.acquire()  # bench.status's probe left the lock free
  probe.release()

  runner_lib.StudyRunner(s, tmp_path, log=lambda m: None).run()
  st = status_lib.study_status(sdir)
  assert (st.finished, st.running, st.interrupted, st.pending, st.eta_sec) == (4, 0, 0, 0, 0.0)

  p = subprocess.run([sys.executable, "-m", "bench.status", f"--output_dir={tmp_path}"],
                     cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode == 0, p.stderr
  row = next(line for line in p.stdout.splitlines() if line.startswith(s.study_id))
  assert row.split()[1] == "4/4"


def test_missing_directory_is_one_line(tmp_path):
  p = subprocess.run([sys.executable, "-m", "bench.status", f"--output_dir={tmp_path / 'x'}"],
                     cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode != 0 and p.stderr.strip().startswith("error: --output_dir")


def _scalars(events_dir):
  """{tag: [(step, value)]} from TensorBoard event files (TFRecord framing)."""
  import struct
  from tensorboardX.proto import event_pb2
  out = {}
  for name in os.listdir(events_dir):
    data = open(os.path.join(events_dir, name), "rb").read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      ev = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in ev.summary.value:
        if v.HasField("simple_value"):
          out.setdefault(v.tag, []).append((ev.step, v.simple_value))
  return out


@pytest.fixture(scope="module")
def trial_with_events(tmp_path_factory):
  """(trial folder, record) of a smoke study's first trial with a curve."""
  root = tmp_path_factory.mktemp("store")
  s = smoke_study()
  runner_lib.StudyRunner(s, root, log=lambda m: None).run()
  tdir = next(d for d in sorted((root / s.study_id).glob("t*"))
              if store.read_json(d / "record.json")["curve"])
  return tdir, store.read_json(tdir / "record.json")


def test_tensorboard_events_per_trial(trial_with_events):
  tdir, rec = trial_with_events
  scalars = _scalars(str(tdir / "events"))
  expected = [(r["step"], r["val/error"]) for r in rec["curve"]]
  assert [(st, round(v, 5)) for st, v in scalars["val/error"]] == \
      [(st, round(v, 5)) for st, v in expected]
  assert not (tdir / "checkpoint").exists()


def test_tensorboard_hparams_dashboard_data(trial_with_events):
  """Each trial's events carry the HParams plugin's summaries, read back with
  TensorBoard's own event reader and plugin parsers."""
  pytest.importorskip("tensorboard", reason="tensorboard (the [test] extra) not installed")
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  from tensorboard.plugins.hparams import metadata
  tdir, rec = trial_with_events
  acc = EventAccumulator(str(tdir / "events"))
  acc.Reload()
  content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
  exp = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
  start = metadata.parse_session_start_info_plugin_data(
      content[metadata.SESSION_START_INFO_TAG])
  metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
  metrics = {m.name.tag for m in exp.metric_infos}
  assert "val/error" in metrics and "train/loss" in metrics
  assert {h.name for h in exp.hparam_infos} >= {"learning_rate", "optimizer", "seed"}
  hp = start.hparams
  assert hp["learning_rate"].number_value == pytest.approx(rec["hparams"]["learning_rate"])
  assert hp["optimizer"].string_value == rec["optimizer"]
  assert hp["seed"].number_value == rec["seed"]
  # the dashboard's metric values are the run's scalars of those tags
  assert "val/error" in acc.Tags()["scalars"]
