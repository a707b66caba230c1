"""Ctrl-C and SIGTERM at any moment stop every entry point in one line.

The signal test starts each entry point (bench.run with checkpoints on,
bench.train, the demo, analysis.report, a paper figure) and sends SIGINT or
SIGTERM at a random moment: during imports, compilation, XLA's callbacks, a
dispatch, an evaluation, a checkpoint or a record write. Each try must exit
with 128 + the signal's number within a few seconds, print exactly one line
on stderr naming the signal (no traceback, nothing ignored), and leave every
file of the store whole. A signal that lands in the interpreter's own
teardown, after the program's last line, kills the process silently by the
signal's default action (status -N; a shell shows 128 + N): also clean.
OPTBENCH_SIGNAL_TRIES=N runs N tries per entry point
(default 2; OPTBENCH_SLOW_TESTS=1 makes it 12).
"""
import concurrent.futures
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from analysis import interrupts
from bench import recipe as recipe_lib, runner as runner_lib, store
from conftest import ROOT
from protocols.experiments import batch_scaling

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
SMOKE = "protocols/experiments/preset.py:shallue,mnist1d_mlp,,smoke"
TRIES = int(os.environ.get("OPTBENCH_SIGNAL_TRIES",
                           12 if os.environ.get("OPTBENCH_SLOW_TESTS") else 2))
# Before Python runs the first line of the project (interpreter start-up, ~0.03 s
# here) Python's own handling applies; the tries start after it.
EARLIEST = 0.25
STOP_WITHIN = interrupts.GRACE_SEC + 4.0  # seconds from the signal to the exit, on a busy CI


def entry_points(tmp, results):
  """name -> (latest moment to signal, function of the try number -> argv)."""
  py = [sys.executable, "-m"]
  return {
      "bench.run": (8.0, lambda i: py + [
          "bench.run", f"--config={SMOKE}", f"--output_dir={tmp / 'run'}",
          "--config.num_trials=400", "--config.train_steps=300", "--config.eval_every=100",
          "--config.rerun_best_seeds=0", "--config.settings.checkpoint_every_sec=0",
          "--config.settings.max_steps_per_dispatch=50"]),
      "bench.train": (8.0, lambda i: py + [
          "bench.train", "--workload=mnist1d_mlp", "--config.train_steps=20000",
          "--config.eval_every=200", "--config.checkpoint_every_sec=0.5",
          f"--output_dir={tmp / f'train{i}'}"]),
      "scripts.demo": (9.0, lambda i: py + [
          "scripts.demo", f"--output_dir={tmp / 'demo'}", "--num_trials=400",
          "--batch_sizes=64", "--train_steps=1000"]),
      "analysis.report": (3.0, lambda i: py + [
          "analysis.report", f"--results_dir={results}", f"--out={tmp / f'report{i}'}"]),
      "paper_figures.shallue_fig1": (1.8, lambda i: py + [
          "paper_figures.shallue_fig1", f"--results_dir={results}",
          f"--out={tmp / f'fig{i}' / 'fig1.png'}"]),
  }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """A small batch-scaling store for the analysis entry points."""
  root = tmp_path_factory.mktemp("signal_results")
  config = batch_scaling.get_config("mnist1d_mlp,smoke")
  config.num_trials = 2
  for s in recipe_lib.expand(config, batch_scaling):
    runner_lib.StudyRunner(s, root, log=lambda m: None).run()
  return root


def whole_files(root) -> list[str]:
  """Problems with the files under root: a JSON file of the store or a
  checkpoint that does not parse, a record that is not valid, a PNG or
  report that was cut short."""
  bad = []
  for dirpath, _, files in os.walk(root):
    for name in files:
      path = os.path.join(dirpath, name)
      if name.endswith(".tmp") or ".orbax-checkpoint-tmp" in path:
        continue  # a writer's own temp (removed once its writer is gone), never read
      if name.endswith(".json"):
        try:
          json.load(open(path))
        except ValueError:
          bad.append(f"{path}: not JSON")
      if name == "record.json" and store.read_record(dirpath)[1] is not None:
        bad.append(f"{path}: {store.read_record(dirpath)[1]}")
      if name.endswith(".png") and not open(path, "rb").read().endswith(b"IEND\xaeB`\x82"):
        bad.append(f"{path}: PNG cut short")
  return bad


