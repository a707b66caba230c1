"""A convolution whose gradients are forward convolutions, for CPUs.

On XLA's CPU backend a convolution's gradients are fast at the top level of a
program but far slower inside a loop: measured on 2 cores, the simple CNN's
second layer (5x5, 32 -> 64 channels, batch 128) takes 80 ms for the kernel
gradient alone and 3.7 s inside `lax.scan`, 43 ms vs 260 ms for the input
gradient, while the forward convolution is about as fast in a loop as out of
it. The train loop runs hundreds of steps per dispatch in a scan, so the
simple CNN trained at 0.2 steps/s. `conv_general_dilated` here has
lax.conv_general_dilated's signature (flax: `nn.Conv(...,
conv_general_dilated=conv_general_dilated)`) and a custom VJP that writes both
gradients as plain forward convolutions in canonical layout (the input
gradient: the output gradient, dilated by the stride, convolved with the
flipped kernel; the kernel gradient: the input with batch and channels
swapped, convolved with the output gradient as the kernel), which the CPU
backend runs at its fast-path speed inside loops too. The arithmetic is the
same as jax's own transpose rules up to float summation order
(tests/test_conv.py states the tolerance); other backends keep lax's
convolution (`for_backend`).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

IMPLEMENTATIONS = ("auto", "native", "cpu")


def _layout(nd: int) -> tuple[str, str, str]:
  """Channels-last names for nd spatial dimensions, e.g. ('NHWC', 'HWIO', 'NHWC')."""
  sp = "DHW"[-nd:] if nd <= 3 else None
  if sp is None:
    raise ValueError("at most 3 spatial dimensions")
  return f"N{sp}C", f"{sp}IO", f"N{sp}C"


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: Any, lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         precision: Any = None, **kwargs: Any) -> jax.Array:
  """lax.conv_general_dilated; channels-last, undilated, ungrouped
  convolutions (all of this project's) get the loop-friendly gradients."""
  nd = lhs.ndim - 2
  plain = (nd <= 3 and feature_group_count == 1 and not kwargs and
           all(d == 1 for d in (lhs_dilation or ())) and
           all(d == 1 for d in (rhs_dilation or ())) and
           lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) ==
           lax.conv_dimension_numbers(lhs.shape, rhs.shape, _layout(nd)))
  if not plain:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:-1], rhs.shape[:nd], window_strides, padding)
  return _conv(lhs, rhs, tuple(int(s) for s in window_strides),
               tuple((int(lo), int(hi)) for lo, hi in padding), precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, pads, precision):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_layout(x.ndim - 2),
                                  precision=precision)


def _conv_fwd(x, w, strides, pads, precision):
  return _conv(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, res, g):
  x, w = res
  nd = x.ndim - 2
  layout = _layout(nd)
  window = w.shape[:nd]
  size, out = x.shape[1:-1], g.shape[1:-1]
  # Whatever the strided windows skipped at the high end of each padded axis.
  rest = [size[i] + lo + hi - window[i] - strides[i] * (out[i] - 1)
          for i, (lo, hi) in enumerate(pads)]
  # d/dx: the output gradient, dilated by the stride, with the flipped kernel (io swapped).
  flipped = jnp.flip(w, axis=tuple(range(nd))).swapaxes(nd, nd + 1)
  dx = lax.conv_general_dilated(
      g, flipped, (1,) * nd,
      [(window[i] - 1 - lo, window[i] - 1 - hi + rest[i]) for i, (lo, hi) in enumerate(pads)],
      lhs_dilation=strides, dimension_numbers=layout, precision=precision)
  # d/dw: channels as the batch, the batch as channels, the output gradient as the kernel.
  xt = jnp.moveaxis(x, (0, nd + 1), (nd + 1, 0))        # C, spatial..., N
  gt = jnp.moveaxis(g, 0, nd)                           # spatial..., N, O
  dw = lax.conv_general_dilated(
      xt, gt, (1,) * nd, [(lo, hi - rest[i]) for i, (lo, hi) in enumerate(pads)],
      rhs_dilation=strides, dimension_numbers=layout, precision=precision)  # C, window..., O
  return dx.astype(x.dtype), jnp.moveaxis(dw, 0, nd).astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def resolve(impl: str) -> str:
  """'auto' -> 'cpu' on a CPU backend, else 'native' (asks JAX for its backend)."""
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"conv must be one of {', '.join(IMPLEMENTATIONS)}, got {impl!r}")
  if impl == "auto":
    return "cpu" if jax.default_backend() == "cpu" else "native"
  return impl


def _auto(*args: Any, **kwargs: Any) -> jax.Array:
  """Picks the implementation when traced, so building a model starts no backend."""
  fn = conv_general_dilated if resolve("auto") == "cpu" else lax.conv_general_dilated
  return fn(*args, **kwargs)


def choose(impl: str = "auto") -> tuple[Callable[..., jax.Array], str]:
  """(convolution, its name) to build models with: on a CPU backend ('auto')
  the one above, elsewhere lax's own; 'native' / 'cpu' force one."""
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"conv must be one of {', '.join(IMPLEMENTATIONS)}, got {impl!r}")
  fn = {"auto": _auto, "cpu": conv_general_dilated, "native": lax.conv_general_dilated}[impl]
  return fn, impl
