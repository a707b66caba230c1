"""Kron (PSGD with Kronecker-factored preconditioners) as an optax transformation.

Li 2018, "Preconditioner on Matrix Lie Group for SGD" (arXiv:1809.10232), and the Kron
form of Li's psgd_torch (Walters' kron_torch / psgd-jax): each parameter tensor G of
shape (n_1, ..., n_d) gets the preconditioner P = Q^T Q with Q = Q_1 (x) ... (x) Q_d, one
factor per dimension: an upper-triangular n_i x n_i matrix, or a diagonal (a vector) when
n_i = 1, n_i > MAX_SIZE_TRIANGULAR or d < 2 (vectors, scalars). X x_i M below is the
mode-i product (M applied to dimension i of X). With t = 1, 2, ...:

  m = beta1 m + (1 - beta1) g,  M = m / (1 - beta1^t)          (momentum, bias-corrected)
  on update steps (below), fit Q to M (momentum into the preconditioner update):
     V ~ N(0, I) (G's shape),  H = M + sqrt(eps_f32) mean|M| V    (damping)
     A = H x_1 Q_1 ... x_d Q_d,  B = V x_1 Q_1^-T ... x_d Q_d^-T
     per factor, from the old Q:  T1 = A_(i) A_(i)^T,  T2 = B_(i) B_(i)^T  (X_(i): X
     unfolded along dimension i; a diagonal factor takes only their diagonals)
        triangular:  Q_i <- Q_i - preconditioner_lr / lb(T1 + T2) triu(T1 - T2) Q_i
        diagonal:    q_i <- q_i - preconditioner_lr / max|T1 + T2| (T1 - T2) q_i
     (Li's gradient step on the Lie group of upper-triangular matrices, normalised by
     lb, a cheap lower bound of the spectral norm: psgd's one power step from the
     largest column)
  D = M x_1 Q_1^T Q_1 ... x_d Q_d^T Q_d,  D <- D / max(1, rms(D) / 1.1)   (psgd's clip)
  the step is -lr (D + weight_decay theta).
Q_i starts at preconditioner_init_scale^(1/d) I (psgd's precond_init_scale).

The update steps follow kron_torch's deterministic schedule: a counter that reaches
1 / p(t) with p(t) = clip(exp(-0.001 (t - 500)), 0.03, 1): every step for about the first
500, then ever more rarely, every 34th from about step 4000. (psgd-jax draws the same p
at random.) The schedule and the probe V depend only on the step, never on a lane's
values: the train step passes the step shared by a pack's lanes (optax extra argument
`step`, as for Shampoo and SOAP), so the fit's `lax.cond` stays a real branch under vmap
and runs only on update steps; V = normal(fold_in(key(0), step)) is the same for every
lane and for a solo run. Without `step` the state's own count is used. psgd's occasional
rebalancing of the factors' scales (random, about every 100 updates) leaves P unchanged
and is not done.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.preconditioners import in_turn

MAX_SIZE_TRIANGULAR = 8192      # psgd's max_size_triangular
CLIP_RMS = 1.1                  # psgd's _clip_update_rms
_HIGH = jax.lax.Precision.HIGHEST


# ----- the update schedule (kron_torch's counter, precomputed by step) -----

def update_probability(t):
  """psgd's precond_update_prob_schedule(1.0, 0.03, 0.001, flat_start=500)."""
  return np.clip(np.exp(np.float32(-0.001) * (np.float32(t) - np.float32(500))),
                 np.float32(0.03), np.float32(1.0)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def schedule_table() -> tuple[np.ndarray, int, int]:
  """(table, start, period): update at step s (0-based) iff table[s] for s < start,
  else iff (s - start) % period == 0; kron_torch's counter run step by step."""
  out, counter, s = [], 0, 0
  while True:
    counter += 1
    p = update_probability(s)
    do = counter >= 1 / p
    if do:
      counter = 0
    if do and p == np.float32(0.03) and s > 0:   # p stays at its floor from here on
      period = int(np.ceil(1 / np.float32(0.03)))
      return np.asarray(out, bool), s, period
    out.append(bool(do))
    s += 1


def update_now(step) -> jax.Array:
  table, start, period = schedule_table()
  s = jnp.asarray(step, jnp.int32)
  return jnp.where(s < start, jnp.asarray(table)[jnp.clip(s, 0, start - 1)],
                   (s - start) % period == 0)


def probes(step, tree) -> Any:
  """The standard normal probe V of each leaf at `step` (the same for every lane)."""
  leaves, treedef = jax.tree.flatten(tree)
  key = jax.random.fold_in(jax.random.PRNGKey(0), jnp.asarray(step, jnp.int32))
  keys = jax.random.split(key, max(1, len(leaves)))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                      for k, x in zip(keys, leaves)])


# ----- factors -----

def triangular_dims(shape: tuple[int, ...]) -> list[bool]:
  """Per dimension: a triangular factor (True) or a diagonal one."""
  return [len(shape) >= 2 and 1 < n <= MAX_SIZE_TRIANGULAR for n in shape]


def mode(x, q, i, transpose=False):
  """x x_i q (q a matrix: y[.., a, ..] = sum_b q[a, b] x[.., b, ..]; a vector: scaling)."""
  if q.ndim == 1:
    return x * q.reshape([-1 if j == i else 1 for j in range(x.ndim)])
  m = q.T if transpose else q
  return jnp.moveaxis(jnp.tensordot(m, x, axes=([1], [i]), precision=_HIGH), 0, i)


