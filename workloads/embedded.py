"""Workloads that need no download: the defaults of the README demo and the tests.

mnist1d_mlp  MNIST-1D (Greydanus 2020), generated offline by the `mnist1d`
             package with its default arguments (seed 42): 4,000 train / 1,000
             test signals of length 40, 10 classes. 500 train examples are
             carved off as validation. Small enough to train on a laptop CPU in
             seconds, hard enough that optimizers and tuning differ.
mnist1d_large_mlp  the same MLP on 25,000 signals of the same generator
             (18,000 / 2,000 / 5,000): batch sizes up to 4,096 stay a fraction of
             an epoch; the workload of the cpu-scale experiments.
stdlib_lm    byte-level Transformer language model on the Python standard
             library's own source (always present). The text depends on the
             Python version, so the record stores its sha256; compare results
             only within one text.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import sysconfig
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from workloads.base import Goal, Workload, carve_validation, mean_xent, softmax_xent_metrics
from workloads.models import conv as conv_lib
from workloads.models.transformer import TransformerLM


def cache_dir() -> str:
  return os.environ.get("OPTBENCH_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "optbench"))


def _mnist1d_raw(num_samples: int | None = None) -> dict[str, np.ndarray]:
  """mnist1d.make_dataset with its default arguments (seed 42; `num_samples`
  signals in all, 80% train, default 5,000), cached on disk because
  generating it takes seconds (a minute for 50,000) and every process would
  repeat it."""
  from mnist1d.data import get_dataset_args  # pylint: disable=g-import-not-at-top
  args = get_dataset_args()
  name = "mnist1d_default_v1.npz"
  if num_samples is not None and num_samples != args.num_samples:
    args.num_samples = num_samples
    name = f"mnist1d_{num_samples}_v1.npz"
  path = os.path.join(cache_dir(), name)
  try:
    with np.load(path) as f:
      return dict(f)
  except (OSError, ValueError):
    pass
  from mnist1d.data import make_dataset  # pylint: disable=g-import-not-at-top
  d = make_dataset(args)
  d = {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **d)
    os.replace(tmp, path)
  except OSError:
    pass  # read-only home: regenerate next time
  return d


@functools.lru_cache(maxsize=2)
def _mnist1d_arrays(num_samples: int | None = None, num_validation: int = 500
                    ) -> dict[str, dict[str, np.ndarray]]:
  d = _mnist1d_raw(num_samples)
  x, y = d["x"].astype(np.float32), d["y"].astype(np.int32)
  (xt, yt), (xv, yv) = carve_validation(x, y, num_validation)
  return {"train": {"inputs": xt, "targets": yt},
          "validation": {"inputs": xv, "targets": yv},
          "test": {"inputs": d["x_test"].astype(np.float32), "targets": d["y_test"].astype(np.int32)}}


class _Mlp(nn.Module):
  hidden: tuple[int, ...] = (256, 256)
  num_classes: int = 10
  dtype: object = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for h in self.hidden:
      x = nn.relu(nn.Dense(h, dtype=self.dtype)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class _Cnn1d(nn.Module):
  """Three strided 1D convolutions and a linear head (as in the MNIST-1D paper)."""
  channels: int = 32
  num_classes: int = 10
  dtype: object = jnp.float32
  conv: Callable[..., jax.Array] = lax.conv_general_dilated  # see models/conv.py

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)[..., None]
    for _ in range(3):
      x = nn.relu(nn.Conv(self.channels, (5,), strides=(2,), padding="SAME", dtype=self.dtype,
                          conv_general_dilated=self.conv)(x))
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class _ClassifierMixin:
  """loss / eval_metrics for a flax classifier without model state."""
  model: nn.Module

  def loss(self, params, model_state, batch, rng, train):
    logits = self.model.apply(params, batch["inputs"])
    return mean_xent(logits, batch["targets"], batch.get("mask")), model_state

  def eval_metrics(self, params, model_state, batch):
    return softmax_xent_metrics(self.model.apply(params, batch["inputs"]), batch["targets"])


class Mnist1dMlp(_ClassifierMixin, Workload):
  name = "mnist1d_mlp"
  goal = Goal("error", 0.40)
  default_train_steps = 2000
  default_batch_size = 128
  default_eval_every = 100
  eval_batch_size = 1000

  def __init__(self, data_dir: str | None = None, dtype: str = "float32"):
    super().__init__(data_dir, dtype)
    self.model = _Mlp(dtype=self.compute_dtype)

  @property
  def num_train_examples(self) -> int:
    return 3500

  def init(self, rng):
    return self.model.init(rng, jnp.zeros((1, 40))), {}

  def load_arrays(self):
    return _mnist1d_arrays()


class Mnist1dLargeMlp(Mnist1dMlp):
  """The same MLP on a 5x larger MNIST-1D (25,000 signals from the same
  generator and seed: 18,000 train / 2,000 validation / 5,000 test), so that
  batch sizes up to 4,096 are a fraction of an epoch and the MLP is not
  limited by 3,500 examples: the batch-scaling workload of the cpu scale."""
  name = "mnist1d_large_mlp"
  goal = Goal("error", 0.30)

  @property
  def num_train_examples(self) -> int:
    return 18000

  def load_arrays(self):
    return _mnist1d_arrays(25000, 2000)


class Mnist1dCnn(Mnist1dMlp):
  """The same data with a small strided 1D CNN: far better accuracy (val error
  ~0.12 after 1k steps), ~15x slower than the MLP on a CPU."""
  name = "mnist1d_cnn"
  goal = Goal("error", 0.15)

  def __init__(self, data_dir: str | None = None, dtype: str = "float32", conv: str = "auto"):
    super().__init__(data_dir, dtype)
    self.conv, self.conv_impl = conv_lib.choose(conv)
    self.model = _Cnn1d(dtype=self.compute_dtype, conv=self.conv)


def stdlib_text(max_bytes: int = 1_000_000) -> bytes:
  """Top-level modules of the running Python's standard library, in sorted
  order, concatenated (deterministic for a given Python build)."""
  root = sysconfig.get_paths()["stdlib"]
  out, total = [], 0
  for path in sorted(glob.glob(os.path.join(root, "*.py"))):
    with open(path, "rb") as f:
      b = f.read()
    out.append(b)
    total += len(b)
    if total >= max_bytes:
      break
  return b"".join(out)[:max_bytes]


def windows(tokens: np.ndarray, seq_len: int) -> dict[str, np.ndarray]:
  """Non-overlapping windows: targets are the inputs shifted by one token."""
  n = (len(tokens) - 1) // seq_len
  x = tokens[: n * seq_len].reshape(n, seq_len)
  y = tokens[1: n * seq_len + 1].reshape(n, seq_len)
  return {"inputs": x.astype(np.int32), "targets": y.astype(np.int32)}


def contiguous_splits(tokens: np.ndarray, seq_len: int, fractions=(0.9, 0.05, 0.05)
                      ) -> dict[str, dict[str, np.ndarray]]:
  """Train / validation / test as contiguous blocks of the text (no leakage)."""
  n = len(tokens)
  a, b = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
  return {"train": windows(tokens[:a], seq_len), "validation": windows(tokens[a:b], seq_len),
          "test": windows(tokens[b:], seq_len)}


class ByteLmWorkload(Workload):
  """Byte-level Transformer LM over an in-memory text (vocabulary 256).
  Goal metric 'loss' is cross-entropy per byte in nats."""
  default_train_steps = 1000
  default_batch_size = 32
  default_eval_every = 100
  eval_batch_size = 256
  train_eval_examples = 256

  def __init__(self, data_dir: str | None = None, dtype: str = "float32", seq_len: int = 64,
               num_layers: int = 2, model_dim: int = 64, num_heads: int = 4, mlp_dim: int = 256):
    super().__init__(data_dir, dtype)
    self.seq_len = seq_len
    self.model = TransformerLM(256, seq_len, num_layers, model_dim, num_heads, mlp_dim,
                               dtype=self.compute_dtype)

  def text(self) -> bytes:
    raise NotImplementedError

  def load_arrays(self):
    tokens = np.frombuffer(self.text(), dtype=np.uint8)
    return contiguous_splits(tokens, self.seq_len)

  @property
  def num_train_examples(self) -> int:
    return len(self.arrays("train")["inputs"])

  def init(self, rng):
    return self.model.init(rng, jnp.zeros((1, self.seq_len), jnp.int32)), {}

  def loss(self, params, model_state, batch, rng, train):
    logits = self.model.apply(params, batch["inputs"])
    return mean_xent(logits, batch["targets"]), model_state

  def eval_metrics(self, params, model_state, batch):
    logits = self.model.apply(params, batch["inputs"])
    return {"loss": softmax_xent_metrics(logits, batch["targets"])["loss"]}  # per byte


class StdlibLm(ByteLmWorkload):
  name = "stdlib_lm"
  goal = Goal("loss", 2.0)

  def text(self) -> bytes:
    return stdlib_text()

  def describe(self):
    return {**super().describe(),
            "text_sha256": hashlib.sha256(self.text()).hexdigest()[:16]}
