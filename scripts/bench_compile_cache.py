"""Benchmark: time per trial of a study with XLA's compilation cache off and on.

  python -m scripts.bench_compile_cache [--workload=mnist1d_mlp] [--trials=6] [--steps=100]

Each setting runs in its own process (the cache is per-process configuration):
the same trials (a learning-rate sweep, as in a study) one after another; the
first trial of each compiles (and fills the fresh cache), the rest are what a
study sees. Prints per-trial seconds and the ratio of medians over trials 2..n,
and writes them to benchmarks/compile_cache_<backend>.json.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_WORKLOAD = flags.DEFINE_string("workload", "mnist1d_mlp", "Workload of the trials.")
_TRIALS = flags.DEFINE_integer("trials", 6, "Trials per setting (the first one compiles).")
_STEPS = flags.DEFINE_integer("steps", 100, "Train steps per trial.")
_OUT = flags.DEFINE_string("out", None, "JSON result (default benchmarks/compile_cache_<backend>.json).")
_CHILD = flags.DEFINE_bool("child", False, "Internal: run the trials here and print their times.")


def _child() -> None:
  from bench import trial
  for i in range(_TRIALS.value):
    spec = trial.spec(_WORKLOAD.value, "nesterov", {"learning_rate": 0.01 * (i + 1)},
                      batch_size=64, train_steps=_STEPS.value, eval_every=_STEPS.value,
                      eval_test=False)
    t0 = time.perf_counter()
    rec = trial.run(trial.prepare(spec), log=lambda s: None)
    print(json.dumps({"seconds": time.perf_counter() - t0, "status": rec["status"],
                      "backend": rec["backend"]}), flush=True)


def _run(cache: str) -> list[dict]:
  env = {**os.environ, "OPTBENCH_COMPILATION_CACHE": cache}
  out = subprocess.run([sys.executable, "-m", "scripts.bench_compile_cache", "--child",
                        f"--workload={_WORKLOAD.value}", f"--trials={_TRIALS.value}",
                        f"--steps={_STEPS.value}"], env=env, capture_output=True, text=True,
                       check=True)
  return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main(argv):
  del argv
  if _CHILD.value:
    return _child()
  with tempfile.TemporaryDirectory() as cache:
    off, on = _run("off"), _run(cache)
  median = lambda rows: statistics.median(r["seconds"] for r in rows[1:])
  for name, rows in (("cache off", off), ("cache on ", on)):
    print(f"{name}: " + " ".join(f"{r['seconds']:.2f}" for r in rows) + " s per trial")
  ratio = median(off) / median(on)
  print(f"median of trials 2..{_TRIALS.value}: {median(off):.2f} s off, {median(on):.2f} s on "
        f"-> {ratio:.1f}x faster with the cache ({on[0]['backend']}, {platform.node()})")
  out = _OUT.value or f"benchmarks/compile_cache_{on[0]['backend']}.json"
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out, "w") as f:
    json.dump({"workload": _WORKLOAD.value, "steps": _STEPS.value, "trials": _TRIALS.value,
               "seconds_off": [r["seconds"] for r in off], "seconds_on": [r["seconds"] for r in on],
               "median_off": median(off), "median_on": median(on), "ratio": ratio,
               "backend": on[0]["backend"], "cpu_count": os.cpu_count(),
               "machine": platform.machine()}, f, indent=1)
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