def mode_inverse_transpose(x, q, i):
  """x x_i q^-T (q upper triangular: a triangular solve; a vector: division)."""
  if q.ndim == 1:
    return x / q.reshape([-1 if j == i else 1 for j in range(x.ndim)])
  xm = jnp.moveaxis(x, i, 0)
  y = jax.scipy.linalg.solve_triangular(q, xm.reshape(xm.shape[0], -1), trans="T",
                                        lower=False)
  return jnp.moveaxis(y.reshape(xm.shape), 0, i)


def gram(x, i, diagonal):
  """X_(i) X_(i)^T (its diagonal when `diagonal`)."""
  if diagonal:
    return jnp.sum(x * x, axis=tuple(j for j in range(x.ndim) if j != i))
  xm = jnp.moveaxis(x, i, 0).reshape(x.shape[i], -1)
  return jnp.matmul(xm, xm.T, precision=_HIGH)


def norm_lower_bound(a):
  """psgd's cheap lower bound of a symmetric matrix's spectral norm: one power step
  from its largest column (0 for a zero matrix)."""
  m = jnp.max(jnp.abs(a))
  s = a / jnp.where(m > 0, m, 1.0)
  i = jnp.argmax(jnp.sum(s * s, axis=0))
  x = jnp.matmul(s[:, i], s, precision=_HIGH)
  nx = jnp.linalg.norm(x)
  x = x / jnp.where(nx > 0, nx, 1.0)
  return m * jnp.linalg.norm(jnp.matmul(s, x, precision=_HIGH))


_TINY = float(jnp.finfo(jnp.float32).tiny)


def fit(qs, h, v, preconditioner_lr):
  """One step of Li's fit of the factors qs to the damped momentum h with probe v."""
  a, b = h, v
  for i, q in enumerate(qs):
    a = mode(a, q, i)
    b = mode_inverse_transpose(b, q, i)
  out = []
  for i, q in enumerate(qs):
    t1, t2 = gram(a, i, q.ndim == 1), gram(b, i, q.ndim == 1)
    if q.ndim == 1:
      out.append(q - preconditioner_lr / (jnp.max(jnp.abs(t1 + t2)) + _TINY)
                 * (t1 - t2) * q)
    else:
      out.append(q - preconditioner_lr / (norm_lower_bound(t1 + t2) + _TINY)
                 * jnp.matmul(jnp.triu(t1 - t2), q, precision=_HIGH))
  return out


def precondition(qs, g):
  """g x_i Q_i^T Q_i for every i."""
  for i, q in enumerate(qs):
    g = mode(mode(g, q, i), q, i, transpose=True)
  return g


def clip_rms(u):
  rms = jnp.sqrt(jnp.mean(u * u))
  return u / jnp.maximum(1.0, rms / CLIP_RMS)


# ----- the transformation -----

class KronState(NamedTuple):
  count: jax.Array
  mu: Any          # momentum, parameter-shaped
  qs: Any          # per leaf: a list of factors, one per dimension (scalars as (1,))


def _shape(p) -> tuple[int, ...]:
  return tuple(p.shape) if p.ndim else (1,)


def scale_by_kron(beta1, preconditioner_lr, preconditioner_init_scale
                  ) -> optax.GradientTransformationExtraArgs:
  """Kron's direction (module docstring); every hyperparameter may be a traced value."""

  def init(params):
    leaves, treedef = jax.tree.flatten(params)
    qs = []
    for p in leaves:
      shape = _shape(p)
      scale = jnp.asarray(preconditioner_init_scale, p.dtype) ** (1.0 / len(shape))
      qs.append([scale * (jnp.eye(n, dtype=p.dtype) if tri else jnp.ones(n, p.dtype))
                 for n, tri in zip(shape, triangular_dims(shape))])
    return KronState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params),
                     jax.tree.unflatten(treedef, qs))

  def update(updates, state, params=None, *, step=None, **extra_args):
    del params, extra_args
    count = optax.safe_int32_increment(state.count)
    mu = jax.tree.map(lambda m, g: beta1 * m + (1 - beta1) * g, state.mu, updates)
    corrected = jax.tree.map(lambda m: m / (1 - beta1 ** count.astype(m.dtype)), mu)
    leaves, treedef = jax.tree.flatten(corrected)
    ms = [m.reshape(_shape(m)) for m in leaves]
    old = treedef.flatten_up_to(state.qs)
    s = state.count if step is None else step

    def refit(qs_all):
      vs = probes(s, ms)
      eps = jnp.sqrt(jnp.finfo(jnp.float32).eps)
      # The leaves' fits one at a time, as each holds triangular solves (in_turn).
      fit_leaf = lambda qs: lambda hv: fit(qs, hv[0], hv[1], preconditioner_lr)
      return in_turn([(fit_leaf(qs), (m + eps * jnp.mean(jnp.abs(m)) * v, v))
                      for qs, m, v in zip(qs_all, ms, vs)])

    qs = jax.lax.cond(update_now(s), refit, lambda q: q, old)
    out = [clip_rms(precondition(q, m)).reshape(g.shape)
           for q, m, g in zip(qs, ms, leaves)]
    return (jax.tree.unflatten(treedef, out),
            KronState(count, mu, jax.tree.unflatten(treedef, qs)))

  return optax.GradientTransformationExtraArgs(init, update)


def kron(learning_rate, beta1=0.9, weight_decay=0.0, preconditioner_lr=0.1,
         preconditioner_init_scale=1.0) -> optax.GradientTransformationExtraArgs:
  return optax.chain(scale_by_kron(beta1, preconditioner_lr, preconditioner_init_scale),
                     optax.add_decayed_weights(weight_decay),
                     optax.scale_by_learning_rate(learning_rate))
