"""MNIST-1D served as a stream: the streaming loop path (host batches, resumable
by step) offline, the way ImageNet and LM1B take it."""
from typing import Iterator

import numpy as np

from workloads import tfds_source
from workloads.base import pad_batch
from workloads.embedded import Mnist1dMlp


class StreamedMnist1d(Mnist1dMlp):
  name = "streamed_mnist1d"
  in_memory = False
  eval_batch_size = 300  # 1,000 validation examples: a short, padded last batch

  def stream(self, split: str, batch_size: int, seed: int, start_step: int = 0
             ) -> Iterator[dict[str, np.ndarray]]:
    arrays = self.arrays(split)
    n = len(arrays["targets"])
    train = split == "train"
    for _, idx in tfds_source.batched_indices(0, n, batch_size, seed if train else None,
                                              start_step if train else 0):
      batch = {k: v[idx] for k, v in arrays.items()}
      yield batch if train else pad_batch(batch, batch_size)
