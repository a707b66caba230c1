"""Every optimizer against a direct NumPy transcription of the Tuning Playbook
FAQ's update rules, over several steps of a quadratic, under a schedule."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bench import optimizers

jax.config.update("jax_enable_x64", False)

A = np.diag([1.0, 3.0, 0.5]).astype(np.float64)
THETA0 = np.array([1.0, -2.0, 0.5])
STEPS = 6


def grad(theta):
  return A @ theta  # loss = 0.5 theta^T A theta


def lr_at(t, lr, decay_factor=0.1, decay_steps=4):
  """linear_decay schedule: lr -> lr*decay_factor over decay_steps, then constant."""
  frac = min(t, decay_steps) / decay_steps
  return lr + (lr * decay_factor - lr) * frac


def reference(name, h, steps=STEPS):
  """The playbook FAQ rules, verbatim."""
  theta = THETA0.copy()
  v = np.zeros(3) if name != "rmsprop" else np.ones(3)
  m = np.zeros(3)
  for t in range(steps):
    g = grad(theta)
    eta = lr_at(t, h["learning_rate"])
    if name == "sgd":
      theta = theta - eta * g
    elif name == "momentum":
      v = h["momentum"] * v + g
      theta = theta - eta * v
    elif name == "nesterov":
      v = h["momentum"] * v + g
      theta = theta - eta * (h["momentum"] * v + g)
    elif name == "rmsprop":
      v = h["rho"] * v + (1 - h["rho"]) * g ** 2
      m = h["momentum"] * m + eta / np.sqrt(v + h["epsilon"]) * g
      theta = theta - m
    elif name in ("adam", "nadam", "adamw", "nadamw"):
      b1, b2, eps = h["beta1"], h["beta2"], h["epsilon"]
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g ** 2
      b = np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
      num = m if name in ("adam", "adamw") else b1 * m + (1 - b1) * g
      step = num / (np.sqrt(v) + eps) * b
      if name.endswith("w"):
        step = step + h["weight_decay"] * theta
      theta = theta - eta * step
  return theta


def run_optax(name, h, steps=STEPS):
  hp = {**h, "schedule": "linear_decay", "decay_factor": 0.1, "decay_steps": 4}
  tx = optimizers.build(name, hp)
  theta = jnp.asarray(THETA0, jnp.float32)
  state = tx.init(theta)
  for _ in range(steps):
    g = jnp.asarray(A, jnp.float32) @ theta
    u, state = tx.update(g, state, theta)
    theta = optax.apply_updates(theta, u)
  return np.asarray(theta, np.float64)


CASES = {
    "sgd": {"learning_rate": 0.3},
    "momentum": {"learning_rate": 0.1, "momentum": 0.9},
    "nesterov": {"learning_rate": 0.1, "momentum": 0.9},
    "rmsprop": {"learning_rate": 0.05, "momentum": 0.8, "rho": 0.9, "epsilon": 0.01},
    "adam": {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.95, "epsilon": 0.1},
    "nadam": {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.95, "epsilon": 0.1},
    "adamw": {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.95, "epsilon": 0.1, "weight_decay": 0.3},
    "nadamw": {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.95, "epsilon": 0.1, "weight_decay": 0.3},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_playbook_rules(name):
  np.testing.assert_allclose(run_optax(name, CASES[name]), reference(name, CASES[name]),
                             rtol=2e-5, atol=1e-6)


def test_reference_is_sensitive_to_rule_details():
  """The check above can fail: optax.adam's eps placement gives other numbers."""
  h = CASES["adam"]
  tx = optax.chain(optax.scale_by_adam(b1=h["beta1"], b2=h["beta2"], eps=h["epsilon"]),
                   optax.scale_by_learning_rate(h["learning_rate"]))
  theta = jnp.asarray(THETA0, jnp.float32)
  state = tx.init(theta)
  for _ in range(STEPS):
    u, state = tx.update(jnp.asarray(A, jnp.float32) @ theta, state, theta)
    theta = optax.apply_updates(theta, u)
  ref = reference("adam", {**h}, STEPS)
  assert not np.allclose(np.asarray(theta), ref, rtol=1e-3)


# ----- Choi et al.'s inclusion limits -----

def test_momentum_zero_is_sgd():
  np.testing.assert_allclose(run_optax("momentum", {"learning_rate": 0.2, "momentum": 0.0}),
                             run_optax("sgd", {"learning_rate": 0.2}), rtol=1e-6)


def test_nesterov_zero_is_sgd():
  np.testing.assert_allclose(run_optax("nesterov", {"learning_rate": 0.2, "momentum": 0.0}),
                             run_optax("sgd", {"learning_rate": 0.2}), rtol=1e-6)


