"""The compiled programs of a study shape, built once per process.

A program is everything jitted for one shape of trial: the workload (and its
arguments, dtype), the optimizer's structure (its name and schedule form),
the batch size, which splits are evaluated, the devices, and the number of
lanes. Trials that share a shape differ only in values (seed, hyperparameter
values, data), which are inputs, so they reuse one traced and compiled
`init`, train `chunk` and `evaluate`: nothing is re-traced per trial.

Lanes: with `lanes=K` (a pack), every function is `jax.vmap`ped over a
leading trial axis of the parameters, optimizer state (which holds the
hyperparameter values, optax.inject_hyperparams) and keys, while the data
sets are shared. A lane computes what the same trial alone computes; see
tests/test_pack.py for how exactly on CPU. `lanes=0` is the unbatched solo
program. Lane arrays are either split over the devices (a pack per device,
when K divides evenly) or replicated with each batch split over them.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Hashable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench import data as data_lib
from bench import parallel
from workloads.base import Workload, pad_batch, weighted_sums

SPLIT_PREFIX = {"train": "train", "validation": "val", "test": "test"}


@dataclasses.dataclass(frozen=True)
class Shape:
  """What makes two trials share a program (hashable; the program cache key)."""
  workload_key: Hashable     # workload name, args, data_dir, dtype
  optimizer_key: tuple       # bench.optimizers.program_key
  batch_size: int
  eval_test: bool
  lanes: int                 # 0: solo (no trial axis); K >= 1: a pack of K lanes
  devices: tuple[int, ...]


class Program:
  """init / chunk / evaluate for one Shape, jitted once (see module docstring)."""

  def __init__(self, shape: Shape, workload: Workload,
               make_tx: Callable[[Mapping[str, Any]], optax.GradientTransformation],
               example_values: Mapping[str, Any],
               eval_params: Callable[[Any, Any], Any]):
    self.shape = shape
    self.workload = workload
    self.lanes = shape.lanes
    self.mesh = parallel.mesh()
    replicated = parallel.replicated(self.mesh)
    b = shape.batch_size
    parallel.check_batch_size(b, self.mesh)
    # Lanes over devices when they divide evenly (no communication between lanes);
    # otherwise lanes replicated and each batch split over the devices.
    self.lanes_split = self.lanes > 0 and self.mesh.size > 1 and self.lanes % self.mesh.size == 0
    self.state_sharding = (parallel.split_examples(self.mesh) if self.lanes_split
                           else replicated)
    tx = make_tx(example_values)  # update() reads the values from the state
    w = workload
    train = None
    if w.in_memory:
      train = self.train = data_lib.DeviceData(
          _device_arrays(shape.workload_key, w, "train", self.mesh), b)
      if train.steps_per_epoch < 1:
        raise ValueError(f"batch_size {b} exceeds the {train.size} training examples "
                         f"of {w.name}")

    def init(seed, values):
      key = jax.random.key(seed)
      init_key, data_key, step_key = jax.random.split(key, 3)
      params, model_state = w.init(init_key)
      opt_state = make_tx(values).init(params)
      order = train.empty_order() if w.in_memory else jnp.zeros((), jnp.int32)
      return (params, model_state, opt_state, order), (data_key, step_key)

    def one_step(carry, step_key, step, batch):
      params, model_state, opt_state, order = carry
      rng = jax.random.fold_in(step_key, step)
      aug_rng, loss_rng = jax.random.split(rng)
      batch = w.augment(batch, aug_rng)
      (loss, new_model_state), grads = jax.value_and_grad(w.loss, has_aux=True)(
          params, model_state, batch, loss_rng, True)
      # optax's extra-args contract (rules that ignore an argument drop it): step, the
      # number of updates before this one, shared by every lane of a pack, so periodic
      # work (bench/preconditioners.py) branches on a value vmap does not batch; value,
      # the batch loss (momo); obj_fn, the batch loss as a function of the parameters
      # (sophia's Hessian-vector products; traced only by a rule that calls it).
      objective = lambda p: w.loss(p, model_state, batch, loss_rng, True)[0]
      updates, opt_state = tx.update(grads, opt_state, params, step=step, value=loss,
                                     obj_fn=objective)
      model_state = new_model_state
      return (optax.apply_updates(params, updates), model_state, opt_state, order), loss

    split_batch = (lambda batch: batch) if self.lanes_split else (
        lambda batch: parallel.constrain_examples(batch, self.mesh))

    def chunk_in_memory(carry, keys, data, start, length):
      data_key, step_key = keys
      def body(state, i):
        batch, order = data.batch(start + i, state[3], data_key)
        return one_step((*state[:3], order), step_key, start + i, split_batch(batch))
      return jax.lax.scan(body, carry, jnp.arange(length))

    def chunk_streamed(carry, keys, start, batches):
      length = jax.tree.leaves(batches)[0].shape[0]
      def body(state, xs):
        i, batch = xs
        return one_step(state, keys[1], start + i, batch)
      return jax.lax.scan(body, carry, (jnp.arange(length), batches))

    def batch_sums(p, model_state, batch):
      return weighted_sums(w.eval_metrics(p, model_state, batch), batch.get("mask"))

    def evaluate(carry, splits):
      params, model_state, opt_state, _ = carry
      p = eval_params(params, opt_state)
      out = {}
      for name, batches in splits.items():
        def body(acc, batch):
          return jax.tree.map(jnp.add, acc, batch_sums(p, model_state, batch)), None
        first = jax.tree.map(lambda x: x[0], batches)
        zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(batch_sums, p, model_state, first))
        out[name] = jax.lax.scan(body, zero, batches)[0]
      return out

    def eval_batch(carry, batch):  # streamed splits: one host batch at a time
      params, model_state, opt_state, _ = carry
      return batch_sums(eval_params(params, opt_state), model_state, batch)

    def solo_in_memory(carry, keys, data, start, active, length):
      del active  # a solo trial stops at divergence instead
      return chunk_in_memory(carry, keys, data, start, length)

    def solo_streamed(carry, keys, start, batches, active):
      del active
      return chunk_streamed(carry, keys, start, batches)

    def pack_in_memory(carry, keys, data, start, active, length):
      new, losses = jax.vmap(lambda c, k: chunk_in_memory(c, k, data, start, length))(carry, keys)
      return _keep_ended(new, carry, active), losses

    def pack_streamed(carry, keys, start, batches, active):
      new, losses = jax.vmap(lambda c, k, b: chunk_streamed(c, k, start, b))(carry, keys, batches)
      return _keep_ended(new, carry, active), losses

    self._solo_init = jax.jit(init)  # shapes of one lane (checkpoints)
    if self.lanes:
      init = jax.vmap(init)
      evaluate = jax.vmap(evaluate, in_axes=(0, None))
      eval_batch = jax.vmap(eval_batch, in_axes=(0, None))
      in_memory, streamed = pack_in_memory, pack_streamed
    else:
      in_memory, streamed = solo_in_memory, solo_streamed
    self._values_like = {k: np.asarray(v) for k, v in example_values.items()}
    state = self.state_sharding
    self._init = jax.jit(init, out_shardings=state)
    if w.in_memory:
      self._chunk = jax.jit(in_memory, static_argnums=5, donate_argnums=0,
                            out_shardings=state)
      self.eval_splits = _eval_splits(shape.workload_key, w, shape.eval_test, self.mesh)
      self._evaluate = jax.jit(evaluate, out_shardings=state)
    else:
      self._chunk = jax.jit(streamed, donate_argnums=0, out_shardings=state)
      self._eval_batch = jax.jit(eval_batch, out_shardings=state)
      self.stream_splits = ["validation"] + (["test"] if shape.eval_test else [])
      lead = 2 if self.lanes else 1  # [lanes,] steps, examples
      self.stream_sharding = (parallel.split_examples(self.mesh) if self.lanes_split else
                              parallel.split_examples(self.mesh, leading_axes=lead))
      self.eval_sharding = parallel.split_examples(self.mesh)
      self.padded_eval_batch = data_lib.round_up(w.eval_batch_size, self.mesh.size)

  # ----- the programs -----
  def init(self, seeds: np.ndarray, values: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
    """(carry, keys) of fresh trials: seeds [lanes] (a scalar when solo), values alike."""
    return self._init(np.asarray(seeds, np.int32), dict(values))

  def chunk(self, carry: Any, keys: Any, start: int, end: int, active: np.ndarray,
            batches: Any = None) -> tuple[Any, jax.Array]:
    """Steps start..end-1 of every lane; lanes not `active` keep their state.
    Returns (carry, losses [lanes, steps], or [steps] when solo)."""
    mask, first = np.asarray(active, bool), np.int32(start)  # host values: no dispatch
    if self.workload.in_memory:
      return self._chunk(carry, keys, self.train, first, mask, end - start)
    return self._chunk(carry, keys, first, batches, mask)

  def evaluate(self, carry: Any) -> Any:
    """Per-split metric sums of every lane, left on the device (the loop fetches
    them in one transfer with the losses)."""
    if self.workload.in_memory:
      return self._evaluate(carry, self.eval_splits)
    out = {}
    for split in self.stream_splits:
      total = None
      for batch in self.workload.stream(split, self.workload.eval_batch_size, 0):
        batch = parallel.put(pad_batch(batch, self.padded_eval_batch), self.eval_sharding)
        sums = self._eval_batch(carry, batch)
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
      out[split] = total
    return out

  def lane_like(self) -> Any:
    """Shapes and dtypes of one lane's carry (to restore its checkpoint)."""
    seed = jax.ShapeDtypeStruct((), jnp.int32)
    values = {k: jax.ShapeDtypeStruct((), v.dtype) for k, v in self._values_like.items()}
    shapes = jax.eval_shape(self._solo_init, seed, values)[0]
    replicated = parallel.replicated(self.mesh)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                        shapes)


