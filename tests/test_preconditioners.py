"""Shampoo and SOAP (bench/preconditioners.py, registered as shampoo, shampoo_sgd, soap):
each against a NumPy float64 transcription of its paper's algorithm (blocks, grafting,
refresh every k steps), their block split, packs equal to solo runs, the shared-step
contract that keeps the periodic eigendecompositions out of the other steps under a
pack's vmap, those decompositions one at a time (bench.preconditioners.in_turn), range
checks and Choi-style spaces."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bench import optimizers, preconditioners as pc
from protocols import presets
from optimizer_harness import (check_bad_value, check_choi_levels, check_pack_equals_solo,
                               check_trained, pack_update, primitives, train_all,
                               unordered_lapack_calls)

STEPS = 7
_rng = np.random.RandomState(3)
# A matrix cut into 4x4, 4x3, 2x4, 2x3 blocks (block_size 4), a vector (one side), a
# conv kernel as an 18 x 4 matrix (a remainder block of 2 rows), a 9 x 5 matrix (a
# remainder of 1 row: one preconditioned side) and a scalar (no side).
PARAMS = {"w": _rng.randn(10, 7), "b": _rng.randn(5), "conv": _rng.randn(3, 3, 2, 4) * 0.5,
          "thin": _rng.randn(9, 5), "s": np.array(0.7)}
CURV = {k: _rng.uniform(0.5, 3.0, np.shape(v)) for k, v in PARAMS.items()}
CENTRE = {k: _rng.randn(*np.shape(v)) * 0.3 for k, v in PARAMS.items()}
MIX = {k: _rng.randn(np.size(v), np.size(v)) * 0.3 for k, v in PARAMS.items()}
# Square 4x4 blocks of full-rank gradients (a unique eigenbasis up to signs).
SQUARE = {"sq": _rng.randn(8, 4), "b": PARAMS["b"]}
CURV["sq"] = _rng.uniform(0.5, 3.0, (8, 4))
CENTRE["sq"] = _rng.randn(8, 4) * 0.3
MIX["sq"] = _rng.randn(32, 32) * 0.3


def grads_np(p):
  """A non-separable quadratic per leaf: g = (D + M M^T / n)(x - c), so the gradients
  have full-rank, correlated statistics."""
  out = {}
  for k, x in p.items():
    d = (np.asarray(x) - CENTRE[k]).reshape(-1)
    h = np.diag(CURV[k].reshape(-1)) + MIX[k] @ MIX[k].T / max(1, d.size)
    out[k] = (h @ d).reshape(np.shape(x))
  return out


def grads_jax(p):
  out = {}
  for k, x in p.items():
    d = (x - jnp.asarray(CENTRE[k], jnp.float32)).reshape(-1)
    h = jnp.asarray(np.diag(CURV[k].reshape(-1)) + MIX[k] @ MIX[k].T / max(1, d.size),
                    jnp.float32)
    out[k] = (h @ d).reshape(x.shape)
  return out


def run_jax(name, h, steps=STEPS, params=None):
  tx = optimizers.build(name, h, train_steps=steps)
  p = {k: jnp.asarray(v, jnp.float32) for k, v in (params or PARAMS).items()}

  @jax.jit
  def run(p):
    def body(carry, i):
      p, s = carry
      u, s = tx.update(grads_jax(p), s, p)
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(body, (p, tx.init(p)), jnp.arange(steps))[0][0]
  return {k: np.asarray(v, np.float64) for k, v in run(p).items()}


# ----- NumPy transcriptions -----

def _mat(x):
  return x.reshape(pc.matrix_shape(np.shape(x)))


def _blocks(m, n, b):
  return [(slice(i, min(i + b, m)), slice(j, min(j + b, n)))
          for i in range(0, m, b) for j in range(0, n, b)]


def np_inverse_root(a, power, eps):
  lam, q = np.linalg.eigh(a)
  lam = np.maximum(lam, 0)
  return (q * (lam + eps * max(lam.max(), 1e-30)) ** -power) @ q.T


def _update_stats(stats, block, gb, b2):
  """Shampoo's (and SOAP's) statistics of one block: L, R moving averages of G G^T, G^T G."""
  L, R = stats.get(block, (0.0, 0.0))
  stats[block] = (b2 * L + (1 - b2) * gb @ gb.T, b2 * R + (1 - b2) * gb.T @ gb)
  return stats[block]


def shampoo_np(h, graft, steps=STEPS):
  """Gupta et al. 2018 / Anil et al. 2020 as in bench/preconditioners.py's docstring."""
  b, k = int(h["block_size"]), int(h["precondition_frequency"])
  b1, b2 = h["beta1"], h["beta2"]
  theta = {key: np.array(v, np.float64) for key, v in PARAMS.items()}
  mom = {key: np.zeros(np.shape(v)) for key, v in theta.items()}
  nu = {key: np.zeros(np.shape(v)) for key, v in theta.items()}
  stats, pre = {}, {}
  for t in range(1, steps + 1):
    g = grads_np(theta)
    for key in theta:
      G = _mat(g[key])
      nu[key] = b2 * nu[key] + (1 - b2) * g[key] ** 2
      A = _mat(g[key] / (np.sqrt(nu[key] / (1 - b2 ** t)) + h["epsilon"])
               if graft == "adam" else g[key])
      D = np.zeros_like(G)
      for i, (r, c) in enumerate(_blocks(*G.shape, b)):
        gb = G[r, c]
        L, R = _update_stats(stats, (key, i), gb, b2)
        left, right = gb.shape[0] > 1, gb.shape[1] > 1
        power = h["exponent_multiplier"] / (2 * max(1, left + right))
        if (t - 1) % k == 0:
          pre[key, i] = (np_inverse_root(L, power, h["matrix_epsilon"]) if left else None,
                         np_inverse_root(R, power, h["matrix_epsilon"]) if right else None)
        pl, pr = pre[key, i]
        d = gb
        d = pl @ d if left else d
        d = d @ pr if right else d
        dn = np.linalg.norm(d)
        D[r, c] = d * np.linalg.norm(A[r, c]) / dn if dn > 0 else 0.0
      mom[key] = b1 * mom[key] + (1 - b1) * D.reshape(np.shape(theta[key]))
      theta[key] = theta[key] - h["learning_rate"] * (mom[key] + h["weight_decay"] * theta[key])
  return theta


