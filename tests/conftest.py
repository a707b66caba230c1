import json
import os
import signal
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def kill_after_checkpoint(procs, state_path, min_step: int, timeout: float) -> None:
  """SIGKILL each process's whole session once the trial's checkpoint state.json
  names step >= min_step; fails if any process ended first (nothing to resume)."""
  deadline = time.time() + timeout
  while time.time() < deadline and all(p.poll() is None for p in procs):
    if state_path.exists() and json.loads(state_path.read_text())["step"] >= min_step:
      break
    time.sleep(0.05)
  assert all(p.poll() is None for p in procs), "the trial ended before it could be killed"
  for p in procs:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
