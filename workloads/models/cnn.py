"""The simple CNN of Shallue et al. (2018) for MNIST and Fashion-MNIST.

conv 5x5x32 + ReLU, max-pool 2/2, conv 5x5x64 + ReLU, max-pool 2/2,
dense 1024 + ReLU, dense num_classes. Inputs arrive as raw uint8 images and
are normalised here, so the data set can sit on the accelerator as uint8
(4x less device memory than float32).
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


class SimpleCNN(nn.Module):
  num_classes: int = 10
  mean: float = 0.0   # of pixel / 255, over the training set
  std: float = 1.0
  dtype: Any = jnp.float32
  conv: Callable[..., jax.Array] = lax.conv_general_dilated  # see models/conv.py

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = (images.astype(jnp.float32) / 255.0 - self.mean) / self.std
    x = x.astype(self.dtype)
    if x.ndim == 3:  # [B, H, W] -> [B, H, W, 1]
      x = x[..., None]
    x = nn.relu(nn.Conv(32, (5, 5), padding="SAME", dtype=self.dtype, conv_general_dilated=self.conv)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (5, 5), padding="SAME", dtype=self.dtype, conv_general_dilated=self.conv)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(1024, dtype=self.dtype)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
