"""Faults and bad input: a full disk, Ctrl-C, a damaged store and a mistyped
flag never cost a trial or print a traceback."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import analysis
from bench import checkpoint, recipe as recipe_lib, runner as runner_lib, status as status_lib
from bench import store, study as study_lib
from conftest import ROOT
from protocols.experiments import preset

SMOKE = "protocols/experiments/preset.py:shallue,mnist1d_mlp,,smoke"
QUIET = lambda s: None
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}


def smoke_study(num_trials=4):
  c = preset.get_config("shallue,mnist1d_mlp,,smoke")
  c.num_trials, c.train_steps, c.eval_every, c.rerun_best_seeds = num_trials, 20, 10, 0
  return recipe_lib.expand(c, preset)[0]


def records(root):
  out = {}
  for dirpath, _, files in os.walk(root):
    if "record.json" in files:
      out[os.path.relpath(dirpath, root)] = json.load(open(os.path.join(dirpath, "record.json")))
  return out


def curves(recs):
  return {k: [{m: v for m, v in row.items() if m != "wall_time"} for row in r["curve"]]
          for k, r in recs.items()}


def one_line(p):
  err = p.stderr.strip()
  return p.returncode != 0 and "Traceback" not in err and len(err.splitlines()) == 1


def bench_run(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=ROOT, env=ENV,
                        capture_output=True, text=True, timeout=timeout)


# ----- the environment fails: nothing becomes the trial's failure -----

def _disk_full_after(monkeypatch, n_writes):
  real = store.write_json_atomic
  calls = []

  def write(path, obj):
    if str(path).endswith("record.json"):
      calls.append(path)
      if len(calls) > n_writes:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    real(path, obj)
  monkeypatch.setattr(store, "write_json_atomic", write)


def test_disk_full_mid_study_records_no_failure_and_resumes_to_the_same_records(
    tmp_path, monkeypatch):
  s = smoke_study()
  runner_lib.StudyRunner(s, tmp_path / "ref", log=QUIET).run()
  with monkeypatch.context() as m:
    _disk_full_after(m, 2)
    with pytest.raises(OSError, match="No space left"):
      runner_lib.StudyRunner(s, tmp_path / "out", log=QUIET).run()
  partial = records(tmp_path / "out")
  assert len(partial) == 2 and all(r["status"] != "failed" for r in partial.values())
  runner_lib.StudyRunner(s, tmp_path / "out", log=QUIET).run()  # space is back
  assert curves(records(tmp_path / "out")) == curves(records(tmp_path / "ref"))


def test_a_failing_checkpoint_save_is_the_environment_not_the_trial(tmp_path, monkeypatch):
  """orbax/tensorstore report a full disk as a ValueError: still no failed record."""
  s = smoke_study(2)
  s = study_lib.Study(s.experiment, s.workload, s.protocol, s.scientific, s.study_seed,
                      s.settings.replace(checkpoint_every_sec=0.0, max_steps_per_dispatch=5))

  def broken(self, *a, **k):
    raise ValueError("RESOURCE_EXHAUSTED: Error writing local file: No space left on device")
  monkeypatch.setattr(checkpoint.ocp.StandardCheckpointer, "save", broken)
  with pytest.raises(checkpoint.StorageFailure) as e:
    runner_lib.StudyRunner(s, tmp_path, log=QUIET).run()
  assert e.value.errno == errno.ENOSPC and e.value.strerror == "No space left on device"
  assert str(e.value).endswith("/checkpoint/step_5: No space left on device (saving a checkpoint)")
  assert records(tmp_path) == {}


def test_cli_disk_full_is_one_line_and_a_rerun_completes(tmp_path):
  out = tmp_path / "store"
  inject = ("import errno, sys; from bench import recipe, store, run; real = store.write_json_atomic\n"
            "n = [0]\n"
            "def w(path, obj):\n"
            "  if str(path).endswith('record.json'):\n"
            "    n[0] += 1\n"
            "    if n[0] > 2: raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
            "  real(path, obj)\n"
            "store.write_json_atomic = w\n"
            "run.app.run(run.main, flags_parser=recipe.parse_flags)")
  args = [f"--config={SMOKE}", f"--output_dir={out}", "--config.num_trials=4",
          "--config.rerun_best_seeds=0", "--config.train_steps=20", "--config.eval_every=10"]
  p = subprocess.run([sys.executable, "-c", inject, *args], cwd=ROOT, env=ENV,
                     capture_output=True, text=True, timeout=300)
  assert one_line(p), p.stderr
  assert "No space left on device" in p.stderr and "record.json" in p.stderr
  assert len(records(out)) == 2
  p = bench_run(*args)
  assert p.returncode == 0, p.stderr
  recs = records(out)
  assert len(recs) == 4 and all(r["status"] != "failed" for r in recs.values())


ORBAX_ENOSPC = ("RESOURCE_EXHAUSTED: Error writing \"0.params.Dense_1.kernel/0.0\" in OCDBT "
                "database at local file \"{d}.orbax-checkpoint-tmp/ocdbt.process_0/\": Failed "
                "writing: \"{d}.orbax-checkpoint-tmp/ocdbt.process_0/d/f8ca\": Failed to write "
                "236279 bytes to file 8: No space left on device [os_error_code='28']")


def test_cli_checkpoint_disk_full_is_one_line_after_silenced_library_threads(tmp_path):
  """As orbax does on a full disk: its threads log the error and print
  tracebacks, during the save and after it, and the save raises a ValueError
  whose first line does not say "No space left on device". The run prints one
  line, the last, naming the OS's cause and the checkpoint; a rerun completes."""
  out = tmp_path / "store"
  inject = ("import sys, threading, time, traceback\n"
            "from absl import logging\n"
            "from analysis import interrupts\n"
            "interrupts.install()\n"
            "from bench import checkpoint, recipe, run\n"
            f"MSG = {ORBAX_ENOSPC!r}\n"
            "real, n = checkpoint.ocp.StandardCheckpointer.save, [0]\n"
            "def noise():\n"
            "  try:\n"
            "    raise RuntimeError('Event loop is closed')\n"
            "  except RuntimeError:\n"
            "    traceback.print_exc()\n"
            "def save(self, path, state, *a, **k):\n"
            "  n[0] += 1\n"
            "  if n[0] <= 3:\n"
            "    return real(self, path, state, *a, **k)\n"
            "  for _ in range(5):\n"
            "    logging.error('background save raised: %s', MSG.format(d=path))\n"
            "    threading.Thread(target=noise).start()\n"
            "  threading.Thread(target=lambda: (time.sleep(0.3), noise(), 1 / 0)).start()\n"
            "  raise ValueError(MSG.format(d=path))\n"
            "checkpoint.ocp.StandardCheckpointer.save = save\n"
            "run.app.run(run.main, flags_parser=recipe.parse_flags)")
  args = [f"--config={SMOKE}", f"--output_dir={out}", "--config.num_trials=3",
          "--config.rerun_best_seeds=0", "--config.train_steps=40", "--config.eval_every=10",
          "--config.settings.checkpoint_every_sec=0"]
  p = subprocess.run([sys.executable, "-c", inject, *args], cwd=ROOT, env=ENV,
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 1 and one_line(p), p.stderr
  assert re.fullmatch(r"error: \S+/t000\d/checkpoint/step_\d+: No space left on device \(saving "
                      r"a checkpoint\); the running trials were not recorded and resume when "
                      r"you run the same command again\n", p.stderr), p.stderr
  assert all(r["status"] != "failed" for r in records(out).values())
  assert not [d for d, _, _ in os.walk(out) if "orbax-checkpoint-tmp" in d]  # room given back
  p = bench_run(*args)
  assert p.returncode == 0, p.stderr
  assert len(records(out)) == 3 and all(r["status"] != "failed" for r in records(out).values())


@pytest.fixture
def tiny_disk(tmp_path):
  """A 100 KiB tmpfs (needs root and mount; skipped elsewhere); grow(size) remounts it."""
  d = tmp_path / "disk"
  d.mkdir()
  if os.geteuid() != 0 or not shutil.which("mount"):
    pytest.skip("mounting a small tmpfs needs root")
  p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(d)],
                     capture_output=True, text=True)
  if p.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs: {p.stderr.strip()}")
  grow = lambda size: subprocess.run(["mount", "-o", f"remount,size={size}", str(d)], check=True)
  try:
    yield d, grow
  finally:
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.parametrize("checkpoints", [True, False] if os.environ.get("OPTBENCH_SLOW_TESTS")
                         else [True])
