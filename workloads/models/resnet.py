"""ResNet v1 with batch norm: the CIFAR family (He et al. 2016, section 4.2)
and ResNet-50 v1.5 for ImageNet.

Both take raw uint8 images and normalise per channel inside the model, so
image data stays compact (uint8) on the accelerator and on the wire.
Batch-norm statistics live in the 'batch_stats' collection: `train=True`
normalises with batch statistics and updates the running averages;
`train=False` uses the running averages.

Choices that are not universal, stated here so that results can be compared:
- CIFAR: the shortcut across a change of shape is a 1x1 strided convolution +
  BN ("option B"), not He et al.'s zero-padding identity ("option A").
- ResNet-50 v1.5: stride 2 sits on the 3x3 convolution of a bottleneck (not on
  the first 1x1), as in torchvision and MLPerf.
- Convolutions use He-normal (fan_out) initialisation; the classifier a
  normal(0.01) kernel. `zero_init_residual` (default False) sets the last BN
  scale of every residual branch to zero (Goyal et al. 2017).
- BN: momentum 0.9, epsilon 1e-5.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(images: jax.Array, mean: Sequence[float], std: Sequence[float],
              dtype: Any) -> jax.Array:
  """uint8 [0, 255] -> per-channel standardised, in the compute dtype."""
  x = images.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
  return x.astype(dtype)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (the CIFAR ResNets' block)."""
  filters: int
  strides: int = 1
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  conv: Callable[..., jax.Array] = lax.conv_general_dilated  # see models/conv.py

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype,
                             conv_general_dilated=self.conv)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype)
    y = conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(x)
    y = nn.relu(norm()(y))
    y = conv(self.filters, (3, 3), padding=1)(y)
    y = norm(scale_init=nn.initializers.zeros if self.zero_init_residual
             else nn.initializers.ones)(y)
    if x.shape != y.shape:
      x = conv(self.filters, (1, 1), (self.strides, self.strides), name="proj")(x)
      x = norm(name="proj_bn")(x)
    return nn.relu(x + y)


class BottleneckBlock(nn.Module):
  """1x1 -> 3x3 (strided, v1.5) -> 1x1 x4, the ResNet-50 block."""
  filters: int
  strides: int = 1
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  conv: Callable[..., jax.Array] = lax.conv_general_dilated  # see models/conv.py

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype,
                             conv_general_dilated=self.conv)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype)
    y = nn.relu(norm()(conv(self.filters, (1, 1))(x)))
    y = conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(y)
    y = nn.relu(norm()(y))
    y = conv(self.filters * 4, (1, 1))(y)
    y = norm(scale_init=nn.initializers.zeros if self.zero_init_residual
             else nn.initializers.ones)(y)
    if x.shape != y.shape:
      x = conv(self.filters * 4, (1, 1), (self.strides, self.strides), name="proj")(x)
      x = norm(name="proj_bn")(x)
    return nn.relu(x + y)


class CifarResNet(nn.Module):
  """ResNet-(6n+2) for 32x32 images: 3 stages of n basic blocks, 16/32/64 filters.

  n=1: ResNet-8 (Shallue et al.), n=5: ResNet-32 (Choi et al.).
  """
  blocks_per_stage: int
  num_classes: int = 10
  width: int = 16
  zero_init_residual: bool = False
  mean: Sequence[float] = CIFAR10_MEAN
  std: Sequence[float] = CIFAR10_STD
  dtype: Any = jnp.float32
  conv: Callable[..., jax.Array] = lax.conv_general_dilated

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = normalise(images, self.mean, self.std, self.dtype)
    x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, kernel_init=conv_init,
                dtype=self.dtype, conv_general_dilated=self.conv)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             dtype=self.dtype)(x))
    for stage in range(3):
      for b in range(self.blocks_per_stage):
        strides = 2 if stage > 0 and b == 0 else 1
        x = BasicBlock(self.width * 2 ** stage, strides, self.zero_init_residual,
                       self.dtype, self.conv)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01),
                    dtype=self.dtype)(x).astype(jnp.float32)


class ResNet50(nn.Module):
  """ResNet-50 v1.5: 7x7/2 stem, 3x3/2 max-pool, [3, 4, 6, 3] bottlenecks."""
  num_classes: int = 1000
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  zero_init_residual: bool = False
  mean: Sequence[float] = IMAGENET_MEAN
  std: Sequence[float] = IMAGENET_STD
  dtype: Any = jnp.float32
  conv: Callable[..., jax.Array] = lax.conv_general_dilated

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    x = normalise(images, self.mean, self.std, self.dtype)
    x = nn.Conv(self.width, (7, 7), (2, 2), padding=3, use_bias=False, kernel_init=conv_init,
                dtype=self.dtype, conv_general_dilated=self.conv, name="stem")(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             dtype=self.dtype, name="stem_bn")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, n in enumerate(self.stage_sizes):
      for b in range(n):
        strides = 2 if stage > 0 and b == 0 else 1
        x = BottleneckBlock(self.width * 2 ** stage, strides, self.zero_init_residual,
                            self.dtype, self.conv)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01),
                    dtype=self.dtype)(x).astype(jnp.float32)