def soap_np(h, steps=STEPS, params=None):
  """Vyas et al. 2024, Algorithm 3, as in bench/preconditioners.py's docstring."""
  b, k = int(h["block_size"]), int(h["precondition_frequency"])
  b1, b2, eps = h["beta1"], h["beta2"], h["epsilon"]
  theta = {key: np.array(v, np.float64) for key, v in (params or PARAMS).items()}
  m = {key: np.zeros(np.shape(v)) for key, v in theta.items()}
  v = {key: np.zeros(np.shape(x)) for key, x in theta.items()}
  stats, basis = {}, {}
  for t in range(1, steps + 1):
    g = grads_np(theta)
    for key in theta:
      m[key] = b1 * m[key] + (1 - b1) * g[key]
      if np.ndim(theta[key]) < 2:  # Adam
        v[key] = b2 * v[key] + (1 - b2) * g[key] ** 2
        n = m[key] / (1 - b1 ** t) / (np.sqrt(v[key] / (1 - b2 ** t)) + eps)
      else:
        G, M, V = _mat(g[key]), _mat(m[key]), _mat(v[key])
        N = np.zeros_like(G)
        for i, (r, c) in enumerate(_blocks(*G.shape, b)):
          gb = G[r, c]
          L, R = _update_stats(stats, (key, i), gb, b2)
          if (t - 1) % k == 0:
            basis[key, i] = (np.linalg.eigh(L)[1], np.linalg.eigh(R)[1])
          ql, qr = basis[key, i]
          V[r, c] = b2 * V[r, c] + (1 - b2) * (ql.T @ gb @ qr) ** 2
          nb = (ql.T @ M[r, c] @ qr) / (1 - b1 ** t) / (np.sqrt(V[r, c] / (1 - b2 ** t)) + eps)
          N[r, c] = ql @ nb @ qr.T
        v[key] = V.reshape(np.shape(theta[key]))
        n = N.reshape(np.shape(theta[key]))
      theta[key] = theta[key] - h["learning_rate"] * (n + h["weight_decay"] * theta[key])
  return theta