def test_a_real_full_disk_is_one_line_and_nothing_is_lost(tiny_disk, checkpoints):
  """A full tmpfs under the store: with checkpoints the first save fills it
  (orbax/tensorstore), without them the events and records do."""
  disk, grow = tiny_disk
  out = disk / "store"
  args = [f"--config={SMOKE}", f"--output_dir={out}", "--config.rerun_best_seeds=0"]
  args += (["--config.settings.checkpoint_every_sec=0", "--config.num_trials=3"] if checkpoints
           else ["--config.num_trials=40"])
  p = bench_run(*args)
  assert p.returncode == 1 and one_line(p), p.stderr
  assert p.stderr.startswith(f"error: {out}/") and "No space left on device" in p.stderr
  assert ("(saving a checkpoint)" in p.stderr) == checkpoints, p.stderr
  before = records(out)
  assert all(r["status"] != "failed" for r in before.values())
  grow("50m")  # room again: the same command finishes, every finished trial kept
  p = bench_run(*args)
  assert p.returncode == 0, p.stderr
  after = records(out)
  assert len(after) == (3 if checkpoints else 40) and all(after[k] == r for k, r in before.items())
  assert all(r["status"] != "failed" for r in after.values())


def test_events_on_a_full_disk_raise_an_oserror_naming_the_events_file(tmp_path, monkeypatch):
  from bench import events, trial
  spec = trial.spec("mnist1d_mlp", "sgd", {})
  w = events.EventWriter(str(tmp_path / "events"), spec, {"learning_rate": 0.1})

  def full(*a):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(w._writer._py_recordio_writer, "write", full)
  with pytest.raises(OSError) as e:
    with w:
      w.write({"step": 10, "wall_time": 0.0, "val/error": 0.5})
  assert e.value.errno == errno.ENOSPC and "events.out.tfevents" in e.value.filename