def already_exiting(pid) -> bool:
  """Whether the process is in its exit (Linux: state Z/X, or PF_EXITING set),
  where the kernel discards any signal: its program had ended before."""
  try:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return False
  return fields[0] in ("Z", "X") or bool(int(fields[6]) & 0x4)


def one_try(argv, moment, sig):
  """Start argv, signal it `moment` s later; (outcome, seconds to stop, stderr)."""
  p = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, start_new_session=True)
  time.sleep(moment)
  if p.poll() is not None:
    return "finished first", 0.0, p.communicate()[1]
  t0 = time.monotonic()
  p.send_signal(sig)
  exiting = already_exiting(p.pid)
  try:
    _, err = p.communicate(timeout=60)
  except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    return "never stopped", 60.0, p.communicate()[1]
  took = time.monotonic() - t0
  if p.returncode == 0 and exiting:
    return "finished first", took, err  # in its exit system call: the kernel drops signals
  lines = [l for l in err.splitlines() if l.strip()]
  clean = (p.returncode == 128 + sig and len(lines) == 1
           and signal.Signals(sig).name in lines[0] and "Traceback" not in err
           and "Exception ignored" not in err)
  # In the interpreter's own teardown, after the program's last line (and in its
  # start-up), Python has restored the default action: killed by the signal,
  # silently, which a shell reports as 128 + N too.
  if clean and took <= STOP_WITHIN:
    return "clean", took, err
  if p.returncode == -sig and not err.strip() and took <= STOP_WITHIN:
    return "clean (in teardown)", took, err
  return f"exit {p.returncode} after {took:.1f}s", took, err


def test_a_signal_at_a_random_moment_stops_every_entry_point_in_one_line(tmp_path, results):
  rng = random.Random(os.environ.get("OPTBENCH_SIGNAL_SEED", "0"))
  points = entry_points(tmp_path, results)
  plan = []  # (entry point, try, signal, moment), entry points interleaved
  for i in range(TRIES):
    for k, (name, (latest, _)) in enumerate(points.items()):
      plan.append((name, i, (signal.SIGINT, signal.SIGTERM)[(i + k) % 2],
                   rng.uniform(EARLIEST, latest)))

  def run(item):
    name, i, sig, moment = item
    return item, one_try(points[name][1](i), moment, sig)

  with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two at a time: half the wait
    done = list(pool.map(run, plan))
  failures, took = [], []
  for (name, _, sig, moment), (outcome, seconds, err) in done:
    print(f"{name:28s} {signal.Signals(sig).name:7s} at {moment:5.2f}s: {outcome}"
          + (f" in {seconds:.2f}s" if outcome.startswith("clean") else ""))
    if outcome.startswith("clean"):
      took.append(seconds)
    elif outcome != "finished first":
      failures.append(f"{name} {signal.Signals(sig).name} at {moment:.2f}s: {outcome}\n"
                      + textwrap.indent(err if len(err) < 6000 else
                                        err[:4000] + "\n[...]\n" + err[-1500:], "  "))
  print(f"{len(took)}/{len(done)} clean (the rest finished before their moment); stopped "
        f"within {max(took, default=0):.2f}s, median {sorted(took)[len(took) // 2] if took else 0:.2f}s")
  assert not failures, "\n".join(failures)
  assert len(took) >= 0.8 * len(done), done  # the moments fall while the programs run
  assert not whole_files(tmp_path) and not whole_files(results)


# ----- the mechanism, each case made to happen for sure -----

def run_python(code, timeout=60):
  """Run `code` as a process that installed the handlers as an entry point does."""
  prog = "from analysis import interrupts\ninterrupts.install()\n" + textwrap.dedent(code)
  t0 = time.monotonic()
  p = subprocess.run([sys.executable, "-c", prog], cwd=ROOT, env=ENV, capture_output=True,
                     text=True, timeout=timeout)
  return p, time.monotonic() - t0


