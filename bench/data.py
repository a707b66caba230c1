"""Getting batches to the train step.

In-memory data sets live on the accelerator; the train step gathers its batch
there from a per-epoch permutation (recomputed only when the epoch changes), so
no host work sits on the hot path. Streaming data sets are read on the host and
stacked into one array per dispatch (the loop reads the next while the device
runs the current one).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

import workloads
from workloads.base import pad_batch


@functools.partial(jax.tree_util.register_dataclass, data_fields=["arrays"],
                   meta_fields=["batch_size"])
@dataclasses.dataclass(frozen=True)
class DeviceData:
  """A split on the device plus how to draw training batch `step` from it.
  A pytree (the arrays are leaves), so the train step takes it as an input."""
  arrays: Mapping[str, jax.Array]
  batch_size: int

  @property
  def size(self) -> int:
    return int(next(iter(self.arrays.values())).shape[0])

  @property
  def steps_per_epoch(self) -> int:
    return self.size // self.batch_size

  def empty_order(self) -> jax.Array:
    """Scan-carry state: the current epoch's permutation (drawn at its first step)."""
    return jnp.zeros((self.size,), jnp.int32)

  def batch(self, step: jax.Array, order: jax.Array, key: jax.Array
            ) -> tuple[dict[str, jax.Array], jax.Array]:
    """Batch for a global step: examples [pos*B, (pos+1)*B) of the permutation
    fold_in(key, epoch), pos = step % steps_per_epoch (the remainder of each
    epoch is dropped, as usual). The permutation is drawn at an epoch's first
    step and carried; whether to draw depends on the step alone, which every
    lane of a pack shares, so under vmap this stays a branch instead of a
    permutation per step."""
    spe = self.steps_per_epoch
    order = jax.lax.cond(
        step % spe == 0,
        lambda: jax.random.permutation(jax.random.fold_in(key, step // spe), self.size),
        lambda: order)
    idx = jax.lax.dynamic_slice(order, ((step % spe) * self.batch_size,), (self.batch_size,))
    return {k: jnp.take(v, idx, axis=0) for k, v in self.arrays.items()}, order


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int, split: str = "evaluation",
                 multiple: int = 1) -> dict[str, np.ndarray]:
  """A split padded to whole batches, shaped [num_batches, batch_size, ...],
  with a 'mask' marking the real examples; evaluated in one scan. The batch
  size is rounded up to a `multiple` (the devices it is split over)."""
  n = len(next(iter(arrays.values())))
  if n == 0:
    raise workloads.DataError(f"the {split} split has no examples (data set too small "
                              "for the workload's sequence length or split sizes?)")
  batch_size = round_up(min(batch_size, n), multiple)
  padded = round_up(n, batch_size)
  return {k: v.reshape((padded // batch_size, batch_size) + v.shape[1:])
          for k, v in pad_batch(arrays, padded).items()}


def round_up(n: int, multiple: int) -> int:
  """The smallest multiple of `multiple` that is >= n."""
  return -(-n // multiple) * multiple


def train_subset(arrays: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """A fixed train subset (same for every trial) to measure training metrics on."""
  n = len(next(iter(arrays.values())))
  idx = np.sort(np.random.default_rng(0).permutation(n)[:min(size, n)])
  return {k: np.asarray(v)[idx] for k, v in arrays.items()}


def stack_stream(it: Iterator[Mapping[str, np.ndarray]], num_steps: int) -> dict[str, np.ndarray]:
  """Next `num_steps` host batches stacked on a leading axis, for one dispatch."""
  batches = [next(it) for _ in range(num_steps)]
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}

