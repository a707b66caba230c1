"""The narrow contract between a workload and the runner (after AlgoPerf's Workload).

A workload is pure functions over pytrees plus its data. Every metric is
lower-is-better (error, not accuracy), so that "best" and "goal reached" mean
the same thing everywhere. The runner (bench/) owns devices, batching and the
loop; a workload never imports bench.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
ModelState = Any
Batch = Mapping[str, jax.Array]

SPLITS = ("train", "validation", "test")


class DataError(ValueError):
  """A data set cannot be found or read; the message says where it looked."""


@dataclasses.dataclass(frozen=True)
class Goal:
  """A target on a validation metric: reached when `val/<metric> < threshold`.

  Strict inequality, as in Shallue et al.'s steps-to-result rule; the one place
  that applies it to a curve is analysis.record.goal_step.
  """
  metric: str
  threshold: float

  def __str__(self) -> str:
    return f"val/{self.metric} < {self.threshold:g}"


class Workload(abc.ABC):
  """Data set + model + loss + metrics + goal + default budget.

  Subclasses set the class attributes and implement init/loss/eval_metrics and
  either `arrays` (in-memory data, put on the accelerator by the runner) or
  `stream` (large data sets read batch by batch).
  """
  name: str = ""
  goal: Goal
  default_train_steps: int = 1000
  default_batch_size: int = 128
  default_eval_every: int = 100
  eval_batch_size: int = 1024
  in_memory: bool = True
  # Size of the fixed train subset evaluated at each eval (None: validation size).
  train_eval_examples: int | None = None
  # Where the data came from (a file, or a tfds directory), set when it is read.
  source: str | None = None
  # Which convolution the model uses, for models with any (workloads/models/conv.py).
  conv_impl: str | None = None

  def __init__(self, data_dir: str | None = None, dtype: str = "float32"):
    self.data_dir = data_dir
    if dtype not in ("float32", "bfloat16"):
      raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    self.dtype = dtype
    self._arrays: dict[str, dict[str, np.ndarray]] = {}

  @property
  def compute_dtype(self):
    return jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32

  # ----- model -----
  @abc.abstractmethod
  def init(self, rng: jax.Array) -> tuple[Params, ModelState]:
    """Fresh parameters (fp32) and model state (e.g. batch-norm statistics)."""

  @abc.abstractmethod
  def loss(self, params: Params, model_state: ModelState, batch: Batch,
           rng: jax.Array, train: bool) -> tuple[jax.Array, ModelState]:
    """Mean training loss over the batch (weighted by batch['mask'] if given)."""

  @abc.abstractmethod
  def eval_metrics(self, params: Params, model_state: ModelState,
                   batch: Batch) -> dict[str, jax.Array]:
    """Each metric's value per example, shape [B] (or per token, [B, L]), plus
    optionally 'weight' of the same shape (e.g. 0 for padding tokens that the
    data itself marks); lower is better.

    Return values, not sums: the runner averages each metric over a split,
    weighting by 'weight' and by the batch's 'mask' (0 for the examples it pads
    a split with), so padding can never count. See softmax_xent_metrics.
    """

  def augment(self, batch: Batch, rng: jax.Array) -> Batch:
    """Training-time augmentation, traced on the accelerator. Default: none."""
    del rng
    return batch

  # ----- data -----
  @property
  @abc.abstractmethod
  def num_train_examples(self) -> int:
    ...

  def arrays(self, split: str) -> dict[str, np.ndarray]:
    """Whole split as host arrays (in-memory workloads); cached after first load."""
    if split not in SPLITS:
      raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split not in self._arrays:
      self._arrays.update(self.load_arrays())
    return self._arrays[split]

  def load_arrays(self) -> dict[str, dict[str, np.ndarray]]:
    """All three splits as {'inputs': ..., 'targets': ...} arrays."""
    raise NotImplementedError(f"{self.name} is not an in-memory workload")

  def stream(self, split: str, batch_size: int, seed: int, start_step: int = 0
             ) -> Iterator[dict[str, np.ndarray]]:
    """Batches for streaming workloads: train repeats forever (shuffled by seed)
    and begins with batch `start_step` (a trial resumed from a checkpoint);
    eval splits are finite, padded to batch_size with 'mask' = 0."""
    raise NotImplementedError(f"{self.name} is not a streaming workload")

  def describe(self) -> dict[str, Any]:
    """What a trial record stores about the workload."""
    d = {"name": self.name, "goal": str(self.goal), "dtype": self.dtype,
         "num_train_examples": self.num_train_examples}
    if self.source:
      d["data_source"] = self.source
    if self.conv_impl:
      from workloads.models import conv  # pylint: disable=g-import-not-at-top
      d["conv"] = conv.resolve(self.conv_impl)
    return d


# ----- helpers shared by workloads -----

def softmax_xent_metrics(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Cross-entropy and classification error (0 / 1) per example (or token) for
  integer labels: what eval_metrics returns for a classifier."""
  logits = logits.astype(jnp.float32)
  logp = jax.nn.log_softmax(logits)
  xent = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
  wrong = (jnp.argmax(logits, -1) != labels).astype(jnp.float32)
  return {"loss": xent, "error": wrong}


def mean_xent(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Mean cross-entropy over the examples (tokens) that `mask` keeps."""
  xent = softmax_xent_metrics(logits, labels)["loss"]
  w = jnp.ones_like(xent) if mask is None else mask.astype(jnp.float32)
  return jnp.sum(xent * w) / jnp.maximum(jnp.sum(w), 1.0)


def weighted_sums(metrics: Mapping[str, jax.Array], mask: jax.Array | None
                  ) -> dict[str, dict[str, jax.Array]]:
  """{'sums': {metric: sum}, 'counts': {metric: total weight}} of eval_metrics'
  values, weighted by their 'weight' and the batch mask (broadcast over
  trailing axes). Weight-0 entries add exactly nothing, not even a NaN."""
  metrics = dict(metrics)
  weight = metrics.pop("weight", None)
  sums, counts = {}, {}
  for name, v in metrics.items():
    v = v.astype(jnp.float32)
    w = jnp.ones_like(v) if weight is None else jnp.broadcast_to(weight, v.shape)
    if mask is not None:
      m = mask.astype(jnp.float32)
      w = w * m.reshape(m.shape + (1,) * (v.ndim - m.ndim))
    sums[name] = jnp.sum(jnp.where(w > 0, v, 0.0) * w)
    counts[name] = jnp.sum(w)
  return {"sums": sums, "counts": counts}


def pad_batch(batch: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """Pad a short eval batch to batch_size with zeros and add 'mask' (1 real, 0 pad;
  an existing mask is padded with 0)."""
  n = len(next(iter(batch.values())))
  out = {}
  for k, v in batch.items():
    pad = np.zeros((batch_size - n,) + v.shape[1:], v.dtype)
    out[k] = np.concatenate([v, pad]) if n < batch_size else v
  mask = np.zeros(batch_size, np.float32)
  mask[:n] = 1.0
  out.setdefault("mask", mask)
  return out


def carve_validation(x: np.ndarray, y: np.ndarray, num_validation: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """Split the official train split into train / validation: the last
  `num_validation` examples become validation (fixed, so that every trial of
  every study sees the same validation set)."""
  n = len(x) - num_validation
  if n <= 0:
    raise DataError(f"cannot carve {num_validation} validation examples from {len(x)}")
  return (x[:n], y[:n]), (x[n:], y[n:])