def test_adam_with_huge_epsilon_approaches_momentum():
  """eps >> sqrt(v), lr/eps fixed: adam -> momentum with lr' = lr/eps*(1-b1)*b_t ~ heavy ball
  with (1-beta1)-scaled EMA; compare against its own EMA-momentum form."""
  b1, lr_over_eps = 0.9, 0.05
  for eps in (1e3, 1e6):
    h = {"learning_rate": lr_over_eps * eps, "beta1": b1, "beta2": 0.999, "epsilon": eps}
    theta = THETA0.copy()
    m = np.zeros(3)
    for t in range(STEPS):
      g = grad(theta)
      m = b1 * m + (1 - b1) * g
      b = np.sqrt(1 - 0.999 ** (t + 1)) / (1 - b1 ** (t + 1))
      theta = theta - lr_at(t, lr_over_eps) * m * b
    err = np.abs(run_optax("adam", h) - theta).max()
    assert err < (1e-2 if eps == 1e3 else 1e-4), (eps, err)


def test_adam_huge_epsilon_equals_momentum_without_bias_correction():
  """With beta2 = 0 the correction b_t = 1/(1-beta1^t); as beta1 -> 0 adam with
  huge eps is plain SGD at lr/eps -- the inclusion SGD ⊆ Adam."""
  eps = 1e7
  adam = run_optax("adam", {"learning_rate": 0.2 * eps, "beta1": 0.0, "beta2": 0.0, "epsilon": eps})
  np.testing.assert_allclose(adam, run_optax("sgd", {"learning_rate": 0.2}), rtol=1e-4)


def test_nadam_zero_beta1_is_adam():
  h = {"learning_rate": 0.1, "beta1": 0.0, "beta2": 0.95, "epsilon": 0.1}
  np.testing.assert_allclose(run_optax("nadam", h), run_optax("adam", h), rtol=1e-6)


def test_rmsprop_keeps_lr_inside_buffer_under_schedule():
  """Under a decaying schedule rmsprop's momentum buffer carries old learning
  rates; the reference reproduces that (a lr-outside variant would not)."""
  h = CASES["rmsprop"]
  ours = run_optax("rmsprop", h)
  theta, v, m = THETA0.copy(), np.ones(3), np.zeros(3)
  for t in range(STEPS):
    g = grad(theta)
    v = h["rho"] * v + (1 - h["rho"]) * g ** 2
    m = h["momentum"] * m + g / np.sqrt(v + h["epsilon"])
    theta = theta - lr_at(t, h["learning_rate"]) * m
  assert not np.allclose(ours, theta, rtol=1e-4)


@pytest.mark.parametrize("name", ["lamb", "lars", "schedule_free_adamw"])
def test_optax_optimizers_reduce_quadratic(name):
  h = {"learning_rate": 0.05}
  tx = optimizers.build(name, h, train_steps=50)
  theta = jnp.asarray(THETA0, jnp.float32)
  state = tx.init(theta)
  loss0 = float(theta @ jnp.asarray(A, jnp.float32) @ theta)
  for _ in range(50):
    u, state = tx.update(jnp.asarray(A, jnp.float32) @ theta, state, theta)
    theta = optax.apply_updates(theta, u)
  assert float(theta @ jnp.asarray(A, jnp.float32) @ theta) < loss0


@pytest.mark.parametrize("hp,match", [
    ({"momentum": 0.9}, "no hyperparameter 'momentum'"),
    ({"learning_rate": -1.0}, "must be > 0"),
    ({"learning_rate": float("nan")}, "must be finite"),
    ({"learning_rate": "fast"}, "must be a number"),
    ({"schedule": "wavy"}, "unknown schedule"),
])
def test_bad_hparams_are_one_clear_line(hp, match):
  with pytest.raises(ValueError, match=match) as e:
    optimizers.build("sgd", hp, train_steps=10)
  assert "\n" not in str(e.value)


def test_unknown_optimizer():
  with pytest.raises(optimizers.OptimizerError, match="unknown optimizer 'adagrad2'"):
    optimizers.build("adagrad2", {})


def test_schedules_values():
  from bench.schedules import build_schedule
  s = build_schedule(1.0, {"schedule": "linear_decay", "decay_factor": 0.1, "decay_steps": 10})
  assert np.isclose(s(0), 1.0) and np.isclose(s(5), 0.55) and np.isclose(s(10), 0.1) and np.isclose(s(50), 0.1)
  w = build_schedule(1.0, {"schedule": "cosine", "warmup_steps": 4, "decay_steps": 14})
  assert np.isclose(w(0), 0.0) and np.isclose(w(2), 0.5) and np.isclose(w(4), 1.0) and np.isclose(w(14), 0.0)
  f = build_schedule(1.0, {"schedule": "linear_decay", "decay_steps_fraction": 0.5}, train_steps=20)
  assert np.isclose(f(10), 0.0)


