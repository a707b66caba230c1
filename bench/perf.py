"""Benchmark: what a trial and a study cost against a bare fused training loop.

  python -m bench.perf --workload=mnist1d_mlp --batch_sizes=16,256 --num_trials=128,32

For each batch size, in one run (so the ratios share the machine's state):
  bare        the same model and optimizer written here without harness code:
              batches gathered on the device, every step in one lax.scan, no
              evaluation; the trials one after another in one process (compiled
              once, not counted)
  naive       one jitted step per Python call, batches indexed on the host and
              copied per step (what a first training script does)
  trial       one harness trial (bench.trial.run) in this process, compiled,
              with its evaluations every --eval_every steps; `trial_final_eval`
              the same with one evaluation at the end
  study_off   `python -m bench.run` of a Shallue study of --num_trials trials as a
              user runs it (a fresh process: imports, compilation, store and
              evaluations included), --pack=off
  study_auto  the same with --pack=auto, the decision probed in that run
              (study_auto_known: the decision already remembered); with --packs,
              study_packK: the same with --pack=K
Each is printed as trial-steps/s (steps of all trials / seconds; a trial that
diverges counts the steps it ran) and as a ratio to `bare`. With --conv, the
train step of a convolutional workload with XLA's native convolution against
the CPU path of workloads/models/conv.py, in harness trials.

With --optimizers=sgd,adam,lion,... (or 'all': every registered rule), instead:
the train step of each rule at its defaults against SGD's, in the harness's own
compiled program (bench/perf_optimizers.py; mode `step_<name>`). --optimizer_lanes=K
also times each in a pack of K copies (`step_<name>_packK`: per lane, against SGD's in
a pack of K); --first_step=S starts the timed steps at index S (periodic work branches
on it: kron fits every step to about step 500, every 34th from about 4000).

  python -m bench.perf --optimizers=all --batch_sizes=128 --train_steps=200 --repeats=5

A row per measurement (device, backend, commit, jax version, date) is appended
to benchmarks/perf_<backend>.json, and BENCHMARKS.md's generated table is
rewritten from every row there. This machine is shared and noisy: each timing
is a median of --repeats runs.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from absl import app, flags, logging

from bench import perf_optimizers

_WORKLOAD = flags.DEFINE_string("workload", "mnist1d_mlp", "Registered workload name or "
                                "'module:Class' (e.g. workloads.synthetic:Cifar10ResNet8).")
_WORKLOAD_ARGS = flags.DEFINE_string("workload_args", "", "Workload constructor arguments, "
                                     "e.g. 'model_dim=1024,num_layers=8'.")
_MFU = flags.DEFINE_bool("mfu", False, "Report model FLOPs utilisation of the harness trial "
                         "(Transformer LMs; needs a known peak for the device and dtype).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["16", "256"], "Batch sizes to measure.")
_NUM_TRIALS = flags.DEFINE_list("num_trials", ["16"],
                                "Trials of the study at each batch size (one value: all).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 600, "Steps per trial.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 100, "Harness evaluation cadence.")
_MODES = flags.DEFINE_list("modes", ["bare", "naive", "trial", "study_off", "study_auto"],
                           "What to measure (see the module docstring).")
_PACKS = flags.DEFINE_list("packs", [], "Also run the study with --pack=K for each K given "
                           "(mode study_packK).")
_NAIVE_TRIALS = flags.DEFINE_integer("naive_trials", 4, "Trials timed for the naive loop.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats per in-process measurement.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data for real-data workloads.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_CONV = flags.DEFINE_bool("conv", False, "Compare native and CPU-path convolutions instead.")
_OPTIMIZERS = flags.DEFINE_list("optimizers", [], "Measure instead the train step of each "
                                "optimizer named (bench.optimizers; 'all': every registered "
                                "one) against SGD's; see the module docstring.")
_OPT_LANES = flags.DEFINE_integer("optimizer_lanes", 0, "With --optimizers: also in a pack "
                                  "of this many lanes (module docstring).")
_FIRST_STEP = flags.DEFINE_integer("first_step", 0, "With --optimizers: the first timed "
                                   "step's index (module docstring).")
_OUT = flags.DEFINE_string("out", None, "JSON rows (default benchmarks/perf_<backend>.json).")
_MARKDOWN = flags.DEFINE_string("markdown", "BENCHMARKS.md", "Table to rewrite ('' = none).")
_NOTE = flags.DEFINE_string("note", "", "Free text stored with the rows (e.g. machine load).")
_MERGE = flags.DEFINE_string("merge", None, "Measure nothing: append the rows of this JSON file "
                             "(e.g. from scripts/gpu_bench.sh on a device machine) to "
                             "benchmarks/perf_<backend>.json and rewrite the table.")

MARK = "<!-- bench.perf table: generated from benchmarks/perf_*.json, do not edit below -->"
LR = 0.05  # the bare and naive loops' learning rate (scaled per trial, as a sweep would)


def _trial_lrs(n: int) -> list[float]:
  return [LR * (0.5 + (i % 8) / 8) for i in range(n)]


# ----- the baselines, written without harness code -----

def _workload_args() -> dict[str, Any]:
  from bench import settings
  return settings.parse_workload_args(_WORKLOAD_ARGS.value)


def _model_parts(name: str):
  import workloads
  w = workloads.get(name, data_dir=_DATA_DIR.value, dtype=_DTYPE.value, **_workload_args())
  if not w.in_memory:
    raise app.UsageError(f"{name} streams its data; bench.perf measures in-memory workloads")
  return w, w.arrays("train")


def bare(name: str, batch_size: int, steps: int, num_trials: int) -> dict[str, Any]:
  """Trials of a fused loop: init, every step in one scan (per-epoch
  permutations drawn up front), Nesterov with linear decay from optax."""
  import jax
  import jax.numpy as jnp
  import optax
  w, train = _model_parts(name)
  x = {k: jnp.asarray(v) for k, v in train.items()}
  n = len(train["targets"])
  spe = n // batch_size
  epochs = -(-steps // spe)

  @jax.jit
  def run(seed, lr):
    key = jax.random.key(seed)
    params, state = w.init(jax.random.fold_in(key, 0))
    tx = optax.sgd(optax.linear_schedule(lr, lr * 0.01, steps), momentum=0.9, nesterov=True)
    perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(
        jnp.arange(epochs))
    table = perms[:, :spe * batch_size].reshape(-1, batch_size)[:steps]

    def body(carry, idx):
      p, s, ms = carry
      batch = {k: jnp.take(v, idx, axis=0) for k, v in x.items()}
      (loss, ms), g = jax.value_and_grad(w.loss, has_aux=True)(p, ms, batch, key, True)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s, ms), loss
    _, losses = jax.lax.scan(body, (params, tx.init(params), state), table)
    return losses

  lrs = _trial_lrs(num_trials)
  jax.block_until_ready(run(0, lrs[0]))  # compile
  t0 = time.perf_counter()
  for i, lr in enumerate(lrs):
    jax.block_until_ready(run(i, lr))
  return {"seconds": time.perf_counter() - t0, "trial_steps": steps * num_trials}


def naive(name: str, batch_size: int, steps: int, num_trials: int) -> dict[str, Any]:
  """Trials of one jitted step per Python call on host-indexed batches."""
  import jax
  import numpy as np
  import optax
  w, train = _model_parts(name)
  n = len(train["targets"])

  def make(lr):
    return optax.sgd(optax.linear_schedule(lr, lr * 0.01, steps), momentum=0.9, nesterov=True)

  @jax.jit
  def step(p, s, ms, batch, lr):
    (loss, ms), g = jax.value_and_grad(w.loss, has_aux=True)(p, ms, batch, jax.random.key(0),
                                                             True)
    u, s = make(lr).update(g, s, p)
    return optax.apply_updates(p, u), s, ms, loss

  def trial(i, lr, num_steps):
    p, ms = w.init(jax.random.key(i))
    s = make(lr).init(p)
    rng = np.random.default_rng(i)
    perm, pos = rng.permutation(n), 0
    for _ in range(num_steps):
      if pos + batch_size > n:
        perm, pos = rng.permutation(n), 0
      idx = perm[pos:pos + batch_size]
      pos += batch_size
      p, s, ms, loss = step(p, s, ms, {k: v[idx] for k, v in train.items()}, lr)
    return loss

  jax.block_until_ready(trial(0, LR, 2))  # compile
  lrs = _trial_lrs(num_trials)
  t0 = time.perf_counter()
  for i, lr in enumerate(lrs):
    jax.block_until_ready(trial(i, lr, steps))
  return {"seconds": time.perf_counter() - t0, "trial_steps": steps * num_trials}


# ----- the harness -----

def _spec(name: str, batch_size: int, steps: int, eval_every: int, i: int = 0,
          workload_args: dict[str, Any] | None = None, **kw):
  from bench import trial
  args = ",".join(f"{k}={v!r}" for k, v in (workload_args or {}).items()) or None
  return trial.spec(
      name, "nesterov", {"learning_rate": _trial_lrs(i + 1)[-1], "momentum": 0.9,
                         "schedule": "linear_decay", "decay_factor": 0.01}, seed=i,
      batch_size=batch_size, train_steps=steps, eval_every=eval_every,
      data_dir=_DATA_DIR.value, dtype=_DTYPE.value, workload_args=args, **kw)


def harness_trial(name: str, batch_size: int, steps: int, eval_every: int,
                  max_steps_per_dispatch: int = 500, **workload_args: Any) -> dict[str, Any]:
  """Median wall time of one compiled harness trial (the first run compiles);
  `train_steps_per_sec`: its record's rate of the train dispatches alone."""
  from bench import trial
  times, rates = [], []
  for i in range(_REPEATS.value + 1):
    p = trial.prepare(_spec(name, batch_size, steps, eval_every, i,
                            max_steps_per_dispatch=max_steps_per_dispatch,
                            workload_args={**_workload_args(), **workload_args}))
    t0 = time.perf_counter()
    rec = trial.run(p, log=lambda s: None)
    times.append(time.perf_counter() - t0)
    rates.append(rec["steps_per_sec"])
    if rec["status"] == "failed":
      raise RuntimeError(rec["status_reason"])
  out = {"seconds": statistics.median(times[1:]), "trial_steps": steps, "all_seconds": times,
         "train_steps_per_sec": statistics.median(rates[1:])}
  if _MFU.value:
    out["mfu"] = mfu(p.workload, batch_size, steps / out["seconds"])
  return out


