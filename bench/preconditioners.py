"""Shampoo and SOAP as optax transformations, written from their papers.

Both see every parameter as a matrix (a scalar as 1x1, a vector as 1 x n, a tensor as
prod(leading dims) x last dim: a conv kernel HWIO as (H W I) x O) cut into blocks of at
most `block_size` x `block_size` (Anil et al. 2020, sec. 3: blocking keeps every
preconditioner small; the edge blocks are the remainders, no padding). A block side of
size 1 is not preconditioned. Per block G (the gradient's block), with t = 1, 2, ...:

  shampoo  (Gupta et al. 2018, "Shampoo: Preconditioned Stochastic Tensor Optimization";
            Anil et al. 2020, "Scalable Second Order Optimization for Deep Learning", the
            form that won AlgoPerf's external-tuning track)
     L = beta2 L + (1-beta2) G G^T,  R = beta2 R + (1-beta2) G^T G        (every step)
     every `precondition_frequency` steps (t = 1, 1+k, ...):
        P_L = (L + epsilon lmax(L) I)^(-e),  P_R likewise,
        e = exponent_multiplier / (2 s), s the number of preconditioned sides (Gupta et
        al.'s -1/4 per side of a matrix, -1/2 for a vector's one side)
     D = P_L G P_R,  grafted to the step size of Adam (shampoo) or SGD (shampoo_sgd):
        A = G / (sqrt(v / (1-beta2^t)) + graft_epsilon), v = beta2 v + (1-beta2) G^2
        (A = G for SGD);  D <- D |A|_F / |D|_F  (per block; 0 where |D| = 0)
     m = beta1 m + (1-beta1) D;  the step is -lr (m + weight_decay theta)
     The ridge epsilon is relative to the largest eigenvalue (scale-free), inverse roots
     by symmetric eigendecomposition (exact; Anil et al. use coupled Newton iterations
     for TPU speed).

  soap     (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam",
            Algorithm 3): Adam in the eigenbasis of Shampoo's statistics
     L, R as above (beta2, as their default shampoo_beta = beta2);
     every `precondition_frequency` steps: Q_L, Q_R = eigenvectors of L, R (eigh; the
     paper's cheaper QR power step is an approximation of this)
     M = beta1 M + (1-beta1) G                   (in the parameter's basis)
     G' = Q_L^T G Q_R;  V = beta2 V + (1-beta2) G'^2   (in the rotated basis)
     N = Q_L [ (Q_L^T M Q_R) / (1-beta1^t) / (sqrt(V / (1-beta2^t)) + epsilon) ] Q_R^T
     the step is -lr (N + weight_decay theta). Vectors and scalars get Adam (the
     paper's default: 1-D parameters are not rotated).

Ours, where the papers leave a choice: the preconditioners (eigenbases) are computed at
t = 1 from statistics that include the first gradient, so preconditioning starts at once
(SOAP's reference code spends its first step on this); statistics use beta2, the same
constant as the graft's / Adam's second moment.

Periodic work in packs: the every-k-steps eigendecompositions run under `lax.cond`. Under
a pack's vmap a cond on a per-lane counter becomes a select that runs both branches every
step; so `update` takes the optional extra argument `step` (optax's extra-args contract):
the number of updates done before this one, the same for every lane of a pack (the
harness's train step passes it). With it the condition is not batched and the
decomposition runs only on refresh steps; without it the state's own count is used
(right, but batched in a pack).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

# ----- blocks -----


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
  if len(shape) == 0:
    return 1, 1
  if len(shape) == 1:
    return 1, int(shape[0])
  return int(np.prod(shape[:-1])), int(shape[-1])


def _segments(d: int, b: int) -> list[tuple[int, int, int]]:
  """(start, count, size): full blocks of size b, then the remainder."""
  out = []
  if d // b:
    out.append((0, d // b, b))
  if d % b:
    out.append((d // b * b, 1, d % b))
  return out


def block_groups(shape: tuple[int, ...], b: int) -> list[tuple[tuple, tuple]]:
  """The (row segment, column segment) pairs of a parameter: each a group of blocks of
  one shape, stacked on a leading axis."""
  m, n = matrix_shape(shape)
  return [(r, c) for r in _segments(m, b) for c in _segments(n, b)]


def split(x: jax.Array, b: int) -> list[jax.Array]:
  """x -> [blocks (count, rows, cols)] per group (block_groups' order)."""
  X = x.reshape(matrix_shape(x.shape))
  out = []
  for (r0, rc, rs), (c0, cc, cs) in block_groups(x.shape, b):
    sub = X[r0:r0 + rc * rs, c0:c0 + cc * cs]
    out.append(sub.reshape(rc, rs, cc, cs).transpose(0, 2, 1, 3).reshape(rc * cc, rs, cs))
  return out


def merge(groups: list[jax.Array], shape: tuple[int, ...], b: int) -> jax.Array:
  """Inverse of split."""
  m, n = matrix_shape(shape)
  rows, it = [], iter(groups)
  for _, rc, rs in _segments(m, b):
    row = []
    for _, cc, cs in _segments(n, b):
      g = next(it)
      row.append(g.reshape(rc, cc, rs, cs).transpose(0, 2, 1, 3).reshape(rc * rs, cc * cs))
    rows.append(jnp.concatenate(row, 1))
  return jnp.concatenate(rows, 0).reshape(shape)


def _sides(g: jax.Array) -> tuple[bool, bool]:
  """Which sides of a block group are preconditioned (size > 1)."""
  return g.shape[1] > 1, g.shape[2] > 1


def _bmm(a, b):
  return jnp.einsum("kij,kjl->kil", a, b, precision=jax.lax.Precision.HIGHEST)


def _gram(g, left: bool):
  return _bmm(g, g.swapaxes(1, 2)) if left else _bmm(g.swapaxes(1, 2), g)


def inverse_root(a: jax.Array, power: Any, epsilon: Any) -> tuple[jax.Array, jax.Array]:
  """(A + epsilon lmax(A) I)^(-power) of symmetric PSD blocks A (k, d, d) as its
  eigenvectors Q and the weights w: the root is Q diag(w) Q^T. Kept factored, and
  applied as Q (w * (Q^T G)) (two products per side rather than three)."""
  a = (a + a.swapaxes(1, 2)) / 2
  q = eigenbasis(a)
  # The eigenvalues as Rayleigh quotients q_i^T A q_i (equal to eigh's own to
  # rounding): written so while chasing the hang that in_turn's docstring explains,
  # when reading eigh's eigenvalues seemed to be its trigger on mnist1d_mlp.
  lam = jnp.maximum(jnp.sum(q * _bmm(a, q), axis=1), 0.0)
  ridge = epsilon * jnp.maximum(lam.max(-1, keepdims=True), 1e-30)
  return q, (lam + ridge) ** (-power)


def apply_root(root: tuple[jax.Array, jax.Array], x: jax.Array, left: bool) -> jax.Array:
  """Q diag(w) Q^T x (left) or x Q diag(w) Q^T."""
  q, w = root
  if left:
    return _bmm(q, w[:, :, None] * _bmm(q.swapaxes(1, 2), x))
  return _bmm(_bmm(x, q) * w[:, None, :], q.swapaxes(1, 2))


def eigenbasis(a: jax.Array) -> jax.Array:
  return jnp.linalg.eigh((a + a.swapaxes(1, 2)) / 2)[1]


def in_turn(calls: list) -> list:
  """[fn(x) for fn, x in calls] (x an array or a tree of them), each call made to
  wait for the one before it.

  Why: jaxlib 0.10's CPU LAPACK kernels (eigh, triangular_solve, ...) split a batch
  over XLA's intra-op thread pool and block until its pieces finish. XLA runs
  independent kernels at once on that same pool, so with as many batched kernels in
  flight as the pool has threads (two on a 2-core machine) every thread waits for work
  that no thread is left to run: the process hangs with no CPU use (gdb: every
  tf_XLAEigen thread in BlockingCounter::Wait under jax::ParallelBatchMap). Shampoo
  on the byte-level LM and a pack of Kron lanes hung so. One kernel at a time leaves a
  thread for its pieces. The order is a data dependence: each input plus 0 times a
  finite number read from the previous output (XLA does not fold a float times 0, as
  NaN * 0 is NaN; an optimization barrier did not order the kernels)."""
  out = []
  for fn, x in calls:
    if out:
      dep = 0 * jnp.nan_to_num(jax.tree.leaves(out[-1])[0].reshape(-1)[0])
      x = jax.tree.map(lambda a: a + dep.astype(a.dtype), x)
    out.append(fn(x))
  return out


def _sides_in_turn(blocks, all_stats, *, decompose, skip):
  """Per leaf, block group and side (left, right) of the statistics all_stats:
  decompose(the group's sides)(statistic) on a preconditioned side, one call at a time
  (in_turn), else skip(statistic). blocks: per leaf its block groups (None: a leaf with
  no statistics). Shampoo's refresh (inverse roots) and SOAP's (eigenbases)."""
  calls = [(decompose(_sides(g)), a) for gs, st in zip(blocks, all_stats)
           for g, lr in zip(gs or [], st) for a, side in zip(lr, _sides(g)) if side]
  done = iter(in_turn(calls))
  return [[tuple(next(done) if side else skip(a) for a, side in zip(lr, _sides(g)))
           for g, lr in zip(gs or [], st)] for gs, st in zip(blocks, all_stats)]


def _refresh_now(step, count, frequency: int):
  s = count if step is None else jnp.asarray(step, jnp.int32)
  return s % frequency == 0


def _when(pred, fn, old, arg):
  """fn(arg) if pred else old (lax.cond: a real branch when pred is not batched)."""
  return jax.lax.cond(pred, fn, lambda _: old, arg)


# ----- Shampoo -----


class ShampooState(NamedTuple):
  count: jax.Array
  mu: Any          # momentum, parameter-shaped
  nu: Any          # graft's second moment (Adam graft), parameter-shaped
  stats: Any       # per leaf, per group: (L, R)
  precond: Any     # per leaf, per group: (P_L, P_R)


def scale_by_shampoo(beta1, beta2, graft_epsilon, matrix_epsilon, exponent_multiplier, *,
                     block_size: int, precondition_frequency: int, graft: str = "adam"
                     ) -> optax.GradientTransformationExtraArgs:
  """Shampoo's direction, grafted and with momentum (module docstring). Numeric
  hyperparameters may be traced values; block_size, precondition_frequency and graft
  shape the program."""
  b, k = int(block_size), int(precondition_frequency)
  if graft not in ("adam", "sgd"):
    raise ValueError(f"graft must be 'adam' or 'sgd', got {graft!r}")

  def init(params):
    leaves, treedef = jax.tree.flatten(params)
    stats, precond = [], []
    for p in leaves:
      gs = split(jnp.zeros_like(p), b)
      stats.append([(jnp.zeros((g.shape[0], g.shape[1], g.shape[1]), p.dtype),
                     jnp.zeros((g.shape[0], g.shape[2], g.shape[2]), p.dtype)) for g in gs])
      precond.append([((jnp.zeros_like(l), jnp.zeros(l.shape[:2], p.dtype)),
                       (jnp.zeros_like(r), jnp.zeros(r.shape[:2], p.dtype)))
                      for l, r in stats[-1]])
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return ShampooState(jnp.zeros([], jnp.int32), zeros(), zeros(),
                        jax.tree.unflatten(treedef, stats),
                        jax.tree.unflatten(treedef, precond))

  def update(updates, state, params=None, *, step=None, **extra_args):
    del params, extra_args
    count = optax.safe_int32_increment(state.count)
    t = count.astype(jnp.float32)
    leaves, treedef = jax.tree.flatten(updates)
    stats = treedef.flatten_up_to(state.stats)
    blocks = [split(g, b) for g in leaves]
    new_stats = []
    for gs, st in zip(blocks, stats):
      new_stats.append([(beta2 * l + (1 - beta2) * _gram(g, True),
                         beta2 * r + (1 - beta2) * _gram(g, False))
                        for g, (l, r) in zip(gs, st)])

    def root(sides):
      power = exponent_multiplier / (2 * max(1, sum(sides)))
      return functools.partial(inverse_root, power=power, epsilon=matrix_epsilon)

    refresh = functools.partial(
        _sides_in_turn, blocks, decompose=root,
        skip=lambda a: (a, jnp.zeros(a.shape[:2], a.dtype)))

    old = treedef.flatten_up_to(state.precond)
    precond = _when(_refresh_now(step, state.count, k), refresh, old, new_stats)
    nu = jax.tree.map(lambda v, g: beta2 * v + (1 - beta2) * g * g, state.nu, updates)
    if graft == "adam":
      graft_dir = jax.tree.map(
          lambda g, v: g / (jnp.sqrt(v / (1 - beta2 ** t)) + graft_epsilon), updates, nu)
    else:
      graft_dir = updates
    directions = []
    for g_leaf, gs, pre, a_leaf in zip(leaves, blocks, precond,
                                       treedef.flatten_up_to(graft_dir)):
      out = []
      for g, (pl, pr), a in zip(gs, pre, split(a_leaf, b)):
        sides = _sides(g)
        d = apply_root(pl, g, True) if sides[0] else g
        d = apply_root(pr, d, False) if sides[1] else d
        dn = jnp.sqrt(jnp.sum(d * d, axis=(1, 2), keepdims=True))
        an = jnp.sqrt(jnp.sum(a * a, axis=(1, 2), keepdims=True))
        out.append(jnp.where(dn > 0, d * an / jnp.where(dn > 0, dn, 1.0), 0.0))
      directions.append(merge(out, g_leaf.shape, b))
    direction = jax.tree.unflatten(treedef, directions)
    mu = jax.tree.map(lambda m, d: beta1 * m + (1 - beta1) * d, state.mu, direction)
    return mu, ShampooState(count, mu, nu, jax.tree.unflatten(treedef, new_stats),
                            jax.tree.unflatten(treedef, precond))

  return optax.GradientTransformationExtraArgs(init, update)


# ----- SOAP -----


class SoapState(NamedTuple):
  count: jax.Array
  mu: Any          # first moment, parameter-shaped (parameter basis)
  nu: Any          # per leaf, per group: second moment in the rotated basis
  stats: Any       # per leaf, per group: (L, R)
  basis: Any       # per leaf, per group: (Q_L, Q_R)


def _rotated(p) -> bool:
  return p.ndim >= 2


def scale_by_soap(beta1, beta2, epsilon, *, block_size: int, precondition_frequency: int
                  ) -> optax.GradientTransformationExtraArgs:
  """SOAP's direction (module docstring); block_size and precondition_frequency shape
  the program, the rest may be traced values."""
  b, k = int(block_size), int(precondition_frequency)

  def init(params):
    leaves, treedef = jax.tree.flatten(params)
    nu, stats, basis = [], [], []
    for p in leaves:
      gs = split(jnp.zeros_like(p), b) if _rotated(p) else []
      nu.append([jnp.zeros_like(g) for g in gs] if gs else jnp.zeros_like(p))
      stats.append([(jnp.zeros((g.shape[0], g.shape[1], g.shape[1]), p.dtype),
                     jnp.zeros((g.shape[0], g.shape[2], g.shape[2]), p.dtype)) for g in gs])
      basis.append([(jnp.zeros_like(l), jnp.zeros_like(r)) for l, r in stats[-1]])
    return SoapState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params),
                     jax.tree.unflatten(treedef, nu), jax.tree.unflatten(treedef, stats),
                     jax.tree.unflatten(treedef, basis))

  def update(updates, state, params=None, *, step=None, **extra_args):
    del params, extra_args
    count = optax.safe_int32_increment(state.count)
    t = count.astype(jnp.float32)
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
    leaves, treedef = jax.tree.flatten(updates)
    mu = jax.tree.map(lambda m, g: beta1 * m + (1 - beta1) * g, state.mu, updates)
    mus = treedef.flatten_up_to(mu)
    nus = treedef.flatten_up_to(state.nu)
    blocks = [split(g, b) if _rotated(g) else None for g in leaves]
    new_stats = []
    for gs, st in zip(blocks, treedef.flatten_up_to(state.stats)):
      new_stats.append([] if gs is None else
                       [(beta2 * l + (1 - beta2) * _gram(g, True),
                         beta2 * r + (1 - beta2) * _gram(g, False))
                        for g, (l, r) in zip(gs, st)])

    refresh = functools.partial(_sides_in_turn, blocks, decompose=lambda sides: eigenbasis,
                                skip=jnp.ones_like)

    old = treedef.flatten_up_to(state.basis)
    basis = _when(_refresh_now(step, state.count, k), refresh, old, new_stats)
    out, new_nu = [], []
    for g_leaf, gs, m_leaf, v_leaf, qs in zip(leaves, blocks, mus, nus, basis):
      if gs is None:  # Adam
        v = beta2 * v_leaf + (1 - beta2) * g_leaf * g_leaf
        out.append(m_leaf / c1 / (jnp.sqrt(v / c2) + epsilon))
        new_nu.append(v)
        continue
      dirs, vs = [], []
      for g, m, v, (ql, qr) in zip(gs, split(m_leaf, b), v_leaf, qs):
        rot = lambda x, ql=ql, qr=qr: _bmm(_bmm(ql.swapaxes(1, 2), x), qr)
        v = beta2 * v + (1 - beta2) * jnp.square(rot(g))
        n = rot(m) / c1 / (jnp.sqrt(v / c2) + epsilon)
        dirs.append(_bmm(_bmm(ql, n), qr.swapaxes(1, 2)))
        vs.append(v)
      out.append(merge(dirs, g_leaf.shape, b))
      new_nu.append(vs)
    return (jax.tree.unflatten(treedef, out),
            SoapState(count, mu, jax.tree.unflatten(treedef, new_nu),
                      jax.tree.unflatten(treedef, new_stats),
                      jax.tree.unflatten(treedef, basis)))

  return optax.GradientTransformationExtraArgs(init, update)