SHAMPOO = {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6,
           "weight_decay": 0.01, "matrix_epsilon": 1e-3, "exponent_multiplier": 1.3,
           "block_size": 4, "precondition_frequency": 3}
# SOAP's epsilon 1e-2 here: in a direction where the statistics are (numerically) null,
# float32 rounding leaves ~1e-7 in both the rotated momentum and sqrt(V), and Adam's
# ratio turns that into a step of ~1e-7 / epsilon (at 1e-3: 1e-3 differences from the
# float64 transcription after 7 steps; at 1e-1: 1.5e-6).
SOAP = {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.9, "epsilon": 1e-2,
        "weight_decay": 0.01, "block_size": 4, "precondition_frequency": 1}
CASES = {"shampoo": SHAMPOO, "soap": SOAP}


def _close(ours, ref, rtol=2e-4, atol=2e-5):
  for key in ref:
    np.testing.assert_allclose(ours[key], ref[key], rtol=rtol, atol=atol, err_msg=key)


@pytest.mark.parametrize("graft", ["adam", "sgd"])
@pytest.mark.parametrize("frequency", [1, 3])
def test_shampoo_is_its_numpy_transcription(graft, frequency):
  h = {**SHAMPOO, "precondition_frequency": frequency}
  name = "shampoo" if graft == "adam" else "shampoo_sgd"
  ref = shampoo_np(h, graft)
  _close(run_jax(name, {k: v for k, v in h.items()
                        if k in optimizers.entry(name).defaults}), ref)
  assert not np.allclose(ref["w"], PARAMS["w"], atol=1e-3)


def test_shampoo_preconditioning_changes_the_step():
  """Not only the graft: a huge ridge makes the preconditioner a multiple of I, so the
  step becomes grafted Adam's (shampoo differs from it at a small ridge)."""
  ridge = {**SHAMPOO, "matrix_epsilon": 1e6}
  assert not np.allclose(run_jax("shampoo", ridge)["w"], run_jax("shampoo", SHAMPOO)["w"],
                         atol=1e-4)


def test_soap_is_its_numpy_transcription():
  """Refreshed every step, SOAP's result does not depend on the arbitrary basis eigh
  picks in the statistics' null space (every moment lies in their range)."""
  ref = soap_np(SOAP)
  _close(run_jax("soap", SOAP), ref)
  assert not np.allclose(ref["w"], PARAMS["w"], atol=1e-3)


def test_soap_with_a_stale_basis_is_its_numpy_transcription():
  """Every 3 steps, on square full-rank blocks (a unique eigenbasis up to signs)."""
  h = {**SOAP, "precondition_frequency": 3, "epsilon": 1e-3}
  _close(run_jax("soap", h, params=SQUARE), soap_np(h, params=SQUARE))


def test_block_split_round_trips():
  b = 4
  for shape in [(), (5,), (10, 7), (3, 3, 2, 4), (9, 5), (4, 4), (130, 3)]:
    x = jnp.arange(int(np.prod(shape)), dtype=jnp.float32).reshape(shape)
    groups = pc.split(x, b)
    assert all(g.shape[1] <= b and g.shape[2] <= b for g in groups)
    assert sum(g.size for g in groups) == x.size
    np.testing.assert_array_equal(pc.merge(groups, shape, b), x)


# ----- packs and the shared step -----

def _second(h):
  return {k: (v if k in ("block_size", "precondition_frequency") else
              1 - (1 - v) * 1.5 if k.startswith("beta") else v * 2) for k, v in h.items()}


