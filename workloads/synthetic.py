"""Real models on random data of the real shapes, for throughput benchmarks.

A benchmark of steps/s needs the model, the batch and the data set's size, not
its content, and these need no download: `--workload=workloads.synthetic:
Cifar10ResNet8` (or MnistCnn) in bench.perf and scripts/gpu_bench.sh. Nothing
learnt on them means anything; records say `data_source: synthetic`.
"""
from __future__ import annotations

import numpy as np

from workloads import cifar10, mnist


def _images(num: tuple[int, int, int], shape: tuple[int, ...], classes: int
            ) -> dict[str, dict[str, np.ndarray]]:
  rng = np.random.default_rng(0)
  return {split: {"inputs": rng.integers(0, 256, (n,) + shape, dtype=np.uint8),
                  "targets": rng.integers(0, classes, n).astype(np.int32)}
          for split, n in zip(("train", "validation", "test"), num)}


class MnistCnn(mnist.MnistCnn):
  name = "synthetic_mnist_cnn"

  def load_arrays(self):
    self.source = "synthetic"
    return _images((55_000, 5_000, 10_000), (28, 28, 1), 10)


class Cifar10ResNet8(cifar10.Cifar10ResNet8):
  name = "synthetic_cifar10_resnet8"

  def load_arrays(self):
    self.source = "synthetic"
    return _images((45_000, self.num_validation, 10_000), (32, 32, 3), 10)