# bf16 dense matrix peak per device (FLOP/s), from the vendors' data sheets.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "TPU v4": 275e12,
             "TPU v5 lite": 197e12, "TPU v5p": 459e12}


def mfu(w: Any, batch_size: int, steps_per_sec: float) -> float | None:
  """Model FLOPs (6N + attention per token, workloads.models.transformer) per
  second over the device's bf16 peak; None where either is unknown."""
  import jax
  from workloads.models import transformer
  model = getattr(w, "model", None)
  if not isinstance(model, transformer.TransformerLM) or _DTYPE.value != "bfloat16":
    return None
  kind = jax.devices()[0].device_kind
  peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
  if peak is None:
    return None
  flops = transformer.flops_per_token(model) * batch_size * model.seq_len * steps_per_sec
  return flops / (peak * jax.device_count())


def study(name: str, batch_size: int, steps: int, eval_every: int, num_trials: int,
          pack: str, packing_cache: str) -> dict[str, Any]:
  """`python -m bench.run` of a Shallue study, timed as a whole process."""
  with tempfile.TemporaryDirectory() as out:
    cmd = [sys.executable, "-m", "bench.run",
           f"--config=protocols/experiments/batch_scaling.py:{name},cpu",
           f"--config.batch_sizes=({batch_size},)", f"--config.num_trials={num_trials}",
           f"--config.train_steps={steps}", f"--config.eval_every={eval_every}",
           f"--config.settings.dtype={_DTYPE.value}", f"--pack={pack}", f"--output_dir={out}"]
    if _DATA_DIR.value:
      cmd.append(f"--config.settings.data_dir={_DATA_DIR.value}")
    if _WORKLOAD_ARGS.value:
      cmd.append(f"--config.settings.workload_args={_WORKLOAD_ARGS.value}")
    env = {**os.environ, "OPTBENCH_PACKING_CACHE": packing_cache}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=_root(), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
      raise RuntimeError(f"bench.run failed: {proc.stderr.strip().splitlines()[-1:]}")
    trial_steps, packs = 0, set()
    for root, _, files in os.walk(out):
      if "record.json" in files:
        with open(os.path.join(root, "record.json")) as f:
          rec = json.load(f)
        trial_steps += rec["diverged_step"] or rec["train_steps"]
        packs.add(rec.get("pack_size", 1))
  decided = [l for l in proc.stdout.splitlines() if l.startswith("pack=auto")]
  return {"seconds": seconds, "trial_steps": trial_steps, "pack_sizes": sorted(packs),
          "decision": decided[0] if decided else ""}