@pytest.mark.parametrize("name", ["shampoo", "soap"])
@pytest.mark.parametrize("shared_step", [False, True])
def test_a_pack_of_two_equals_two_solo_runs(name, shared_step):
  h = {**CASES[name], "precondition_frequency": 3}
  # SOAP on SQUARE: refreshed every 3 steps, a basis eigh picks in the statistics' null
  # space (the rank-deficient blocks of PARAMS) is arbitrary, and so are the next
  # steps' components there: lanes and solo runs may pick differently.
  params = SQUARE if name == "soap" else PARAMS
  p0 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}

  def run(tx):
    def body(carry, i):
      p, s = carry
      extra = {"step": i} if shared_step else {}
      u, s = tx.update(grads_jax(p), s, p, **extra)
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(body, (p0, tx.init(p0)), jnp.arange(STEPS))[0][0]

  # Batched and single matrix products and eigh round differently in float32, and an
  # inverse root amplifies that in ill-conditioned directions (lane b's exponent 2.6:
  # power 0.65): 1e-3 here, not the elementwise rules' 1e-5.
  check_pack_equals_solo(name, h, _second(h), run=run, steps=STEPS, rtol=1e-3, atol=1e-4,
                         differ="b")


@pytest.mark.parametrize("name", ["shampoo", "soap"])
def test_under_vmap_the_shared_step_keeps_eigh_in_a_cond(name):
  """A per-lane counter turns the refresh's cond into a select (eigh every step); the
  shared `step` extra argument keeps a cond whose branch holds every eigh."""
  (shared, args), (per_lane, lane_args) = pack_update(name, CASES[name], PARAMS, grads_jax,
                                                      step=jnp.int32(0), steps=STEPS)
  shared = jax.make_jaxpr(shared)(*args)
  prims = primitives(shared.jaxpr)
  eighs = [inside for prim, inside in prims if prim == "eigh"]
  assert eighs and all(eighs), prims
  per_lane = jax.make_jaxpr(per_lane)(*lane_args)
  prims = primitives(per_lane.jaxpr)
  assert [p for p, inside in prims if p == "eigh"] and not any(
      inside for p, inside in prims if p == "eigh")


@pytest.mark.parametrize("name", ["shampoo", "soap"])
def test_a_packs_eigendecompositions_run_one_at_a_time(name):
  """The compiled packed step orders its refresh's batched eighs by data (in_turn): two
  at once hung jaxlib 0.10's CPU runtime (Shampoo on the byte-level LM). Without
  in_turn, this program has independent pairs."""
  (shared, args), _ = pack_update(name, CASES[name], PARAMS, grads_jax, step=jnp.int32(0),
                                  steps=STEPS)
  compiled = jax.jit(shared).lower(*args).compile().as_text()
  assert compiled.count("lapack_ssyevd") > 2
  assert unordered_lapack_calls(compiled) == []


# ----- hyperparameters -----

@pytest.mark.parametrize("name,key,value,match", [
    ("shampoo", "block_size", 0, "must be an integer >= 1"),
    ("shampoo", "block_size", 2.5, "must be an integer >= 1"),
    ("soap", "precondition_frequency", 0, "must be an integer >= 1"),
    ("shampoo", "matrix_epsilon", 0.0, "must be > 0"),
    ("shampoo", "exponent_multiplier", -1.0, "must be > 0"),
    ("soap", "beta2", 1.0, "must be in [0, 1)"),
])
def test_bad_values_are_one_clear_error(name, key, value, match):
  check_bad_value(name, key, value, match)


def test_block_size_and_frequency_shape_the_program_the_rest_are_values():
  a = optimizers.program_key("shampoo", {"block_size": 64})
  assert a != optimizers.program_key("shampoo", {"block_size": 128})
  assert a == optimizers.program_key("shampoo", {"block_size": 64, "matrix_epsilon": 1e-3,
                                                 "exponent_multiplier": 2.0})
  _, values = optimizers.factory("soap", {}, train_steps=10)
  assert "block_size" not in values and "beta2" in values


@pytest.mark.parametrize("name", presets.PRECONDITIONER_OPTIMIZERS)
def test_choi_levels_are_nested_and_their_points_resolve(name):
  check_choi_levels(name, num_trials=8)


# ----- python -m bench.train with the defaults -----

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  return train_all(presets.PRECONDITIONER_OPTIMIZERS, tmp_path_factory, "train")


@pytest.mark.parametrize("name", presets.PRECONDITIONER_OPTIMIZERS)
def test_bench_train_trains_with_the_defaults(trained, name):
  check_trained(*trained, name)