def _keep_ended(new: Any, old: Any, active: jax.Array) -> Any:
  """Lanes that have ended (diverged) keep their old state: frozen, not updated."""
  def pick(n, o):
    return jnp.where(active.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)
  return jax.tree.map(pick, new, old)


def metrics(sums: Mapping[str, Mapping[str, Any]], lane: int | None) -> dict[str, float]:
  """Curve-row metrics {'val/error': ...} of one lane from fetched sums."""
  pick = (lambda v: float(np.asarray(v))) if lane is None else (
      lambda v: float(np.asarray(v)[lane]))
  out = {}
  for split, s in sums.items():
    for k, total in s["sums"].items():
      out[f"{SPLIT_PREFIX[split]}/{k}"] = pick(total) / max(pick(s["counts"][k]), 1.0)
  return out


# ----- device data shared by every program of a workload -----
_DEVICE: dict[tuple, Any] = {}


def _device_arrays(key: Hashable, w: Workload, split: str, mesh) -> dict[str, jax.Array]:
  k = (key, split, tuple(d.id for d in mesh.devices.flat))
  if k not in _DEVICE:
    _DEVICE[k] = parallel.put(w.arrays(split), parallel.replicated(mesh))
  return _DEVICE[k]


def _eval_splits(key: Hashable, w: Workload, eval_test: bool, mesh) -> dict[str, Any]:
  k = (key, "eval", eval_test, tuple(d.id for d in mesh.devices.flat))
  if k not in _DEVICE:
    train = w.arrays("train")
    splits = {"validation": w.arrays("validation")}
    size = w.train_eval_examples or len(splits["validation"]["targets"])
    splits["train"] = data_lib.train_subset(train, size)
    if eval_test:
      splits["test"] = w.arrays("test")
    _DEVICE[k] = {
        name: parallel.put(data_lib.eval_batches(arr, w.eval_batch_size, name, mesh.size),
                           parallel.split_examples(mesh, leading_axes=1))
        for name, arr in splits.items()}
  return _DEVICE[k]


def workload_key(name: str, args: Mapping[str, Any], data_dir: str | None, dtype: str) -> str:
  return json.dumps([name, sorted(args.items()), data_dir, dtype], default=repr)


_PROGRAMS: dict[Shape, Program] = {}


def get(shape: Shape, workload: Workload,
        make_tx: Callable[[Mapping[str, Any]], optax.GradientTransformation],
        example_values: Mapping[str, Any], eval_params: Callable[[Any, Any], Any]) -> Program:
  """The process's one Program of `shape` (built on first use)."""
  if shape not in _PROGRAMS:
    _PROGRAMS[shape] = Program(shape, workload, make_tx, example_values, eval_params)
  return _PROGRAMS[shape]
