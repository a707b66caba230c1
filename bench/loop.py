"""The one train loop: a trial from fresh parameters to its eval curve.

Many steps run per dispatch (lax.scan); each dispatch ends at an eval step,
at `max_steps_per_dispatch`, or at the end. Randomness is derived from the
global step (fold_in), so a trial is a pure function of its seed. Batches are
split over every device (bench/parallel.py); the result does not depend on how
many there are, up to float reduction order.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench import checkpoint, parallel
from bench import data as data_lib
from workloads.base import Workload, pad_batch

SPLIT_PREFIX = {"train": "train", "validation": "val", "test": "test"}
# Host memory for the streamed batches of one dispatch (and as much for the next,
# read while the device runs): caps steps per dispatch, e.g. to 6 for ImageNet at
# batch 1024. In-memory data needs no cap.
STREAM_DISPATCH_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  batch_size: int
  train_steps: int
  eval_every: int
  seed: int = 0
  max_steps_per_dispatch: int = 500
  divergence_factor: float = 100.0  # diverged if loss > factor * initial loss
  eval_test: bool = True
  # Mid-trial checkpoints: a save every this many seconds of wall time, so trials
  # shorter than that never write one; resumed on restart.
  checkpoint_dir: str | None = None
  checkpoint_every_sec: float = 600.0


@dataclasses.dataclass
class LoopResult:
  status: str                     # ok | diverged
  status_reason: str
  curve: list[dict[str, float]]
  diverged_step: int | None
  steps_per_sec: float
  train_time_sec: float
  final_params: Any = None


def _eval_steps(cfg: LoopConfig) -> list[int]:
  steps = list(range(cfg.eval_every, cfg.train_steps + 1, cfg.eval_every))
  if not steps or steps[-1] != cfg.train_steps:
    steps.append(cfg.train_steps)
  return steps


def _boundaries(cfg: LoopConfig, per_dispatch: int) -> list[int]:
  """Steps at which a dispatch ends: every eval step, and often enough between."""
  ends, prev = [], 0
  for e in _eval_steps(cfg):
    while e - prev > per_dispatch:
      prev += per_dispatch
      ends.append(prev)
    ends.append(e)
    prev = e
  return ends


class Evaluator:
  """Fused evaluation of every split held on the device (one scan per split)."""

  def __init__(self, workload: Workload, splits: Mapping[str, Mapping[str, np.ndarray]],
               mesh: jax.sharding.Mesh):
    self._splits = {
        name: parallel.put(data_lib.eval_batches(arr, workload.eval_batch_size, name, mesh.size),
                           parallel.split_examples(mesh, leading_axes=1))
        for name, arr in splits.items()}

    def run(params, model_state, batches):
      def body(acc, batch):
        sums = workload.eval_sums(params, model_state, batch)
        return jax.tree.map(jnp.add, acc, sums), None
      first = jax.tree.map(lambda x: x[0], batches)
      zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(
          workload.eval_sums, params, model_state, first))
      sums, _ = jax.lax.scan(body, zero, batches)
      return sums
    self._run = jax.jit(run, out_shardings=parallel.replicated(mesh))

  def __call__(self, params: Any, model_state: Any) -> dict[str, float]:
    out = {}
    pending = {n: self._run(params, model_state, b) for n, b in self._splits.items()}
    for name, sums in pending.items():
      sums = jax.device_get(sums)
      count = max(float(sums.pop("count")), 1.0)
      for k, v in sums.items():
        out[f"{SPLIT_PREFIX[name]}/{k}"] = float(v) / count
    return out


def run_loop(workload: Workload,
             make_tx: Callable[[Mapping[str, Any]], optax.GradientTransformation],
             hparams: Mapping[str, Any], cfg: LoopConfig, *,
             eval_params: Callable[[Any, Any], Any] = lambda p, s: p,
             log: Callable[[str], None] = print,
             on_eval: Callable[[Mapping[str, float]], None] = lambda row: None) -> LoopResult:
  """Train one trial; returns its eval curve and status (never raises on divergence).

  The update rule is `make_tx(hparams)`, built inside the compiled step from
  `hparams` passed as inputs (bench.optimizers.factory); seeds and data are
  inputs too, so trials that differ only in those values share one program.
  `on_eval` sees each curve row as it is made (e.g. a TensorBoard writer)."""
  mesh = parallel.mesh()
  replicated = parallel.replicated(mesh)
  parallel.check_batch_size(cfg.batch_size, mesh)
  hp = parallel.put(dict(hparams), replicated)
  key = jax.random.key(cfg.seed)
  init_key, data_key, step_key = jax.random.split(key, 3)
  params, model_state = parallel.put(workload.init(init_key), replicated)
  opt_state = jax.jit(lambda p, h: make_tx(h).init(p), out_shardings=replicated)(params, hp)

  if workload.in_memory:
    train = workload.arrays("train")
    device_train = data_lib.DeviceData(parallel.put(train, replicated), cfg.batch_size)
    if device_train.steps_per_epoch < 1:
      raise ValueError(f"batch_size {cfg.batch_size} exceeds the {device_train.size} "
                       f"training examples of {workload.name}")
    eval_splits = {"validation": workload.arrays("validation")}
    subset_size = workload.train_eval_examples or len(eval_splits["validation"]["targets"])
    eval_splits["train"] = data_lib.train_subset(train, subset_size)
    if cfg.eval_test:
      eval_splits["test"] = workload.arrays("test")
    evaluator = Evaluator(workload, eval_splits, mesh)
  else:
    device_train = None
    evaluator = _StreamEvaluator(workload, cfg.eval_test, mesh)

  def one_step(carry, h, step_key, step, batch):
    params, model_state, opt_state = carry
    rng = jax.random.fold_in(step_key, step)
    aug_rng, loss_rng = jax.random.split(rng)
    batch = workload.augment(batch, aug_rng)
    (loss, model_state), grads = jax.value_and_grad(workload.loss, has_aux=True)(
        params, model_state, batch, loss_rng, True)
    updates, opt_state = make_tx(h).update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, model_state, opt_state), loss

  def chunk_in_memory(carry, order, h, keys, data, start, length):
    data_key, step_key = keys
    def body(c, i):
      state, order = c
      step = start + i
      batch, order = data.batch(step, order, data_key)
      state, loss = one_step(state, h, step_key, step, parallel.constrain_examples(batch, mesh))
      return (state, order), loss
    (carry, order), losses = jax.lax.scan(body, (carry, order), jnp.arange(length))
    return carry, order, losses

  def chunk_streamed(carry, h, step_key, start, batches):
    length = jax.tree.leaves(batches)[0].shape[0]
    def body(state, xs):
      i, batch = xs
      return one_step(state, h, step_key, start + i, batch)
    return jax.lax.scan(body, carry, (jnp.arange(length), batches))

  if workload.in_memory:
    run_chunk = jax.jit(chunk_in_memory, static_argnums=6, donate_argnums=(0, 1),
                        out_shardings=replicated)
    order = jax.jit(device_train.initial_order, out_shardings=replicated)(data_key)
  else:
    order = None  # a stream's position is its step
    run_chunk = jax.jit(chunk_streamed, donate_argnums=0, out_shardings=replicated)
    stream_sharding = parallel.split_examples(mesh, leading_axes=1)

  eval_at = set(_eval_steps(cfg))
  carry = (params, model_state, opt_state)
  curve: list[dict[str, float]] = []
  step, initial_loss = 0, None
  t_start = time.perf_counter()
  train_time, timed_steps, first_dispatch = 0.0, 0, True
  status, reason, diverged_step = "ok", "", None
  ckpt = checkpoint.TrialCheckpointer(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
  restored = ckpt.restore((carry, order)) if ckpt else None
  if restored is not None:
    (carry, order), meta = restored
    step, initial_loss, curve = meta["step"], meta["initial_loss"], meta["curve"]
    t_start -= meta["elapsed"]
    log(f"resumed from the checkpoint at step {step}")
  per_dispatch = cfg.max_steps_per_dispatch
  if not workload.in_memory:
    stream = workload.stream("train", cfg.batch_size, cfg.seed, start_step=step)
    first = next(stream)
    stream = itertools.chain([first], stream)
    batch_bytes = sum(np.asarray(v).nbytes for v in first.values())
    per_dispatch = max(1, min(per_dispatch, STREAM_DISPATCH_BYTES // batch_bytes))
    host_chunk = lambda start, end: parallel.put(data_lib.stack_stream(stream, end - start),
                                                 stream_sharding)
  ends = [e for e in _boundaries(cfg, per_dispatch) if e > step]
  batches = None if workload.in_memory or not ends else host_chunk(step, ends[0])
  last_save = time.perf_counter()
  for i, end in enumerate(ends):
    t0 = time.perf_counter()
    if workload.in_memory:
      carry, order, losses = run_chunk(carry, order, hp, (data_key, step_key), device_train,
                                       jnp.int32(step), end - step)
    else:
      carry, losses = run_chunk(carry, hp, step_key, jnp.int32(step), batches)
      # Read the next chunk while the device computes this one.
      batches = host_chunk(end, ends[i + 1]) if i + 1 < len(ends) else None
    losses = np.asarray(jax.device_get(losses), dtype=np.float64)
    dt = time.perf_counter() - t0
    if not first_dispatch:
      train_time += dt
      timed_steps += end - step
    first_dispatch = False
    if initial_loss is None:
      initial_loss = float(losses[0])
    step = end
    bad = _divergence(losses, initial_loss, cfg.divergence_factor)
    if bad:
      status, reason, diverged_step = "diverged", f"{bad} by step {step}", step
      log(f"step {step}/{cfg.train_steps}  diverged: {bad}")
      break
    if step in eval_at:
      p, s = carry[0], carry[1]
      row = {"step": step, "wall_time": time.perf_counter() - t_start,
             "train/batch_loss": float(losses[-1])}
      row.update(evaluator(eval_params(p, carry[2]), s))
      curve.append(row)
      on_eval(row)
      log(_progress_line(row, cfg, timed_steps, train_time))
    if ckpt and step < cfg.train_steps and \
        time.perf_counter() - last_save >= cfg.checkpoint_every_sec:
      ckpt.save(step, (carry, order), {"initial_loss": initial_loss, "curve": curve,
                                       "elapsed": time.perf_counter() - t_start})
      last_save = time.perf_counter()
  if ckpt:
    ckpt.clear()
  steps_per_sec = timed_steps / train_time if train_time > 0 else float("nan")
  if math.isnan(steps_per_sec) and step:
    steps_per_sec = step / max(time.perf_counter() - t_start, 1e-9)
  return LoopResult(status, reason, curve, diverged_step, steps_per_sec,
                    time.perf_counter() - t_start, final_params=carry[0])


def _divergence(losses: np.ndarray, initial: float, factor: float) -> str:
  if not np.all(np.isfinite(losses)):
    return "non-finite training loss"
  if factor and np.isfinite(initial) and losses.max() > factor * max(abs(initial), 1e-8):
    return f"training loss {losses.max():.3g} > {factor:g} x initial {initial:.3g}"
  return ""


def _progress_line(row: Mapping[str, float], cfg: LoopConfig, timed_steps: int,
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


class _StreamEvaluator:
  """Evaluation of streaming workloads: host batches through a jitted sum."""

  def __init__(self, workload: Workload, eval_test: bool, mesh: jax.sharding.Mesh):
    self._workload = workload
    self._splits = ["validation"] + (["test"] if eval_test else [])
    self._sums = jax.jit(workload.eval_sums, out_shardings=parallel.replicated(mesh))
    self._sharding = parallel.split_examples(mesh)
    self._padded_size = data_lib.round_up(workload.eval_batch_size, mesh.size)

  def __call__(self, params: Any, model_state: Any) -> dict[str, float]:
    out = {}
    for split in self._splits:
      total: dict[str, float] = {}
      for batch in self._workload.stream(split, self._workload.eval_batch_size, 0):
        batch = parallel.put(pad_batch(batch, self._padded_size), self._sharding)
        sums = jax.device_get(self._sums(params, model_state, batch))
        for k, v in sums.items():
          total[k] = total.get(k, 0.0) + float(v)
      count = max(total.pop("count", 0.0), 1.0)
      out.update({f"{SPLIT_PREFIX[split]}/{k}": v / count for k, v in total.items()})
    return out
