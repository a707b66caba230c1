"""Data parallelism over every device of every process, through jax.sharding.

One trial can span all devices: parameters and optimizer state are replicated,
each batch is split along its example axis over a one-axis mesh ('data'), and
XLA inserts the gradient all-reduce. With one device this is the plain
single-device program. Across hosts, every process runs the same program after
`initialize` (jax.distributed); process 0 is the one that writes results.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
# Indices into jax.devices() that this process may use (one process only); set by
# `--executor=processes` so that each worker has devices of its own.
DEVICES_ENV = "OPTBENCH_DEVICES"


def initialize(coordinator_address: str, num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """Join a multi-process JAX job before any other JAX call.

  `coordinator_address='auto'` lets JAX read the cluster's environment (Slurm,
  Open MPI, Cloud TPU); otherwise all three values are given explicitly. On CPU,
  cross-process collectives go through gloo.
  """
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator_address == "auto":
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def is_primary() -> bool:
  """Whether this process writes records, events and logs (process 0)."""
  return jax.process_index() == 0


def devices() -> list[jax.Device]:
  """Every device of every process, or the local ones named by OPTBENCH_DEVICES."""
  chosen = os.environ.get(DEVICES_ENV, "").strip()
  if not chosen or jax.process_count() > 1:
    return jax.devices()
  all_devices = jax.devices()
  try:
    return [all_devices[int(i)] for i in chosen.split(",")]
  except (ValueError, IndexError):
    raise ValueError(f"{DEVICES_ENV}={chosen!r} does not name devices among "
                     f"0..{len(all_devices) - 1}") from None


def assign(worker: int, num_workers: int, num_devices: int) -> list[int]:
  """The devices of worker i of n: contiguous equal shares, or (fewer devices
  than workers) device i mod count, shared."""
  if num_devices >= num_workers:
    share = num_devices // num_workers
    return list(range(worker * share, (worker + 1) * share))
  return [worker % num_devices]


def mesh() -> Mesh:
  return Mesh(np.array(devices()), (AXIS,))


def replicated(m: Mesh) -> NamedSharding:
  return NamedSharding(m, P())


def split_examples(m: Mesh, leading_axes: int = 0) -> NamedSharding:
  """Examples split over devices; `leading_axes` stacked axes (e.g. steps) stay whole."""
  return NamedSharding(m, P(*([None] * leading_axes), AXIS))


def check_batch_size(batch_size: int, m: Mesh) -> None:
  if batch_size % m.size:
    raise ValueError(f"batch_size {batch_size} is not divisible by the {m.size} devices "
                     "it is split over")


def put(tree: Any, sharding: NamedSharding) -> Any:
  """Host (or single-device) values onto the mesh. Every process must pass the
  same values; each keeps the shards of its own devices."""
  return jax.device_put(jax.tree.map(np.asarray, tree), sharding)


def constrain_examples(batch: Mapping[str, jax.Array], m: Mesh) -> dict[str, jax.Array]:
  """Inside jit: lay a batch gathered from replicated data out across devices."""
  return {k: jax.lax.with_sharding_constraint(v, split_examples(m)) for k, v in batch.items()}
