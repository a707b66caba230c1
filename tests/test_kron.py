"""Kron / PSGD (bench/kron.py; issue 21): against a NumPy float64 transcription of Li's
algorithm as kron_torch runs it (dense inverses and unfoldings instead of triangular
solves and mode products), its deterministic update schedule against kron_torch's
counter, packs (the fit stays a real branch under vmap with the shared step), range
errors, Choi levels and `python -m bench.train`."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bench import kron, optimizers
from optimizer_harness import (PARAMS, check_bad_value, check_choi_levels,
                               check_pack_equals_solo, check_trained, grads, pack_update,
                               primitives, second_point, train_all,
                               unordered_lapack_calls)

H = {"learning_rate": 3e-2, "beta1": 0.8, "weight_decay": 0.01, "preconditioner_lr": 0.2,
     "preconditioner_init_scale": 0.7}
STEPS = 6


# ----- the NumPy transcription (float64) -----

def np_schedule(n):
  """kron_torch: counter += 1; update iff counter >= 1 / p(t), then counter = 0."""
  out, counter = [], 0
  for t in range(n):
    p = np.float32(min(max(np.exp(np.float32(-0.001) * (np.float32(t) - np.float32(500))),
                           np.float32(0.03)), np.float32(1.0)))
    counter += 1
    out.append(counter >= 1 / p)
    if out[-1]:
      counter = 0
  return np.asarray(out)


def unfold(x, i):
  return np.moveaxis(x, i, 0).reshape(x.shape[i], -1)


def apply(x, m, i):
  """x with matrix m applied along dimension i."""
  return np.moveaxis(np.tensordot(m, x, axes=([1], [i])), 0, i)


def np_lower_bound(a):
  m = np.abs(a).max()
  if m == 0:
    return 0.0
  a = a / m
  x = a[:, np.argmax((a * a).sum(0))] @ a
  return m * np.linalg.norm(a @ (x / np.linalg.norm(x)))


def np_kron(h, params, steps, start=0):
  lr, b1, wd = h["learning_rate"], h["beta1"], h["weight_decay"]
  plr, scale = h["preconditioner_lr"], h["preconditioner_init_scale"]
  names = sorted(params)                    # the tree's leaf order
  theta = {k: np.asarray(params[k], np.float64) for k in names}
  tri = {k: [theta[k].ndim >= 2 and n > 1 for n in theta[k].shape] for k in names}
  Q = {k: [scale ** (1 / theta[k].ndim) * (np.eye(n) if t else np.ones(n))
           for n, t in zip(theta[k].shape, tri[k])] for k in names}
  mom = {k: np.zeros_like(theta[k]) for k in names}
  every = np_schedule(start + steps)
  out = []
  for t in range(1, steps + 1):
    s = start + t - 1
    g = {k: np.asarray(v, np.float64) for k, v in grads(
        {k: jnp.asarray(v, jnp.float32) for k, v in theta.items()}).items()}
    # the probes: the implementation's normal draws, as inputs
    vs = kron.probes(s, [jnp.zeros(theta[k].shape, jnp.float32) for k in names])
    new = {}
    for k, v in zip(names, vs):
      mom[k] = b1 * mom[k] + (1 - b1) * g[k]
      M = mom[k] / (1 - b1 ** t)
      mats = [np.diag(q) if q.ndim == 1 else q for q in Q[k]]
      if every[s]:
        v = np.asarray(v, np.float64)
        Hd = M + np.sqrt(np.finfo(np.float32).eps) * np.abs(M).mean() * v
        A, B = Hd, v
        for i, q in enumerate(mats):
          A = apply(A, q, i)
          B = apply(B, np.linalg.inv(q).T, i)
        fitted = []
        for i, q in enumerate(Q[k]):
          t1, t2 = unfold(A, i) @ unfold(A, i).T, unfold(B, i) @ unfold(B, i).T
          if q.ndim == 1:
            d1, d2 = np.diag(t1), np.diag(t2)
            fitted.append(q - plr / np.abs(d1 + d2).max() * (d1 - d2) * q)
          else:
            fitted.append(q - plr / np_lower_bound(t1 + t2) * np.triu(t1 - t2) @ q)
        Q[k] = fitted
        mats = [np.diag(q) if q.ndim == 1 else q for q in Q[k]]
      D = M
      for i, q in enumerate(mats):
        D = apply(D, q.T @ q, i)
      D = D / max(1.0, np.sqrt(np.mean(D * D)) / 1.1)
      new[k] = theta[k] - lr * (D + wd * theta[k])
    theta = new
    out.append(dict(theta))
  return out


def run_jax(h, params, steps, start=0, pass_step=True):
  tx = optimizers.build("kron", h, train_steps=steps)

  @jax.jit
  def run(p):
    def body(carry, i):
      p, st = carry
      extra = {"step": start + i} if pass_step else {}
      u, st = tx.update(grads(p), st, p, **extra)
      p = optax.apply_updates(p, u)
      return (p, st), p
    return jax.lax.scan(body, (p, tx.init(p)), jnp.arange(steps))[1]
  ps = run(params)
  return [jax.tree.map(lambda x: x[i], ps) for i in range(steps)]


# A matrix, a vector (diagonal factor), a 4-D kernel (four factors) and a 130 x 128 one.
SMALL = {k: PARAMS[k] for k in ("w", "b", "conv")}


def close(ours, ref, rtol=2e-4, atol=2e-5):
  for mine, theirs in zip(ours, ref):
    for k in theirs:
      np.testing.assert_allclose(np.asarray(mine[k]), theirs[k], rtol=rtol, atol=atol,
                                 err_msg=k)


def test_kron_is_its_numpy_transcription():
  close(run_jax(H, SMALL, STEPS), np_kron(H, SMALL, STEPS))


def test_kron_on_a_large_matrix_is_its_numpy_transcription():
  p = {"big": PARAMS["big"]}
  close(run_jax(H, p, 3), np_kron(H, p, 3), rtol=1e-3, atol=1e-5)


def test_kron_skips_the_fit_off_schedule():
  """From step 500 on kron_torch updates every other step, then ever more rarely."""
  ours, ref = run_jax(H, SMALL, STEPS, start=499), np_kron(H, SMALL, STEPS, start=499)
  close(ours, ref)
  assert not np_schedule(506)[[501, 503]].any()


def test_without_the_step_argument_the_count_drives_the_same_run():
  close(run_jax(H, SMALL, STEPS, pass_step=False),
        [jax.tree.map(np.asarray, p) for p in run_jax(H, SMALL, STEPS)], rtol=1e-6, atol=1e-7)


def test_the_schedule_is_kron_torchs_counter():
  n = 5000
  table = np.asarray(jax.jit(jax.vmap(kron.update_now))(jnp.arange(n)))
  np.testing.assert_array_equal(table, np_schedule(n))
  assert table[:500].all() and 100 < table.sum() < 1500


def test_the_preconditioner_whitens():
  """Q^T Q fitted to gradients of covariance C approaches C^(-1/2) (Li's fixed point:
  E[P g g^T P] = E[v v^T] = I), here for one 4 x 3 parameter's row factor."""
  rng = np.random.RandomState(1)
  c = np.diag([4.0, 1.0, 0.25, 0.0625])
  qs = [jnp.eye(4), jnp.eye(3)]
  fit = jax.jit(lambda qs, g, v: kron.fit(qs, g, v, 0.05))
  for t in range(3000):
    g = np.sqrt(c) @ rng.randn(4, 3)
    qs = fit(qs, jnp.asarray(g, jnp.float32), jnp.asarray(rng.randn(4, 3), jnp.float32))
  p_left = np.asarray(qs[0].T @ qs[0]) * np.trace(np.asarray(qs[1].T @ qs[1])) / 3
  got = np.diag(p_left) / np.diag(p_left)[-1]
  np.testing.assert_allclose(got, np.diag(c) ** -0.5 / np.diag(c)[-1] ** -0.5, rtol=0.3)