def test_a_signal_raised_inside_a_callback_is_not_swallowed():
  """Python ignores an exception raised in a gc callback (as it did in XLA's
  gc callback): the signal is raised again in the main thread."""
  p, _ = run_python("""
      import gc, os, signal, time
      def callback(phase, info):
        if phase == "start" and not hasattr(callback, "sent"):
          callback.sent = True
          os.kill(os.getpid(), signal.SIGINT)
          time.sleep(0.05)  # the handler runs here, inside the callback
      gc.callbacks.append(callback)
      gc.collect()
      for _ in range(300):
        time.sleep(0.01)
      print("finished: the signal was swallowed")
  """)
  assert p.returncode == 130, (p.returncode, p.stdout, p.stderr)
  assert "finished" not in p.stdout and p.stderr.count("\n") == 1 and "SIGINT" in p.stderr


def test_a_signal_during_a_long_c_call_ends_the_process_after_the_grace_time():
  """The main thread is inside C code that releases the GIL (as XLA's compiler
  and executor do) and does not return for seconds: the watchdog ends it."""
  p, seconds = run_python("""
      import os, signal, threading
      interrupts.on_stop(lambda e: f"{e.name}: stopped by the watchdog")
      threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
      os.system("exec sleep 8 </dev/null >/dev/null 2>&1")  # C: waits for its child, GIL released
      print("the signal waited for the C call")
  """)
  assert p.returncode == 143 and p.stderr == "SIGTERM: stopped by the watchdog\n", p
  assert not p.stdout and seconds < interrupts.GRACE_SEC + 4


def test_a_shielded_section_finishes_and_the_signal_follows():
  p, _ = run_python("""
      import os, signal, time
      with interrupts.shielded():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        print("section done", flush=True)
      print("after the section")
  """)
  assert p.returncode == 130 and p.stdout == "section done\n", (p.stdout, p.stderr)


def test_an_uncaught_error_of_the_environment_is_one_line_after_silenced_threads():
  """A background thread's traceback printed after the failure is dropped;
  the error line is the last line and names the OS's words and the path."""
  p, _ = run_python("""
      import errno, threading, time
      def noisy():
        time.sleep(0.3)
        raise RuntimeError("Event loop is closed")
      threading.Thread(target=noisy).start()
      raise OSError(errno.ENOSPC, "No space left on device", "/store/t0001/record.json")
  """)
  assert p.returncode == 1
  assert p.stderr == "error: /store/t0001/record.json: No space left on device\n", p.stderr


@pytest.mark.parametrize("message,expected", [
    ('RESOURCE_EXHAUSTED: Error writing "0.params.kernel/0.0" in OCDBT database at local file '
     '"/s/t0/checkpoint/step_15.orbax-checkpoint-tmp/ocdbt.process_0/": Failed writing: '
     '"/s/t0/checkpoint/step_15.orbax-checkpoint-tmp/ocdbt.process_0/d/f8ca": Failed to write '
     "236279 bytes to file 8: No space left on device [os_error_code='28']",
     (28, "No space left on device",
      "/s/t0/checkpoint/step_15.orbax-checkpoint-tmp/ocdbt.process_0/d/f8ca")),
    ('PERMISSION_DENIED: Error opening file "/s/t0/x": Permission denied', (13, "Permission denied",
                                                                          "/s/t0/x")),
    ("Error writing: Read-only file system", (30, "Read-only file system", None)),
    ("shape mismatch", (None, None, None)),
])
def test_the_os_cause_is_found_in_any_librarys_message(message, expected):
  assert interrupts.os_cause(ValueError(message)) == expected


def test_an_error_a_library_makes_of_the_signal_is_the_signal():
  """A C extension's import cut by the signal raises ImportError('initialization
  failed') from it: still the signal's one line and status."""
  p, _ = run_python("""
      import os, signal
      try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10 ** 6):
          pass
      except KeyboardInterrupt as e:
        raise ImportError("initialization failed") from e
  """)
  assert p.returncode == 143 and p.stderr.count("\n") == 1 and "SIGTERM" in p.stderr, p.stderr


def test_a_signal_during_an_import_stops_at_once(tmp_path):
  (tmp_path / "slow_module.py").write_text(
      "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n")
  p, seconds = run_python(f"""
      import sys
      sys.path.insert(0, {str(tmp_path)!r})
      import slow_module
      print("imported")
  """)
  assert p.returncode == 130 and not p.stdout and p.stderr.count("\n") == 1, p
  assert seconds < 4