# ----- a damaged store -----

def test_truncated_and_future_schema_records_are_rerun_and_kept_aside(tmp_path):
  s = smoke_study()
  runner_lib.StudyRunner(s, tmp_path, log=QUIET).run()
  ref = records(tmp_path)
  sdir = tmp_path / s.study_id
  t1, t2 = sdir / "t0001" / "record.json", sdir / "t0002" / "record.json"
  t1.write_text(t1.read_text()[:200])                       # truncated
  data = json.loads(t2.read_text())
  t2.write_text(json.dumps({**data, "schema_version": 99}))  # from a future harness
  st = status_lib.study_status(str(sdir))
  assert (st.ok + st.diverged + st.failed, st.unreadable, st.interrupted) == (2, 2, 0)
  assert len(analysis.load(str(tmp_path)).problems) == 2    # load agrees with status
  lines = []
  counts = runner_lib.StudyRunner(s, tmp_path, log=lines.append).run()
  assert counts["ran"] == 2 and counts["skipped"] == 2
  assert curves(records(tmp_path)) == curves(ref)
  for t in (t1, t2):
    kept = [p for p in os.listdir(t.parent) if p.startswith("record.json.bad-")]
    assert len(kept) == 1, os.listdir(t.parent)
  assert sum("invalid record" in l and "runs again" in l for l in lines) == 2


def test_status_counts_only_trial_folders(tmp_path):
  s = smoke_study(2)
  runner_lib.StudyRunner(s, tmp_path, log=QUIET).run()
  sdir = tmp_path / s.study_id
  (sdir / "tmp_notes").mkdir()                     # stray t* folder
  os.symlink(sdir / "t0000", sdir / "t0099")       # a link to a trial
  (sdir / "t0042.txt").write_text("x")
  st = status_lib.study_status(str(sdir))
  assert (st.finished, st.interrupted, st.unreadable, st.total) == (2, 0, 0, 2)


def test_stale_temp_files_are_cleaned_and_live_ones_kept(tmp_path):
  s = smoke_study(2)
  sdir = tmp_path / s.study_id
  sdir.mkdir(parents=True)
  host = store._tmp_name(sdir / "x.json").name.split(".")[-4]
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True).stdout.strip()
  stale = sdir / f".record.json.{host}.{dead}.abc.tmp"
  live = sdir / f".record.json.{host}.{os.getpid()}.abc.tmp"
  stale.write_text("{")
  live.write_text("{")
  runner_lib.StudyRunner(s, tmp_path, log=QUIET).run()
  assert not stale.exists() and live.exists()