# ----- packs -----

def test_a_pack_of_two_equals_two_solo_runs():
  check_pack_equals_solo("kron", H, second_point(H, special={"preconditioner_lr": 0.05}))


def test_under_vmap_the_shared_step_keeps_the_fit_in_a_cond():
  """A per-lane count turns the fit's cond into a select (the fit every step); the
  shared `step` keeps a cond whose branch holds every triangular solve."""
  (shared, args), (per_lane, lane_args) = pack_update("kron", H, SMALL, grads, step=3,
                                                      steps=10)
  shared = primitives(jax.make_jaxpr(shared)(*args).jaxpr)
  solves = [inside for prim, inside in shared if prim == "triangular_solve"]
  assert solves and all(solves), shared
  per_lane = primitives(jax.make_jaxpr(per_lane)(*lane_args).jaxpr)
  solves = [inside for prim, inside in per_lane if prim == "triangular_solve"]
  assert solves and not any(solves)


def test_a_packs_fits_run_their_triangular_solves_one_at_a_time():
  """The leaves' fits in the compiled packed step are ordered by data (in_turn): a pack
  of 4 Kron lanes, whose solves are batched over lanes, hung jaxlib 0.10's CPU runtime."""
  (shared, args), _ = pack_update("kron", H, SMALL, grads, step=3, steps=10)
  compiled = jax.jit(shared).lower(*args).compile().as_text()
  assert compiled.count("lapack_strsm") > 2
  assert unordered_lapack_calls(compiled) == []


# ----- hyperparameters -----

@pytest.mark.parametrize("key,value,match", [
    ("preconditioner_lr", 1.0, "must be in (0, 1)"),
    ("preconditioner_lr", 0.0, "must be in (0, 1)"),
    ("preconditioner_init_scale", 0.0, "must be > 0"),
    ("beta1", 1.0, "must be in [0, 1)"),
    ("weight_decay", -1.0, "must be >= 0"),
])
def test_bad_values_are_one_clear_error(key, value, match):
  check_bad_value("kron", key, value, match)


def test_choi_levels_are_nested_and_their_points_resolve():
  spaces = check_choi_levels("kron")
  assert spaces[2]["preconditioner_lr"]["high"] < 1


def test_bench_train_trains_with_the_defaults(tmp_path_factory):
  check_trained(*train_all(["kron"], tmp_path_factory, "kron"), "kron")
