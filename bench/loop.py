"""The one train loop: trials from fresh parameters to their eval curves.

One loop drives a solo trial or a pack of K trials (lanes) through one
compiled program (bench/program.py). Many steps run per dispatch (lax.scan);
each dispatch ends at an eval step, at `max_steps_per_dispatch`, or at the
end, and the host fetches its losses (and, at eval steps, every split's
metric sums) in one transfer. Randomness is derived from the global step
(fold_in), so a trial is a pure function of its seed. A lane that diverges is
recorded at that dispatch and frozen (its updates masked) while the others go
on; a pack whose lanes have all ended stops.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from bench import checkpoint, parallel, program as program_lib
from bench import data as data_lib
from bench.settings import TrialSettings

# Host memory for the streamed batches of one dispatch (and as much for the next,
# read while the device runs): caps steps per dispatch, e.g. to 6 for ImageNet at
# batch 1024. In-memory data needs no cap.
STREAM_DISPATCH_BYTES = 1 << 30


@dataclasses.dataclass
class Lane:
  """One trial's inputs to the loop."""
  seed: int
  values: Mapping[str, Any]                       # hyperparameter values (bench.optimizers)
  checkpoint_dir: str | None = None
  log: Callable[[str], None] = print
  on_eval: Callable[[Mapping[str, float]], None] = lambda row: None


@dataclasses.dataclass
class LoopResult:
  status: str                     # ok | diverged
  status_reason: str
  curve: list[dict[str, float]]
  diverged_step: int | None
  steps_per_sec: float
  train_time_sec: float


def eval_steps(cfg: TrialSettings) -> list[int]:
  steps = list(range(cfg.eval_every, cfg.train_steps + 1, cfg.eval_every))
  if not steps or steps[-1] != cfg.train_steps:
    steps.append(cfg.train_steps)
  return steps


def _boundaries(cfg: TrialSettings, per_dispatch: int) -> list[int]:
  """Steps at which a dispatch ends: every eval step, and often enough between."""
  ends, prev = [], 0
  for e in eval_steps(cfg):
    while e - prev > per_dispatch:
      prev += per_dispatch
      ends.append(prev)
    ends.append(e)
    prev = e
  return ends


def restored_step(checkpoint_dir: str | None) -> int:
  """The step a trial's checkpoint would resume from (0: none)."""
  return checkpoint.saved_step(checkpoint_dir) if checkpoint_dir else 0