def test_checkpoint_restore_path_stays_in_its_folder(tmp_path):
  ckpt = checkpoint.TrialCheckpointer(tmp_path / "ckpt")
  (tmp_path / "ckpt").mkdir()
  store.write_json_atomic(tmp_path / "ckpt" / checkpoint.STATE,
                          {"step": 5, "name": "../../elsewhere", "curve": []})
  with pytest.raises(checkpoint.StorageFailure, match="not a step_<N> folder"):
    ckpt.restore({})


def test_report_escapes_what_comes_from_the_store(tmp_path):
  from analysis import report
  s = smoke_study(2)
  runner_lib.StudyRunner(s, tmp_path, log=QUIET).run()
  sdir = tmp_path / s.study_id
  rec_path = sdir / "t0000" / "record.json"
  rec = json.loads(rec_path.read_text())
  rec["study_id"] = "x<script>alert(1)</script>|[link](http://evil)"
  rec_path.write_text(json.dumps(rec))
  path = report.write_report(str(tmp_path), str(tmp_path / "report"))
  text = open(path).read()
  assert "<script>" not in text and "[link](" not in text   # no HTML, no live link
  assert "&lt;script&gt;" in text and r"\[link\](http://evil)" in text


# ----- Ctrl-C and SIGTERM -----

@pytest.mark.parametrize("executor,sig", [("sequential", signal.SIGINT),
                                          ("sequential", signal.SIGTERM),
                                          ("processes", signal.SIGTERM)])
def test_interrupt_is_one_line_leaves_no_process_and_resumes(tmp_path, executor, sig):
  out = tmp_path / "store"
  args = [sys.executable, "-m", "bench.run", f"--config={SMOKE}", f"--output_dir={out}",
          "--config.num_trials=6", "--config.rerun_best_seeds=0", "--config.train_steps=300",
          "--config.eval_every=100", f"--executor={executor}", "--num_workers=2"]
  p = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, start_new_session=True)
  deadline = time.time() + 120
  while time.time() < deadline and not records(out):  # stop it mid-study
    time.sleep(0.2)
  t0 = time.time()
  p.send_signal(sig)
  _, err = p.communicate(timeout=60)
  assert time.time() - t0 < 15
  assert p.returncode == 128 + sig, err
  lines = [l for l in err.strip().splitlines() if l.strip()]
  assert "Traceback" not in err and lines and signal.Signals(sig).name in lines[-1]
  assert "run the same command again" in lines[-1]
  if executor == "sequential":
    assert len(lines) == 1 and "finished in this run (all recorded)" in lines[0]
  else:  # each worker's line, then the parent's
    assert "the 2 workers stopped" in lines[-1] and len(lines) == 3, lines
  ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
  assert str(out) not in ps  # no worker left running
  done = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert len(records(out)) == 6


# ----- malformed input: one line, before any compute, nothing written -----

