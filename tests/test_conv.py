"""The CPU convolution path (workloads/models/conv.py): the same values and
gradients as lax's convolution. Measured: bitwise equal in every case below on
CPU (the gradients are the same convolutions jax's transpose rules emit, only
written as forward convolutions); the tolerance allows for a backend that orders
the sums differently."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from workloads.models import conv

RTOL = 1e-6
CASES = [  # input, kernel, strides, padding
    ((4, 12, 12, 1), (5, 5, 1, 8), (1, 1), "SAME"),
    ((4, 9, 9, 6), (3, 3, 6, 5), (2, 2), [(1, 1), (1, 1)]),
    ((4, 8, 8, 6), (1, 1, 6, 4), (2, 2), "VALID"),
    ((2, 11, 10, 3), (3, 3, 3, 4), (2, 2), "SAME"),
    ((2, 15, 15, 3), (7, 7, 3, 4), (2, 2), [(3, 3), (3, 3)]),
    ((3, 40, 1), (5, 1, 6), (2,), "SAME"),
    ((3, 20, 6), (5, 6, 6), (2,), "SAME"),
]


@pytest.mark.parametrize("shape,kernel,strides,padding", CASES)
def test_values_and_gradients_match_lax(shape, kernel, strides, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=kernel), jnp.float32)
  dn = conv._layout(len(shape) - 2)

  def loss(fn):
    return lambda x, w: jnp.sum(jnp.sin(fn(x, w, strides, padding, dimension_numbers=dn)))

  ref, ours = loss(lax.conv_general_dilated), loss(conv.conv_general_dilated)
  np.testing.assert_allclose(jax.jit(ours)(x, w), jax.jit(ref)(x, w), rtol=RTOL)
  for a, b in zip(jax.jit(jax.grad(ref, (0, 1)))(x, w), jax.jit(jax.grad(ours, (0, 1)))(x, w)):
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=RTOL, atol=1e-6 * float(jnp.abs(a).max()))


def test_other_convolutions_fall_back_to_lax():
  x = jnp.ones((1, 8, 8, 4))
  w = jnp.ones((3, 3, 2, 4))
  grouped = conv.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert grouped.shape == (1, 8, 8, 4)


def test_workloads_record_the_convolution_they_use():
  import workloads
  w = workloads.get("mnist1d_cnn")
  assert w.describe()["conv"] == ("cpu" if jax.default_backend() == "cpu" else "native")
  assert workloads.get("mnist1d_cnn", conv="native").describe()["conv"] == "native"
  with pytest.raises(ValueError, match="conv must be one of"):
    workloads.get("mnist1d_cnn", conv="fft")