@pytest.mark.parametrize("name", sorted(optimizers.REGISTRY))
@pytest.mark.parametrize("schedule", [{}, {"schedule": "linear_decay", "decay_factor": 0.1,
                                          "warmup_steps": 2},
                                      {"schedule": "cosine", "decay_steps_fraction": 0.5}])
def test_hyperparameter_values_are_inputs_not_constants(name, schedule):
  """optimizers.factory: two points of a search space, step counts included, lower to
  the same program (so a study compiles once), and the rule it builds is build()'s."""
  params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
  grads = jax.tree.map(lambda p: 0.3 * p + 0.1, params)
  loss = lambda p: sum(jnp.sum(0.15 * x ** 2 + 0.1 * x) for x in jax.tree.leaves(p))

  def steps(make, values):
    tx = make(values)
    state = tx.init(params)
    p = params
    for _ in range(3):  # with the train step's extra arguments (sophia, momo read them)
      updates, state = tx.update(grads, state, p, value=loss(p), obj_fn=loss)
      p = optax.apply_updates(p, updates)
    return p, state.inner_state

  programs, results = [], []
  for scale in (1.0, 0.5):
    hp = {**schedule, "learning_rate": 0.01 * scale}
    if "decay_steps_fraction" in hp:
      hp["decay_steps_fraction"] *= scale
    if "warmup_steps" in hp and "warmup_steps" not in optimizers.entry(name).static_hparams:
      hp["warmup_steps"] = int(hp["warmup_steps"] / scale)
    make, values = optimizers.factory(name, hp, train_steps=10)
    assert "schedule" not in values
    programs.append(jax.jit(steps, static_argnums=0).lower(make, values).as_text())
    results.append(jax.jit(steps, static_argnums=0)(make, values))
    expected = steps(lambda v: optimizers.build(name, hp, train_steps=10), None)
    for a, b in zip(jax.tree.leaves(results[-1]), jax.tree.leaves(expected)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert programs[0] == programs[1]
  # The values reach the update. Rules that estimate their own step size (prodigy,
  # dadapt_adamw, dog, cocob) move the params by a tiny or learning-rate-free amount in
  # their first steps: their accumulated state shows the values.
  # dog's first steps are reps_rel * |x| (about 1e-6): below float32 resolution of the
  # params and of its state, so its first updates themselves are compared.
  if name == "dog":
    firsts = []
    for scale in (1.0, 0.5):
      make, values = optimizers.factory(name, {**schedule, "learning_rate": 0.01 * scale},
                                        train_steps=10)
      tx = make(values)
      state, ups = tx.init(params), []
      for _ in range(3):  # past a warmup's zero first step
        u, state = tx.update(grads, state, params)
        ups.append(u["w"])
      firsts.append(np.stack(ups))
    assert not np.allclose(firsts[0], firsts[1], atol=0)
    return
  apart = [not np.allclose(a, b, atol=0) for a, b in zip(*map(jax.tree.leaves, results))]
  assert not np.allclose(results[0][0]["w"], results[1][0]["w"]) or (
      name in ("prodigy", "dadapt_adamw", "cocob") and any(apart))


@pytest.mark.parametrize("name,warmup", [("linear_decay", 0), ("linear_decay", 7),
                                         ("cosine", 0), ("cosine", 7)])
def test_schedules_with_traced_step_counts_equal_optax(name, warmup):
  """bench.schedules takes decay_steps / warmup_steps as values of the program;
  inside jit it computes what optax's schedules with those constants compute."""
  from bench.schedules import build_schedule
  counts = jnp.arange(0, 130, dtype=jnp.int32)
  lr, factor, decay = np.float32(0.3), np.float32(0.05), 97
  span = decay - warmup
  base = (optax.linear_schedule(lr, lr * factor, span) if name == "linear_decay"
          else optax.cosine_decay_schedule(lr, span, alpha=factor))
  ref = base if not warmup else optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), base], [warmup])
  ours = jax.jit(lambda d, w, c: build_schedule(
      lr, {"schedule": name, "decay_factor": factor, "decay_steps": d, "warmup_steps": w})(c))
  got = ours(jnp.int32(decay), jnp.int32(warmup), counts)
  np.testing.assert_allclose(got, jax.jit(ref)(counts), rtol=2e-7, atol=1e-9)