MALFORMED = [  # (what, extra bench.run arguments, a word of the expected line)
    ("unknown recipe file", ["--config=protocols/experiments/nope.py"], "no recipe file"),
    ("unknown scale", [f"--config={SMOKE.replace('smoke', 'huge')}"], "unknown scale 'huge'"),
    ("unknown --config field", [f"--config={SMOKE}", "--config.num_trails=3"], "num_trails"),
    ("unknown trial setting", [f"--config={SMOKE}", "--config.settings.dtypo=x"], "dtypo"),
    ("bad value type", [f"--config={SMOKE}", "--config.num_trials=three"], "three"),
    ("unknown workload", [SMOKE.replace("mnist1d_mlp", "mnist9d").join(["--config=", ""])],
     "unknown workload 'mnist9d'"),
    ("unknown preset", [f"--config={SMOKE}", "--config.preset=nope"], "nope"),
    ("unknown optimizer", [f"--config={SMOKE}", "--config.optimizer=adamx"], "adamx"),
    ("batch size 0", [f"--config={SMOKE}", "--config.batch_size=0"], "batch_size"),
    ("batch_sizes=(0,)", ["--config=protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke",
                          "--config.batch_sizes=(0,)"], "batch_size must be a positive"),
    ("batch size > training examples", [f"--config={SMOKE}", "--config.batch_size=100000"],
     "exceeds the 3500 training examples"),
    ("eval cadence > budget", [f"--config={SMOKE}", "--config.eval_every=500"],
     "eval_every 500 exceeds train_steps 30"),
    ("negative num_trials", [f"--config={SMOKE}", "--config.num_trials=-5"], "num_trials"),
    ("bad dtype", [f"--config={SMOKE}", "--config.settings.dtype=float16"], "dtype"),
    ("bad --shard", [f"--config={SMOKE}", "--shard=2/2"], "--shard"),
    ("bad --pack", [f"--config={SMOKE}", "--pack=many"], "pack"),
    ("unknown flag", [f"--config={SMOKE}", "--num_wrokers=2"], "num_wrokers"),
    ("unwritable --output_dir", [f"--config={SMOKE}", "--output_dir=/proc/optbench"],
     "not writable"),
    # Flags that point the wrong way: the line names the flag that was meant.
    ("a study field as a setting", [f"--config={SMOKE}", "--config.settings.batch_size=64"],
     "did you mean --config.batch_size?"),
    ("a setting as a field (the old spelling)", [f"--config={SMOKE}",
                                                 "--config.checkpoint_every_sec=0"],
     "did you mean --config.settings.checkpoint_every_sec?"),
    ("batch_size where the recipe has batch_sizes",
     ["--config=protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke",
      "--config.batch_size=64"], "did you mean --config.batch_sizes?"),
    ("bench.train's flag", [f"--config={SMOKE}", "--data_dir=/data"],
     "unknown flag --data_dir; did you mean --config.settings.data_dir?"),
    ("bench.train: a hyperparameter as a setting",
     ["bench.train", "--config.learning_rate=0.1"], "did you mean --config.hparams.learning_rate?"),
    ("bench.train: a recipe's settings section",
     ["bench.train", "--config.settings.batch_size=64"], "did you mean --config.batch_size?"),
    ("bench.train: a flag as a field", ["bench.train", "--config.data_dir=/data"],
     "did you mean --data_dir?"),
]


@pytest.fixture(scope="module")
def malformed_runs(tmp_path_factory):
  """Every malformed case's bench.run, started together (each is mostly
  imports; one at a time they cost a minute), as (CompletedProcess, store)."""
  def start(what, args):
    out = tmp_path_factory.mktemp("malformed") / "store"
    given_out = [a for a in args if a.startswith("--output_dir")]
    module, args = (args[0], args[1:]) if args[0] == "bench.train" else ("bench.run", args)
    cmd = [sys.executable, "-m", module, *args, *([] if given_out else
                                                  [f"--output_dir={out}"])]
    return cmd, out, subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
  runs, pending = {}, list(MALFORMED)
  while pending:  # 6 at a time: memory
    batch, pending = pending[:6], pending[6:]
    started = [(what, *start(what, args)) for what, args, _ in batch]
    for what, cmd, out, proc in started:
      stdout, stderr = proc.communicate(timeout=300)
      runs[what] = (subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), out)
  return runs


@pytest.mark.parametrize("what,args,word", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_one_line_and_writes_nothing(malformed_runs, what, args, word):
  p, out = malformed_runs[what]
  assert one_line(p), f"{what}: {p.stderr}"
  assert p.stderr.startswith("error:") and word in p.stderr, p.stderr
  assert not out.exists()


def test_a_store_holds_one_experiment(tmp_path):
  out = tmp_path / "store"
  p = bench_run("--config=protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke",
                f"--output_dir={out}", "--dry_run")
  assert p.returncode == 0
  store.write_json_atomic(out / "experiment.json", {"experiment": "optimizer_ranking"})
  before = sorted(os.listdir(out))
  p = bench_run("--config=protocols/experiments/batch_scaling.py:mnist1d_mlp,smoke",
                f"--output_dir={out}")
  assert one_line(p) and "holds experiment 'optimizer_ranking'" in p.stderr
  assert sorted(os.listdir(out)) == before