def run_lanes(prog: program_lib.Program, lanes: Sequence[Lane], cfg: TrialSettings,
              on_end: Callable[[int, LoopResult], None] = lambda i, r: None
              ) -> list[LoopResult]:
  """Train every lane of `prog` (one lane for a solo program) to its end, with
  the resolved settings `cfg` (bench.settings: batch size, budget, cadence,
  steps per dispatch, divergence factor, checkpoint cadence).

  Lanes resumed from checkpoints must all be at the same step (the study
  groups them so). `on_end(i, result)` is called as each lane ends, so a
  diverged lane's record can be written before the rest of its pack ends."""
  k = len(lanes)
  if (prog.lanes or 1) != k:
    raise ValueError(f"a program of {prog.lanes} lanes was given {k}")
  packed = prog.lanes > 0
  seeds = np.array([l.seed for l in lanes], np.int32)
  values = {n: np.stack([np.asarray(l.values[n]) for l in lanes]) for n in lanes[0].values}
  if not packed:
    seeds, values = seeds[0], {n: v[0] for n, v in values.items()}
  carry, keys = prog.init(seeds, values)

  ckpts = [checkpoint.TrialCheckpointer(l.checkpoint_dir) if l.checkpoint_dir else None
           for l in lanes]
  step = 0
  initial = [None] * k
  curves: list[list[dict[str, float]]] = [[] for _ in range(k)]
  t_start = time.perf_counter()
  restored = [c.restore(prog.lane_like()) if c and c.saved_step() else None for c in ckpts]
  if any(r is not None for r in restored):
    steps = {r[1]["step"] if r is not None else 0 for r in restored}
    if len(steps) != 1:
      raise ValueError(f"lanes resume from different steps {sorted(steps)}")
    step = steps.pop()
    states = [r[0] for r in restored]
    carry = jax.device_put(states[0] if not packed else
                           jax.tree.map(lambda *xs: np.stack(xs), *states), prog.state_sharding)
    for i, (_, meta) in enumerate(restored):
      initial[i], curves[i] = meta["initial_loss"], meta["curve"]
      lanes[i].log(f"resumed from the checkpoint at step {step}")
    t_start -= restored[0][1]["elapsed"]

  per_dispatch = cfg.max_steps_per_dispatch
  host_chunk: Callable[[int, int], Any] | None = None
  if not prog.workload.in_memory:
    streams = [prog.workload.stream("train", cfg.batch_size, l.seed, start_step=step)
               for l in lanes]
    firsts = [next(s) for s in streams]
    streams = [itertools.chain([f], s) for f, s in zip(firsts, streams)]
    batch_bytes = k * sum(np.asarray(v).nbytes for v in firsts[0].values())
    per_dispatch = max(1, min(per_dispatch, STREAM_DISPATCH_BYTES // batch_bytes))

    def read_chunk(start, end):
      per_lane = [data_lib.stack_stream(s, end - start) for s in streams]
      stacked = (per_lane[0] if not packed else
                 {n: np.stack([b[n] for b in per_lane]) for n in per_lane[0]})
      return parallel.put(stacked, prog.stream_sharding)
    host_chunk = read_chunk

  eval_at = set(eval_steps(cfg))
  ends = [e for e in _boundaries(cfg, per_dispatch) if e > step]
  active = np.ones(k, bool)
  results: list[LoopResult | None] = [None] * k
  train_time, timed_steps, first_dispatch = 0.0, 0, True
  last_save = time.perf_counter()

  def finish(i, status, reason, diverged_step):
    elapsed = time.perf_counter() - t_start
    sps = timed_steps / train_time if train_time > 0 else float("nan")
    if math.isnan(sps) and step:
      sps = step / max(elapsed, 1e-9)
    results[i] = LoopResult(status, reason, curves[i], diverged_step, sps, elapsed)
    if ckpts[i]:
      ckpts[i].clear()
    on_end(i, results[i])

  batches = host_chunk(step, ends[0]) if host_chunk and ends else None
  for n, end in enumerate(ends):
    t0 = time.perf_counter()
    carry, losses = prog.chunk(carry, keys, step, end, active, batches)
    sums = prog.evaluate(carry) if end in eval_at else None
    if host_chunk:  # read the next chunk while the device computes this one
      batches = host_chunk(end, ends[n + 1]) if n + 1 < len(ends) else None
    losses, sums = jax.device_get((losses, sums))
    losses = np.asarray(losses, np.float64).reshape(k, -1)
    dt = time.perf_counter() - t0
    if not first_dispatch:
      train_time += dt
      timed_steps += end - step
    first_dispatch = False
    step = end
    for i in np.flatnonzero(active):
      if initial[i] is None:
        initial[i] = float(losses[i, 0])
      bad = _divergence(losses[i], initial[i], cfg.divergence_factor)
      if bad:
        active[i] = False
        lanes[i].log(f"step {step}/{cfg.train_steps}  diverged: {bad}")
        finish(i, "diverged", f"{bad} by step {step}", step)
      elif sums is not None:
        row = {"step": step, "wall_time": time.perf_counter() - t_start,
               "train/batch_loss": float(losses[i, -1])}
        row.update(program_lib.metrics(sums, i if packed else None))
        curves[i].append(row)
        lanes[i].on_eval(row)
        lanes[i].log(_progress_line(row, cfg, timed_steps, train_time))
    if not active.any():
      break
    if step < cfg.train_steps and any(ckpts) and \
        time.perf_counter() - last_save >= cfg.checkpoint_every_sec:
      for i in np.flatnonzero(active):
        if ckpts[i]:
          state = carry if not packed else jax.tree.map(lambda x, i=i: x[i], carry)
          ckpts[i].save(step, state, {"initial_loss": initial[i], "curve": curves[i],
                                      "elapsed": time.perf_counter() - t_start})
      last_save = time.perf_counter()
  for i in np.flatnonzero(active):
    finish(i, "ok", "", None)
  return results


def _divergence(losses: np.ndarray, initial: float, factor: float) -> str:
  if not np.all(np.isfinite(losses)):
    return "non-finite training loss"
  if factor and np.isfinite(initial) and losses.max() > factor * max(abs(initial), 1e-8):
    return f"training loss {losses.max():.3g} > {factor:g} x initial {initial:.3g}"
  return ""


def _progress_line(row: Mapping[str, float], cfg: TrialSettings, timed_steps: int,
                   train_time: float) -> str:
  metrics = "  ".join(f"{k} {v:.4g}" for k, v in row.items()
                      if "/" in k and not k.startswith("train/batch"))
  if train_time > 0:
    rate = timed_steps / train_time
    speed = f"{rate:.1f} steps/s  ETA {(cfg.train_steps - row['step']) / rate:.0f}s"
  else:
    speed = "(compiled)"
  return (f"step {row['step']}/{cfg.train_steps}  loss {row['train/batch_loss']:.4g}  "
          f"{metrics}  {speed}")