def conv_step(name: str, batch_size: int, steps: int) -> dict[str, dict[str, Any]]:
  """Harness trials (one eval, at the end; dispatches of 5 steps) with each
  convolution; compared by the train dispatches' steps/s."""
  return {impl: harness_trial(name, batch_size, steps, steps, max_steps_per_dispatch=5,
                              conv=impl) for impl in ("native", "cpu")}


# ----- records -----

def _root() -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment() -> dict[str, Any]:
  import jax
  from bench import trial
  return {"device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
          "backend": jax.default_backend(), "commit": trial.code_version(),
          "jax": jax.__version__, "host": platform.node(), "cpu_count": os.cpu_count(),
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def write_markdown(path: str, rows: list[dict[str, Any]]) -> None:
  """BENCHMARKS.md: hand-written text above MARK, the rows' table below it."""
  head = ""
  if os.path.exists(path):
    with open(path) as f:
      head = f.read().split(MARK)[0]
  lines = [MARK, "", "| date | commit | device | workload | batch | mode | trial-steps/s | "
           "x bare | detail |", "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['date'][:10]} | {r['commit']} | {r['device']} ({r['backend']}) | "
                 f"{r['workload']} | {r['batch_size']} | {r['mode']} | "
                 f"{r['trial_steps_per_sec']:.1f} | "
                 f"{'' if r.get('vs_bare') is None else format(r['vs_bare'], '.2f')} | "
                 f"{r.get('detail', '')} |")
  with open(path, "w") as f:
    f.write(head.rstrip() + "\n\n" + "\n".join(lines) + "\n")


def _measure(what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
  print(f"  {what} ...", end="", flush=True)
  r = fn()
  r["trial_steps_per_sec"] = r["trial_steps"] / r["seconds"]
  print(f" {r['trial_steps_per_sec']:.1f} trial-steps/s ({r['seconds']:.1f} s)", flush=True)
  return r


def save(rows: list[dict[str, Any]], out: str | None) -> None:
  """Append rows to their backend's JSON file; rewrite BENCHMARKS.md's table."""
  bench_dir = os.path.join(_root(), "benchmarks")
  for backend in sorted({r["backend"] for r in rows}):
    path = out or os.path.join(bench_dir, f"perf_{backend}.json")
    old = []
    if os.path.exists(path):
      with open(path) as f:
        old = json.load(f)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(old + [r for r in rows if r["backend"] == backend], f, indent=1)
    print(f"appended {len(rows)} rows to {path}")
  if _MARKDOWN.value:
    every_row = []
    for name in sorted(os.listdir(bench_dir)):
      if name.startswith("perf_") and name.endswith(".json"):
        with open(os.path.join(bench_dir, name)) as f:
          every_row += json.load(f)
    write_markdown(os.path.join(_root(), _MARKDOWN.value), every_row)
    print(f"rewrote the table in {_MARKDOWN.value}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:  # libraries' INFO logs drown the table
    logging.set_verbosity(logging.WARNING)
  if _MERGE.value:
    with open(_MERGE.value) as f:
      return save(json.load(f), None)
  env = environment()
  sizes = [int(b) for b in _BATCH_SIZES.value]
  trials = [int(t) for t in _NUM_TRIALS.value]
  trials = trials * len(sizes) if len(trials) == 1 else trials
  if len(trials) != len(sizes):
    sys.exit("error: --num_trials needs one value or one per batch size")
  unknown = set(_MODES.value) - {"bare", "naive", "trial", "study_off", "study_auto"}
  if unknown:
    sys.exit(f"error: unknown modes: {', '.join(sorted(unknown))}")
  steps, every = _TRAIN_STEPS.value, _EVAL_EVERY.value
  rows = []
  print(f"bench.perf: {_WORKLOAD.value} on {env['device']} ({env['backend']}), commit "
        f"{env['commit']}, {steps} steps per trial", flush=True)

  def row(batch, mode, r, base, detail=""):
    rows.append({**env, "workload": _WORKLOAD.value, "batch_size": batch, "mode": mode,
                 "train_steps": steps, "eval_every": every, "dtype": _DTYPE.value,
                 "seconds": r["seconds"], "trial_steps": r["trial_steps"],
                 "trial_steps_per_sec": r["trial_steps_per_sec"],
                 "vs_bare": None if base is None else r["trial_steps_per_sec"] / base,
                 "detail": detail, "note": _NOTE.value})

  for batch, n in zip(sizes, trials):
    print(f"batch {batch}" + ("" if _OPTIMIZERS.value else f", {n} trials") + ":", flush=True)
    if _CONV.value:
      for impl, r in conv_step(_WORKLOAD.value, batch, steps).items():
        r["trial_steps_per_sec"] = r["train_steps_per_sec"]
        row(batch, f"conv_{impl}", r, None, f"train steps of a harness trial, {impl} conv")
      native, cpu = (rows[-2]["trial_steps_per_sec"], rows[-1]["trial_steps_per_sec"])
      rows[-1]["detail"] += f"; {cpu / native:.2f}x native"
      print(f"  train step: native {native:.2f} steps/s, cpu path {cpu:.2f} steps/s: "
            f"{cpu / native:.2f}x")
      continue
    if _OPTIMIZERS.value:
      for mode, r, detail, extra in perf_optimizers.measure(
          _WORKLOAD.value, batch, steps, _OPTIMIZERS.value, repeats=_REPEATS.value,
          lanes=_OPT_LANES.value, first_step=_FIRST_STEP.value, data_dir=_DATA_DIR.value,
          dtype=_DTYPE.value, workload_args=_WORKLOAD_ARGS.value or None):
        row(batch, mode, r, None, detail)
        rows[-1].update(extra)
      continue
    base = None
    if "bare" in _MODES.value:
      r = _measure("bare fused loop", lambda: bare(_WORKLOAD.value, batch, steps, n))
      base = r["trial_steps_per_sec"]
      row(batch, "bare", r, base, f"{n} trials")
    if "naive" in _MODES.value:
      k = min(n, _NAIVE_TRIALS.value)
      r = _measure("naive step loop", lambda: naive(_WORKLOAD.value, batch, steps, k))
      row(batch, "naive", r, base, f"{k} trials")
    if "trial" in _MODES.value:
      r = _measure("harness trial", lambda: harness_trial(_WORKLOAD.value, batch, steps, every))
      detail = f"eval every {every}"
      if r.get("mfu") is not None:
        detail += f"; MFU {100 * r['mfu']:.1f}% (bf16 peak)"
        print(f"  MFU {100 * r['mfu']:.1f}%")
      row(batch, "trial", r, base, detail)
      r = _measure("harness trial, final eval only",
                   lambda: harness_trial(_WORKLOAD.value, batch, steps, steps))
      row(batch, "trial_final_eval", r, base, "one eval")
    with tempfile.TemporaryDirectory() as cache:
      for mode, pack in (("study_off", "off"), ("study_auto", "auto"),
                         *((f"study_pack{k}", k) for k in _PACKS.value)):
        if mode not in _MODES.value and not mode.startswith("study_pack"):
          continue
        r = _measure(f"study, --pack={pack}", lambda: study(
            _WORKLOAD.value, batch, steps, every, n, pack, cache))
        row(batch, mode, r, base, f"{n} trials, packs {r['pack_sizes']}; {r['decision']}")
        if pack == "auto":  # the decision is remembered now: what later runs pay
          r = _measure("study, --pack=auto (decision known)", lambda: study(
              _WORKLOAD.value, batch, steps, every, n, pack, cache))
          row(batch, "study_auto_known", r, base, f"{n} trials, packs {r['pack_sizes']}")
    if base:
      print("  ratios to bare: " + ", ".join(f"{r['mode']} {r['vs_bare']:.2f}x"
                                             for r in rows if r["batch_size"] == batch
                                             and r["vs_bare"] is not None and r["mode"] != "bare"))
  save(rows, _OUT.value)


if __name__ == "__main__":
  app.run(main)
