"""MNIST and Fashion-MNIST with Shallue et al.'s simple CNN.

Splits: train = the first 55,000 of the official 60,000 training images,
validation = the last 5,000 (fixed, so every trial sees the same validation
set), test = the official 10,000 test images. Images stay uint8 [N, 28, 28, 1]
(normalised inside the model), labels int32.

Where the data comes from, first found wins (the source is in `describe()`):
1. `data_dir/mnist.npz` (`fashion_mnist.npz`): keys x_train, y_train, x_test,
   y_test, uint8 (Keras' layout).
2. The four IDX files in `data_dir` (`train-images-idx3-ubyte[.gz]`, ...,
   gzip or raw), as distributed by LeCun / Zalando.
3. tfds `mnist` / `fashion_mnist` prepared in `data_dir` (or the tfds default
   directory), read with `tfds.data_source` (no TensorFlow needed).
4. Fashion-MNIST only: Debian's `dataset-fashion-mnist` package
   (/usr/share/datasets/fashion-mnist, IDX files).

Defaults (ours; the scientific variables are meant to be overridden):
batch 128; 3,000 steps (~7 epochs, in which a tuned CNN reaches under 1%
MNIST / ~8-9% Fashion-MNIST validation error); an eval every 100 steps, so
steps-to-result is resolved to 100 steps; eval batches of 1,000. Goals:
error < 0.01 (MNIST) and < 0.10 (Fashion-MNIST), on the validation split.
"""
from __future__ import annotations

import gzip
import os

import jax
import jax.numpy as jnp
import numpy as np

from workloads import tfds_source
from workloads.base import DataError, Goal, Workload, mean_xent, softmax_xent_metrics
from workloads.models import conv as conv_lib
from workloads.models.cnn import SimpleCNN

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: str) -> np.ndarray:
  """An IDX file (gzip or raw) of unsigned bytes as an array of its shape."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
    raise DataError(f"{path}: not an unsigned-byte IDX file")
  ndim = data[3]
  dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int)
  body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if body.size != int(np.prod(dims)):
    raise DataError(f"{path}: {body.size} bytes of data for shape {tuple(dims)}")
  return body.reshape(tuple(dims))


def find_idx(directory: str) -> list[str] | None:
  """The four IDX paths in `directory` (any of the usual spellings), or None."""
  paths = []
  for base in IDX_FILES:
    dotted = base.replace("-idx", ".idx")  # 'train-images.idx3-ubyte' in some copies
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
      if os.path.isfile(os.path.join(directory, name)):
        paths.append(os.path.join(directory, name))
        break
    else:
      return None
  return paths


class MnistCnn(Workload):
  """MNIST, simple CNN (Shallue et al. 2018); goal val/error < 0.01."""
  name = "mnist_cnn"
  goal = Goal("error", 0.01)
  default_train_steps = 3000
  default_batch_size = 128
  default_eval_every = 100
  eval_batch_size = 1000
  in_memory = True

  tfds_name = "mnist"
  npz_name = "mnist.npz"
  system_dirs: tuple[str, ...] = ()
  num_official_train = 60_000
  num_validation = 5_000
  pixel_mean, pixel_std = 0.1307, 0.3081

  def __init__(self, data_dir: str | None = None, dtype: str = "float32", conv: str = "auto"):
    super().__init__(data_dir, dtype)
    self.conv, self.conv_impl = conv_lib.choose(conv)
    self.model = SimpleCNN(10, self.pixel_mean, self.pixel_std, dtype=self.compute_dtype,
                           conv=self.conv)

  # ----- model -----
  def init(self, rng: jax.Array):
    x = jnp.zeros((1, 28, 28, 1), jnp.uint8)
    return self.model.init(rng, x)["params"], {}

  def loss(self, params, model_state, batch, rng, train):
    del rng, train  # no dropout, no batch norm
    logits = self.model.apply({"params": params}, batch["inputs"])
    return mean_xent(logits, batch["targets"], batch.get("mask")), model_state

  def eval_metrics(self, params, model_state, batch):
    logits = self.model.apply({"params": params}, batch["inputs"])
    return softmax_xent_metrics(logits, batch["targets"])

  # ----- data -----
  @property
  def num_train_examples(self) -> int:
    """The official count until data is loaded; then the loaded count
    (they differ only for stand-in data such as tfds mock data)."""
    if "train" in self._arrays:
      return len(self._arrays["train"]["targets"])
    return self.num_official_train - self.num_validation

  def load_arrays(self):
    x_train, y_train, x_test, y_test = self._read_official()
    return tfds_source.image_splits(x_train, y_train, x_test, y_test,
                                    self.num_validation, (28, 28, 1))

  def _read_official(self):
    looked = []
    if self.data_dir:
      npz = os.path.join(self.data_dir, self.npz_name)
      if os.path.isfile(npz):
        self.source = npz
        return tfds_source.load_npz(npz)
      idx = find_idx(self.data_dir)
      if idx:
        self.source = os.path.dirname(idx[0]) + " (IDX)"
        return tuple(read_idx(p) for p in idx)
      looked.append(f"{npz} or IDX files in {self.data_dir}")
    try:
      out = tfds_source.load_tfds_images(self.tfds_name, self.data_dir)
      self.source = f"tfds {self.tfds_name} in {tfds_source.default_data_dir(self.data_dir)}"
      return out
    except DataError:
      looked.append(f"tfds {self.tfds_name} in {tfds_source.default_data_dir(self.data_dir)}")
    for d in self.system_dirs:
      idx = find_idx(d)
      if idx:
        self.source = d + " (IDX)"
        return tuple(read_idx(p) for p in idx)
      looked.append(d)
    raise DataError(
        f"{self.name}: no data found (looked for {'; '.join(looked)}); pass --data_dir "
        f"holding {self.npz_name} or the IDX files, or run "
        f"{tfds_source.how_to_get(self.tfds_name, self.data_dir)}")


class FashionMnistCnn(MnistCnn):
  """Fashion-MNIST, the same CNN; goal val/error < 0.10."""
  name = "fashion_mnist_cnn"
  goal = Goal("error", 0.10)
  tfds_name = "fashion_mnist"
  npz_name = "fashion_mnist.npz"
  system_dirs = ("/usr/share/datasets/fashion-mnist",)  # Debian: dataset-fashion-mnist
  pixel_mean, pixel_std = 0.2860, 0.3530
